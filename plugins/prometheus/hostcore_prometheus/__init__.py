"""hostcore's counters as a Prometheus text endpoint (the ``prometheus`` monitor)."""
