"""The Redis online store's config model and connection string parser.

Kept apart from the large :mod:`pitstop.online.redis`, so that parsing ``feature_store.yaml``
loads only this; :meth:`RedisOnlineConfig.open` imports the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import Field, ValidationInfo, field_validator

from pitstop.config import OnlineStoreConfig, url_scheme

if TYPE_CHECKING:
    from pitstop.online.redis import RedisOnlineStore

_OPTIONS = ("db", "password", "username", "ssl")
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


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


def parse_address(text: str) -> RedisAddress:
    """Parse Feast's ``host:port[,db=N][,password=..]...`` form or a redis(s):// URL."""
    nodes: list[tuple[str, int]] = []
    opts: dict[str, str] = {}
    if is_url := url_scheme(text.strip()) is not None:
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
    if unknown := [k for k in opts if k not in _OPTIONS]:
        names = ", ".join(repr(k) for k in unknown)
        raise ValueError(f"unknown option {names}; allowed options: {', '.join(_OPTIONS)}")
    if not (db := opts.get("db", "0")).isdigit():
        raise ValueError(f"db {db!r} is not a non-negative integer")
    if (ssl := _BOOLS.get(opts.get("ssl", "false").lower())) is None:
        raise ValueError(f"ssl {opts['ssl']!r} is not a boolean; allowed: true, false")
    host, port = nodes[0]
    password, username = opts.get("password") or None, opts.get("username") or None
    return RedisAddress(host, port, int(db), password, username, ssl, tuple(nodes))


class RedisOnlineConfig(OnlineStoreConfig):
    """Redis or Redis Cluster. ``connection_string`` is Feast's ``host:port[,db=N][,password=..]
    [,username=..][,ssl=true]`` (several ``host:port`` for a cluster) or a redis(s):// URL."""

    type: Literal["redis"] = "redis"
    redis_type: Literal["redis", "redis_cluster"] = "redis"
    connection_string: str = Field(default="localhost:6379", repr=False)
    key_prefix: str = ""
    key_ttl_seconds: int | None = Field(default=None, ge=1)

    @field_validator("connection_string")
    @classmethod
    def _check_connection_string(cls, v: str, info: ValidationInfo) -> str:
        address = parse_address(v)
        if info.data.get("redis_type") == "redis" and len(address.nodes) > 1:
            raise ValueError("several hosts need redis_type: redis_cluster")
        if info.data.get("redis_type") == "redis_cluster" and address.db != 0:
            raise ValueError(f"Redis Cluster has only db 0, not db {address.db}")
        return v

    def address(self) -> RedisAddress:
        return parse_address(self.connection_string)

    def open(self, project: str, repo_path: Path) -> RedisOnlineStore:
        from pitstop.online.redis import RedisOnlineStore

        return RedisOnlineStore(self, project, Path(repo_path))
