"""Feature services: a named, versioned list of features a model uses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pitstop.definitions.base import Definition, check_name, check_tags, check_text
from pitstop.definitions.feature_logging import LoggingConfig
from pitstop.definitions.feature_view import Projectable, Projection
from pitstop.errors import DefinitionError


class FeatureService(Definition):
    """The features one model reads, by view (possibly projected, aliased or re-keyed).

    With a ``logging_config`` the vectors it serves are logged (``pitstop.quality``).

    >>> # FeatureService(name="churn_v1", features=[user_features, user_derived_features])
    """

    kind = "feature_service"
    projections: tuple[Projection, ...]
    description: str
    tags: dict[str, str]
    owner: str
    logging_config: LoggingConfig | None

    def __init__(
        self,
        *,
        name: str,
        features: Sequence[Projectable],
        description: str = "",
        tags: Mapping[str, str] | None = None,
        owner: str = "",
        logging_config: LoggingConfig | None = None,
    ) -> None:
        check_name(name, "FeatureService")
        what = f"FeatureService {name!r}"
        if isinstance(features, str | Projectable) or not isinstance(features, Sequence):
            raise DefinitionError(f"{what}: features must be a list of feature views")
        projections: list[Projection] = []
        seen: set[str] = set()
        for item in features:
            if not isinstance(item, Projectable):
                raise DefinitionError(
                    f"{what}: {item!r} is not a feature view; list FeatureView, "
                    "OnDemandFeatureView or StreamFeatureView objects (or view[[...]] selections)"
                )
            p = item.projection
            if p.name_to_use in seen:
                raise DefinitionError(
                    f"{what}: view {p.name_to_use!r} is listed twice; use "
                    f"view.with_name('other_name') to include it again under another name"
                )
            seen.add(p.name_to_use)
            projections.append(p)
        if not projections:
            raise DefinitionError(f"{what}: features must list at least one view")
        if logging_config is not None and not isinstance(logging_config, LoggingConfig):
            raise DefinitionError(
                f"{what}: logging_config must be a LoggingConfig, got {logging_config!r}"
            )
        self._set(
            name=name,
            projections=tuple(projections),
            description=check_text(description, "description", what),
            tags=check_tags(tags, what),
            owner=check_text(owner, "owner", what),
            logging_config=logging_config,
        )

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": self.name,
            "features": [p.to_spec() for p in self.projections],
            "description": self.description,
            "tags": self.tags,
            "owner": self.owner,
        }
        if self.logging_config is not None:  # kept out when unset: older specs keep their hash
            spec["logging_config"] = self.logging_config.to_spec()
        return spec

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> FeatureService:
        svc = cls.__new__(cls)
        svc._set(
            name=spec["name"],
            projections=tuple(Projection.from_spec(p) for p in spec["features"]),
            description=spec.get("description", ""),
            tags=spec.get("tags") or {},
            owner=spec.get("owner", ""),
            logging_config=_logging_from_spec(spec.get("logging_config")),
        )
        return svc


def _logging_from_spec(spec: Mapping[str, Any] | None) -> LoggingConfig | None:
    return None if spec is None else LoggingConfig.from_spec(spec)
