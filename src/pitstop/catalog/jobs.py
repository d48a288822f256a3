"""What ``FeatureStore``'s jobs leave behind: an audit record of every materialization and
push (the outcome included), and OpenLineage run events when the ``lineage`` section of
``feature_store.yaml`` asks for them (:mod:`pitstop.catalog.runs`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pitstop.access import check_all, policy_of
from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.sources import PushMode, push_mode
from pitstop.errors import PermissionDeniedError

if TYPE_CHECKING:
    from pathlib import Path

    from pitstop.catalog import Catalog
    from pitstop.catalog.runs import Dataset, Emitter
    from pitstop.config import RepoConfig
    from pitstop.offline.job import RetrievalJob


class JobRecords:
    """Mixed into ``FeatureStore`` (through ``CatalogMethods``)."""

    _emitter: Emitter | None = None

    if TYPE_CHECKING:
        repo_path: Path
        config: RepoConfig

        @property
        def catalog(self) -> Catalog: ...

    @contextmanager
    def _audited(
        self, action: str, objects: Sequence[tuple[str, str]], detail: str, batched: bool
    ) -> Iterator[None]:
        """Record ``action`` in the audit trail when the block ends, with its outcome."""
        record = self.catalog.record
        try:
            yield
        except PermissionDeniedError as exc:
            record(action, objects, outcome="denied", detail=str(exc)[:500], batched=batched)
            raise
        except Exception as exc:
            record(action, objects, outcome="error", detail=str(exc)[:500], batched=batched)
            raise
        record(action, objects, detail=detail, batched=batched)

    @contextmanager
    def _materialize_run(self, view: FeatureView, start: datetime | None,
                         end: datetime) -> Iterator[None]:  # fmt: skip
        """Audit (and trace) the materialization of one view."""
        span = f"{start.isoformat() if start else 'the beginning'} .. {end.isoformat()}"
        with self._audited("materialize", [("feature_view", view.name)], span, False):
            check_all(self.catalog.snapshot(), "materialize", [view])
            with self._lineage_materialize(view):
                yield

    @contextmanager
    def _push_run(self, source: str, to: PushMode | str) -> Iterator[None]:
        """Audit (and trace) one push."""
        mode = push_mode(to).name.lower() if isinstance(to, PushMode | str) else str(to)
        with self._audited("push", [("data_source", source)], f"to {mode}", True):
            snapshot = self.catalog.snapshot()
            if policy_of(snapshot).enabled:
                from pitstop.engine.push import push_views

                fed = push_views(snapshot, source)
                for part in ("online", "offline"):
                    if part in mode:
                        check_all(snapshot, f"write_{part}", fed)
            with self._lineage_push(source, mode):
                yield

    def _may_write_online(self, view: FeatureView) -> None:
        """``write_online`` on ``view`` (``write_to_online_store``)."""
        check_all(self.catalog.snapshot(), "write_online", [view])

    def _run(
        self, job: str, inputs: Sequence[Dataset], outputs: Sequence[Dataset]
    ) -> AbstractContextManager[None]:
        """A block whose START and COMPLETE/FAIL OpenLineage events are sent, when the
        ``lineage`` section of feature_store.yaml asks for them."""
        settings = self.config.lineage
        if settings is None:
            return nullcontext()
        if self._emitter is None:
            from pitstop.catalog.runs import Emitter, transport_config

            transport = transport_config(settings.transport, self.repo_path)
            self._emitter = Emitter(settings.namespace or self.config.project, transport)
        return self._emitter.run(job, inputs, outputs)

    def _lineage_materialize(self, view: FeatureView) -> AbstractContextManager[None]:
        from pitstop.catalog.runs import Dataset

        if self.config.lineage is None:
            return nullcontext()
        return self._run(f"materialize.{view.name}", [Dataset("data_source", view.source.name)],
                         [Dataset("online_store", view.name)])  # fmt: skip

    def _lineage_push(self, source: str, mode: str) -> AbstractContextManager[None]:
        if self.config.lineage is None:
            return nullcontext()
        from pitstop.catalog.runs import Dataset
        from pitstop.engine.push import push_views

        views = push_views(self.catalog.snapshot(), source)
        outputs = [Dataset("online_store", v.name) for v in views if "online" in mode]
        if "offline" in mode:
            outputs.append(Dataset("data_source", source))
        return self._run(f"push.{source}", [Dataset("data_source", source)], outputs)

    def _traced(self, job: RetrievalJob) -> RetrievalJob:
        """``job``, sending run events when it runs (when the rows are asked for)."""
        from pitstop.engine.historical import RetrievalMetadata

        meta = job.metadata
        if self.config.lineage is None or not isinstance(meta, RetrievalMetadata):
            return job
        from pitstop.catalog.runs import Dataset
        from pitstop.offline.job import RetrievalJob

        views = list(dict.fromkeys(ref.split(":", 1)[0] for ref in meta.features))
        name = meta.feature_service or "+".join(views)
        inputs = [Dataset("feature_view", v) for v in views]
        outputs = [Dataset("training_set", name)]

        def open_reader() -> Any:
            with self._run(f"get_historical_features.{name}", inputs, outputs):
                return job.to_batches()

        traced = RetrievalJob(open_reader, job.to_sql)
        traced.metadata = meta
        return traced
