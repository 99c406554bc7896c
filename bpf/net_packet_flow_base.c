// net_packet_flow_base: cgroup_skb ingress/egress programs that pass selected
// packets to user space through one BPF ring buffer, in the order they passed.
//
// The core compiles this file with -D flags derived from the enabled events:
//   WANT_TCP_SYN_ACK  TCP segments with SYN and ACK set
//   WANT_TCP_FIN_RST  TCP segments with FIN or RST set, the first of each socket
//   WANT_TCP_SYN      TCP segments with SYN set and ACK clear
//   WANT_DNS_ANSWER   UDP datagrams and TCP segments with data from source port 53
//   WANT_TCP_TOTALS   with WANT_TCP_FIN_RST: a socket seen established holds its first
//                     FIN or RST until it closes, then passes it up with its totals
//   HELD_ENDS         with WANT_TCP_TOTALS: how many such records may wait at once
//   RING_PAGES        ring buffer size in pages (a power of two)
//   SCOPE_OWNER(o)    if defined, a test on a socket's owner (struct owner *) that
//                     TCP records of sockets with a recorded owner must pass
//   SCOPE_CGROUP(skb) if defined, a test on the socket's cgroup that TCP records must pass
// (the scope filters the kernel can apply; user space applies all of them again)
// TCP flag records carry headers only; DNS records carry the packet from the IP
// header on, up to 2048 bytes (user space counts longer ones as truncated).
// Every program returns 1: the probe observes, it never drops traffic.
//
// Who owns a socket is recorded in process context, where the current task is
// the one acting on the socket: at socket() (hc_sock_create), then at bind()
// (hc_post_bind4/6) and connect() (hc_connect4/6), each overwriting the last;
// connect() also stamps the time. The packet programs run in softirq and never
// read the current task; they copy the owner and the stamp of the packet's socket.
//
// Totals (WANT_TCP_TOTALS) are read where the kernel's TCP state machine says the
// socket is done: a sock_ops program asks for state callbacks when a socket is
// established, and at its TCP_CLOSE passes up the first FIN or RST it held,
// followed by the socket's counters. A FIN or RST of a socket closed already
// (an RST after close() dropped unread data) is passed up at once with the
// counters then, from bpf_tcp_sock(); one that cannot be held (no room, a
// socket established before the probe, headers over HELD_PACKET bytes) at
// once without totals. Ends still held when the probe stops are read from the
// map by user space.
#include <uapi/linux/bpf.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>

#define MAX_L4_OFFSET 236   // IP + extension headers passed up in front of a TCP header
#define MAX_IPV6_EXT_HEADERS 8
#define DNS_PORT 53
#define SOCK_STREAM 1  // include/linux/net.h, not a UAPI header

#define DIRECTION_INGRESS 0
#define DIRECTION_EGRESS 1

#define KIND_TCP_SYN_ACK 1
#define KIND_TCP_FIN_RST 2
#define KIND_TCP_SYN 3

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

#define OWNER_UNKNOWN 0     // a socket created before the probe was attached
#define OWNER_CREATED 1     // the task that created the socket
#define OWNER_CONNECTED 2   // the task that called connect()
#define OWNER_BOUND 3       // the task that called bind()

#define MARK_FIN_RST 1  // the socket's first FIN or RST was passed up or held
#define MARK_TOTALS 2   // the socket was seen established: its close will be called back
#define MARK_ACTIVE 4   // established by connect(): its SYN counts in bytes_acked

#define TOTALS_FOLLOW 2  // in header.direction: struct totals follows the header

struct owner {
    u32 pid;        // thread group id
    u32 tid;
    u32 uid;        // real uid
    u8 how;         // OWNER_*
    u8 marks;       // MARK_* of the socket (not an owner field; user space ignores it)
    u16 cpu;        // the CPU the task ran on as it acted on the socket
    char comm[16];  // the thread's name
};

// What the probe keeps of each TCP socket: its owner first (a record copies it),
// then when it called connect().
struct socket_state {
    struct owner owner;
    u64 connect_ns;  // bpf_ktime_get_boot_ns() at its last connect(); 0 if none seen
    // WANT_TCP_TOTALS only. Each field has one writer at a time: leaving and
    // arriving packets may run at once on two CPUs, so they keep apart.
    u32 fin_out_next;  // the sequence number after the FIN that left, if fin_out
    u32 fin_in_next;   // the sequence number after the FIN that arrived, if fin_in
    u8 fin_out;
    u8 fin_in;
    u8 pad[2];
    u32 held;     // ends held for the socket (changed atomically: see hold)
    u32 closing;  // not 0 once its close callback began (changed atomically)
};

// Socket storage holding each TCP socket's state; BPF_F_CLONE copies a
// listener's to the sockets it accepts. (bcc's BPF_SK_STORAGE, plus the flag.)
struct owners_table_t {
    int key;
    struct socket_state leaf;
    void *(*sk_storage_get)(void *, void *, int);
    int (*sk_storage_delete)(void *);
    u32 flags;
};
__attribute__((section("maps/sk_storage")))
struct owners_table_t owners = {.flags = BPF_F_NO_PREALLOC | BPF_F_CLONE};
BPF_ANNOTATE_KV_PAIR(owners, int, struct socket_state);

// A record is this header followed by the packet's first `captured` bytes.
struct header {
    u64 boot_ns;     // bpf_ktime_get_boot_ns() when the packet passed the hook
    u64 cgroup_id;   // cgroup v2 id of the socket the packet was sent from or delivered to
    u64 cookie;      // socket cookie of that socket (0 if none)
    u64 connect_ns;  // when that socket called connect(), as boot_ns; 0 if not seen
    struct owner owner;  // its owner, how = OWNER_UNKNOWN if not recorded
    u16 captured;    // packet bytes after the header, from the IP header on
    u8 direction;    // DIRECTION_*, | TOTALS_FOLLOW when struct totals follows
    u8 pad[5];
};

_Static_assert(sizeof(struct header) == 72, "HEADER in hostcore/probe/records.py");

BPF_RINGBUF_OUTPUT(records, RING_PAGES);
BPF_PERCPU_ARRAY(reserve_failures, u64, 1);

#ifdef WANT_TCP_TOTALS
#define HELD_PACKET 128  // IPv6 and a TCP header with every option take 100

// A socket's counters at its close, from struct bpf_sock_ops or bpf_tcp_sock (tcp_info's).
struct totals {
    u64 bytes_acked;     // data bytes sent that the peer acknowledged
    u64 bytes_received;  // data bytes received in order
    u32 segs_out;        // segments sent, retransmissions included
    u32 segs_in;
    u32 total_retrans;   // segments retransmitted
    u32 srtt_us;         // smoothed RTT in microseconds, << 3 (as the kernel keeps it)
    u32 rtt_min;         // minimum RTT in microseconds
    u32 pad;
};

_Static_assert(sizeof(struct totals) == 40, "TOTALS in hostcore/probe/records.py");

// A held FIN or RST: the record it would have been, its packet cut at HELD_PACKET.
struct held_end {
    struct header header;
    u8 packet[HELD_PACKET];
};

BPF_HASH(held_ends, u64, struct held_end, HELD_ENDS);  // by socket cookie
#endif

// Offset of the TCP or UDP header, with its protocol in *protocol; 0 when the
// packet is neither, or is a non-first fragment (which carries no such header).
static __always_inline u32 transport_offset(struct __sk_buff *skb, u8 *protocol)
{
    u8 version_ihl;
    if (bpf_skb_load_bytes(skb, 0, &version_ihl, 1) < 0)
        return 0;
    if ((version_ihl >> 4) == 4) {
        struct iphdr ip;
        if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
            return 0;
        if ((ip.protocol != IPPROTO_TCP && ip.protocol != IPPROTO_UDP) ||
            (bpf_ntohs(ip.frag_off) & 0x1fff))
            return 0;
        *protocol = ip.protocol;
        return ip.ihl * 4;
    }
    if ((version_ihl >> 4) != 6)
        return 0;
    struct ipv6hdr ip6;
    if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0)
        return 0;
    u8 next = ip6.nexthdr;
    u32 offset = sizeof(ip6);
#pragma unroll
    for (int i = 0; i < MAX_IPV6_EXT_HEADERS; i++) {
        u8 ext[2];
        if (next == IPPROTO_TCP || next == IPPROTO_UDP) {
            *protocol = next;
            return offset;
        }
        if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS &&
            next != IPPROTO_FRAGMENT && next != IPPROTO_AH)
            return 0;
        if (bpf_skb_load_bytes(skb, offset, ext, sizeof(ext)) < 0)
            return 0;
        if (next == IPPROTO_FRAGMENT) {
            u16 frag;
            if (bpf_skb_load_bytes(skb, offset + 2, &frag, sizeof(frag)) < 0)
                return 0;
            if (bpf_ntohs(frag) & 0xfff8)
                return 0;
            offset += 8;
        } else if (next == IPPROTO_AH) {
            offset += (ext[1] + 2) * 4;
        } else {
            offset += (ext[1] + 1) * 8;
        }
        next = ext[0];
    }
    if (next != IPPROTO_TCP && next != IPPROTO_UDP)
        return 0;
    *protocol = next;
    return offset;
}

// The same classification as hostcore/packet.py: every segment has one kind.
static __always_inline u8 tcp_kind(u8 flags)
{
    if ((flags & (TCP_SYN | TCP_ACK | TCP_RST)) == (TCP_SYN | TCP_ACK))
        return KIND_TCP_SYN_ACK;
    if (flags & (TCP_FIN | TCP_RST))
        return KIND_TCP_FIN_RST;
    if ((flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN)
        return KIND_TCP_SYN;
    return 0;
}

static __always_inline bool wanted(u8 kind)
{
    switch (kind) {
#ifdef WANT_TCP_SYN_ACK
    case KIND_TCP_SYN_ACK:
        return true;
#endif
#ifdef WANT_TCP_FIN_RST
    case KIND_TCP_FIN_RST:
        return true;
#endif
#ifdef WANT_TCP_SYN
    case KIND_TCP_SYN:
        return true;
#endif
    default:
        return false;
    }
}

static __always_inline void count_reserve_failure(void)
{
    int zero = 0;
    u64 *count = reserve_failures.lookup(&zero);
    if (count)
        *count += 1;
}

// A DNS answer: from port 53 over UDP, or over TCP with data after the header.
static __always_inline bool is_dns_answer(struct __sk_buff *skb, u8 protocol, u32 l4, u8 *l4hdr)
{
#ifdef WANT_DNS_ANSWER
    if (((u16)l4hdr[0] << 8 | l4hdr[1]) != DNS_PORT)
        return false;
    return protocol == IPPROTO_UDP || skb->len > l4 + (l4hdr[12] >> 4) * 4;
#else
    return false;
#endif
}

static __always_inline struct bpf_sock *full_socket(struct __sk_buff *skb)
{
    struct bpf_sock *sk = skb->sk;
    return sk ? bpf_sk_fullsock(sk) : 0;
}

// The state of the packet's socket (for a SYN+ACK leaving, the listener's), or 0.
// `flags` BPF_SK_STORAGE_GET_F_CREATE gives a socket older than the probe an
// empty record (how = OWNER_UNKNOWN, connect_ns = 0).
static __always_inline struct socket_state *socket_state(struct __sk_buff *skb, u64 flags)
{
    struct bpf_sock *sk = full_socket(skb);
    return sk ? owners.sk_storage_get(sk, 0, flags) : 0;
}

// Whether a socket is one connection's own, so its first FIN or RST may be
// marked: not a listener (the mark would be cloned into every socket it
// accepts later), not the kernel's raw control socket (it answers for many).
static __always_inline bool owns_connection(struct bpf_sock *sk)
{
    return sk->type == SOCK_STREAM && sk->protocol == IPPROTO_TCP &&
           sk->state != BPF_TCP_LISTEN;
}

// Scope filters on a TCP record's socket. An owner the probe did not record
// (a socket older than it) passes: user space may know it from /proc.
static __always_inline bool in_scope(struct __sk_buff *skb, struct owner *owner)
{
#ifdef SCOPE_OWNER
    if (owner && !(SCOPE_OWNER(owner)))
        return false;
#endif
#ifdef SCOPE_CGROUP
    if (!(SCOPE_CGROUP(skb)))
        return false;
#endif
    return true;
}

// Caps at `bytes` (a power of two), in a form whose bounds the verifier can see;
// the same value for 1..bytes.
#define CAPPED(length, bytes) (((((length) > (bytes) ? (bytes) : (length)) - 1) & ((bytes) - 1)) + 1)

static __always_inline void fill_header(struct header *rec, struct __sk_buff *skb, u8 direction,
                                        u32 captured, struct socket_state *state)
{
    rec->boot_ns = bpf_ktime_get_boot_ns();
    rec->cgroup_id = bpf_skb_cgroup_id(skb);
    rec->cookie = bpf_get_socket_cookie(skb);
    if (state) {
        __builtin_memcpy(&rec->owner, &state->owner, sizeof(rec->owner));
        rec->owner.marks = 0;  // the socket's, not its owner's: records of one owner stay alike
        rec->connect_ns = state->connect_ns;
    } else {
        __builtin_memset(&rec->owner, 0, sizeof(rec->owner));
        rec->connect_ns = 0;
    }
    rec->direction = direction;
    rec->captured = captured;
    __builtin_memset(rec->pad, 0, sizeof(rec->pad));
}

// Queue a record: the header, then the packet's first `length` bytes in a slot
// of `bytes` (a power of two). Inlined with a constant `bytes`, so the size the
// verifier sees at each reserve is a constant, as it must be.
static __always_inline bool submit_in(struct __sk_buff *skb, u8 direction, u32 length, u32 bytes,
                                      struct socket_state *state)
{
    struct header *rec = records.ringbuf_reserve(sizeof(struct header) + bytes);
    if (!rec) {
        count_reserve_failure();
        return false;
    }
    // The caller's checks already bound `length`, so the compiler would drop the
    // cap below; hiding its value keeps the cap where the verifier can see it.
    asm volatile("" : "+r"(length));
    u32 captured = CAPPED(length, bytes);
    if (bpf_skb_load_bytes(skb, 0, (u8 *)(rec + 1), captured) < 0)
        captured = 0;
    fill_header(rec, skb, direction, captured, state);
    records.ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
    return true;
}

// The smallest slot that holds `length` bytes (at most 2048), so that a TCP
// header or a short DNS answer does not take a 2 KiB slot of the ring buffer.
static __always_inline bool submit(struct __sk_buff *skb, u8 direction, u32 length,
                                   struct socket_state *state)
{
    if (length > skb->len)
        length = skb->len;
    if (length == 0)
        return false;
    if (length <= 128)
        return submit_in(skb, direction, length, 128, state);
    if (length <= 256)
        return submit_in(skb, direction, length, 256, state);
    if (length <= 512)
        return submit_in(skb, direction, length, 512, state);
    if (length <= 1024)
        return submit_in(skb, direction, length, 1024, state);
    return submit_in(skb, direction, length, 2048, state);
}

#ifdef WANT_TCP_TOTALS
// Where a FIN ends in sequence space, so that the close can tell whether the
// kernel counted it in bytes_acked or bytes_received (a FIN counts as one byte).
static __always_inline void note_fin(struct __sk_buff *skb, u8 direction, u32 l4, u8 *l4hdr,
                                     struct socket_state *state)
{
    u32 seq = (u32)l4hdr[4] << 24 | (u32)l4hdr[5] << 16 | (u32)l4hdr[6] << 8 | l4hdr[7];
    u32 next = seq + (skb->len - l4 - (l4hdr[12] >> 4) * 4) + 1;
    if (direction == DIRECTION_EGRESS) {
        state->fin_out_next = next;
        state->fin_out = 1;
    } else {
        state->fin_in_next = next;
        state->fin_in = 1;
    }
}

// A closed socket's end record: its header, the totals, then its packet.
struct closed_end {
    struct header header;
    struct totals totals;
    u8 packet[HELD_PACKET];
};

// The counters of struct bpf_sock_ops and struct bpf_tcp_sock, which share their names.
#define COUNTERS(c)                                                                       \
    (c)->bytes_acked, (c)->bytes_received, (c)->segs_out, (c)->segs_in, (c)->total_retrans, \
        (c)->srtt_us, (c)->rtt_min, (c)->snd_una, (c)->rcv_nxt

// Totals in data bytes: the kernel counts the SYN of connect() and each FIN as a byte.
static __always_inline void fill_totals(struct totals *t, u64 acked, u64 received, u32 segs_out,
                                        u32 segs_in, u32 retrans, u32 srtt_us, u32 rtt_min,
                                        u32 snd_una, u32 rcv_nxt, struct socket_state *state)
{
    if (state) {
        if ((state->owner.marks & MARK_ACTIVE) && acked)
            acked -= 1;
        if (state->fin_out && snd_una == state->fin_out_next && acked)
            acked -= 1;
        if (state->fin_in && rcv_nxt == state->fin_in_next && received)
            received -= 1;
    }
    t->bytes_acked = acked;
    t->bytes_received = received;
    t->segs_out = segs_out;
    t->segs_in = segs_in;
    t->total_retrans = retrans;
    t->srtt_us = srtt_us;
    t->rtt_min = rtt_min;
    t->pad = 0;
}

// Pass up a held end with its socket's counters (COUNTERS(c) after `state`). With
// `cookie`, only if this deletes the map's copy: the close callback and a packet's
// program may both reach one end (see hold), and the one that deletes it passes it up.
static __always_inline void pass_closed(const struct held_end *held, u64 *cookie,
                                        struct socket_state *state, u64 acked, u64 received,
                                        u32 segs_out, u32 segs_in, u32 retrans, u32 srtt_us,
                                        u32 rtt_min, u32 snd_una, u32 rcv_nxt)
{
    struct closed_end *rec = records.ringbuf_reserve(sizeof(struct closed_end));
    if (!rec) {
        if (!cookie || held_ends.delete(cookie) == 0)
            count_reserve_failure();
        return;
    }
    __builtin_memcpy(&rec->header, &held->header, sizeof(rec->header));
    __builtin_memcpy(rec->packet, held->packet, HELD_PACKET);
    rec->header.direction |= TOTALS_FOLLOW;
    fill_totals(&rec->totals, acked, received, segs_out, segs_in, retrans, srtt_us, rtt_min,
                snd_una, rcv_nxt, state);
    // Deleted once reserved: user space, reading the map before the ring when it
    // stops, finds the end in one or the other (in both, it keeps the ring's).
    if (cookie && held_ends.delete(cookie) != 0) {
        records.ringbuf_discard(rec, BPF_RB_NO_WAKEUP);
        return;
    }
    records.ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
}

// pass_closed with the counters of a socket seen from a packet's program.
static __always_inline bool pass_closed_now(const struct held_end *held, u64 *cookie,
                                            struct bpf_sock *sk, struct socket_state *state)
{
    struct bpf_tcp_sock *tcp = bpf_tcp_sock(sk);  // a TCP socket's: not 0 here
    if (!tcp)
        return false;
    pass_closed(held, cookie, state, COUNTERS(tcp));
    return true;
}
#endif

// Hold a socket's first FIN or RST (`length` bytes of headers) until it closes,
// if its close will be called back, or pass it up with totals if it is closed
// already; false if it is to be passed up now, without.
static __always_inline bool hold(struct __sk_buff *skb, struct bpf_sock *sk, u8 direction,
                                 u32 length, struct socket_state *state)
{
#ifdef WANT_TCP_TOTALS
    if (!(state->owner.marks & MARK_TOTALS) || length > HELD_PACKET || length > skb->len ||
        length == 0)
        return false;
    // On the stack, not in a per-CPU buffer: a softirq may run this for another
    // socket on the same CPU while a program's close() is here.
    struct held_end held;
    __builtin_memset(&held, 0, sizeof(held));
    asm volatile("" : "+r"(length));  // as in submit_in: keep the cap the verifier sees
    u32 captured = CAPPED(length, HELD_PACKET);
    if (bpf_skb_load_bytes(skb, 0, held.packet, captured) < 0)
        return false;
    fill_header(&held.header, skb, direction, captured, state);
    // Closed already (an RST sent as close() drops unread data comes after the
    // socket's TCP_CLOSE): no callback follows, so up now, with the counters now.
    if (sk->state == BPF_TCP_CLOSE)
        return pass_closed_now(&held, 0, sk, state);
    u64 cookie = held.header.cookie;
    if (held_ends.update(&cookie, &held) != 0)
        return false;  // full: passed up now, without totals
    // The close callback may have begun meanwhile and looked for this end before
    // it was there. It marks `closing` before it looks, as this marks `held`
    // before it looks at `closing` (atomic adds: full barriers), so one of the two
    // sees the other's.
    __sync_fetch_and_add(&state->held, 1);
    if (state->closing)
        pass_closed_now(&held, &cookie, sk, state);
    return true;
#else
    return false;
#endif
}

static __always_inline int observe(struct __sk_buff *skb, u8 direction)
{
    u8 protocol = 0;
    u32 l4 = transport_offset(skb, &protocol);
    if (!l4 || l4 > MAX_L4_OFFSET)
        return 1;
    // Ports, and for TCP the data offset and flags. For UDP the last 6 bytes are
    // payload, which every DNS message has (its header alone is 12 bytes).
    u8 l4hdr[14];
    if (bpf_skb_load_bytes(skb, l4, l4hdr, sizeof(l4hdr)) < 0)
        return 1;
    // The owner is looked up only for packets that are passed up.
    if (is_dns_answer(skb, protocol, l4, l4hdr)) {
        // Every answer, in scope or not: the DNS store needs them all. Over 2048
        // bytes, the record is cut; user space counts it as truncated.
        submit(skb, direction, skb->len, socket_state(skb, 0));
        return 1;
    }
    u8 kind = protocol == IPPROTO_TCP ? tcp_kind(l4hdr[13]) : 0;
    if (!wanted(kind))
        return 1;
    if (kind != KIND_TCP_FIN_RST) {
        struct socket_state *state = socket_state(skb, 0);
        if (in_scope(skb, state ? &state->owner : 0))
            submit(skb, direction, l4 + (l4hdr[12] >> 4) * 4, state);
        return 1;
    }
    // Only a connection's first FIN or RST through its socket is passed up (or held): the
    // one that ends it (half of a loopback connection's four). Segments without
    // a connected socket here (a listener's, the control socket's) pass every one.
    struct bpf_sock *sk = full_socket(skb);
    bool marks = sk && owns_connection(sk);
    struct socket_state *state =
        sk ? owners.sk_storage_get(sk, 0, marks ? BPF_SK_STORAGE_GET_F_CREATE : 0) : 0;
#ifdef WANT_TCP_TOTALS
    if (marks && state && (l4hdr[13] & TCP_FIN))
        note_fin(skb, direction, l4, l4hdr, state);
#endif
    if (marks && state && (state->owner.marks & MARK_FIN_RST))
        return 1;
    if (!in_scope(skb, state && state->owner.how != OWNER_UNKNOWN ? &state->owner : 0))
        return 1;
    u32 length = l4 + (l4hdr[12] >> 4) * 4;
    bool passed = (marks && state && hold(skb, sk, direction, length, state)) ||
                  submit(skb, direction, length, state);
    if (passed && marks && state)
        state->owner.marks |= MARK_FIN_RST;
    return 1;
}

int hc_flow_ingress(struct __sk_buff *skb)
{
    return observe(skb, DIRECTION_INGRESS);
}

int hc_flow_egress(struct __sk_buff *skb)
{
    return observe(skb, DIRECTION_EGRESS);
}

static __always_inline void record_owner(struct bpf_sock *sk, u8 how)
{
    struct socket_state *state = owners.sk_storage_get(sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
    if (!state)
        return;
    // The handshake's start, for an outgoing connection's begin (its SYN+ACK's
    // record carries it); a bind() after a failed connect() clears the old one.
    state->connect_ns = how == OWNER_CONNECTED ? bpf_ktime_get_boot_ns() : 0;
    struct owner *owner = &state->owner;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    owner->pid = pid_tgid >> 32;
    owner->tid = (u32)pid_tgid;
    owner->uid = (u32)bpf_get_current_uid_gid();
    owner->how = how;
    owner->cpu = bpf_get_smp_processor_id();
    owner->marks = 0;  // a socket that connects again starts a new connection
    state->fin_out = state->fin_in = 0;
    state->held = state->closing = 0;
    bpf_get_current_comm(owner->comm, sizeof(owner->comm));
}

int hc_sock_create(struct bpf_sock *sk)
{
    if (sk->type == SOCK_STREAM)
        record_owner(sk, OWNER_CREATED);
    return 1;
}

static __always_inline int on_post_bind(struct bpf_sock *sk)
{
    if (sk->type == SOCK_STREAM)
        record_owner(sk, OWNER_BOUND);
    return 1;
}

int hc_post_bind4(struct bpf_sock *sk)
{
    return on_post_bind(sk);
}

int hc_post_bind6(struct bpf_sock *sk)
{
    return on_post_bind(sk);
}

static __always_inline int on_connect(struct bpf_sock_addr *ctx)
{
    struct bpf_sock *sk = ctx->sk;
    if (sk && ctx->type == SOCK_STREAM)
        record_owner(sk, OWNER_CONNECTED);
    return 1;
}

int hc_connect4(struct bpf_sock_addr *ctx)
{
    return on_connect(ctx);
}

int hc_connect6(struct bpf_sock_addr *ctx)
{
    return on_connect(ctx);
}

#ifdef WANT_TCP_TOTALS
// The socket closed: pass up its held FIN or RST, if any, with its counters now.
static __always_inline void release(struct bpf_sock_ops *ops, struct socket_state *state)
{
    u64 cookie = bpf_get_socket_cookie(ops);
    struct held_end *held = held_ends.lookup(&cookie);
    if (held)
        pass_closed(held, &cookie, state, COUNTERS(ops));
}

// Established sockets ask for state callbacks, so that their close is seen.
int hc_sock_ops(struct bpf_sock_ops *ops)
{
    struct bpf_sock *sk = ops->sk;
    if (!sk)
        return 1;
    if (ops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB ||
        ops->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
        struct socket_state *state = owners.sk_storage_get(sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
        if (state && bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags |
                                                        BPF_SOCK_OPS_STATE_CB_FLAG) == 0)
            state->owner.marks |= ops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB
                                      ? MARK_TOTALS | MARK_ACTIVE
                                      : MARK_TOTALS;
    } else if (ops->op == BPF_SOCK_OPS_STATE_CB && ops->args[1] == BPF_TCP_CLOSE) {
        struct socket_state *state = owners.sk_storage_get(sk, 0, 0);
        if (state) {
            __sync_fetch_and_add(&state->closing, 1);  // before release() looks (see hold)
            release(ops, state);
        }
    }
    return 1;
}
#endif
