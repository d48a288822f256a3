"""Entities: the keys features are looked up by."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pitstop.definitions.base import Described, check_name, described
from pitstop.errors import DefinitionError
from pitstop.types import FeastType, ValueType, from_value_type


class Entity(Described):
    """What features describe, and the column(s) that identify it.

    >>> user = Entity(name="user_id", description="Customer ID", value_type=ValueType.INT64)
    >>> user.join_keys
    ('user_id',)
    """

    kind = "entity"
    join_keys: tuple[str, ...]
    value_type: ValueType | None

    def __init__(
        self,
        *,
        name: str,
        join_keys: Sequence[str] | None = None,
        value_type: ValueType | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        owner: str = "",
        join_key: str | None = None,
    ) -> None:
        what = f"Entity {name!r}"
        check_name(name, "Entity")
        if join_key is not None and join_keys is not None:
            raise DefinitionError(f"{what}: give join_keys or the legacy join_key, not both")
        if isinstance(join_keys, str):
            join_keys = [join_keys]  # one key given as a string, not its characters
        keys = [join_key] if join_key is not None else list(join_keys or [name])
        if not keys or not all(isinstance(k, str) and k for k in keys):
            raise DefinitionError(f"{what}: join_keys must be a list of column names")
        if len(set(keys)) != len(keys):
            raise DefinitionError(f"{what}: duplicate join key in {keys}")
        if value_type is not None and not isinstance(value_type, ValueType):
            raise DefinitionError(
                f"{what}: value_type must be a ValueType such as ValueType.INT64, "
                f"got {value_type!r}"
            )
        if value_type is ValueType.UNKNOWN:
            value_type = None
        if value_type is not None:
            from_value_type(value_type)  # validates that it maps to a dtype
        self._set(name=name, join_keys=tuple(keys), value_type=value_type)
        self._set_described(what, description, tags, owner)

    @property
    def join_key(self) -> str:
        return self.join_keys[0]

    @property
    def dtype(self) -> FeastType | None:
        return None if self.value_type is None else from_value_type(self.value_type)

    def to_spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "join_keys": list(self.join_keys),
            "value_type": None if self.value_type is None else self.value_type.name,
            **self._described_spec(),
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Entity:
        vt = spec.get("value_type")
        return cls(
            name=spec["name"],
            join_keys=spec["join_keys"],
            value_type=None if vt is None else ValueType[vt],
            **described(spec),
        )
