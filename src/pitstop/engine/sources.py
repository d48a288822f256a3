"""Check file sources against the definitions that read them, before ``apply`` writes anything.

Only schemas are read, never rows: a Parquet file's footer, a CSV file's header and the types
inferred from its first block, and the pushed part files next to a source
(``<file>.pushed/``). Every problem of every view is collected and reported in one
:class:`~pitstop.errors.DataSourceError`: a missing file, a missing column (join key, event or
created timestamp, feature, aggregated column), a timestamp column of another type, and a
declared dtype the stored column cannot hold (:func:`pitstop.types.can_hold`).

Request sources need no data, so they are not checked; a push source is checked through its
batch source, once that has rows (before the first offline push it has none).
``apply --skip-source-validation`` skips all of this, for data not reachable where ``apply``
runs.

>>> check_sources([user_features], Path("feature_repo"))   # doctest: +SKIP
DataSourceError: 1 problem with the repo's data sources: ...
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pitstop.definitions.base import Definition
from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.sources import FileSource, PushSource, SparkSource
from pitstop.definitions.stream import StreamFeatureView
from pitstop.errors import DataSourceError, suggest
from pitstop.offline.files import has_data, pushed_folder, resolve_path
from pitstop.types import FeastType, Float64, String, can_hold, holds_timestamps

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["MAX_FILES", "Columns", "check_sources", "source_columns", "view_problems"]

#: Files whose schemas are read per source: the first of its own files, the newest pushed parts.
MAX_FILES = 8
_CSV_SAMPLE_BYTES = 1 << 16
_SKIP_HINT = (
    "Fix the data or the definitions. If the data is not reachable from here, skip these checks "
    "with `pitstop apply --skip-source-validation` (Python: skip_source_validation=True)."
)


class _Location:
    """A file source's data as :func:`pitstop.offline.files.resolve_path` expects it."""

    __slots__ = ("display_name", "file_format", "path", "pushed")

    def __init__(self, source: FileSource, repo_path: Path) -> None:
        self.path = source.resolve_path(repo_path)
        self.file_format = source.file_format
        self.pushed: str | None = str(pushed_folder(source, repo_path))
        self.display_name = source.name


class Columns:
    """A source's columns and their Arrow types; ``text`` for CSV (every column is text).

    (Plain classes here: a dataclass costs milliseconds to define, paid by every ``apply``.)
    """

    __slots__ = ("text", "types")

    def __init__(self, types: dict[str, pa.DataType], text: bool) -> None:
        self.types = types
        self.text = text


def check_sources(objects: Sequence[Definition], repo_path: Path) -> None:
    """Raise one :class:`DataSourceError` listing every problem between ``objects`` (resolved
    definitions: views with their join keys) and the files their sources point to."""
    # a Spark table or query is read only by Spark, not where `apply` runs: not checked here
    views = [o for o in objects if isinstance(o, FeatureView) and not _in_catalog(o.batch_source)]
    used: dict[str, list[str]] = {}  # source name -> the views reading it
    for view in views:
        used.setdefault(view.batch_source.name, []).append(_label(view))
    pushes = [o for o in (*objects, *(v.source for v in views)) if isinstance(o, PushSource)]
    pushes = [p for p in pushes if not _in_catalog(p.batch_source)]
    loose = [_batch(o) for o in objects if isinstance(o, FileSource | PushSource)]
    loose = [s for s in loose if not _in_catalog(s)]
    problems: list[str] = []
    # a push-fed source has no rows until the first offline push: nothing to check yet
    read: dict[str, Columns | None] = {
        p.batch_source.name: None for p in pushes if not _has_data(p.batch_source, repo_path)
    }
    for view in views:
        who = ", ".join(used[view.batch_source.name])
        columns = _columns(view.batch_source, repo_path, read, problems, who)
        if columns is not None:
            problems += view_problems(view, columns)
    for source in loose:
        if source.name in used or source.name in read:
            continue
        columns = _columns(source, repo_path, read, problems, f"data source {source.name!r}")
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


def _has_data(source: FileSource, repo_path: Path) -> bool:
    return has_data(source.resolve_path(repo_path), str(pushed_folder(source, repo_path)))


def _label(view: FeatureView) -> str:
    kind = "stream feature view" if isinstance(view, StreamFeatureView) else "feature view"
    return f"{kind} {view.name!r}"


def _columns(
    source: FileSource,
    repo_path: Path,
    read: dict[str, Columns | None],
    problems: list[str],
    who: str,
) -> Columns | None:
    """The source's columns (read once per source); a read failure is one problem."""
    if source.name not in read:
        try:
            read[source.name] = source_columns(source, repo_path)
        except DataSourceError as exc:
            read[source.name] = None
            problems.append(f"{who}: {exc}")
    return read[source.name]


def source_columns(source: FileSource, repo_path: Path) -> Columns:
    """The columns of a file source's data, from the schemas of up to :data:`MAX_FILES` of
    its own files and as many of the newest pushed part files (unioned by name, as the
    offline engine reads them)."""
    where = _Location(source, repo_path)
    target, many = resolve_path(where)
    patterns = [target] if isinstance(target, str) else target
    files: list[str] = []
    for pattern in patterns:
        files += _pick(pattern, many, pushed=os.path.dirname(pattern) == where.pushed)
    types: dict[str, pa.DataType] = {}
    for file in files:
        for name, dtype in _schema(file, source).items():
            types.setdefault(name, dtype)
        if many:
            for name, dtype in _partition_columns(file, where.path).items():
                types.setdefault(name, dtype)
    return Columns(types, text=source.file_format == "csv")


def _pick(pattern: str, many: bool, *, pushed: bool) -> list[str]:
    if not many or "://" in pattern:
        return [pattern]
    found = sorted(glob.glob(pattern, recursive=True))
    if pushed:  # parts are named at random: the newest show the schema pushes write now
        found.sort(key=os.path.getmtime, reverse=True)
    return found[:MAX_FILES]


def _schema(file: str, source: FileSource) -> dict[str, pa.DataType]:
    import pyarrow as pa

    try:
        if source.file_format == "csv":  # the header, and types inferred from the first block
            import pyarrow.csv as pcsv

            options = pcsv.ReadOptions(block_size=_CSV_SAMPLE_BYTES)
            with pcsv.open_csv(file, read_options=options) as reader:
                schema = reader.schema
        else:
            schema = _parquet_schema(file)
    except (OSError, ValueError, pa.ArrowException) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataSourceError(
            f"cannot read the schema of {file} (source {source.name!r}) as "
            f"{source.file_format}: {detail}"
        ) from exc
    return {field.name: field.type for field in schema}


def _parquet_schema(file: str) -> pa.Schema:
    """The Arrow schema in a Parquet file's footer. Local files go through pyarrow's low-level
    reader, which imports in a millisecond where ``pyarrow.parquet`` takes tens of them (a
    cost every ``apply`` would pay)."""
    if "://" not in file:
        try:
            from pyarrow._parquet import ParquetReader
        except ImportError:  # a pyarrow without it: the public module below
            pass
        else:
            reader = ParquetReader()
            reader.open(file)
            try:
                return reader.schema_arrow
            finally:
                reader.close()
    import pyarrow.parquet as pq

    return pq.read_schema(file)


def _partition_columns(file: str, root: str) -> dict[str, pa.DataType]:
    """Hive partition columns (``.../key=value/...``) of a file under a directory source."""
    import pyarrow as pa

    if not os.path.isdir(root):
        return {}
    parts = Path(os.path.relpath(file, root)).parts[:-1]
    out: dict[str, pa.DataType] = {}
    for part in parts:
        key, eq, value = part.partition("=")
        if eq and key:
            out[key] = pa.int64() if value.lstrip("-").isdigit() else pa.string()
    return out


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
