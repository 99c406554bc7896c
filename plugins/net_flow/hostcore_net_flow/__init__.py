"""TCP flow events for hostcore, derived from the net_packet_flow_base probe."""
