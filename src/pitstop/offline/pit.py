"""The one point-in-time plan every offline engine executes.

A :class:`PitPlan` is plain data describing a whole training-set job: which views to join onto
an entity frame, where each view's rows live (its files and its pushed rows), which keys match,
which columns come out under which names, each view's TTL, the windowed aggregations of stream
views (:class:`AggregateJoin`) and the rankings that break ties (:class:`Rank`). The layer
that resolves Feast-style definitions (feature views, refs, aliases, services) builds it;
engines (:mod:`pitstop.offline.duckdb`, later Spark) execute it. No I/O happens here, except
that a source's default pushed location depends on whether its path is a directory.

The semantics every engine must honour (DESIGN.md §3), for each entity row with join keys and
timestamp ``t`` and each view:

* candidates are the view's rows with the same keys and ``event_ts <= t``; with a TTL (not
  ``None`` and not zero) also ``event_ts >= t - ttl`` -- inclusive at both ends;
* with ``filter_by_created_timestamp`` candidates with ``created_ts > t`` are excluded too
  (a row without a created timestamp counts as created at its event time);
* the candidate ranked first by :data:`VIEW_ORDER` wins: the greatest ``event_ts``; equal
  ``event_ts`` -> greatest ``created_ts`` (a missing created timestamp loses to any present
  one); candidates equal on both are interchangeable;
* windowed aggregations follow :class:`AggregateJoin`'s rules;
* exactly one output row per input row, in input order, every entity column passed through,
  duplicates kept; no candidate -> nulls;
* tz-naive timestamps are UTC, tz-aware ones are converted to UTC, ISO strings in the entity
  timestamp column are parsed; the output timestamp column is tz-aware UTC
  (:mod:`pitstop.offline.typemap` holds the rule for every encoding);
* the entity frame's row time is its ``timestamp_column``, or, when it has no such column, its
  one timestamp-typed column, which keeps its name in the output.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import NamedTuple

from pitstop.errors import DefinitionError, RetrievalError
from pitstop.offline.sources import pushed_location

__all__ = [
    "FILE_FORMATS",
    "LAST_VALUE_ORDER",
    "VIEW_ORDER",
    "AggregateJoin",
    "PitPlan",
    "Rank",
    "SourceRef",
    "ViewJoin",
    "WindowAggregate",
    "infer_file_format",
]

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
    #: Where appended (pushed) rows live, read together with ``path`` (either may be absent,
    #: not both); by default the rule of :func:`pitstop.offline.sources.pushed_location`.
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
        if self.pushed is None:
            # a catalog table or query takes no appended rows
            object.__setattr__(self, "pushed", pushed_location(self.path) if self.path else "")
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


class Rank(enum.Enum):
    """One criterion of a ranking; between two rows, the first criterion that differs decides.

    ``EVENT``
        the greater event timestamp wins.
    ``CREATED``
        the greater created timestamp wins; a missing one loses to any present one; a source
        without a created timestamp column ties on it.
    ``ARRIVAL``
        the row that arrived later wins: files in the order the source lists them (its own
        file, or its directory's or glob's files in path order, then its pushed parts in path
        order, which is append order), rows in their file's order. Rows of one CSV file have
        no recorded order: among them the greater value wins.
    """

    EVENT = "event_ts"
    CREATED = "created_ts"
    ARRIVAL = "arrival"

    def __str__(self) -> str:
        return self.value


#: How a view's candidates rank for a point-in-time join and ``latest``: rows equal on both
#: are interchangeable (an engine may return either).
VIEW_ORDER = (Rank.EVENT, Rank.CREATED)
#: How the events of a window rank for ``last``: always one winner.
LAST_VALUE_ORDER = (Rank.EVENT, Rank.CREATED, Rank.ARRIVAL)


class WindowAggregate(NamedTuple):
    """One windowed aggregation: ``function`` of the source column ``column`` over the events
    with ``t - window < event_ts <= t``, output as ``output``."""

    function: str
    column: str
    window: timedelta
    output: str


@dataclass(frozen=True)
class AggregateJoin:
    """Windowed aggregations of one source to compute for each entity row.

    ``entity_keys[i]`` in the entity frame matches ``source_keys[i]`` in the source (names
    after the field mapping). ``aggregations`` are :class:`WindowAggregate` (plain
    ``(function, column, window, output)`` tuples are converted).

    The semantics every engine honours, per entity row (keys, time ``t``) and aggregation:

    * the events are the source rows with the same keys and ``t - window < event_ts <= t``;
    * null values are ignored by every function (``count`` counts non-null values);
    * an empty window: ``count`` and ``count_distinct`` 0; ``sum``, ``mean``/``avg``, ``min``,
      ``max`` and ``last`` null; an entity row with a null key or time has an empty window;
    * ``last``: the value of the event ranked first by the plan's ``last_order``
      (:data:`LAST_VALUE_ORDER`), among the events whose value is not null;
    * ``sum`` of an integer column is int64, of anything else float64; ``mean`` is float64;
      ``min``, ``max`` and ``last`` keep the column's type.
    """

    name: str
    source: SourceRef
    entity_keys: tuple[str, ...]
    source_keys: tuple[str, ...]
    aggregations: tuple[WindowAggregate, ...]

    def __post_init__(self) -> None:
        from pitstop.definitions.stream import FUNCTIONS

        object.__setattr__(self, "entity_keys", tuple(self.entity_keys))
        object.__setattr__(self, "source_keys", tuple(self.source_keys))
        aggregations = tuple(WindowAggregate(*a) for a in self.aggregations)
        object.__setattr__(self, "aggregations", aggregations)
        for function, column, window, output in aggregations:
            what = f"View {self.name!r}, aggregation {output!r} ({function} of {column!r})"
            if function not in FUNCTIONS:
                raise DefinitionError(
                    f"{what}: function {function!r} is not supported; allowed: "
                    f"{', '.join(FUNCTIONS)}"
                )
            if not isinstance(window, timedelta) or window < timedelta(microseconds=1):
                raise DefinitionError(f"{what}: the window must be at least one microsecond")
        self.as_view()  # validates keys and output names

    @property
    def columns(self) -> tuple[str, ...]:
        """The aggregated source columns, first use first."""
        return tuple(dict.fromkeys(a.column for a in self.aggregations))

    @property
    def windows(self) -> tuple[timedelta, ...]:
        """The distinct windows, first use first."""
        return tuple(dict.fromkeys(a.window for a in self.aggregations))

    @property
    def output_columns(self) -> tuple[str, ...]:
        """Output names of the aggregations, in order."""
        return tuple(a.output for a in self.aggregations)

    @property
    def zero_filled(self) -> tuple[str, ...]:
        """Outputs that are 0 (not null) over an empty window: counts."""
        return tuple(a.output for a in self.aggregations if a.function in _COUNTS)

    def as_view(self) -> ViewJoin:
        """The aggregations as a :class:`ViewJoin` whose columns are ``(column, output)``: the
        source columns they read, for source and key checks."""
        return ViewJoin(
            name=self.name,
            source=self.source,
            entity_keys=self.entity_keys,
            source_keys=self.source_keys,
            columns=tuple((a.column, a.output) for a in self.aggregations),
        )


_COUNTS = ("count", "count_distinct")


@dataclass(frozen=True)
class PitPlan:
    """Everything an engine needs to build a point-in-time correct training frame: the views
    to join, the windowed aggregations to compute (planned once for the whole job) and the
    ranking rules that break ties.

    The result has the entity frame's columns, then :attr:`output_columns`: every view's
    outputs, view by view, then every aggregation's. ``filter_by_created_timestamp`` applies to
    views; aggregations count every event of their window. ``view_order`` ranks a view's
    candidates (the first of them wins), ``last_order`` the events of a window for ``last``.
    """

    views: tuple[ViewJoin, ...]
    timestamp_column: str = "event_timestamp"
    filter_by_created_timestamp: bool = False
    aggregates: tuple[AggregateJoin, ...] = ()
    view_order: tuple[Rank, ...] = VIEW_ORDER
    last_order: tuple[Rank, ...] = LAST_VALUE_ORDER

    def __post_init__(self) -> None:
        object.__setattr__(self, "views", tuple(self.views))
        object.__setattr__(self, "aggregates", tuple(self.aggregates))
        for order in (self.view_order, self.last_order):
            if not order or order[0] is not Rank.EVENT or len(set(order)) != len(order):
                raise DefinitionError(
                    f"A ranking must start with {Rank.EVENT} and name each rank once, not "
                    f"{[str(r) for r in order]}."
                )
        seen: dict[str, str] = {}
        for name, outputs in self._outputs():
            for out in outputs:
                if out in seen:
                    raise RetrievalError(
                        f"Output column {out!r} comes from both view {seen[out]!r} and view "
                        f"{name!r}; use full feature names or an alias to tell them apart."
                    )
                seen[out] = name

    @property
    def joins(self) -> tuple[ViewJoin | AggregateJoin, ...]:
        """The views, then the aggregations."""
        return (*self.views, *self.aggregates)

    def _outputs(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(j.name, j.output_columns) for j in self.joins]

    @property
    def output_columns(self) -> tuple[str, ...]:
        """All output names: view by view, then aggregation by aggregation."""
        return tuple(out for _, outputs in self._outputs() for out in outputs)

    @property
    def zero_filled(self) -> tuple[str, ...]:
        """Outputs that are 0, not null, for an entity row whose windows are empty."""
        return tuple(out for join in self.aggregates for out in join.zero_filled)

    @property
    def entity_keys(self) -> tuple[str, ...]:
        """Every entity-frame key column any view or aggregation needs, first use first."""
        keys: dict[str, None] = {}
        for join in self.joins:
            keys.update(dict.fromkeys(join.entity_keys))
        return tuple(keys)
