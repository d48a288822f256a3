"""Historical retrieval: turn a resolved feature request into the one point-in-time plan.

The offline engine executes the plan; on-demand views run afterwards on every streamed batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop.access import check_all
from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.refs import FeatureRef
from pitstop.definitions.service import FeatureService
from pitstop.definitions.sources import FileSource, SparkSource
from pitstop.definitions.stream import StreamFeatureView
from pitstop.engine.ondemand import on_demand_transform
from pitstop.engine.request import RequestPlan, ViewRequest, build_plan, guarded
from pitstop.errors import DataSourceError, RetrievalError

if TYPE_CHECKING:
    import pyarrow as pa

    from pitstop.offline.base import OfflineEngine
    from pitstop.offline.job import RetrievalJob
    from pitstop.offline.pit import AggregateJoin, SourceRef, ViewJoin
    from pitstop.registry.snapshot import Snapshot


def source_ref(source: FileSource, repo_path: Path) -> SourceRef:
    """Where a file source's rows are, with relative paths resolved against the repo root
    (its pushed rows by :func:`pitstop.offline.sources.pushed_location`'s rule; a
    :class:`SparkSource` over a table or query: that table or query)."""
    from pitstop.offline.pit import SourceRef

    if isinstance(source, SparkSource) and source.in_catalog:
        return SourceRef(
            path="",
            file_format=source.file_format,
            timestamp_field=source.timestamp_field,
            created_timestamp_column=source.created_timestamp_column or None,
            field_mapping=source.field_mapping,
            name=source.name,
            table=source.table or None,
            query=source.query or None,
        )
    return SourceRef(
        path=source.resolve_path(repo_path),
        file_format=source.file_format,
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_column or None,
        field_mapping=source.field_mapping,
        name=source.name,
    )


def check_capabilities(
    engine: OfflineEngine, sources: Sequence[SourceRef], entity: Any = None
) -> None:
    """The engine reads every source (its file format, or a Spark table or query: an engine
    with catalog sources) and, for a SQL entity frame, takes SQL."""
    caps = engine.capabilities
    for source in sources:
        if source.in_catalog and not caps.catalog_sources:
            what = f"the Spark table {source.table!r}" if source.table else "a Spark SQL query"
            raise DataSourceError(
                f"SparkSource {source.display_name!r} reads {what}, which the configured "
                "offline engine cannot read; set `offline_store: {type: spark}` in "
                "feature_store.yaml, or point the source at Parquet or CSV files (path=...)."
            )
        if source.file_format not in caps.file_formats:
            raise RetrievalError(
                f"The offline engine reads {', '.join(caps.file_formats)} files, not source "
                f"{source.display_name!r} ({source.file_format}); convert the data or configure "
                "an engine that reads it."
            )
    if isinstance(entity, str) and not caps.entity_sql:
        raise RetrievalError(
            "The offline engine does not run SQL entity queries; pass the entity frame as a "
            "pyarrow Table or a pandas or polars DataFrame."
        )


def view_join(
    view: FeatureView,
    repo_path: Path,
    columns: Sequence[tuple[str, str]] | None = None,
    entity_keys: Sequence[str] | None = None,
    alias: str | None = None,
) -> ViewJoin:
    """The plan entry for one view: by default all its features under their own names."""
    from pitstop.offline.pit import ViewJoin

    return ViewJoin(
        name=alias or view.name,
        source=replace(
            source_ref(view.batch_source, repo_path), timestamp_field=view.timestamp_field
        ),
        entity_keys=tuple(entity_keys or view.join_keys),
        source_keys=view.join_keys,
        columns=tuple(
            columns if columns is not None else ((f.name, f.name) for f in view.features)
        ),
        ttl=view.ttl,
    )


def _join_for(vr: ViewRequest, repo_path: Path) -> ViewJoin:
    cols = tuple((c.feature.name, c.name) for c in vr.columns)
    return view_join(vr.view, repo_path, cols, vr.entity_keys, vr.projection.name_to_use)


def aggregated(view: FeatureView) -> bool:
    """Whether ``view`` computes windowed aggregations (a stream view with aggregations)."""
    return isinstance(view, StreamFeatureView) and bool(view.aggregations)


def aggregate_join(vr: ViewRequest, repo_path: Path) -> AggregateJoin:
    """The windowed aggregations a request needs from one stream view."""
    from pitstop.offline.pit import AggregateJoin, WindowAggregate

    view = vr.view
    assert isinstance(view, StreamFeatureView)
    by_output = {f.name: a for a, f in zip(view.aggregations, view.features, strict=True)}
    aggs = []
    for c in vr.columns:
        agg = by_output[c.feature.name]
        aggs.append(WindowAggregate(agg.function, agg.column, agg.time_window, c.name))
    return AggregateJoin(
        name=vr.projection.name_to_use,
        source=replace(source_ref(view.batch_source, repo_path),
                       timestamp_field=view.timestamp_field),
        entity_keys=vr.entity_keys,
        source_keys=view.join_keys,
        aggregations=tuple(aggs),
    )  # fmt: skip


def cast_transform(types: Mapping[str, pa.DataType]) -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    """A per-batch step casting the columns named in ``types`` to those Arrow types (the
    declared types of windowed aggregations, which engines compute in their own)."""
    import pyarrow as pa

    def transform(batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = [
            col.cast(types[name]) if name in types and col.type != types[name] else col
            for name, col in zip(batch.schema.names, batch.columns, strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)

    return transform


def historical_features(
    snapshot: Snapshot,
    engine: OfflineEngine,
    repo_path: Path,
    entity_df: Any,
    features: Sequence[str] | FeatureService,
    *,
    full_feature_names: bool = False,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    filter_by_created_timestamp: bool = False,
    timestamp_column: str = "event_timestamp",
) -> RetrievalJob:
    """A lazy job joining ``features`` onto ``entity_df`` point-in-time correctly."""
    from pitstop.offline.pit import PitPlan

    plan = build_plan(snapshot, features, full_feature_names)
    check_all(snapshot, "read_offline", guarded(plan, snapshot))
    joins = tuple(_join_for(v, repo_path) for v in plan.views if not aggregated(v.view))
    windows = [aggregate_join(v, repo_path) for v in plan.views if aggregated(v.view)]
    sources = [j.source for j in joins] + [w.source for w in windows]
    check_capabilities(engine, sources, entity_df)
    if entity_df is None and windows:
        raise RetrievalError(
            "entity-less retrieval (start_date/end_date) does not support stream views with "
            f"windowed aggregations ({', '.join(w.name for w in windows)}); pass an entity_df"
        )
    if entity_df is None:
        if start_date is None and end_date is None:
            raise RetrievalError(
                "give an entity_df, or start_date/end_date to retrieve every feature row in a "
                "time range"
            )
        entity_df = _entities_in_range(engine, plan, joins, start_date, end_date)
    elif start_date is not None or end_date is not None:
        raise RetrievalError("start_date/end_date apply only when no entity_df is given")
    pit = PitPlan(joins, timestamp_column, filter_by_created_timestamp, aggregates=tuple(windows))
    steps = [cast_transform(_declared(plan, windows))] if windows else []
    job = engine.historical(entity_df, pit).with_transforms([*steps, on_demand_transform(plan)])
    job.metadata = RetrievalMetadata.of(plan, features, full_feature_names, snapshot.serial)
    return job


@dataclass(frozen=True)
class RetrievalMetadata:
    """What a historical retrieval returns: its features (``view:feature``, the views' own
    names), the service they came from, the join keys, and the registry version whose
    definitions it read."""

    features: tuple[str, ...]
    join_keys: tuple[str, ...]
    feature_service: str | None
    full_feature_names: bool
    registry_version: int | None = None

    @classmethod
    def of(
        cls,
        plan: RequestPlan,
        features: Sequence[str] | FeatureService,
        full: bool,
        registry_version: int | None = None,
    ) -> RetrievalMetadata:
        refs = [str(FeatureRef(v.view.name, v.projection.version, c.feature.name))
                for v in plan.views for c in v.columns if c.visible]  # fmt: skip
        refs += [str(FeatureRef(od.view.name, od.projection.version, c.feature.name))
                 for od in plan.on_demand for c in od.columns]  # fmt: skip
        service = features.name if isinstance(features, FeatureService) else None
        return cls(tuple(refs), plan.entity_keys, service, full, registry_version)


def _declared(plan: RequestPlan, windows: Sequence[AggregateJoin]) -> dict[str, pa.DataType]:
    """The declared Arrow types of the aggregations' outputs."""
    from pitstop.types import to_arrow

    outputs = {out for w in windows for out in w.output_columns}
    return {
        c.name: to_arrow(c.feature.dtype)
        for v in plan.views
        for c in v.columns
        if c.name in outputs
    }


def _entities_in_range(
    engine: OfflineEngine,
    plan: RequestPlan,
    joins: Sequence[ViewJoin],
    start: datetime | None,
    end: datetime | None,
) -> Any:
    """Entity-less mode: every (keys, event time) of the requested views in ``[start, end]``."""
    import pyarrow as pa

    keys = plan.entity_keys
    parts = []
    for vr, join in zip(plan.views, joins, strict=True):
        if set(vr.entity_keys) != set(keys):
            raise RetrievalError(
                "entity-less retrieval needs every requested view to share the same join keys; "
                f"{vr.projection.name_to_use!r} has {list(vr.entity_keys)}, the request "
                f"{list(keys)}. Pass an entity_df instead."
            )
        bare = replace(join, columns=(), ttl=None)  # keys and event times only
        table = engine.range(bare, start, end).to_arrow()
        ts = join.source.timestamp_field
        parts.append(
            pa.table({**{k: table.column(k) for k in keys}, "event_timestamp": table.column(ts)})
        )
    merged = pa.concat_tables(parts, promote_options="permissive")
    return (
        merged.group_by([*keys, "event_timestamp"])
        .aggregate([])
        .sort_by([("event_timestamp", "ascending"), *((k, "ascending") for k in keys)])
    )
