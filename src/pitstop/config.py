"""Typed configuration from ``feature_store.yaml`` (:func:`load_config`, :func:`parse_config`).

Any problem becomes one :class:`~pitstop.errors.ConfigError` naming file, dotted key and allowed
values. Strings may use ``${NAME}`` or ``${NAME:-default}`` (default when unset or empty).
Relative paths resolve against the repo root, never the working directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from pitstop.errors import ConfigError, suggest
from pitstop.offline.spark.config import SparkOfflineConfig

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_REDIS_OPTIONS = ("db", "password", "username", "ssl")
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
_SECTIONS = ("registry", "online_store", "offline_store", "feature_server", "auth")
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_LITERAL_HINTS = {
    "provider": "is not supported: pitstop has only the local provider (pick backends with "
    "online_store and offline_store)",
    "offline_store.type": "is not a supported offline store",
    "auth.type": "is not supported; protect the feature server with feature_server.auth",
}


def _scheme(text: str) -> str | None:  # 'postgresql' for postgresql+psycopg://; None: a path
    m = _SCHEME.match(text)
    return m.group(1).split("+")[0].lower() if m else None


def _resolve(path: str, repo_path: Path) -> Path:
    return (Path(repo_path) / Path(path).expanduser()).resolve()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegistryConfig(_Model):
    """A SQLite file (``registry: data/registry.db``) or PostgreSQL (``registry: {registry_type:
    sql, path: postgresql://u@host:5432/db}``). The path decides; use ``is_postgres``, not the
    Feast-compatible ``registry_type``."""

    registry_type: Literal["file", "sql"] = "file"
    path: str = "data/registry.db"
    cache_ttl_seconds: int = Field(default=60, ge=0)
    cache_mode: Literal["sync", "thread"] = "sync"

    @field_validator("path")
    @classmethod
    def _check_path(cls, v: str) -> str:
        v, scheme = v.strip(), _scheme(v.strip())
        if scheme in ("postgresql", "postgres"):
            return _SCHEME.sub("postgresql://", v, count=1)  # drop a SQLAlchemy '+driver'
        if scheme not in (None, "sqlite"):
            raise ValueError(
                f"unsupported scheme {scheme!r}; allowed: a file path, sqlite:///, postgresql://"
            )
        if v in ("", "sqlite:///") or (scheme == "sqlite" and not v.startswith("sqlite:///")):
            raise ValueError(f"{v!r} names no file; write e.g. data/registry.db")
        return v

    @property
    def is_postgres(self) -> bool:
        return _scheme(self.path) == "postgresql"

    def url(self, repo_path: Path) -> str:
        """``sqlite:///`` + the absolute file path, or the ``postgresql://`` URL."""
        if self.is_postgres:
            return self.path
        return f"sqlite:///{_resolve(self.path.removeprefix('sqlite:///'), repo_path)}"


class SqliteOnlineConfig(_Model):
    type: Literal["sqlite"] = "sqlite"
    path: str = "data/online_store.db"
    enforce_ttl: bool = True

    def resolved_path(self, repo_path: Path) -> Path:
        """The absolute database file; a relative path resolves against ``repo_path``."""
        return _resolve(self.path, repo_path)


@dataclass(frozen=True)
class RedisAddress:
    """A parsed Redis connection string; ``nodes`` lists every startup node (cluster)."""

    host: str
    port: int = 6379
    db: int = 0
    password: str | None = field(default=None, repr=False)
    username: str | None = None
    ssl: bool = False
    nodes: tuple[tuple[str, int], ...] = ()


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":") if ":" in text else (text, "", "")
    host = host.strip("[]")  # [IPv6]:port
    if not host:
        raise ValueError(f"{text!r} has no host; write host:port, e.g. 'localhost:6379'")
    if sep and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"port {port!r} in {text!r} is not a number between 1 and 65535")
    return host, int(port) if sep else 6379


def _parse_redis(text: str) -> RedisAddress:
    nodes: list[tuple[str, int]] = []
    opts: dict[str, str] = {}
    if is_url := _SCHEME.match(text.strip()) is not None:
        url = urlsplit(text.strip())
        if url.scheme not in ("redis", "rediss"):
            raise ValueError(f"unsupported scheme {url.scheme!r}; allowed: redis://, rediss://")
        opts = {"ssl": str(url.scheme == "rediss").lower(), "db": url.path.strip("/") or "0"}
        opts.update(username=unquote(url.username or ""), password=unquote(url.password or ""))
        opts.update(parse_qsl(url.query, keep_blank_values=True))
        nodes.append(_host_port(url.netloc.rpartition("@")[2]))
    for part in [] if is_url else filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if sep:
            opts[key.strip()] = value.strip()
        else:
            nodes.append(_host_port(part))
    if not nodes:
        raise ValueError(f"{text!r} names no host; write host:port, e.g. 'localhost:6379'")
    if unknown := [k for k in opts if k not in _REDIS_OPTIONS]:
        names = ", ".join(repr(k) for k in unknown)
        raise ValueError(f"unknown option {names}; allowed options: {', '.join(_REDIS_OPTIONS)}")
    if not (db := opts.get("db", "0")).isdigit():
        raise ValueError(f"db {db!r} is not a non-negative integer")
    if (ssl := _BOOLS.get(opts.get("ssl", "false").lower())) is None:
        raise ValueError(f"ssl {opts['ssl']!r} is not a boolean; allowed: true, false")
    host, port = nodes[0]
    password, username = opts.get("password") or None, opts.get("username") or None
    return RedisAddress(host, port, int(db), password, username, ssl, tuple(nodes))


class RedisOnlineConfig(_Model):
    """Redis or Redis Cluster. ``connection_string`` is Feast's ``host:port[,db=N][,password=..]
    [,username=..][,ssl=true]`` (several ``host:port`` for a cluster) or a redis(s):// URL."""

    type: Literal["redis"] = "redis"
    redis_type: Literal["redis", "redis_cluster"] = "redis"
    connection_string: str = Field(default="localhost:6379", repr=False)
    key_prefix: str = ""
    key_ttl_seconds: int | None = Field(default=None, ge=1)
    enforce_ttl: bool = True

    @field_validator("connection_string")
    @classmethod
    def _check_connection_string(cls, v: str, info: ValidationInfo) -> str:
        address = _parse_redis(v)
        if info.data.get("redis_type") == "redis" and len(address.nodes) > 1:
            raise ValueError("several hosts need redis_type: redis_cluster")
        if info.data.get("redis_type") == "redis_cluster" and address.db != 0:
            raise ValueError(f"Redis Cluster has only db 0, not db {address.db}")
        return v

    def address(self) -> RedisAddress:
        return _parse_redis(self.connection_string)


class PostgresOnlineConfig(_Model):
    """PostgreSQL; ``conninfo`` (a postgresql:// URL or libpq ``key=value`` string) overrides
    host/port/database/user/password/sslmode. Tables live in ``db_schema``."""

    type: Literal["postgres"] = "postgres"
    host: str = "localhost"
    port: int = Field(default=5432, ge=1, le=65535)
    database: str = "postgres"
    db_schema: str = "public"
    user: str = "postgres"
    password: str | None = Field(default=None, repr=False)
    sslmode: _SslMode | None = None
    conninfo: str | None = Field(default=None, repr=False)
    enforce_ttl: bool = True

    @field_validator("conninfo")
    @classmethod
    def _check_conninfo(cls, v: str | None) -> str | None:
        if v and "://" in v and _scheme(v) not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL or a libpq 'key=value' string")
        return _SCHEME.sub("postgresql://", v, count=1) if v and "://" in v else v

    def dsn(self) -> str:
        """A libpq connection string (``conninfo`` if given, else a postgresql:// URL)."""
        if self.conninfo:
            return self.conninfo
        host = f"[{self.host}]" if ":" in self.host else quote(self.host, safe="")
        auth = quote(self.user, safe="")
        auth += "" if self.password is None else ":" + quote(self.password, safe="")
        url = f"postgresql://{auth}@{host}:{self.port}/{quote(self.database, safe='')}"
        return f"{url}?{urlencode({'sslmode': self.sslmode})}" if self.sslmode else url


class MemoryOnlineConfig(_Model):
    type: Literal["memory"] = "memory"
    enforce_ttl: bool = True


OnlineStoreConfig = Annotated[
    SqliteOnlineConfig | RedisOnlineConfig | PostgresOnlineConfig | MemoryOnlineConfig,
    Field(discriminator="type"),
]
_ONLINE = {m.model_fields["type"].default: m for m in get_args(get_args(OnlineStoreConfig)[0])}


class DuckDBOfflineConfig(_Model):
    """The DuckDB engine over Parquet/CSV files; Feast's ``type: file`` means the same."""

    type: Literal["duckdb", "file"] = "duckdb"
    threads: int | None = Field(default=None, ge=1)
    memory_limit: str | None = None
    temp_directory: str | None = None


OfflineStoreConfig = Annotated[
    DuckDBOfflineConfig | SparkOfflineConfig, Field(discriminator="type")
]
_OFFLINE = {"duckdb": DuckDBOfflineConfig, "file": DuckDBOfflineConfig, "spark": SparkOfflineConfig}


class AuthConfig(_Model):
    """Feature-server authentication by API keys read from an env variable or a file."""

    type: Literal["api_key"] = "api_key"
    keys_env: str | None = None
    keys_file: str | None = None


class FeatureServerConfig(_Model):
    auth: AuthConfig | None = None
    registry_ttl_sec: int | None = Field(default=None, ge=0)


class NoAuthConfig(_Model):
    """Feast's top-level ``auth`` section, which its templates write as ``type: no_auth``."""

    type: Literal["no_auth"] = "no_auth"


class RepoConfig(_Model):
    """The whole ``feature_store.yaml``; ``repo_path`` is set by the loader, not the file."""

    project: str
    registry: RegistryConfig = RegistryConfig()
    provider: Literal["local"] = "local"
    online_store: OnlineStoreConfig = SqliteOnlineConfig()
    offline_store: OfflineStoreConfig = DuckDBOfflineConfig()
    entity_key_serialization_version: int = Field(default=3, ge=1, le=3)
    feature_server: FeatureServerConfig = FeatureServerConfig()
    auth: NoAuthConfig = NoAuthConfig()
    repo_path: Path

    @field_validator(*_SECTIONS, mode="before")
    @classmethod
    def _fill_defaults(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:
            return cls.model_fields[info.field_name or ""].get_default()
        if info.field_name == "registry" and isinstance(v, str):
            return {"path": v}
        if info.field_name == "online_store" and isinstance(v, dict) and "type" not in v:
            return {**v, "type": "sqlite"}
        if info.field_name == "offline_store" and isinstance(v, dict) and "type" not in v:
            return {**v, "type": "duckdb"}
        return v

    @field_validator("project")
    @classmethod
    def _check_project(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_]+", v):
            fixed = re.sub(r"[^A-Za-z0-9_]", "_", v) or "my_project"
            raise ValueError(
                f"{v!r} is not a valid project name: use only letters, digits and underscores "
                f"(it prefixes table and key names), e.g. {fixed!r}"
            )
        return v


def _interpolate(value: Any, key: str, source: str) -> Any:
    def repl(m: re.Match[str]) -> str:
        name, default = m.groups()
        found = os.environ.get(name)
        if default is not None and not found:
            return str(default)
        if found is None:
            raise ConfigError(
                f"{source}: {key}: environment variable {name!r} is not set; set it or give "
                f"a default: ${{{name}:-value}}"
            )
        return found

    if isinstance(value, str):
        return _REF.sub(repl, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{key}.{k}".lstrip("."), source) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{key}[{i}]", source) for i, v in enumerate(value)]
    return value


def _walk(loc: tuple[int | str, ...]) -> tuple[list[str], type[BaseModel] | None]:
    """The dotted key parts without the union tag, and the model that owns the last part."""
    parts = [str(p) for p in loc]
    unions = {"online_store": _ONLINE, "offline_store": _OFFLINE}
    tag = parts.pop(1) if len(parts) > 1 and parts[0] in unions else ""
    owner: type[BaseModel] | None = RepoConfig
    for part in parts[:-1]:
        t = owner.model_fields[part].annotation if owner and part in owner.model_fields else None
        subs = [a for a in (t, *get_args(t)) if isinstance(a, type) and issubclass(a, BaseModel)]
        owner = unions[part].get(tag) if part in unions else next(iter(subs), None)
    return parts, owner


def _describe(err: Any, parts: list[str], owner: type[BaseModel] | None) -> str:
    kind, value, key = err["type"], err.get("input"), parts[-1] if parts else ""
    if kind == "extra_forbidden":
        hint = suggest(key, [k for k in (owner.model_fields if owner else ()) if k != "repo_path"])
        hint = hint.strip().rstrip(".")
        return f"unknown key {key!r}" + (f"; {hint[0].lower()}{hint[1:]}" if hint else "")
    if kind == "union_tag_invalid":
        tags = ", ".join(re.findall(r"'([^']*)'", err["ctx"]["expected_tags"]))
        return f"{err['ctx']['tag']!r} is not a supported {key.replace('_', ' ')}; allowed: {tags}"
    if kind == "literal_error":
        hint = _LITERAL_HINTS.get(".".join(parts), "is not allowed")
        allowed = ", ".join(re.findall(r"'([^']*)'", err["ctx"]["expected"]))
        return f"{value!r} {hint}; allowed: {allowed}"
    if kind == "missing":
        return "required key is missing" + ("; e.g. project: my_project" * (key == "project"))
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of keys, got {type(value).__name__} {value!r}"
    if kind == "value_error":
        return str(err["ctx"]["error"])
    msg = str(err["msg"]).replace("Input should be", "should be")
    return f"{msg[:1].lower()}{msg[1:]} (got {value!r})"


def _config_error(exc: ValidationError, source: str) -> ConfigError:
    lines: dict[str, None] = {}  # ordered and without duplicates
    for err in exc.errors(include_url=False):
        parts, owner = _walk(err["loc"])
        text = _describe(err, parts, owner)
        parts += ["type"] if err["type"] == "union_tag_invalid" else []
        lines[f"{source}: {'.'.join(parts) or '(top level)'}: {text}"] = None
    return ConfigError("\n".join(lines))


def parse_config(
    data: Mapping[str, Any], *, repo_path: Path, source: str = "<config>"
) -> RepoConfig:
    """Validate a parsed ``feature_store.yaml`` mapping; ``source`` names it in errors.

    >>> parse_config({"project": "demo"}, repo_path=Path("/repo")).online_store.type
    'sqlite'
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of keys, got {type(data).__name__}")
    if "repo_path" in data:
        raise ConfigError(f"{source}: repo_path: unknown key 'repo_path'; it is set by pitstop")
    values = _interpolate(dict(data), "", source)
    try:
        return RepoConfig.model_validate({**values, "repo_path": Path(repo_path).resolve()})
    except ValidationError as exc:
        raise _config_error(exc, source) from None


def load_config(
    repo_path: str | Path | None = None, fs_yaml_file: str | Path | None = None
) -> RepoConfig:
    """Read ``<repo_path>/feature_store.yaml`` (or ``fs_yaml_file``), e.g. ``load_config("repo")``.

    ``repo_path`` defaults to ``fs_yaml_file``'s directory, else the working directory."""
    yaml_file = None if fs_yaml_file is None else Path(fs_yaml_file).expanduser().resolve()
    root = Path.cwd() if yaml_file is None else yaml_file.parent
    root = root if repo_path is None else Path(repo_path).expanduser().resolve()
    yaml_file = yaml_file or root / "feature_store.yaml"
    if not yaml_file.is_file():
        raise ConfigError(
            f"{yaml_file} {'is a directory' if yaml_file.is_dir() else 'does not exist'}: a "
            "feature repo needs one at its root. Create a repo with `pitstop init`."
        )
    try:
        data = yaml.safe_load(yaml_file.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = "; ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{yaml_file}: {where}invalid YAML: {problem}") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{yaml_file}: cannot read the file: {exc}") from exc
    if data is None:
        raise ConfigError(f"{yaml_file}: the file is empty; write at least `project: my_project`")
    return parse_config(data, repo_path=root, source=str(yaml_file))
