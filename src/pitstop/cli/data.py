"""Commands that read and write feature values: online and point-in-time reads, pushes.

Rows come from and go to files (Parquet, CSV or JSON lines, by extension); a read with no
output file prints a table (or ``-o json|yaml``). Each command checks the caller's access
like the SDK call it makes (``read_online``, ``read_offline``, ``write_online``/
``write_offline``)::

    pitstop get-online-features user_features:total_purchases -e user_id=1001,1002
    pitstop get-historical-features -s churn_model_v1 --entities rows.parquet -O train.parquet
    pitstop push transaction_push_source events.csv --to online_and_offline
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pitstop.cli.output import emit, output_option, print_table

if TYPE_CHECKING:
    import pyarrow as pa

FILE_TYPES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "json",
              ".json": "json", ".ndjson": "json"}  # fmt: skip


def _file_type(path: Path, what: str) -> str:
    from pitstop.errors import ConfigError

    kind = FILE_TYPES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(
            f"{what} {str(path)!r}: name a .parquet, .csv or .jsonl (JSON lines) file"
        )
    return kind


def read_rows(path: Path, what: str) -> pa.Table:
    """The rows of a Parquet, CSV or JSON-lines file as Arrow (CSV and JSON types inferred:
    ISO 8601 times become timestamps)."""
    import pyarrow as pa

    from pitstop.errors import DataSourceError

    kind = _file_type(path, what)
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if kind == "csv":
            import pyarrow.csv as pcsv

            return pcsv.read_csv(path)
        import pyarrow.json as pjson

        return pjson.read_json(path)
    except (OSError, pa.ArrowException) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataSourceError(f"{what} {str(path)!r}: cannot read it as {kind}: {detail}") from exc


def write_rows(table: pa.Table, path: Path) -> None:
    """Write ``table`` as Parquet, CSV or JSON lines, by ``path``'s extension."""
    kind = _file_type(path, "--out")
    if kind == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    elif kind == "csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, path)
    else:
        with path.open("w", encoding="utf-8") as out:
            for row in table.to_pylist():
                out.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")


def _print_rows(table: pa.Table, fmt: str | None) -> None:
    rows = table.to_pylist()
    if fmt in ("json", "yaml"):
        emit(rows, fmt)
    elif not rows:
        click.echo("No rows.")
    else:
        print_table(table.column_names, [["" if v is None else str(v) for v in r.values()]
                                         for r in rows])  # fmt: skip


def _scalar(text: str) -> Any:
    """A value typed on the command line: a JSON number, boolean or string, else the text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float | str | bool) else text


def entity_columns(pairs: Sequence[str]) -> dict[str, list[Any]]:
    """``-e user_id=1,2`` options as join key columns ``{"user_id": [1, 2]}``."""
    from pitstop.errors import RetrievalError

    columns: dict[str, list[Any]] = {}
    for pair in pairs:
        key, sep, values = pair.partition("=")
        if not sep or not key or not values:
            raise RetrievalError(
                f"-e {pair!r}: write a join key and its values, e.g. -e user_id=1001,1002"
            )
        columns.setdefault(key, []).extend(_scalar(v) for v in values.split(","))
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        counts = ", ".join(f"{k}: {len(v)}" for k, v in columns.items())
        raise RetrievalError(f"the join keys have different numbers of values ({counts}); "
                             "give each the same number, one per entity")  # fmt: skip
    return columns


def _features(ctx: Any, refs: Sequence[str], service: str | None) -> Any:
    """The FEATURES arguments or the feature service named by ``-s``."""
    from pitstop.definitions.service import FeatureService
    from pitstop.errors import RetrievalError

    if bool(refs) == bool(service):
        raise RetrievalError(
            "name the features (view:feature ...) or a feature service (-s NAME), one of them"
        )
    if service:
        return ctx.store.catalog.snapshot(fresh=True).get(FeatureService, service)
    return list(refs)


_service_option = click.option("-s", "--feature-service", "service",
                               help="Read this feature service's features.")  # fmt: skip
_full_names = click.option("--full-feature-names", is_flag=True,
                           help="Name columns view__feature.")  # fmt: skip
_out_option = click.option("-O", "--out", type=click.Path(dir_okay=False, path_type=Path),
                           help="Write the rows to a .parquet, .csv or .jsonl file.")  # fmt: skip


def data_commands(pass_ctx: Callable[..., Any]) -> list[click.Command]:
    """The commands, bound to the command line's context decorator."""

    @click.command("get-online-features")
    @click.argument("refs", metavar="[FEATURES]...", nargs=-1)
    @_service_option
    @click.option("-e", "--entity", "entities", multiple=True, required=True,
                  help="A join key and its values: KEY=V1,V2,...; one per join key.")  # fmt: skip
    @_full_names
    @output_option()
    @pass_ctx
    def get_online_features(ctx: Any, refs: tuple[str, ...], service: str | None,
                            entities: tuple[str, ...], full_feature_names: bool,
                            fmt: str | None) -> None:  # fmt: skip
        """Print the latest values of FEATURES (view:feature) for some entities.

        Values are read as JSON where they can be (1001, true, "0042"), else as text.
        """
        response = ctx.store.get_online_features(
            _features(ctx, refs, service), entity_columns(entities), full_feature_names
        )
        _print_rows(response.to_arrow(), fmt)

    @click.command("get-historical-features")
    @click.argument("refs", metavar="[FEATURES]...", nargs=-1)
    @_service_option
    @click.option("--entities", "entities_file", required=True,
                  type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="The entity rows: join keys and event_timestamp (.parquet, .csv, "
                  ".jsonl).")  # fmt: skip
    @_full_names
    @_out_option
    @output_option()
    @pass_ctx
    def get_historical_features(ctx: Any, refs: tuple[str, ...], service: str | None,
                                entities_file: Path, full_feature_names: bool, out: Path | None,
                                fmt: str | None) -> None:  # fmt: skip
        """Point-in-time correct values of FEATURES for each row of --entities."""
        features = _features(ctx, refs, service)
        if out is not None:
            _file_type(out, "--out")  # before the query runs
        entity_df = read_rows(entities_file, "--entities")
        table = ctx.store.get_historical_features(entity_df, features, full_feature_names)
        table = table.to_arrow()
        if out is None:
            _print_rows(table, fmt)
            return
        write_rows(table, out)
        click.echo(f"Wrote {table.num_rows:,} rows to {out}")

    @click.command("push")
    @click.argument("push_source")
    @click.argument("rows_file", metavar="FILE",
                    type=click.Path(exists=True, dir_okay=False, path_type=Path))  # fmt: skip
    @click.option("--to", "to", default="online", show_default=True,
                  type=click.Choice(["online", "offline", "online_and_offline"]),
                  help="Where the rows go.")  # fmt: skip
    @click.option("--allow-missing-columns", is_flag=True,
                  help="Offline: write the source's columns FILE lacks as nulls.")  # fmt: skip
    @pass_ctx
    def push(ctx: Any, push_source: str, rows_file: Path, to: str,
             allow_missing_columns: bool) -> None:  # fmt: skip
        """Send the rows of FILE to the views a push source feeds."""
        table = read_rows(rows_file, "FILE")
        written = ctx.store.push(push_source, table, to=to,
                                 allow_missing_columns=allow_missing_columns)  # fmt: skip
        online = "" if to == "offline" else f"; {written:,} online rows written"
        click.echo(f"Pushed {table.num_rows:,} rows to {push_source!r} ({to}){online}")

    return [get_online_features, get_historical_features, push]
