"""The pitstop demo: create the churn feature repo, register it, and look around.

Run with ``make demo``. Every step uses the public command line or Python API.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PITSTOP = str(Path(sys.executable).with_name("pitstop"))


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def run(*args: str, cwd: Path) -> None:
    print(f"$ pitstop {' '.join(args)}", flush=True)
    subprocess.run([PITSTOP, *args], cwd=cwd, check=True)


def main() -> None:
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="pitstop-demo-"))
    repo = workdir / "feature_repo"
    try:
        step("1. Create a feature repo (churn scenario, synthetic data)")
        run("init", str(repo), cwd=workdir)
        step("2. Register the definitions")
        run("apply", cwd=repo)
        run("apply", cwd=repo)  # unchanged definitions make no new versions
        step("3. Look around the registry")
        for group in (
            "entities",
            "feature-views",
            "on-demand-feature-views",
            "stream-feature-views",
            "feature-services",
        ):
            run(group, "list", cwd=repo)
        run("history", "user_features", cwd=repo)

        step("4. The same from Python")
        from pitstop import FeatureStore

        with FeatureStore(repo_path=repo) as store:
            view = store.get_feature_view("user_features")
            print(
                f"{view.name}: keys {view.join_keys}, ttl {view.ttl}, "
                f"features {[f.name for f in view.features]}"
            )
            service = store.get_feature_service("churn_model_v1")
            print(f"{service.name}: {[p.name_to_use for p in service.projections]}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nDemo finished in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
