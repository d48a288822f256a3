"""Sources kept as local (or fsspec-style URL) files: the storage of the engines that read files
themselves (DuckDB; the reference engine of the conformance suite).

A source's rows are its own file, directory (hive partitions honoured) or glob, plus the Parquet
part files appended to its pushed location (:func:`pitstop.offline.sources.pushed_location`).
This module finds those files, in the order that defines a row's *arrival* (the source's own
files, then the pushed parts, each in path order), reads their schemas from the files' metadata
(footers, CSV headers) without reading rows, and writes new parts atomically (a temporary name,
then a rename: readers never see half a part).

Only the standard library is imported at module level; pyarrow loads when a schema is read or a
part written, DuckDB never.
"""

from __future__ import annotations

import glob
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pitstop.errors import DataSourceError, RetrievalError

if TYPE_CHECKING:
    import pyarrow as pa

    from pitstop.offline.pit import SourceRef


__all__ = [
    "GLOB_CHARS",
    "MAX_FILES",
    "FileStorage",
    "PartLabels",
    "has_data",
    "pushed_parts",
    "read_schema",
    "resolve_main",
    "resolve_path",
    "write_part",
]

GLOB_CHARS = frozenset("*?[")
#: Files whose schemas are read per source: the first of its own files, the newest pushed parts.
MAX_FILES = 8
_CSV_SAMPLE_BYTES = 1 << 16
_PART = "*.parquet"


def _own_pushes(source: SourceRef) -> bool:
    """Whether the source's pushed parts lie among its own files (a directory source)."""
    return source.pushed is not None and os.path.normpath(source.pushed) == os.path.normpath(
        source.path
    )


def _parts_pattern(source: SourceRef) -> str | None:
    if not source.pushed or _own_pushes(source):
        return None
    return os.path.join(glob.escape(source.pushed), _PART)


def pushed_parts(source: SourceRef) -> list[str]:
    """The source's pushed part files in path order (which is append order for unlabelled
    parts, see :func:`write_part`); none for a directory source, whose parts are its files."""
    pattern = _parts_pattern(source)
    return sorted(glob.glob(pattern)) if pattern else []


def has_data(source: SourceRef) -> bool:
    """Whether a source has any offline data: its file (or glob), or pushed part files. A
    push-fed source has none until the first offline push."""
    path = source.path
    if os.path.exists(path) or glob.has_magic(path):
        return True
    return bool(pushed_parts(source))


def resolve_path(source: SourceRef) -> tuple[str | list[str], bool]:
    """Check the source's data exists; return what to read (a path or glob, or a list of
    them, in arrival order) and whether it spans many files."""
    pattern = _parts_pattern(source)
    if pattern is None or not glob.glob(pattern):
        return resolve_main(source)
    if not os.path.exists(source.path) and not (GLOB_CHARS & set(source.path)):
        return pattern, True
    main, _ = resolve_main(source)
    return [*([main] if isinstance(main, str) else main), pattern], True


def resolve_main(source: SourceRef) -> tuple[str, bool]:
    """Check ``source.path`` exists; return the path to read and whether it spans many files."""
    path = source.path
    if "://" in path:
        return path, bool(GLOB_CHARS & set(path))
    if GLOB_CHARS & set(path):
        if not glob.glob(path, recursive=True):
            raise DataSourceError(
                f"No files match {path!r} (source {source.display_name!r}); check the path."
            )
        return path, True
    if os.path.isdir(path):
        suffix = "csv" if source.file_format == "csv" else "parquet"
        pattern = os.path.join(path, "**", f"*.{suffix}")
        if not glob.glob(pattern, recursive=True):
            raise DataSourceError(
                f"Directory {path!r} of source {source.display_name!r} holds no *.{suffix} files."
            )
        return pattern, True
    if not os.path.exists(path):
        raise DataSourceError(
            f"Source {source.display_name!r} points to {path!r}, which does not exist; fix the "
            "source's path or create the file."
        )
    return path, False


# -- schemas ------------------------------------------------------------------------------------


def read_schema(source: SourceRef) -> pa.Schema:
    """The columns of a source's data, from the schemas of up to :data:`MAX_FILES` of its own
    files and as many of the newest pushed parts (unioned by name, as the engines read them);
    hive partition columns of a directory source come last."""
    import pyarrow as pa

    target, many = resolve_path(source)
    patterns = [target] if isinstance(target, str) else target
    pushed = _parts_pattern(source)
    files: list[str] = []
    for pattern in patterns:
        files += _pick(pattern, many, pushed=pattern == pushed)
    types: dict[str, pa.DataType] = {}
    for file in files:
        for field in _schema(file, source):
            types.setdefault(field.name, field.type)
        if many:
            for name, dtype in _partition_columns(file, source.path).items():
                types.setdefault(name, dtype)
    return pa.schema(list(types.items()))


def _pick(pattern: str, many: bool, *, pushed: bool) -> list[str]:
    if not many or "://" in pattern:
        return [pattern]
    found = sorted(glob.glob(pattern, recursive=True))
    if pushed:  # the newest parts show the schema pushes write now
        found.sort(key=os.path.getmtime, reverse=True)
    return found[:MAX_FILES]


def _schema(file: str, source: SourceRef) -> pa.Schema:
    import pyarrow as pa

    try:
        if source.file_format == "csv":  # the header, and types inferred from the first block
            import pyarrow.csv as pcsv

            options = pcsv.ReadOptions(block_size=_CSV_SAMPLE_BYTES)
            with pcsv.open_csv(file, read_options=options) as reader:
                return reader.schema
        return parquet_schema(file)
    except (OSError, ValueError, pa.ArrowException) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataSourceError(
            f"cannot read the schema of {file} (source {source.display_name!r}) as "
            f"{source.file_format}: {detail}"
        ) from exc


def parquet_schema(file: str) -> pa.Schema:
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


# -- appending ----------------------------------------------------------------------------------


#: Unlabelled parts are named ``part-...``; labels may not start so.
_UNLABELLED = "part-"


def _check_label(label: str) -> None:
    ok = label and len(label) <= 200 and all(c.isalnum() or c in "-_." for c in label)
    if not ok or label.startswith((".", _UNLABELLED)):
        raise RetrievalError(
            f"Append label {label!r} must be 1-200 letters, digits, '-', '_' or '.' and not "
            f"start with '.' or {_UNLABELLED!r}."
        )


def write_part(source: SourceRef, table: pa.Table, label: str | None = None) -> str:
    """Write ``table`` as a new Parquet part at the source's pushed location, atomically; a
    ``label`` names the part (``<label>.parquet``, replacing one of that name), else it is
    named ``part-<time>-<random>.parquet`` so path order is append order. Returns its path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not source.pushed:
        raise RetrievalError(f"Source {source.display_name!r} has no location for pushed rows.")
    if label is not None:
        _check_label(label)
        name = f"{label}.parquet"
    else:
        name = f"{_UNLABELLED}{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.parquet"
    folder = Path(source.pushed)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, folder / name)
    except (OSError, pa.ArrowException) as exc:
        raise DataSourceError(
            f"Cannot append {table.num_rows} row(s) to source {source.display_name!r} at "
            f"{folder}: {exc}; nothing was written."
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return str(folder / name)


class PartLabels(Mapping[str, Mapping[bytes, bytes]]):
    """Labelled parts of a source whose label starts with a prefix: label -> the part's schema
    metadata, read from its footer when looked up."""

    def __init__(self, source: SourceRef, prefix: str) -> None:
        folder = source.pushed or ""
        pattern = os.path.join(glob.escape(folder), glob.escape(prefix) + _PART)
        self._paths = {
            os.path.basename(p)[: -len(".parquet")]: p
            for p in sorted(glob.glob(pattern))
            if not os.path.basename(p).startswith(_UNLABELLED)
        }

    def __getitem__(self, label: str) -> Mapping[bytes, bytes]:
        return parquet_schema(self._paths[label]).metadata or {}

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)


class FileStorage:
    """The write side of an engine over local files (:class:`~pitstop.offline.base.
    OfflineEngine`'s ``schema``, ``has_rows``, ``append`` and ``labels``): schemas from
    footers and headers, appends as Parquet parts. Engines that read files list it as a base."""

    def schema(self, source: SourceRef) -> pa.Schema:
        """The stored columns of ``source``, from its files' footers and headers (no engine
        is loaded: ``apply`` checks sources with this)."""
        return read_schema(source)

    def has_rows(self, source: SourceRef) -> bool:
        """Whether ``source`` has a file (or glob) or pushed parts to read."""
        return has_data(source)

    def append(self, source: SourceRef, table: pa.Table, *, label: str | None = None) -> None:
        """Write ``table`` as one Parquet part at the source's pushed location (atomically)."""
        from pitstop.offline.sources import check_appendable

        check_appendable(source, f"Appending to source {source.display_name!r}")
        write_part(source, table, label)

    def labels(self, source: SourceRef, prefix: str) -> Mapping[str, Mapping[bytes, bytes]]:
        """The source's parts labelled ``prefix...``; metadata read from a part's footer."""
        return PartLabels(source, prefix)
