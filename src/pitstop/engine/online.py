"""Online retrieval: entity rows in, feature values with statuses and timestamps out.

The hot path of inference. It runs in plain Python over lists (no pandas, no Arrow per request):
the request plan is resolved once per feature list and cached; every view of the request is
read in one store round trip; TTL and statuses are decided here, for every store alike
(on-demand outputs take theirs from their inputs: :func:`on_demand_status`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pitstop.access import Policy, Resource, authorize, policy_of
from pitstop.definitions.service import FeatureService
from pitstop.definitions.stream import StreamFeatureView
from pitstop.engine.ondemand import call_udf, input_columns
from pitstop.engine.request import (
    OnDemandRequest,
    RequestPlan,
    build_plan,
    guarded,
    online_source,
)
from pitstop.engine.streams import layout_of, read_values
from pitstop.engine.tiles import TileLayout
from pitstop.errors import PitstopError, RetrievalError
from pitstop.online.encoding import decode_value, entity_key
from pitstop.registry.audit import Actor, current_actor
from pitstop.types import Array, Bool, Float32, Float64, Int32, Int64, String, UnixTimestamp

if TYPE_CHECKING:
    from pitstop.online.base import OnlineStore, ReadRow
    from pitstop.registry import Registry
    from pitstop.registry.snapshot import Snapshot

logger = logging.getLogger("pitstop.online")

# What decoding a stored row that is not a valid encoding can raise (msgpack's errors are
# ValueErrors; a wrong structure surfaces as a lookup or type error).
_UNREADABLE = (PitstopError, ValueError, TypeError, KeyError, IndexError, AttributeError)

PRESENT = "PRESENT"
NULL_VALUE = "NULL_VALUE"
NOT_FOUND = "NOT_FOUND"
OUTSIDE_MAX_AGE = "OUTSIDE_MAX_AGE"


@dataclass(frozen=True)
class _ViewStep:
    """How to read one view: the stored key names, where to find them, what to decode."""

    table: str  # the view's online table (its registered name)
    key_names: tuple[str, ...]  # the view's join keys, sorted (the stored key order)
    row_columns: tuple[str, ...]  # the entity-row columns holding those keys, same order
    ttl_us: int  # 0: never expires
    features: tuple[tuple[str, str], ...]  # (feature name, output/hidden column)
    key_types: tuple[Any, ...]  # the Python type each key value must have (None: any)
    key_dtypes: tuple[Any, ...]  # each key's declared dtype (None: not declared)
    layout: TileLayout | None = None  # windowed aggregations: the row holds tiles
    casts: tuple[Any, ...] = ()  # per feature: the declared type's Python constructor


@dataclass(frozen=True)
class CompiledPlan:
    plan: RequestPlan
    steps: tuple[_ViewStep, ...]
    dtypes: dict[str, Any]
    echoed: frozenset[str]  # entity-row columns returned with the features: the join keys
    od_inputs: tuple[tuple[str, ...], ...]  # per on-demand view: one column per source view


_KEY_TYPES: dict[Any, Any] = {Int32: int, Int64: int, String: str}
_KEY_RANGES: dict[Any, tuple[int, int]] = {Int32: (-(2**31), 2**31 - 1),
                                           Int64: (-(2**63), 2**63 - 1)}  # fmt: skip


def key_dtypes(snapshot: Snapshot, view: Any) -> dict[str, Any]:
    """Declared dtypes of a view's join keys: its schema's key fields, else its entities'."""
    found = {f.name: f.dtype for f in view.entity_columns}
    for name in view.entities:
        entity = snapshot.entities.get(name)
        if entity is not None and entity.dtype is not None:
            for key in entity.join_keys:
                found.setdefault(key, entity.dtype)
    return found


def compile_plan(plan: RequestPlan, snapshot: Snapshot) -> CompiledPlan:
    steps = []
    for v in plan.views:
        stored = online_source(v, snapshot)  # the served version, whose values the store has
        mapping = dict(zip(v.view.join_keys, v.entity_keys, strict=True))
        names = tuple(sorted(v.view.join_keys))
        ttl = v.view.ttl
        dtypes = key_dtypes(snapshot, v.view)
        steps.append(
            _ViewStep(
                table=stored.name,
                key_names=names,
                row_columns=tuple(mapping[n] for n in names),
                ttl_us=int(ttl.total_seconds() * 1_000_000) if ttl else 0,
                features=tuple((c.feature.name, c.name) for c in v.columns),
                key_types=tuple(_KEY_TYPES.get(dtypes.get(n)) for n in names),
                key_dtypes=tuple(dtypes.get(n) for n in names),
                layout=layout_of(stored)
                if isinstance(stored, StreamFeatureView) and stored.aggregations
                else None,
                casts=tuple(_CASTS.get(c.feature.dtype) for c in v.columns),
            )
        )
    return CompiledPlan(
        plan, tuple(steps), _dtypes(plan), _echoed(plan, snapshot), _od_inputs(plan)
    )


def _echoed(plan: RequestPlan, snapshot: Snapshot) -> frozenset[str]:
    """The entity-row columns a response returns, as Feast's does: the join keys of the
    request's views and of every registered entity; never request data or other columns."""
    keys = set(plan.entity_keys)
    for entity in snapshot.entities.values():
        keys.update(entity.join_keys)
    return frozenset(keys - {f.name for f in plan.request_fields})


def _od_inputs(plan: RequestPlan) -> tuple[tuple[str, ...], ...]:
    """Per on-demand view, one column of each feature view it reads: a view's columns share
    its per-row NOT_FOUND and OUTSIDE_MAX_AGE, so one column tells whether it has the row."""
    views = {v.projection.name_to_use: v for v in plan.views}
    return tuple(
        tuple(views[s.name_to_use].columns[0].name for s in od.view.sources
              if views[s.name_to_use].columns)
        for od in plan.on_demand
    )  # fmt: skip


class OnlineResponse:
    """Feature values for a list of entity rows, with a status and event time per value.

    ``to_dict()`` gives Feast's shape: ``{"user_id": [1001], "total_purchases": [45], ...}``.
    """

    def __init__(
        self,
        entities: dict[str, list[Any]],
        values: dict[str, list[Any]],
        statuses: dict[str, list[str]],
        timestamps: dict[str, list[int | None]],
        dtypes: dict[str, Any],
    ) -> None:
        self.entities = entities
        self.values = values
        self.statuses = statuses
        self.timestamps = timestamps
        self.dtypes = dtypes

    @property
    def feature_names(self) -> list[str]:
        return list(self.values)

    def to_dict(self, include_event_timestamps: bool = False) -> dict[str, list[Any]]:
        """The join key columns, then the features, each a list with one value per entity
        row (request data and other columns of the entity rows are not returned)."""
        out: dict[str, list[Any]] = {**self.entities}
        for name, vals in self.values.items():
            out[name] = _to_python(vals, self.dtypes.get(name))
            if include_event_timestamps:
                out[f"{name}__ts"] = [_datetime(t) for t in self.timestamps[name]]
        return out

    def to_arrow(self) -> Any:
        """The values as a ``pyarrow.Table`` typed by the features' dtypes."""
        import pyarrow as pa

        from pitstop.types import to_arrow

        cols = {k: pa.array(v) for k, v in self.entities.items()}
        for name, vals in self.values.items():
            dtype = self.dtypes.get(name)
            cols[name] = pa.array(vals, type=to_arrow(dtype) if dtype is not None else None)
        return pa.table(cols)

    def to_df(self) -> Any:
        """The values as a pandas DataFrame (nullable dtypes for integers and booleans)."""
        from pitstop.offline.job import arrow_to_pandas

        return arrow_to_pandas(self.to_arrow())

    def __repr__(self) -> str:
        return f"OnlineResponse({self.to_dict()!r})"


def unreadable(reported: set[str], table: str, exc: BaseException) -> None:
    """Log, once per view (``reported`` holds the views logged), that a stored value could
    not be decoded; the read serves that entity as ``NOT_FOUND``, every other one as usual."""
    if table in reported:
        return
    reported.add(table)
    logger.warning(
        "feature view %r: a stored online value cannot be decoded (%s); such entities are "
        "served as NOT_FOUND until written again (materialize or push them)",
        table,
        str(exc) or type(exc).__name__,
    )


def _datetime(us: int | None) -> Any:
    if us is None:
        return None
    from datetime import UTC, datetime, timedelta

    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def _to_python(values: list[Any], dtype: Any) -> list[Any]:
    if dtype is UnixTimestamp:
        return [_datetime(v) if isinstance(v, int) else v for v in values]
    return values


_CASTS: dict[Any, Any] = {
    Int32: int, Int64: int, Float32: float, Float64: float, String: str, Bool: bool,
}  # fmt: skip


def _cast(values: list[Any], dtype: Any, view: str, column: str) -> list[Any]:
    """Python-mode outputs to the declared dtype (the online twin of ``cast_output``)."""
    caster = _CASTS.get(dtype)
    if caster is None or isinstance(dtype, Array):
        return values
    try:
        return [None if v is None else caster(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise RetrievalError(
            f"on-demand feature view {view!r}: column {column!r} holds values that cannot be "
            f"cast to the declared {dtype} ({exc}); fix the function or the schema"
        ) from exc


class OnlineRetriever:
    """Serves ``get_online_features`` from one online store and the registry."""

    def __init__(self, registry: Registry, store: OnlineStore, enforce_ttl: bool = True) -> None:
        self.registry = registry
        self.store = store
        self.enforce_ttl = enforce_ttl
        self._plans: dict[tuple[Any, ...], CompiledPlan] = {}
        self._unreadable: set[str] = set()  # views whose undecodable values were logged
        self._allowed: dict[tuple[int, Actor], Snapshot] = {}  # plan, caller -> checked under

    def compiled(
        self, snapshot: Snapshot, features: Sequence[str] | FeatureService, full: bool
    ) -> CompiledPlan:
        if isinstance(features, FeatureService):
            key: tuple[Any, ...] = (snapshot.serial, "service", features.name, full)
        else:
            key = (snapshot.serial, tuple(features), full)
        found = self._plans.get(key)
        if found is None:
            if len(self._plans) > 256:
                self._plans.clear()
            plan = build_plan(snapshot, features, full)
            found = self._plans[key] = compile_plan(plan, snapshot)
        return found

    def get_online_features(
        self,
        features: Sequence[str] | FeatureService,
        entity_rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
        full_feature_names: bool = False,
    ) -> OnlineResponse:
        snapshot = self.registry.snapshot()
        compiled = self.compiled(snapshot, features, full_feature_names)
        policy = policy_of(snapshot)
        if policy.enabled:
            self._authorize(policy, snapshot, compiled)
        columns, n = _columns(entity_rows)
        steps = compiled.steps
        requests = []
        for step in steps:
            requests.append((step.table, _keys(step, columns, n)))
        rows = self.store.read(requests)
        now_us = time.time_ns() // 1000
        values: dict[str, list[Any]] = {}
        statuses: dict[str, list[str]] = {}
        stamps: dict[str, list[int | None]] = {}
        for step, found in zip(steps, rows, strict=True):
            self._fill(step, found, now_us, values, statuses, stamps)
        plan = compiled.plan
        for od, inputs in zip(plan.on_demand, compiled.od_inputs, strict=True):
            _run_on_demand(plan, od, columns, n, values, statuses, stamps)
            if inputs:
                _unavailable_inputs(od, [statuses[c] for c in inputs], values, statuses)
        hidden = plan.hidden_columns
        for name in hidden:
            values.pop(name, None)
            statuses.pop(name, None)
            stamps.pop(name, None)
        order = plan.output_names
        echoed = compiled.echoed
        return OnlineResponse(
            {k: v for k, v in columns.items() if k in echoed},
            {k: values[k] for k in order},
            {k: statuses[k] for k in order},
            {k: stamps[k] for k in order},
            compiled.dtypes,
        )

    def _authorize(self, policy: Policy, snapshot: Snapshot, compiled: CompiledPlan) -> None:
        """``read_online`` on every view the plan reads, checked once per plan and caller."""
        key = (id(compiled), current_actor())
        if self._allowed.get(key) is snapshot:
            return
        for view in guarded(compiled.plan, snapshot):
            authorize(policy, "read_online", Resource.of(view))
        if len(self._allowed) > 4096:
            self._allowed.clear()
        self._allowed[key] = snapshot

    def _fill(
        self,
        step: _ViewStep,
        found: list[ReadRow | None],
        now_us: int,
        values: dict[str, list[Any]],
        statuses: dict[str, list[str]],
        stamps: dict[str, list[int | None]],
    ) -> None:
        cols = [(f, c, values.setdefault(c, []), statuses.setdefault(c, []),
                 stamps.setdefault(c, [])) for f, c in step.features]  # fmt: skip
        if step.layout is not None:
            _fill_windows(step, cols, found, now_us, self._unreadable)
            return
        expire = step.ttl_us if self.enforce_ttl else 0
        for row in found:
            if row is None:
                for _, _, vals, sts, tss in cols:
                    vals.append(None)
                    sts.append(NOT_FOUND)
                    tss.append(None)
                continue
            ts = row.event_ts
            if expire and now_us - ts > expire:
                for _, _, vals, sts, tss in cols:
                    vals.append(None)
                    sts.append(OUTSIDE_MAX_AGE)
                    tss.append(ts)
                continue
            try:
                decoded = decode_value(row.value)
            except _UNREADABLE as exc:  # unreadable bytes: served as an unknown entity
                unreadable(self._unreadable, step.table, exc)
                for _, _, vals, sts, tss in cols:
                    vals.append(None)
                    sts.append(NOT_FOUND)
                    tss.append(None)
                continue
            for feature, _, vals, sts, tss in cols:
                v = decoded.get(feature)
                vals.append(v)
                sts.append(NULL_VALUE if v is None else PRESENT)
                tss.append(ts)


def _fill_windows(
    step: _ViewStep, cols: list[Any], found: list[Any], now_us: int, reported: set[str]
) -> None:
    """Aggregation values at ``now_us`` from tile rows, cast to the declared types; an unknown
    entity (or one whose stored tiles cannot be decoded) has empty windows."""
    assert step.layout is not None
    for row in found:
        try:
            result = read_values(step.layout, row, now_us)
        except _UNREADABLE as exc:
            unreadable(reported, step.table, exc)
            row, result = None, read_values(step.layout, None, now_us)
        ts = None if row is None else row.event_ts
        for (feature, _, vals, sts, tss), cast in zip(cols, step.casts, strict=True):
            v = result.get(feature)
            if v is not None and cast is not None:
                v = cast(v)
            vals.append(v)
            sts.append(NOT_FOUND if row is None else NULL_VALUE if v is None else PRESENT)
            tss.append(ts)


def _columns(
    entity_rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
) -> tuple[dict[str, list[Any]], int]:
    """Entity rows as columns; both Feast forms (list of dicts, dict of lists) are accepted."""
    if isinstance(entity_rows, Mapping):
        cols = {k: list(v) for k, v in entity_rows.items()}
    elif isinstance(entity_rows, Sequence) and not isinstance(entity_rows, str):
        if not entity_rows:
            return {}, 0
        names = list(entity_rows[0])
        cols = {k: [] for k in names}
        for i, row in enumerate(entity_rows):
            if not isinstance(row, Mapping) or set(row) != set(names):
                got = sorted(row) if isinstance(row, Mapping) else repr(row)
                raise RetrievalError(
                    f"entity row {i} has columns {got}, but row 0 has {sorted(names)}; "
                    "every row needs the same keys"
                )
            for k in names:
                cols[k].append(row[k])
    else:
        raise RetrievalError(
            "entity_rows must be a list of dicts ([{'user_id': 1}]) or a dict of lists "
            "({'user_id': [1, 2]})"
        )
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise RetrievalError(
            f"entity_rows columns have different lengths: { {k: len(v) for k, v in cols.items()} }"
        )
    return cols, lengths.pop() if lengths else 0


def _keys(step: _ViewStep, columns: Mapping[str, list[Any]], n: int) -> list[bytes]:
    try:
        key_cols = [columns[c] for c in step.row_columns]
    except KeyError as exc:
        raise RetrievalError(
            f"entity rows lack join key {exc.args[0]!r} needed by feature view "
            f"{step.table!r}; given: {sorted(columns)}"
        ) from None
    names = step.key_names
    for name, col, want, dtype in zip(names, key_cols, step.key_types, step.key_dtypes,
                                      strict=True):  # fmt: skip
        if want is not None:
            _check_key(step.table, name, col, want, dtype)
    if len(key_cols) == 1:
        (col,) = key_cols
        name = names[0]
        return [entity_key((name,), (v,)) for v in col]
    return [entity_key(names, vals) for vals in zip(*key_cols, strict=True)]


_UNAVAILABLE = frozenset((NOT_FOUND, OUTSIDE_MAX_AGE))


def on_demand_status(inputs: Sequence[str]) -> str | None:
    """The status of an on-demand view's outputs in one row, from the statuses of the feature
    views it reads in that row (one per view): ``NOT_FOUND`` when none of them has the entity,
    ``OUTSIDE_MAX_AGE`` when none has a fresh row but one has an expired one; ``None`` when
    any of them has the row: the outputs are computed, ``PRESENT`` or ``NULL_VALUE`` by value.
    A view reading only request data is always computed (``inputs`` empty)."""
    if not inputs or any(s not in _UNAVAILABLE for s in inputs):
        return None
    return OUTSIDE_MAX_AGE if OUTSIDE_MAX_AGE in inputs else NOT_FOUND


def _unavailable_inputs(
    od: OnDemandRequest,
    inputs: list[list[str]],
    values: dict[str, list[Any]],
    statuses: dict[str, list[str]],
) -> None:
    """Null the outputs of rows whose inputs are all missing, with :func:`on_demand_status`."""
    for i, row in enumerate(zip(*inputs, strict=True)):
        if row[0] in _UNAVAILABLE:
            status = on_demand_status(row)
            if status is not None:
                for c in od.columns:
                    values[c.name][i] = None
                    statuses[c.name][i] = status


def _check_key(view: str, name: str, col: list[Any], want: type, dtype: Any) -> None:
    """Each value of a join key column has the key's type and fits its declared dtype."""
    bounds = _KEY_RANGES.get(dtype)
    low: Any
    high: Any
    low, high = bounds or (None, None)
    for v in col:
        if type(v) is want and (low is None or low <= v <= high):
            continue  # the common case: a plain int in range, or a str
        if want is int and hasattr(v, "__index__") and type(v) is not bool:
            if low is None or low <= v <= high:
                continue
        elif not (bounds and isinstance(v, float) and v.is_integer() and abs(v) >= 2**63):
            # (JSON parsers read an integer beyond 64 bits as a float: a range error below)
            raise RetrievalError(
                f"join key {name!r} of feature view {view!r} takes {want.__name__} values, "
                f"got {v!r} ({type(v).__name__})"
            )
        raise RetrievalError(
            f"join key {name!r} of feature view {view!r} is {dtype}: {v!r} is out of its "
            f"range ({low} to {high})"
        )


def _run_on_demand(
    plan: RequestPlan,
    od: OnDemandRequest,
    columns: Mapping[str, list[Any]],
    n: int,
    values: dict[str, list[Any]],
    statuses: dict[str, list[str]],
    stamps: dict[str, list[int | None]],
) -> None:
    inputs = input_columns(plan, od, values, columns, "every entity row")
    if od.view.mode == "python":
        result = call_udf(od.view, inputs)
        if not isinstance(result, Mapping):
            raise RetrievalError(
                f"on-demand feature view {od.view.name!r}: a python-mode function must return "
                f"a dict of lists, got {type(result).__name__}"
            )
        outputs = {
            c.name: _cast(_column(od, result, c.feature.name, n), c.feature.dtype, od.view.name,
                          c.feature.name)
            for c in od.columns
        }  # fmt: skip
    else:
        import pyarrow as pa

        from pitstop.engine.ondemand import run_on_demand

        table = run_on_demand(od.view, pa.table(inputs))
        outputs = {c.name: table.column(c.feature.name).to_pylist() for c in od.columns}
    for name, vals in outputs.items():
        values[name] = vals
        statuses[name] = [NULL_VALUE if v is None else PRESENT for v in vals]
        stamps[name] = [None] * n


def _column(od: OnDemandRequest, result: Mapping[str, Any], name: str, n: int) -> list[Any]:
    if name not in result:
        raise RetrievalError(
            f"on-demand feature view {od.view.name!r}: the function did not return column "
            f"{name!r} declared in its schema (returned: {sorted(result)})"
        )
    vals = list(result[name])
    if len(vals) != n:
        raise RetrievalError(
            f"on-demand feature view {od.view.name!r}: column {name!r} has {len(vals)} values "
            f"for {n} entity rows; return one value per row"
        )
    return vals


def _dtypes(plan: RequestPlan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v in plan.views:
        for c in v.columns:
            out[c.name] = c.feature.dtype
    for od in plan.on_demand:
        for c in od.columns:
            out[c.name] = c.feature.dtype
    return out
