"""Resolve a feature request (refs or a feature service) into views, columns and output names.

This is the one place that decides naming (``feature`` or ``view__feature``), collisions, the
expansion of feature services and projections, and which extra features on-demand views need.
Offline retrieval and online serving both execute the :class:`RequestPlan` built here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pitstop.definitions.feature_view import FeatureView, Projectable, Projection
from pitstop.definitions.field import Field
from pitstop.definitions.on_demand import OnDemandFeatureView
from pitstop.definitions.service import FeatureService
from pitstop.errors import NotFoundError, RetrievalError, suggest
from pitstop.registry.snapshot import Snapshot

HIDDEN = "__pitstop_input__"


@dataclass(frozen=True)
class Column:
    """One feature of one (projected) view, and the column that carries it."""

    feature: Field
    name: str  # output name, or a hidden name for inputs of on-demand views only
    visible: bool


@dataclass(frozen=True)
class ViewRequest:
    """Features to read from one batch or stream view, under one projection."""

    view: FeatureView
    projection: Projection
    columns: tuple[Column, ...]

    @property
    def entity_keys(self) -> tuple[str, ...]:
        """Key columns in the entity rows (after ``with_join_key_map``)."""
        m = self.projection.join_key_map
        return tuple(m.get(k, k) for k in self.view.join_keys)

    def column_for(self, feature: str) -> str:
        return next(c.name for c in self.columns if c.feature.name == feature)


@dataclass(frozen=True)
class OnDemandRequest:
    """An on-demand view to run after the join, and its visible outputs."""

    view: OnDemandFeatureView
    projection: Projection
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class RequestPlan:
    """Everything needed to serve a feature request, independent of the backend."""

    views: tuple[ViewRequest, ...]
    on_demand: tuple[OnDemandRequest, ...]
    request_fields: tuple[Field, ...]  # values the caller must send with the entity rows
    output_names: tuple[str, ...]  # feature columns, in the requested order

    @property
    def entity_keys(self) -> tuple[str, ...]:
        keys: dict[str, None] = {}
        for v in self.views:
            keys.update(dict.fromkeys(v.entity_keys))
        return tuple(keys)

    @property
    def hidden_columns(self) -> tuple[str, ...]:
        return tuple(c.name for v in self.views for c in v.columns if not c.visible)


def parse_refs(features: Sequence[str] | FeatureService, snapshot: Snapshot) -> list[Projection]:
    """``["view:feature", …]`` or a feature service → projections, in the requested order."""
    if isinstance(features, FeatureService):
        return list(features.projections)
    if isinstance(features, str) or not isinstance(features, Sequence) or not features:
        raise RetrievalError(
            "features must be a non-empty list of 'view:feature' references or a FeatureService"
        )
    order: dict[str, list[str]] = {}
    for ref in features:
        if not isinstance(ref, str) or ref.count(":") != 1:
            raise RetrievalError(
                f"feature reference {ref!r} is not of the form 'view:feature' "
                "(e.g. 'user_features:total_purchases')"
            )
        view_name, feature = ref.split(":")
        wanted = order.setdefault(view_name, [])
        if feature in wanted:
            raise RetrievalError(f"feature reference {ref!r} is listed twice")
        wanted.append(feature)
    return [Projection(name=v, features=tuple(f)) for v, f in order.items()]


def _project(snapshot: Snapshot, p: Projection) -> tuple[Projectable, tuple[Field, ...]]:
    view = snapshot.view(p.name)
    known = {f.name: f for f in view.features}
    names = p.features if p.features is not None else tuple(known)
    for n in names:
        if n not in known:
            raise NotFoundError(f"feature view {p.name!r} has no feature {n!r}.{suggest(n, known)}")
    return view, tuple(known[n] for n in names)


def build_plan(
    snapshot: Snapshot, features: Sequence[str] | FeatureService, full_feature_names: bool
) -> RequestPlan:
    """Resolve ``features`` against the registry ``snapshot``."""
    views: dict[str, ViewRequest] = {}
    odfvs: list[OnDemandRequest] = []
    owner: dict[str, str] = {}  # output name -> view that produced it
    order: list[str] = []
    refs_in_order: list[str] = []  # "view__feature" of each output, parallel to ``order``

    def name_of(p: Projection, feature: str) -> str:
        out = f"{p.name_to_use}__{feature}" if full_feature_names else feature
        if out in owner:
            raise RetrievalError(
                f"feature name {out!r} is produced by both {owner[out]!r} and "
                f"{p.name_to_use!r}; pass full_feature_names=True or alias one view with "
                ".with_name(...)"
            )
        owner[out] = p.name_to_use
        order.append(out)
        refs_in_order.append(f"{p.name}__{feature}")
        return out

    for p in parse_refs(features, snapshot):
        view, fields = _project(snapshot, p)
        cols = tuple(Column(f, name_of(p, f.name), True) for f in fields)
        if isinstance(view, OnDemandFeatureView):
            odfvs.append(OnDemandRequest(view, p, cols))
        else:
            assert isinstance(view, FeatureView)
            _merge(views, ViewRequest(view, p, cols))
    request_fields: dict[str, Field] = {}
    for od in odfvs:
        for src in od.view.sources:
            view, fields = _project(snapshot, src)
            assert isinstance(view, FeatureView)
            hidden = tuple(Column(f, f"{HIDDEN}{src.name_to_use}__{f.name}", False) for f in fields)
            _merge(views, ViewRequest(view, src, hidden))
        for req in od.view.request_sources:
            request_fields.update({f.name: f for f in req.schema})
    if not isinstance(features, FeatureService):  # keep the order the caller asked for
        rank = {ref.replace(":", "__"): i for i, ref in enumerate(features)}
        by_ref = dict(zip(refs_in_order, order, strict=True))
        order = [by_ref[r] for r in sorted(by_ref, key=rank.__getitem__)]
    return RequestPlan(
        tuple(views.values()), tuple(odfvs), tuple(request_fields.values()), tuple(order)
    )


def _merge(views: dict[str, ViewRequest], new: ViewRequest) -> None:
    """Add ``new``; a view already requested under the same alias gains missing features."""
    key = new.projection.name_to_use
    old = views.get(key)
    if old is None:
        views[key] = new
        return
    have = {c.feature.name for c in old.columns}
    extra = tuple(c for c in new.columns if c.feature.name not in have)
    views[key] = ViewRequest(old.view, old.projection, old.columns + extra)
