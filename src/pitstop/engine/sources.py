"""Check file sources against the definitions that read them, before ``apply`` writes anything.

Only schemas are read, never rows, through the offline engine
(:meth:`~pitstop.offline.base.OfflineEngine.schema`; the DuckDB engine reads Parquet footers and
CSV headers without loading DuckDB), pushed rows included. Every problem of every view is
collected and reported in one
:class:`~pitstop.errors.DataSourceError`: a missing file, a missing column (join key, event or
created timestamp, feature, aggregated column), a timestamp column of another type, and a
declared dtype the stored column cannot hold (:func:`pitstop.types.can_hold`).

Request sources need no data, so they are not checked; a push source is checked through its
batch source, once that has rows (before the first offline push it has none).
``apply --skip-source-validation`` skips all of this, for data not reachable where ``apply``
runs.

>>> check_sources([user_features], Path("feature_repo"), engine)   # doctest: +SKIP
DataSourceError: 1 problem with the repo's data sources: ...
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pitstop.definitions.base import Definition
from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.sources import FileSource, PushSource, SparkSource
from pitstop.definitions.stream import StreamFeatureView
from pitstop.errors import DataSourceError, suggest
from pitstop.types import FeastType, Float64, String, can_hold, holds_timestamps

if TYPE_CHECKING:
    import pyarrow as pa

    from pitstop.offline.base import OfflineEngine

__all__ = ["Columns", "check_sources", "source_columns", "view_problems"]

_SKIP_HINT = (
    "Fix the data or the definitions. If the data is not reachable from here, skip these checks "
    "with `pitstop apply --skip-source-validation` (Python: skip_source_validation=True)."
)


class Columns:
    """A source's columns and their Arrow types; ``text`` for CSV (every column is text).

    (Plain classes here: a dataclass costs milliseconds to define, paid by every ``apply``.)
    """

    __slots__ = ("text", "types")

    def __init__(self, types: dict[str, pa.DataType], text: bool) -> None:
        self.types = types
        self.text = text


def check_sources(objects: Sequence[Definition], repo_path: Path, offline: OfflineEngine) -> None:
    """Raise one :class:`DataSourceError` listing every problem between ``objects`` (resolved
    definitions: views with their join keys) and the data their sources point to, as
    ``offline`` reads it."""
    # a Spark table or query is read only by Spark, not where `apply` runs: not checked here
    views = [o for o in objects if isinstance(o, FeatureView) and not _in_catalog(o.batch_source)]
    used: dict[str, list[str]] = {}  # source name -> the views reading it
    for view in views:
        used.setdefault(view.batch_source.name, []).append(_label(view))
    pushes = [o for o in (*objects, *(v.source for v in views)) if isinstance(o, PushSource)]
    pushes = [p for p in pushes if not _in_catalog(p.batch_source)]
    loose = [_batch(o) for o in objects if isinstance(o, FileSource | PushSource)]
    loose = [s for s in loose if not _in_catalog(s)]
    from pitstop.engine.historical import source_ref

    problems: list[str] = []
    # a push-fed source has no rows until the first offline push: nothing to check yet
    read: dict[str, Columns | None] = {
        p.batch_source.name: None
        for p in pushes
        if not offline.has_rows(source_ref(p.batch_source, repo_path))
    }
    for view in views:
        who = ", ".join(used[view.batch_source.name])
        columns = _columns(offline, view.batch_source, repo_path, read, problems, who)
        if columns is not None:
            problems += view_problems(view, columns)
    for source in loose:
        if source.name in used or source.name in read:
            continue
        who = f"data source {source.name!r}"
        columns = _columns(offline, source, repo_path, read, problems, who)
        if columns is not None:
            problems += _timestamp_problems(
                f"data source {source.name!r}", source, source.timestamp_field, columns
            )
    if problems:
        n = len(problems)
        head = f"{n} problem{'s' if n > 1 else ''} with the repo's data sources:"
        raise DataSourceError("\n".join([head, *(f"  - {p}" for p in problems), _SKIP_HINT]))


def _in_catalog(source: FileSource) -> bool:
    return isinstance(source, SparkSource) and source.in_catalog


def _batch(source: FileSource | PushSource) -> FileSource:
    return source.batch_source if isinstance(source, PushSource) else source


def _label(view: FeatureView) -> str:
    kind = "stream feature view" if isinstance(view, StreamFeatureView) else "feature view"
    return f"{kind} {view.name!r}"


def _columns(
    offline: OfflineEngine,
    source: FileSource,
    repo_path: Path,
    read: dict[str, Columns | None],
    problems: list[str],
    who: str,
) -> Columns | None:
    """The source's columns (read once per source); a read failure is one problem."""
    if source.name not in read:
        try:
            read[source.name] = source_columns(offline, source, repo_path)
        except DataSourceError as exc:
            read[source.name] = None
            problems.append(f"{who}: {exc}")
    return read[source.name]


def source_columns(offline: OfflineEngine, source: FileSource, repo_path: Path) -> Columns:
    """The columns of a file source's data as the offline engine reports them
    (:meth:`~pitstop.offline.base.OfflineEngine.schema`: metadata only, never rows)."""
    from pitstop.engine.historical import source_ref

    schema = offline.schema(source_ref(source, repo_path))
    return Columns({f.name: f.type for f in schema}, text=source.file_format == "csv")


def view_problems(view: FeatureView, columns: Columns) -> list[str]:
    """What in ``columns`` does not fit ``view``: missing or unfit columns, one line each."""
    who = _label(view)
    source = view.batch_source
    problems = _timestamp_problems(who, source, view.timestamp_field, columns)
    declared = {f.name: f for f in view.entity_columns}
    for key in view.join_keys:
        dtype = _find(who, source, key, "join key", columns, problems)
        field = declared.get(key)
        if dtype is not None and field is not None:
            problems += _fits(who, source, key, field.dtype, dtype, columns, "join key")
    if isinstance(view, StreamFeatureView) and view.aggregations:
        schema = {f.name: f for f in view.schema}
        for agg in view.aggregations:
            dtype = _find(who, source, agg.column, "aggregated column", columns, problems)
            field = schema.get(agg.column)
            if dtype is None:
                continue
            if field is not None:
                problems += _fits(who, source, agg.column, field.dtype, dtype, columns, "column")
            elif agg.function in ("sum", "mean", "avg") and not can_hold(Float64, dtype):
                problems.append(
                    f"{who}: aggregation {agg.function} of {agg.column!r} needs numbers, but the "
                    f"column holds {dtype} in {_where(source)}; aggregate a numeric column"
                )
        return problems
    for feature in view.features:
        dtype = _find(who, source, feature.name, "feature", columns, problems)
        if dtype is not None:
            problems += _fits(who, source, feature.name, feature.dtype, dtype, columns, "feature")
    return problems


def _timestamp_problems(
    who: str, source: FileSource, timestamp_field: str, columns: Columns
) -> list[str]:
    problems: list[str] = []
    roles = [("timestamp field", timestamp_field)]
    if source.created_timestamp_column:
        roles.append(("created timestamp column", source.created_timestamp_column))
    for role, name in roles:
        if not name:
            continue
        dtype = _find(who, source, name, role, columns, problems)
        if dtype is not None and not holds_timestamps(dtype):
            problems.append(
                f"{who}: {role} {name!r} holds {dtype} in {_where(source)}, which cannot hold "
                "timestamps; store timestamps, dates or ISO 8601 text there, or name another "
                "column"
            )
    return problems


def _find(
    who: str, source: FileSource, name: str, role: str, columns: Columns, problems: list[str]
) -> pa.DataType | None:
    raw = _raw(source, name)
    if raw in columns.types:
        return columns.types[raw]
    mapped = f" (mapped from {raw!r})" if raw != name else ""
    problems.append(
        f"{who}: {role} {name!r}{mapped} is not a column of {_where(source)}."
        f"{suggest(raw, columns.types)}"
    )
    return None


def _fits(
    who: str,
    source: FileSource,
    name: str,
    declared: FeastType,
    dtype: pa.DataType,
    columns: Columns,
    role: str,
) -> list[str]:
    if can_hold(declared, dtype) or (columns.text and declared == String):
        return []
    column = _raw(source, name)
    return [
        f"{who}: {role} {name!r} is declared {declared}, but column {column!r} of "
        f"{_where(source)} holds {dtype}; declare a dtype that can hold it or convert the data"
    ]


def _raw(source: FileSource, name: str) -> str:
    """The stored column called ``name`` after the source's field mapping."""
    for raw, mapped in source.field_mapping.items():
        if mapped == name:
            return raw
    return name


def _where(source: FileSource) -> str:
    return f"{source.path} (source {source.name!r})"
