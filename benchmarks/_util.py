"""Small helpers shared by benchmark suites: sizes, peak memory, tables."""

from __future__ import annotations

import resource
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_SUFFIXES = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


def parse_count(text: str) -> int:
    """``"100k"`` -> 100000, ``"1M"`` -> 1000000, ``"2500"`` -> 2500."""
    text = text.strip().lower()
    if text and text[-1] in _SUFFIXES:
        return int(float(text[:-1]) * _SUFFIXES[text[-1]])
    return int(text)


def format_count(n: int) -> str:
    """The inverse of :func:`parse_count` for round numbers (1000000 -> ``"1M"``)."""
    for suffix, unit in (("G", 1_000_000_000), ("M", 1_000_000), ("k", 1_000)):
        if n >= unit and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --- feature source data (the 5-feature workload shared by several suites) -----------------

DAY_US = 86_400 * 1_000_000
FEATURES = ("f_int1", "f_int2", "f_int3", "f_float", "f_str")  # 3 Int64, 1 Float32, 1 String


def percentiles_us(samples_ns: list[int]) -> tuple[float, float]:
    """p50 and p99 of ``samples_ns`` (nanoseconds), in µs; sorts ``samples_ns`` in place."""
    samples_ns.sort()
    n = len(samples_ns)
    return samples_ns[n // 2] / 1000, samples_ns[min(n - 1, int(n * 0.99))] / 1000


def source_chunk(
    seed: int, first: int, count: int, rows_per_entity: int, start_us: int, span_us: int
) -> Any:
    """A ``pyarrow.Table`` of ``count`` entities (ids ``first``..) x ``rows_per_entity`` rows.

    Columns: ``entity_id`` (int64), ``event_timestamp`` and ``created`` (timestamp[us], event
    times uniform in ``[start_us, start_us + span_us)``, created up to an hour later), the five
    :data:`FEATURES` (``f_int2`` is never 0, so ``f_int1 / f_int2`` is defined). Rows shuffled.
    """
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng([seed, first])
    rows = count * rows_per_entity
    ids = np.repeat(np.arange(first, first + count, dtype=np.int64), rows_per_entity)
    rng.shuffle(ids)
    event = start_us + rng.integers(0, span_us, rows)
    created = event + rng.integers(0, 3_600_000_000, rows)
    words = np.char.add("s", rng.integers(0, 1000, rows).astype(str))
    return pa.table(
        {
            "entity_id": ids,
            "event_timestamp": pa.array(event.astype("datetime64[us]")),
            "created": pa.array(created.astype("datetime64[us]")),
            "f_int1": rng.integers(0, 1000, rows),
            "f_int2": rng.integers(1, 1000, rows),
            "f_int3": rng.integers(0, 1000, rows),
            "f_float": rng.random(rows, dtype=np.float32),
            "f_str": pa.array(words),
        }
    )


def write_source(
    path: Path,
    entities: int,
    rows_per_entity: int,
    *,
    start_us: int,
    span_us: int = 30 * DAY_US,
    seed: int = 42,
    chunk_entities: int = 250_000,
) -> Path:
    """Write (unless it exists) a Parquet source of :func:`source_chunk` rows to ``path``.

    Written to a temporary name and renamed, so an interrupted run leaves no half file."""
    import pyarrow.parquet as pq

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    writer: Any = None
    try:
        for first in range(0, entities, chunk_entities):
            count = min(chunk_entities, entities - first)
            table = source_chunk(seed, first, count, rows_per_entity, start_us, span_us)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table, row_group_size=1 << 20)
    finally:
        if writer is not None:
            writer.close()
    tmp.rename(path)
    return path
