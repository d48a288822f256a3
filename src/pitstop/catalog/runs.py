"""OpenLineage run events for materialization, historical retrieval and push jobs.

With a ``lineage`` section in ``feature_store.yaml`` (``pip install 'pitstop[openlineage]'``),
each such job sends a ``START`` and then a ``COMPLETE`` (or ``FAIL``) run event through the
``openlineage-python`` client, whose transport the section configures::

    lineage:
      namespace: churn_prediction          # the jobs' and datasets' namespace (default: project)
      transport:                           # handed to the client as is: console, file or http
        type: file
        log_file_path: data/lineage.jsonl  # relative paths: to the repo
        append: true

Jobs are named ``materialize.<view>``, ``get_historical_features.<service or views>`` and
``push.<push source>``; their inputs and outputs are datasets named ``<kind>.<name>``
(``data_source.users_source``, ``feature_view.users``, ``online_store.users``). Without the
section nothing is sent and nothing is imported. A transport that fails is logged, never
raised: lineage must not stop a job.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pitstop.errors import ConfigError, require

logger = logging.getLogger("pitstop.lineage")
PRODUCER = "https://github.com/pitstop-feature-store/pitstop"
TRANSPORTS = ("console", "file", "http")


@dataclass(frozen=True)
class Dataset:
    """An input or output of a run: ``<kind>.<name>`` in the emitter's namespace."""

    kind: str
    name: str

    @property
    def qualified(self) -> str:
        return f"{self.kind}.{self.name}"


def transport_config(config: dict[str, Any], repo_path: Path) -> dict[str, Any]:
    """The client's transport settings: a known type, relative file paths under the repo."""
    where = "feature_store.yaml: openlineage.transport"
    kind = config.get("type")
    if kind not in TRANSPORTS:
        raise ConfigError(f"{where}.type must be one of {', '.join(TRANSPORTS)}, not {kind!r}")
    out = dict(config)
    if kind == "file":
        path = out.get("log_file_path")
        if not isinstance(path, str) or not path:
            raise ConfigError(f"{where}.log_file_path: name the file events are written to")
        out["log_file_path"] = str((repo_path / Path(path).expanduser()).resolve())
    if kind == "http" and not isinstance(out.get("url"), str):
        raise ConfigError(f"{where}.url: give the lineage server's URL, e.g. http://marquez:5000")
    return out


class Emitter:
    """Sends the run events of one store's jobs."""

    def __init__(self, namespace: str, transport: dict[str, Any]) -> None:
        client_module: Any = require("openlineage.client", "openlineage")
        self.namespace = namespace
        self._client = client_module.OpenLineageClient(config={"transport": transport})
        self._events: Any = require("openlineage.client.event_v2", "openlineage")

    @contextmanager
    def run(
        self, job: str, inputs: Sequence[Dataset], outputs: Sequence[Dataset]
    ) -> Iterator[None]:
        """Emit START, then COMPLETE when the block ends, or FAIL when it raises."""
        run_id = str(uuid.uuid4())
        self._emit("START", run_id, job, inputs, outputs)
        try:
            yield
        except BaseException:
            self._emit("FAIL", run_id, job, inputs, outputs)
            raise
        self._emit("COMPLETE", run_id, job, inputs, outputs)

    def event(
        self, state: str, run_id: str, job: str, inputs: Sequence[Dataset],
        outputs: Sequence[Dataset],
    ) -> Any:  # fmt: skip
        """The run event (the client's own model, which checks it on construction)."""
        ev = self._events
        return ev.RunEvent(
            eventType=ev.RunState[state],
            eventTime=datetime.now(UTC).isoformat(),
            run=ev.Run(runId=run_id),
            job=ev.Job(namespace=self.namespace, name=job),
            inputs=[ev.InputDataset(namespace=self.namespace, name=d.qualified) for d in inputs],
            outputs=[ev.OutputDataset(namespace=self.namespace, name=d.qualified) for d in outputs],
            producer=PRODUCER,
        )

    def _emit(self, state: str, run_id: str, job: str, inputs: Sequence[Dataset],
              outputs: Sequence[Dataset]) -> None:  # fmt: skip
        try:
            self._client.emit(self.event(state, run_id, job, inputs, outputs))
        except Exception as exc:  # a lineage server that is down must not fail the job
            logger.warning("OpenLineage event %s of %s not sent: %s", state, job, exc)
