"""Run every benchmark (``make bench``); each prints its own table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SUITES = [
    "startup.py",
    "historical.py",
    "online_store.py",
    "online.py",
    "materialize.py",
    "server.py",
    "streams.py",
    "catalog.py",
    "quality.py",
    "feature_logging.py",
    "monitor.py",
]

if __name__ == "__main__":
    for suite in SUITES:
        path = HERE / suite
        if path.exists():
            print(f"\n## {suite}", flush=True)
            subprocess.run([sys.executable, str(path), *sys.argv[1:]], check=True)
