"""The rules: row rules judge each row (nulls are bad only for ``not_null``), batch rules
judge the batch as a whole (repeats, null rate, freshness, row count)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pitstop.errors import DefinitionError
from pitstop.quality.rule import (
    KINDS,
    NUMERIC,
    TEMPORAL,
    Context,
    Expectation,
    Verdict,
    column_name,
    count_text,
    show_arg,
)

# --- row rules -------------------------------------------------------------------------------


class NotNull(Expectation):
    rule = "not_null"

    def __init__(self, column: str) -> None:
        self._set(column=column_name(column, self.rule))

    def predicate(self, col: str, ctx: Context) -> str:
        return f"{col} IS NULL"

    def _bad_rows(self) -> str:
        return "are null"


Bound = int | float | datetime | date


def _bound(value: object, rule: str, name: str) -> Bound | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | datetime | date):
        raise DefinitionError(
            f"{rule}: {name} must be a number, a datetime or a date, got {value!r}"
        )
    if isinstance(value, float) and (value != value or abs(value) == float("inf")):
        raise DefinitionError(f"{rule}: {name} must be a finite number, got {value!r}")
    return value


def literal(value: Any) -> str:
    """``value`` as a DuckDB literal (naive datetimes are UTC)."""
    from pitstop.offline.duckdb.sql import quote_str

    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return f"TIMESTAMPTZ '{aware.astimezone(UTC).isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, str):
        return quote_str(value)
    return repr(value)


def _encode(value: Any) -> Any:
    """A bound as JSON: numbers as they are, times tagged."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return {"timestamp": aware.astimezone(UTC).isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    return value


def decode_bound(value: Any) -> Any:
    if isinstance(value, dict) and "timestamp" in value:
        return datetime.fromisoformat(value["timestamp"])
    if isinstance(value, dict) and "date" in value:
        return date.fromisoformat(value["date"])
    return value


class Between(Expectation):
    rule = "between"
    min: Bound | None
    max: Bound | None

    def __init__(self, column: str, min: Bound | None = None, max: Bound | None = None) -> None:
        what = f"between({column!r})"
        low, high = _bound(min, what, "min"), _bound(max, what, "max")
        if low is None and high is None:
            raise DefinitionError(f"{what}: give min, max or both")
        if low is not None and high is not None:
            if _is_time(low) != _is_time(high):
                raise DefinitionError(f"{what}: min and max must both be numbers or both times")
            if _comparable(low) > _comparable(high):
                raise DefinitionError(f"{what}: min {low!r} is greater than max {high!r}")
        self._set(column=column_name(column, self.rule), min=low, max=high)

    def _families(self) -> frozenset[str]:
        return TEMPORAL if _is_time(self.min if self.min is not None else self.max) else NUMERIC

    def predicate(self, col: str, ctx: Context) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"{col} < {literal(self.min)}")
        if self.max is not None:
            parts.append(f"{col} > {literal(self.max)}")
        return " OR ".join(parts)

    def _bad_rows(self) -> str:
        low, high = _plain(self.min), _plain(self.max)
        if self.max is None:
            return f"are below {low}"
        if self.min is None:
            return f"are above {high}"
        return f"are outside [{low}, {high}]"

    def _positional(self) -> list[Any]:
        both = self.min is not None and self.max is not None
        return [self.min, self.max] if both else []

    def _keywords(self) -> dict[str, Any]:
        if self.min is not None and self.max is not None:
            return {}
        return {k: v for k, v in (("min", self.min), ("max", self.max)) if v is not None}

    def _args(self) -> dict[str, Any]:
        return {"min": _encode(self.min), "max": _encode(self.max)}


def _is_time(value: object) -> bool:
    return isinstance(value, date)


def _comparable(value: Bound) -> Any:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value


def _plain(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return f"{value:g}" if isinstance(value, float) else str(value)


class InSet(Expectation):
    rule = "in_set"
    values: tuple[Any, ...]

    def __init__(self, column: str, values: Sequence[Any]) -> None:
        what = f"in_set({column!r})"
        if isinstance(values, str | bytes) or not isinstance(values, Sequence | set | frozenset):
            raise DefinitionError(f"{what}: values must be a list, got {values!r}")
        items = list(values)
        if not items:
            raise DefinitionError(f"{what}: values must list at least one value")
        kinds = {_value_family(v) for v in items}
        if len(kinds) != 1 or None in kinds:
            raise DefinitionError(
                f"{what}: values must all be strings, all numbers or all booleans, got {items!r}"
            )
        self._set(column=column_name(column, self.rule), values=tuple(items))

    def _families(self) -> frozenset[str]:
        family = _value_family(self.values[0])
        return NUMERIC if family in NUMERIC else frozenset({family or "other"})

    def predicate(self, col: str, ctx: Context) -> str:
        return f"{col} NOT IN ({', '.join(literal(v) for v in self.values)})"

    def _bad_rows(self) -> str:
        shown = ", ".join(repr(v) for v in self.values[:10])
        more = f", ... ({len(self.values)} values)" if len(self.values) > 10 else ""
        return f"are not one of {shown}{more}"

    def _positional(self) -> list[Any]:
        return [list(self.values)]

    def _args(self) -> dict[str, Any]:
        return {"values": list(self.values)}


def _value_family(value: object) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "integer"
    if isinstance(value, str):
        return "string"
    return None


class Matches(Expectation):
    rule = "matches"
    families = frozenset({"string"})
    pattern: str

    def __init__(self, column: str, pattern: str) -> None:
        what = f"matches({column!r})"
        if not isinstance(pattern, str) or not pattern:
            raise DefinitionError(f"{what}: the pattern must be a non-empty string")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise DefinitionError(
                f"{what}: {pattern!r} is not a regular expression ({exc})"
            ) from None
        self._set(column=column_name(column, self.rule), pattern=pattern)

    def predicate(self, col: str, ctx: Context) -> str:
        return f"NOT regexp_matches({col}, {literal(self.pattern)})"

    def _bad_rows(self) -> str:
        return f"do not match {self.pattern!r}"

    def _positional(self) -> list[Any]:
        return [self.pattern]

    def _args(self) -> dict[str, Any]:
        return {"pattern": self.pattern}


class OfType(Expectation):
    rule = "of_type"
    kind: str

    def __init__(self, column: str, kind: str) -> None:
        if kind not in KINDS:
            raise DefinitionError(
                f"of_type({column!r}): kind {kind!r} is not one of {', '.join(KINDS)}"
            )
        self._set(column=column_name(column, self.rule), kind=kind)

    def _families(self) -> frozenset[str]:
        # whole numbers often arrive as floats (pandas turns integers with nulls into floats):
        # an integer column may be float as long as every value is whole
        return NUMERIC if self.kind == "integer" else KINDS[self.kind]

    def _needs(self, allowed: frozenset[str]) -> str:
        return f"expected {self.kind} values"

    def predicate(self, col: str, ctx: Context) -> str | None:
        if self.kind != "integer":
            return None
        return f"(isinf({col}::DOUBLE) OR isnan({col}::DOUBLE) OR {col} <> trunc({col}))"

    def judge(self, bad: int, measured: Sequence[Any], rows: int, ctx: Context) -> Verdict:
        if self.kind != "integer":
            return Verdict(True, {"rows": rows}, f"holds {self.kind} values")
        return super().judge(bad, measured, rows, ctx)

    def _bad_rows(self) -> str:
        return "are not whole numbers"

    def _positional(self) -> list[Any]:
        return [self.kind]

    def _args(self) -> dict[str, Any]:
        return {"kind": self.kind}


class NotInFuture(Expectation):
    rule = "not_in_future"
    families = TEMPORAL
    tolerance: timedelta

    def __init__(self, column: str, tolerance: timedelta = timedelta(0)) -> None:
        if not isinstance(tolerance, timedelta) or tolerance < timedelta(0):
            raise DefinitionError(
                f"not_in_future({column!r}): tolerance must be a timedelta of zero or more"
            )
        self._set(column=column_name(column, self.rule), tolerance=tolerance)

    def _limit(self, ctx: Context) -> datetime:
        return ctx.now + self.tolerance

    def predicate(self, col: str, ctx: Context) -> str:
        return f"{col} > {literal(self._limit(ctx))}"

    def judge(self, bad: int, measured: Sequence[Any], rows: int, ctx: Context) -> Verdict:
        text = count_text(bad, rows, f"are after {self._limit(ctx).isoformat()}")
        return Verdict(bad == 0, {"unexpected": bad, "rows": rows}, text)

    def _keywords(self) -> dict[str, Any]:
        return {"tolerance": self.tolerance} if self.tolerance else {}

    def _args(self) -> dict[str, Any]:
        return {"tolerance_seconds": self.tolerance.total_seconds()} if self.tolerance else {}


# --- batch rules -----------------------------------------------------------------------------


#: Widest range of an integer column whose repeats are counted in a bitmap (16 MiB).
BITMAP_LIMIT = 1 << 27


class Unique(Expectation):
    rule = "unique"
    keys: tuple[str, ...]

    def __init__(self, *columns: str) -> None:
        if not columns:
            raise DefinitionError("unique(): name the column(s) whose values must not repeat")
        names = tuple(column_name(c, self.rule) for c in columns)
        if len(set(names)) != len(names):
            raise DefinitionError(f"unique{names!r}: a column is named twice")
        self._set(column=names[0] if len(names) == 1 else None, keys=names)

    def columns(self, ctx: Context | None = None) -> tuple[str, ...]:
        return self.keys

    def measures(self, cols: Sequence[str], ctx: Context) -> list[str]:
        if len(cols) > 1:
            return [f"count(*) - count(DISTINCT ({', '.join(cols)}))"]
        span = ctx.ranges.get(self.keys[0])  # nulls are not values: they do not repeat
        if span is not None and span[1] - span[0] < BITMAP_LIMIT:
            # an integer column of a known range: one bit per value, a tenth of a hash table's
            # work (bitstring_agg skips nulls)
            low, high = span
            return [f"count({cols[0]}) - bit_count(bitstring_agg({cols[0]}, {low}, {high}))"]
        return [f"count({cols[0]}) - count(DISTINCT {cols[0]})"]

    def judge(self, bad: int, measured: Sequence[Any], rows: int, ctx: Context) -> Verdict:
        repeated = int(measured[0] or 0)
        what = repr(self.keys[0]) if len(self.keys) == 1 else repr(self.keys)
        text = count_text(repeated, rows, f"repeat a value of {what} seen before")
        return Verdict(repeated == 0, {"unexpected": repeated, "rows": rows}, text)

    def to_spec(self) -> dict[str, Any]:
        return {"rule": self.rule, "columns": list(self.keys)}

    def __repr__(self) -> str:
        return f"unique({', '.join(repr(k) for k in self.keys)})"


class MaxNullRate(Expectation):
    rule = "max_null_rate"
    rate: float

    def __init__(self, column: str, rate: float) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise DefinitionError(
                f"max_null_rate({column!r}): the rate must be a fraction from 0 to 1, "
                f"e.g. 0.01 for 1%, got {rate!r}"
            )
        self._set(column=column_name(column, self.rule), rate=float(rate))

    def predicate(self, col: str, ctx: Context) -> str:
        return f"{col} IS NULL"

    def judge(self, bad: int, measured: Sequence[Any], rows: int, ctx: Context) -> Verdict:
        rate = bad / rows if rows else 0.0
        text = (
            f"null rate {rate:.2%} ({bad:,} of {rows:,} rows) "
            f"{'is above' if rate > self.rate else 'is within'} the allowed {self.rate:.2%}"
        )
        return Verdict(rate <= self.rate, {"null_rate": rate, "nulls": bad, "rows": rows}, text)

    def _positional(self) -> list[Any]:
        return [self.rate]

    def _args(self) -> dict[str, Any]:
        return {"rate": self.rate}


class Freshness(Expectation):
    rule = "freshness"
    families = TEMPORAL
    max_age: timedelta

    def __init__(self, max_age: timedelta, column: str | None = None) -> None:
        if not isinstance(max_age, timedelta) or max_age <= timedelta(0):
            raise DefinitionError(
                f"freshness: max_age must be a positive timedelta, got {max_age!r}"
            )
        name = None if column is None else column_name(column, self.rule)
        self._set(column=name, max_age=max_age)

    def columns(self, ctx: Context | None = None) -> tuple[str, ...]:
        if self.column is not None:
            return (self.column,)
        if ctx is None or not ctx.timestamp_field:
            return ()
        return (ctx.timestamp_field,)

    def problem(self, families: Mapping[str, str | None], ctx: Context | None = None) -> str:
        if not self.columns(ctx):
            return "no time column: give column=..., or declare it on a view (its timestamp field)"
        return super().problem(families, ctx)

    def measures(self, cols: Sequence[str], ctx: Context) -> list[str]:
        return [f"epoch_us(max({cols[0]})::TIMESTAMPTZ)"]  # a number: no time zone to convert

    def judge(self, bad: int, measured: Sequence[Any], rows: int, ctx: Context) -> Verdict:
        name = self.columns(ctx)[0]
        allowed = _age(self.max_age)
        if measured[0] is None:
            return Verdict(False, {"newest": None}, f"no value of {name!r}: nothing is fresh")
        newest = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(measured[0]))
        age = ctx.now - newest
        text = (f"the newest {name!r} is {newest.isoformat()}, {_age(age)} before "
                f"{ctx.now.isoformat()}; allowed: {allowed}")  # fmt: skip
        observed = {"newest": newest.isoformat(), "age_seconds": age.total_seconds()}
        return Verdict(age <= self.max_age, observed, text)

    def __repr__(self) -> str:
        col = "" if self.column is None else f", column={self.column!r}"
        return f"freshness(max_age={show_arg(self.max_age)}{col})"

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"rule": self.rule, "max_age_seconds": self.max_age.total_seconds()}
        if self.column is not None:
            spec["column"] = self.column
        return spec


def _age(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


class RowCount(Expectation):
    rule = "row_count"
    min: int | None
    max: int | None

    def __init__(self, min: int | None = None, max: int | None = None) -> None:
        for name, value in (("min", min), ("max", max)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):  # fmt: skip
                raise DefinitionError(
                    f"row_count: {name} must be a whole number >= 0, got {value!r}"
                )
        if min is None and max is None:
            raise DefinitionError("row_count: give min, max or both")
        if min is not None and max is not None and min > max:
            raise DefinitionError(f"row_count: min {min} is greater than max {max}")
        self._set(min=min, max=max)

    def judge(self, bad: int, measured: Sequence[Any], rows: int, ctx: Context) -> Verdict:
        low = self.min is not None and rows < self.min
        high = self.max is not None and rows > self.max
        wanted = " and ".join(
            t for t in (f"at least {self.min:,}" if self.min is not None else "",
                        f"at most {self.max:,}" if self.max is not None else "") if t
        )  # fmt: skip
        return Verdict(not (low or high), {"rows": rows}, f"{rows:,} rows; expected {wanted}")

    def _keywords(self) -> dict[str, Any]:
        return {k: v for k, v in (("min", self.min), ("max", self.max)) if v is not None}

    def _args(self) -> dict[str, Any]:
        return {"min": self.min, "max": self.max}
