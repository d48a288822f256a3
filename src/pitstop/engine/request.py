"""Resolve a feature request (refs or a feature service) into views, columns and output names.

This is the one place that decides naming (``feature`` or ``view__feature``), collisions, the
expansion of feature services and projections, and which extra features on-demand views need.
Offline retrieval and online serving both execute the :class:`RequestPlan` built here.

**Pinned versions.** ``"driver_stats@v2:conv_rate"`` (or ``view.with_version(2)`` in a
feature service) reads the view as the registry holds its version 2 — schema, source, TTL —
whether that version is served, staged or past. Its columns are named ``conv_rate``, or
``driver_stats@v2__conv_rate`` with full feature names; two versions of one view in one
request need full feature names (or an alias), like any two views sharing a feature name.
Online, the store holds values written under the *served* version:
:func:`online_source` decides whether a pinned version can be answered from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pitstop.definitions.feature_view import FeatureView, Projectable, Projection
from pitstop.definitions.field import Field
from pitstop.definitions.on_demand import OnDemandFeatureView
from pitstop.definitions.refs import parse_ref, pinned_name
from pitstop.definitions.serde import kind_of
from pitstop.definitions.service import FeatureService
from pitstop.definitions.stream import StreamFeatureView
from pitstop.errors import DefinitionError, NotFoundError, RetrievalError, suggest
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
    """``["view:feature", "view@v2:feature", …]`` or a feature service → projections (one
    per view and version), in the requested order."""
    if isinstance(features, FeatureService):
        return list(features.projections)
    if isinstance(features, str) or not isinstance(features, Sequence) or not features:
        raise RetrievalError(
            "features must be a non-empty list of 'view:feature' references or a FeatureService"
        )
    order: dict[tuple[str, int | None], list[str]] = {}
    for ref in features:
        parsed = parse_ref(ref)
        wanted = order.setdefault((parsed.view, parsed.version), [])
        if parsed.feature in wanted:
            raise RetrievalError(f"feature reference {ref!r} is listed twice")
        wanted.append(parsed.feature)
    return [Projection(name=v, version=n, features=tuple(f)) for (v, n), f in order.items()]


def _project(snapshot: Snapshot, p: Projection) -> tuple[Projectable, tuple[Field, ...]]:
    view = snapshot.view(p.name) if p.version is None else snapshot.view_at(p.name, p.version)
    known = {f.name: f for f in view.features}
    names = p.features if p.features is not None else tuple(known)
    for n in names:
        if n not in known:
            what = pinned_name(p.name, p.version)
            raise NotFoundError(f"feature view {what!r} has no feature {n!r}.{suggest(n, known)}")
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
        refs_in_order.append(f"{pinned_name(p.name, p.version)}:{feature}")
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
        rank = {str(parse_ref(ref)): i for i, ref in enumerate(features)}
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


def guarded(plan: RequestPlan, snapshot: Snapshot) -> list[Projectable]:
    """The definitions access control checks for a request: every view it reads and, for a
    pinned version, the served version too (its tags, as they are now, also apply)."""
    found = [*(v.view for v in plan.views), *(od.view for od in plan.on_demand)]
    pinned = [v.projection for v in plan.views] + [od.projection for od in plan.on_demand]
    for p in pinned:
        if p.version is not None:
            served = _served(snapshot, p.name)
            if served is not None:
                found.append(served)
    return found


def _served(snapshot: Snapshot, name: str) -> Projectable | None:
    try:
        return snapshot.view(name)
    except NotFoundError:
        return None


def online_source(vr: ViewRequest, snapshot: Snapshot) -> FeatureView:
    """The served view whose online values answer ``vr``: the view itself, or for a pinned
    version the served version, when its values can stand for the pinned one's (same kind
    and join keys; every requested feature there with the same type and, for windowed
    aggregations, the same aggregation). Otherwise a :class:`DefinitionError` says why and
    what to do."""
    p = vr.projection
    if p.version is None:
        return vr.view
    what = f"feature view {p.name!r} v{p.version}"
    served = _served(snapshot, p.name)
    number = snapshot.served_version(kind_of(served), p.name) if served is not None else None
    at = f"v{number}" if number is not None else "version"
    fix = (
        f"Read v{p.version} offline (get_historical_features), or serve it: `pitstop promote "
        f"{p.name} {p.version}`, then materialize."
    )

    def refuse(reason: str) -> DefinitionError:
        return DefinitionError(f"{what} cannot be read online: {reason}. {fix}")

    if not isinstance(served, FeatureView):
        raise refuse(
            f"no version of {p.name!r} is served as a feature view, so the online store holds "
            "no values for it"
        )
    if not served.online:
        raise refuse(f"the served {at} is not online (online=False)")
    pinned = vr.view
    if type(pinned) is not type(served) or sorted(pinned.join_keys) != sorted(served.join_keys):
        raise refuse(
            f"the online store holds values of the served {at} ({kind_of(served)} keyed by "
            f"{', '.join(sorted(served.join_keys))}), not of a {kind_of(pinned)} keyed by "
            f"{', '.join(sorted(pinned.join_keys))}"
        )
    have = {f.name: f for f in served.features}
    aggs = _aggregations(served)
    mine = _aggregations(pinned)
    for c in vr.columns:
        name = c.feature.name
        there = have.get(name)
        if there is None:
            raise refuse(
                f"feature {name!r} is not in the served {at}, whose values the online store "
                f"holds (its features: {', '.join(sorted(have))})"
            )
        if there.dtype != c.feature.dtype:
            raise refuse(
                f"feature {name!r} is {c.feature.dtype} in v{p.version} but {there.dtype} in "
                f"the served {at}, whose values the online store holds"
            )
        if aggs.get(name) != mine.get(name):
            raise refuse(
                f"feature {name!r} aggregates differently in the served {at} "
                f"({aggs.get(name)}) than in v{p.version} ({mine.get(name)})"
            )
    return served


def _aggregations(view: FeatureView) -> dict[str, object]:
    """Output feature -> its aggregation, for a stream view with windowed aggregations."""
    if not isinstance(view, StreamFeatureView) or not view.aggregations:
        return {}
    return dict(zip((f.name for f in view.features), view.aggregations, strict=True))
