"""What the command line prints: tables and diffs, drawn with rich."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

    from pitstop.registry import Change
    from pitstop.registry.store import SpecChange, VersionRecord

LISTINGS = {
    "entities": "entity",
    "data-sources": "data_source",
    "feature-views": "feature_view",
    "stream-feature-views": "stream_feature_view",
    "on-demand-feature-views": "on_demand_feature_view",
    "feature-services": "feature_service",
    "projects": "project",
}
_VERBS = {
    "create": ("Created", "green"),
    "update": ("Updated", "yellow"),
    "delete": ("Deleted", "red"),
}


def console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _label(kind: str) -> str:
    from pitstop.registry import LABELS

    return LABELS.get(kind, kind)


def print_changes(changes: list[Change], *, dry_run: bool) -> None:
    from pitstop.registry.store import diff_specs

    out = console()
    changed = [c for c in changes if c.changed]
    for c in changed:
        verb, color = _VERBS[c.action]
        if dry_run:
            verb = {"create": "Will create", "update": "Will update", "delete": "Will delete"}[
                c.action
            ]
        out.print(f"[{color}]{verb}[/] {_label(c.kind)} [bold]{c.name}[/]")
        if c.action == "update" and c.old is not None and c.spec is not None:
            for d in diff_specs(c.old, c.spec):
                out.print(f"    {d.path}: {_short(d.old)} → {_short(d.new)}")
    unchanged = len(changes) - len(changed)
    if not changed:
        out.print("No changes; the registry already matches the repo.")
    elif unchanged:
        out.print(f"({unchanged} unchanged)")


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict | list) else json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def print_history(records: list[VersionRecord]) -> None:
    from rich.table import Table

    table = Table("version", "applied at (UTC)", "author", "spec hash", "state")
    for r in records:
        table.add_row(
            f"v{r.version}",
            r.applied_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.author,
            r.spec_hash[:12],
            "deleted" if r.deleted else "",
        )
    console().print(table)


def print_spec_changes(name: str, v1: int, v2: int, changes: list[SpecChange]) -> None:
    out = console()
    if not changes:
        out.print(f"{name}: v{v1} and v{v2} have the same spec")
    for d in changes:
        out.print(f"{d.path}: {_short(d.old)} → {_short(d.new)}")


def _row(kind: str, obj: Any) -> tuple[list[str], list[str]]:
    """Column names and cells describing one object in a listing."""
    tags = ", ".join(f"{k}={v}" for k, v in obj.tags.items())
    if kind == "entity":
        return ["name", "join keys", "type", "description"], [
            obj.name,
            ", ".join(obj.join_keys),
            str(obj.dtype or ""),
            obj.description,
        ]
    if kind == "data_source":
        where = getattr(obj, "path", "") or getattr(obj, "topic", "")
        where = where or getattr(getattr(obj, "batch_source", None), "path", "")
        return ["name", "type", "path", "tags"], [obj.name, obj.source_type, where, tags]
    if kind in ("feature_view", "stream_feature_view"):
        ttl = str(obj.ttl) if obj.ttl else "never"
        feats = ", ".join(f.name for f in obj.features)
        return ["name", "entities", "features", "ttl", "online", "tags"], [
            obj.name,
            ", ".join(obj.entities),
            feats,
            ttl,
            "yes" if obj.online else "no",
            tags,
        ]
    if kind == "on_demand_feature_view":
        srcs = [p.name for p in obj.sources] + [r.name for r in obj.request_sources]
        return ["name", "sources", "features", "mode"], [
            obj.name,
            ", ".join(srcs),
            ", ".join(f.name for f in obj.features),
            obj.mode,
        ]
    if kind == "project":
        return ["name", "description", "tags"], [obj.name, obj.description, tags]
    views = ", ".join(p.name_to_use for p in obj.projections)
    return ["name", "views", "description", "tags"], [obj.name, views, obj.description, tags]


def list_command(kind: str, pass_ctx: Callable[..., Any]) -> click.Command:
    @click.command("list")
    @click.option("--tags", multiple=True, help="Only objects with tag KEY:VALUE.")
    @pass_ctx
    def run(ctx: Any, tags: tuple[str, ...]) -> None:
        from rich.table import Table

        wanted = dict(t.split(":", 1) for t in tags if ":" in t)
        objects = ctx.store._list(kind, wanted, allow_cache=False)
        if not objects:
            click.echo(f"No {_label(kind)}s registered.")
            return
        header, _ = _row(kind, objects[0])
        table = Table(*header)
        for obj in objects:
            table.add_row(*_row(kind, obj)[1])
        console().print(table)

    run.help = f"List registered {_label(kind)}s."
    return run


def describe_command(kind: str, pass_ctx: Callable[..., Any]) -> click.Command:
    @click.command("describe")
    @click.argument("name")
    @pass_ctx
    def run(ctx: Any, name: str) -> None:
        obj = ctx.store.registry.snapshot(fresh=True).get(kind, name)
        click.echo(json.dumps(obj.to_spec(), indent=2, ensure_ascii=False))

    run.help = f"Print one {_label(kind)}'s spec as JSON."
    return run


def print_verify(report: Any) -> None:
    from rich.table import Table

    out = console()
    when = report.at.isoformat()
    if report.ok:
        out.print(f"[green]OK[/] {report.view}: {report.entities} entities × {report.features} "
                  f"features agree online and offline at {when}")  # fmt: skip
        return
    table = Table("entity", "feature", "online", "offline")
    for m in report.mismatches[:50]:
        table.add_row(json.dumps(m.entity, default=str), m.feature, repr(m.online), repr(m.offline))
    out.print(table)
    out.print(f"[red]{len(report.mismatches)} mismatches[/] in {report.view} "
              f"({report.entities} entities at {when})")  # fmt: skip
