"""``FeatureStore``: the thin facade users and adapters (CLI, server) call.

It holds the configuration and the registry and delegates every piece of work to a service
(``pitstop.registry``, ``pitstop.engine``, the offline and online backends).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop.definitions.base import Definition
from pitstop.definitions.entity import Entity
from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.on_demand import OnDemandFeatureView
from pitstop.definitions.service import FeatureService
from pitstop.definitions.sources import DataSource
from pitstop.definitions.stream import StreamFeatureView
from pitstop.errors import DefinitionError

if TYPE_CHECKING:
    from pitstop.config import RepoConfig
    from pitstop.registry import Change, Registry


class FeatureStore:
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

    # --- definitions -------------------------------------------------------------------------

    def plan(self, objects: Iterable[Definition], *, prune: bool = True) -> list[Change]:
        """What :meth:`apply` would change, without writing anything."""
        changes, _ = self.registry.plan(_flatten(objects), prune=prune)
        return changes

    def apply(
        self,
        objects: Definition | Iterable[Definition],
        objects_to_delete: Iterable[Definition] | None = None,
        partial: bool = True,
        *,
        author: str | None = None,
    ) -> list[Change]:
        """Register definitions (one transaction); changed ones get a new version.

        With ``partial=False`` everything not in ``objects`` is removed (a whole-repo apply).
        """
        if isinstance(objects, Definition):
            objects = [objects]
        return self.registry.apply(
            _flatten(objects), objects_to_delete or (), prune=not partial, author=author
        )

    def teardown(self) -> None:
        """Remove this project's registry objects (and, with online stores, their tables)."""
        self.registry.store.teardown()
        self.registry.refresh()

    def refresh_registry(self) -> None:
        """Re-read the registry now instead of waiting for the cache TTL."""
        self.registry.refresh()

    # --- discovery ---------------------------------------------------------------------------

    def _list(self, kind: str, tags: Mapping[str, str] | None, allow_cache: bool) -> list[Any]:
        snap = self.registry.snapshot(fresh=not allow_cache)
        items: list[Any] = sorted(snap.of(kind).values(), key=lambda o: o.name)
        if tags:
            items = [o for o in items if all(o.tags.get(k) == v for k, v in tags.items())]
        return items

    def list_entities(
        self, allow_cache: bool = True, tags: Mapping[str, str] | None = None
    ) -> list[Entity]:
        return self._list("entity", tags, allow_cache)

    def list_data_sources(
        self, allow_cache: bool = True, tags: Mapping[str, str] | None = None
    ) -> list[DataSource]:
        return self._list("data_source", tags, allow_cache)

    def list_feature_views(
        self, allow_cache: bool = True, tags: Mapping[str, str] | None = None
    ) -> list[FeatureView]:
        return self._list("feature_view", tags, allow_cache)

    def list_stream_feature_views(
        self, allow_cache: bool = True, tags: Mapping[str, str] | None = None
    ) -> list[StreamFeatureView]:
        return self._list("stream_feature_view", tags, allow_cache)

    def list_on_demand_feature_views(
        self, allow_cache: bool = True, tags: Mapping[str, str] | None = None
    ) -> list[OnDemandFeatureView]:
        return self._list("on_demand_feature_view", tags, allow_cache)

    def list_feature_services(
        self, allow_cache: bool = True, tags: Mapping[str, str] | None = None
    ) -> list[FeatureService]:
        return self._list("feature_service", tags, allow_cache)

    def get_entity(self, name: str) -> Entity:
        return self.registry.snapshot().get("entity", name)  # type: ignore[return-value]

    def get_data_source(self, name: str) -> DataSource:
        return self.registry.snapshot().get("data_source", name)  # type: ignore[return-value]

    def get_feature_view(self, name: str) -> FeatureView:
        return self.registry.snapshot().get("feature_view", name)  # type: ignore[return-value]

    def get_stream_feature_view(self, name: str) -> StreamFeatureView:
        snap = self.registry.snapshot()
        return snap.get("stream_feature_view", name)  # type: ignore[return-value]

    def get_on_demand_feature_view(self, name: str) -> OnDemandFeatureView:
        snap = self.registry.snapshot()
        return snap.get("on_demand_feature_view", name)  # type: ignore[return-value]

    def get_feature_service(self, name: str) -> FeatureService:
        return self.registry.snapshot().get("feature_service", name)  # type: ignore[return-value]

    def close(self) -> None:
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
