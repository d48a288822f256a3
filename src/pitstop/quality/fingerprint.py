"""Content hashes of rows: equal for equal data, whatever the batching, the file or the bytes
Arrow happens to keep under nulls.

Each column is hashed from what it holds: which rows are null, then its non-null values —
fixed-width values as their bytes, text and binary as lengths plus bytes, lists as lengths plus
their elements, structs field by field. Column types are part of the hash in a canonical form
(``string``, ``large_string`` and dictionary-encoded text are all ``string``). The dataset's
hash covers the row count, the column names and types and every column's hash.

>>> fingerprint(pa.table({"x": [1, None, 3]})).digest[:12]   # doctest: +SKIP
'4c1f0e0b2d6a'
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

METHOD = "pitstop-rows-1"


@dataclass(frozen=True)
class Fingerprint:
    """The hash of a whole dataset, and of each of its columns (``columns[name]``)."""

    digest: str
    rows: int
    columns: dict[str, str] = field(default_factory=dict)
    method: str = METHOD


def fingerprint(data: pa.Table | str | Path) -> Fingerprint:
    """The content hash of an Arrow table or of a Parquet file (or folder of files), read in
    batches."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return of_batches(data.schema, data.to_batches())
    import pyarrow.dataset as ds

    dataset = ds.dataset(str(data), format="parquet")
    return of_batches(dataset.schema, dataset.to_batches())


def of_batches(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Fingerprint:
    """The content hash of a stream of record batches with ``schema``."""
    hashers: list[_Column] = [_Column() for _ in schema.names]
    rows = 0
    for batch in batches:
        rows += batch.num_rows
        for h, column in zip(hashers, batch.columns, strict=True):
            h.feed(column, ())
    columns = {name: h.digest() for name, h in zip(schema.names, hashers, strict=True)}
    total = hashlib.sha256(f"{METHOD}\n{rows}\n".encode())
    for f in schema:
        total.update(f"{f.name}\t{canonical_type(f.type)}\t{columns[f.name]}\n".encode())
    return Fingerprint(total.hexdigest(), rows, columns)


def canonical_type(t: pa.DataType) -> str:
    """``t`` with storage variants folded: dictionaries as their values, large and view
    variants of text, binary and lists as the plain ones."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return canonical_type(t.value_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or _is(t, "is_string_view"):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or _is(t, "is_binary_view"):
        return "binary"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or _is(t, "is_list_view"):
        return f"list<{canonical_type(t.value_type)}>"
    if pa.types.is_struct(t):
        inner = ", ".join(f"{t.field(i).name}: {canonical_type(t.field(i).type)}"
                          for i in range(t.num_fields))  # fmt: skip
        return f"struct<{inner}>"
    return str(t)


def _is(t: pa.DataType, check: str) -> bool:
    import pyarrow as pa

    test = getattr(pa.types, check, None)
    return bool(test(t)) if test is not None else False


class _Column:
    """sha256 streams of one column's parts, by path (validity, values, lengths, children)."""

    def __init__(self) -> None:
        self.parts: dict[tuple[str, ...], Any] = {}

    def _update(self, path: tuple[str, ...], data: bytes | memoryview) -> None:
        h = self.parts.get(path)
        if h is None:
            h = self.parts[path] = hashlib.sha256()
        h.update(data)

    def feed(self, array: Any, path: tuple[str, ...]) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(array, pa.ChunkedArray):
            for chunk in array.chunks:
                self.feed(chunk, path)
            return
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        if array.null_count:
            self._update((*path, "valid"), np.asarray(pc.is_valid(array)).tobytes())
            array = array.drop_null()
        else:
            self._update((*path, "valid"), b"\x01" * len(array))
        self._values(array, path)

    def _values(self, array: Any, path: tuple[str, ...]) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        t = array.type
        text = pa.types.is_string(t) or pa.types.is_large_string(t) or _is(t, "is_string_view")
        if text or pa.types.is_binary(t) or pa.types.is_large_binary(t) or _is(t, "is_binary_view"):
            wide = array.cast(pa.large_string() if text else pa.large_binary())
            offsets = np.frombuffer(wide.buffers()[1], dtype=np.int64)
            offsets = offsets[wide.offset : wide.offset + len(wide) + 1]
            self._update((*path, "lengths"), np.diff(offsets).tobytes())
            data = wide.buffers()[2]
            if data is not None and len(wide):
                self._update((*path, "bytes"), memoryview(data)[offsets[0] : offsets[-1]])
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            lengths = pc.list_value_length(array).cast(pa.int64())
            self._update((*path, "lengths"), np.asarray(lengths).tobytes())
            self.feed(array.flatten(), (*path, "item"))
        elif pa.types.is_struct(t):
            for i, child in enumerate(array.flatten()):
                self.feed(child, (*path, t.field(i).name))
        elif pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t) or \
                pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_duration(t) or \
                pa.types.is_time(t):  # fmt: skip
            values = array.to_numpy(zero_copy_only=False)
            self._update((*path, "values"), np.ascontiguousarray(values).tobytes())
        else:  # rare types (decimals, maps): their Python values, one per line
            text_values = "\n".join(repr(v) for v in array.to_pylist()) + "\n"
            self._update((*path, "values"), text_values.encode())

    def digest(self) -> str:
        total = hashlib.sha256()
        for path in sorted(self.parts):
            total.update(("/".join(path) + "=" + self.parts[path].hexdigest() + "\n").encode())
        return total.hexdigest()
