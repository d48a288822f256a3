"""A newcomer's install: a fresh venv, ``pip install`` of the project without extras, the tour.

It downloads or builds every dependency (minutes), so it is deselected by default and run by
``make test-install``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.install, pytest.mark.slow]


def run(*args: str, cwd: Path) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
    return proc.stdout


def test_core_install_runs_init_apply_and_a_training_set(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv), cwd=tmp_path)
    python, pitstop = str(venv / "bin" / "python"), str(venv / "bin" / "pitstop")
    run(python, "-m", "pip", "install", "--quiet", str(ROOT), cwd=tmp_path)
    missing = run(python, "-c", (
        "import importlib.util as u\n"
        "print([m for m in ('redis', 'psycopg', 'uvicorn', 'polars', 'pytest') if u.find_spec(m)])"
    ), cwd=tmp_path)  # fmt: skip
    assert missing.strip() == "[]", "an extra's package came with the core install"

    run(pitstop, "init", "repo", "--users", "20", cwd=tmp_path)
    repo = tmp_path / "repo"
    assert "Created feature view user_features" in run(pitstop, "apply", cwd=repo)
    views = json.loads(run(pitstop, "feature-views", "list", "-o", "json", cwd=repo))
    assert {v["name"] for v in views} == {"user_features", "transaction_features"}
    frame = run(python, "-c", (
        "import pandas as pd\n"
        "from pitstop import FeatureStore\n"
        "store = FeatureStore(repo_path='.')\n"
        "now = pd.Timestamp.now('UTC')\n"
        "rows = pd.DataFrame({'user_id': [1001, 1002], 'event_timestamp': now})\n"
        "job = store.get_historical_features(entity_df=rows,\n"
        "    features=['user_features:total_purchases', 'user_derived_features:is_high_value'])\n"
        "df = job.to_df()\n"
        "print(type(df).__name__, len(df), df['total_purchases'].notna().all())"
    ), cwd=repo)  # fmt: skip
    assert frame.split() == ["DataFrame", "2", "True"]
