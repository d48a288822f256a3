"""What every definition shares: immutability, names, tags, durations and equality by spec."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar, Self

from pitstop.errors import DefinitionError

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


class Definition:
    """Base of all definitions: immutable once built, compared by their JSON spec."""

    kind: ClassVar[str] = "definition"
    name: str

    def _set(self, **values: Any) -> None:
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(
            f"{type(self).__name__} {getattr(self, 'name', '?')!r} is immutable; "
            f"build a new one instead of setting {key!r}"
        )

    def __delattr__(self, key: str) -> None:
        raise AttributeError(
            f"{type(self).__name__} {getattr(self, 'name', '?')!r} is immutable; "
            f"build a new one instead of deleting {key!r}"
        )

    def _copy(self, **values: Any) -> Self:
        clone = copy.copy(self)
        clone._set(**values)
        return clone

    def to_spec(self) -> dict[str, Any]:
        """The JSON-serialisable spec stored in the registry."""
        raise NotImplementedError  # every concrete definition overrides it

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Self:
        """Rebuild from :meth:`to_spec` output."""
        raise NotImplementedError  # every concrete definition overrides it

    def to_json(self) -> str:
        return json.dumps(self.to_spec(), sort_keys=True)

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        assert isinstance(other, Definition)
        return self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return hash((self.kind, self.name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Described(Definition):
    """A definition people describe: a description, tags and an owner, checked the same way,
    stored last in its spec and read back from it the same way, whatever its kind."""

    description: str
    tags: dict[str, str]
    owner: str

    def _set_described(
        self, what: str, description: object, tags: Mapping[str, str] | None, owner: object
    ) -> None:
        self._set(
            description=check_text(description, "description", what),
            tags=check_tags(tags, what),
            owner=check_text(owner, "owner", what),
        )

    def _described_spec(self) -> dict[str, Any]:
        return {"description": self.description, "tags": self.tags, "owner": self.owner}


def described(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The description, tags and owner a spec holds, as keyword arguments of a constructor."""
    return {
        "description": spec.get("description", ""),
        "tags": spec.get("tags"),
        "owner": spec.get("owner", ""),
    }


def check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise DefinitionError(f"{what}: a name is required (a non-empty string), got {name!r}")
    if not _NAME.match(name):
        raise DefinitionError(
            f"{what} {name!r}: names may use letters, digits, '_', '-' and '.', "
            "and must not start with a punctuation mark"
        )
    return name


def check_tags(tags: Mapping[str, str] | None, what: str) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise DefinitionError(f"{what}: tags must be a dict of strings, got {type(tags).__name__}")
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise DefinitionError(f"{what}: tag {key!r}: {value!r} must map a string to a string")
    return dict(tags)


def check_text(value: object, field: str, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DefinitionError(f"{what}: {field} must be a string, got {type(value).__name__}")
    return value


def check_ttl(ttl: object, what: str) -> timedelta | None:
    """``None`` and zero mean "never expires"; negative durations are an error."""
    if ttl is None:
        return None
    if isinstance(ttl, int | float) and not isinstance(ttl, bool):
        ttl = timedelta(seconds=ttl)
    if not isinstance(ttl, timedelta):
        raise DefinitionError(f"{what}: ttl must be a timedelta, got {type(ttl).__name__}")
    if ttl < timedelta(0):
        raise DefinitionError(f"{what}: ttl must not be negative, got {ttl}")
    return ttl


def seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def duration(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def unique(names: list[str], what: str, item: str = "field") -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DefinitionError(f"{what}: duplicate {item} name {name!r}; names must be unique")
        seen.add(name)
