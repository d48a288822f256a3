"""Access policies, kept in the registry like every definition: roles and permissions.

A :class:`Role` names the principals that hold it (``root``, ``api-key:3f2a9c81d0e4``,
``jwt:alice``; ``*`` patterns allowed); a JWT may also carry roles. A :class:`Permission`
grants its ``roles`` some ``actions`` on the objects it selects by kind (``types``), name
(``name_patterns``, regular expressions) and tags (``required_tags``)::

    Role(name="ml-engineers", principals=["alice", "jwt:alice", "api-key:3f2a9c81d0e4"])
    Permission(name="engineers-serve", roles=["ml-engineers"], actions=["read_online"],
               types=[FeatureView], required_tags={"team": "growth"})

A project without permissions allows everything; with one, only what a permission grants.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pitstop.definitions.base import Definition, Described, check_name, check_tags, described
from pitstop.errors import DefinitionError

#: What a permission can grant.
ACTIONS = ("describe", "apply", "delete", "read_online", "read_offline", "write_online",
           "write_offline", "materialize")  # fmt: skip
KIND_NAMES = ("entity", "data_source", "feature_view", "stream_feature_view",
              "on_demand_feature_view", "feature_service", "project", "saved_dataset", "model",
              "permission", "role")  # fmt: skip


def _strings(values: object, what: str, field: str) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise DefinitionError(f"{what}: {field} must be a list of strings")
    if not all(isinstance(v, str) and v for v in values):
        raise DefinitionError(f"{what}: {field} must be a list of non-empty strings")
    return tuple(values)


def _kinds(types: Sequence[object], what: str) -> tuple[str, ...]:
    out = []
    for t in types:
        kind = t if isinstance(t, str) else getattr(t, "kind", None)
        if kind not in KIND_NAMES:
            raise DefinitionError(
                f"{what}: types must be definition classes (FeatureView, FeatureService, ...) or "
                f"kind names ({', '.join(KIND_NAMES)}), not {t!r}"
            )
        out.append(str(kind))
    return tuple(out)


class Permission(Described):
    """Grants ``roles`` the ``actions`` on the objects selected by kind, name and tags.

    >>> Permission(name="read", roles=["analysts"], actions=["describe"]).actions
    ('describe',)
    """

    kind = "permission"
    actions: tuple[str, ...]
    roles: tuple[str, ...]
    types: tuple[str, ...]  # registry kinds; empty: every kind
    name_patterns: tuple[str, ...]  # regular expressions matching whole names; empty: all
    required_tags: dict[str, str]

    def __init__(
        self,
        *,
        name: str,
        actions: Sequence[str],
        roles: Sequence[str],
        types: Sequence[type[Definition] | str] = (),
        name_patterns: Sequence[str] = (),
        required_tags: Mapping[str, str] | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        owner: str = "",
    ) -> None:
        what = f"Permission {name!r}"
        check_name(name, "Permission")
        acts = _strings(actions, what, "actions")
        for act in acts:
            if act not in ACTIONS:
                raise DefinitionError(f"{what}: action {act!r} is not one of {', '.join(ACTIONS)}")
        patterns = _strings(name_patterns, what, "name_patterns") if name_patterns else ()
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise DefinitionError(
                    f"{what}: name pattern {pattern!r} is invalid: {exc}"
                ) from None
        self._set(
            name=name,
            actions=acts,
            roles=_strings(roles, what, "roles"),
            types=_kinds(types, what),
            name_patterns=patterns,
            required_tags=check_tags(required_tags, what),
        )
        self._set_described(what, description, tags, owner)

    def to_spec(self) -> dict[str, Any]:
        return {"name": self.name, "actions": list(self.actions), "roles": list(self.roles),
                "types": list(self.types), "name_patterns": list(self.name_patterns),
                "required_tags": self.required_tags, **self._described_spec()}  # fmt: skip

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Permission:
        return cls(name=spec["name"], actions=spec["actions"], roles=spec["roles"],
                   types=spec.get("types", []), name_patterns=spec.get("name_patterns", []),
                   required_tags=spec.get("required_tags"), **described(spec))  # fmt: skip


class Role(Described):
    """A role and the principals that hold it (shell-style patterns: ``api-key:*``).

    >>> Role(name="admins", principals=["root"]).principals
    ('root',)
    """

    kind = "role"
    principals: tuple[str, ...]

    def __init__(
        self,
        *,
        name: str,
        principals: Sequence[str],
        description: str = "",
        tags: Mapping[str, str] | None = None,
        owner: str = "",
    ) -> None:
        what = f"Role {name!r}"
        check_name(name, "Role")
        self._set(name=name, principals=_strings(principals, what, "principals"))
        self._set_described(what, description, tags, owner)

    def to_spec(self) -> dict[str, Any]:
        return {"name": self.name, "principals": list(self.principals), **self._described_spec()}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Role:
        return cls(name=spec["name"], principals=spec["principals"], **described(spec))
