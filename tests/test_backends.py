"""The backend table: built-in types, register(), and backends of other distributions.

The third-party tests install a real (tiny) distribution onto ``sys.path``: a package plus a
``.dist-info`` whose ``entry_points.txt`` registers an online store and an offline engine.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pitstop import Entity, FeatureStore, FeatureView, Field, FileSource, backends
from pitstop.config import OnlineStoreConfig, parse_config
from pitstop.errors import ConfigError
from pitstop.online.memory import MemoryOnlineConfig, MemoryOnlineStore
from pitstop.types import Int64

PLUGIN = '''
"""A dict-backed online store and a single-threaded DuckDB engine, as a plug-in package."""

from pathlib import Path
from typing import Literal

from pydantic import Field

from pitstop.config import OfflineStoreConfig, OnlineStoreConfig

OPENED = []


class DictStoreConfig(OnlineStoreConfig):
    type: Literal["dictstore"] = "dictstore"
    namespace: str
    max_views: int = Field(default=16, ge=1)

    def open(self, project, repo_path):
        from pitstop_dictstore.store import DictStore

        OPENED.append(("online", self.namespace, project))
        return DictStore(self, project, repo_path)


class SingleThreadConfig(OfflineStoreConfig):
    type: Literal["duckdb_single"] = "duckdb_single"

    def open(self, repo_path):
        from pitstop.offline.duckdb import DuckDBEngine

        OPENED.append(("offline", str(repo_path)))
        return DuckDBEngine(threads=1)
'''

PLUGIN_STORE = '''
from pitstop.errors import ConfigError
from pitstop.online.memory import MemoryOnlineStore


class DictStore(MemoryOnlineStore):
    """The memory store with a limit on the number of views."""

    def update(self, keep, drop):
        limit = self.config.max_views
        if len(keep) > limit:
            raise ConfigError(f"online_store.max_views: {len(keep)} views, limit {limit}")
        super().update(keep, drop)
'''

ENTRY_POINTS = """\
[pitstop.online_stores]
dictstore = pitstop_dictstore:DictStoreConfig
broken = pitstop_dictstore_gone.config:GoneConfig
sqlite = pitstop_dictstore:DictStoreConfig

[pitstop.offline_engines]
duckdb_single = pitstop_dictstore:SingleThreadConfig
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The package ``pitstop_dictstore`` installed (as distribution pitstop-dictstore 1.0)."""
    site = tmp_path / "site"
    package = site / "pitstop_dictstore"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PLUGIN)
    (package / "store.py").write_text(PLUGIN_STORE)
    info = site / "pitstop_dictstore-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pitstop-dictstore\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    import pitstop_dictstore

    yield pitstop_dictstore
    for name in [m for m in sys.modules if m.startswith("pitstop_dictstore")]:
        del sys.modules[name]


@pytest.fixture
def registered() -> Iterator[list[str]]:
    """Names registered during the test, unregistered after it."""
    names: list[str] = []
    yield names
    for name in names:
        backends.unregister("online_store", name)


def parse(section: dict[str, Any], key: str = "online_store") -> Any:
    return parse_config({"project": "p", key: section}, repo_path=Path("/repo"), source="fs.yaml")


def parse_error(section: dict[str, Any], key: str = "online_store") -> str:
    with pytest.raises(ConfigError) as info:
        parse(section, key)
    return str(info.value)


# --- the built-in table ------------------------------------------------------------------------


def test_builtin_types_and_their_models() -> None:
    assert backends.names("online_store") == ["sqlite", "redis", "postgres", "memory"]
    assert backends.names("offline_store") == ["duckdb", "file", "spark"]
    for kind, table in (("online_store", backends.ONLINE_STORES),
                        ("offline_store", backends.OFFLINE_ENGINES)):  # fmt: skip
        for name in table:
            model = backends.config_model(kind, name)
            assert name in str(model.model_fields["type"].annotation)
    assert parse({"type": "file"}, "offline_store").offline_store.type == "file"


def test_the_table_and_parsing_are_light() -> None:
    """Importing the table imports no backend; parsing any built-in type imports no driver."""
    code = (
        "import sys, pitstop.backends; from pathlib import Path\n"
        "prefixes = ('pitstop.online', 'pitstop.offline', 'pydantic')\n"
        "print(sorted(m for m in sys.modules if m.startswith(prefixes)))\n"
        "from pitstop.config import parse_config\n"
        "for kind in ('sqlite', 'redis', 'postgres', 'memory'):\n"
        "    parse_config({'project': 'p', 'online_store': {'type': kind}}, repo_path=Path('.'))\n"
        "for kind in ('file', 'spark'):\n"
        "    parse_config({'project': 'p', 'offline_store': {'type': kind}}, repo_path=Path('.'))\n"
        "drivers = {'redis', 'psycopg', 'duckdb', 'pyarrow', 'pandas', 'pyspark'}\n"
        "print(sorted(drivers & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "[]"]


def test_unknown_kind_and_type() -> None:
    with pytest.raises(ConfigError, match=r"'cache' is not a kind of backend; allowed: online_"):
        backends.names("cache")
    with pytest.raises(ConfigError) as info:
        backends.config_model("online_store", "cassandra")
    assert str(info.value) == (
        "'cassandra' is not a supported online store; allowed: sqlite, redis, postgres, memory"
    )


# --- register ----------------------------------------------------------------------------------


OPENED: list[str] = []


class CountingConfig(MemoryOnlineConfig):
    """A memory store under another name, noting the projects it opens stores for."""

    type: Literal["counting"] = "counting"

    def open(self, project: str, repo_path: Path) -> MemoryOnlineStore:
        OPENED.append(project)
        return super().open(project, repo_path)


def test_register_a_model_class(registered: list[str], tmp_path: Path) -> None:
    OPENED.clear()
    registered.append("counting")
    backends.register("online_store", "counting", CountingConfig)
    assert backends.names("online_store")[-1] == "counting"
    config = parse_config(
        {"project": "p", "online_store": {"type": "counting", "enforce_ttl": False}},
        repo_path=tmp_path,
    )
    assert config.online_store == CountingConfig(enforce_ttl=False)
    with FeatureStore(config=config) as store:
        assert isinstance(store.online, MemoryOnlineStore)
    assert OPENED == ["p"]
    assert "allowed: sqlite, redis, postgres, memory, counting" in parse_error({"type": "nope"})


def test_register_a_target_that_cannot_be_imported(registered: list[str]) -> None:
    registered.append("custom")
    backends.register("online_store", "custom", "no_such_package.stores:CustomConfig")
    assert parse_error({"type": "custom"}) == (
        "fs.yaml: online_store.type: 'custom' (registered with pitstop.backends.register) names "
        "'no_such_package.stores:CustomConfig', which cannot be imported: ModuleNotFoundError: "
        "No module named 'no_such_package'; install or repair the package that provides it"
    )
    backends.register("online_store", "custom", "pitstop.online.memory:NoSuchConfig")
    assert "has no attribute 'NoSuchConfig'" in parse_error({"type": "custom"})


def test_register_rejects_what_is_not_a_backend(registered: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"'sqlite' is a built-in online store; register"):
        backends.register("online_store", "sqlite", CountingConfig)
    with pytest.raises(ConfigError, match=r"a config model class or a 'module:Class' string"):
        backends.register("online_store", "custom", "pitstop.online.memory")
    registered.append("custom")
    backends.register("online_store", "custom", "pitstop.online.memory:MemoryOnlineStore")
    msg = parse_error({"type": "custom"})
    assert msg.startswith("fs.yaml: online_store.type: 'custom' (registered with ")
    assert "'pitstop.online.memory:MemoryOnlineStore', which is not a config model" in msg
    assert "subclass of pitstop.config.OnlineStoreConfig" in msg

    class NoOpen(OnlineStoreConfig):
        type: Literal["custom"] = "custom"

    backends.register("online_store", "custom", NoOpen)
    assert "a config model without open(): it must implement" in parse_error({"type": "custom"})
    backends.unregister("online_store", "custom")
    assert "'custom' is not a supported online store" in parse_error({"type": "custom"})


# --- a third-party distribution ----------------------------------------------------------------


def write_repo(repo: Path, online: str, offline: str = "") -> None:
    (repo / "data").mkdir(parents=True)
    now = datetime.now(UTC).replace(microsecond=0)
    table = pa.table(
        {
            "user_id": pa.array([1, 2, 1], pa.int64()),
            "ts": pa.array(
                [now - timedelta(hours=h) for h in (3, 2, 1)], pa.timestamp("us", "UTC")
            ),
            "age": pa.array([30, 41, 31], pa.int64()),
        }
    )
    pq.write_table(table, repo / "data" / "users.parquet")
    (repo / "feature_store.yaml").write_text(
        f"project: plugins\nregistry: data/registry.db\nonline_store:\n{online}{offline}"
    )


user = Entity(name="user", join_keys=["user_id"])
users = FeatureView(
    name="users",
    entities=[user],
    schema=[Field(name="age", dtype=Int64)],
    source=FileSource(path="data/users.parquet", timestamp_field="ts"),
)


def test_entry_point_store_serves_online_reads(plugin: Any, tmp_path: Path) -> None:
    online = "  type: dictstore\n  namespace: team_a\n  max_views: 2\n"
    write_repo(tmp_path, online, "offline_store:\n  type: duckdb_single\n")
    with FeatureStore(repo_path=tmp_path) as store:
        assert store.config.online_store.namespace == "team_a"
        store.apply([user, users])
        now = datetime.now(UTC)
        [result] = store.materialize(now - timedelta(days=1), now)
        assert result.rows == 2
        response = store.get_online_features(["users:age"], [{"user_id": 1}, {"user_id": 3}])
        assert response.to_dict() == {"user_id": [1, 3], "age": [31, None]}
        assert type(store.online).__name__ == "DictStore"
    offline, online = ("offline", str(tmp_path.resolve())), ("online", "team_a", "plugins")
    assert sorted(plugin.OPENED) == [offline, online]


def test_entry_point_store_limits_come_from_its_own_model(plugin: Any, tmp_path: Path) -> None:
    write_repo(tmp_path, "  type: dictstore\n  namespace: team_a\n  max_views: 1\n")
    two = FeatureView(name="users_2", entities=[user], schema=users.schema, source=users.source)
    with FeatureStore(repo_path=tmp_path) as store, pytest.raises(ConfigError, match="limit 1"):
        store.apply([user, users, two])


def test_entry_point_store_is_validated_by_its_own_model(plugin: Any) -> None:
    assert parse_error({"type": "dictstore", "namespace": "a", "max_views": 0}) == (
        "fs.yaml: online_store.max_views: should be greater than or equal to 1 (got 0)"
    )
    assert parse_error({"type": "dictstore"}) == (
        "fs.yaml: online_store.namespace: required key is missing"
    )
    assert "did you mean 'namespace'?" in parse_error({"type": "dictstore", "namspace": "a"})
    assert parse_error({"type": "dynamo"}) == (
        "fs.yaml: online_store.type: 'dynamo' is not a supported online store; "
        "allowed: sqlite, redis, postgres, memory, broken, dictstore"
    )
    assert parse_error({"type": "bigquery"}, "offline_store") == (
        "fs.yaml: offline_store.type: 'bigquery' is not a supported offline store; "
        "allowed: duckdb, file, spark, duckdb_single"
    )


def test_entry_point_cannot_take_a_builtin_name(plugin: Any) -> None:
    assert type(parse({"type": "sqlite"}).online_store).__name__ == "SqliteOnlineConfig"


def test_entry_point_that_cannot_be_imported(plugin: Any) -> None:
    assert parse_error({"type": "broken"}) == (
        "fs.yaml: online_store.type: 'broken' (an entry point of pitstop-dictstore 1.0 in group "
        "'pitstop.online_stores') names 'pitstop_dictstore_gone.config:GoneConfig', which cannot "
        "be imported: ModuleNotFoundError: No module named 'pitstop_dictstore_gone'; install or "
        "repair the package that provides it"
    )


def test_entry_point_backends_survive_the_server_round_trip(plugin: Any) -> None:
    """The server hands its config to worker processes as JSON: plug-in keys must survive."""
    config = parse({"type": "dictstore", "namespace": "a", "max_views": 3})
    again = type(config).model_validate(config.model_dump(mode="json"))
    assert again == config
    assert again.online_store.max_views == 3
