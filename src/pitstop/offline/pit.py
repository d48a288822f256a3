"""The one point-in-time plan every offline engine executes.

A :class:`PitPlan` is plain data: which views to join onto an entity frame, where each view's
rows live, which keys match, which columns come out under which names, and each view's TTL.
The layer that resolves Feast-style definitions (feature views, refs, aliases, services) builds
it; engines (:mod:`pitstop.offline.duckdb`, later Spark) execute it. No I/O happens here.

The semantics every engine must honour (DESIGN.md §3), for each entity row with join keys and
timestamp ``t`` and each view:

* candidates are the view's rows with the same keys and ``event_ts <= t``; with a TTL (not
  ``None`` and not zero) also ``event_ts >= t - ttl`` -- inclusive at both ends;
* with ``filter_by_created_timestamp`` candidates with ``created_ts > t`` are excluded too
  (a row without a created timestamp counts as created at its event time);
* the candidate with the greatest ``event_ts`` wins; equal ``event_ts`` -> greatest
  ``created_ts`` (a missing created timestamp loses to any present one);
* exactly one output row per input row, in input order, every entity column passed through,
  duplicates kept; no candidate -> nulls;
* tz-naive timestamps are UTC, tz-aware ones are converted to UTC, ISO strings in the entity
  timestamp column are parsed; the output timestamp column is tz-aware UTC
  (:mod:`pitstop.offline.typemap` holds the rule for every encoding);
* the entity frame's row time is its ``timestamp_column``, or, when it has no such column, its
  one timestamp-typed column, which keeps its name in the output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

from pitstop.errors import DefinitionError, RetrievalError

__all__ = ["FILE_FORMATS", "PitPlan", "SourceRef", "ViewJoin", "infer_file_format"]

#: File formats an offline engine must read. ``"auto"`` is resolved from the path's suffix.
FILE_FORMATS = ("parquet", "csv")

_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.zst", ".tsv", ".tsv.gz")


def infer_file_format(path: str) -> str:
    """Return ``"csv"`` for ``.csv``/``.tsv`` paths (optionally compressed), else ``"parquet"``.

    >>> infer_file_format("/data/driver_stats.csv")
    'csv'
    """
    return "csv" if path.lower().endswith(_CSV_SUFFIXES) else "parquet"


@dataclass(frozen=True)
class SourceRef:
    """Where a view's feature rows live.

    ``path`` is absolute: a Parquet file, a directory of Parquet files (hive partitions
    honoured), a glob, or a CSV file. Instead of files a source can be a ``table`` or a SQL
    ``query`` of an engine's catalog (Spark's); ``path`` is empty then, and only engines whose
    capabilities list ``catalog_sources`` read it. Column names in ``timestamp_field``,
    ``created_timestamp_column`` and everywhere else in the plan are the names *after*
    ``field_mapping`` (raw source column -> name used everywhere else) is applied.
    """

    path: str
    file_format: str
    timestamp_field: str
    created_timestamp_column: str | None = None
    field_mapping: Mapping[str, str] = field(default_factory=dict)
    name: str = ""
    #: A folder of Parquet part files added by pushes, read together with ``path`` (either may
    #: be absent, not both).
    pushed: str | None = None
    table: str | None = None
    query: str | None = None

    def __post_init__(self) -> None:
        fmt = self.file_format.lower()
        if fmt == "auto":
            fmt = infer_file_format(self.path)
        if fmt not in FILE_FORMATS:
            raise DefinitionError(
                f"Source {self.display_name!r} has file_format {self.file_format!r}; "
                f"use one of {', '.join(map(repr, (*FILE_FORMATS, 'auto')))}."
            )
        object.__setattr__(self, "file_format", fmt)
        object.__setattr__(self, "field_mapping", MappingProxyType(dict(self.field_mapping)))
        if not self.timestamp_field:
            raise DefinitionError(f"Source {self.display_name!r} needs a timestamp_field.")

    @property
    def display_name(self) -> str:
        """The source's name, or its path (table, query) when it has none (for messages)."""
        return self.name or self.path or self.table or self.query or "?"

    @property
    def in_catalog(self) -> bool:
        """Whether the rows are a table or query of the engine's catalog, not files."""
        return bool(self.table or self.query)

    def raw_column(self, column: str) -> str:
        """The raw source column that is called ``column`` after the field mapping."""
        for raw, mapped in self.field_mapping.items():
            if mapped == column:
                return raw
        return column

    def __hash__(self) -> int:
        return hash((self.path, self.table, self.query, self.timestamp_field, self.name))


@dataclass(frozen=True)
class ViewJoin:
    """One view to join: its source, matching keys, output columns and TTL.

    ``entity_keys[i]`` in the entity frame matches ``source_keys[i]`` in the source.
    ``columns`` pairs a source column (after mapping) with its output name; naming (prefixes,
    aliases) is decided before the plan is built.
    """

    name: str
    source: SourceRef
    entity_keys: tuple[str, ...]
    source_keys: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]
    ttl: timedelta | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "entity_keys", tuple(self.entity_keys))
        object.__setattr__(self, "source_keys", tuple(self.source_keys))
        object.__setattr__(self, "columns", tuple((s, o) for s, o in self.columns))
        if len(self.entity_keys) != len(self.source_keys):
            raise DefinitionError(
                f"View {self.name!r} has {len(self.entity_keys)} entity key(s) "
                f"{list(self.entity_keys)} but {len(self.source_keys)} source key(s) "
                f"{list(self.source_keys)}; they must pair up one to one."
            )
        if not self.entity_keys:
            raise DefinitionError(f"View {self.name!r} needs at least one join key.")
        if self.ttl is not None and self.ttl < timedelta(0):
            raise DefinitionError(f"View {self.name!r} has a negative ttl {self.ttl}.")
        outputs = [out for _, out in self.columns]
        dupes = sorted({o for o in outputs if outputs.count(o) > 1})
        if dupes:
            raise DefinitionError(f"View {self.name!r} outputs {dupes} more than once.")

    @property
    def effective_ttl(self) -> timedelta | None:
        """The TTL that bounds candidates: ``None`` when the view never expires."""
        return self.ttl if self.ttl else None

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """Source columns (after mapping) holding the requested features."""
        return tuple(src for src, _ in self.columns)

    @property
    def output_columns(self) -> tuple[str, ...]:
        """Output names of the requested features, in order."""
        return tuple(out for _, out in self.columns)


@dataclass(frozen=True)
class PitPlan:
    """Everything an engine needs to build a point-in-time correct training frame."""

    views: tuple[ViewJoin, ...]
    timestamp_column: str = "event_timestamp"
    filter_by_created_timestamp: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "views", tuple(self.views))
        seen: dict[str, str] = {}
        for view in self.views:
            for out in view.output_columns:
                if out in seen:
                    raise RetrievalError(
                        f"Output column {out!r} comes from both view {seen[out]!r} and view "
                        f"{view.name!r}; use full feature names or an alias to tell them apart."
                    )
                seen[out] = view.name

    @property
    def output_columns(self) -> tuple[str, ...]:
        """All feature output names, view by view."""
        return tuple(out for view in self.views for out in view.output_columns)

    @property
    def entity_keys(self) -> tuple[str, ...]:
        """Every entity-frame key column any view needs, first use first."""
        keys: dict[str, None] = {}
        for view in self.views:
            keys.update(dict.fromkeys(view.entity_keys))
        return tuple(keys)
