"""Golden Tracee v0.24.1 lines, written from its definitions, for the Tracee-format tests.

Tracee itself does not run here, so these lines were put together from its source
at tag v0.24.1 (commit b40e7f3f89ade93b7f480b9007ab8aafeb978472), each key and
value by the rule that makes it:

- keys, order and JSON types: types/trace/trace.go ``Event`` (``eventId`` a string
  by its ``,string`` tag, ``matchedPolicies`` and ``metadata`` omitted when empty,
  ``container`` and ``kubernetes`` always there, as Go never omits a struct);
- ``matchedPolicies`` ``[""]``: pkg/ebpf/events_pipeline.go sinkEvents names the
  matched policies, and the policy made of command-line flags has the name ""
  (pkg/cmd/flags/policy.go, pkg/policy/policy.go NewPolicy);
- ``returnValue`` 0 and ``stackAddresses`` ``[0]``: pkg/events/derive/derive.go
  buildDerivedEvent, as net_flow_tcp_begin is derived; ``syscall`` "" as the
  SYN+ACK of an outgoing connection comes in (pkg/ebpf/c/tracee.bpf.c: ingress
  has no syscall);
- entity ids: pkg/datastores/process/taskid.go HashTaskID over (host tid or pid,
  start time cut to 0.1 s), with common/murmur/murmur.go (see test_tracee_format);
- ``eventId`` 2013 and the seven args' names and types: pkg/events/core.go
  (NetFlowTCPBegin follows NetFlowEnd = 2012; its fields are declared there);
- the finding: pkg/events/findings/findings.go FindingToEvent, as `tracee` prints
  a Go signature's finding: the triggering event's context, the finding's data as
  args typed by getCType (a Go string is "const char *"), a ``detectedFrom`` arg
  (type "unknown": the triggering event's id as a number, name, args and
  returnValue, a Go map so its keys sorted), and ``metadata`` with the
  signature's Properties plus signatureID, signatureName, Severity, Category,
  Technique, id and external_id (a map again: keys sorted). Tags nil: null. The
  first signature Tracee loads gets id 6000 (pkg/cmd/initialize/sigs/sigs.go).

The values themselves (pids, times, addresses) are made up.
"""

from __future__ import annotations

NET_FLOW_TCP_BEGIN = (
    '{"timestamp":1795830000123456789,"threadStartTime":1795829999873456789,"processorId":1'
    ',"processId":4242,"cgroupId":5650,"threadId":4242,"parentProcessId":4200,"hostProcessI'
    'd":4242,"hostThreadId":4242,"hostParentProcessId":4200,"userId":1000,"mountNamespace":'
    '4026531841,"pidNamespace":4026531836,"processName":"curl","executable":{"path":""},"ho'
    'stName":"node-1","containerId":"","container":{},"kubernetes":{},"eventId":"2013","eve'
    'ntName":"net_flow_tcp_begin","matchedPolicies":[""],"argsNum":7,"returnValue":0,"sysca'
    'll":"","stackAddresses":[0],"contextFlags":{"containerStarted":false,"isCompat":false}'
    ',"threadEntityId":4218961002,"processEntityId":4218961002,"parentEntityId":3301459076,'
    '"args":[{"name":"conn_direction","type":"string","value":"outgoing"},{"name":"src","ty'
    'pe":"string","value":"192.0.2.1"},{"name":"dst","type":"string","value":"198.51.100.2"'
    '},{"name":"src_port","type":"uint16","value":40000},{"name":"dst_port","type":"uint16"'
    ',"value":443},{"name":"src_dns","type":"[]string","value":[]},{"name":"dst_dns","type"'
    ':"[]string","value":["www.example.test"]}]}'
)

FINDING = (
    '{"timestamp":1795830000123456789,"threadStartTime":1795829999873456789,"processorId":1'
    ',"processId":4242,"cgroupId":5650,"threadId":4242,"parentProcessId":4200,"hostProcessI'
    'd":4242,"hostThreadId":4242,"hostParentProcessId":4200,"userId":1000,"mountNamespace":'
    '4026531841,"pidNamespace":4026531836,"processName":"curl","executable":{"path":""},"ho'
    'stName":"node-1","containerId":"","container":{},"kubernetes":{},"eventId":"6000","eve'
    'ntName":"golden_connection","matchedPolicies":[""],"argsNum":2,"returnValue":0,"syscal'
    'l":"","stackAddresses":[0],"contextFlags":{"containerStarted":false,"isCompat":false},'
    '"threadEntityId":4218961002,"processEntityId":4218961002,"parentEntityId":3301459076,"'
    'args":[{"name":"dst","type":"const char *","value":"198.51.100.2"},{"name":"detectedFr'
    'om","type":"unknown","value":{"args":[{"name":"conn_direction","type":"string","value"'
    ':"outgoing"},{"name":"src","type":"string","value":"192.0.2.1"},{"name":"dst","type":"'
    'string","value":"198.51.100.2"},{"name":"src_port","type":"uint16","value":40000},{"na'
    'me":"dst_port","type":"uint16","value":443},{"name":"src_dns","type":"[]string","value'
    '":[]},{"name":"dst_dns","type":"[]string","value":["www.example.test"]}],"id":2013,"na'
    'me":"net_flow_tcp_begin","returnValue":0}}],"metadata":{"Version":"1","Description":"A'
    ' process connected to a golden address","Tags":null,"Properties":{"Category":"command-'
    'and-control","Kubernetes_Technique":"","Severity":2,"Technique":"Application Layer Pro'
    'tocol","external_id":"T1071","id":"attack-pattern--355be19c-ffc9-46d5-8d50-d6a036c675b'
    '6","signatureID":"GOLD-1","signatureName":"Golden connection"}}}'
)

# The first net_packet_tcp line of Tracee's docs/docs/events/builtin/network-events.md
# (line 35, in the tree of tag v0.24.1, but written in 2023): Tracee v0.24.1 cannot read it,
# as its ports are typed "u16", a type Argument.UnmarshalJSON does not take numbers for.
DOCS_NET_PACKET_TCP_2023 = (
    '{"timestamp":1696255674450496178,"threadStartTime":1696249856019516599,"processorId":6'
    ',"processId":1014858,"cgroupId":5650,"threadId":1014989,"parentProcessId":1729,"hostPr'
    'ocessId":1014858,"hostThreadId":1014989,"hostParentProcessId":1729,"userId":1000,"moun'
    'tNamespace":4026531841,"pidNamespace":4026531836,"processName":"vlc","executable":{"pa'
    'th":""},"hostName":"rugged","containerId":"","container":{},"kubernetes":{},"eventId":'
    '"2002","eventName":"net_packet_tcp","matchedPolicies":[""],"argsNum":5,"returnValue":0'
    ',"syscall":"recvmsg","stackAddresses":[0],"contextFlags":{"containerStarted":false,"is'
    'Compat":false},"threadEntityId":3489249124,"processEntityId":3999221038,"parentEntityI'
    'd":3069802613,"args":[{"name":"src","type":"const char*","value":"192.168.200.50"},{"n'
    'ame":"dst","type":"const char*","value":"70.42.73.30"},{"name":"src_port","type":"u16"'
    ',"value":40020},{"name":"dst_port","type":"u16","value":80},{"name":"proto_tcp","type"'
    ':"trace.ProtoTCP","value":{"srcPort":40020,"dstPort":80,"seq":4173220235,"ack":2867625'
    '954,"dataOffset":8,"FIN":0,"SYN":0,"RST":0,"PSH":0,"ACK":1,"URG":0,"ECE":0,"CWR":0,"NS'
    '":0,"window":2766,"checksum":6218,"urgent":0}}]}'
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
