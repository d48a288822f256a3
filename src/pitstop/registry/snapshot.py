"""A decoded, immutable view of the registry's live objects, with lookups that explain misses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar, overload

from pitstop.definitions.base import Definition
from pitstop.definitions.entity import Entity
from pitstop.definitions.feature_view import FeatureView, Projectable
from pitstop.definitions.on_demand import OnDemandFeatureView
from pitstop.definitions.serde import KINDS, VIEW_KINDS, from_spec, kind_for
from pitstop.definitions.service import FeatureService
from pitstop.definitions.sources import DataSource
from pitstop.definitions.stream import StreamFeatureView
from pitstop.errors import NotFoundError, suggest

LABELS = {
    "entity": "entity",
    "data_source": "data source",
    "feature_view": "feature view",
    "stream_feature_view": "stream feature view",
    "on_demand_feature_view": "on-demand feature view",
    "feature_service": "feature service",
    "project": "project",
    "saved_dataset": "saved dataset",
    "model": "model",
    "permission": "permission",
    "role": "role",
}

D = TypeVar("D", bound=Definition)


def article(label: str) -> str:
    """``"an entity"``, ``"a feature view"``."""
    return f"{'an' if label[:1].lower() in 'aeio' else 'a'} {label}"


@dataclass(frozen=True)
class Snapshot:
    """Live objects by kind and name, as of one registry read.

    ``versions`` holds the served version number of each object; ``load_version`` reads a
    view as it was at one of its versions, for :meth:`view_at` (which keeps what it read:
    versions never change).
    """

    objects: Mapping[str, Mapping[str, Definition]] = field(default_factory=dict)
    serial: int = 0
    versions: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    load_version: Callable[[str, int], Projectable] | None = field(default=None, compare=False)
    _pinned: dict[tuple[str, int], Projectable] = field(default_factory=dict, compare=False,
                                                        repr=False)  # fmt: skip

    @classmethod
    def from_specs(
        cls,
        specs: Mapping[str, Mapping[str, Mapping]],
        serial: int,
        versions: Mapping[str, Mapping[str, int]] | None = None,
        load_version: Callable[[str, int], Projectable] | None = None,
    ) -> Snapshot:
        return cls(
            {
                kind: {name: from_spec(kind, s) for name, s in by_name.items()}
                for kind, by_name in specs.items()
            },
            serial,
            versions or {},
            load_version,
        )

    @overload
    def of(self, cls: type[D]) -> dict[str, D]: ...
    @overload
    def of(self, cls: str) -> dict[str, Definition]: ...
    def of(self, cls: type[D] | str) -> dict[str, D] | dict[str, Definition]:
        """The live objects of one class by name: ``snapshot.of(FeatureView)``.

        A subclass narrows its kind: ``of(FileSource)`` is the data sources that are file
        sources. (A kind's name, ``"feature_view"``, is still accepted.)
        """
        if isinstance(cls, str):
            return dict(self.objects.get(cls, {}))
        found = self.objects.get(kind_for(cls), {})
        return {n: o for n, o in found.items() if isinstance(o, cls)}

    @overload
    def get(self, cls: type[D], name: str) -> D: ...
    @overload
    def get(self, cls: str, name: str) -> Definition: ...
    def get(self, cls: type[D] | str, name: str) -> D | Definition:
        """One live object: ``snapshot.get(FeatureView, "user_features")``.

        A miss raises :class:`NotFoundError` naming close names, and the kind of any other
        object of that name.
        """
        kind = cls if isinstance(cls, str) else kind_for(cls)
        found = self.objects.get(kind, {}).get(name)
        label = LABELS.get(kind, kind)
        if found is None:
            others = [article(LABELS[k]) for k, by in self.objects.items()
                      if k != kind and name in by]  # fmt: skip
            also = f" ({name!r} is {' and '.join(others)}.)" if others else ""
            hint = suggest(name, self.objects.get(kind, {}))
            raise NotFoundError(
                f"{label} {name!r} is not in the registry.{hint}{also}"
                " Run `pitstop apply` if it was added recently."
            )
        if not isinstance(cls, str) and not isinstance(found, cls):
            raise NotFoundError(
                f"{label} {name!r} is {article(type(found).__name__)}, not {article(cls.__name__)}."
            )
        return found

    def view(self, name: str) -> Projectable:
        """Any view (batch, stream or on-demand) by name."""
        for kind in VIEW_KINDS:
            found = self.objects.get(kind, {}).get(name)
            if found is not None:
                return found  # type: ignore[return-value]
        names = [n for k in VIEW_KINDS for n in self.objects.get(k, {})]
        raise NotFoundError(
            f"feature view {name!r} is not in the registry.{suggest(name, names)}"
            " Run `pitstop apply` if it was added recently."
        )

    def view_at(self, name: str, version: int) -> Projectable:
        """A view (of any kind) as it was at its version ``version``: served, staged or past.
        An unknown view or version raises :class:`NotFoundError` listing the versions."""
        found = self._pinned.get((name, version))
        if found is None:
            if self.load_version is None:
                raise NotFoundError(
                    f"feature view {name!r}: version {version} cannot be read here (this view "
                    "of the registry holds its served objects only)"
                )
            found = self._pinned[(name, version)] = self.load_version(name, version)
        return found

    def served_version(self, kind: str, name: str) -> int | None:
        """The version number of a served object, if known."""
        return self.versions.get(kind, {}).get(name)

    @property
    def entities(self) -> dict[str, Entity]:
        return self.of(Entity)

    @property
    def data_sources(self) -> dict[str, DataSource]:
        return self.of(DataSource)

    @property
    def feature_views(self) -> dict[str, FeatureView]:
        return self.of(FeatureView)

    @property
    def stream_feature_views(self) -> dict[str, StreamFeatureView]:
        return self.of(StreamFeatureView)

    @property
    def on_demand_feature_views(self) -> dict[str, OnDemandFeatureView]:
        return self.of(OnDemandFeatureView)

    @property
    def feature_services(self) -> dict[str, FeatureService]:
        return self.of(FeatureService)


assert set(LABELS) == set(KINDS)
