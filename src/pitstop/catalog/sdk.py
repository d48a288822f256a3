"""The discovery and versioning methods of :class:`~pitstop.FeatureStore`, answered by its
:class:`~pitstop.catalog.Catalog`: Feast's ``list_*``/``get_*`` plus history, diff, rollback
and promote."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pitstop.catalog.jobs import JobRecords
from pitstop.definitions.base import Definition
from pitstop.definitions.datasets import Model, SavedDataset, SavedDatasetFileStorage
from pitstop.definitions.entity import Entity
from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.on_demand import OnDemandFeatureView
from pitstop.definitions.service import FeatureService
from pitstop.definitions.sources import DataSource
from pitstop.definitions.stream import StreamFeatureView
from pitstop.errors import DefinitionError

if TYPE_CHECKING:
    from pathlib import Path

    from pitstop.catalog import Catalog, LineageGraph, SearchHit
    from pitstop.config import RepoConfig
    from pitstop.offline.job import RetrievalJob
    from pitstop.online.base import OnlineStore
    from pitstop.registry import Registry
    from pitstop.registry.store import SpecChange, VersionRecord

Tags = Mapping[str, str] | None


class CatalogMethods(JobRecords):
    """Mixed into ``FeatureStore``; every method asks :attr:`catalog`."""

    _catalog: Catalog | None = None

    if TYPE_CHECKING:
        repo_path: Path
        config: RepoConfig

        @property
        def registry(self) -> Registry: ...

        @property
        def online(self) -> OnlineStore: ...

    @property
    def catalog(self) -> Catalog:
        """The service behind listing, describing, searching and versioning objects."""
        from pitstop.catalog import Catalog

        registry = self.registry
        if self._catalog is None or self._catalog.registry is not registry:
            self._catalog = Catalog(registry, read_sample_rate=self.config.audit.read_sample_rate)
        return self._catalog

    # --- Feast's listings and getters --------------------------------------------------------

    def list_entities(self, allow_cache: bool = True, tags: Tags = None) -> list[Entity]:
        return self.catalog.list(Entity, tags=tags, fresh=not allow_cache)

    def list_data_sources(self, allow_cache: bool = True, tags: Tags = None) -> list[DataSource]:
        return self.catalog.list(DataSource, tags=tags, fresh=not allow_cache)

    def list_feature_views(self, allow_cache: bool = True, tags: Tags = None) -> list[FeatureView]:
        return self.catalog.list(FeatureView, tags=tags, fresh=not allow_cache)

    def list_stream_feature_views(
        self, allow_cache: bool = True, tags: Tags = None
    ) -> list[StreamFeatureView]:
        return self.catalog.list(StreamFeatureView, tags=tags, fresh=not allow_cache)

    def list_on_demand_feature_views(
        self, allow_cache: bool = True, tags: Tags = None
    ) -> list[OnDemandFeatureView]:
        return self.catalog.list(OnDemandFeatureView, tags=tags, fresh=not allow_cache)

    def list_feature_services(
        self, allow_cache: bool = True, tags: Tags = None
    ) -> list[FeatureService]:
        return self.catalog.list(FeatureService, tags=tags, fresh=not allow_cache)

    def get_entity(self, name: str) -> Entity:
        return self.catalog.get(Entity, name)

    def get_data_source(self, name: str) -> DataSource:
        return self.catalog.get(DataSource, name)

    def get_feature_view(self, name: str) -> FeatureView:
        return self.catalog.get(FeatureView, name)

    def get_stream_feature_view(self, name: str) -> StreamFeatureView:
        return self.catalog.get(StreamFeatureView, name)

    def get_on_demand_feature_view(self, name: str) -> OnDemandFeatureView:
        return self.catalog.get(OnDemandFeatureView, name)

    def get_feature_service(self, name: str) -> FeatureService:
        return self.catalog.get(FeatureService, name)

    # --- search ------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        kind: type[Definition] | Sequence[type[Definition]] | None = None,
        *,
        tags: Tags = None,
        owner: str | None = None,
        limit: int = 20,
    ) -> list[SearchHit]:
        """Objects and features whose names, feature names, descriptions, tags, owners or
        dtypes match ``query``; exact names first, then prefixes, words, and typos.
        ``kind=Field`` returns features only.

        >>> [h.ref for h in store.search("purchase", kind=Field)]    # doctest: +SKIP
        ['user_features:total_purchases', 'user_features:avg_purchase_amount']
        """
        kinds = [] if kind is None else [kind] if isinstance(kind, type) else list(kind)
        return self.catalog.search(query, kinds=kinds, tags=tags, owner=owner, limit=limit)

    # --- lineage ------------------------------------------------------------------------------

    def lineage(
        self,
        name: str,
        kind: type[Definition] | None = None,
        *,
        direction: str = "both",
        version: int | None = None,
    ) -> LineageGraph:
        """Which objects ``name`` is built from and which are built from it (``direction``
        ``"upstream"``, ``"downstream"`` or ``"both"``), at registry ``version`` (None: now).

        >>> store.lineage("churn_model_v1").upstream()               # doctest: +SKIP
        [Node(kind='feature_view', name='user_features'), ...]
        """
        return self.catalog.lineage(name, kind, direction=direction, version=version, fresh=True)

    def create_saved_dataset(
        self,
        from_: RetrievalJob,
        name: str,
        storage: SavedDatasetFileStorage,
        tags: Tags = None,
        *,
        description: str = "",
        owner: str = "",
        allow_overwrite: bool = False,
    ) -> SavedDataset:
        """Write a historical retrieval's rows to ``storage`` and register them as a saved
        dataset (a training set), with the features and service they came from and the recipe
        that rebuilds it (:mod:`pitstop.quality.datasets`: the entity frame and a profile are
        kept beside the rows; ``pitstop datasets reproduce NAME`` proves a rebuild equal).

        >>> job = store.get_historical_features(entity_df, service)    # doctest: +SKIP
        >>> store.create_saved_dataset(from_=job, name="churn_train",  # doctest: +SKIP
        ...     storage=SavedDatasetFileStorage(path="data/churn_train.parquet"))
        """
        from pitstop.engine.historical import RetrievalMetadata

        meta = getattr(from_, "metadata", None)
        if not isinstance(meta, RetrievalMetadata):
            raise DefinitionError(
                f"saved dataset {name!r}: from_ must be the job store.get_historical_features "
                "returned (it knows which features it holds)"
            )
        dataset = SavedDataset(name=name, features=meta.features, join_keys=meta.join_keys,
                               storage=storage, full_feature_names=meta.full_feature_names,
                               feature_service=meta.feature_service, description=description,
                               tags=tags, owner=owner)  # fmt: skip
        if not allow_overwrite and name in self.catalog.snapshot(fresh=True).of(SavedDataset):
            raise DefinitionError(
                f"saved dataset {name!r} is already registered; choose another name or pass "
                "allow_overwrite=True"
            )
        path = self.repo_path / storage.path
        path.parent.mkdir(parents=True, exist_ok=True)
        from_.to_parquet(path)
        from pitstop.quality.datasets import record

        dataset = record(self, meta, dataset, path)  # type: ignore[arg-type]
        self.catalog.apply([dataset])
        return dataset

    def register_model(
        self,
        name: str,
        feature_service: FeatureService | str,
        *,
        training_datasets: Sequence[SavedDataset | str] = (),
        uri: str = "",
        description: str = "",
        owner: str = "",
        tags: Tags = None,
        author: str | None = None,
    ) -> Model:
        """Register a model and what it reads: the feature service it is served with and the
        saved datasets it was trained on (a new version when any of it changed).

        >>> store.register_model("churn_xgb", "churn_model_v1",      # doctest: +SKIP
        ...                      training_datasets=["churn_train"], uri="s3://models/churn/3")
        """
        service = feature_service if isinstance(feature_service, str) else feature_service.name
        model = Model(name=name, feature_service=service,
                      training_datasets=[d if isinstance(d, str) else d.name
                                         for d in training_datasets],
                      uri=uri, description=description, owner=owner, tags=tags)  # fmt: skip
        self.catalog.apply([model], author=author)
        return model

    # --- versions ----------------------------------------------------------------------------

    def history(self, name: str, kind: type[Definition] | None = None) -> list[VersionRecord]:
        """Every version of an object, oldest first.

        >>> [r.version for r in store.history("user_features")]     # doctest: +SKIP
        [1, 2]
        """
        return self.catalog.history(name, kind)

    def diff(
        self, name: str, v1: int, v2: int, kind: type[Definition] | None = None
    ) -> list[SpecChange]:
        """What changed in an object's spec between two versions.

        >>> [(c.path, c.old, c.new) for c in store.diff("user_features", 1, 2)]  # doctest: +SKIP
        [('ttl_seconds', 86400.0, 172800.0)]
        """
        return self.catalog.diff(name, v1, v2, kind)

    def rollback(
        self,
        name: str,
        version: int,
        kind: type[Definition] | None = None,
        *,
        author: str | None = None,
    ) -> VersionRecord:
        """Make an earlier version current again, as a new version.

        >>> store.rollback("user_features", 1).version                # doctest: +SKIP
        3
        """
        return self.catalog.rollback(name, version, kind, author=author)

    def promote(
        self,
        name: str,
        version: int,
        kind: type[Definition] | None = None,
        *,
        author: str | None = None,
    ) -> VersionRecord:
        """Serve ``version`` of an object from now on: a staged version, or an earlier one
        again (no version is written; rollback writes one). The view's online table is
        created (or dropped) as the promoted version is online (or not).

        >>> store.apply([user_features], stage=True)   # v3 staged     # doctest: +SKIP
        >>> store.promote("user_features", 3).version                  # doctest: +SKIP
        3
        """
        from pitstop.registry.plan import Change, online_tables

        done = self.catalog.promote(name, version, kind, author=author)
        rec, old = done.record, done.previous
        keep, drop = online_tables([Change(rec.kind, rec.name, "update", rec.spec,
                                           old.spec if old else None)])  # fmt: skip
        if done.changed and (keep or drop):
            self.online.update(keep, drop)
        return rec
