"""The Redis online store (also Redis Cluster), for production serving.

**Key layout** (ready for Redis Cluster). One Redis hash per (project, entity key)::

    key   = <key_prefix><project>:{<entity key bytes>}
    field = <view name> (UTF-8)
    value = <event_ts: 8 bytes> <created_ts: 8 bytes> <encoded value>

Timestamps are signed 64-bit big-endian integers of microseconds since the epoch; the encoded
value is :mod:`pitstop.online.encoding`'s. The braces make the entity key the key's hash tag:
its cluster slot depends on the entity alone, and everything kept for one entity (all its
views, in one hash) lives in one slot. (A ``}`` inside the binary entity key ends the tag
early; the tag is still a function of the entity alone.) The raw bytes keep keys short, which
saves Redis about 15% of its work on bulk loads compared with hex. A ``key_prefix`` must
therefore contain no ``{``. ``key_ttl_seconds`` sets an ``EXPIRE`` on
the whole hash each time one of its fields is written.

**Reads** send one ``HMGET key view...`` per distinct entity key of the request in one pipeline:
one round trip for N views x M entities.

**Writes** run a Lua script (``EVALSHA``; loaded on the first ``NOSCRIPT``) taking up to
``_KEYS_PER_CALL`` keys per call: for each key it reads the stored field, compares
``(event_ts, created_ts)`` numerically and writes only if the new row is not older (equal: last
write wins). Calls are pipelined, ``_ROWS_PER_TRIP`` rows per round trip. Lua numbers are
doubles, exact for microsecond timestamps until the year 2255. In cluster mode the rows are
grouped by slot first, since one script call must touch keys of one slot.

**Modify** is an optimistic transaction: ``WATCH`` the keys' hashes, read their view fields
(``HMGET``, pipelined on another connection of the pool: any write after the ``WATCH`` aborts
the ``EXEC`` anyway), call ``change``, then ``MULTI`` / ``HSET`` (the layout above; ``EXPIRE``
like a write) / ``EXEC``: three round trips for all keys of the call. If another client wrote
one of the hashes meanwhile (any view of the entity: the watch covers the whole hash), ``EXEC``
fails, and after a short random pause ``change`` is called again with the fresh rows, up to
``_MODIFY_ATTEMPTS`` times; then a :class:`~pitstop.errors.PitstopError` says so.

``WATCH`` costs the server time quadratic in its number of keys (Redis 7.0: 16,000 keys block
it for almost a second), so a call of more than ``_WATCH_KEYS`` keys checks instead: after the
read and ``change``, one script compares every key's field with what was read and writes only
if none differs (else: a conflict, as above). Equal bytes are equal rows, so a value changed
and changed back meanwhile does no harm.

In cluster mode a transaction or script may only touch one slot, and an entity's slot depends
on its key, so modify always checks with the script, one call per slot (pipelined): atomic per
slot, not across slots. ``change`` still gets all keys; after a conflict it is called again
with the fresh rows of all keys, but only the slots whose check failed are written.

**Drop/teardown** ``SCAN`` the project's keys (``MATCH <prefix><project>:*``) and ``HDEL`` the
views' fields (Redis deletes a hash when its last field goes) or, for teardown, ``UNLINK``
the keys. Never ``FLUSHDB``.

Redis Cluster (``redis_type: redis_cluster``) uses ``redis.cluster.RedisCluster``; the test
machine has only a single-node server, so cluster mode is tested by hand, not in CI.
"""

from __future__ import annotations

import hashlib
import random
import re
import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from pitstop.config import RedisAddress, RedisOnlineConfig
from pitstop.errors import BackendUnavailableError, ConfigError, PitstopError, require
from pitstop.online.base import Capabilities, Change, ReadRow, StoredRow, rows_to_write

_HEAD = struct.Struct(">qq")
_EVENT_TS = struct.Struct(">q")
_KEYS_PER_CALL = 500  # keys per script call: bounds how long one call blocks the server
_ROWS_PER_TRIP = 10_000  # rows per pipeline round trip
_SCAN_COUNT = 1000
_WATCH_KEYS = 500  # at most this many keys per WATCH (the server's cost grows as its square)
_MODIFY_ATTEMPTS = 100  # optimistic transactions per modify (and slot) before giving up
_MODIFY_PAUSE = 0.02  # longest random pause (seconds) after a conflict
_GLOB = re.compile(rb"([*?\[\]\\])")
_WRITE_SCRIPT = b"""
local field, ttl = ARGV[1], tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local new = ARGV[i + 2]
  local put = redis.call('HSETNX', key, field, new) == 1
  if not put then
    local old_event, old_created = struct.unpack('>i8i8', redis.call('HGET', key, field))
    local new_event, new_created = struct.unpack('>i8i8', new)
    if new_event > old_event or (new_event == old_event and new_created >= old_created) then
      redis.call('HSET', key, field, new)
      put = true
    end
  end
  if put and ttl > 0 then redis.call('EXPIRE', key, ttl) end
end
return #KEYS
"""
_WRITE_SHA = hashlib.sha1(_WRITE_SCRIPT).hexdigest()
_MODIFY_SCRIPT = b"""
local field, ttl, n = ARGV[1], tonumber(ARGV[2]), #KEYS
for i, key in ipairs(KEYS) do
  if (redis.call('HGET', key, field) or '') ~= ARGV[2 + i] then return 0 end
end
for i, key in ipairs(KEYS) do
  local new = ARGV[2 + n + i]
  if new ~= '' then
    redis.call('HSET', key, field, new)
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
  end
end
return 1
"""
_MODIFY_SHA = hashlib.sha1(_MODIFY_SCRIPT).hexdigest()
# Reads one field of many hashes in one command (a pipeline of HMGETs costs a reply per key).
_FIELDS_SCRIPT = b"""
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGET', key, ARGV[1]) end
return out
"""
_FIELDS_SHA = hashlib.sha1(_FIELDS_SCRIPT).hexdigest()


class _Call(NamedTuple):
    """One call of the write script: entity hash keys, packed rows, routing options."""

    keys: list[bytes]
    values: list[bytes]
    options: dict[str, Any]


class RedisOnlineStore:
    """Latest rows in Redis hashes (``online_store: {type: redis, connection_string: ...}``)."""

    capabilities = Capabilities(shared=True, max_write_batch=_ROWS_PER_TRIP)

    def __init__(self, config: RedisOnlineConfig, project: str, repo_path: Path) -> None:
        self.config = config
        self.project = project
        address = config.address()
        self._where = f"{address.host}:{address.port}"
        self._prefix = f"{config.key_prefix}{project}:".encode()
        self._ttl = config.key_ttl_seconds or 0
        self._redis: Any = require("redis", "redis")
        self._cluster = config.redis_type == "redis_cluster"
        if self._cluster and "{" in config.key_prefix:
            raise ConfigError(
                f"online_store.key_prefix: {config.key_prefix!r} contains '{{', which would make "
                "it the cluster hash tag of every key; remove the brace"
            )
        try:
            self._client: Any = self._connect(address)
        except self._errors() as exc:
            self._unavailable(exc)

    def _connect(self, address: RedisAddress) -> Any:
        from redis.backoff import ExponentialWithJitterBackoff
        from redis.retry import Retry

        options: dict[str, Any] = {
            "password": address.password,
            "username": address.username,
            "ssl": address.ssl,
            "socket_connect_timeout": 5.0,
            "socket_timeout": 60.0,
            "socket_keepalive": True,
        }
        if self._cluster:
            from redis.cluster import ClusterNode, RedisCluster

            nodes = [ClusterNode(host, port) for host, port in address.nodes]
            return RedisCluster(startup_nodes=nodes, **options)
        # A few quick retries: ride out a reconnect, yet report a dead server within a second.
        retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=3)
        return self._redis.Redis(
            host=address.host, port=address.port, db=address.db, retry=retry, **options
        )

    def _errors(self) -> tuple[type[Exception], ...]:
        exceptions = self._redis.exceptions
        return (
            exceptions.ConnectionError,
            exceptions.TimeoutError,
            exceptions.RedisClusterException,
            exceptions.ClusterDownError,
        )

    def _unavailable(self, exc: Exception) -> NoReturn:
        what = "Redis Cluster" if self._cluster else "Redis"
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, self._redis.exceptions.AuthenticationError):
            check = "the username and password in online_store.connection_string"
        else:
            check = "that the server runs and online_store.connection_string in feature_store.yaml"
        raise BackendUnavailableError(
            f"{what} at {self._where} is not available ({detail}); check {check}"
        ) from None

    def _key(self, entity_key: bytes) -> bytes:
        return self._prefix + b"{" + entity_key + b"}"

    def close(self) -> None:
        self._client.close()

    # -- data --------------------------------------------------------------------------------

    def read(self, requests: Sequence[tuple[str, Sequence[bytes]]]) -> list[list[ReadRow | None]]:
        wanted: dict[bytes, dict[str, None]] = {}
        for view, keys in requests:
            for key in keys:
                wanted.setdefault(key, {})[view] = None
        try:
            if len(wanted) == 1:  # one entity: one command, no pipeline
                [(key, views)] = wanted.items()
                replies = [self._client.execute_command("HMGET", self._key(key), *views)]
            else:
                pipe = self._client.pipeline(transaction=False)
                for key, views in wanted.items():
                    pipe.execute_command("HMGET", self._key(key), *views)
                replies = pipe.execute()
        except self._errors() as exc:
            self._unavailable(exc)
        found = {
            key: dict(zip(views, reply, strict=True))
            for (key, views), reply in zip(wanted.items(), replies, strict=True)
        }
        unpack = _EVENT_TS.unpack_from
        return [
            [
                None if raw is None else ReadRow(unpack(raw)[0], raw[16:])
                for raw in (found[key][view] for key in keys)
            ]
            for view, keys in requests
        ]

    def write(self, view: str, rows: Sequence[StoredRow]) -> None:
        if not rows:
            return
        field = view.encode()
        trip: list[_Call] = []
        size = 0
        try:
            for call in self._calls(rows):
                trip.append(call)
                size += len(call.keys)
                if size >= _ROWS_PER_TRIP:
                    self._run(field, trip)
                    trip, size = [], 0
            if trip:
                self._run(field, trip)
        except self._errors() as exc:
            self._unavailable(exc)

    def _calls(self, rows: Sequence[StoredRow]) -> Iterator[_Call]:
        """The script calls for ``rows``, in row order (per slot, for a cluster)."""
        pack, key = _HEAD.pack, self._key
        groups: list[tuple[Sequence[StoredRow], dict[str, Any]]] = [(rows, {})]
        if self._cluster:  # one call may touch one slot only
            from redis.crc import key_slot

            by_slot: dict[int, list[StoredRow]] = {}
            for row in rows:
                by_slot.setdefault(key_slot(key(row.entity_key)), []).append(row)
            # Naming the node spares redis-py a COMMAND GETKEYS round trip per call.
            node = self._client.get_node_from_key
            groups = [(g, {"target_nodes": node(key(g[0].entity_key))}) for g in by_slot.values()]
        for group, options in groups:
            for start in range(0, len(group), _KEYS_PER_CALL):
                chunk = group[start : start + _KEYS_PER_CALL]
                yield _Call(
                    [key(row.entity_key) for row in chunk],
                    [pack(row.event_ts, row.created_ts) + row.value for row in chunk],
                    options,
                )

    def _run(self, field: bytes, calls: Sequence[_Call]) -> None:
        """Run script calls in one pipeline; load the script if the server lacks it."""
        for attempt in (1, 2):
            pipe = self._client.pipeline(transaction=False)
            for keys, values, options in calls:
                args = (len(keys), *keys, field, self._ttl, *values)
                pipe.execute_command("EVALSHA", _WRITE_SHA, *args, **options)
            try:
                pipe.execute()
                return
            except self._redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                # Re-running the calls is harmless: applying a row twice changes nothing.
                self._client.script_load(_WRITE_SCRIPT)

    def modify(self, view: str, keys: Sequence[bytes], change: Change) -> None:
        if not keys:
            return
        field = view.encode()
        names = [self._key(entity_key) for entity_key in keys]
        distinct = list(dict.fromkeys(names))
        watch = not self._cluster and len(distinct) <= _WATCH_KEYS
        pending = self._slots(distinct) if self._cluster else [distinct]
        try:
            for n in range(_MODIFY_ATTEMPTS):
                if n:  # let the writer that won finish; jitter spreads the contenders
                    time.sleep(random.uniform(0, min(_MODIFY_PAUSE, 0.0005 * 2**n)))
                if watch:
                    if self._watched(field, keys, names, distinct, change):
                        return
                    continue
                stored = self._fields(field, distinct)
                new = self._changed(keys, names, stored, change)
                pending = self._check_and_set(field, pending, stored, new)
                if not pending:
                    return
        except self._errors() as exc:
            self._unavailable(exc)
        partly = self._cluster and len(pending) < len(self._slots(distinct))
        raise PitstopError(
            f"modify of view {view!r}: other clients changed its {len(distinct)} entity key(s) "
            f"during each of {_MODIFY_ATTEMPTS} attempts; gave up. Too many writers contend "
            "for these keys in Redis"
            + (" (the keys of its other cluster slots were written)" if partly else "")
        )

    def _slots(self, names: list[bytes]) -> list[list[bytes]]:
        """``names`` grouped by cluster slot."""
        from redis.crc import key_slot

        by_slot: dict[int, list[bytes]] = {}
        for name in names:
            by_slot.setdefault(key_slot(name), []).append(name)
        return list(by_slot.values())

    def _watched(
        self,
        field: bytes,
        keys: Sequence[bytes],
        names: list[bytes],
        distinct: list[bytes],
        change: Change,
    ) -> bool:
        """``WATCH``, read, change, ``MULTI``/``EXEC``: False if another client interfered."""
        with self._client.pipeline(transaction=True) as pipe:
            pipe.watch(*distinct)
            stored = self._fields(field, distinct)
            new = self._changed(keys, names, stored, change)
            if not new:
                return True
            pipe.multi()
            for name, packed in new.items():
                pipe.execute_command("HSET", name, field, packed)
                if self._ttl > 0:
                    pipe.execute_command("EXPIRE", name, self._ttl)
            try:
                pipe.execute()
            except self._redis.exceptions.WatchError:
                return False
            return True

    def _check_and_set(
        self,
        field: bytes,
        groups: list[list[bytes]],
        stored: dict[bytes, bytes | None],
        new: dict[bytes, bytes],
    ) -> list[list[bytes]]:
        """Per group of hashes (one slot each), one script call that writes ``new`` only if
        every field is still as ``stored``, pipelined; the groups whose check failed."""
        todo = [group for group in groups if any(name in new for name in group)]
        failed: list[list[bytes]] = []
        for attempt in (1, 2):
            pipe = self._client.pipeline(transaction=False)
            for group in todo:
                old = [stored[name] or b"" for name in group]  # b"": absent (rows have 16+ bytes)
                args = [field, self._ttl, *old, *(new.get(name, b"") for name in group)]
                pipe.execute_command("EVALSHA", _MODIFY_SHA, len(group), *group, *args)
            unknown: list[list[bytes]] = []
            for group, reply in zip(todo, pipe.execute(raise_on_error=False), strict=True):
                if isinstance(reply, self._redis.exceptions.NoScriptError) and attempt == 1:
                    unknown.append(group)  # not run: run again once the script is loaded
                elif isinstance(reply, Exception):
                    raise reply
                elif not reply:
                    failed.append(group)
            if not unknown:
                break
            self._client.script_load(_MODIFY_SCRIPT)
            todo = unknown
        return failed

    def _fields(self, field: bytes, names: list[bytes]) -> dict[bytes, bytes | None]:
        """The stored ``field`` of hashes ``names``, in one round trip."""
        if not self._cluster and len(names) > 16:  # one script call (keys may span slots: no)
            command = ("EVALSHA", _FIELDS_SHA, len(names), *names, field)
            try:
                replies = self._client.execute_command(*command)
            except self._redis.exceptions.NoScriptError:
                self._client.script_load(_FIELDS_SCRIPT)
                replies = self._client.execute_command(*command)
            return {n: r or None for n, r in zip(names, replies, strict=True)}
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            pipe.execute_command("HMGET", name, field)
        return {name: reply[0] for name, reply in zip(names, pipe.execute(), strict=True)}

    def _changed(
        self,
        keys: Sequence[bytes],
        names: list[bytes],
        stored: dict[bytes, bytes | None],
        change: Change,
    ) -> dict[bytes, bytes]:
        """Call ``change`` on the stored rows: the packed rows to write, by hash (a key listed
        twice ends with its last row)."""
        unpack, pack = _EVENT_TS.unpack_from, _HEAD.pack
        current = [
            None if raw is None else ReadRow(unpack(raw)[0], raw[16:])
            for raw in (stored[name] for name in names)
        ]
        rows = rows_to_write(keys, change(current))
        return {
            self._key(row.entity_key): pack(row.event_ts, row.created_ts) + row.value
            for row in rows
        }

    # -- schema ------------------------------------------------------------------------------

    def update(self, keep: Sequence[str], drop: Sequence[str]) -> None:
        if keep:  # nothing to create (hashes appear on first write), but the server must answer
            try:
                self._client.ping()
            except self._errors() as exc:
                self._unavailable(exc)
        if drop:
            fields = [view.encode() for view in drop]
            self._each_key(lambda pipe, key: pipe.hdel(key, *fields))

    def teardown(self, views: Sequence[str]) -> None:
        self._each_key(lambda pipe, key: pipe.unlink(key))

    def _each_key(self, command: Any) -> None:
        """Apply ``command(pipe, key)`` to every key of this project, pipelined."""
        pattern = _GLOB.sub(rb"\\\1", self._prefix) + b"*"
        try:
            pipe = self._client.pipeline(transaction=False)
            for n, key in enumerate(self._client.scan_iter(match=pattern, count=_SCAN_COUNT), 1):
                command(pipe, key)
                if n % _SCAN_COUNT == 0:
                    pipe.execute()
            pipe.execute()
        except self._errors() as exc:
            self._unavailable(exc)
