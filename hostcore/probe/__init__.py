"""The live probe, ``net_packet_flow_base``: the kernel side and everything it needs.

``flow_probe`` compiles bpf/net_packet_flow_base.c with bcc, attaches it with BPF
links (``link``) and drains its ring buffer (``ring``); ``records`` turns its records
into packets for the decoder. The rest finds what the probe needs on this host:
the cgroup v2 mount (``cgroup``), privileges (``capabilities``), kernel headers for
bcc (``kernel_headers``), sockets older than the probe (``sockets``, ``netns``), the
boot-to-epoch clock offset (``clock``); ``doctor`` checks all of it.
"""

from hostcore.probe.flow_probe import NAME, SOURCE, FlowProbe, ProbeError, cflags

__all__ = ["NAME", "SOURCE", "FlowProbe", "ProbeError", "cflags"]
