"""Push and ``write_to_online_store``: check incoming rows against a view, then write them.

Everything is checked before anything is written: a missing column, a value that does not fit
the declared type (named with its row), a null entity key or event timestamp is an error
naming the column, and nothing reaches either store. :func:`conform` is the one place values
are converted and checked; :mod:`pitstop.engine.exact` only skips it for values it would pass
unchanged. An offline push also carries exactly the columns of the source's offline data
(:func:`offline_rows`). Offline pushes append the rows to the source's pushed data through the
offline engine, which appends atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.sources import PushMode, PushSource, not_ingested, push_mode
from pitstop.definitions.stream import StreamFeatureView
from pitstop.engine.exact import exact_rows, python_columns
from pitstop.engine.historical import source_ref
from pitstop.engine.online import key_dtypes
from pitstop.engine.streams import input_columns, push_events
from pitstop.engine.write import chunks, encode_rows
from pitstop.errors import NotFoundError, RetrievalError, suggest
from pitstop.offline.sources import check_appendable, stored_names
from pitstop.online.base import StoredRow
from pitstop.quality.enforce import check_tables
from pitstop.types import to_arrow

if TYPE_CHECKING:
    import pyarrow as pa

    from pitstop.engine.streams import Delivery
    from pitstop.offline.base import OfflineEngine
    from pitstop.offline.pit import SourceRef
    from pitstop.registry.snapshot import Snapshot


def as_table(data: Any, what: str) -> pa.Table:
    """A pandas/polars DataFrame, dict of lists, list of dicts or Arrow table as Arrow."""
    import pyarrow as pa

    try:
        return _as_table(data, what)
    except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
        if isinstance(exc, RetrievalError):
            raise
        bad = [(name, values) for name, values in _columns_of(data) if not _converts(values)]
        if not bad:
            raise RetrievalError(
                f"{what}: the data cannot be read as Arrow values ({exc})"
            ) from exc
        name, values = bad[0]
        values = list(values)
        row = _first_failure(len(values), lambda n: _converts(values[:n]))
        raise RetrievalError(
            f"{what}: column {name!r} cannot be read as Arrow values; the first value that "
            f"does not convert is in row {row}: {_sample(values[row])} "
            f"({type(values[row]).__name__}) ({exc})"
        ) from exc


def _columns_of(data: Any) -> list[tuple[str, Any]]:
    """``(name, values)`` of the columns of a dict, DataFrame or list of dicts (error path)."""
    if isinstance(data, dict) or _is_pandas(data):
        return list(data.items())
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        names = dict.fromkeys(k for r in data for k in r)
        return [(k, [r.get(k) for r in data]) for k in names]
    return []


def _is_pandas(data: Any) -> bool:
    return type(data).__module__.startswith("pandas") and hasattr(data, "columns")


def _converts(values: Any) -> bool:
    import pyarrow as pa

    try:
        pa.array(values, from_pandas=True)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return False
    return True


def _first_failure(n: int, ok: Any) -> int:
    """The index of the first of ``n`` rows that fails, given ``ok(k)``: whether the first
    ``k`` rows convert (once a prefix fails, every longer one does). ``O(log n)`` calls."""
    good, bad = 0, n  # ok(good) holds, ok(bad) does not
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if ok(mid) else (good, mid)
    return good


def _sample(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
            f"push source {push_source_name!r} is not in the registry"
            f"{not_ingested(sources.get(push_source_name))}."
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
            col = _cast(col, target, f"column {name!r} of feature view {view.name!r}", what)
        columns[name] = col
    for name in [*view.join_keys, ts]:
        _check_no_nulls(columns[name], name, view, what)
    return pa.table(columns)


def _check_no_nulls(col: Any, name: str, view: FeatureView, what: str) -> None:
    """A row without an entity key or an event timestamp cannot be stored or ordered."""
    if not col.null_count:
        return
    row = col.to_pylist().index(None)
    needs = "an event timestamp" if name == view.timestamp_field else "every entity key"
    raise RetrievalError(
        f"{what}: column {name!r} of feature view {view.name!r} is null in row {row}; every "
        f"row needs {needs} (drop such rows before pushing)"
    )


def _numeric(col: Any) -> Any:
    """The type text values of an undeclared aggregated column are read as: int64 if they all
    are integers, else float64 (a value that is neither fails the cast with its name)."""
    import pyarrow as pa

    try:
        col.cast(pa.int64())
        return pa.int64()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.float64()


def _cast_errors() -> tuple[type[Exception], ...]:
    import pyarrow as pa

    return (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, RetrievalError)


def _convert(col: Any, target: Any, which: str) -> Any:
    """``col`` as ``target``: times by the offline engines' one rule, anything else by Arrow's
    safe cast (no truncation, no overflow; text parsed)."""
    from pitstop.offline.typemap import UTC_TIMESTAMP, to_utc

    if target == UTC_TIMESTAMP:
        return to_utc(col, which)
    return col.cast(target)


def _cast(col: Any, target: Any, which: str, what: str) -> Any:
    """``col`` converted to ``target``, or an error naming ``which`` column, the first row
    that does not convert and its value."""
    errors = _cast_errors()
    try:
        return _convert(col, target, which)
    except errors as exc:
        whole = col.combine_chunks() if hasattr(col, "combine_chunks") else col

        def converts(n: int) -> bool:
            try:
                _convert(whole.slice(0, n), target, which)
            except errors:
                return False
            return True

        row = _first_failure(len(whole), converts)
        value = whole[row].as_py()
        raise RetrievalError(
            f"{what}: {which} is declared {target} but row {row} holds {_sample(value)} "
            f"({col.type}), which does not convert ({exc})"
        ) from exc


def offline_rows(
    offline: OfflineEngine, source: SourceRef, table: pa.Table, what: str, *,
    allow_missing: bool, shown_path: str | None = None,
) -> pa.Table:  # fmt: skip
    """``table`` as rows of ``source``'s offline data: exactly its columns, in its order and
    types, under the names the source stores (before its field mapping). A column the data has
    and ``table`` lacks is an error (or, ``allow_missing``, all nulls); a column the data does
    not have is an error. A source without data yet takes ``table``'s columns. ``shown_path``:
    the source's path as its definition gives it, for messages."""
    import pyarrow as pa

    check_appendable(source, what)
    if not offline.has_rows(source):
        return table.rename_columns(stored_names(source, table.column_names))
    schema = offline.schema(source)
    names = {raw: source.field_mapping.get(raw, raw) for raw in schema.names}
    expected = list(names.values())
    where = f"the offline data of source {source.display_name!r} ({shown_path or source.path})"
    extra = [c for c in table.column_names if c not in expected]
    if extra:
        raise RetrievalError(
            f"{what}: column(s) {extra} are not in {where}, which has {expected}; drop them "
            "from the pushed rows"
        )
    missing = [c for c in expected if c not in table.column_names]
    if missing and not allow_missing:
        raise RetrievalError(
            f"{what}: column(s) {missing} of {where} are missing from the pushed rows, so "
            "training sets over this source would get nulls there; add them, or pass "
            "allow_missing_columns=True to write them as nulls"
        )
    columns = []
    for raw, name in names.items():
        target = schema.field(raw).type
        if name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, target))
            continue
        col = table.column(name)
        if col.type != target and not _is_time(target) and not _is_time(col.type):
            col = _cast(col, target, f"column {name!r} of {where}", what)
        columns.append(col)
    return pa.table(columns, names=list(names))


def _is_time(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_timestamp(t) or pa.types.is_date(t))


def check_columns(views: Sequence[FeatureView], table: pa.Table, what: str) -> None:
    if table.num_rows == 0:
        raise RetrievalError(f"{what}: no rows to write")
    if not views:
        raise RetrievalError(f"{what}: no feature view reads this source; nothing to write")


def conformed(
    snapshot: Snapshot, views: Sequence[FeatureView], data: Any, what: str
) -> list[pa.Table]:
    """``data`` checked and cast for every view, before anything is written."""
    return _conform_all(snapshot, views, as_table(data, what), what)


def _conform_all(
    snapshot: Snapshot, views: Sequence[FeatureView], table: pa.Table, what: str
) -> list[pa.Table]:
    check_columns(views, table, what)
    return [conform(table, v, key_dtypes(snapshot, v), what) for v in views]


def write_views(
    online: Any,
    views: Sequence[FeatureView],
    tables: Sequence[pa.Table],
    *,
    delivery: Delivery | None = None,
) -> int:
    """Write checked rows (``tables[i]`` for ``views[i]``) online; windowed views fold the rows
    into tiles (idempotently per stream event id with a ``delivery``)."""
    written = 0
    for view, table in zip(views, tables, strict=True):
        if not view.online:
            continue
        if isinstance(view, StreamFeatureView) and view.aggregations:
            written += push_events(online, view, table, delivery=delivery)
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
    if not views or any(v.expectations for v in views):  # expectations are checked on Arrow
        return None
    columns = python_columns(data)
    if columns is None:
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
    snapshot: Snapshot,
    online: Any,
    views: Sequence[FeatureView],
    data: Any,
    what: str,
    *,
    policy: str | None = None,
) -> int:
    """Check ``data`` against every view (values, then expectations under ``policy`` unless a
    view has its own), then write each view's rows online."""
    written = _write_exact(snapshot, online, views, data)
    if written is not None:
        return written
    tables = conformed(snapshot, views, data, what)
    check_tables(views, tables, what, policy)
    return write_views(online, views, tables)


def push(
    snapshot: Snapshot,
    online: Any,
    offline: OfflineEngine,
    repo_path: Path,
    push_source_name: str,
    data: Any,
    to: Any,
    *,
    allow_missing_columns: bool = False,
    policy: str | None = None,
) -> int:
    """Rows to every view fed by a push source; ``to`` is a :class:`PushMode` or its name.

    Everything is checked first — the values against every view, the views' expectations
    (``policy``: for views without their own), and for an offline push the columns against
    the source's offline data (:func:`offline_rows`) — then written."""
    mode = push_mode(to)
    what = f"push to {push_source_name!r}"
    views = push_views(snapshot, push_source_name)
    if (
        mode is PushMode.ONLINE
        and (written := _write_exact(snapshot, online, views, data)) is not None
    ):
        return written
    table = as_table(data, what)
    tables = _conform_all(snapshot, views, table, what)
    check_tables(views, tables, what, policy)
    source = snapshot.data_sources[push_source_name]
    assert isinstance(source, PushSource)
    rows = ref = None
    if mode is not PushMode.ONLINE:
        ref = source_ref(source.batch_source, repo_path)
        rows = offline_rows(
            offline, ref, _as_declared(table, tables), what,
            allow_missing=allow_missing_columns, shown_path=source.batch_source.path,
        )  # fmt: skip
    written = 0 if mode is PushMode.OFFLINE else write_views(online, views, tables)
    if rows is not None and ref is not None:
        offline.append(ref, rows)
    return written


def _as_declared(table: pa.Table, tables: Sequence[pa.Table]) -> pa.Table:
    """``table`` with each column converted as the first view that declares it converts it
    (``tables[i]`` is ``table`` conformed to view ``i``)."""
    import pyarrow as pa

    columns = {}
    for name in table.column_names:
        col = table.column(name)
        for conformed_table in tables:
            if conformed_table.column(name).type != col.type:
                col = conformed_table.column(name)
                break
        columns[name] = col
    return pa.table(columns)
