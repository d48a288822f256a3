"""Registry specs compared: their canonical hash and the structural differences of two.

A spec is a JSON-serialisable dict; two specs with the same canonical JSON (sorted keys) are
the same version. :func:`diff_specs` lists leaf changes with paths like ``schema[2].dtype``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["MISSING", "SpecChange", "canonical_hash", "diff_specs"]


class _Missing:
    """Marks a key or list item absent on one side of a :class:`SpecChange`."""

    def __repr__(self) -> str:
        return "<missing>"

    def __bool__(self) -> bool:
        return False


#: ``SpecChange.old`` for an added key/item, ``SpecChange.new`` for a removed one.
MISSING: Final = _Missing()


@dataclass(frozen=True)
class SpecChange:
    """One leaf difference between two specs; ``path`` like ``schema[2].dtype``."""

    path: str
    old: Any
    new: Any

    @property
    def op(self) -> str:
        """``"added"``, ``"removed"`` or ``"changed"``."""
        if self.old is MISSING:
            return "added"
        return "removed" if self.new is MISSING else "changed"


def canonical_hash(spec: dict[str, Any]) -> str:
    """sha256 of ``spec`` as JSON with sorted keys and compact separators."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _join(path: str, key: str) -> str:
    if _IDENT.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def diff_specs(old: Any, new: Any, path: str = "") -> list[SpecChange]:
    """Structural differences between two JSON values, recursing into dicts and lists."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[SpecChange] = []
        for key in sorted(old.keys() | new.keys(), key=str):
            sub = _join(path, str(key))
            changes += diff_specs(old.get(key, MISSING), new.get(key, MISSING), sub)
        return changes
    if isinstance(old, list) and isinstance(new, list):
        changes = []
        for i in range(max(len(old), len(new))):
            a = old[i] if i < len(old) else MISSING
            b = new[i] if i < len(new) else MISSING
            changes += diff_specs(a, b, f"{path}[{i}]")
        return changes
    if type(old) is type(new) and old == new:
        return []
    return [SpecChange(path, old, new)]
