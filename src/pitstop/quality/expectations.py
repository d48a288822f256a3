"""Expectations: rules a view's rows must hold, declared with the view and stored in its spec.

>>> from pitstop.quality import between, not_null
>>> [not_null("age"), between("age", 0, 130)]
[not_null('age'), between('age', 0, 130)]

Nulls are bad only for :func:`not_null` and :func:`max_null_rate`; the other row rules skip
them. :mod:`pitstop.quality.validation` checks a batch's rules in one DuckDB query.

Pure (no I/O, no heavy imports): views import it when they are defined.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pitstop.errors import DefinitionError
from pitstop.quality.rule import Context, Expectation, arrow_family, dtype_family
from pitstop.quality.rules import (
    Between,
    Bound,
    Freshness,
    InSet,
    Matches,
    MaxNullRate,
    NotInFuture,
    NotNull,
    OfType,
    RowCount,
    Unique,
    decode_bound,
)

__all__ = [
    "DEFAULT_POLICY",
    "POLICIES",
    "Expectation",
    "arrow_family",
    "between",
    "check_expectations",
    "check_policy",
    "dtype_family",
    "freshness",
    "from_spec",
    "in_set",
    "matches",
    "max_null_rate",
    "not_in_future",
    "not_null",
    "of_type",
    "row_count",
    "unique",
]

#: ``reject`` writes nothing and raises :class:`~pitstop.errors.DataQualityError`.
POLICIES = ("warn", "reject")
DEFAULT_POLICY = "warn"


# --- the public constructors -----------------------------------------------------------------


def not_null(column: str) -> Expectation:
    """No row may hold null in ``column``: ``not_null("user_id")``."""
    return NotNull(column)


def between(column: str, min: Bound | None = None, max: Bound | None = None) -> Expectation:
    """Values of ``column`` lie in ``[min, max]`` (inclusive; either bound may be left out).
    Bounds are numbers, or datetimes/dates for time columns: ``between("age", 0, 130)``."""
    return Between(column, min, max)


def in_set(column: str, values: Sequence[Any]) -> Expectation:
    """Values of ``column`` are among ``values``: ``in_set("tier", ["free", "pro"])``."""
    return InSet(column, values)


def unique(*columns: str) -> Expectation:
    """No value (or combination of values) of ``columns`` appears twice:
    ``unique("user_id", "event_timestamp")``. Nulls do not count as repeats."""
    return Unique(*columns)


def matches(column: str, pattern: str) -> Expectation:
    """Text values of ``column`` contain a match of the regular expression ``pattern``
    (RE2 syntax; anchor it, ``r"^[A-Z]{2}$"``, to match whole values)."""
    return Matches(column, pattern)


def max_null_rate(column: str, rate: float) -> Expectation:
    """At most the fraction ``rate`` of rows may hold null in ``column``:
    ``max_null_rate("email", 0.01)``."""
    return MaxNullRate(column, rate)


def freshness(max_age: timedelta, column: str | None = None) -> Expectation:
    """The newest value of ``column`` (by default the view's timestamp field) is at most
    ``max_age`` old when the batch is checked: ``freshness(max_age=timedelta(hours=2))``."""
    return Freshness(max_age, column)


def row_count(min: int | None = None, max: int | None = None) -> Expectation:
    """The batch has at least ``min`` and at most ``max`` rows: ``row_count(min=1)``."""
    return RowCount(min, max)


def of_type(column: str, kind: str) -> Expectation:
    """``column`` holds values of ``kind``: integer, float, number, string, boolean, timestamp
    or date. For ``integer``, a float column passes when every value is whole."""
    return OfType(column, kind)


def not_in_future(column: str, tolerance: timedelta = timedelta(0)) -> Expectation:
    """No time in ``column`` lies after the moment of the check (plus ``tolerance``)."""
    return NotInFuture(column, tolerance)


_BUILDERS: dict[str, Callable[[Mapping[str, Any]], Expectation]] = {
    "not_null": lambda s: not_null(s["column"]),
    "between": lambda s: between(
        s["column"], decode_bound(s.get("min")), decode_bound(s.get("max"))
    ),
    "in_set": lambda s: in_set(s["column"], s["values"]),
    "unique": lambda s: unique(*s["columns"]),
    "matches": lambda s: matches(s["column"], s["pattern"]),
    "max_null_rate": lambda s: max_null_rate(s["column"], s["rate"]),
    "freshness": lambda s: freshness(timedelta(seconds=s["max_age_seconds"]), s.get("column")),
    "row_count": lambda s: row_count(s.get("min"), s.get("max")),
    "of_type": lambda s: of_type(s["column"], s["kind"]),
    "not_in_future": lambda s: not_in_future(
        s["column"], timedelta(seconds=s.get("tolerance_seconds", 0))
    ),
}


def from_spec(spec: Mapping[str, Any]) -> Expectation:
    """Rebuild an expectation from :meth:`Expectation.to_spec` output."""
    build = _BUILDERS.get(str(spec.get("rule")))
    if build is None:
        raise DefinitionError(
            f"expectation {dict(spec)!r}: unknown rule {spec.get('rule')!r}; "
            f"rules: {', '.join(_BUILDERS)}"
        )
    return build(spec)


def check_policy(policy: object, what: str) -> str | None:
    """``policy`` if it is one of :data:`POLICIES` (or None), else a DefinitionError."""
    if policy is None or (isinstance(policy, str) and policy in POLICIES):
        return policy
    raise DefinitionError(
        f"{what}: expectation_policy must be one of {', '.join(map(repr, POLICIES))}, "
        f"got {policy!r}"
    )


def check_expectations(
    expectations: object,
    families: Mapping[str, str | None],
    what: str,
    timestamp_field: str,
    *,
    complete: bool = True,
) -> tuple[Expectation, ...]:
    """``expectations`` checked against the columns a view has (name -> family, ``None`` when
    unknown; ``timestamp_field``: its event time); an unknown column or a rule that does not
    fit its column's type is a :class:`DefinitionError` naming the view, rule and column.
    ``complete=False``: more columns may exist (join keys not known yet), unknown names pass."""
    if expectations is None:
        return ()
    ctx = Context(datetime.now(UTC), timestamp_field)
    if isinstance(expectations, str | Expectation) or not isinstance(expectations, Sequence):
        raise DefinitionError(
            f"{what}: expectations must be a list such as [not_null('x'), between('x', 0, 1)], "
            f"got {expectations!r}"
        )
    seen: set[Expectation] = set()
    for exp in expectations:
        if not isinstance(exp, Expectation):
            raise DefinitionError(
                f"{what}: {exp!r} is not an expectation; build one with pitstop.quality's "
                "not_null, between, in_set, unique, matches, max_null_rate, freshness, row_count"
            )
        known = families if complete else {**dict.fromkeys(exp.columns(ctx)), **families}
        problem = exp.problem(known, ctx)
        if problem:
            raise DefinitionError(f"{what}: expectation {exp!r}: {problem}")
        if exp in seen:
            raise DefinitionError(f"{what}: expectation {exp!r} is listed twice")
        seen.add(exp)
    return tuple(expectations)
