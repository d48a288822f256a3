"""Definitions to and from registry specs (JSON), by kind. No pickle anywhere."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pitstop.definitions.access import Permission, Role
from pitstop.definitions.base import Definition
from pitstop.definitions.datasets import Model, SavedDataset
from pitstop.definitions.entity import Entity
from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.on_demand import OnDemandFeatureView
from pitstop.definitions.project import Project
from pitstop.definitions.service import FeatureService
from pitstop.definitions.sources import DataSource, source_from_spec
from pitstop.definitions.stream import StreamFeatureView
from pitstop.errors import RegistryError

KINDS: dict[str, type[Definition]] = {
    "entity": Entity,
    "data_source": DataSource,
    "feature_view": FeatureView,
    "stream_feature_view": StreamFeatureView,
    "on_demand_feature_view": OnDemandFeatureView,
    "feature_service": FeatureService,
    "project": Project,
    "saved_dataset": SavedDataset,
    "model": Model,
    "permission": Permission,
    "role": Role,
}

VIEW_KINDS = ("feature_view", "stream_feature_view", "on_demand_feature_view")
#: Kinds registered at run time (after a retrieval, after training), not declared in a repo:
#: a whole-repo apply neither creates nor removes them.
RUNTIME_KINDS = ("saved_dataset", "model")


def kind_for(cls: type[Definition]) -> str:
    """The registry kind holding objects of class ``cls`` (``FileSource`` -> ``data_source``)."""
    for klass in cls.__mro__:
        for kind, known in KINDS.items():
            if known is klass:
                return kind
    raise TypeError(f"{cls.__name__} is not a kind of pitstop definition kept in the registry")


def kind_of(obj: object) -> str:
    """The registry kind of a definition object."""
    for kind, cls in reversed(KINDS.items()):  # subclasses (StreamFeatureView) first
        if isinstance(obj, cls):
            return kind
    raise TypeError(f"{obj!r} is not a pitstop definition")


def from_spec(kind: str, spec: Mapping[str, Any]) -> Definition:
    """Rebuild a definition from its stored spec."""
    if kind == "data_source":
        return source_from_spec(spec)
    cls = KINDS.get(kind)
    if cls is None:
        raise RegistryError(f"registry holds an object of unknown kind {kind!r}")
    return cls.from_spec(spec)
