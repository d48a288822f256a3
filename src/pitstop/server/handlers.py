"""The endpoints: a request body (parsed JSON) in, a JSON-ready answer out.

Each handler checks the shape of its body, calls the same :class:`~pitstop.FeatureStore`
method an in-process caller would, and shapes the answer the way Feast's feature server does.
No feature logic lives here: naming, statuses, TTL, ordering and validation of the data are
the engine's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pitstop.definitions.field import Field
from pitstop.definitions.service import FeatureService
from pitstop.definitions.sources import push_mode
from pitstop.engine.request import build_plan
from pitstop.errors import RetrievalError
from pitstop.server import wire
from pitstop.server.metrics import Metrics

if TYPE_CHECKING:
    import pyarrow as pa

    from pitstop.engine.online import OnlineResponse
    from pitstop.feature_store import FeatureStore
    from pitstop.registry.snapshot import Snapshot

_HEALTH_VIEW = "__pitstop_health__"


@dataclass(frozen=True)
class _Shape:
    """What the server needs to know about one feature list, cached per registry serial."""

    serial: int
    request_fields: tuple[Field, ...]  # request data on-demand views need (type-checked)
    convert: dict[str, Callable[[list[Any]], list[Any]]]  # columns needing JSON conversion


def _shape(snapshot: Snapshot, features: list[str] | FeatureService, full: bool) -> _Shape:
    plan = build_plan(snapshot, features, full)
    convert = {}
    columns = [c for v in plan.views for c in v.columns] + [
        c for od in plan.on_demand for c in od.columns
    ]
    for column in columns:
        fn = wire.converter(column.feature.dtype)
        if fn is not None and column.visible:
            convert[column.name] = fn
    return _Shape(snapshot.serial, plan.request_fields, convert)


class Endpoints:
    """The endpoint handlers of one server process, over one store."""

    def __init__(self, store: FeatureStore, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics
        self._shapes: dict[tuple[Any, ...], _Shape] = {}

    # --- reads ---------------------------------------------------------------------------

    def get_online_features(self, body: dict[str, Any]) -> dict[str, Any]:
        entities = wire.columns(body, "entities")
        if not entities:
            raise RetrievalError(
                "'entities' has no columns; send the join keys, e.g. {\"user_id\": [1001]}"
            )
        full = wire.field(body, "full_feature_names", bool, False)
        snapshot = self.store.catalog.snapshot()
        service = wire.field(body, "feature_service", str, None)
        features: list[str] | FeatureService
        if service is not None and body.get("features") is not None:
            raise RetrievalError(
                "the request body has both 'features' and 'feature_service'; send one of them"
            )
        if service == "":
            raise RetrievalError("'feature_service' is empty; name a feature service")
        if service is not None:
            features = snapshot.get(FeatureService, service)
            key: tuple[Any, ...] = (service, full, True)
        else:
            refs = wire.string_list(body, "features")
            if not refs:
                raise RetrievalError(
                    "the request body needs 'features' (a non-empty list of 'view:feature') "
                    "or 'feature_service'"
                )
            features, key = refs, (tuple(refs), full)
        shape = self._shapes.get(key)
        if shape is None or shape.serial != snapshot.serial:
            if len(self._shapes) > 1024:
                self._shapes.clear()
            shape = self._shapes[key] = _shape(snapshot, features, full)
        for f in shape.request_fields:
            if f.name in entities:
                wire.check_request_field(f.name, f.dtype, entities[f.name])
        response = self.store.get_online_features(features, entities, full)
        return self._feast_shape(response, shape)

    def _feast_shape(self, response: OnlineResponse, shape: _Shape) -> dict[str, Any]:
        """Feast's column-major JSON: the join key columns first, then the features."""
        columns = response.entities
        names = list(columns)
        n = len(next(iter(response.values.values()), ()))
        self.metrics.entity_rows += n
        present, epoch = ["PRESENT"] * n, [wire.EPOCH] * n
        results: list[dict[str, list[Any]]] = [
            {"values": columns[k], "statuses": present, "event_timestamps": epoch} for k in names
        ]
        memo: dict[int | None, str] = {}
        statuses, timestamps, convert = response.statuses, response.timestamps, shape.convert
        for name, values in response.values.items():
            fn = convert.get(name)
            results.append({
                "values": values if fn is None else fn(values),
                "statuses": statuses[name],
                "event_timestamps": wire.stamps(timestamps[name], memo),
            })  # fmt: skip
            names.append(name)
        return {"metadata": {"feature_names": names}, "results": results}

    # --- writes ---------------------------------------------------------------------------

    def push(self, body: dict[str, Any]) -> dict[str, Any]:
        name = wire.required(body, "push_source_name", str)
        mode = push_mode(wire.field(body, "to", str, "online"))
        to = mode.name.lower()
        table = _table(wire.columns(body, "df"))
        cache = wire.field(body, "allow_registry_cache", bool, True)
        fill = wire.field(body, "allow_missing_columns", bool, False)
        rows = self.store.push(
            name, table, allow_registry_cache=cache, to=mode, allow_missing_columns=fill
        )
        self.metrics.pushed(name, to, rows)
        return {"push_source_name": name, "to": to, "rows": table.num_rows, "written": rows}

    def write_to_online_store(self, body: dict[str, Any]) -> dict[str, Any]:
        view = wire.required(body, "feature_view_name", str)
        table = _table(wire.columns(body, "df"))
        cache = wire.field(body, "allow_registry_cache", bool, True)
        rows = self.store.write_to_online_store(view, table, allow_registry_cache=cache)
        self.metrics.written(view, rows)
        return {"feature_view_name": view, "rows": table.num_rows, "written": rows}

    def materialize(self, body: dict[str, Any]) -> dict[str, Any]:
        start, end = wire.timestamp(body, "start_ts"), wire.timestamp(body, "end_ts")
        views = wire.string_list(body, "feature_views")
        if start > end:
            raise RetrievalError(f"'start_ts' {start.isoformat()} is after 'end_ts'")
        return _materialized(self.store.materialize(start, end, views))

    def materialize_incremental(self, body: dict[str, Any]) -> dict[str, Any]:
        end = wire.timestamp(body, "end_ts")
        views = wire.string_list(body, "feature_views")
        return _materialized(self.store.materialize_incremental(end, views))

    # --- operations -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Ask the registry and the online store one question each; raise if either fails."""
        serial = self.store.catalog.serial()
        started = time.perf_counter()
        self.store.online.read([(_HEALTH_VIEW, [b"\x00"])])
        return {
            "status": "ok",
            "registry_serial": serial,
            "online_store_ms": round((time.perf_counter() - started) * 1000, 3),
        }


def _table(df: dict[str, list[Any]]) -> pa.Table:
    """The ``df`` columns as an Arrow table; values Arrow cannot hold are a 400."""
    from pitstop.engine.push import as_table

    if not df:
        raise RetrievalError("'df' has no columns; send {\"column\": [values, ...], ...}")
    return as_table(df, "'df'")


def _materialized(results: list[Any]) -> dict[str, Any]:
    return {
        "materialized": [
            {
                "feature_view": r.view,
                "start": r.start.isoformat() if r.start else None,
                "end": r.end.isoformat(),
                "rows": r.rows,
                "seconds": round(r.seconds, 3),
            }
            for r in results
        ]
    }
