"""The data quality methods of :class:`~pitstop.FeatureStore`: validate a view's rows, check a
materialization before it writes, read and reproduce saved datasets."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.sources import DataSource
from pitstop.errors import DefinitionError

if TYPE_CHECKING:
    from pitstop.catalog import Catalog
    from pitstop.config import RepoConfig
    from pitstop.offline.base import OfflineEngine
    from pitstop.quality.datasets import Reproduction, StoredDataset
    from pitstop.quality.report import ValidationReport
    from pitstop.registry import Registry


class QualityMethods:
    """Mixed into ``FeatureStore``."""

    if TYPE_CHECKING:
        repo_path: Path
        config: RepoConfig

        @property
        def registry(self) -> Registry: ...

        @property
        def offline(self) -> OfflineEngine: ...

        @property
        def catalog(self) -> Catalog: ...

    def validate(
        self,
        view: FeatureView | str,
        data: Any = None,
        *,
        now: datetime | None = None,
        samples: int = 5,
    ) -> ValidationReport:
        """Check rows against a view's expectations and report every rule's outcome.

        ``data`` is a DataFrame, an Arrow table or a dict of columns; a data source (the rows
        it holds, read by the offline engine); or ``None``: the view's own source. The bad
        rows shown are identified by the view's join keys.

        >>> report = store.validate("user_features", df)            # doctest: +SKIP
        >>> report.success, report.save_html("user_features.html")   # doctest: +SKIP
        """
        from pitstop.quality.validation import check, validate

        if isinstance(view, str):
            found = self.registry.snapshot().view(view)
            if not isinstance(found, FeatureView):
                raise DefinitionError(f"{view!r} is an on-demand view: its rows are computed, "
                                      "not stored; validate the views it reads")  # fmt: skip
            view = found
        if data is not None and not isinstance(data, DataSource):
            return validate(data, view, now=now, samples=samples)
        rows = self._source_rows(view, data)
        return check(rows, view.expectations, target=f"feature view {view.name!r}",
                     keys=view.join_keys, now=now, timestamp_field=view.timestamp_field,
                     samples=samples)  # fmt: skip

    def _source_rows(self, view: FeatureView, source: DataSource | None) -> Any:
        """A function opening the rows of ``source`` (default: the view's) as the view reads
        them: join keys, event time, features."""
        from dataclasses import replace

        from pitstop.definitions.sources import FileSource, PushSource
        from pitstop.engine.historical import check_capabilities, source_ref, view_join

        join = view_join(view, self.repo_path)
        if source is not None:
            batch = source.batch_source if isinstance(source, PushSource) else source
            if not isinstance(batch, FileSource):
                raise DefinitionError(
                    f"{source!r} holds no rows to validate; pass a FileSource, a PushSource "
                    "or the rows themselves"
                )
            ref = replace(source_ref(batch, self.repo_path), timestamp_field=view.timestamp_field)
            join = replace(join, source=ref)
        check_capabilities(self.offline, [join.source])
        offline = self.offline
        return lambda: offline.range(join, None, None).to_batches()

    def _check_materialize(self, view: FeatureView, start: datetime | None,
                           end: datetime) -> None:  # fmt: skip
        """Stop a materialization whose rows break ``view``'s expectations (policy reject)."""
        if view.expectations:
            from pitstop.quality.enforce import check_materialize

            check_materialize(view, start, end, offline=self.offline, repo_path=self.repo_path,
                              default_policy=self.config.expectations.policy)  # fmt: skip

    # --- saved datasets ---------------------------------------------------------------------

    def get_saved_dataset(self, name: str) -> StoredDataset:
        """A saved dataset with its rows: ``store.get_saved_dataset("churn_train").to_df()``."""
        from pitstop.definitions.datasets import SavedDataset
        from pitstop.quality.datasets import StoredDataset

        return StoredDataset(self.catalog.get(SavedDataset, name, fresh=True), self.repo_path)

    def reproduce_saved_dataset(self, name: str, output: str | Path | None = None) -> Reproduction:
        """Rebuild a saved dataset from its recipe (every object at its recorded registry
        version, the kept entity frame) and compare content hashes.

        >>> store.reproduce_saved_dataset("churn_train").identical     # doctest: +SKIP
        True
        """
        from pitstop.quality.datasets import reproduce

        return reproduce(self, name, output)  # type: ignore[arg-type]
