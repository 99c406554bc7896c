"""A real Tracee event as `tracee --output json` prints it: the Tracee-format tests compare with it.

Source: github.com/aquasecurity/tracee, docs/docs/events/builtin/network-events.md
(line 35, the first line of the `net_packet_tcp` example), at tag v0.24.1,
commit b40e7f3f89ade93b7f480b9007ab8aafeb978472. Its keys are those of
types/trace/trace.go's `Event` in that release, in the same order.
"""

from __future__ import annotations

NET_PACKET_TCP = (
    '{"timestamp":1696255674450496178,"threadStartTime":1696249856019516599,"processorId":6,"'
    'processId":1014858,"cgroupId":5650,"threadId":1014989,"parentProcessId":1729,"hostProces'
    'sId":1014858,"hostThreadId":1014989,"hostParentProcessId":1729,"userId":1000,"mountNames'
    'pace":4026531841,"pidNamespace":4026531836,"processName":"vlc","executable":{"path":""},'
    '"hostName":"rugged","containerId":"","container":{},"kubernetes":{},"eventId":"2002","ev'
    'entName":"net_packet_tcp","matchedPolicies":[""],"argsNum":5,"returnValue":0,"syscall":"'
    'recvmsg","stackAddresses":[0],"contextFlags":{"containerStarted":false,"isCompat":false}'
    ',"threadEntityId":3489249124,"processEntityId":3999221038,"parentEntityId":3069802613,"a'
    'rgs":[{"name":"src","type":"const char*","value":"192.168.200.50"},{"name":"dst","type":'
    '"const char*","value":"70.42.73.30"},{"name":"src_port","type":"u16","value":40020},{"na'
    'me":"dst_port","type":"u16","value":80},{"name":"proto_tcp","type":"trace.ProtoTCP","val'
    'ue":{"srcPort":40020,"dstPort":80,"seq":4173220235,"ack":2867625954,"dataOffset":8,"FIN"'
    ':0,"SYN":0,"RST":0,"PSH":0,"ACK":1,"URG":0,"ECE":0,"CWR":0,"NS":0,"window":2766,"checksu'
    'm":6218,"urgent":0}}]}'
)

# The fields Tracee v0.24.1 declares for net_flow_tcp_begin and net_flow_tcp_end,
# as (name, type): pkg/events/core.go lines 14958-14964 and 14981-14987, same commit.
NET_FLOW_TCP_FIELDS = [
    ("conn_direction", "string"),
    ("src", "string"),
    ("dst", "string"),
    ("src_port", "uint16"),
    ("dst_port", "uint16"),
    ("src_dns", "[]string"),
    ("dst_dns", "[]string"),
]
