"""A decoded, immutable view of the registry's live objects, with lookups that explain misses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pitstop.definitions.base import Definition
from pitstop.definitions.entity import Entity
from pitstop.definitions.feature_view import FeatureView, Projectable
from pitstop.definitions.on_demand import OnDemandFeatureView
from pitstop.definitions.serde import KINDS, VIEW_KINDS, from_spec
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
}


@dataclass(frozen=True)
class Snapshot:
    """Live objects by kind and name, as of one registry read."""

    objects: Mapping[str, Mapping[str, Definition]] = field(default_factory=dict)
    serial: int = 0

    @classmethod
    def from_specs(cls, specs: Mapping[str, Mapping[str, Mapping]], serial: int) -> Snapshot:
        return cls(
            {
                kind: {name: from_spec(kind, s) for name, s in by_name.items()}
                for kind, by_name in specs.items()
            },
            serial,
        )

    def of(self, kind: str) -> dict[str, Definition]:
        return dict(self.objects.get(kind, {}))

    def get(self, kind: str, name: str) -> Definition:
        found = self.objects.get(kind, {}).get(name)
        if found is None:
            label = LABELS.get(kind, kind)
            hint = suggest(name, self.objects.get(kind, {}))
            raise NotFoundError(
                f"{label} {name!r} is not in the registry.{hint}"
                " Run `pitstop apply` if it was added recently."
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

    @property
    def entities(self) -> dict[str, Entity]:
        return self.of("entity")  # type: ignore[return-value]

    @property
    def data_sources(self) -> dict[str, DataSource]:
        return self.of("data_source")  # type: ignore[return-value]

    @property
    def feature_views(self) -> dict[str, FeatureView]:
        return self.of("feature_view")  # type: ignore[return-value]

    @property
    def stream_feature_views(self) -> dict[str, StreamFeatureView]:
        return self.of("stream_feature_view")  # type: ignore[return-value]

    @property
    def on_demand_feature_views(self) -> dict[str, OnDemandFeatureView]:
        return self.of("on_demand_feature_view")  # type: ignore[return-value]

    @property
    def feature_services(self) -> dict[str, FeatureService]:
        return self.of("feature_service")  # type: ignore[return-value]


assert set(LABELS) == set(KINDS)
