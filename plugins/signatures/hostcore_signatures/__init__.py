"""Built-in hostcore signatures, each consuming net_flow events."""
