"""Entry point and registry commands of the ``pitstop`` command line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pitstop.cli.monitor import monitor, status
from pitstop.cli.output import output_option
from pitstop.errors import PitstopError

if TYPE_CHECKING:
    from pitstop.feature_store import FeatureStore


class Context:
    """Options shared by all commands; the store is opened on first use."""

    def __init__(self, chdir: str | None, fs_yaml: str | None) -> None:
        self.fs_yaml = Path(fs_yaml).resolve() if fs_yaml else None
        # the repo root is where feature_store.yaml is, unless -c says otherwise
        default = self.fs_yaml.parent if self.fs_yaml else Path.cwd()
        self.repo_path = Path(chdir) if chdir else default
        self._store: FeatureStore | None = None

    @property
    def store(self) -> FeatureStore:
        if self._store is None:
            from pitstop.feature_store import FeatureStore

            self._store = FeatureStore(repo_path=self.repo_path, fs_yaml_file=self.fs_yaml)
        return self._store


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--chdir", type=click.Path(file_okay=False), help="The feature repo folder.")
@click.option(
    "-f",
    "--feature-store-yaml",
    "fs_yaml",
    type=click.Path(dir_okay=False),
    help="Path to feature_store.yaml (default: <repo>/feature_store.yaml).",
)
@click.pass_context
def cli(ctx: click.Context, chdir: str | None, fs_yaml: str | None) -> None:
    """pitstop: a fast, correct feature store."""
    import socket

    from pitstop.registry.audit import Actor, set_actor
    from pitstop.registry.records import default_author

    ctx.obj = Context(chdir, fs_yaml)
    ctx.call_on_close(lambda: ctx.obj._store.close() if ctx.obj._store else None)
    set_actor(Actor(default_author(), f"cli@{socket.gethostname()}"))


@cli.command()
def version() -> None:
    """Print the pitstop version."""
    from pitstop import __version__

    click.echo(f"pitstop {__version__}")


def _repo_objects(ctx: Context) -> list[Any]:
    from pitstop.repo import load_repo

    return list(load_repo(ctx.store.repo_path, project=ctx.store.project).all())


_skip_sources = click.option(
    "--skip-source-validation",
    is_flag=True,
    help="Do not read the file sources' schemas (e.g. data not reachable from here).",
)


@cli.command()
@_skip_sources
@pass_ctx
def plan(ctx: Context, skip_source_validation: bool) -> None:
    """Show what `apply` would change, without changing anything."""
    from pitstop.cli.output import print_changes

    objects = _repo_objects(ctx)
    changes = ctx.store.plan(objects, skip_source_validation=skip_source_validation)
    print_changes(changes, dry_run=True)


@cli.command()
@_skip_sources
@click.option("--stage", is_flag=True, help="Record changed objects as new versions without "
              "serving them (`pitstop promote` serves them); removes nothing.")  # fmt: skip
@pass_ctx
def apply(ctx: Context, skip_source_validation: bool, stage: bool) -> None:
    """Register the repo's definitions; objects removed from the repo are removed.

    Planning and writing are one transaction: the changes printed are those this apply made.
    """
    from pitstop.cli.output import print_changes

    objects = _repo_objects(ctx)
    changes = ctx.store.apply(objects, partial=False, stage=stage,
                              skip_source_validation=skip_source_validation)  # fmt: skip
    print_changes(changes, dry_run=False)


@cli.command()
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def teardown(ctx: Context, yes: bool) -> None:
    """Remove the project's registered objects and online tables (asks first, unless -y)."""
    if not yes:
        project = ctx.store.project
        if not sys.stdin.isatty():
            raise click.ClickException(
                f"teardown removes every object and online table of project {project!r}; "
                "no terminal to confirm on, so pass --yes to go ahead"
            )
        click.confirm(f"Remove everything of project {project!r}?", abort=True)
    ctx.store.teardown()
    click.echo(f"Project {ctx.store.project!r} torn down.")


def _when(text: str) -> Any:
    """An ISO timestamp (naive means UTC), for materialize's START and END."""
    from datetime import datetime

    from pitstop.errors import ConfigError

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{text!r} is not a timestamp; use ISO 8601 such as 2024-01-15T10:00:00"
        ) from None


def _print_materialized(results: list[Any]) -> None:
    from pitstop.cli.output import console

    out = console()
    if not results:
        out.print("No online feature views to materialize.")
    for r in results:
        start = r.start.isoformat() if r.start else "the beginning"
        out.print(f"[green]{r.view}[/]: {r.rows:,} rows from {start} to {r.end.isoformat()} "
                  f"in {r.seconds:.2f} s")  # fmt: skip


@cli.command()
@click.argument("start")
@click.argument("end")
@click.option("-v", "--views", multiple=True, help="Only these feature views (repeatable).")
@pass_ctx
def materialize(ctx: Context, start: str, end: str, views: tuple[str, ...]) -> None:
    """Load the latest rows with START <= event time <= END into the online store."""
    results = ctx.store.materialize(_when(start), _when(end), list(views) or None, progress=True)
    _print_materialized(results)


@cli.command("materialize-incremental")
@click.argument("end")
@click.option("-v", "--views", multiple=True, help="Only these feature views (repeatable).")
@pass_ctx
def materialize_incremental(ctx: Context, end: str, views: tuple[str, ...]) -> None:
    """Continue each view from where the last materialization stopped, up to END."""
    results = ctx.store.materialize_incremental(_when(end), list(views) or None, progress=True)
    _print_materialized(results)


@cli.command()
@click.option("-H", "--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("-p", "--port", default=6566, show_default=True, help="Port to listen on.")
@click.option("-w", "--workers", default=1, show_default=True, help="Worker processes.")
@click.option("-t", "--registry-ttl-sec", type=float, default=None,
              help="Seconds before registry changes are served (default: feature_server."
              "registry_ttl_sec, else 5).")  # fmt: skip
@click.option("--access-log", is_flag=True, help="Log every request.")
@click.option("--ui", is_flag=True, help="Serve the web UI too, under /ui.")
@pass_ctx
def serve(ctx: Context, host: str, port: int, workers: int, registry_ttl_sec: float | None,
          access_log: bool, ui: bool) -> None:  # fmt: skip
    """Serve features over HTTP (Feast's feature server API)."""
    ctx.store.serve(host, port, workers, registry_ttl_sec, access_log=access_log, ui=ui)


@cli.command("ui")
@click.option("-H", "--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("-p", "--port", default=8888, show_default=True, help="Port to listen on.")
@pass_ctx
def ui_command(ctx: Context, host: str, port: int) -> None:
    """Serve the web UI: search, browse, lineage, online lookup, audit trail."""
    from pitstop.ui import serve_ui

    serve_ui(ctx.store, host, port)


@cli.command()
@click.option("--view", "view_name", required=True, help="The feature view to check.")
@click.option("--sample", default=100, show_default=True, help="Entities to compare.")
@pass_ctx
def verify(ctx: Context, view_name: str, sample: int) -> None:
    """Compare online values with an offline point-in-time query (exit 1 on mismatch)."""
    from pitstop.cli.output import print_verify
    from pitstop.engine.verify import verify as run

    report = run(ctx.store, view_name, sample)
    print_verify(report)
    if not report.ok:
        raise SystemExit(1)


@cli.command()
@click.option("--push-source", required=True, help="The push source whose views to update.")
@click.option("--source", "url", help="The broker and stream: redis://, nats://, amqp://, "
              "mqtt:// or kafka:// URL (see the README); the stream/subject/queue/topic is "
              "the URL's path, or --stream.")  # fmt: skip
@click.option("--stream", help="The stream, subject, queue or topic (overrides the URL's).")
@click.option("--redis-stream", help="The Redis stream key to consume (the same as "
              "--source REDIS_URL --stream KEY).")  # fmt: skip
@click.option(
    "--group",
    default="pitstop",
    show_default=True,
    help="Consumer group (Redis, Kafka), durable consumer (NATS), session (MQTT).",
)
@click.option("--redis-url", help="Redis holding the stream (default: the online store's "
              "Redis, else redis://127.0.0.1:6379/0).")  # fmt: skip
@click.option("--batch", default=50_000, show_default=True, help="Most messages per batch.")
@click.option("--consumer", help="Consumer name in the group; keep it across restarts "
              "(default: HOST:PUSH_SOURCE).")  # fmt: skip
@click.option(
    "--claim-idle-ms",
    default=30_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Redis: take over other consumers' entries unacknowledged for this long.",
)
@click.option(
    "--decoder",
    default="json",
    show_default=True,
    help="json (an object per message), jsonl (JSON lines) or module:function.",
)
@click.option("--metrics-port", type=int, help="Serve Prometheus metrics on this port "
              "(GET /metrics).")  # fmt: skip
@click.option("--no-offline", is_flag=True, help="Do not append events to the offline source.")
@pass_ctx
def ingest(ctx: Context, push_source: str, url: str | None, stream: str | None,
           redis_stream: str | None, group: str, redis_url: str | None, batch: int,
           consumer: str | None, claim_idle_ms: int, decoder: str, metrics_port: int | None,
           no_offline: bool) -> None:  # fmt: skip
    """Consume a stream into a push source's views until SIGINT/SIGTERM."""
    from pitstop.engine.ingest import StreamIngestor
    from pitstop.errors import ConfigError
    from pitstop.streams import SourceOptions, open_source
    from pitstop.streams.decode import decoder as find_decoder
    from pitstop.streams.redis import default_consumer

    store = ctx.store
    store.registry.snapshot().get("data_source", push_source)  # fail early on a wrong name
    if url is None and redis_stream is None:
        raise ConfigError("pitstop ingest needs --source URL (or --redis-stream KEY); "
                          "see pitstop ingest --help")  # fmt: skip
    if url is None:
        url = redis_url or _online_redis_url(store) or "redis://127.0.0.1:6379/0"
    name = consumer or default_consumer(push_source)
    options = SourceOptions(group=group, consumer=name, batch=batch,
                            extra={"claim_idle_ms": str(claim_idle_ms)})  # fmt: skip
    source = open_source(url, stream or redis_stream, options)
    worker = StreamIngestor(store, push_source, source, batch=batch, offline=not no_offline,
                            decoder=find_decoder(decoder))  # fmt: skip
    server = None
    if metrics_port is not None:
        from pitstop.server.metrics import serve_ingest_metrics

        server = serve_ingest_metrics(metrics_port, worker.stats, source.name)
    worker.stop_on_signals()  # before saying so: a SIGTERM from now on stops it cleanly
    click.echo(f"Consuming {source.name!r} (group {group!r}, consumer {name!r}) into "
               f"{push_source!r}; Ctrl-C stops.")  # fmt: skip
    try:
        stats = worker.run(lambda s: click.echo(f"  {s.line()}", err=True))
    finally:
        source.close()
        if server is not None:
            server.shutdown()
    click.echo(f"Stopped: {stats.line()}")


def _online_redis_url(store: Any) -> str | None:
    cfg = store.config.online_store
    if cfg.type != "redis":
        return None
    a = cfg.address()
    auth = f":{a.password}@" if a.password else ""
    return f"{'rediss' if a.ssl else 'redis'}://{auth}{a.host}:{a.port}/{a.db}"


@cli.command("registry-dump")
@pass_ctx
def registry_dump(ctx: Context) -> None:
    """Print the live registry objects as JSON."""
    import json

    snap = ctx.store.catalog.snapshot(fresh=True)
    out = {
        kind: [obj.to_spec() for _, obj in sorted(by_name.items())]
        for kind, by_name in sorted(snap.objects.items())
    }
    click.echo(json.dumps({"project": ctx.store.project, "objects": out}, indent=2))


def _kind(text: str | None) -> Any:
    """The class a ``--kind`` option names, or None."""
    from pitstop.catalog.kinds import parse_kind

    return None if text is None else parse_kind(text)


_kind_option = click.option(
    "--kind", help="Object kind (feature_view, entity, ...), when the name is used by several."
)


@cli.command()
@click.argument("name")
@_kind_option
@output_option()
@pass_ctx
def history(ctx: Context, name: str, kind: str | None, fmt: str | None) -> None:
    """List every version of an object, and which one is served and which are staged."""
    from pitstop.cli.output import print_history

    print_history(ctx.store.catalog.history(name, _kind(kind)), fmt)


@cli.command()
@click.argument("name")
@click.argument("v1", type=int)
@click.argument("v2", type=int)
@_kind_option
@output_option("text")
@pass_ctx
def diff(ctx: Context, name: str, v1: int, v2: int, kind: str | None, fmt: str | None) -> None:
    """Show what changed in an object between two versions."""
    from pitstop.cli.output import print_spec_changes

    changes = ctx.store.catalog.diff(name, v1, v2, _kind(kind))
    print_spec_changes(name, v1, v2, changes, fmt)


@cli.command()
@click.argument("name")
@click.argument("version_", metavar="VERSION", type=int)
@_kind_option
@pass_ctx
def rollback(ctx: Context, name: str, version_: int, kind: str | None) -> None:
    """Make an earlier version current again (as a new version)."""
    rec = ctx.store.catalog.rollback(name, version_, _kind(kind))
    click.echo(f"{rec.kind.replace('_', ' ')} {name!r} is now v{rec.version} (= v{version_})")


@cli.command()
@click.argument("name")
@click.argument("version_", metavar="VERSION", type=int)
@_kind_option
@pass_ctx
def promote(ctx: Context, name: str, version_: int, kind: str | None) -> None:
    """Serve VERSION of NAME from now on: a staged version, or an earlier one again."""
    rec = ctx.store.promote(name, version_, _kind(kind))
    click.echo(f"{rec.kind.replace('_', ' ')} {name!r} serves v{rec.version}")


def _search_kind(text: str) -> Any:
    """``--kind`` of search: a registry kind, or ``feature`` for features."""
    from pitstop.catalog.kinds import parse_kind
    from pitstop.definitions.field import Field

    return Field if text.lower() in ("feature", "features", "field") else parse_kind(text)


def _tag_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    """``--tag key=value`` options as a dict."""
    from pitstop.errors import ConfigError

    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--tag {pair!r}: write key=value, e.g. --tag team=growth")
        tags[key] = value
    return tags


@cli.command()
@click.argument("query")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    help="Only this kind (feature_view, entity, ..., or feature); repeatable.",
)
@click.option("--tag", "tags", multiple=True, help="Only objects tagged KEY=VALUE; repeatable.")
@click.option("--owner", help="Only objects with this owner.")
@click.option("-n", "--limit", default=20, show_default=True, help="Most results.")
@output_option()
@pass_ctx
def search(ctx: Context, query: str, kinds: tuple[str, ...], tags: tuple[str, ...],
           owner: str | None, limit: int, fmt: str | None) -> None:  # fmt: skip
    """Find objects and features by name, feature name, description, tag, owner or dtype.

    Exact names first, then names starting with QUERY, then objects holding every word of
    QUERY, then words with a typo.
    """
    from pitstop.cli.output import print_search

    hits = ctx.store.catalog.search(query, kinds=[_search_kind(k) for k in kinds],
                                    tags=_tag_pairs(tags), owner=owner, limit=limit)  # fmt: skip
    print_search(query, hits, fmt)


@cli.command()
@click.argument("name")
@_kind_option
@click.option(
    "--upstream", "direction", flag_value="upstream", help="Only what NAME is built from."
)
@click.option("--downstream", "direction", flag_value="downstream",
              help="Only what is built from NAME.")  # fmt: skip
@click.option("--version", "version_", type=int, help="At this registry version (default: now).")
@click.option("-o", "--output", "fmt", type=click.Choice(["text", "json", "dot", "mermaid"]),
              default="text", show_default=True, help="Output format.")  # fmt: skip
@pass_ctx
def lineage(ctx: Context, name: str, kind: str | None, direction: str | None,
            version_: int | None, fmt: str) -> None:  # fmt: skip
    """Show what NAME is built from and what is built from it.

    Sources feed feature views, views feed on-demand views and feature services, services
    feed saved datasets and models.
    """
    graph = ctx.store.catalog.lineage(name, _kind(kind), direction=direction or "both",
                                      version=version_, fresh=True)  # fmt: skip
    render = {"text": graph.to_text, "json": graph.to_json, "dot": graph.to_dot,
              "mermaid": graph.to_mermaid}[fmt]  # fmt: skip
    click.echo(render())


@cli.command()
@click.argument("directory", default="feature_repo", type=click.Path(file_okay=False))
@click.option("--project", default="churn_prediction", help="Project name.")
@click.option("--users", default=1000, show_default=True, help="Synthetic users to generate.")
def init(directory: str, project: str, users: int) -> None:
    """Create a ready-to-apply feature repo (churn scenario with synthetic data)."""
    from pitstop.templates.churn import create_repo

    path = create_repo(Path(directory), project=project, users=users)
    click.echo(f"Created feature repo in {path}")
    click.echo(f"Next: cd {directory} && pitstop apply")


@cli.group(invoke_without_command=True)
@click.option("--since", help="Only records at or after this time (ISO 8601; naive is UTC).")
@click.option("--principal", help="Only records of this principal.")
@click.option("--object", "name", help="Only records touching an object of this name.")
@output_option()
@click.pass_context
def audit(click_ctx: click.Context, since: str | None, principal: str | None, name: str | None,
          fmt: str | None) -> None:  # fmt: skip
    """Show the project's audit trail (every change, materialization, push and denial)."""
    if click_ctx.invoked_subcommand is not None:
        return
    from pitstop.cli.output import print_audit

    ctx: Context = click_ctx.obj
    when = None if since is None else _when(since)
    if when is not None and when.tzinfo is None:
        from datetime import UTC

        when = when.replace(tzinfo=UTC)
    print_audit(ctx.store.catalog.audit_log(since=when, principal=principal, name=name), fmt)


@audit.command("verify")
@pass_ctx
def audit_verify(ctx: Context) -> None:
    """Check that no record of the audit trail was edited or deleted (exit 1 if one was)."""
    result = ctx.store.catalog.verify_audit()
    if result.ok:
        click.echo(f"OK: {result.records} records, head {result.head or 'none'}")
        return
    for problem in result.problems:
        click.secho(f"TAMPERED: {problem}", fg="red", err=True)
    raise SystemExit(1)


def _register_listings() -> None:
    from pitstop.catalog.kinds import COLLECTIONS
    from pitstop.cli.output import describe_command, list_command

    for group_name, kind in COLLECTIONS.items():
        group = click.Group(group_name, help=f"Inspect {group_name.replace('-', ' ')}.")
        group.add_command(list_command(kind, pass_ctx))
        group.add_command(describe_command(kind, pass_ctx))
        cli.add_command(group)
    from pitstop.cli.datasets import datasets

    cli.add_command(datasets)


_register_listings()
cli.add_command(monitor)
cli.add_command(status)


def _register_data_commands() -> None:
    from pitstop.cli.data import data_commands

    for command in data_commands(pass_ctx):
        cli.add_command(command)


_register_data_commands()


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user mistakes print one line and exit 1, never a traceback."""
    return _guard(lambda: cli.main(args=argv, prog_name="pitstop", standalone_mode=False))


def _guard(run: Callable[[], object]) -> int:
    try:
        result = run()
    except PitstopError as exc:
        click.secho(f"Error: {exc}", fg="red", err=True)
        return 1
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
