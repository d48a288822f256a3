"""Start-up costs users feel: `import pitstop` and `pitstop apply` on the `init` repo.

Each figure is the median of several runs in fresh processes.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PITSTOP = str(Path(sys.executable).with_name("pitstop"))


def import_seconds() -> float:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pitstop"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    last = [line for line in out.splitlines() if re.search(r"\|\s+pitstop$", line)][-1]
    return int(last.split("|")[1]) / 1e6


def wall(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rows = []
    rows.append(
        (
            "import pitstop (cumulative, -X importtime)",
            statistics.median(import_seconds() for _ in range(args.repeat)),
        )
    )
    root = Path(tempfile.mkdtemp(prefix="pitstop-bench-"))
    try:
        firsts, agains = [], []
        for i in range(args.repeat):
            repo = root / f"r{i}"
            subprocess.run([PITSTOP, "init", str(repo)], check=True, capture_output=True)
            firsts.append(wall([PITSTOP, "apply"], repo))
            agains.append(wall([PITSTOP, "apply"], repo))
        rows.append(("pitstop apply, init repo, first (wall)", statistics.median(firsts)))
        rows.append(("pitstop apply, init repo, unchanged (wall)", statistics.median(agains)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'workload':<45} {'median s':>9}")
    for name, seconds in rows:
        print(f"{name:<45} {seconds:>9.3f}")


if __name__ == "__main__":
    main()
