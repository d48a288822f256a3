"""The Redis online store (also Redis Cluster), for production serving.

**Key layout** (ready for Redis Cluster). One Redis string per (project, view, entity key)::

    key   = <key_prefix><project>:<view>:{<entity key bytes>}
    value = <event_ts: 8 bytes> <created_ts: 8 bytes> <encoded value>

Timestamps are signed 64-bit big-endian integers of microseconds since the epoch; the encoded
value is :mod:`pitstop.online.encoding`'s. The braces make the entity key the key's hash tag:
its cluster slot depends on the entity alone, so all views of one entity live in one slot. (A
``}`` inside the binary entity key ends the tag early; the tag is still a function of the
entity alone.) The raw bytes keep keys short. Neither ``key_prefix`` nor a view name may
therefore contain a brace. ``key_ttl_seconds`` sets an expiry on each key when it is written.

Strings rather than one hash per entity: a script can read and write many of them with one
``MGET`` and one ``MSET``, which halves Redis's own work on bulk loads, and a request of any
number of views and entities is one ``MGET``.

**Reads** send one ``MGET`` of every (view, entity) key of the request: one command, one round
trip. In cluster mode, one ``MGET`` per slot, pipelined. Outside cluster mode, reads and writes
run on a connection of each thread's own (made with the client pool's settings), which spares
every call the pool's checkout; a dropped connection is made again once.

**Writes** run a Lua script (``EVALSHA``; loaded on the first ``NOSCRIPT``) taking up to
``_KEYS_PER_CALL`` keys per call: it reads the stored rows with one ``MGET``, compares
``(event_ts, created_ts)`` numerically, and writes with one ``MSET`` only the rows that are not
older (equal: last write wins; a key given twice in one call ends with its newest row). Calls
are pipelined, ``_ROWS_PER_TRIP`` rows per round trip, and the next trip is sent before the
replies of the last one are read, so the client packs while the server works. Lua numbers are
doubles, exact for microsecond timestamps until the year 2255. In cluster mode the rows are
grouped by slot first, since one script call must touch keys of one slot.

**Modify** is an optimistic transaction: ``WATCH`` the keys, read them (``MGET`` on another
connection: any write after the ``WATCH`` aborts the ``EXEC`` anyway), call
``change``, then ``MULTI`` / ``SET`` / ``EXEC``: three round trips for all keys of the call.
If another client wrote one of the keys meanwhile, ``EXEC`` fails, and after a short random
pause ``change`` is called again with the fresh rows, up to ``_MODIFY_ATTEMPTS`` times; then a
:class:`~pitstop.errors.PitstopError` says so.

``WATCH`` costs the server time quadratic in its number of keys (Redis 7.0: 16,000 keys block
it for almost a second), so a call of more than ``_WATCH_KEYS`` keys checks instead: after the
read and ``change``, one script compares every key with what was read and writes only if none
differs (else: a conflict, as above). Equal bytes are equal rows, so a value changed and
changed back meanwhile does no harm.

In cluster mode a transaction or script may only touch one slot, and an entity's slot depends
on its key, so modify always checks with the script, one call per slot (pipelined): atomic per
slot, not across slots. ``change`` still gets all keys; after a conflict it is called again
with the fresh rows of all keys, but only the slots whose check failed are written.

**Drop/teardown** ``SCAN`` the keys of the dropped views (``MATCH <prefix><project>:<view>:{*``)
or of the whole project (``MATCH <prefix><project>:*``) and ``UNLINK`` them. Never
``FLUSHDB``.

Redis Cluster (``redis_type: redis_cluster``) uses ``redis.cluster.RedisCluster``; the
conformance tests run against a three-node cluster as well as a single server.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import struct
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, islice
from pathlib import Path
from typing import Any, NoReturn

from pitstop.errors import (
    BackendUnavailableError,
    ConfigError,
    DefinitionError,
    PitstopError,
    require,
)
from pitstop.online.base import Capabilities, Change, ReadRow, StoredRow, rows_to_write
from pitstop.online.redis_config import RedisAddress, RedisOnlineConfig

_HEAD = struct.Struct(">qq")
_EVENT_TS = struct.Struct(">q")
_KEYS_PER_CALL = 500  # keys per script call: bounds how long one call blocks the server
_ROWS_PER_TRIP = 10_000  # rows per pipeline round trip
_ROWS_PER_WRITE = 100_000  # rows the engine should hand one write (several trips in flight)
_SCAN_COUNT = 1000
_WATCH_KEYS = 500  # at most this many keys per WATCH (the server's cost grows as its square)
_MODIFY_ATTEMPTS = 100  # optimistic transactions per modify (and slot) before giving up
_MODIFY_PAUSE = 0.02  # longest random pause (seconds) after a conflict
_GLOB = re.compile(rb"([*?\[\]\\])")
# ARGV: ttl, then one packed row per key. Rows of a key given twice are compared in order.
_WRITE_SCRIPT = b"""
local ttl, n = tonumber(ARGV[1]), #KEYS
local olds = redis.call('MGET', unpack(KEYS))
local best, order = {}, {}
for i = 1, n do
  local key, new = KEYS[i], ARGV[i + 1]
  local old = best[key] or olds[i]
  local put = not old
  if not put then
    local old_event, old_created = struct.unpack('>i8i8', old)
    local new_event, new_created = struct.unpack('>i8i8', new)
    put = new_event > old_event or (new_event == old_event and new_created >= old_created)
  end
  if put then
    if not best[key] then order[#order + 1] = key end
    best[key] = new
  end
end
if ttl > 0 then
  for _, key in ipairs(order) do redis.call('SET', key, best[key], 'EX', ttl) end
elseif #order > 0 then
  local args = {}
  for i, key in ipairs(order) do args[2 * i - 1] = key; args[2 * i] = best[key] end
  redis.call('MSET', unpack(args))
end
return n
"""
_WRITE_SHA = hashlib.sha1(_WRITE_SCRIPT).hexdigest()
# ARGV: ttl, the row read of every key ('' if absent), the row to write ('' to leave it).
# MGET in slices: unpack() takes a few thousand values at most.
_MODIFY_SCRIPT = b"""
local ttl, n = tonumber(ARGV[1]), #KEYS
for from = 1, n, 1000 do
  local to = math.min(from + 999, n)
  local olds = redis.call('MGET', unpack(KEYS, from, to))
  for i = from, to do
    if (olds[i - from + 1] or '') ~= ARGV[1 + i] then return 0 end
  end
end
for i = 1, n do
  local new = ARGV[1 + n + i]
  if new ~= '' then
    if ttl > 0 then redis.call('SET', KEYS[i], new, 'EX', ttl)
    else redis.call('SET', KEYS[i], new) end
  end
end
return 1
"""
_MODIFY_SHA = hashlib.sha1(_MODIFY_SCRIPT).hexdigest()


class _Owner:
    """Lives as long as one thread's thread-local state; its end closes that connection."""

    __slots__ = ("__weakref__",)


class RedisOnlineStore:
    """Latest rows in Redis strings (``online_store: {type: redis, connection_string: ...}``)."""

    capabilities = Capabilities(max_write_batch=_ROWS_PER_WRITE)

    def __init__(self, config: RedisOnlineConfig, project: str, repo_path: Path) -> None:
        self.config = config
        self.project = project
        address = config.address()
        self._where = f"{address.host}:{address.port}"
        self._prefix = f"{config.key_prefix}{project}:".encode()
        self._ttl = config.key_ttl_seconds or 0
        self._expiry: tuple[Any, ...] = ("EX", self._ttl) if self._ttl > 0 else ()
        self._heads: dict[str, bytes] = {}
        self._local = threading.local()  # each thread's own connection (see _connection)
        self._lock = threading.Lock()
        # weak: a finished thread's connection is closed when its thread-local goes
        self._own: weakref.WeakSet[Any] = weakref.WeakSet()
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

    def _refused(self, exc: Exception, what: str, after: str = "") -> NoReturn:
        # a pipeline's error quotes the whole (binary) command before the server's words
        detail = str(exc).strip().rpartition("caused error: ")[2].splitlines()[0]
        raise PitstopError(
            f"Redis at {self._where} refused {what} ({detail}); check the server's maxmemory and "
            f"that it is a primary.{after}"
        ) from None

    def _head(self, view: str) -> bytes:
        """The start of ``view``'s keys: ``<prefix><project>:<view>:{``."""
        head = self._heads.get(view)
        if head is None:
            if "{" in view or "}" in view:
                raise DefinitionError(
                    f"view name {view!r} contains a brace, which Redis keys reserve for the "
                    "entity's hash tag; rename the view"
                )
            head = self._heads[view] = self._prefix + view.encode() + b":{"
        return head

    def _connection(self) -> Any:
        """This thread's own connection, made with the pool's settings: a call skips the
        pool's checkout and the client's bookkeeping (about 10 µs of a 60 µs read). It is
        closed when the thread ends (its thread-local state goes) or the store closes."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():  # new thread, or a forked process
            connection = self._client.connection_pool.make_connection()
            local.owner = owner = _Owner()
            weakref.finalize(owner, connection.disconnect)
            local.connection, local.pid = connection, os.getpid()
            with self._lock:
                self._own.add(connection)
        return local.connection

    def _call(self, *command: Any) -> Any:
        """Run ``command`` on this thread's connection; once more on a fresh one if the server
        dropped it."""
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.send_command(*command)
                return connection.read_response()
            except self._redis.exceptions.ResponseError:
                raise  # the reply was read: the connection is fine
            except self._redis.exceptions.ConnectionError:
                connection.disconnect()
                if attempt == 2:
                    raise
            except BaseException:
                connection.disconnect()  # a reply may be pending: never reuse it as it is
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            own, self._own = list(self._own), weakref.WeakSet()
        for connection in own:
            connection.disconnect()
        self._client.close()

    # -- data --------------------------------------------------------------------------------

    def read(self, requests: Sequence[tuple[str, Sequence[bytes]]]) -> list[list[ReadRow | None]]:
        names = [self._head(view) + key + b"}" for view, keys in requests for key in keys]
        try:
            found = self._get(names)
        except self._errors() as exc:
            self._unavailable(exc)
        unpack = _EVENT_TS.unpack_from
        rows = [
            None if raw is None else ReadRow(unpack(raw)[0], raw[16:]) if len(raw) >= 16
            else ReadRow(2**63 - 1, b"")  # too short to be a row: a value that cannot decode
            for raw in map(found.__getitem__, names)
        ]  # fmt: skip
        result: list[list[ReadRow | None]] = []
        at = 0
        for _, keys in requests:
            result.append(rows[at : at + len(keys)])
            at += len(keys)
        return result

    def _get(self, names: list[bytes]) -> dict[bytes, bytes | None]:
        """The stored values of keys ``names``: one ``MGET`` (per slot, pipelined, in a
        cluster)."""
        if not names:
            return {}
        if not self._cluster:
            return dict(zip(names, self._call("MGET", *names), strict=True))
        groups = self._slots(list(dict.fromkeys(names)))
        pipe = self._client.pipeline(transaction=False)
        for group in groups:
            pipe.execute_command("MGET", *group)
        return {
            name: value
            for group, values in zip(groups, pipe.execute(), strict=True)
            for name, value in zip(group, values, strict=True)
        }

    def write(self, view: str, rows: Sequence[StoredRow]) -> None:
        if not rows:
            return
        head = self._head(view)
        try:
            if self._cluster:
                self._write_cluster(head, rows)
            else:
                self._write(head, rows)
        except self._errors() as exc:
            self._unavailable(exc)
        except self._redis.exceptions.ResponseError as exc:  # out of memory, read-only replica
            after = " Rows of this call may be partly written; writing them again is harmless"
            self._refused(exc, f"a write of view {view!r}", after)

    def _calls(self, head: bytes, rows: Sequence[StoredRow]) -> Iterator[tuple[Any, ...]]:
        """The script calls (``EVALSHA`` commands) that write ``rows``, in row order."""
        pack, ttl = _HEAD.pack, self._ttl
        for start in range(0, len(rows), _KEYS_PER_CALL):
            chunk = rows[start : start + _KEYS_PER_CALL]
            keys = [head + row.entity_key + b"}" for row in chunk]
            values = [pack(row.event_ts, row.created_ts) + row.value for row in chunk]
            yield ("EVALSHA", _WRITE_SHA, len(chunk), *keys, ttl, *values)

    def _trips(self, head: bytes, rows: Sequence[StoredRow]) -> Iterator[list[tuple[Any, ...]]]:
        """The script calls for ``rows``, ``_ROWS_PER_TRIP`` rows' worth at a time."""
        calls = self._calls(head, rows)
        while trip := list(islice(calls, _ROWS_PER_TRIP // _KEYS_PER_CALL)):
            yield trip

    def _write(self, head: bytes, rows: Sequence[StoredRow]) -> None:
        """Write ``rows`` trip after trip on one connection; once more after a ``NOSCRIPT``
        (the script loaded) or a dropped connection. Running a write twice is harmless:
        applying the same rows in the same order again changes nothing."""
        for attempt in (1, 2):
            try:
                if self._send_ahead(self._trips(head, rows)):
                    return
            except self._redis.exceptions.ConnectionError:
                if attempt == 2:
                    raise
                continue
            if attempt == 2:
                raise PitstopError(f"Redis at {self._where} does not keep the write script")
            self._client.script_load(_WRITE_SCRIPT)

    def _send_ahead(self, trips: Iterable[list[tuple[Any, ...]]]) -> bool:
        """Send every trip's commands on one connection, each trip before reading the replies
        of the one before; False if the server lacked the script of any command."""
        connection = self._connection()
        known = True
        try:
            sent = 0
            for trip in chain(trips, [[]]):  # the empty trip: read the last replies
                if trip:
                    connection.send_packed_command(connection.pack_commands(trip))
                for _ in range(sent):
                    try:
                        connection.read_response()
                    except self._redis.exceptions.NoScriptError:
                        known = False
                sent = len(trip)
        except BaseException:
            connection.disconnect()  # replies may be pending: never reuse it as it is
            raise
        return known

    def _write_cluster(self, head: bytes, rows: Sequence[StoredRow]) -> None:
        """Write ``rows`` grouped by slot, one pipeline per trip (redis-py routes each call)."""
        from redis.crc import key_slot

        by_slot: dict[int, list[StoredRow]] = {}
        for row in rows:
            by_slot.setdefault(key_slot(head + row.entity_key + b"}"), []).append(row)
        # Naming the node spares redis-py a COMMAND GETKEYS round trip per call.
        node = self._client.get_node_from_key
        calls = [
            (call, node(call[3])) for group in by_slot.values() for call in self._calls(head, group)
        ]
        per_trip = _ROWS_PER_TRIP // _KEYS_PER_CALL
        for start in range(0, len(calls), per_trip):
            trip = calls[start : start + per_trip]
            for attempt in (1, 2):
                pipe = self._client.pipeline(transaction=False)
                for call, target in trip:
                    pipe.execute_command(*call, target_nodes=target)
                try:
                    pipe.execute()
                    break
                except self._redis.exceptions.NoScriptError:
                    if attempt == 2:
                        raise
                    # Re-running the calls is harmless: applying a row twice changes nothing.
                    self._client.script_load(_WRITE_SCRIPT)

    def modify(self, view: str, keys: Sequence[bytes], change: Change) -> None:
        if not keys:
            return
        head = self._head(view)
        names = [head + key + b"}" for key in keys]
        distinct = list(dict.fromkeys(names))
        watch = not self._cluster and len(distinct) <= _WATCH_KEYS
        pending = self._slots(distinct) if self._cluster else [distinct]
        try:
            for n in range(_MODIFY_ATTEMPTS):
                if n:  # let the writer that won finish; jitter spreads the contenders
                    time.sleep(random.uniform(0, min(_MODIFY_PAUSE, 0.0005 * 2**n)))
                if watch:
                    if self._watched(head, keys, names, distinct, change):
                        return
                    continue
                stored = self._get(distinct)
                new = self._changed(head, keys, names, stored, change)
                pending = self._check_and_set(pending, stored, new)
                if not pending:
                    return
        except self._errors() as exc:
            self._unavailable(exc)
        except self._redis.exceptions.ResponseError as exc:
            self._refused(exc, f"a modify of view {view!r}")
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
        head: bytes,
        keys: Sequence[bytes],
        names: list[bytes],
        distinct: list[bytes],
        change: Change,
    ) -> bool:
        """``WATCH``, read, change, ``MULTI``/``EXEC``: False if another client interfered."""
        with self._client.pipeline(transaction=True) as pipe:
            pipe.watch(*distinct)
            stored = self._get(distinct)
            new = self._changed(head, keys, names, stored, change)
            if not new:
                return True
            pipe.multi()
            for name, packed in new.items():
                pipe.execute_command("SET", name, packed, *self._expiry)
            try:
                pipe.execute()
            except self._redis.exceptions.WatchError:
                return False
            return True

    def _check_and_set(
        self,
        groups: list[list[bytes]],
        stored: dict[bytes, bytes | None],
        new: dict[bytes, bytes],
    ) -> list[list[bytes]]:
        """Per group of keys (one slot each), one script call that writes ``new`` only if
        every key is still as ``stored``, pipelined; the groups whose check failed."""
        todo = [group for group in groups if any(name in new for name in group)]
        failed: list[list[bytes]] = []
        for attempt in (1, 2):
            pipe = self._client.pipeline(transaction=False)
            for group in todo:
                old = [stored[name] or b"" for name in group]  # b"": absent (rows have 16+ bytes)
                args = [self._ttl, *old, *(new.get(name, b"") for name in group)]
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

    def _changed(
        self,
        head: bytes,
        keys: Sequence[bytes],
        names: list[bytes],
        stored: dict[bytes, bytes | None],
        change: Change,
    ) -> dict[bytes, bytes]:
        """Call ``change`` on the stored rows: the packed rows to write, by Redis key (a key
        listed twice ends with its last row)."""
        unpack, pack = _EVENT_TS.unpack_from, _HEAD.pack
        current = [
            None if raw is None else ReadRow(unpack(raw)[0], raw[16:])
            for raw in (stored[name] for name in names)
        ]
        rows = rows_to_write(keys, change(current))
        return {
            head + row.entity_key + b"}": pack(row.event_ts, row.created_ts) + row.value
            for row in rows
        }

    # -- schema ------------------------------------------------------------------------------

    def update(self, keep: Sequence[str], drop: Sequence[str]) -> None:
        if keep:  # nothing to create (keys appear on first write), but the server must answer
            for view in keep:
                self._head(view)  # a name Redis keys cannot hold fails here, not on write
            try:
                self._client.ping()
            except self._errors() as exc:
                self._unavailable(exc)
        for view in drop:
            self._unlink(self._head(view))

    def teardown(self, views: Sequence[str]) -> None:
        self._unlink(self._prefix)

    def _unlink(self, start: bytes) -> None:
        """``UNLINK`` every key that starts with ``start``, pipelined."""
        pattern = _GLOB.sub(rb"\\\1", start) + b"*"
        try:
            pipe = self._client.pipeline(transaction=False)
            for n, key in enumerate(self._client.scan_iter(match=pattern, count=_SCAN_COUNT), 1):
                pipe.unlink(key)
                if n % _SCAN_COUNT == 0:
                    pipe.execute()
            pipe.execute()
        except self._errors() as exc:
            self._unavailable(exc)
