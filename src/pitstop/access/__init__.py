"""Access control: the one :func:`authorize` every reader and writer asks.

The project's :class:`~pitstop.definitions.access.Permission` and
:class:`~pitstop.definitions.access.Role` objects (registry objects like any other) form a
:class:`Policy`. A principal — the caller of the current block (:mod:`pitstop.registry.audit`
``acting_as``; the OS user by default, ``api-key:…`` or ``jwt:…`` on the feature server) —
holds the roles whose principal patterns match its name, plus the roles its JWT carries. An
action on a resource is allowed when a permission grants one of those roles that action on
that resource's kind, name and tags. A project without permissions allows everything, so
nothing changes until a first permission is applied (by anyone: the policy in force is the
one before the apply; later applies need the ``apply`` action, deletions ``delete``).

Decisions are cached per registry snapshot and principal: on the online read path a check
costs a dictionary lookup or two. Example::

    authorize(snapshot, "read_online", Resource.of(view))   # or PermissionDeniedError
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pitstop.definitions.access import ACTIONS, Permission, Role
from pitstop.definitions.base import Definition
from pitstop.errors import PermissionDeniedError
from pitstop.registry.audit import Actor, current_actor
from pitstop.registry.snapshot import LABELS, Snapshot

__all__ = ["ACTIONS", "Policy", "Resource", "authorize", "policy_of"]


@dataclass(frozen=True)
class Resource:
    """What an action is about: a registry object's kind, name and tags."""

    kind: str
    name: str
    tags: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def of(cls, obj: Definition) -> Resource:
        from pitstop.definitions.serde import kind_of

        return cls(kind_of(obj), obj.name, dict(getattr(obj, "tags", {})))

    def describe(self) -> str:
        return f"{LABELS.get(self.kind, self.kind)} {self.name!r}"


class Policy:
    """The permissions and roles of one registry snapshot, ready to answer."""

    def __init__(self, permissions: Iterable[Permission], roles: Iterable[Role]) -> None:
        self.permissions = tuple(permissions)
        self.roles = tuple(roles)
        self.enabled = bool(self.permissions)
        self._patterns = {p.name: [re.compile(x) for x in p.name_patterns]
                          for p in self.permissions}  # fmt: skip
        self._decisions: dict[tuple[Any, ...], bool] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(cls, snapshot: Snapshot) -> Policy:
        return cls(snapshot.of(Permission).values(), snapshot.of(Role).values())

    def roles_of(self, actor: Actor) -> frozenset[str]:
        """The roles ``actor`` holds: by the project's roles, and by its token."""
        held = {r.name for r in self.roles
                if any(fnmatch.fnmatchcase(actor.principal, p) for p in r.principals)}  # fmt: skip
        return frozenset(held | set(actor.roles))

    def allows(self, actor: Actor, action: str, resource: Resource) -> bool:
        if not self.enabled:
            return True
        tags = tuple(sorted(resource.tags.items())) if resource.tags else ()
        key = (actor.principal, actor.roles, action, resource.kind, resource.name, tags)
        found = self._decisions.get(key)
        if found is None:
            found = self._decide(self.roles_of(actor), action, resource)
            with self._lock:
                if len(self._decisions) > 10_000:
                    self._decisions.clear()
                self._decisions[key] = found
        return found

    def _decide(self, roles: frozenset[str], action: str, resource: Resource) -> bool:
        for p in self.permissions:
            if action not in p.actions or (p.types and resource.kind not in p.types):
                continue
            if not roles.intersection(p.roles) and "*" not in p.roles:
                continue
            patterns = self._patterns[p.name]
            if patterns and not any(x.fullmatch(resource.name) for x in patterns):
                continue
            if any(resource.tags.get(k) != v for k, v in p.required_tags.items()):
                continue
            return True
        return False


_POLICIES: dict[int, tuple[Snapshot, Policy]] = {}
_POLICIES_LOCK = threading.Lock()


def policy_of(snapshot: Snapshot) -> Policy:
    """The policy of ``snapshot`` (compiled once per snapshot object)."""
    found = _POLICIES.get(id(snapshot))
    if found is not None and found[0] is snapshot:
        return found[1]
    policy = Policy.of(snapshot)
    with _POLICIES_LOCK:
        if len(_POLICIES) > 64:
            _POLICIES.clear()
        _POLICIES[id(snapshot)] = (snapshot, policy)
    return policy


def authorize(
    snapshot: Snapshot | Policy, action: str, resource: Resource, actor: Actor | None = None
) -> None:
    """Raise :class:`PermissionDeniedError` unless the caller may do ``action`` on
    ``resource`` under the policy of ``snapshot``."""
    policy = snapshot if isinstance(snapshot, Policy) else policy_of(snapshot)
    if not policy.enabled:
        return
    who = actor or current_actor()
    if policy.allows(who, action, resource):
        return
    roles = sorted(policy.roles_of(who))
    held = f"holds the roles {', '.join(roles)}" if roles else "holds no role"
    raise PermissionDeniedError(
        f"{who.principal} may not {action.replace('_', ' ')} {resource.describe()}: "
        f"{who.principal} {held}, and no permission of the project grants {action!r} on it "
        "to them. Ask an owner of the project's access policies to grant it (a Permission "
        "with this action for one of your roles)."
    )


def check_all(snapshot: Snapshot, action: str, objects: Iterable[Any]) -> None:
    """:func:`authorize` ``action`` on each definition of ``objects``."""
    policy = policy_of(snapshot)
    if policy.enabled:
        for obj in objects:
            authorize(policy, action, Resource.of(obj))
