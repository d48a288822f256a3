"""Projects: the name, description and tags of the feature repo as a whole."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pitstop.definitions.base import Definition, check_name, check_tags, check_text


class Project(Definition):
    """A repo's project. Its name must be the ``project`` of ``feature_store.yaml``; apply
    registers it (``pitstop projects list`` shows it).

    >>> Project(name="driver_ranking", description="Driver statistics").description
    'Driver statistics'
    """

    kind = "project"
    description: str
    tags: dict[str, str]
    owner: str

    def __init__(
        self,
        *,
        name: str,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        owner: str = "",
    ) -> None:
        what = f"Project {name!r}"
        self._set(
            name=check_name(name, "Project"),
            description=check_text(description, "description", what),
            tags=check_tags(tags, what),
            owner=check_text(owner, "owner", what),
        )

    def to_spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "tags": self.tags,
            "owner": self.owner,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Project:
        return cls(
            name=spec["name"],
            description=spec.get("description", ""),
            tags=spec.get("tags"),
            owner=spec.get("owner", ""),
        )
