"""Feature references: ``"view:feature"`` and, pinned to one version, ``"view@v2:feature"``.

The one parser of references; requests, saved datasets and lineage all read them here::

    parse_ref("driver_stats@v2:conv_rate")   # FeatureRef("driver_stats", 2, "conv_rate")
    str(FeatureRef("driver_stats", 2, "conv_rate"))   # 'driver_stats@v2:conv_rate'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pitstop.errors import DefinitionError, RetrievalError

_PINNED = re.compile(r"(?P<view>[^@:]+)@v(?P<version>[1-9][0-9]{0,8})\Z")
_EXAMPLE = "e.g. 'user_features:total_purchases' or 'user_features@v2:total_purchases'"


@dataclass(frozen=True)
class FeatureRef:
    """One feature of one view, of the served version (``version`` None) or a pinned one."""

    view: str
    version: int | None
    feature: str

    @property
    def view_ref(self) -> str:
        """``view`` or ``view@v2``."""
        return pinned_name(self.view, self.version)

    def __str__(self) -> str:
        return f"{self.view_ref}:{self.feature}"


def pinned_name(view: str, version: int | None) -> str:
    """``view`` for the served version, ``view@v2`` for version 2."""
    return view if version is None else f"{view}@v{version}"


def parse_ref(ref: object) -> FeatureRef:
    """``"view:feature"`` or ``"view@vN:feature"``; anything else is a :class:`RetrievalError`."""
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise RetrievalError(
            f"feature reference {ref!r} is not of the form 'view:feature' ({_EXAMPLE})"
        )
    view, feature = ref.split(":")
    if not view or not feature:
        raise RetrievalError(f"feature reference {ref!r} has an empty view or feature ({_EXAMPLE})")
    if "@" not in view:
        return FeatureRef(view, None, feature)
    match = _PINNED.match(view)
    if match is None:
        raise RetrievalError(
            f"feature reference {ref!r}: a pinned version is written 'view@vN' with N a "
            f"version number from 1 ({_EXAMPLE})"
        )
    return FeatureRef(match["view"], int(match["version"]), feature)


def view_of(ref: str) -> str:
    """The view name of a reference, without its version (``"driver_stats"``)."""
    return parse_ref(ref).view


def check_version(version: object, what: str) -> int:
    """A version number for a pin: an int from 1, or ``"v2"``/``"2"`` text."""
    number: object = version
    if isinstance(version, str):
        text = version.strip()
        text = text[1:] if text[:1] in ("v", "V") else text
        number = int(text) if text.isdigit() else None
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise DefinitionError(
            f"{what}: version must be a version number from 1 (2 or 'v2'), got {version!r}"
        )
    return number
