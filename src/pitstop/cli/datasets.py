"""``pitstop datasets``: saved datasets with their recipe and profile, and their reproduction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from pitstop.cli.output import emit, is_terminal, output_option, print_table

if TYPE_CHECKING:
    from pitstop.quality.datasets import StoredDataset
    from pitstop.quality.profiling import ColumnProfile


@click.group("datasets")
def datasets() -> None:
    """Saved datasets (training sets): their recipe, profile and reproduction."""


@datasets.command("list")
@output_option()
@click.pass_obj
def list_datasets(ctx: Any, fmt: str | None) -> None:
    """List saved datasets: rows, features, when saved, content hash."""
    from pitstop.definitions.datasets import SavedDataset

    found = ctx.store.catalog.list(SavedDataset, fresh=True)
    if fmt in ("json", "yaml"):
        emit([_summary(d.to_spec()) for d in found], fmt)
        return
    if not found:
        click.echo("No saved datasets registered.")
        return
    rows = []
    for d in found:
        recipe = d.recipe or {}
        rows.append([d.name, f"{recipe['rows']:,}" if "rows" in recipe else "?",
                     str(len(d.features)), d.feature_service or "",
                     str(recipe.get("created_at", ""))[:19].replace("T", " "),
                     str(recipe.get("content_hash", ""))[:12] or "no recipe"])  # fmt: skip
    print_table(["name", "rows", "features", "service", "saved (UTC)", "content hash"], rows)


def _summary(spec: dict[str, Any]) -> dict[str, Any]:
    recipe = spec.get("recipe") or {}
    return {"name": spec["name"], "path": spec["storage"]["path"], "rows": recipe.get("rows"),
            "features": spec["features"], "feature_service": spec.get("feature_service"),
            "created_at": recipe.get("created_at"),
            "content_hash": recipe.get("content_hash")}  # fmt: skip


@datasets.command("describe")
@click.argument("name")
@output_option("table on a terminal, else json")
@click.pass_obj
def describe(ctx: Any, name: str, fmt: str | None) -> None:
    """Show a saved dataset's recipe and the profile of its columns."""
    found = ctx.store.get_saved_dataset(name)
    profile = found.profile
    fmt = fmt or ("table" if is_terminal() else "json")
    if fmt != "table":
        emit({"dataset": found.definition.to_spec(),
              "profile": None if profile is None else profile.to_dict()}, fmt)  # fmt: skip
        return
    print_table(["field", "value"], _recipe_rows(found))
    if profile is not None:
        click.echo()
        header = ["column", "type", "count", "nulls", "min", "max", "mean", "stddev", "p50", "top"]
        print_table(header, [_profile_row(c) for c in profile.columns.values()])


def _recipe_rows(found: StoredDataset) -> list[list[str]]:
    d = found.definition
    rows = [["name", d.name], ["path", d.storage.path], ["features", ", ".join(d.features)],
            ["feature service", d.feature_service or "-"]]  # fmt: skip
    recipe = d.recipe
    if not recipe:
        return [*rows, ["recipe", "none (saved before recipes were recorded)"]]
    entities = recipe["entities"]
    rows += [
        ["rows", f"{recipe['rows']:,}"],
        ["content hash", recipe["content_hash"]],
        ["entity frame", f"{entities['path']} ({entities['rows']:,} rows, "
                         f"hash {entities['hash'][:16]})"],
        ["registry version", str(recipe["registry_version"])],
        ["objects", "\n".join(f"{o['kind']} {o['name']} v{o['version']}"
                              for o in recipe["objects"])],
        ["pitstop version", recipe["pitstop_version"]],
        ["saved at", recipe["created_at"]],
        ["profile", recipe["profile"]["path"]],
    ]  # fmt: skip
    return rows


def _profile_row(c: ColumnProfile) -> list[str]:
    def num(v: Any) -> str:
        if v is None:
            return ""
        return f"{v:.6g}" if isinstance(v, float) else str(v)

    top = ", ".join(f"{t['value']}×{t['count']:,}" for t in (c.top or [])[:5])
    p50 = (c.quantiles or {}).get("p50")
    return [c.name, c.type, f"{c.count:,}", f"{c.null_rate:.1%}", num(c.min), num(c.max),
            num(c.mean), num(c.stddev), num(p50), top]  # fmt: skip


@datasets.command("reproduce")
@click.argument("name")
@click.option("--save", type=click.Path(dir_okay=False), help="Keep the rebuilt rows here.")
@click.option("-o", "--output", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")  # fmt: skip
@click.pass_obj
def reproduce(ctx: Any, name: str, save: str | None, fmt: str) -> None:
    """Rebuild NAME from its recipe (each object at its recorded registry version, the kept
    entity frame) and prove it equal by content hash; exit 1 when it differs."""
    result = ctx.store.reproduce_saved_dataset(name, save)
    if fmt == "json":
        emit(result.to_dict(), "json")
    else:
        click.echo(result.summary())
    if not result.identical:
        raise SystemExit(1)
