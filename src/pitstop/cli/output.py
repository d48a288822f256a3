"""What the command line prints: tables and diffs, drawn with rich, or JSON/YAML for scripts.

Tables are for people: on a terminal they fit its width; when the output goes to a pipe or a
file nothing is wrapped or cut, whatever the width. ``-o json`` and ``-o yaml`` print plain
data: the objects' specs as ``registry-dump`` prints them, durations in seconds.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

    from pitstop.catalog.search import SearchHit
    from pitstop.definitions.base import Definition
    from pitstop.registry import Change
    from pitstop.registry.store import SpecChange, VersionRecord

_VERBS = {
    "create": ("Created", "green"),
    "update": ("Updated", "yellow"),
    "delete": ("Deleted", "red"),
}


FORMATS = ("table", "json", "yaml")


def console(width: int | None = None) -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, width=width)


def is_terminal() -> bool:
    """Whether standard output is a terminal (tables may then fit its width)."""
    return sys.stdout.isatty()


def output_option(default: str = "table") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The ``-o/--output`` option of the list, describe, history and diff commands."""
    return click.option(
        "-o",
        "--output",
        "fmt",
        type=click.Choice(FORMATS),
        default=None,
        help=f"Output format (default: {default}).",
    )


def emit(data: Any, fmt: str) -> None:
    """Print plain data as JSON or YAML; keys keep their order."""
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table; when the output is not a terminal it is as wide as its content, never cut."""
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    table = Table(*header)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # Text: names are not read as markup
    width = None
    if not is_terminal():
        widths = [max(cell_len(line) for c in col for line in c.split("\n"))
                  for col in zip(header, *rows, strict=True)]  # fmt: skip
        width = sum(widths) + 3 * len(widths) + 1  # padding and rules around every cell
    console(width).print(table)


def duration(seconds: float | None) -> str:
    """``86400`` → ``1d``, ``5400`` → ``1h30m``; none or zero → ``-``."""
    if not seconds:
        return "-"
    rest = float(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    if rest:
        parts.append(f"{rest:g}s")
    return "".join(parts)


def _label(kind: str) -> str:
    from pitstop.registry import LABELS

    return LABELS.get(kind, kind)


def _kind_label(cls: type[Definition]) -> str:
    from pitstop.catalog.kinds import label

    return label(cls)


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
        if c.staged:
            out.print(f"[{color}]Staged[/] {_label(c.kind)} [bold]{c.name}[/] as v{c.version} (not "
                      f"served; `pitstop promote {c.name} {c.version}` serves it)")  # fmt: skip
        else:
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
    """A value in a diff line; long ones are cut on a terminal only."""
    text = repr(value) if not isinstance(value, dict | list) else json.dumps(value)
    return text if len(text) <= 80 or not is_terminal() else text[:77] + "..."


def print_history(records: list[VersionRecord], fmt: str | None) -> None:
    if fmt in ("json", "yaml"):
        emit([_record(r) for r in records], fmt)
        return
    rows = [
        [
            f"v{r.version}",
            r.applied_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.author,
            r.spec_hash[:12],
            "deleted" if r.deleted else r.status,
        ]
        for r in records
    ]
    print_table(["version", "applied at (UTC)", "author", "spec hash", "state"], rows)


def _record(r: VersionRecord) -> dict[str, Any]:
    return {
        "kind": r.kind,
        "name": r.name,
        "version": r.version,
        "applied_at": r.applied_at.isoformat(),
        "author": r.author,
        "spec_hash": r.spec_hash,
        "deleted": r.deleted,
        "status": r.status,
    }


def print_spec_changes(
    name: str, v1: int, v2: int, changes: list[SpecChange], fmt: str | None
) -> None:
    if fmt in ("json", "yaml"):
        emit([{"path": d.path, "old": d.old, "new": d.new} for d in changes], fmt)
        return
    out = console()
    if not changes:
        out.print(f"{name}: v{v1} and v{v2} have the same spec", markup=False)
    for d in changes:
        out.print(f"{d.path}: {_short(d.old)} → {_short(d.new)}", markup=False)


def print_search(query: str, hits: list[SearchHit], fmt: str | None) -> None:
    if fmt in ("json", "yaml"):
        emit([h.to_dict() for h in hits], fmt)
        return
    if not hits:
        click.echo(f"Nothing matches {query!r}.")
        return
    rows = [
        [h.ref, "feature" if h.feature else _label(h.kind), h.match, h.dtype, h.owner,
         h.description]
        for h in hits
    ]  # fmt: skip
    print_table(["name", "kind", "match", "dtype", "owner", "description"], rows)


def print_audit(records: list[Any], fmt: str | None) -> None:
    if fmt in ("json", "yaml"):
        emit([r.to_dict() for r in records], fmt)
        return
    if not records:
        click.echo("No audit records match.")
        return
    rows = [
        [str(r.seq), r.at.strftime("%Y-%m-%d %H:%M:%S"), r.principal, r.action,
         ", ".join(f"{o.get('name')}" + (f" v{o['version']}" if "version" in o else "")
                   for o in r.objects),
         r.outcome, r.origin, r.detail]
        for r in records
    ]  # fmt: skip
    print_table(["#", "at (UTC)", "principal", "action", "objects", "outcome", "from", "detail"],
                rows)  # fmt: skip


def _row(obj: Any) -> tuple[list[str], list[str]]:
    """Column names and cells describing one object in a listing."""
    from pitstop.definitions.serde import kind_of

    kind = kind_of(obj)
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
        ttl = duration(obj.ttl.total_seconds() if obj.ttl else None)
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


def list_command(kind: type[Definition], pass_ctx: Callable[..., Any]) -> click.Command:
    @click.command("list")
    @click.option("--tags", multiple=True, help="Only objects with tag KEY:VALUE.")
    @click.option("--owner", help="Only objects with this owner.")
    @output_option()
    @pass_ctx
    def run(ctx: Any, tags: tuple[str, ...], owner: str | None, fmt: str | None) -> None:
        wanted = dict(t.split(":", 1) for t in tags if ":" in t)
        objects = ctx.store.catalog.list(kind, tags=wanted, owner=owner, fresh=True)
        if fmt in ("json", "yaml"):
            emit([obj.to_spec() for obj in objects], fmt)
            return
        if not objects:
            filtered = " match the filters" if wanted or owner else " registered"
            click.echo(f"No {_kind_label(kind)}s{filtered}.")
            return
        print_table(_row(objects[0])[0], [_row(obj)[1] for obj in objects])

    run.help = f"List registered {_kind_label(kind)}s (-o json|yaml: their specs)."
    return run


def describe_command(kind: type[Definition], pass_ctx: Callable[..., Any]) -> click.Command:
    @click.command("describe")
    @click.argument("name")
    @output_option("table on a terminal, else json")
    @pass_ctx
    def run(ctx: Any, name: str, fmt: str | None) -> None:
        spec = ctx.store.catalog.get(kind, name, fresh=True).to_spec()
        fmt = fmt or ("table" if is_terminal() else "json")
        if fmt == "table":
            print_table(["field", "value"], list(_spec_rows("", spec)))
        else:
            emit(spec, fmt)

    run.help = f"Print one {_kind_label(kind)}'s spec (JSON when piped)."
    return run


def _spec_rows(prefix: str, spec: dict[str, Any]) -> Any:
    """Rows ``(field, value)`` of a spec for people: nested keys dotted, durations readable."""
    for key, value in spec.items():
        if value in ("", {}, []):
            continue
        field = prefix + key.removesuffix("_seconds")
        if isinstance(value, dict):
            yield from _spec_rows(field + ".", value)
        elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                cells = [f"{k.removesuffix('_seconds')}={_cell(k, v)}" for k, v in item.items()
                         if v not in ("", None, {}, [])]  # fmt: skip
                yield [field if i == 0 else "", ", ".join(cells)]
        else:
            yield [field, _cell(key, value)]


def _cell(key: str, value: Any) -> str:
    if key.endswith("_seconds") and isinstance(value, int | float | None):
        return duration(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict | bool) or value is None:
        return json.dumps(value)
    return str(value)


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
