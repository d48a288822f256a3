"""``FeatureStore``: the thin facade users and adapters (CLI, server) call.

It holds the configuration and the registry and delegates every piece of work to a service
(``pitstop.registry``, ``pitstop.engine``, the offline and online backends).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop.catalog.sdk import CatalogMethods
from pitstop.definitions.base import Definition
from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.service import FeatureService
from pitstop.definitions.sources import PushMode
from pitstop.errors import DefinitionError
from pitstop.quality.sdk import QualityMethods

if TYPE_CHECKING:
    from datetime import datetime

    from pitstop.config import RepoConfig
    from pitstop.engine.materialize import MaterializeResult
    from pitstop.engine.online import OnlineResponse, OnlineRetriever
    from pitstop.offline.base import OfflineEngine
    from pitstop.offline.job import RetrievalJob
    from pitstop.online.base import OnlineStore
    from pitstop.quality.feature_log import FeatureLogWriter
    from pitstop.registry import Change, Registry


class FeatureStore(CatalogMethods, QualityMethods):
    """A feature repo's store: registry, offline engine, online store.

    >>> store = FeatureStore(repo_path="feature_repo")            # doctest: +SKIP
    >>> store.apply([user, user_features])                        # doctest: +SKIP
    >>> store.list_feature_views()                                # doctest: +SKIP
    """

    def __init__(
        self,
        repo_path: str | Path | None = None,
        config: RepoConfig | None = None,
        fs_yaml_file: str | Path | None = None,
    ) -> None:
        from pitstop.config import load_config

        if config is None:
            config = load_config(repo_path, fs_yaml_file)
        self.config = config
        self.repo_path = Path(config.repo_path)
        self._registry: Registry | None = None
        self._offline: OfflineEngine | None = None
        self._online: OnlineStore | None = None
        self._retriever: OnlineRetriever | None = None
        self._feature_logs: FeatureLogWriter | None = None

    @property
    def project(self) -> str:
        return self.config.project

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from pitstop.registry import Registry

            reg = self.config.registry
            self._registry = Registry(reg.url(self.repo_path), self.project, reg.cache_ttl_seconds)
        return self._registry

    @property
    def offline(self) -> OfflineEngine:
        """The offline engine (``offline_store``) that builds training sets and feeds
        materialization."""
        if self._offline is None:
            self._offline = self.config.offline_store.open(self.repo_path)
        return self._offline

    # --- training sets -----------------------------------------------------------------------

    def get_historical_features(
        self,
        entity_df: Any = None,
        features: Sequence[str] | FeatureService | None = None,
        full_feature_names: bool = False,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        """Point-in-time correct features for every row of ``entity_df`` (lazily).

        >>> job = store.get_historical_features(entity_df, ["user_features:total_purchases"])
        ... # doctest: +SKIP
        >>> training_df = job.to_df()                                  # doctest: +SKIP
        """
        from pitstop.engine.historical import historical_features

        if features is None:
            raise DefinitionError("get_historical_features needs features=[...] or a service")
        return self._traced(historical_features(
            self.registry.snapshot(),
            self.offline,
            self.repo_path,
            entity_df,
            features,
            full_feature_names=full_feature_names,
            start_date=start_date,
            end_date=end_date,
            filter_by_created_timestamp=filter_by_created_timestamp,
        ))  # fmt: skip

    # --- serving ------------------------------------------------------------------------------

    @property
    def online(self) -> OnlineStore:
        """The online store (``online_store``) serving the latest feature values."""
        if self._online is None:
            self._online = self.config.online_store.open(self.project, self.repo_path)
        return self._online

    def get_online_features(
        self,
        features: Sequence[str] | FeatureService,
        entity_rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
        full_feature_names: bool = False,
    ) -> OnlineResponse:
        """The latest values for ``entity_rows``, with a status and event time per value.

        >>> store.get_online_features(["user_features:total_purchases"],
        ...                           [{"user_id": 1001}]).to_dict()   # doctest: +SKIP
        {'user_id': [1001], 'total_purchases': [45]}
        """
        if self._retriever is None:
            from pitstop.engine.online import OnlineRetriever

            enforce = self.config.online_store.enforce_ttl
            self._retriever = OnlineRetriever(self.registry, self.online, enforce)
        response = self._retriever.get_online_features(features, entity_rows, full_feature_names)
        if isinstance(features, FeatureService) and features.logging_config is not None:
            logs = self._feature_logs or self.feature_logs
            logs.log(features, entity_rows, response, full_feature_names)
        return response

    @property
    def feature_logs(self) -> FeatureLogWriter:
        """Writes the vectors served for services with a ``logging_config``, sampled, in the
        background (``pitstop.quality.feature_log``)."""
        if self._feature_logs is None:
            from pitstop.quality.feature_log import FeatureLogWriter

            settings = self.config.monitoring.logging
            self._feature_logs = FeatureLogWriter(self.repo_path, settings,
                                                  lambda: self.registry.snapshot())  # fmt: skip
        return self._feature_logs

    def flush_feature_logs(self) -> None:
        """Write the logged feature vectors still queued, now."""
        if self._feature_logs is not None:
            self._feature_logs.flush()

    def materialize(
        self,
        start_date: datetime | str | None,
        end_date: datetime | str,
        feature_views: Sequence[str] | None = None,
        *,
        progress: bool = False,
    ) -> list[MaterializeResult]:
        """Load each view's latest rows in ``[start_date, end_date]`` into the online store."""
        from pitstop.engine.materialize import utc

        start = utc(start_date, "materialize start_date") if start_date is not None else None
        end = utc(end_date, "materialize end_date")
        return self._materialize(lambda view: start, end, feature_views, progress)

    def materialize_incremental(
        self,
        end_date: datetime | str,
        feature_views: Sequence[str] | None = None,
        *,
        progress: bool = False,
    ) -> list[MaterializeResult]:
        """Continue each view from its last materialization (or one TTL back) to ``end_date``."""
        from pitstop.engine.materialize import incremental_start, utc

        end = utc(end_date, "materialize_incremental end_date")
        meta = self.registry.store
        return self._materialize(lambda v: incremental_start(meta, v, end), end, feature_views,
                                 progress)  # fmt: skip

    def _materialize(
        self,
        start_of: Callable[[FeatureView], datetime | None],
        end: datetime,
        names: Sequence[str] | None,
        progress: bool,
    ) -> list[MaterializeResult]:
        from pitstop.engine.materialize import Progress, materialize_view, online_views
        from pitstop.quality.view_freshness import record_materialization

        snap = self.registry.snapshot(fresh=True)
        views = online_views([*snap.feature_views.values(), *snap.stream_feature_views.values()],
                             names)  # fmt: skip
        results = []
        with Progress(enabled=progress) as bar:
            for view in views:
                start = start_of(view)
                with self._materialize_run(view, start, end):
                    self._check_materialize(view, start, end)
                    done = materialize_view(view, start, end, offline=self.offline,
                                            online=self.online, meta=self.registry.store,
                                            repo_path=self.repo_path, progress=bar)  # fmt: skip
                record_materialization(self.registry.store, done)
                results.append(done)
        return results

    def write_to_online_store(
        self, feature_view_name: str, df: Any, allow_registry_cache: bool = True
    ) -> int:
        """Write rows of ``df`` to one view's online table (event-time ordered)."""
        from pitstop.engine.push import write_online

        snap = self.registry.snapshot(fresh=not allow_registry_cache)
        view = snap.view(feature_view_name)
        if not isinstance(view, FeatureView):
            raise DefinitionError(f"{feature_view_name!r} is not a batch or stream feature view")
        self._may_write_online(view)
        return write_online(snap, self.online, [view], df, f"write_to_online_store({view.name!r})",
                            policy=self.config.expectations.policy)  # fmt: skip

    def push(
        self,
        push_source_name: str,
        df: Any,
        allow_registry_cache: bool = True,
        to: PushMode | str = PushMode.ONLINE,
        *,
        allow_missing_columns: bool = False,
    ) -> int:
        """Send rows to every view fed by a push source: online, offline or both.

        ``to`` is a :class:`PushMode` or its name (``"online_and_offline"``). An offline push
        carries every column of the source's offline data; ``allow_missing_columns=True``
        writes the missing ones as nulls: ``store.push("clicks_push", df, to="offline")``.
        """
        from pitstop.engine.push import push

        snap = self.registry.snapshot(fresh=not allow_registry_cache)
        with self._push_run(push_source_name, to):
            return push(snap, self.online, self.offline, self.repo_path, push_source_name, df, to,
                        allow_missing_columns=allow_missing_columns,
                        policy=self.config.expectations.policy)  # fmt: skip

    def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 6566,
        workers: int = 1,
        registry_ttl_sec: float | None = None,
        *,
        access_log: bool = False,
        ui: bool = False,
    ) -> None:
        """Run the HTTP feature server until SIGTERM/Ctrl-C (``pip install 'pitstop[server]'``);
        ``ui``: with the web UI under ``/ui``."""
        from pitstop.server import serve

        serve(self, host, port, workers, registry_ttl_sec, access_log=access_log, ui=ui)

    # --- definitions -------------------------------------------------------------------------

    def plan(
        self,
        objects: Iterable[Definition],
        *,
        prune: bool = True,
        skip_source_validation: bool = False,
    ) -> list[Change]:
        """What :meth:`apply` would change, without writing anything.

        File sources are checked as in :meth:`apply` unless ``skip_source_validation``.
        """
        check = None if skip_source_validation else self._check_sources
        return self.catalog.plan(_flatten(objects), prune=prune, check=check)

    def apply(
        self,
        objects: Definition | Iterable[Definition],
        objects_to_delete: Iterable[Definition] | None = None,
        partial: bool = True,
        *,
        author: str | None = None,
        skip_source_validation: bool = False,
        stage: bool = False,
    ) -> list[Change]:
        """Register definitions (one transaction); changed ones get a new version.

        With ``partial=False`` everything not in ``objects`` is removed (a whole-repo apply).
        The schemas of the views' file sources are read first (not their rows), and every
        missing file, column or unfit type is reported in one ``DataSourceError``;
        ``skip_source_validation=True`` skips that, e.g. for data not reachable from here.
        ``stage=True`` records the new versions without serving them (nothing is removed and
        online tables are left as they are): pinned references (``"view@v3:feature"``) read
        them, and :meth:`promote` serves them.
        """
        if isinstance(objects, Definition):
            objects = [objects]
        from pitstop.registry.plan import online_tables

        objs, deletes, prune = _flatten(objects), list(objects_to_delete or ()), not partial
        check = None if skip_source_validation else self._check_sources
        if stage:
            return self.catalog.apply(objs, deletes, prune=prune, author=author, check=check,
                                      stage=True)  # fmt: skip
        # check first, and create the tables the changes need: a bad repo or a failing online
        # store leaves the registry untouched
        early, _ = online_tables(self.catalog.plan(objs, deletes, prune=prune, check=check,
                                                   gate=True))  # fmt: skip
        if early:
            self.online.update(early, [])
        changes = self.catalog.apply(objs, deletes, prune=prune, author=author)
        keep, drop = online_tables(changes)  # what was committed, maybe after another apply
        late = [name for name in keep if name not in early]
        if late or drop:
            self.online.update(late, drop)
        return changes

    def _check_sources(self, objects: Sequence[Definition]) -> None:
        from pitstop.engine.sources import check_sources

        check_sources(objects, self.repo_path, self.offline)

    def teardown(self) -> None:
        """Remove this project's registry objects and online tables."""
        snap = self.registry.snapshot(fresh=True)
        views = [*snap.feature_views, *snap.stream_feature_views]
        self.online.teardown(views)
        self.catalog.teardown()

    def refresh_registry(self) -> None:
        """Re-read the registry now instead of waiting for the cache TTL."""
        self.registry.refresh()

    def close(self) -> None:
        if self._feature_logs is not None:
            self._feature_logs.close()
        if self._online is not None:
            self._online.close()
            self._online = None
            self._retriever = None
        if self._offline is not None:
            self._offline.close()
            self._offline = None
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FeatureStore(project={self.project!r}, repo_path={str(self.repo_path)!r})"


def _flatten(objects: Iterable[Any]) -> Sequence[Definition]:
    """Objects plus the sources they embed, so sources are registered (and listed) too."""
    from pitstop.repo import RepoContents, collect

    contents = RepoContents()
    for obj in objects:
        if not isinstance(obj, Definition):
            raise DefinitionError(f"apply() takes pitstop definitions, got {obj!r}")
        collect(contents, obj, "apply()")
    return list(contents.all())
