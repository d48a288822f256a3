"""Which version of each registry object is served, and which versions are staged.

Unpinned reads use an object's *served* version. An apply writes versions that are served
from the moment they are written; a staged apply (``apply(..., stage=True)``) writes versions
that are not, and a promotion serves an existing version again or for the first time. Both
tables are append-only, like the versions themselves, so the served version of any object at
any past time can be read back:

- ``pitstop_staged(project, kind, name, version)``: the versions a staged apply wrote;
- ``pitstop_promotions(project, kind, name, version, author, promoted_at)``: each promotion.

**The rule.** The served version of an object at time ``t`` is the version of its latest
*serving event* at or before ``t``: a version row that is not staged (served when written,
deletion markers included: a deleted object serves nothing) or a promotion. An object whose
only versions are staged serves nothing. A version is *staged* while it was written staged
and never promoted. :func:`served_select` is the one implementation of the rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pitstop.registry.records import COLUMNS, Live, VersionRecord, record_of
from pitstop.registry.sqldialect import Database, Dialect

#: ``VersionRecord.status`` of the version unpinned reads use, and of a staged version.
SERVED = "served"
STAGED = "staged"


def ddl(d: Dialect) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS pitstop_staged ("
        " project TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,"
        f" version {d.integer} NOT NULL, PRIMARY KEY (project, kind, name, version))",
        "CREATE TABLE IF NOT EXISTS pitstop_promotions ("
        " project TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,"
        f" version {d.integer} NOT NULL, author TEXT NOT NULL,"
        f" promoted_at {d.timestamp} NOT NULL,"
        " PRIMARY KEY (project, kind, name, promoted_at, version))",
    ]


def served_select(columns: str, *, until: bool, one: bool) -> str:
    """A SELECT of ``columns`` (of ``pitstop_versions v``) for the served version row of each
    object of a project, deletion markers included, ordered by kind and name: with ``until``,
    as the project was at a time; with ``one``, of one object. Its parameters are
    :func:`served_params`."""

    def where(alias: str, at: str) -> str:
        clause = f" WHERE {alias}.project = ?"
        if until:
            clause += f" AND {at} <= ?"
        if one:
            clause += f" AND {alias}.kind = ? AND {alias}.name = ?"
        return clause

    # an object's newest version written served (versions and their times grow together),
    # then each promotion: the latest of these events is the served version
    written = (
        "SELECT x.kind, x.name, MAX(x.version) AS version, MAX(x.applied_at) AS at"
        " FROM pitstop_versions x"
        + where("x", "x.applied_at")
        + " AND NOT EXISTS (SELECT 1 FROM pitstop_staged s WHERE s.project = x.project"
        " AND s.kind = x.kind AND s.name = x.name AND s.version = x.version)"
        " GROUP BY x.kind, x.name"
    )
    promoted = "SELECT p.kind, p.name, p.version, p.promoted_at FROM pitstop_promotions p" + where(
        "p", "p.promoted_at"
    )
    latest = (
        "SELECT e.kind, e.name, e.version, ROW_NUMBER() OVER (PARTITION BY e.kind, e.name"
        f" ORDER BY e.at DESC, e.version DESC) AS rn FROM ({written} UNION ALL {promoted}) e"
    )
    return (
        f"SELECT {columns} FROM pitstop_versions v JOIN ({latest}) h"
        " ON h.rn = 1 AND v.kind = h.kind AND v.name = h.name AND v.version = h.version"
        " WHERE v.project = ? ORDER BY v.kind, v.name"
    )


def served_params(
    project: str, *, until: object = None, kind: str | None = None, name: str | None = None
) -> tuple[object, ...]:
    """The parameters of :func:`served_select` (``until`` given: ``until=True``; ``kind``
    and ``name`` given: ``one=True``)."""
    branch: tuple[object, ...] = (project,)
    if until is not None:
        branch += (until,)
    if kind is not None:
        branch += (kind, name)
    return (*branch, *branch, project)


def served(
    db: Database,
    project: str,
    *,
    kind: str | None = None,
    name: str | None = None,
    until: object = None,
) -> dict[tuple[str, str], VersionRecord]:
    """Each object's served version row (or one's: ``kind`` and ``name``), deletion markers
    included, as of now or of the stored time ``until``."""
    columns = ", ".join(f"v.{c}" for c in COLUMNS.split(", "))
    statement = served_select(columns, until=until is not None, one=kind is not None)
    rows = db.query(statement, served_params(project, until=until, kind=kind, name=name))
    return {(r.kind, r.name): r for r in (record_of(row, SERVED) for row in rows)}


def live_of(served: dict[tuple[str, str], VersionRecord]) -> Live:
    """``kind -> name -> record`` of the objects that serve a version (not a deletion)."""
    out: Live = {}
    for (kind, name), rec in served.items():
        if not rec.deleted:
            out.setdefault(kind, {})[name] = rec
    return out


def staged_versions(db: Database, project: str, kind: str, name: str) -> set[int]:
    """The versions of one object that are staged: written staged, never promoted."""
    rows = db.query(
        "SELECT s.version FROM pitstop_staged s WHERE s.project = ? AND s.kind = ?"
        " AND s.name = ? AND NOT EXISTS (SELECT 1 FROM pitstop_promotions p"
        " WHERE p.project = s.project AND p.kind = s.kind AND p.name = s.name"
        " AND p.version = s.version)",
        (project, kind, name),
    )
    return {int(v) for (v,) in rows}


def mark_staged(db: Database, project: str, versions: Iterable[tuple[str, str, int]]) -> None:
    rows = [(project, k, n, v) for k, n, v in versions]
    if rows:
        db.executemany(
            "INSERT INTO pitstop_staged (project, kind, name, version) VALUES (?, ?, ?, ?)", rows
        )


def promote(
    db: Database, project: str, promotions: Sequence[tuple[str, str, int]], author: str, at: object
) -> None:
    """Record that each ``(kind, name, version)`` is served from ``at`` (stored time)."""
    rows = [(project, k, n, v, author, at) for k, n, v in promotions]
    if rows:
        db.executemany(
            "INSERT INTO pitstop_promotions (project, kind, name, version, author, promoted_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )


def clear(db: Database, project: str) -> None:
    for table in ("pitstop_staged", "pitstop_promotions"):
        db.execute(f"DELETE FROM {table} WHERE project = ?", (project,))


#: The distinct times a project changed at (version rows and promotions), oldest first:
#: the registry versions are numbered by them. Parameters: the project, twice.
CHANGE_TIMES = (
    "SELECT DISTINCT t.at FROM (SELECT applied_at AS at FROM pitstop_versions WHERE project = ?"
    " UNION SELECT promoted_at FROM pitstop_promotions WHERE project = ?) t ORDER BY t.at"
)
