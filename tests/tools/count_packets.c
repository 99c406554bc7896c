// A stand-in for another tool's cgroup_skb program: counts egress packets, allows all.
BPF_ARRAY(seen, u64, 1);

int count_egress(struct __sk_buff *skb)
{
    int zero = 0;
    u64 *count = seen.lookup(&zero);
    if (count)
        __sync_fetch_and_add(count, 1);
    return 1;
}
