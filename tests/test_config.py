"""Tests for pitstop.config: feature_store.yaml -> typed config, and its error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from pitstop.config import RepoConfig, load_config, parse_config
from pitstop.errors import ConfigError
from pitstop.offline.duckdb_config import DuckDBOfflineConfig
from pitstop.offline.spark.config import SparkOfflineConfig
from pitstop.online.memory import MemoryOnlineConfig
from pitstop.online.postgres import PostgresOnlineConfig
from pitstop.online.redis_config import RedisAddress, RedisOnlineConfig
from pitstop.online.sqlite import SqliteOnlineConfig

TUTORIAL_YAML = """\
project: churn_prediction
registry: data/registry.db
provider: local
online_store:
  type: redis
  connection_string: "localhost:6379"
offline_store:
  type: file
entity_key_serialization_version: 2
"""

FEAST_TEMPLATE_YAML = """\
project: my_project
# By default, the registry is a file
registry: data/registry.db
provider: local
online_store:
    type: sqlite
    path: data/online_store.db
entity_key_serialization_version: 3
auth:
    type: no_auth
"""

REPO = Path("/srv/repo")


def write_repo(root: Path, text: str, name: str = "feature_store.yaml") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text, encoding="utf-8")
    return root


def parse(data: dict[str, Any]) -> RepoConfig:
    return parse_config(data, repo_path=REPO, source="feature_store.yaml")


def parse_error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse(data)
    return str(info.value)


def online(**fields: Any) -> dict[str, Any]:
    return {"project": "p", "online_store": fields}


# --- files as users write them -------------------------------------------------------------


def test_tutorial_yaml_parses_as_is(tmp_path: Path) -> None:
    cfg = load_config(write_repo(tmp_path / "repo", TUTORIAL_YAML))
    assert cfg.project == "churn_prediction"
    assert cfg.provider == "local"
    assert cfg.entity_key_serialization_version == 2
    assert isinstance(cfg.online_store, RedisOnlineConfig)
    assert cfg.online_store.address() == RedisAddress(
        "localhost", 6379, nodes=(("localhost", 6379),)
    )
    assert isinstance(cfg.offline_store, DuckDBOfflineConfig)
    assert cfg.offline_store.type == "file"
    assert cfg.repo_path == (tmp_path / "repo").resolve()
    assert cfg.registry.url(cfg.repo_path) == f"sqlite:///{cfg.repo_path / 'data' / 'registry.db'}"
    assert not cfg.registry.is_postgres


def test_feast_init_template_parses_as_is(tmp_path: Path) -> None:
    cfg = load_config(write_repo(tmp_path, FEAST_TEMPLATE_YAML))
    assert isinstance(cfg.online_store, SqliteOnlineConfig)
    assert cfg.online_store.resolved_path(cfg.repo_path) == tmp_path.resolve() / "data" / (
        "online_store.db"
    )
    assert cfg.auth.type == "no_auth"


def test_defaults_when_keys_are_omitted() -> None:
    cfg = parse({"project": "demo"})
    assert cfg.registry.path == "data/registry.db"
    assert cfg.registry.cache_ttl_seconds == 60
    assert cfg.provider == "local"
    assert cfg.online_store == SqliteOnlineConfig(path="data/online_store.db", enforce_ttl=True)
    assert cfg.offline_store == DuckDBOfflineConfig(type="duckdb")
    assert cfg.entity_key_serialization_version == 3
    assert cfg.feature_server.auth is None
    assert cfg.repo_path == REPO


@pytest.mark.parametrize("key", ["registry", "online_store", "offline_store", "feature_server"])
def test_null_sections_mean_defaults(key: str) -> None:
    assert parse({"project": "demo", key: None}) == parse({"project": "demo"})


def test_online_store_type_defaults_to_sqlite() -> None:
    cfg = parse(online(path="/var/lib/online.db", enforce_ttl=False))
    assert cfg.online_store == SqliteOnlineConfig(path="/var/lib/online.db", enforce_ttl=False)
    assert cfg.online_store.resolved_path(REPO) == Path("/var/lib/online.db")


def test_memory_online_store_and_duckdb_options() -> None:
    cfg = parse(
        {
            "project": "p",
            "online_store": {"type": "memory", "enforce_ttl": False},
            "offline_store": {"type": "duckdb", "threads": 2, "memory_limit": "4GB"},
            "feature_server": {"auth": {"keys_env": "PITSTOP_KEYS"}, "registry_ttl_sec": 5},
        }
    )
    assert cfg.online_store == MemoryOnlineConfig(enforce_ttl=False)
    assert cfg.offline_store.threads == 2
    assert cfg.offline_store.memory_limit == "4GB"
    assert cfg.feature_server.auth is not None
    assert cfg.feature_server.auth.type == "api_key"
    assert cfg.feature_server.auth.keys_env == "PITSTOP_KEYS"
    assert cfg.feature_server.registry_ttl_sec == 5


# --- registry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "postgresql://me@db.internal:5433/features",
        "postgresql+psycopg://me@db.internal:5433/features",
        "postgres://me@db.internal:5433/features",
    ],
)
def test_registry_mapping_with_postgres_url(path: str) -> None:
    registry = {
        "registry_type": "sql",
        "path": path,
        "cache_ttl_seconds": 5,
        "cache_mode": "thread",
    }
    cfg = parse({"project": "p", "registry": registry})
    assert cfg.registry.is_postgres
    assert cfg.registry.url(REPO) == "postgresql://me@db.internal:5433/features"
    assert cfg.registry.cache_ttl_seconds == 5
    assert cfg.registry.cache_mode == "thread"


def test_registry_plain_string_postgres_url() -> None:
    cfg = parse({"project": "p", "registry": "postgresql+psycopg2://u:pw@h/db"})
    assert cfg.registry.url(REPO) == "postgresql://u:pw@h/db"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("data/registry.db", "/srv/repo/data/registry.db"),
        ("sqlite:///meta/reg.db", "/srv/repo/meta/reg.db"),
        ("sqlite:////var/reg.db", "/var/reg.db"),
        ("/var/reg.db", "/var/reg.db"),
        ("../shared/reg.db", "/srv/shared/reg.db"),
    ],
)
def test_registry_sqlite_paths(path: str, expected: str) -> None:
    cfg = parse({"project": "p", "registry": {"registry_type": "sql", "path": path}})
    assert not cfg.registry.is_postgres
    assert cfg.registry.url(REPO) == f"sqlite:///{expected}"


def test_registry_unsupported_scheme_and_mode() -> None:
    msg = parse_error({"project": "p", "registry": {"path": "s3://bucket/registry.pb"}})
    assert "feature_store.yaml: registry.path: unsupported scheme 's3'" in msg
    assert "postgresql://" in msg
    msg = parse_error({"project": "p", "registry": {"path": "r.db", "cache_mode": "async"}})
    assert "registry.cache_mode: 'async' is not allowed; allowed: sync, thread" in msg
    msg = parse_error({"project": "p", "registry": {"registry_type": "gcs"}})
    assert "registry.registry_type: 'gcs'" in msg
    assert "allowed: file, sql" in msg


def test_relative_paths_resolve_against_repo_not_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = write_repo(tmp_path / "repo", "project: p\nonline_store:\n  path: data/online.db\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for cfg in (load_config(repo), load_config(fs_yaml_file=repo / "feature_store.yaml")):
        root = repo.resolve()
        assert cfg.repo_path == root
        assert cfg.registry.url(cfg.repo_path) == f"sqlite:///{root / 'data' / 'registry.db'}"
        assert isinstance(cfg.online_store, SqliteOnlineConfig)
        assert cfg.online_store.resolved_path(cfg.repo_path) == root / "data" / "online.db"


def test_load_config_defaults_to_cwd_and_accepts_another_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_repo(tmp_path, "project: from_cwd\n")
    write_repo(tmp_path / "configs", "project: staging\n", name="staging.yaml")
    monkeypatch.chdir(tmp_path)
    assert load_config().repo_path == tmp_path.resolve()
    assert load_config().project == "from_cwd"
    cfg = load_config(repo_path=tmp_path, fs_yaml_file="configs/staging.yaml")
    assert (cfg.project, cfg.repo_path) == ("staging", tmp_path.resolve())
    assert (
        load_config(fs_yaml_file="configs/staging.yaml").repo_path
        == (tmp_path / "configs").resolve()
    )


# --- environment interpolation -------------------------------------------------------------


def test_env_interpolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG_HOST", "db.internal")
    monkeypatch.setenv("PG_PORT", "6543")
    monkeypatch.setenv("PG_PASSWORD", "s3cret")
    monkeypatch.delenv("PG_DB", raising=False)
    monkeypatch.setenv("PG_USER", "")
    cfg = parse(
        online(
            type="postgres",
            host="${PG_HOST}",
            port="${PG_PORT}",
            password="pre-${PG_PASSWORD}-post",
            database="${PG_DB:-features}",
            user="${PG_USER:-svc}",
        )
    )
    assert isinstance(cfg.online_store, PostgresOnlineConfig)
    assert cfg.online_store.host == "db.internal"
    assert cfg.online_store.port == 6543
    assert cfg.online_store.password == "pre-s3cret-post"
    assert cfg.online_store.database == "features"
    assert cfg.online_store.user == "svc"  # empty counts as unset for a default


def test_env_set_but_empty_without_default_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PITSTOP_PREFIX", "")
    cfg = parse(online(type="redis", key_prefix="${PITSTOP_PREFIX}"))
    assert isinstance(cfg.online_store, RedisOnlineConfig)
    assert cfg.online_store.key_prefix == ""


def test_env_unset_names_variable_key_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    repo = write_repo(
        tmp_path, "project: p\nonline_store:\n  type: redis\n  connection_string: ${REDIS_URL}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(repo)
    msg = str(info.value)
    assert str(repo.resolve() / "feature_store.yaml") in msg
    assert "online_store.connection_string" in msg
    assert "'REDIS_URL' is not set" in msg
    assert "${REDIS_URL:-" in msg


def test_env_interpolation_in_registry_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_URL", "postgresql://u@h:5432/reg")
    assert parse({"project": "p", "registry": "${REGISTRY_URL}"}).registry.is_postgres
    monkeypatch.delenv("REGISTRY_URL")
    assert "registry: environment variable 'REGISTRY_URL'" in parse_error(
        {"project": "p", "registry": "${REGISTRY_URL}"}
    )


# --- redis ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("connection_string", "expected"),
    [
        ("localhost:6379", RedisAddress("localhost", 6379)),
        ("redis.internal", RedisAddress("redis.internal", 6379)),
        ("h:6380,db=3", RedisAddress("h", 6380, db=3)),
        (
            "h:6380,db=1,password=pw,ssl=true,username=app",
            RedisAddress("h", 6380, db=1, password="pw", username="app", ssl=True),
        ),
        ("h:1,ssl=False", RedisAddress("h", 1, ssl=False)),
        ("redis://h:6390/4", RedisAddress("h", 6390, db=4)),
        ("redis://h", RedisAddress("h", 6379)),
        (
            "rediss://app:p%40ss@h:6390/0",
            RedisAddress("h", 6390, password="p@ss", username="app", ssl=True),
        ),
        ("redis://:pw@h:1", RedisAddress("h", 1, password="pw")),
        ("[::1]:6379", RedisAddress("::1", 6379)),
        ("h:1,password=a://b", RedisAddress("h", 1, password="a://b")),
    ],
)
def test_redis_connection_strings(connection_string: str, expected: RedisAddress) -> None:
    cfg = parse(online(type="redis", connection_string=connection_string))
    assert isinstance(cfg.online_store, RedisOnlineConfig)
    address = cfg.online_store.address()
    assert address == RedisAddress(
        **{**expected.__dict__, "nodes": ((expected.host, expected.port),)}
    )
    assert "pw" not in repr(address) and "p@ss" not in repr(address)


def test_redis_cluster_nodes() -> None:
    cfg = parse(
        online(type="redis", redis_type="redis_cluster", connection_string="a:7000,b:7001,ssl=1")
    )
    assert isinstance(cfg.online_store, RedisOnlineConfig)
    address = cfg.online_store.address()
    assert address.nodes == (("a", 7000), ("b", 7001))
    assert (address.host, address.port, address.ssl) == ("a", 7000, True)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"connection_string": "h:abc"}, ["port 'abc'", "between 1 and 65535"]),
        ({"connection_string": "h:70000"}, ["port '70000'"]),
        ({"connection_string": "redis://h:99999/0"}, ["port '99999'"]),
        (
            {"connection_string": "h:6379,foo=1"},
            ["unknown option 'foo'", "allowed options: db, password, username, ssl"],
        ),
        ({"connection_string": "h:6379,db=x"}, ["db 'x'"]),
        ({"connection_string": "h:6379,ssl=maybe"}, ["ssl 'maybe'", "true, false"]),
        ({"connection_string": "unix:///tmp/redis.sock"}, ["scheme 'unix'", "rediss://"]),
        ({"connection_string": "db=1"}, ["names no host"]),
        ({"connection_string": "a:1,b:2"}, ["redis_type: redis_cluster"]),
        (
            {"redis_type": "redis_cluster", "connection_string": "a:1,db=2"},
            ["only db 0"],
        ),
    ],
)
def test_redis_connection_string_errors(fields: dict[str, Any], expected: list[str]) -> None:
    msg = parse_error(online(type="redis", **fields))
    assert msg.startswith("feature_store.yaml: online_store.connection_string: ")
    for part in expected:
        assert part in msg


def test_redis_other_fields() -> None:
    cfg = parse(online(type="redis", key_prefix="churn:", key_ttl_seconds=3600))
    assert isinstance(cfg.online_store, RedisOnlineConfig)
    assert (cfg.online_store.key_prefix, cfg.online_store.key_ttl_seconds) == ("churn:", 3600)
    msg = parse_error(online(type="redis", redis_type="sentinel", key_ttl_seconds=0))
    assert (
        "online_store.redis_type: 'sentinel' is not allowed; allowed: redis, redis_cluster" in msg
    )
    assert "online_store.key_ttl_seconds: should be greater than or equal to 1 (got 0)" in msg


# --- postgres ------------------------------------------------------------------------------


def test_postgres_dsn_from_parts() -> None:
    cfg = parse(online(type="postgres"))
    assert isinstance(cfg.online_store, PostgresOnlineConfig)
    assert cfg.online_store.dsn() == "postgresql://postgres@localhost:5432/postgres"
    assert cfg.online_store.db_schema == "public"
    cfg = parse(
        online(
            type="postgres",
            host="db.internal",
            port=5433,
            database="test",
            user="svc",
            password="p@ss/word",
            sslmode="verify-full",
            db_schema="features",
        )
    )
    assert isinstance(cfg.online_store, PostgresOnlineConfig)
    assert cfg.online_store.dsn() == (
        "postgresql://svc:p%40ss%2Fword@db.internal:5433/test?sslmode=verify-full"
    )
    assert "p@ss/word" not in repr(cfg)


@pytest.mark.parametrize(
    ("conninfo", "expected"),
    [
        ("postgresql+psycopg://u@h:1/db", "postgresql://u@h:1/db"),
        ("postgres://u@h/db?sslmode=require", "postgresql://u@h/db?sslmode=require"),
        ("host=h port=1 dbname=db", "host=h port=1 dbname=db"),
    ],
)
def test_postgres_conninfo_overrides_parts(conninfo: str, expected: str) -> None:
    cfg = parse(online(type="postgres", host="ignored", conninfo=conninfo))
    assert isinstance(cfg.online_store, PostgresOnlineConfig)
    assert cfg.online_store.dsn() == expected


def test_postgres_errors() -> None:
    msg = parse_error(online(type="postgres", port=0, sslmode="on", conninfo="mysql://h/db"))
    lines = msg.splitlines()
    assert len(lines) == 3
    assert "feature_store.yaml: online_store.port: should be greater than or equal to 1" in msg
    assert "online_store.sslmode: 'on' is not allowed; allowed: disable, allow, prefer" in msg
    assert "online_store.conninfo: must be a postgresql:// URL" in msg


# --- error messages ------------------------------------------------------------------------


def test_unknown_top_level_key_suggests() -> None:
    msg = parse_error({"project": "p", "onlin_store": {"type": "redis"}})
    assert msg == (
        "feature_store.yaml: onlin_store: unknown key 'onlin_store'; did you mean 'online_store'"
        " or 'offline_store' or 'monitoring'?"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (online(type="redis", conection_string="h:1"), "did you mean 'connection_string'?"),
        (online(type="postgres", schema="x"), "online_store.schema: unknown key 'schema'"),
        (online(pth="x.db"), "did you mean 'path'?"),
        ({"project": "p", "registry": {"paht": "x"}}, "registry.paht: unknown key 'paht'"),
        ({"project": "p", "feature_server": {"auth": {"key_env": "K"}}}, "'keys_env'"),
        ({"project": "p", "repo_path": "/elsewhere"}, "repo_path: unknown key 'repo_path'"),
    ],
)
def test_unknown_nested_keys(data: dict[str, Any], expected: str) -> None:
    assert expected in parse_error(data)


def test_unknown_online_store_type_lists_allowed() -> None:
    assert parse_error(online(type="dynamo")) == (
        "feature_store.yaml: online_store.type: 'dynamo' is not a supported online store; "
        "allowed: sqlite, redis, postgres, memory"
    )
    msg = parse_error(online(type="feast.infra.online_stores.redis.RedisOnlineStore"))
    assert "allowed: sqlite, redis, postgres, memory" in msg


@pytest.mark.parametrize("kind", ["bigquery", "snowflake.offline"])
def test_unknown_offline_store_type_lists_allowed(kind: str) -> None:
    msg = parse_error({"project": "p", "offline_store": {"type": kind}})
    assert msg == (
        f"feature_store.yaml: offline_store.type: '{kind}' is not a supported offline store; "
        "allowed: duckdb, file, spark"
    )


def test_spark_offline_store() -> None:
    cfg = parse(
        {
            "project": "p",
            "offline_store": {
                "type": "spark",
                "master": "spark://spark-master:7077",
                "spark_conf": {"spark.executor.memory": "8g", "spark.sql.shuffle.partitions": 400},
                "staging_location": "s3a://bucket/staging",
            },
        }
    )
    assert isinstance(cfg.offline_store, SparkOfflineConfig)
    assert cfg.offline_store.master == "spark://spark-master:7077"
    assert cfg.offline_store.spark_conf == {
        "spark.executor.memory": "8g",
        "spark.sql.shuffle.partitions": "400",
    }
    assert parse({"project": "p", "offline_store": {"type": "spark"}}).offline_store == (
        SparkOfflineConfig(master="local[*]")
    )


def test_offline_store_without_type_is_duckdb() -> None:
    cfg = parse({"project": "p", "offline_store": {"threads": 2}})
    assert cfg.offline_store == DuckDBOfflineConfig(threads=2)


def test_spark_offline_store_errors_name_the_key() -> None:
    msg = parse_error({"project": "p", "offline_store": {"type": "spark", "mastr": "yarn"}})
    assert msg == (
        "feature_store.yaml: offline_store.mastr: unknown key 'mastr'; did you mean 'master'?"
    )
    msg = parse_error({"project": "p", "offline_store": {"type": "spark", "master": " "}})
    assert "offline_store.master: names no Spark master" in msg


def test_provider_and_feast_auth_must_be_supported() -> None:
    msg = parse_error({"project": "p", "provider": "gcp", "auth": {"type": "oidc"}})
    assert "provider: 'gcp' is not supported" in msg
    assert "allowed: local" in msg
    assert "auth.type: 'oidc' is not supported" in msg
    assert "allowed: no_auth" in msg


@pytest.mark.parametrize("name", ["my-project", "churn prediction", "", "proj.v2"])
def test_bad_project_name(name: str) -> None:
    msg = parse_error({"project": name})
    assert f"feature_store.yaml: project: {name!r} is not a valid project name" in msg
    assert "letters, digits and underscores" in msg


def test_missing_project_and_wrong_types() -> None:
    msg = parse_error({"online_store": "redis", "entity_key_serialization_version": 9})
    lines = msg.splitlines()
    assert (
        lines[0] == "feature_store.yaml: project: required key is missing; e.g. project: my_project"
    )
    assert "online_store: expected a mapping of keys, got str 'redis'" in lines[1]
    assert "entity_key_serialization_version: should be less than or equal to 3" in lines[2]
    assert all(line.startswith("feature_store.yaml: ") for line in lines)


def test_validation_error_does_not_leak() -> None:
    with pytest.raises(ConfigError) as info:
        parse({"project": "bad-name"})
    assert isinstance(info.value, ValueError)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_parse_config_rejects_non_mapping() -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_config(cast(Any, ["project", "p"]), repo_path=REPO)


# --- files ---------------------------------------------------------------------------------


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    msg = str(info.value)
    assert str(tmp_path.resolve() / "feature_store.yaml") in msg
    assert "does not exist" in msg
    assert "pitstop init" in msg


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"prod\.yaml does not exist"):
        load_config(fs_yaml_file=tmp_path / "prod.yaml")


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    repo = write_repo(tmp_path, "project: p\nonline_store:\n  type: redis\n   connection: [\n")
    with pytest.raises(ConfigError) as info:
        load_config(repo)
    msg = str(info.value)
    assert msg.startswith(f"{repo.resolve() / 'feature_store.yaml'}: line 4")
    assert "invalid YAML" in msg


def test_empty_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="the file is empty"):
        load_config(write_repo(tmp_path / "a", "# nothing yet\n"))
    with pytest.raises(ConfigError, match="expected a mapping of keys, got list"):
        load_config(write_repo(tmp_path / "b", "- project: p\n"))


def test_errors_from_a_file_name_it(tmp_path: Path) -> None:
    repo = write_repo(tmp_path, "project: p\nonline_store:\n  type: dynamo\n")
    with pytest.raises(ConfigError) as info:
        load_config(repo)
    assert str(info.value) == (
        f"{repo.resolve() / 'feature_store.yaml'}: online_store.type: 'dynamo' is not a "
        "supported online store; allowed: sqlite, redis, postgres, memory"
    )


def test_config_is_frozen() -> None:
    cfg, field = parse({"project": "p"}), "project"
    with pytest.raises(ValueError, match="frozen"):
        setattr(cfg, field, "q")
    assert hash(cfg.online_store) == hash(SqliteOnlineConfig())
