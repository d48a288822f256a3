"""The kinds of registry objects as classes, and the names people and URLs use for them.

Call sites name a kind by its class (``catalog.get(FeatureView, "user_features")``); only the
edges (command-line options, URL paths) turn text into a class, here, with one error that
lists every accepted name.
"""

from __future__ import annotations

from pitstop.definitions.access import Permission, Role
from pitstop.definitions.base import Definition
from pitstop.definitions.datasets import Model, SavedDataset
from pitstop.definitions.entity import Entity
from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.on_demand import OnDemandFeatureView
from pitstop.definitions.project import Project
from pitstop.definitions.serde import kind_for
from pitstop.definitions.service import FeatureService
from pitstop.definitions.sources import DataSource
from pitstop.definitions.stream import StreamFeatureView
from pitstop.errors import NotFoundError, suggest
from pitstop.registry.snapshot import LABELS

#: The collections of the command line (``pitstop feature-views list``) and of the REST API
#: (``GET /registry/feature-views``), in the order they are listed.
COLLECTIONS: dict[str, type[Definition]] = {
    "entities": Entity,
    "data-sources": DataSource,
    "feature-views": FeatureView,
    "stream-feature-views": StreamFeatureView,
    "on-demand-feature-views": OnDemandFeatureView,
    "feature-services": FeatureService,
    "projects": Project,
    "saved-datasets": SavedDataset,
    "models": Model,
    "permissions": Permission,
    "roles": Role,
}


def kind_name(cls: type[Definition]) -> str:
    """The registry's name of a kind: ``FeatureView`` -> ``"feature_view"``."""
    return kind_for(cls)


def label(cls: type[Definition]) -> str:
    """The kind as prose: ``"on-demand feature view"``."""
    return LABELS[kind_for(cls)]


def collection(cls: type[Definition]) -> str:
    """The collection name of a kind: ``FeatureView`` -> ``"feature-views"``."""
    kind = kind_for(cls)
    return next(name for name, c in COLLECTIONS.items() if kind_for(c) == kind)


def _spellings() -> dict[str, type[Definition]]:
    names: dict[str, type[Definition]] = {}
    for plural, cls in COLLECTIONS.items():
        kind = kind_for(cls)
        for text in (plural, kind, kind.replace("_", "-"), cls.__name__, LABELS[kind]):
            names[text.lower()] = cls
    return names


_BY_NAME = _spellings()


def parse_kind(text: str) -> type[Definition]:
    """The kind ``text`` names: ``feature_view``, ``feature-view``, ``feature-views``,
    ``FeatureView`` and ``"feature view"`` all name :class:`FeatureView`."""
    found = _BY_NAME.get(text.strip().lower())
    if found is None:
        raise NotFoundError(
            f"{text!r} is not a kind of registry object.{suggest(text, _BY_NAME)} "
            f"Kinds: {', '.join(kind_for(c) for c in COLLECTIONS.values())}."
        )
    return found
