"""The base of expectations: column families, the context a batch is judged in, and
:class:`Expectation`, which each rule (:mod:`pitstop.quality.rules`) extends.

A rule knows its column(s), which families of column it applies to, the SQL predicate that
finds a bad row (or the aggregates that judge the whole batch) and how to judge the counts;
:mod:`pitstop.quality.validation` runs all of a batch's rules in one DuckDB query.

Pure (no I/O, no heavy imports): views import it when they are defined.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pitstop.errors import DefinitionError, suggest

#: Column families rules reason about (one per pitstop dtype and Arrow type).
NUMERIC = frozenset({"integer", "float"})
TEMPORAL = frozenset({"timestamp", "date"})
_DTYPE_FAMILIES = {
    "Int32": "integer", "Int64": "integer", "Float32": "float", "Float64": "float",
    "String": "string", "Json": "string", "Bytes": "bytes", "Bool": "boolean",
    "UnixTimestamp": "timestamp", "Map": "map",
}  # fmt: skip
#: The kinds :func:`of_type` accepts, and the families each admits.
KINDS: dict[str, frozenset[str]] = {
    "integer": frozenset({"integer"}),
    "float": frozenset({"float"}),
    "number": NUMERIC,
    "string": frozenset({"string"}),
    "boolean": frozenset({"boolean"}),
    "timestamp": frozenset({"timestamp"}),
    "date": frozenset({"date"}),
}


def dtype_family(dtype: object) -> str:
    """The family of a pitstop dtype: ``Int64`` -> ``"integer"``, ``Array(...)`` -> ``"list"``."""
    name = getattr(dtype, "name", str(dtype))
    if name.startswith("Array("):
        return "list"
    if name.startswith("Struct("):
        return "struct"
    return _DTYPE_FAMILIES.get(name, "other")


def arrow_family(arrow_type: Any) -> str:
    """The family of an Arrow type (dictionary types count as their values)."""
    import pyarrow as pa

    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    checks = (
        (pa.types.is_boolean, "boolean"), (pa.types.is_integer, "integer"),
        (pa.types.is_floating, "float"), (pa.types.is_decimal, "float"),
        (pa.types.is_string, "string"), (pa.types.is_large_string, "string"),
        (pa.types.is_timestamp, "timestamp"), (pa.types.is_date, "date"),
        (pa.types.is_binary, "bytes"), (pa.types.is_large_binary, "bytes"),
        (pa.types.is_list, "list"), (pa.types.is_large_list, "list"),
        (pa.types.is_struct, "struct"), (pa.types.is_map, "map"),
    )  # fmt: skip
    return next((family for check, family in checks if check(t)), "other")


@dataclass(frozen=True)
class Context:
    """What a batch is judged against: the time "now", the view's event time column, and the
    range of integer columns when it is known beforehand (``ranges``: name -> (min, max))."""

    now: datetime
    timestamp_field: str | None = None
    ranges: Mapping[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """A rule's judgement of a batch: passed or not, what was observed, and in words."""

    passed: bool
    observed: dict[str, Any]
    summary: str


class Expectation:
    """One rule about a batch of rows. Build them with the functions of this module
    (:func:`not_null`, :func:`between`, ...); they are immutable and compared by spec."""

    rule: ClassVar[str] = ""
    #: Families the rule's column may have; ``None``: any.
    families: ClassVar[frozenset[str] | None] = None
    column: str | None = None

    def _set(self, **values: Any) -> None:
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"{self!r} is immutable; build a new expectation instead")

    # --- what it reads -----------------------------------------------------------------------

    def columns(self, ctx: Context | None = None) -> tuple[str, ...]:
        """The columns the rule reads (``ctx`` resolves a view's default time column)."""
        return () if self.column is None else (self.column,)

    def problem(self, families: Mapping[str, str | None], ctx: Context | None = None) -> str:
        """Why the rule cannot run on columns of these families (``None``: unknown), or ``""``."""
        for name in self.columns(ctx):
            if name not in families:
                return f"there is no column {name!r}.{suggest(name, families)}"
            family = families[name]
            allowed = self._families()
            if family is not None and allowed is not None and family not in allowed:
                return f"column {name!r} holds {family} values; {self._needs(allowed)}."
        return ""

    def _families(self) -> frozenset[str] | None:
        return self.families

    def _needs(self, allowed: frozenset[str]) -> str:
        return f"{self.rule} applies to {' or '.join(sorted(allowed))} columns"

    # --- how it is judged ---------------------------------------------------------------------

    def predicate(self, col: str, ctx: Context) -> str | None:
        """SQL that is true for a bad row, on the quoted column ``col``; ``None`` for rules
        that judge the batch as a whole without naming rows."""
        return None

    def measures(self, cols: Sequence[str], ctx: Context) -> list[str]:
        """SQL aggregates the judgement needs besides the count of bad rows."""
        return []

    def judge(self, bad: int, measured: Sequence[Any], rows: int, ctx: Context) -> Verdict:
        """The verdict from the count of rows :meth:`predicate` finds and :meth:`measures`."""
        text = f"{bad:,} of {rows:,} rows {self._bad_rows()}"
        return Verdict(bad == 0, {"unexpected": bad, "rows": rows}, text)

    def _bad_rows(self) -> str:
        return "are bad"

    # --- spec -------------------------------------------------------------------------------

    def _args(self) -> dict[str, Any]:
        """The rule's arguments, as :meth:`to_spec` stores them (besides rule and column)."""
        return {}

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"rule": self.rule}
        if self.column is not None:
            spec["column"] = self.column
        spec.update(self._args())
        return spec

    def __repr__(self) -> str:
        parts = [] if self.column is None else [repr(self.column)]
        parts += [show_arg(v) for v in self._positional()]
        parts += [f"{k}={show_arg(v)}" for k, v in self._keywords().items()]
        return f"{self.rule}({', '.join(parts)})"

    def _positional(self) -> list[Any]:
        return []

    def _keywords(self) -> dict[str, Any]:
        return {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expectation) and self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return hash(repr(self))


def show_arg(value: Any) -> str:
    if isinstance(value, datetime):
        return repr(value.isoformat())
    if isinstance(value, timedelta):
        return f"timedelta(seconds={value.total_seconds():g})"
    return repr(value)


def column_name(column: object, rule: str) -> str:
    if not isinstance(column, str) or not column:
        raise DefinitionError(f"{rule}: the column must be a non-empty string, got {column!r}")
    return column


def count_text(bad: int, rows: int, what: str) -> str:
    return f"{bad:,} of {rows:,} rows {what}"
