"""Data quality: expectations declared with views, validation reports, profiles and the
recipes of saved datasets; feature logging, drift and consistency monitoring, freshness.

>>> from pitstop.quality import between, not_null
>>> rules = [not_null("age"), between("age", 0, 130)]

The rules (this package's light part) are imported with every view definition; validation,
profiling and datasets import DuckDB and Arrow only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pitstop.quality.expectations import (
    DEFAULT_POLICY,
    POLICIES,
    Expectation,
    between,
    freshness,
    in_set,
    matches,
    max_null_rate,
    not_in_future,
    not_null,
    of_type,
    row_count,
    unique,
)

if TYPE_CHECKING:
    from pitstop.quality.profiling import ColumnProfile, Profile, profile
    from pitstop.quality.report import RuleResult, ValidationReport
    from pitstop.quality.validation import validate

__all__ = [
    "DEFAULT_POLICY",
    "POLICIES",
    "ColumnProfile",
    "Expectation",
    "Profile",
    "RuleResult",
    "ValidationReport",
    "between",
    "freshness",
    "in_set",
    "matches",
    "max_null_rate",
    "not_in_future",
    "not_null",
    "of_type",
    "profile",
    "row_count",
    "unique",
    "validate",
]

_LAZY = {
    "ValidationReport": "pitstop.quality.report",
    "RuleResult": "pitstop.quality.report",
    "validate": "pitstop.quality.validation",
    "Profile": "pitstop.quality.profiling",
    "ColumnProfile": "pitstop.quality.profiling",
    "profile": "pitstop.quality.profiling",
}


def __getattr__(name: str) -> Any:
    """Import validation and profiling only when used (they need DuckDB and Arrow)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pitstop.quality' has no attribute {name!r}")
