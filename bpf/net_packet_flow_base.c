// net_packet_flow_base: cgroup_skb ingress/egress programs that pass selected
// packet headers to user space through one BPF ring buffer.
//
// The core compiles this file with -D flags derived from the enabled events:
//   WANT_TCP_SYN_ACK  TCP segments with SYN and ACK set
//   WANT_TCP_FIN_RST  TCP segments with FIN or RST set
//   WANT_TCP_SYN      TCP segments with SYN set and ACK clear
//   RING_PAGES        ring buffer size in pages (a power of two)
// Every program returns 1: the probe observes, it never drops traffic.
#include <uapi/linux/bpf.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>

#define CAPTURE_BYTES 256   // IP + extension headers + TCP header; must be a power of two
#define MAX_IPV6_EXT_HEADERS 8

#define DIRECTION_INGRESS 0
#define DIRECTION_EGRESS 1

#define KIND_TCP_SYN_ACK 1
#define KIND_TCP_FIN_RST 2
#define KIND_TCP_SYN 3

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

struct record {
    u64 boot_ns;     // bpf_ktime_get_boot_ns() when the packet passed the hook
    u16 captured;    // bytes of data[] that hold packet bytes, from the IP header on
    u8 direction;    // DIRECTION_*
    u8 pad[5];
    u8 data[CAPTURE_BYTES];
};

BPF_RINGBUF_OUTPUT(records, RING_PAGES);
BPF_PERCPU_ARRAY(reserve_failures, u64, 1);

// Offset of the TCP header, or 0 when the packet is not TCP or is a
// non-first fragment (which carries no TCP header).
static __always_inline u32 tcp_offset(struct __sk_buff *skb)
{
    u8 version_ihl;
    if (bpf_skb_load_bytes(skb, 0, &version_ihl, 1) < 0)
        return 0;
    if ((version_ihl >> 4) == 4) {
        struct iphdr ip;
        if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
            return 0;
        if (ip.protocol != IPPROTO_TCP || (bpf_ntohs(ip.frag_off) & 0x1fff))
            return 0;
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
        if (next == IPPROTO_TCP)
            return offset;
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
    return next == IPPROTO_TCP ? offset : 0;
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

static __always_inline int observe(struct __sk_buff *skb, u8 direction)
{
    u32 l4 = tcp_offset(skb);
    if (!l4 || l4 > CAPTURE_BYTES - 20)
        return 1;
    u8 tcp[14];
    if (bpf_skb_load_bytes(skb, l4, tcp, sizeof(tcp)) < 0)
        return 1;
    if (!wanted(tcp_kind(tcp[13])))
        return 1;

    u32 captured = l4 + (tcp[12] >> 4) * 4;
    if (captured > skb->len)
        captured = skb->len;
    if (captured > CAPTURE_BYTES)
        captured = CAPTURE_BYTES;
    // The same value for 1..CAPTURE_BYTES, in a form whose bounds the verifier can see.
    captured = ((captured - 1) & (CAPTURE_BYTES - 1)) + 1;

    struct record *rec = records.ringbuf_reserve(sizeof(struct record));
    if (!rec) {
        count_reserve_failure();
        return 1;
    }
    rec->boot_ns = bpf_ktime_get_boot_ns();
    rec->direction = direction;
    if (bpf_skb_load_bytes(skb, 0, rec->data, captured) < 0)
        captured = 0;
    rec->captured = captured;
    records.ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
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
