"""The fleet path on a real nats-server: TLS with certificates the tests make, every login
NATS offers, and per-host permissions from the configuration README documents.

What the stream holds is read back by the collector's ``hostcore tail`` and counted by
nats-py, an independent client.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import ssl
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import nats
import nkeys
import pytest
from certs import Authority, Issued
from nats_jwt import Key, Operator
from nats_server import NatsServer, tail
from runs import HOSTCORE
from waiting import READY_TIMEOUT_S

from hostcore.plugins import PluginError
from hostcore.testing import KIT_EVENT_NAME, SinkHost, synthetic_events

README = Path(__file__).parent.parent / "README.md"
FLEET_CONF = re.compile(r"<!-- tested: nats-fleet.conf [^\n]*-->\n```\n(?P<conf>.*?)```", re.S)
HOST_PERMISSIONS = ["hostcore.node-1.>", "$JS.API.STREAM.INFO.HOSTCORE"]
MakeHost = Callable[..., SinkHost]


@dataclass
class Fleet:
    """A bus configured as README says, and what its hosts and collector log in with."""

    server: NatsServer
    authority: Authority
    directory: Path
    client: Issued
    secrets: dict[str, str] = field(default_factory=dict)

    def tls(self, client: Issued | None = None) -> dict[str, str]:
        issued = client or self.client
        return {
            "tls": "true",
            "ca_file": str(self.authority.cert_file),
            "cert_file": str(issued.cert_file),
            "key_file": str(issued.key_file),
        }

    def secret(self, name: str) -> str:
        path = self.directory / name
        path.write_text(self.secrets[name] + "\n")
        return f"file:{path}"

    def login(self, user: str) -> dict[str, str]:
        return {"user": user, "password": self.secret(user)}

    def sink(self, **options: str) -> dict[str, dict[str, str]]:
        return {"nats": {"url": self.server.url, **self.tls(), **options}}

    def stored(self) -> list[dict[str, Any]]:
        """What the stream holds, as the collector's ``hostcore tail`` shows it."""
        query = urlencode({**self.tls(), **self.login("collector")})
        return tail(f"{self.server.url}?{query}")

    def count(self) -> int:
        """The stream's messages, as nats-py (logged in as admin) counts them."""
        return count_stored(
            self.server.url, self.context(), user="admin", password=self.secrets["admin"]
        )

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.authority.cert_file)
        context.load_cert_chain(self.client.cert_file, self.client.key_file)
        return context


def count_stored(url: str, context: ssl.SSLContext, **login: str) -> int:
    async def count() -> int:
        client = await nats.connect(url, tls=context, **login)
        try:
            info = await client.jetstream().stream_info("HOSTCORE")
            return int(info.state.messages)
        finally:
            await client.close()

    return asyncio.run(count())


def seqs(events: list[dict[str, Any]], host: str) -> Counter[int]:
    return Counter(e["data"]["seq"] for e in events if e["host"] == host)


def tls_block(server: Issued, authority: Authority) -> str:
    return (
        f"tls {{\n  cert_file: {str(server.cert_file)!r}\n  key_file: {str(server.key_file)!r}\n"
        f"  ca_file: {str(authority.cert_file)!r}\n  verify: true\n}}\n"
    )


def fleet_conf(directory: Path, server: Issued, authority: Authority) -> str:
    """README's configuration, its files and store moved into the test's directory."""
    match = FLEET_CONF.search(README.read_text())
    assert match, "README.md has no tested nats-fleet.conf block"
    conf = match["conf"]
    for name, path in {
        "/etc/nats/server.crt": server.cert_file,
        "/etc/nats/server.key": server.key_file,
        "/etc/nats/fleet-ca.pem": authority.cert_file,
        "/var/lib/nats": directory / "store",
    }.items():
        conf = conf.replace(name, str(path))
    return conf


def start_fleet(directory: Path, authority: Authority, expired: bool = False) -> Fleet:
    node_2 = Key(nkeys.PREFIX_BYTE_USER)
    # nats-server parses a variable's value as configuration: a word, that starts with a letter.
    passwords = {name: "pw" + secrets.token_hex(12) for name in ("node-1", "collector", "admin")}
    passwords["node-2.nk"] = node_2.seed.decode()
    environment = {
        "NODE_1_PASSWORD": passwords["node-1"],
        "COLLECTOR_PASSWORD": passwords["collector"],
        "ADMIN_PASSWORD": passwords["admin"],
        "NODE_2_NKEY": node_2.public,
    }
    certificate = authority.issue("bus", expired=expired)
    conf = fleet_conf(directory, certificate, authority)
    server = NatsServer(directory / "store", conf, environment).start()
    return Fleet(server, authority, directory, authority.issue("node"), passwords)


@pytest.fixture
def fleet(tmp_path: Path, authority: Authority) -> Iterator[Fleet]:
    fleet = start_fleet(tmp_path, authority)
    try:
        SinkHost(fleet.sink(**fleet.login("admin"))).close()  # the admin makes the stream
        yield fleet
    finally:
        fleet.server.kill()


def deliver(fleet: Fleet, host_name: str, count: int, **login: str) -> dict[str, int]:
    host = SinkHost(fleet.sink(**login), host_name=host_name)
    for data in synthetic_events(count):
        host.emit(data)
    return host.close()


def test_hosts_log_in_over_mutual_tls_with_a_password_or_an_nkey_each_event_once(
    fleet: Fleet,
) -> None:
    one = deliver(fleet, "node-1", 300, **fleet.login("node-1"))
    two = deliver(fleet, "node-2", 200, nkey=fleet.secret("node-2.nk")[5:])
    stored = fleet.stored()
    assert seqs(stored, "node-1") == Counter(range(300))
    assert seqs(stored, "node-2") == Counter(range(200))
    assert fleet.count() == 500
    assert not [name for totals in (one, two) for name in totals if name.startswith("sink_")]


def test_a_token_over_tls_each_event_once(tmp_path: Path, authority: Authority) -> None:
    bus = authority.issue("bus")
    client = authority.issue("node")
    conf = tls_block(bus, authority) + "authorization { token: $FLEET_TOKEN }\n"
    token = tmp_path / "token"
    environment = {"FLEET_TOKEN": "tk" + secrets.token_hex(16)}
    token.write_text(environment["FLEET_TOKEN"] + "\n")
    with NatsServer(tmp_path / "store", conf, environment) as server:
        fleet = Fleet(server, authority, tmp_path, client)
        host = SinkHost(fleet.sink(token=f"file:{token}"), host_name="node-1")
        for data in synthetic_events(300):
            host.emit(data)
        totals = host.close()
        stored = tail(f"{server.url}?{urlencode({**fleet.tls(), 'token': f'file:{token}'})}")
        counted = count_stored(server.url, fleet.context(), token=environment["FLEET_TOKEN"])
        wrong = tmp_path / "wrong"
        wrong.write_text("not the token")
        with pytest.raises(
            PluginError, match="the server refused the login: Authorization Violation"
        ):
            SinkHost(fleet.sink(token=f"file:{wrong}"))
    assert seqs(stored, "node-1") == Counter(range(300)) and counted == 300
    assert not [name for name in totals if name.startswith("sink_")]


def test_a_credentials_file_over_tls_with_per_host_permissions(
    tmp_path: Path, authority: Authority
) -> None:
    operator = Operator()
    conf = operator.config() + tls_block(authority.issue("bus"), authority)
    with NatsServer(tmp_path / "store", conf) as server:
        fleet = Fleet(server, authority, tmp_path, authority.issue("node"))
        admin = operator.creds(tmp_path / "admin.creds", "admin")
        node_1 = operator.creds(tmp_path / "node-1.creds", "node-1", HOST_PERMISSIONS, ["_INBOX.>"])
        SinkHost(fleet.sink(creds=str(admin))).close()  # the stream
        one = deliver(fleet, "node-1", 300, creds=str(node_1))
        forged = deliver(fleet, "node-2", 20, creds=str(node_1))  # in another host's name
        stored = tail(f"{server.url}?{urlencode({**fleet.tls(), 'creds': str(admin)})}")
        stranger = Operator().creds(tmp_path / "stranger.creds", "node-1")
        with pytest.raises(
            PluginError, match="the server refused the login: Authorization Violation"
        ):
            SinkHost(fleet.sink(creds=str(stranger)))
    assert seqs(stored, "node-1") == Counter(range(300)) and len(stored) == 300
    assert not [name for name in one if name.startswith("sink_")]
    # the 20, and the lost_events event that tells of them, refused as well (in node-2's name)
    assert forged["sink_errors.nats"] == 21


def test_a_host_publishing_as_another_is_refused_counted_and_not_retried(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    deliver(fleet, "node-1", 100, **fleet.login("node-1"))
    started = time.monotonic()
    forged = deliver(fleet, "node-2", 500, **fleet.login("node-1"))
    collector = deliver(fleet, "collector", 10, **fleet.login("collector"))
    assert time.monotonic() - started < 30  # refused, not retried until the drain gives up
    # each event, and the lost_events event that tells of them, refused as well
    assert forged["sink_errors.nats"] == 501 and collector["sink_errors.nats"] == 11
    assert not [name for name in forged if name.startswith("sink_undelivered")]
    captured = capsys.readouterr()  # stdout or stderr: as logging was last configured
    logged = captured.out + captured.err
    refusal = (
        f"the server does not let this user publish to hostcore.node-2.{KIT_EVENT_NAME}: "
        "is --host-name this host's own"
    )
    assert "nats publish refused" in logged and refusal in logged
    stored = fleet.stored()
    assert seqs(stored, "node-1") == Counter(range(100)) and len(stored) == 100
    assert fleet.count() == 100


@dataclass(frozen=True)
class Refusal:
    sink: Callable[[Fleet, Authority], dict[str, str]]
    message: str


def _other_ca(fleet: Fleet, other: Authority) -> dict[str, str]:
    return {**fleet.tls(), "ca_file": str(other.cert_file), **fleet.login("node-1")}


REFUSALS = {
    "wrong CA": Refusal(
        _other_ca,
        "the server's certificate is not trusted for the name '127.0.0.1': "
        "unable to get local issuer certificate (verified against CA file",
    ),
    "wrong name": Refusal(
        lambda f, _: {**f.tls(), "server_name": "bus.example", **f.login("node-1")},
        "not trusted for the name 'bus.example': Hostname mismatch",
    ),
    "no client certificate": Refusal(
        lambda f, _: {"tls": "true", "ca_file": f.tls()["ca_file"], **f.login("node-1")},
        "the server refused this host, which has no certificate (set cert_file and key_file)",
    ),
    "client certificate of another CA": Refusal(
        lambda f, other: {**f.tls(other.issue("node")), **f.login("node-1")},
        "the server refused this host's certificate",
    ),
    "bad password": Refusal(
        lambda f, _: {**f.tls(), "user": "node-1", "password": f.secret("collector")},
        "the server refused the login: Authorization Violation",
    ),
    "unknown nkey": Refusal(
        lambda f, _: {**f.tls(), "nkey": unknown_nkey(f.directory)},
        "the server refused the login: Authorization Violation",
    ),
    "no TLS": Refusal(
        lambda f, _: f.login("node-1") | {"tls": "false"},
        "requires TLS: set tls=true (and ca_file)",
    ),
}


def unknown_nkey(directory: Path) -> str:
    path = directory / "unknown.nk"
    path.write_text(Key(nkeys.PREFIX_BYTE_USER).seed.decode())
    return str(path)


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_each_refusal_says_why_and_leaves_the_stream_as_it_was(
    fleet: Fleet, tmp_path: Path, case: str
) -> None:
    deliver(fleet, "node-1", 50, **fleet.login("node-1"))
    refusal = REFUSALS[case]
    options = refusal.sink(fleet, Authority(tmp_path / "other", "other CA"))
    with pytest.raises(PluginError) as refused:
        SinkHost({"nats": {"url": fleet.server.url, **options}}, host_name="node-1")
    assert refusal.message in str(refused.value)
    assert str(refused.value).startswith(f"sink 'nats': cannot use JetStream at {fleet.server.url}")
    assert seqs(fleet.stored(), "node-1") == Counter(range(50)) and fleet.count() == 50


def test_an_expired_server_certificate_is_refused(tmp_path: Path, authority: Authority) -> None:
    fleet = start_fleet(tmp_path, authority, expired=True)
    try:
        with pytest.raises(
            PluginError,
            match=re.escape("not trusted for the name '127.0.0.1': certificate has expired"),
        ):
            SinkHost(fleet.sink(**fleet.login("node-1")))
    finally:
        fleet.server.kill()


def test_tls_to_a_server_without_it_is_refused_never_sent_in_clear(
    tmp_path: Path, authority: Authority
) -> None:
    with NatsServer(tmp_path / "store") as server:
        options = {"url": server.url, "tls": "true", "ca_file": str(authority.cert_file)}
        with pytest.raises(PluginError, match=r"the server does not offer TLS .*never falls back"):
            SinkHost({"nats": options})


def test_server_killed_mid_stream_over_tls_every_event_arrives_once(fleet: Fleet) -> None:
    host = SinkHost(fleet.sink(**fleet.login("node-1")), host_name="node-1", drain_timeout_s=120)
    burst = list(synthetic_events(5000))
    for data in burst[:2500]:
        host.emit(data)
    fleet.server.kill()
    for data in burst[2500:4000]:
        host.emit(data)
    sink = host.sinks["nats"]
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not sink.disconnections:
        assert time.monotonic() < deadline, "the sink never saw the server go"
        time.sleep(0.05)
    fleet.server.start()
    for data in burst[4000:]:
        host.emit(data)
    totals = host.close()
    assert seqs(fleet.stored(), "node-1") == Counter(range(5000))
    assert fleet.count() == 5000
    assert not [name for name in totals if name.startswith("sink_")]
    assert sink.published == 5000 and sink.duplicates <= sink.retried


def test_secrets_never_reach_a_message_or_a_log(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = {**fleet.tls(), "user": "collector", "password": "env:COLLECTOR_PW"}
    wrong = subprocess.run(
        [HOSTCORE, "tail", f"{fleet.server.url}?{urlencode(query)}", "--no-follow"],
        capture_output=True,
        text=True,
        env={"COLLECTOR_PW": "wrong-collector-pw", "PATH": "/usr/bin:/bin"},
    )
    inline = subprocess.run(
        [HOSTCORE, "tail", f"{fleet.server.url}?{urlencode({**query, 'password': 'hunter2'})}"],
        capture_output=True,
        text=True,
    )
    assert wrong.returncode == 2 and "the server refused the login" in wrong.stderr
    assert "wrong-collector-pw" not in wrong.stderr
    assert inline.returncode == 2 and "password must say where the secret is" in inline.stderr
    assert "hunter2" not in inline.stderr
