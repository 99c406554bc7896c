"""The DNS store's lookup rule, bounds and scope, and how answer packets feed it."""

from __future__ import annotations

from collections import Counter

from dns_messages import answer
from packets import ipv4, udp

from hostcore.decoder import Decoder
from hostcore.dns.answers import DnsAnswers
from hostcore.dns.message import Chain
from hostcore.dns.store import CHAINS_PER_ADDRESS, NameStore
from hostcore.packet import Direction, Packet

decode = Decoder().decode  # one decoder, its address cache, per test module

S = 10**9
WWW = Chain(("www.shop.test", "edge.cdn.test"), "127.0.2.2", 60)


def _store(capacity: int = 100, floor: int = 0, ceiling: int = 86400, by_cgroup: bool = True):
    counts: Counter[str] = Counter()
    return NameStore(capacity, floor, ceiling, by_cgroup, counts), counts


def test_lookup_gives_the_chain_names_in_order() -> None:
    store, counts = _store()
    store.add([WWW], cgroup_id=1, answered_ns=0)
    assert store.names("127.0.2.2", 1, 1 * S) == ["www.shop.test", "edge.cdn.test"]
    assert store.names("127.0.2.9", 1, 1 * S) == []
    assert counts == Counter({"dns.lookups_hit": 1, "dns.lookups_miss": 1})


def test_expired_chains_are_never_returned() -> None:
    store, counts = _store()
    store.add([WWW._replace(ttl=2)], 1, answered_ns=10 * S)
    assert store.names("127.0.2.2", 1, 12 * S - 1) == ["www.shop.test", "edge.cdn.test"]
    assert store.names("127.0.2.2", 1, 12 * S) == []
    assert len(store) == 0
    assert counts["dns.lookups_miss"] == 1


def test_ttl_floor_and_ceiling_clamp() -> None:
    store, _ = _store(floor=5, ceiling=100)
    store.add([WWW._replace(ttl=0)], 1, 0)
    store.add([Chain(("long.test",), "10.0.0.1", 10**6)], 1, 0)
    assert store.names("127.0.2.2", 1, 5 * S - 1) != []
    assert store.names("127.0.2.2", 1, 5 * S) == []
    assert store.names("10.0.0.1", 1, 100 * S - 1) == ["long.test"]
    assert store.names("10.0.0.1", 1, 100 * S) == []


def test_several_chains_most_recent_answer_first_without_repeats() -> None:
    store, _ = _store()
    store.add([Chain(("a.test", "cdn.test"), "10.0.0.1", 60)], 1, 1 * S)
    store.add([Chain(("b.test", "cdn.test"), "10.0.0.1", 60)], 1, 2 * S)
    assert store.names("10.0.0.1", 1, 3 * S) == ["b.test", "cdn.test", "a.test"]
    store.add([Chain(("a.test", "cdn.test"), "10.0.0.1", 60)], 1, 4 * S)  # answered again
    assert store.names("10.0.0.1", 1, 5 * S) == ["a.test", "cdn.test", "b.test"]


def test_own_cgroup_first_then_the_host() -> None:
    store, _ = _store()
    store.add([Chain(("mine.test",), "10.0.0.1", 60)], cgroup_id=1, answered_ns=1 * S)
    store.add([Chain(("theirs.test",), "10.0.0.1", 60)], cgroup_id=2, answered_ns=2 * S)
    assert store.names("10.0.0.1", 1, 3 * S) == ["mine.test", "theirs.test"]
    assert store.names("10.0.0.1", 2, 3 * S) == ["theirs.test", "mine.test"]
    assert store.names("10.0.0.1", 3, 3 * S) == ["theirs.test", "mine.test"]


def test_host_scope_ignores_cgroups() -> None:
    store, _ = _store(by_cgroup=False)
    store.add([Chain(("mine.test",), "10.0.0.1", 60)], cgroup_id=1, answered_ns=1 * S)
    store.add([Chain(("theirs.test",), "10.0.0.1", 60)], cgroup_id=2, answered_ns=2 * S)
    assert store.names("10.0.0.1", 1, 3 * S) == ["theirs.test", "mine.test"]


def test_least_recently_used_goes_first_and_live_ones_are_counted() -> None:
    store, counts = _store(capacity=2)
    store.add([Chain(("a.test",), "10.0.0.1", 60)], 1, 0)
    store.add([Chain(("b.test",), "10.0.0.2", 60)], 1, 0)
    assert store.names("10.0.0.1", 1, 1) == ["a.test"]  # a is now the most recently used
    store.add([Chain(("c.test",), "10.0.0.3", 60)], 1, 2)
    assert (store.names("10.0.0.1", 1, 3), store.names("10.0.0.2", 1, 3)) == (["a.test"], [])
    assert counts["dns.evictions"] == 1
    store.add([Chain(("d.test",), "10.0.0.4", 1)], 1, 4)  # evicts c, still valid
    store.add([Chain(("e.test",), "10.0.0.5", 1)], 1, 61 * S)  # evicts a, expired by then
    assert counts["dns.evictions"] == 2
    assert len(store) == 2


def test_a_repeated_lookup_sees_every_change_to_the_store() -> None:
    """Lookups are kept made; a new answer, an expiry or an eviction is seen at once."""
    store, counts = _store(capacity=2)
    store.add([Chain(("a.test",), "10.0.0.1", 10)], 1, 0)
    assert store.names("10.0.0.1", 1, 1) == ["a.test"]
    assert store.names("10.0.0.1", 1, 2) == ["a.test"]  # kept
    store.add([Chain(("b.test",), "10.0.0.1", 60)], 1, 3)
    assert store.names("10.0.0.1", 1, 4) == ["b.test", "a.test"]
    assert store.names("10.0.0.1", 1, 10 * S) == ["b.test"]  # a's TTL ran out at 10 s
    store.add([Chain(("c.test",), "10.0.0.3", 60)], 1, 11 * S)
    store.add([Chain(("d.test",), "10.0.0.4", 60)], 1, 12 * S)  # evicts b, the oldest
    assert store.names("10.0.0.1", 1, 13 * S) == []
    assert counts == Counter({"dns.lookups_hit": 4, "dns.lookups_miss": 1, "dns.evictions": 1})


def test_lookups_answered_from_those_kept_still_keep_their_chains_in_use() -> None:
    store, _ = _store(capacity=2)
    store.add([Chain(("a.test",), "10.0.0.1", 60)], 1, 0)
    store.add([Chain(("b.test",), "10.0.0.2", 60)], 1, 0)
    store.names("10.0.0.1", 1, 1)
    store.names("10.0.0.2", 1, 2)  # b is the most recently used
    for second in range(1, 5):  # a is used all along, from the lookup kept
        assert store.names("10.0.0.1", 1, second * S) == ["a.test"]
    store.add([Chain(("c.test",), "10.0.0.3", 60)], 1, 5 * S)  # evicts b: a was used since
    assert (store.names("10.0.0.1", 1, 6 * S), store.names("10.0.0.2", 1, 6 * S)) == (
        ["a.test"],
        [],
    )


def test_an_older_answer_never_replaces_a_newer_one() -> None:
    store, _ = _store()
    store.add([Chain(("a.test",), "10.0.0.1", 60)], 1, answered_ns=5 * S)
    store.add([Chain(("b.test",), "10.0.0.1", 60)], 1, answered_ns=3 * S)
    store.add([Chain(("a.test",), "10.0.0.1", 1)], 1, answered_ns=1 * S)  # late, and short
    assert store.names("10.0.0.1", 1, 30 * S) == ["a.test", "b.test"]


def test_size_stays_bounded_under_many_answers() -> None:
    store, counts = _store(capacity=1000)
    for n in range(20000):
        store.add([Chain((f"n{n}.test",), f"10.{n >> 16}.{n >> 8 & 255}.{n & 255}", 60)], n % 7, n)
    assert len(store) == 1000
    assert counts["dns.evictions"] == 19000


# Answers as packets: framing, loopback copies, counters.


def _packet(message: bytes, direction: Direction, cgroup_id: int, at_ns: int = 0) -> Packet:
    raw = ipv4("127.0.0.53", "127.0.0.1", udp(53, 40000, message), proto=17)
    return decode(raw, at_ns, direction, cgroup_id)


def _answers(**store_options: object) -> tuple[DnsAnswers, NameStore, Counter[str]]:
    store, counts = _store(**store_options)  # type: ignore[arg-type]

    def count(name: str, n: int) -> None:
        counts[name] += n

    return DnsAnswers(store, count), store, counts


SHOP = answer(
    "www.shop.test.",
    ("www.shop.test.", 60, "CNAME", "edge.cdn.test."),
    ("edge.cdn.test.", 60, "A", "127.0.2.2"),
)


def test_loopback_copy_is_used_once_and_scoped_to_the_asking_socket() -> None:
    answers, store, counts = _answers()
    answers.add(_packet(SHOP, Direction.EGRESS, cgroup_id=10))  # leaving the resolver
    answers.add(_packet(SHOP, Direction.INGRESS, cgroup_id=20))  # arriving at the client
    store.add([Chain(("other.test",), "127.0.2.2", 60)], cgroup_id=10, answered_ns=1)
    assert store.names("127.0.2.2", 20, 2) == ["www.shop.test", "edge.cdn.test", "other.test"]
    assert (counts["dns.answers"], counts["dns.loopback_copies"], counts["dns.parsed"]) == (1, 1, 1)
    assert len(store) == 2


def test_answer_from_a_remote_resolver_is_scoped_where_it_arrives() -> None:
    answers, store, counts = _answers()
    answers.add(_packet(SHOP, Direction.INGRESS, cgroup_id=20))
    store.add([Chain(("other.test",), "127.0.2.2", 60)], cgroup_id=10, answered_ns=1)
    assert store.names("127.0.2.2", 20, 2)[0] == "www.shop.test"
    assert counts["dns.loopback_copies"] == 0


def test_truncated_and_malformed_answers_are_counted_and_store_nothing() -> None:
    answers, store, counts = _answers()
    truncated = ipv4("127.0.0.53", "127.0.0.1", udp(53, 4, SHOP), proto=17)[:-5]
    answers.add(decode(truncated, 0, Direction.INGRESS, 1))
    answers.add(_packet(SHOP[:-1], Direction.INGRESS, 1))
    answers.add(_packet(SHOP[:12] + b"\xc0\x0c" + SHOP[14:], Direction.INGRESS, 1))
    assert len(store) == 0
    assert counts == Counter(
        {
            "dns.answers": 3,
            "dns.truncated": 1,
            "dns.malformed.truncated_record": 1,
            "dns.malformed.forward_pointer": 1,
        }
    )


def test_two_clients_asking_a_local_resolver_at_once_each_get_their_scope() -> None:
    """Copies interleave: leaving for a, leaving for b, arriving at a, arriving at b."""
    answers, store, counts = _answers()
    store.add([Chain(("other.test",), "127.0.2.2", 60)], cgroup_id=5, answered_ns=0)
    for_a, for_b = b"\x00\x01" + SHOP[2:], b"\x00\x02" + SHOP[2:]  # two queries' ids
    answers.add(_packet(for_a, Direction.EGRESS, cgroup_id=10, at_ns=1000))
    answers.add(_packet(for_b, Direction.EGRESS, cgroup_id=10, at_ns=2000))
    answers.add(_packet(for_a, Direction.INGRESS, cgroup_id=20, at_ns=3000))
    answers.add(_packet(for_b, Direction.INGRESS, cgroup_id=30, at_ns=4000))
    for cgroup in (20, 30):
        assert store.names("127.0.2.2", cgroup, 5 * S)[0] == "www.shop.test"
    assert len(store) == 3  # other.test, and www.shop.test in 20 and 30: none left in 10
    assert counts["dns.loopback_copies"] == 2


def test_moving_an_answer_keeps_what_a_later_answer_gave_the_same_cgroup() -> None:
    answers, store, _ = _answers()
    answers.add(_packet(SHOP, Direction.EGRESS, cgroup_id=10, at_ns=1000))
    own = b"\x00\x09" + SHOP[2:]  # the resolver's cgroup asks for the name itself
    answers.add(_packet(own, Direction.INGRESS, cgroup_id=10, at_ns=2000))
    answers.add(_packet(SHOP, Direction.INGRESS, cgroup_id=20, at_ns=3000))
    assert len(store) == 2  # in 10 from its own answer, in 20 from the moved one


def _tcp_packet(payload: bytes, seq: int, cut: int | None = None) -> Packet:
    from packets import ACK, tcp

    raw = ipv4("127.0.0.53", "127.0.0.1", tcp(53, 40000, ACK, seq=seq) + payload)
    return decode(raw[:cut], 0, Direction.INGRESS, 1)


OTHER = answer("b.test.", ("b.test.", 60, "A", "10.0.0.2"))
FRAMED_SHOP, FRAMED_OTHER = (len(m).to_bytes(2, "big") + m for m in (SHOP, OTHER))


def test_tcp_message_continued_in_the_next_segment_is_skipped_once() -> None:
    answers, store, counts = _answers()
    first = FRAMED_OTHER + FRAMED_SHOP[:30]
    answers.add(_tcp_packet(first, seq=1000))
    answers.add(_tcp_packet(FRAMED_SHOP[30:] + FRAMED_OTHER, seq=1000 + len(first)))
    assert store.names("127.0.2.2", 1, 1) == []
    assert store.names("10.0.0.2", 1, 1) == ["b.test"]
    assert (counts["dns.parsed"], counts["dns.tcp_segmented"]) == (2, 1)
    assert not any(name.startswith("dns.malformed") for name in counts)


def test_tcp_segment_cut_by_the_capture_keeps_its_complete_messages() -> None:
    answers, store, counts = _answers()
    answers.add(_tcp_packet(FRAMED_OTHER + FRAMED_SHOP, seq=1, cut=-10))
    assert store.names("10.0.0.2", 1, 1) == ["b.test"]
    assert (counts["dns.parsed"], counts["dns.truncated"], counts["dns.tcp_segmented"]) == (1, 1, 0)


def test_a_shared_address_keeps_its_latest_answers_only() -> None:
    store, counts = _store()
    for n in range(CHAINS_PER_ADDRESS + 4):
        store.add([Chain((f"site{n}.test",), "192.0.2.7", 60)], 1, answered_ns=n)
    names = store.names("192.0.2.7", 1, 100)
    assert names == [f"site{n}.test" for n in reversed(range(4, CHAINS_PER_ADDRESS + 4))]
    assert (len(store), counts["dns.evictions"]) == (CHAINS_PER_ADDRESS, 4)
