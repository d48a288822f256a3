"""Push and ``write_to_online_store``: check incoming rows against a view, then write them.

Everything is checked before anything is written: a missing column or a value that does not
fit the declared type is an error naming the column, and nothing reaches either store.
Offline pushes add one Parquet part file per push, written to a temporary name and renamed
into place, so readers never see half a file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.sources import FileSource, PushMode, PushSource
from pitstop.definitions.stream import StreamFeatureView
from pitstop.engine.exact import exact_rows, python_columns
from pitstop.engine.online import key_dtypes
from pitstop.engine.streams import input_columns, push_events
from pitstop.engine.write import chunks, encode_rows
from pitstop.errors import NotFoundError, RetrievalError, suggest
from pitstop.online.base import StoredRow
from pitstop.types import to_arrow

if TYPE_CHECKING:
    import pyarrow as pa

    from pitstop.registry.snapshot import Snapshot

PUSHED_SUFFIX = ".pushed"


def as_table(data: Any, what: str) -> pa.Table:
    """A pandas/polars DataFrame, dict of lists, list of dicts or Arrow table as Arrow."""
    import pyarrow as pa

    try:
        return _as_table(data, what)
    except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
        if isinstance(exc, RetrievalError):
            raise
        columns = data.items() if isinstance(data, dict) else ()
        bad = [name for name, values in columns if not _converts(values)]
        which = f"column {bad[0]!r}" if bad else "the data"
        raise RetrievalError(f"{what}: {which} cannot be read as Arrow values ({exc})") from exc


def _converts(values: Any) -> bool:
    import pyarrow as pa

    try:
        pa.array(values)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return False
    return True


def _as_table(data: Any, what: str) -> pa.Table:
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, dict):
        return pa.table(data)
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return pa.Table.from_pylist(data)
    if type(data).__module__.startswith("pandas") and hasattr(data, "columns"):
        # (pandas before 2.2 has no __arrow_c_stream__)
        if len(data) <= 64:  # a few rows: plain lists convert faster than from_pandas
            values = data.to_numpy(dtype=object).T.tolist()
            return pa.Table.from_arrays(
                [pa.array(v, from_pandas=True) for v in values],
                names=[str(c) for c in data.columns],
            )
        return pa.Table.from_pandas(data, preserve_index=False)
    if hasattr(data, "__arrow_c_stream__") or hasattr(data, "to_arrow"):
        return pa.table(data)
    raise RetrievalError(
        f"{what}: expected a DataFrame, an Arrow table or a dict of lists, "
        f"got {type(data).__name__}"
    )


def push_views(snapshot: Snapshot, push_source_name: str) -> list[FeatureView]:
    """Every batch or stream view fed by the push source called ``push_source_name``."""
    sources = snapshot.data_sources
    if not isinstance(sources.get(push_source_name), PushSource):
        pushes = [n for n, s in sources.items() if isinstance(s, PushSource)]
        raise NotFoundError(
            f"push source {push_source_name!r} is not in the registry."
            f"{suggest(push_source_name, pushes)}"
        )
    views = [*snapshot.feature_views.values(), *snapshot.stream_feature_views.values()]
    return [
        v for v in views if isinstance(v.source, PushSource) and v.source.name == push_source_name
    ]


def conform(table: pa.Table, view: FeatureView, key_types: dict[str, Any], what: str) -> pa.Table:
    """``table`` with the view's columns cast to their declared types (checked, not written)."""
    import pyarrow as pa

    ts = view.timestamp_field
    windowed = isinstance(view, StreamFeatureView) and bool(view.aggregations)
    inputs = (
        list(input_columns(view))
        if isinstance(view, StreamFeatureView) and windowed
        else [f.name for f in view.features]
    )
    needed = list(dict.fromkeys([*view.join_keys, ts, *inputs]))
    present = set(table.column_names)
    missing = [c for c in needed if c not in present]
    if missing:
        raise RetrievalError(
            f"{what}: column(s) {missing} needed by feature view {view.name!r} are missing; "
            f"given: {table.column_names}"
        )
    created = view.batch_source.created_timestamp_column
    declared = view.schema if windowed else view.features
    targets: dict[str, Any] = {f.name: to_arrow(f.dtype) for f in declared}
    targets.update({k: to_arrow(t) for k, t in key_types.items() if k in view.join_keys})
    targets[ts] = pa.timestamp("us", tz="UTC")
    if created and created in table.column_names:
        targets[created] = pa.timestamp("us", tz="UTC")
    text_inputs = set(inputs) - set(targets) if windowed else set()
    columns = {}
    for name in table.column_names:
        col = table.column(name)
        target = targets.get(name)
        if name in text_inputs and pa.types.is_string(col.type):  # undeclared: numbers as text
            target = _numeric(col)
        if target is not None and col.type != target:
            col = _cast(col, target, name, view, what)
        columns[name] = col
    return pa.table(columns)


def _numeric(col: Any) -> Any:
    """The type text values of an undeclared aggregated column are read as: int64 if they all
    are integers, else float64 (a value that is neither fails the cast with its name)."""
    import pyarrow as pa

    try:
        col.cast(pa.int64())
        return pa.int64()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.float64()


def _cast(col: Any, target: Any, name: str, view: FeatureView, what: str) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        if pa.types.is_timestamp(target) and pa.types.is_string(col.type):
            try:  # ISO text with a zone ("Z", "+02:00") first, then zone-less text as UTC
                return pc.cast(col, target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                col = pc.cast(col, pa.timestamp("us"))
        return col.cast(target)  # a zone-less timestamp is taken as UTC
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise RetrievalError(
            f"{what}: column {name!r} of feature view {view.name!r} is declared {target} but "
            f"holds {col.type} values that do not convert ({exc})"
        ) from exc


def append_offline(source: FileSource, repo_path: Path, table: pa.Table) -> Path:
    """Add ``table`` to the source's data as a new Parquet part file (atomically)."""
    import pyarrow.parquet as pq

    if source.file_format != "parquet":
        raise RetrievalError(
            f"offline pushes need a Parquet source; {source.name!r} is {source.file_format}"
        )
    folder = pushed_folder(source, repo_path)
    folder.mkdir(parents=True, exist_ok=True)
    reverse = {mapped: raw for raw, mapped in source.field_mapping.items()}
    table = table.rename_columns([reverse.get(c, c) for c in table.column_names])
    name = f"part-{uuid.uuid4().hex}.parquet"
    tmp = folder / f".{name}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, folder / name)
    return folder / name


def pushed_folder(source: FileSource, repo_path: Path) -> Path:
    """Where offline pushes to ``source`` go: the folder itself, or ``<file>.pushed/``."""
    path = Path(source.resolve_path(repo_path))
    return path if path.is_dir() else path.with_name(path.name + PUSHED_SUFFIX)


def check_columns(views: Sequence[FeatureView], table: pa.Table, what: str) -> None:
    if table.num_rows == 0:
        raise RetrievalError(f"{what}: no rows to write")
    if not views:
        raise RetrievalError(f"{what}: no feature view reads this source; nothing to write")


def conformed(
    snapshot: Snapshot, views: Sequence[FeatureView], data: Any, what: str
) -> list[pa.Table]:
    """``data`` checked and cast for every view, before anything is written."""
    table = as_table(data, what)
    check_columns(views, table, what)
    return [conform(table, v, key_dtypes(snapshot, v), what) for v in views]


def write_views(
    online: Any,
    views: Sequence[FeatureView],
    tables: Sequence[pa.Table],
    *,
    stream: str | None = None,
    ids: Sequence[Any] | None = None,
) -> int:
    """Write checked rows (``tables[i]`` for ``views[i]``) online; windowed views fold the rows
    into tiles (idempotently per ``stream`` event id when given)."""
    written = 0
    for view, table in zip(views, tables, strict=True):
        if not view.online:
            continue
        if isinstance(view, StreamFeatureView) and view.aggregations:
            written += push_events(online, view, table, stream=stream, ids=ids)
            continue
        created = view.batch_source.created_timestamp_column
        created = created if created and created in table.column_names else ""
        written += _write(online, view, encode_rows(view, table, view.timestamp_field, created))
    return written


def _write(online: Any, view: FeatureView, rows: list[StoredRow]) -> int:
    for part in chunks(rows, online.capabilities.max_write_batch):
        online.write(view.name, part)
    return len(rows)


def _write_exact(
    snapshot: Snapshot, online: Any, views: Sequence[FeatureView], data: Any
) -> int | None:
    """Write small ``data`` whose values already have their declared types without Arrow
    (:mod:`pitstop.engine.exact`); ``None`` (nothing written) if any view needs the Arrow
    path."""
    columns = python_columns(data)
    if columns is None or not views:
        return None
    encoded = [exact_rows(v, key_dtypes(snapshot, v), columns) for v in views]
    if any(rows is None for rows in encoded):
        return None
    return sum(
        _write(online, v, rows)
        for v, rows in zip(views, encoded, strict=True)
        if rows is not None and v.online
    )


def write_online(
    snapshot: Snapshot, online: Any, views: Sequence[FeatureView], data: Any, what: str
) -> int:
    """Check ``data`` against every view, then write each view's rows online."""
    written = _write_exact(snapshot, online, views, data)
    if written is not None:
        return written
    return write_views(online, views, conformed(snapshot, views, data, what))


def push(
    snapshot: Snapshot, online: Any, repo_path: Path, push_source_name: str, data: Any, to: Any
) -> int:
    """Rows to every view fed by a push source; ``to`` is a :class:`PushMode`."""
    what = f"push to {push_source_name!r}"
    views = push_views(snapshot, push_source_name)
    if (
        to == PushMode.ONLINE
        and (written := _write_exact(snapshot, online, views, data)) is not None
    ):
        return written
    tables = conformed(snapshot, views, data, what)
    written = 0
    if to in (PushMode.ONLINE, PushMode.ONLINE_AND_OFFLINE):
        written = write_views(online, views, tables)
    if to in (PushMode.OFFLINE, PushMode.ONLINE_AND_OFFLINE):
        source = snapshot.data_sources[push_source_name]
        assert isinstance(source, PushSource)
        append_offline(source.batch_source, repo_path, tables[0])
    return written
