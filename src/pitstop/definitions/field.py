"""Fields: a named, typed column of a view or request source."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pitstop.definitions.base import Definition, check_name, check_tags, check_text
from pitstop.types import FeastType, ValueType, parse_dtype


class Field(Definition):
    """A named, typed column.

    >>> from pitstop.types import Int64
    >>> Field(name="total_purchases", dtype=Int64).dtype
    Int64
    """

    kind = "field"
    dtype: FeastType
    description: str
    tags: dict[str, str]

    def __init__(
        self,
        *,
        name: str,
        dtype: FeastType | ValueType | str,
        description: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> None:
        what = f"Field {name!r}"
        self._set(
            name=check_name(name, "Field"),
            dtype=parse_dtype(dtype, what=what),
            description=check_text(description, "description", what),
            tags=check_tags(tags, what),
        )

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": self.name, "dtype": str(self.dtype)}
        if self.description:
            spec["description"] = self.description
        if self.tags:
            spec["tags"] = self.tags
        return spec

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Field:
        return cls(
            name=spec["name"],
            dtype=spec["dtype"],
            description=spec.get("description", ""),
            tags=spec.get("tags"),
        )

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, dtype={self.dtype})"


class Feature(Field):
    """The legacy ``Feature(name, dtype=ValueType.INT64)``; becomes a :class:`Field`."""

    def __init__(
        self,
        name: str,
        dtype: FeastType | ValueType | str,
        labels: Mapping[str, str] | None = None,
        description: str = "",
    ) -> None:
        super().__init__(name=name, dtype=dtype, description=description, tags=labels)


def as_fields(items: object, what: str) -> tuple[Field, ...]:
    """Accept a list of :class:`Field` (or legacy :class:`Feature`) and return Fields."""
    from pitstop.errors import DefinitionError

    if items is None:
        return ()
    if isinstance(items, Field | str) or not hasattr(items, "__iter__"):
        raise DefinitionError(f"{what}: schema must be a list of Field, got {items!r}")
    fields: list[Field] = []
    for item in items:
        if type(item) is Feature:
            item = Field(
                name=item.name, dtype=item.dtype, description=item.description, tags=item.tags
            )
        if not isinstance(item, Field):
            raise DefinitionError(
                f"{what}: schema entries must be Field(name=..., dtype=...), got {item!r}"
            )
        fields.append(item)
    return tuple(fields)
