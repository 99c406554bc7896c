"""``python -m hostcore.testing ADDRESS OUT [CERT KEY [CLIENT_CA]]``: the kit's collector
(testing/collector.py)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from hostcore.testing.collector import CollectorTls, serve

signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
serve(sys.argv[1], Path(sys.argv[2]), CollectorTls.from_arguments(sys.argv[3:]))
