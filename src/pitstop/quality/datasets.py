"""Saved datasets with their recipe: how a training set was made, and proof it can be made
again.

``store.create_saved_dataset`` writes the rows, then records with the dataset (in its registry
spec) the recipe: the hash of the entity frame, kept next to the rows as
``<name>.entities.parquet``; the registry version of every object the features came from
(views, on-demand views, their sources and entities, the service); the registry version the
retrieval read; the pitstop version; and the content hash of the saved rows
(:mod:`pitstop.quality.fingerprint`), with one hash per column. A profile of every column
(:mod:`pitstop.quality.profiling`) is written beside them as ``<name>.profile.json``; the
registry keeps only its hash, so it stays small.

:func:`reproduce` reads each object at its recorded version, runs the same retrieval on the
kept entity frame, and compares hashes; when they differ it says which columns and rows.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop.definitions.datasets import SavedDataset
from pitstop.errors import DataSourceError, DefinitionError
from pitstop.quality.fingerprint import Fingerprint, fingerprint

if TYPE_CHECKING:
    import pyarrow as pa

    from pitstop.engine.historical import RetrievalMetadata
    from pitstop.feature_store import FeatureStore
    from pitstop.quality.profiling import Profile
    from pitstop.registry.snapshot import Snapshot

FORMAT = 1
#: Hex digits of each column's hash kept in the recipe: enough to tell which columns differ.
COLUMN_HASH = 16
#: Kinds whose live objects a reproduction uses as they are now (access policies).
CURRENT_KINDS = ("permission", "role")


def sidecar(path: str, suffix: str) -> str:
    """``data/train.parquet`` -> ``data/train.<suffix>`` (same folder, same stem)."""
    p = Path(path)
    return str(p.with_name(p.name.removesuffix(".parquet") + "." + suffix))


def record(
    store: FeatureStore, meta: RetrievalMetadata, dataset: SavedDataset, rows: Path
) -> SavedDataset:
    """``dataset`` with its recipe, once its rows are in ``rows``: keeps the entity frame and
    the profile beside them."""
    import pyarrow.dataset as ds

    from pitstop import __version__
    from pitstop.quality.profiling import profile

    saved = fingerprint(rows)
    names = ds.dataset(str(rows), format="parquet").schema.names
    entity_columns = names[: len(names) - len(meta.features)]
    entities_at = sidecar(dataset.storage.path, "entities.parquet")
    entity_table = ds.dataset(str(rows), format="parquet").to_table(columns=entity_columns)
    _write_parquet(entity_table, store.repo_path / entities_at)
    profile_at = sidecar(dataset.storage.path, "profile.json")
    text = json.dumps(profile(rows).to_dict(), indent=1, sort_keys=True, ensure_ascii=False)
    _write_text(text, store.repo_path / profile_at)
    version = meta.registry_version
    if version is None:
        version = store.registry.store.serial()
    recipe = {
        "format": FORMAT,
        "pitstop_version": __version__,
        "created_at": datetime.now(UTC).isoformat(),
        "registry_version": version,
        "objects": objects_of(store, dataset, version),
        "entities": {
            "path": entities_at,
            "hash": fingerprint(entity_table).digest,
            "rows": entity_table.num_rows,
            "columns": entity_columns,
        },
        "rows": saved.rows,
        "content_hash": saved.digest,
        "hash_method": saved.method,
        "column_hashes": {c: h[:COLUMN_HASH] for c, h in saved.columns.items()},
        "profile": {"path": profile_at, "sha256": _sha256(text.encode())},
    }
    return SavedDataset.from_spec({**dataset.to_spec(), "recipe": recipe})


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _write_parquet(table: pa.Table, path: Path) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_text(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def objects_of(store: FeatureStore, dataset: SavedDataset, version: int) -> list[dict[str, Any]]:
    """The registry objects ``dataset``'s features come from, each with its version and spec
    hash as of the registry ``version``."""
    from pitstop.registry.snapshot import Snapshot

    meta = store.registry.store
    live = meta.live() if meta.serial() == version else meta.live_at(version)
    specs = {k: {n: r.spec for n, r in by.items()} for k, by in live.items()}
    snap = Snapshot.from_specs(specs, version)  # type: ignore[arg-type]
    found = []
    for kind, name in involved(snap, dataset):
        rec = live.get(kind, {}).get(name)
        if rec is not None:
            found.append({"kind": kind, "name": name, "version": rec.version,
                          "spec_hash": rec.spec_hash})  # fmt: skip
    return found


def involved(snap: Snapshot, dataset: SavedDataset) -> list[tuple[str, str]]:
    """``(kind, name)`` of the views of ``dataset``'s features, the views and request sources
    on-demand views read, the views' sources and entities, and the feature service."""
    from pitstop.definitions.on_demand import OnDemandFeatureView
    from pitstop.definitions.serde import kind_of
    from pitstop.definitions.sources import PushSource

    out: dict[tuple[str, str], None] = {}

    def add_view(name: str) -> None:
        view = snap.view(name)
        key = (kind_of(view), name)
        if key in out:
            return
        out[key] = None
        if isinstance(view, OnDemandFeatureView):
            for p in view.sources:
                add_view(p.name)
            out.update({("data_source", r.name): None for r in view.request_sources})
            return
        out.update({("entity", e): None for e in getattr(view, "entities", ())})
        source = getattr(view, "source", None)
        if source is not None:
            out[("data_source", source.name)] = None
            if isinstance(source, PushSource):
                out[("data_source", source.batch_source.name)] = None

    for name in dataset.views:
        add_view(name)
    if dataset.feature_service:
        out[("feature_service", dataset.feature_service)] = None
    return list(out)


# --- reading -----------------------------------------------------------------------------


class StoredDataset:
    """A saved dataset and its rows (what ``store.get_saved_dataset`` returns): the
    definition's attributes (``name``, ``features``, ``recipe``, ...) plus ``to_df()``,
    ``to_arrow()``, ``entities()`` and ``profile``."""

    def __init__(self, dataset: SavedDataset, repo_path: Path) -> None:
        self.definition = dataset
        self.repo_path = Path(repo_path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.definition, name)

    def __repr__(self) -> str:
        return f"StoredDataset(name={self.definition.name!r}, path={str(self.path)!r})"

    @property
    def path(self) -> Path:
        """Where the rows are (absolute)."""
        return self.repo_path / self.definition.storage.path

    def to_arrow(self) -> pa.Table:
        """The saved rows as an Arrow table."""
        import pyarrow.dataset as ds

        if not self.path.exists():
            raise DataSourceError(
                f"saved dataset {self.definition.name!r}: its rows are not at {self.path}; "
                "restore the file, or rebuild it with `pitstop datasets reproduce`"
            )
        return ds.dataset(str(self.path), format="parquet").to_table()

    def to_df(self) -> Any:
        """The saved rows as a pandas DataFrame."""
        from pitstop.offline.job import arrow_to_pandas

        return arrow_to_pandas(self.to_arrow())

    def entities(self) -> pa.Table:
        """The entity frame the dataset was built from (saved with its recipe)."""
        import pyarrow.parquet as pq

        return pq.read_table(self.repo_path / _recipe(self.definition)["entities"]["path"])

    @property
    def profile(self) -> Profile | None:
        """The profile computed when the dataset was saved (``None`` without a recipe)."""
        from pitstop.quality.profiling import Profile

        recipe = self.definition.recipe
        if not recipe or "profile" not in recipe:
            return None
        path = self.repo_path / recipe["profile"]["path"]
        if not path.exists():
            return None
        return Profile.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _recipe(dataset: SavedDataset) -> dict[str, Any]:
    if not dataset.recipe:
        raise DefinitionError(
            f"saved dataset {dataset.name!r} has no recipe (it was saved before pitstop "
            "recorded recipes); save it again with store.create_saved_dataset to record one"
        )
    return dataset.recipe


# --- reproducing ---------------------------------------------------------------------------


@dataclass
class Reproduction:
    """The outcome of :func:`reproduce`: identical or not, with a summary of differences."""

    name: str
    identical: bool
    expected: str
    actual: str
    rows_expected: int
    rows_actual: int
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.identical:
            return (f"saved dataset {self.name!r} reproduced: {self.rows_actual:,} rows, "
                    f"identical (content hash {self.actual[:16]})")  # fmt: skip
        lines = [
            f"saved dataset {self.name!r} differs from its rebuild "
            f"(content hash {self.expected[:16]} saved, {self.actual[:16]} rebuilt):"
        ]
        lines += [f"  - {d}" for d in self.differences]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "identical": self.identical, "expected": self.expected,
                "actual": self.actual, "rows_expected": self.rows_expected,
                "rows_actual": self.rows_actual, "differences": self.differences,
                "notes": self.notes}  # fmt: skip


def reproduce(store: FeatureStore, name: str, output: str | Path | None = None) -> Reproduction:
    """Rebuild saved dataset ``name`` from its recipe and compare it with the saved rows.

    ``output``: also keep the rebuilt rows there (a Parquet file)."""
    import pyarrow.parquet as pq

    from pitstop.engine.historical import historical_features

    dataset = store.catalog.get(SavedDataset, name, fresh=True)
    recipe = _recipe(dataset)
    entities_at = store.repo_path / recipe["entities"]["path"]
    if not entities_at.exists():
        raise DataSourceError(
            f"saved dataset {name!r}: its entity frame {entities_at} is missing; it was kept "
            "there when the dataset was saved and is needed to rebuild it"
        )
    entities = pq.read_table(entities_at)
    if fingerprint(entities).digest != recipe["entities"]["hash"]:
        raise DataSourceError(
            f"saved dataset {name!r}: the entity frame {entities_at} changed since the dataset "
            "was saved (its hash differs from the recipe's); restore the original file"
        )
    snap = snapshot_of(store, recipe["objects"])
    features: Any = list(dataset.features)
    if dataset.feature_service:
        features = snap.feature_services[dataset.feature_service]
    job = historical_features(snap, store.offline, store.repo_path, entities, features,
                              full_feature_names=dataset.full_feature_names)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="pitstop-reproduce-") as tmp:
        rebuilt = Path(tmp) / "rebuilt.parquet"
        job.to_parquet(rebuilt)
        actual = fingerprint(rebuilt)
        saved = store.repo_path / dataset.storage.path
        stored = fingerprint(saved) if saved.exists() else None
        expected = recipe["content_hash"]
        same = actual.digest == expected and (stored is None or stored.digest == expected)
        result = Reproduction(name, same, expected, actual.digest, int(recipe["rows"]),
                              actual.rows)  # fmt: skip
        if stored is None:
            result.notes.append(
                f"the saved rows are missing from {dataset.storage.path}; "
                f"write the rebuild there with --save {dataset.storage.path}"
            )
        if not same:
            _explain(dataset, recipe, actual, stored, saved, rebuilt, result)
        if output is not None:  # after the comparison: --save may name the saved rows
            _put(rebuilt, Path(output))
            result.notes.append(f"the rebuild was written to {output}")
    return result


def _put(made: Path, target: Path) -> None:
    """Move ``made`` (a file, or a folder of part files) to ``target``, replacing it whole."""
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    shutil.move(str(made), staged)  # across file systems: copied next to the target first
    old = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
    if target.is_dir():  # a folder cannot be replaced in one step: set it aside first
        target.rename(old)
    os.replace(staged, target)
    shutil.rmtree(old, ignore_errors=True)


def snapshot_of(store: FeatureStore, objects: list[dict[str, Any]]) -> Snapshot:
    """A snapshot holding each of ``objects`` at its recorded version (and the access
    policies as they are now)."""
    from pitstop.registry.snapshot import Snapshot

    meta = store.registry.store
    specs: dict[str, dict[str, Any]] = {}
    for obj in objects:
        rec = meta.get_version(obj["name"], int(obj["version"]), obj["kind"])
        specs.setdefault(obj["kind"], {})[obj["name"]] = rec.spec
    current = store.registry.snapshot(fresh=True)
    for kind in CURRENT_KINDS:
        specs[kind] = {n: o.to_spec() for n, o in current.of(kind).items()}
    return Snapshot.from_specs(specs, current.serial)


def _explain(
    dataset: SavedDataset,
    recipe: dict[str, Any],
    actual: Fingerprint,
    stored: Fingerprint | None,
    saved: Path,
    rebuilt: Path,
    result: Reproduction,
) -> None:
    """Fill ``result.differences``: rows, columns, and per differing column how many rows
    differ with a first example (the saved file against the rebuild, row by row)."""
    from pitstop import __version__

    where = dataset.storage.path
    if actual.digest == recipe["content_hash"]:  # the rebuild is right: the file was edited
        result.differences.append(
            f"the saved rows at {where} were changed after the dataset was saved; the rebuild "
            f"matches the recipe (write it back with --save {where})"
        )
    elif stored is not None and stored.digest != recipe["content_hash"]:
        result.notes.append(f"the saved rows at {where} were changed after saving as well")
    base = stored or Fingerprint(recipe["content_hash"], int(recipe["rows"]),
                                 dict(recipe.get("column_hashes", {})))  # fmt: skip
    if actual.rows != base.rows:
        result.differences.append(f"rows: {base.rows:,} saved, {actual.rows:,} rebuilt")
    missing = [c for c in base.columns if c not in actual.columns]
    extra = [c for c in actual.columns if c not in base.columns]
    if missing:
        result.differences.append(f"columns missing from the rebuild: {', '.join(missing)}")
    if extra:
        result.differences.append(f"columns only in the rebuild: {', '.join(extra)}")
    changed = [c for c in base.columns
               if c in actual.columns
               and actual.columns[c][:COLUMN_HASH] != base.columns[c][:COLUMN_HASH]]  # fmt: skip
    if actual.rows != base.rows:
        pass  # every column differs then: the row counts say it
    elif changed and stored is not None:
        result.differences += _column_diffs(saved, rebuilt, changed)
    elif changed:
        result.differences.append(f"columns whose values differ: {', '.join(changed)}")
    if recipe.get("pitstop_version") != __version__:
        result.notes.append(f"saved with pitstop {recipe.get('pitstop_version')}, rebuilt "
                            f"with {__version__}")  # fmt: skip
    if len(result.differences) == 0:
        result.differences.append("the column types differ (the values are equal)")


def _column_diffs(saved: Path, rebuilt: Path, columns: list[str]) -> list[str]:
    """Per column: how many rows differ between the two files (row by row), and the first."""
    import duckdb

    from pitstop.offline.duckdb.sql import quote_str
    from pitstop.quality.validation import cursor

    def rel(p: Path) -> str:
        return f"read_parquet({quote_str(str(p / '*.parquet') if p.is_dir() else str(p))})"

    cur = cursor()
    out = []
    for c in columns:
        try:
            out.append(_column_diff(cur, rel(saved), rel(rebuilt), c))
        except duckdb.Error:  # types that do not compare
            out.append(f"{c}: the values differ (their types cannot be compared row by row)")
    return out


def _column_diff(cur: Any, saved: str, rebuilt: str, c: str) -> str:
    from pitstop.offline.duckdb.sql import quote_ident
    from pitstop.quality.report import show

    q = quote_ident(c)
    pairs = f"SELECT a.{q} AS a, b.{q} AS b FROM {saved} a POSITIONAL JOIN {rebuilt} b"
    sql = (f"SELECT count(*) AS n, min(r) AS first FROM (SELECT row_number() OVER () - 1 AS r, "
           f"a, b FROM ({pairs})) WHERE a IS DISTINCT FROM b")  # fmt: skip
    found = cur.sql(sql).to_arrow_table().to_pylist()[0]
    if not found["n"]:
        return f"{c}: same values, another type"
    first = int(found["first"])
    pair = cur.sql(f"{pairs} LIMIT 1 OFFSET {first}").to_arrow_table().to_pylist()[0]
    return (f"{c}: {found['n']:,} rows differ (first: row {first}, saved {show(pair['a'])}, "
            f"rebuilt {show(pair['b'])})")  # fmt: skip
