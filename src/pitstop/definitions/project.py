"""Projects: the name, description and tags of the feature repo as a whole."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pitstop.definitions.base import Described, check_name, described


class Project(Described):
    """A repo's project. Its name must be the ``project`` of ``feature_store.yaml``; apply
    registers it (``pitstop projects list`` shows it).

    >>> Project(name="driver_ranking", description="Driver statistics").description
    'Driver statistics'
    """

    kind = "project"

    def __init__(
        self,
        *,
        name: str,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self._set(name=check_name(name, "Project"))
        self._set_described(f"Project {name!r}", description, tags, owner)

    def to_spec(self) -> dict[str, Any]:
        return {"name": self.name, **self._described_spec()}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Project:
        return cls(name=spec["name"], **described(spec))
