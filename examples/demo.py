"""The pitstop demo: a churn model from raw data to live predictions (run it with ``make demo``).

The steps follow the tutorial's sections 4 to 6; the code each step calls is in ``churn/``:

 1. synthetic raw transactions and churn labels                      churn/data.py
 2. the batch feature pipeline, and what it does with bad data       churn/pipeline.py
 3. ``pitstop apply``: register the feature repo                     churn/feature_repo/
 4. a training set: labels joined to point-in-time correct features  churn/train.py
 5. train a model, score it on held-out customers, save it           churn/train.py
 6. ``materialize_incremental``: the latest features, online
 7. online features, in-process
 8. online features over HTTP, from ``pitstop serve``
 9. the registry in a browser: ``pitstop ui``
10. predictions: ``ModelWithFeatureStore``, then the FastAPI app     churn/app.py
11. a customer buys something: push fresh features, predict again   churn/streaming.py
12. monitoring: served features logged, a shift, ``pitstop monitor``  churn/monitoring.py

Everything happens in a temporary folder, removed at the end (``--workdir DIR`` keeps it);
servers started on the way are stopped, whatever happens. ``--quick`` uses fewer customers.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from churn.app import ModelWithFeatureStore

    from pitstop import FeatureStore

PITSTOP = str(Path(sys.executable).with_name("pitstop"))
EXAMPLES = Path(__file__).resolve().parent
SHOWN_USERS = [1001, 1002, 1003]
UNKNOWN_USER = 99_999

# Where the files go, relative to the work folder (the layout of the tutorial)
RAW = Path("data/raw_transactions.parquet")
REPO = Path("feature_repo")
FEATURES = REPO / "data" / "user_features.parquet"
MODEL = Path("models/churn_model.pkl")


def say(text: object = "") -> None:
    """Print indented, under the current step."""
    for line in str(text).splitlines() or [""]:
        print(f"   {line}")


class ChurnDemo:
    """The demo's steps, in order; each prints what it did."""

    def __init__(self, workdir: Path, cleanup: contextlib.ExitStack, *, users: int, days: int,
                 keep: bool = False):  # fmt: skip
        import pandas as pd

        pd.set_option("display.width", 160)
        pd.set_option("display.max_columns", 20)
        self.workdir = workdir
        self.cleanup = cleanup  # closes stores, stops servers
        self.users = users
        self.days = days
        self.now = datetime.now(UTC)
        self.keep = keep  # whether the work folder stays (--workdir)
        # filled in by the steps, in order
        self.transactions: pd.DataFrame
        self.labels: pd.DataFrame
        self.store: FeatureStore  # opened once `pitstop apply` has registered the repo
        self.training_df: pd.DataFrame
        self.server: ModelWithFeatureStore
        self.app_url: str

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        return [
            ("Raw data: synthetic transactions and churn labels", self.raw_data),
            ("Batch feature pipeline: raw transactions → daily user features", self.pipeline),
            ("Register the feature repo: pitstop apply", self.apply),
            ("Training set: labels joined to point-in-time features", self.training_set),
            ("Train the churn model (scikit-learn logistic regression)", self.train),
            ("Materialize: the latest features into the online store", self.materialize),
            ("Online features, in-process: store.get_online_features", self.online),
            ("Online features over HTTP: pitstop serve", self.feature_server),
            ("Browse the registry: pitstop ui", self.web_ui),
            ("Predictions: ModelWithFeatureStore, then the FastAPI app", self.predict),
            ("A customer buys something: push fresh features, predict again", self.push),
            ("Monitoring: log served features, shift them, pitstop monitor", self.monitor),
        ]

    def raw_data(self) -> None:
        from churn.data import generate_transactions, make_labels

        self.transactions = generate_transactions(self.users, self.days, now=self.now)
        self.labels = make_labels(self.transactions, now=self.now)
        RAW.parent.mkdir(parents=True)
        self.transactions.to_parquet(RAW, index=False)
        say(f"{len(self.transactions):,} transactions of {self.users:,} customers over "
            f"{self.days} days → {RAW}")  # fmt: skip
        say(f"{len(self.labels):,} labelled rows, {self.labels['churned'].mean():.0%} churned "
            "(no purchase in the 30 days after the row's time)")  # fmt: skip

    def pipeline(self) -> None:
        from churn.pipeline import FeatureEngineeringPipeline

        from pitstop.errors import DataQualityError

        shutil.copytree(EXAMPLES / "churn" / "feature_repo", REPO,
                        ignore=shutil.ignore_patterns("data", "__pycache__"))  # fmt: skip
        FeatureEngineeringPipeline(RAW, FEATURES, now=self.now, log=say).run()

        say("\nThe same pipeline, on raw data with mistakes in it:")
        bad = self.transactions.copy()
        bad.loc[[5, 17, 42], "transaction_amount"] = [-12.5, 0.0, -3.99]
        bad.loc[[8, 9], "user_id"] = None
        bad_raw = RAW.with_name("raw_transactions_bad.parquet")
        bad.to_parquet(bad_raw, index=False)
        before = hashlib.sha256(FEATURES.read_bytes()).hexdigest()
        try:
            FeatureEngineeringPipeline(bad_raw, FEATURES, now=self.now, log=None).run()
        except DataQualityError as exc:
            say(exc)
        else:
            raise AssertionError("the pipeline accepted bad data")
        unchanged = hashlib.sha256(FEATURES.read_bytes()).hexdigest() == before
        say(f"{FEATURES} unchanged: {unchanged}")

    def apply(self) -> None:
        from pitstop import FeatureStore

        say(f"$ cd {REPO} && pitstop apply")
        done = subprocess.run([PITSTOP, "apply"], cwd=REPO, capture_output=True, text=True)
        say(done.stdout.strip() or done.stderr.strip())
        done.check_returncode()
        self.store = self.cleanup.enter_context(FeatureStore(repo_path=REPO))

    def training_set(self) -> None:
        from churn import FEATURE_SERVICE
        from churn.train import training_set

        service = self.store.get_feature_service(FEATURE_SERVICE)
        views = ", ".join(p.name_to_use for p in service.projections)
        say(f"features: the feature service {service.name} ({views})")
        per_user = self.labels.groupby("user_id").size().max()
        say(f"entity_df: {len(self.labels):,} rows (user_id, event_timestamp, churned), up to "
            f"{per_user} per customer")  # fmt: skip
        self.training_df = training_set(self.store, self.labels)
        say(f"Training data shape: {self.training_df.shape}")
        say(self.training_df.head().to_string(index=False, float_format="{:.2f}".format))

    def train(self) -> None:
        from churn.train import save_model, train_model

        trained = train_model(self.training_df)
        save_model(trained.model, MODEL)
        say(f"trained on {trained.train_rows:,} rows; tested on {trained.test_rows:,} rows of "
            f"other customers; {trained.dropped_rows} rows had no features yet")  # fmt: skip
        say(f"ROC AUC {trained.roc_auc:.3f}   accuracy {trained.accuracy:.3f}   "
            f"(always guessing the common answer: {trained.baseline_accuracy:.3f})")  # fmt: skip
        weights = ", ".join(f"{n} {w:+.2f}" for n, w in trained.weights().items())
        say(f"weights (+ means more churn): {weights}")
        say(f"saved to {MODEL}")

    def materialize(self) -> None:
        say("store.materialize_incremental(end_date=now)")
        for result in self.store.materialize_incremental(end_date=datetime.now(UTC)):
            say(f"{result.view}: {result.rows:,} rows")

    def online(self) -> None:
        from churn import FEATURE_SERVICE

        users = [*SHOWN_USERS, UNKNOWN_USER]
        say(f"features: {FEATURE_SERVICE}, entity_rows: user_id {users}")
        response = self.store.get_online_features(
            features=self.store.get_feature_service(FEATURE_SERVICE),
            entity_rows=[{"user_id": u} for u in users],
        )
        say(online_table(response.to_dict(), response.statuses))

    def feature_server(self) -> None:
        probe = subprocess.run([PITSTOP, "serve", "--help"], cwd=REPO, capture_output=True)
        if probe.returncode != 0:
            say(f"feature server not available yet: `pitstop serve --help` exited with "
                f"{probe.returncode}; skipping the HTTP lookup")  # fmt: skip
            return
        say(f"$ cd {REPO} && pitstop serve -p PORT")
        url = start_server([PITSTOP, "serve", "-p", "{port}"], cwd=REPO,
                           log=Path("serve.log"), cleanup=self.cleanup)  # fmt: skip
        body = {
            "features": [
                "user_features:total_purchases",
                "user_features:days_since_last_purchase",
                "user_features:customer_segment",
            ],
            "entities": {"user_id": [*SHOWN_USERS, UNKNOWN_USER]},
        }
        say(f"POST /get-online-features {json.dumps(body)}")
        status, answer = http_json(f"{url}/get-online-features", body)
        if status != 200:
            raise RuntimeError(f"pitstop serve answered {status}: {answer}")
        say(feast_table(answer))

    def web_ui(self) -> None:
        say(f"$ cd {REPO} && pitstop ui -p PORT")
        url = start_server([PITSTOP, "ui", "-p", "{port}"], cwd=REPO, log=Path("ui.log"),
                           cleanup=self.cleanup)  # fmt: skip
        with urllib.request.urlopen(f"{url}/feature-views/user_features", timeout=10) as page:
            html = page.read().decode()
        shown = [f for f in ("total_purchases", "churn_model_v1", "Lineage") if f in html]
        say(f"GET {url}/feature-views/user_features → {page.status}, shows {', '.join(shown)}")

    def predict(self) -> None:
        from churn.app import ModelWithFeatureStore

        self.server = ModelWithFeatureStore(MODEL, REPO)
        self.cleanup.callback(self.server.close)
        for user_id in SHOWN_USERS:
            result = self.server.predict(user_id)
            say(f"server.predict({user_id}): P(churn) {result['probability'][1]:.2f} → "
                f"prediction {result['prediction']}")  # fmt: skip

        say("\n$ CHURN_MODEL=... CHURN_FEATURE_REPO=... uvicorn churn.app:app --port PORT")
        self.app_url = start_server(
            [sys.executable, "-m", "uvicorn", "churn.app:app", "--port", "{port}",
             "--log-level", "warning"],
            cwd=EXAMPLES,
            env={"CHURN_MODEL": str(MODEL.resolve()), "CHURN_FEATURE_REPO": str(REPO.resolve())},
            log=Path("uvicorn.log"),
            cleanup=self.cleanup,
        )  # fmt: skip
        for user_id in (SHOWN_USERS[0], UNKNOWN_USER):
            status, answer = http_json(f"{self.app_url}/predict", {"user_id": user_id})
            say(f'POST /predict {{"user_id": {user_id}}} → {status} {compact(answer)}')
        status, answer = http_json(f"{self.app_url}/health")
        say(f"GET /health → {status} {compact(answer)}")

    def push(self) -> None:
        from churn.streaming import process_purchase_event

        # A customer at risk: the one whose churn probability is nearest 0.75
        candidates = list(range(1001, 1001 + min(self.users, 200)))
        vectors = self.server.online_features(candidates).to_df().dropna()
        x = vectors[self.server.feature_names].astype("float64")
        risk = self.server.model.predict_proba(x)[:, 1]
        user_id = int(vectors["user_id"].iloc[abs(risk - 0.75).argmin()])
        _, before = http_json(f"{self.app_url}/predict", {"user_id": user_id})
        say(f"user {user_id}: P(churn) {before['probability'][1]:.2f}, last purchase "
            f"{before['features']['days_since_last_purchase']:.0f} days ago")  # fmt: skip

        event = {"user_id": user_id, "amount": 64.90}
        pushed = process_purchase_event(self.store, event)
        say(f"process_purchase_event({event})")
        say(f"  → store.push('user_features_push', {compact(pushed)})")
        _, after = http_json(f"{self.app_url}/predict", {"user_id": user_id})
        say(f"POST /predict → P(churn) {after['probability'][1]:.2f} "
            f"(was {before['probability'][1]:.2f}), prediction {after['prediction']}")  # fmt: skip

    def monitor(self) -> None:
        from churn import FEATURE_SERVICE
        from churn.monitoring import serve_traffic, shift_features

        customers = list(range(1001, 1001 + self.users))
        lookups = serve_traffic(self.server, customers, seed=1)
        self.server.store.flush_feature_logs()
        say(f"normal traffic: {lookups} lookups of {len(customers)} customers by the model "
            f"server, logged to {REPO}/data/feature_logs/")  # fmt: skip
        changed_at = datetime.now(UTC).isoformat()
        shifted = shift_features(self.store, customers, seed=2)
        say(f"a price increase: {shifted} customers' baskets 50% bigger, purchases 20 days "
            "further apart (written online)")  # fmt: skip
        lookups = serve_traffic(self.server, customers, seed=3)
        self.server.store.flush_feature_logs()
        say(f"traffic after the change: {lookups} lookups, logged")
        report = Path("monitoring_report").resolve()
        command = ["monitor", "--service", FEATURE_SERVICE, "--reference-until", changed_at,
                   "--since", changed_at, "--report", str(report)]  # fmt: skip
        say(f"\n$ pitstop {' '.join(command[:3])} --reference-until T --since T --report "
            f"{report.name}")  # fmt: skip
        done = subprocess.run([PITSTOP, *command], cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "COLUMNS": "120"})  # fmt: skip
        say(done.stdout.strip())
        if done.returncode != 3:
            raise RuntimeError(f"pitstop monitor exited with {done.returncode}: {done.stderr}")
        kept = "" if self.keep else " (the report goes with the work folder; --workdir keeps it)"
        say(f"exit status 3: features beyond the drift thresholds{kept}")


# --- helpers ---------------------------------------------------------------------------------


def online_table(values: dict[str, list[Any]], statuses: dict[str, list[str]]) -> str:
    """Feature vectors as a table, one row per entity, with any status other than PRESENT."""
    import pandas as pd

    df = pd.DataFrame({name: pd.Series(column, dtype=object) for name, column in values.items()})
    df["status"] = [
        ", ".join(sorted({s[i] for s in statuses.values()} - {"PRESENT"})) or "PRESENT"
        for i in range(len(df))
    ]
    shown = df.map(lambda v: "-" if v is None else f"{v:.2f}" if isinstance(v, float) else v)
    return shown.to_string(index=False)


def feast_table(answer: Any) -> str:
    """Feast's response shape (``metadata.feature_names`` + ``results``) as a table."""
    try:
        names = answer["metadata"]["feature_names"]
        results = answer["results"]
        values = {name: r["values"] for name, r in zip(names, results, strict=True)}
        statuses = {name: r["statuses"] for name, r in zip(names, results, strict=True)}
    except (KeyError, TypeError, ValueError):
        return json.dumps(answer)[:2000]
    return online_table(values, statuses)


def compact(value: Any) -> str:
    """JSON with floats rounded and timestamps as text, for printing."""

    def rounded(v: Any) -> Any:
        if isinstance(v, float):
            return round(v, 3)
        if isinstance(v, dict):
            return {k: rounded(x) for k, x in v.items()}
        if isinstance(v, list):
            return [rounded(x) for x in v]
        return v.isoformat(timespec="seconds") if isinstance(v, datetime) else v

    return json.dumps(rounded(value))


def start_server(
    argv: list[str],
    *,
    cwd: Path,
    log: Path,
    cleanup: contextlib.ExitStack,
    env: dict[str, str] | None = None,
    timeout: float = 30,
) -> str:
    """Start a server on a free port (``{port}`` in ``argv``); return once ``/health`` answers.

    Returns its base URL. ``cleanup`` stops it; its output goes to the file ``log``.
    """
    port = free_port()
    output = cleanup.enter_context(log.open("w+"))
    proc = subprocess.Popen(
        [arg.replace("{port}", str(port)) for arg in argv],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    cleanup.callback(stop, proc)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output.seek(0)
            raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}:\n{output.read()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=1):
            return url
        time.sleep(0.05)
    raise RuntimeError(f"{' '.join(argv)} did not answer {url}/health within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server process: politely, then firmly."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_json(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """GET (no body) or POST ``body`` as JSON; the status and the decoded answer, errors too."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def check_requirements() -> None:
    missing = []
    for module, package in [
        ("pandas", "pandas"),
        ("sklearn", "scikit-learn"),
        ("joblib", "joblib"),
        ("fastapi", "fastapi"),
        ("uvicorn", "uvicorn"),
        ("jinja2", "jinja2"),
    ]:
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        sys.exit(f"The demo needs {', '.join(missing)}: pip install {' '.join(missing)}")


@contextlib.contextmanager
def timed(number: int, title: str, timings: list[tuple[str, float]]) -> Iterator[None]:
    print(f"\n\033[1m== {number}. {title}\033[0m", flush=True)
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - started
        timings.append((title, seconds))
        print(f"   ({seconds:.2f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="The pitstop churn demo.")
    parser.add_argument("--quick", action="store_true", help="fewer customers, for a fast run")
    parser.add_argument("--workdir", type=Path, help="work here, and keep the files afterwards")
    args = parser.parse_args()
    check_requirements()
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))  # the churn package, from any working directory
    if args.workdir:
        if args.workdir.exists() and any(args.workdir.iterdir()):
            sys.exit(f"{args.workdir} is not empty; choose a new folder")
        args.workdir.mkdir(parents=True, exist_ok=True)
        workdir = args.workdir.resolve()
    else:
        workdir = Path(tempfile.mkdtemp(prefix="pitstop-demo-"))

    print(f"pitstop churn demo, working in {workdir}")
    timings: list[tuple[str, float]] = []
    try:
        with contextlib.chdir(workdir), contextlib.ExitStack() as cleanup:
            demo = ChurnDemo(workdir, cleanup, users=300 if args.quick else 2000,
                             days=180 if args.quick else 365, keep=bool(args.workdir))  # fmt: skip
            for number, (title, step) in enumerate(demo.steps(), 1):
                with timed(number, title, timings):
                    step()
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    print("\nTimings")
    for number, (title, seconds) in enumerate(timings, 1):
        print(f"  {number:>2}. {title:<64} {seconds:6.2f} s")
    print(f"      {'total':<64} {sum(s for _, s in timings):6.2f} s")
    if args.workdir:
        print(f"\nThe files are in {workdir}")
        print(f"Web UI: {PITSTOP} -c {workdir / REPO} ui   → http://127.0.0.1:8888/")
    else:
        print(
            "\nWeb UI of the demo's repo: run the demo with --workdir DIR to keep it, then "
            "`pitstop -c DIR/feature_repo ui` → http://127.0.0.1:8888/"
        )


if __name__ == "__main__":
    main()
