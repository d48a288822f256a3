"""Typed configuration from ``feature_store.yaml`` (:func:`load_config`, :func:`parse_config`).

Any problem becomes one :class:`~pitstop.errors.ConfigError` naming file, dotted key and allowed
values. Strings may use ``${NAME}`` or ``${NAME:-default}`` (default when unset or empty).
Relative paths resolve against the repo root, never the working directory.

The ``online_store`` and ``offline_store`` sections are validated in two steps: their ``type``
picks a config model from :mod:`pitstop.backends` (built-in, registered or from an entry
point), then that model validates the section. Each backend's model lives beside its code.
"""

from __future__ import annotations

import os
import re
from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from pitstop import backends
from pitstop.errors import ConfigError, suggest

if TYPE_CHECKING:
    from pitstop.offline.base import OfflineEngine
    from pitstop.online.base import OnlineStore

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SECTIONS = ("registry", "feature_server", "auth", "monitoring")
_DEFAULT_TYPE: dict[backends.Kind, str] = {"online_store": "sqlite", "offline_store": "duckdb"}
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_LITERAL_HINTS = {
    "provider": "is not supported: pitstop has only the local provider (pick backends with "
    "online_store and offline_store)",
    "auth.type": "is not supported; protect the feature server with feature_server.auth",
}


def url_scheme(text: str) -> str | None:
    """``'postgresql'`` for ``postgresql+psycopg://...`` (the driver dropped), ``None`` for a
    path."""
    m = _SCHEME.match(text)
    return m.group(1).split("+")[0].lower() if m else None


def postgres_url(text: str) -> str:
    """A ``postgres://`` or ``postgresql+driver://`` URL as a plain ``postgresql://`` one."""
    return _SCHEME.sub("postgresql://", text, count=1)


def resolve_path(path: str, repo_path: Path) -> Path:
    """The absolute path of ``path``; a relative one resolves against ``repo_path``."""
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
        v, scheme = v.strip(), url_scheme(v.strip())
        if scheme in ("postgresql", "postgres"):
            return postgres_url(v)  # drop a SQLAlchemy '+driver'
        if scheme not in (None, "sqlite"):
            raise ValueError(
                f"unsupported scheme {scheme!r}; allowed: a file path, sqlite:///, postgresql://"
            )
        if v in ("", "sqlite:///") or (scheme == "sqlite" and not v.startswith("sqlite:///")):
            raise ValueError(f"{v!r} names no file; write e.g. data/registry.db")
        return v

    @property
    def is_postgres(self) -> bool:
        return url_scheme(self.path) == "postgresql"

    def url(self, repo_path: Path) -> str:
        """``sqlite:///`` + the absolute file path, or the ``postgresql://`` URL."""
        if self.is_postgres:
            return self.path
        return f"sqlite:///{resolve_path(self.path.removeprefix('sqlite:///'), repo_path)}"


class OnlineStoreConfig(_Model):
    """Base of every online store's config model, the ``online_store`` section.

    A backend subclasses it: ``type`` narrowed to its name(s) (``type: Literal["redis"] =
    "redis"``), its own keys, and :meth:`open`. Unknown keys are errors and the model is
    frozen, like every section. :mod:`pitstop.backends` maps ``type`` names to these models.
    """

    type: str
    #: report values older than their view's TTL as ``OUTSIDE_MAX_AGE`` (the engine does it)
    enforce_ttl: bool = True

    @abstractmethod
    def open(self, project: str, repo_path: Path) -> OnlineStore:
        """The store of ``project``; relative paths resolve against ``repo_path``.

        Import the store's module and driver here, not where the model is defined: parsing
        ``feature_store.yaml`` imports the model's module."""


class OfflineStoreConfig(_Model):
    """Base of every offline engine's config model, the ``offline_store`` section (see
    :class:`OnlineStoreConfig`)."""

    type: str

    @abstractmethod
    def open(self, repo_path: Path) -> OfflineEngine:
        """The engine; relative paths resolve against ``repo_path``. Import the engine's
        module and driver here."""


class AuthConfig(_Model):
    """Feature-server authentication by API keys read from an env variable or a file."""

    type: Literal["api_key"] = "api_key"
    keys_env: str | None = None
    keys_file: str | None = None


class JwtAuthConfig(_Model):
    """Feature-server authentication by JSON Web Tokens of an OIDC issuer: the key from a PEM
    file or the issuer's JWKS URL; roles from a claim (for access policies)."""

    type: Literal["jwt"]
    issuer: str
    audience: str
    public_key_file: str | None = None
    jwks_url: str | None = None
    roles_claim: str = "roles"
    algorithms: list[str] = ["RS256"]


class FeatureServerConfig(_Model):
    auth: Annotated[AuthConfig | JwtAuthConfig, Field(discriminator="type")] | None = None
    registry_ttl_sec: int | None = Field(default=None, ge=0)

    @field_validator("auth", mode="before")
    @classmethod
    def _api_key_by_default(cls, v: Any) -> Any:
        """An auth section without a type is the API-key one (as before JWTs came)."""
        if isinstance(v, dict) and "type" not in v:
            return {**v, "type": "api_key"}
        return v


class NoAuthConfig(_Model):
    """Feast's top-level ``auth`` section, which its templates write as ``type: no_auth``."""

    type: Literal["no_auth"] = "no_auth"


class OpenLineageConfig(_Model):
    """Where OpenLineage run events go (``pitstop.catalog.runs``): the client's transport
    settings as its documentation gives them, and the namespace (default: the project)."""

    namespace: str | None = None
    transport: dict[str, Any]


class AuditConfig(_Model):
    """The audit trail records every change; ``read_sample_rate`` of catalog reads (describe,
    history, diff, search, lineage) too (0: none, 1: all)."""

    read_sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)


class ExpectationsConfig(_Model):
    """What a batch that breaks a view's expectations does, for views that do not say
    (``expectation_policy``): ``warn`` logs it and writes it, ``reject`` writes nothing."""

    policy: Literal["warn", "reject"] = "warn"


class DriftThresholds(_Model):
    """When ``pitstop monitor`` reports a breach (see :mod:`pitstop.quality.drift`)."""

    psi: float = Field(default=0.2, gt=0)
    ks_statistic: float = Field(default=0.1, gt=0, le=1)
    p_value: float = Field(default=0.01, gt=0, lt=1)
    null_rate_change: float = Field(default=0.05, gt=0, le=1)
    mismatch_rate: float = Field(default=0.0, ge=0, le=1)
    min_rows: int = Field(default=100, ge=1)


class FeatureLoggingSettings(_Model):
    """How served features are written (:mod:`pitstop.quality.feature_log`)."""

    queue_size: int = Field(default=10_000, ge=1)
    flush_rows: int = Field(default=100_000, ge=1)
    flush_seconds: float = Field(default=10.0, gt=0)
    seed: int | None = None


class MonitoringConfig(_Model):
    """The ``monitoring`` section: drift thresholds, feature logging, freshness gauges."""

    thresholds: DriftThresholds = DriftThresholds()
    logging: FeatureLoggingSettings = FeatureLoggingSettings()
    bins: int = Field(default=10, ge=2, le=100)
    freshness_cache_seconds: float = Field(default=15.0, ge=0)


class RepoConfig(_Model):
    """The whole ``feature_store.yaml``; ``repo_path`` is set by the loader, not the file."""

    project: str
    registry: RegistryConfig = RegistryConfig()
    provider: Literal["local"] = "local"
    online_store: SerializeAsAny[OnlineStoreConfig] = Field(
        default_factory=lambda: _backend_config("online_store", {})
    )
    offline_store: SerializeAsAny[OfflineStoreConfig] = Field(
        default_factory=lambda: _backend_config("offline_store", {})
    )
    entity_key_serialization_version: int = Field(default=3, ge=1, le=3)
    feature_server: FeatureServerConfig = FeatureServerConfig()
    auth: NoAuthConfig = NoAuthConfig()
    lineage: OpenLineageConfig | None = None
    audit: AuditConfig = AuditConfig()
    expectations: ExpectationsConfig = ExpectationsConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    repo_path: Path

    @field_validator(*_SECTIONS, mode="before")
    @classmethod
    def _fill_defaults(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:
            return cls.model_fields[info.field_name or ""].get_default()
        if info.field_name == "registry" and isinstance(v, str):
            return {"path": v}
        return v

    @field_validator(*_DEFAULT_TYPE, mode="before")
    @classmethod
    def _pick_backend(cls, v: Any, info: ValidationInfo) -> Any:
        """A mapping becomes the config model its ``type`` names (default: sqlite, duckdb)."""
        if v is None:
            v = {}
        if not isinstance(v, Mapping):
            return v  # a model already, or the wrong type that validation reports
        try:
            return _backend_config(info.field_name, v)  # type: ignore[arg-type]
        except ConfigError as exc:  # the type: reported at <section>.type
            raise PydanticCustomError("backend_type", "{detail}", {"detail": str(exc)}) from None

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


def _backend_config(kind: backends.Kind, section: Mapping[str, Any]) -> Any:
    name = section.get("type", _DEFAULT_TYPE[kind])
    return backends.config_model(kind, name).model_validate({**section, "type": name})


def _section_model(kind: backends.Kind, section: Any) -> type[BaseModel] | None:
    name = section.get("type", _DEFAULT_TYPE[kind]) if isinstance(section, Mapping) else None
    try:
        return backends.config_model(kind, name or _DEFAULT_TYPE[kind])
    except ConfigError:
        return None


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


def _walk(
    loc: tuple[int | str, ...], values: Mapping[str, Any]
) -> tuple[list[str], type[BaseModel] | None]:
    """The dotted key parts, and the model that owns the last part."""
    parts = [str(p) for p in loc]
    auth = parts.pop(2) if parts[:2] == ["feature_server", "auth"] and len(parts) > 2 else ""
    owner: type[BaseModel] | None = RepoConfig
    for depth, part in enumerate(parts[:-1]):
        if depth == 0 and part in _DEFAULT_TYPE:
            owner = _section_model(part, values.get(part))
            continue
        t = owner.model_fields[part].annotation if owner and part in owner.model_fields else None
        subs = [a for a in (t, *get_args(t)) if isinstance(a, type) and issubclass(a, BaseModel)]
        owner = next(iter(subs), None)
        if part == "auth" and auth:
            owner = JwtAuthConfig if auth == "jwt" else AuthConfig
    return parts, owner


def _describe(err: Any, parts: list[str], owner: type[BaseModel] | None) -> str:
    kind, value, key = err["type"], err.get("input"), parts[-1] if parts else ""
    if kind == "extra_forbidden":
        hint = suggest(key, [k for k in (owner.model_fields if owner else ()) if k != "repo_path"])
        hint = hint.strip().rstrip(".")
        return f"unknown key {key!r}" + (f"; {hint[0].lower()}{hint[1:]}" if hint else "")
    if kind == "backend_type":
        return str(err["ctx"]["detail"])
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


def _config_error(exc: ValidationError, source: str, values: Mapping[str, Any]) -> ConfigError:
    lines: dict[str, None] = {}  # ordered and without duplicates
    for err in exc.errors(include_url=False):
        parts, owner = _walk(err["loc"], values)
        text = _describe(err, parts, owner)
        parts += ["type"] if err["type"] == "backend_type" else []
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
        raise _config_error(exc, source, values) from None


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
