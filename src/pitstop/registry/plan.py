"""Check a set of definitions for consistency, and compute what an apply would change."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pitstop.definitions.base import Definition
from pitstop.definitions.datasets import Model, SavedDataset
from pitstop.definitions.entity import Entity
from pitstop.definitions.feature_view import FeatureView, Projectable, Projection
from pitstop.definitions.on_demand import OnDemandFeatureView
from pitstop.definitions.refs import pinned_name
from pitstop.definitions.serde import KINDS, RUNTIME_KINDS, VIEW_KINDS, kind_of
from pitstop.definitions.service import FeatureService
from pitstop.errors import DefinitionError, PitstopError, suggest
from pitstop.registry.store import VersionRecord, canonical_hash

Objects = dict[str, dict[str, Definition]]


@dataclass(frozen=True)
class Change:
    """One object's fate in an apply."""

    kind: str
    name: str
    action: str  # "create" | "update" | "delete" | "unchanged"
    spec: dict[str, Any] | None
    old: dict[str, Any] | None = None  # the live spec, for updates and deletes
    version: int | None = None  # once written: the version it wrote or now serves
    staged: bool = False  # written as a staged version (served: the one before)

    @property
    def changed(self) -> bool:
        return self.action != "unchanged"


#: A view as it was at one of its versions (``Registry.view_version``); raises if there is none.
Pinned = Callable[[str, int], Projectable]


def resolve(objects: Objects, pinned: Pinned | None = None) -> Objects:
    """Check references between definitions and resolve view join keys; returns new dicts.

    A projection pinned to a version (``view.with_version(2)``) is checked against that
    version, read with ``pinned``."""
    out: Objects = {kind: dict(objects.get(kind, {})) for kind in KINDS}
    entities: dict[str, Entity] = out["entity"]  # type: ignore[assignment]
    seen: dict[str, str] = {}
    for kind in VIEW_KINDS:
        for name in out[kind]:
            if name in seen:
                raise DefinitionError(
                    f"the name {name!r} is used by a {seen[name].replace('_', ' ')} and a "
                    f"{kind.replace('_', ' ')}; feature views of all kinds share one namespace"
                )
            seen[name] = kind
    for kind in ("feature_view", "stream_feature_view"):
        for name, view in out[kind].items():
            assert isinstance(view, FeatureView)
            out[kind][name] = view.resolve_entities(entities)
            _check_feature_names(out[kind][name])  # type: ignore[arg-type]
    views: dict[str, Projectable] = {
        n: v for k in VIEW_KINDS for n, v in out[k].items() if isinstance(v, Projectable)
    }
    for odfv in out["on_demand_feature_view"].values():
        assert isinstance(odfv, OnDemandFeatureView)
        for p in odfv.sources:
            _check_projection(p, views, f"on-demand feature view {odfv.name!r}", pinned)
    for svc in out["feature_service"].values():
        assert isinstance(svc, FeatureService)
        for p in svc.projections:
            _check_projection(p, views, f"feature service {svc.name!r}", pinned)
    _check_runtime(out, views)
    return out


def _check_runtime(out: Objects, views: Mapping[str, Projectable]) -> None:
    """Saved datasets and models name objects that exist."""
    services, datasets = out["feature_service"], out["saved_dataset"]
    for ds in datasets.values():
        assert isinstance(ds, SavedDataset)
        what = f"saved dataset {ds.name!r}"
        if ds.feature_service is not None and ds.feature_service not in services:
            raise DefinitionError(
                f"{what} names feature service {ds.feature_service!r}, which "
                f"is not registered.{suggest(ds.feature_service, services)}"
            )
        for view in ds.views:
            if view not in views:
                raise DefinitionError(
                    f"{what} holds features of {view!r}, which is not a "
                    f"registered feature view.{suggest(view, views)}"
                )
    for model in out["model"].values():
        assert isinstance(model, Model)
        what = f"model {model.name!r}"
        if model.feature_service not in services:
            raise DefinitionError(
                f"{what} reads feature service {model.feature_service!r}, "
                f"which is not registered.{suggest(model.feature_service, services)}"
            )
        for name in model.training_datasets:
            if name not in datasets:
                raise DefinitionError(
                    f"{what} was trained on saved dataset {name!r}, which is "
                    f"not registered.{suggest(name, datasets)}"
                )


def _check_feature_names(view: FeatureView) -> None:
    """A feature may not take the name of a column the view reads for another role."""
    roles = {key: "a join key" for key in view.join_keys}
    roles[view.batch_source.created_timestamp_column] = "the created timestamp column"
    roles[view.timestamp_field] = "the timestamp field"
    for feature in view.features:
        role = roles.get(feature.name)
        if role:
            label = kind_of(view).replace("_", " ")
            raise DefinitionError(
                f"{label} {view.name!r}: feature {feature.name!r} has the name of {role} of the "
                f"view; rename the feature (a source column can be renamed with the source's "
                "field_mapping)"
            )


def _check_projection(
    p: Projection, views: Mapping[str, Projectable], what: str, pinned: Pinned | None
) -> None:
    view = views.get(p.name)
    if p.version is not None and pinned is not None:
        try:
            view = pinned(p.name, p.version)
        except PitstopError as exc:
            raise DefinitionError(f"{what} uses {p.name_to_use!r}: {exc}") from None
    if view is None:
        raise DefinitionError(
            f"{what} uses feature view {p.name!r}, which is not defined.{suggest(p.name, views)}"
        )
    known = {f.name for f in view.features}
    for feat in p.features or ():
        if feat not in known:
            raise DefinitionError(
                f"{what} selects feature {feat!r} of {pinned_name(p.name, p.version)!r}, which "
                "has no such feature."
                f"{suggest(feat, known)}"
            )


def plan(
    desired: Objects, live: Mapping[str, Mapping[str, VersionRecord]], *, prune: bool
) -> list[Change]:
    """Changes that turn ``live`` (kind -> name -> version) into ``desired``.

    With ``prune`` (a whole-repo apply), live objects missing from ``desired`` are deleted.
    """
    changes: list[Change] = []
    for kind in KINDS:
        wanted = desired.get(kind, {})
        current = live.get(kind, {})
        for name in sorted(wanted):
            spec = wanted[name].to_spec()
            if name not in current:
                changes.append(Change(kind, name, "create", spec))
            elif current[name].spec_hash != canonical_hash(spec):
                changes.append(Change(kind, name, "update", spec, current[name].spec))
            else:
                changes.append(Change(kind, name, "unchanged", spec))
        if prune and kind not in RUNTIME_KINDS:
            changes.extend(
                Change(kind, n, "delete", None, current[n].spec)
                for n in sorted(current)
                if n not in wanted
            )
    return changes


def online_tables(changes: Iterable[Change]) -> tuple[list[str], list[str]]:
    """Online tables an apply creates (new or changed online views) and drops."""
    keep: list[str] = []
    drop: list[str] = []
    for c in changes:
        if c.kind not in ("feature_view", "stream_feature_view") or not c.changed:
            continue
        if c.spec is not None and c.spec.get("online", True):
            keep.append(c.name)
        elif c.action == "delete" or (c.old or {}).get("online", True):
            drop.append(c.name)
    return keep, drop
