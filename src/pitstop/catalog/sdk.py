"""The discovery and versioning methods of :class:`~pitstop.FeatureStore`, answered by its
:class:`~pitstop.catalog.Catalog`: Feast's ``list_*``/``get_*`` plus history, diff and
rollback."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pitstop.definitions.base import Definition
from pitstop.definitions.entity import Entity
from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.on_demand import OnDemandFeatureView
from pitstop.definitions.service import FeatureService
from pitstop.definitions.sources import DataSource
from pitstop.definitions.stream import StreamFeatureView

if TYPE_CHECKING:
    from pitstop.catalog import Catalog, SearchHit
    from pitstop.registry import Registry
    from pitstop.registry.store import SpecChange, VersionRecord

Tags = Mapping[str, str] | None


class CatalogMethods:
    """Mixed into ``FeatureStore``; every method asks :attr:`catalog`."""

    _catalog: Catalog | None = None

    if TYPE_CHECKING:

        @property
        def registry(self) -> Registry: ...

    @property
    def catalog(self) -> Catalog:
        """The service behind listing, describing, searching and versioning objects."""
        from pitstop.catalog import Catalog

        registry = self.registry
        if self._catalog is None or self._catalog.registry is not registry:
            self._catalog = Catalog(registry)
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
