"""API-key authentication of the feature server (``feature_server.auth`` in feature_store.yaml).

::

    feature_server:
      auth:
        type: api_key
        keys_env: PITSTOP_API_KEYS      # keys in this environment variable, and/or
        keys_file: secrets/api_keys     # keys in this file (relative to the repo)

**Key format** (the file and the variable alike): one key per line (in the variable, keys may
also be separated by commas or spaces), each ``key`` or ``key:rw`` or ``key:ro``. ``rw`` keys
may call everything; ``ro`` keys — and keys without a suffix — may only read
(``/get-online-features``, ``/metrics``). Blank lines and lines starting with ``#`` are ignored.
A key is any run of visible characters without whitespace; only a final ``:rw`` or ``:ro`` is
read as the role, so a key may itself contain ``:``.

Clients send ``Authorization: Bearer <key>``. No key or an unknown key: 401. A read-only key
calling ``/push``, ``/write-to-online-store`` or ``/materialize*``: 403. ``/health``,
``/openapi.json`` and ``/docs`` stay open. Keys are kept only as SHA-256 digests and are
never logged.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any

from pitstop.config import AuthConfig, JwtAuthConfig
from pitstop.errors import ConfigError, require
from pitstop.registry.audit import Actor
from pitstop.server.errors import HTTPError

READ = "ro"
WRITE = "rw"
_SPLIT = re.compile(r"[\s,]+")
_CHALLENGE = [(b"www-authenticate", b'Bearer realm="pitstop"')]


def parse_keys(text: str, where: str) -> dict[bytes, str]:
    """``{sha256(key): role}`` of the keys in ``text`` (file or variable contents)."""
    keys: dict[bytes, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for item in _SPLIT.split(line):
            if not item:
                continue
            key, sep, role = item.rpartition(":")
            if not sep or role not in (READ, WRITE):
                key, role = item, READ
            if not key:
                raise ConfigError(f"{where}: an entry has a role but no key; write key:rw")
            digest = hashlib.sha256(key.encode()).digest()
            keys[digest] = WRITE if keys.get(digest) == WRITE else role
    return keys


class ApiKeys:
    """The accepted keys and their roles; :meth:`check` authorizes one request."""

    def __init__(self, keys: dict[bytes, str]) -> None:
        self._keys = keys

    @classmethod
    def load(cls, config: AuthConfig, repo_path: Path) -> ApiKeys:
        """Read the keys ``config`` names; an auth section that yields no key is an error."""
        where = "feature_store.yaml: feature_server.auth"
        if not config.keys_env and not config.keys_file:
            raise ConfigError(f"{where}: name keys_env or keys_file (or remove the auth section)")
        keys: dict[bytes, str] = {}
        if config.keys_env:
            value = os.environ.get(config.keys_env)
            if value is None:
                raise ConfigError(
                    f"{where}.keys_env: environment variable {config.keys_env!r} is not set"
                )
            keys.update(parse_keys(value, f"${config.keys_env}"))
        if config.keys_file:
            path = (repo_path / Path(config.keys_file).expanduser()).resolve()
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{where}.keys_file: cannot read {path}: {exc}") from None
            for digest, role in parse_keys(text, str(path)).items():
                keys[digest] = WRITE if keys.get(digest) == WRITE else role
        if not keys:
            raise ConfigError(f"{where}: no API key found; every request would be refused")
        return cls(keys)

    @staticmethod
    def principal(authorization: bytes | None) -> str:
        """Who a request says it is, for the audit trail: ``api-key:<12 hex digits of the key's
        sha256>`` (never the key), or ``anonymous``."""
        scheme, _, key = (authorization or b"").partition(b" ")
        if scheme.lower() != b"bearer" or not key.strip():
            return "anonymous"
        return "api-key:" + hashlib.sha256(key.strip()).hexdigest()[:12]

    def actor(self, authorization: bytes | None, origin: str) -> Actor:
        """Who sends the request: ``api-key:<hex>`` (:meth:`principal`)."""
        return Actor(self.principal(authorization), origin)

    def check(self, authorization: bytes | None, write: bool) -> None:
        """Raise a 401 or 403 :class:`HTTPError` unless the header grants the access."""
        if not authorization:
            raise HTTPError(401, "Unauthorized", "send Authorization: Bearer <key>", _CHALLENGE)
        scheme, _, key = authorization.partition(b" ")
        role = self._keys.get(hashlib.sha256(key.strip()).digest())
        if scheme.lower() != b"bearer" or role is None:
            raise HTTPError(401, "Unauthorized", "invalid API key", _CHALLENGE)
        if write and role != WRITE:
            raise HTTPError(403, "Forbidden", "this API key is read-only; this call needs a key "
                            "with the rw role (key:rw in the key file)")  # fmt: skip


class JwtAuth:
    """Bearer tokens signed by an OIDC issuer, checked with PyJWT (``pip install
    'pitstop[jwt]'``): signature, issuer, audience and expiry. The principal is
    ``jwt:<sub>``; the roles claim gives roles the access policies know. Which calls a
    token may make is the access policies' decision, not the server's."""

    def __init__(self, config: JwtAuthConfig, key: Any) -> None:
        self.config = config
        self._key = key
        self._jwt: Any = require("jwt", "jwt")
        self._verified: dict[bytes, tuple[float, str, tuple[str, ...]]] = {}  # token -> exp, ...

    @classmethod
    def load(cls, config: JwtAuthConfig, repo_path: Path) -> JwtAuth:
        where = "feature_store.yaml: feature_server.auth"
        jwt: Any = require("jwt", "jwt")
        if config.public_key_file:
            path = (repo_path / Path(config.public_key_file).expanduser()).resolve()
            try:
                return cls(config, path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{where}.public_key_file: cannot read {path}: {exc}") from None
        if config.jwks_url:
            return cls(config, jwt.PyJWKClient(config.jwks_url))
        raise ConfigError(f"{where}: give public_key_file (PEM) or jwks_url (the issuer's keys)")

    def _claims(self, token: bytes) -> dict[str, Any]:
        key = self._key
        if not isinstance(key, str):
            key = key.get_signing_key_from_jwt(token.decode()).key
        claims: dict[str, Any] = self._jwt.decode(
            token, key, algorithms=self.config.algorithms, audience=self.config.audience,
            issuer=self.config.issuer, options={"require": ["exp", "iss", "aud", "sub"]},
        )  # fmt: skip
        return claims

    def actor(self, authorization: bytes | None, origin: str) -> Actor:
        """The verified caller; a missing or invalid token is a 401."""
        scheme, _, token = (authorization or b"").partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            raise HTTPError(401, "Unauthorized", "send Authorization: Bearer <token>", _CHALLENGE)
        token = token.strip()
        known = self._verified.get(token)
        if known is not None and known[0] > time.time():  # verified before, not expired
            return Actor(known[1], origin, known[2])
        try:
            claims = self._claims(token)
        except Exception as exc:  # PyJWT's errors, and the JWKS fetch's
            raise HTTPError(401, "Unauthorized", f"invalid token: {exc}", _CHALLENGE) from None
        roles = claims.get(self.config.roles_claim) or []
        if isinstance(roles, str):
            roles = roles.split()
        who, held = f"jwt:{claims['sub']}", tuple(str(r) for r in roles)
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[token] = (float(claims["exp"]), who, held)
        return Actor(who, origin, held)

    def check(self, authorization: bytes | None, write: bool) -> None:
        """Tokens are checked by :meth:`actor`; what they may do, by the access policies."""
