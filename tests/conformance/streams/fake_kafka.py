"""A fake of the confluent-kafka client API over a log that outlives its clients.

No Kafka broker runs on the test machines, so the Kafka source is tested against this: a
``Consumer`` and a ``Producer`` with the methods the source calls (``subscribe`` with
assignment callbacks, ``consume``, ``commit`` with offset metadata, ``committed``, ``seek``,
``assignment``, ``get_watermark_offsets``, ``close``; ``produce``, ``flush``) over a log kept
like a broker keeps it: topics of N partitions, each an append-only sequence of records with
offsets from 0, and committed offsets per (group, topic, partition).

The log lives in a SQLite file named by the configuration key ``fake.log`` (the
``bootstrap.servers`` of the fake) so that a worker process killed with SIGKILL and the one
that replaces it see the same log and the same committed offsets, as they would with a
broker. Simplifications: a group has one member at a time (it is assigned every partition),
and nothing expires.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PARTITIONS = 3
OFFSET_INVALID = -1001
_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records (topic TEXT, partition INTEGER, offset INTEGER,
    key BLOB, value BLOB, headers TEXT, PRIMARY KEY (topic, partition, offset));
CREATE TABLE IF NOT EXISTS commits (grp TEXT, topic TEXT, partition INTEGER, offset INTEGER,
    metadata TEXT, PRIMARY KEY (grp, topic, partition));
"""


@dataclass
class TopicPartition:
    topic: str
    partition: int = -1
    offset: int = OFFSET_INVALID
    metadata: str | None = None


class KafkaError:
    def __init__(self, text: str) -> None:
        self.text = text

    def fatal(self) -> bool:
        return True

    def __str__(self) -> str:
        return self.text


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int, key: Any, value: Any) -> None:
        self._t, self._p, self._o, self._k, self._v = topic, partition, offset, key, value

    def error(self) -> KafkaError | None:
        return None

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def key(self) -> Any:
        return self._k

    def value(self) -> Any:
        return self._v


def _open(conf: dict[str, Any]) -> sqlite3.Connection:
    db = sqlite3.connect(str(conf["fake.log"]), timeout=30, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(_SCHEMA)
    return db


def _partitions(db: sqlite3.Connection, topic: str, default: int = PARTITIONS) -> int:
    db.execute("INSERT OR IGNORE INTO topics VALUES (?, ?)", (topic, default))
    row = db.execute("SELECT partitions FROM topics WHERE name = ?", (topic,)).fetchone()
    return int(row[0])


class Producer:
    def __init__(self, conf: dict[str, Any]) -> None:
        self._db = _open(conf)
        self._default = int(conf.get("fake.partitions", PARTITIONS))
        self._next = itertools.count()
        self._pending: list[tuple[str, Any, Any, Any, int | None]] = []

    def produce(self, topic: str, value: Any = None, key: Any = None, headers: Any = None,
                partition: int | None = None) -> None:  # fmt: skip
        self._pending.append((topic, value, key, headers, partition))

    def flush(self, timeout: float | None = None) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        for topic, value, key, headers, partition in self._pending:
            n = _partitions(db, topic, self._default)
            if partition is None:
                partition = zlib.crc32(key) % n if key is not None else next(self._next) % n
            (offset,) = db.execute(
                "SELECT COALESCE(MAX(offset) + 1, 0) FROM records WHERE topic = ? AND "
                "partition = ?", (topic, partition)
            ).fetchone()  # fmt: skip
            db.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?)",
                       (topic, partition, offset, key, value, repr(headers)))  # fmt: skip
        db.execute("COMMIT")
        self._pending.clear()
        return 0


class Consumer:
    def __init__(self, conf: dict[str, Any]) -> None:
        if conf.get("enable.auto.commit", True) is not False:
            raise ValueError("this fake only knows enable.auto.commit=False")
        self._db = _open(conf)
        self._group = str(conf["group.id"])
        self._reset = conf.get("auto.offset.reset", "latest")
        self._topics: list[str] = []
        self._on_assign: Callable[..., Any] | None = None
        self._assigned: list[TopicPartition] = []
        self._positions: dict[tuple[str, int], int] = {}
        self._closed = False

    def subscribe(self, topics: list[str], on_assign: Any = None, on_revoke: Any = None) -> None:
        self._topics = list(topics)
        self._on_assign = on_assign

    def _assign(self) -> None:
        tps = [
            TopicPartition(t, p)
            for t in self._topics
            for p in range(_partitions(self._db, t))
        ]  # fmt: skip
        self._assigned = tps
        if self._on_assign is not None:
            self._on_assign(self, tps)
        for tp in self.committed(tps):
            start = tp.offset
            if start < 0:
                low, high = self.get_watermark_offsets(tp)
                start = low if self._reset == "earliest" else high
            self._positions[(tp.topic, tp.partition)] = start

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        if self._closed:
            raise RuntimeError("Consumer closed")
        if not self._assigned and self._topics:
            self._assign()
        deadline = time.monotonic() + (timeout if timeout >= 0 else 3600)
        while True:
            out: list[FakeMessage] = []
            for tp in self._assigned:
                if len(out) >= num_messages:
                    break
                where = (tp.topic, tp.partition)
                rows = self._db.execute(
                    "SELECT offset, key, value FROM records WHERE topic = ? AND partition = ? "
                    "AND offset >= ? ORDER BY offset LIMIT ?",
                    (tp.topic, tp.partition, self._positions[where], num_messages - len(out)),
                ).fetchall()
                for offset, key, value in rows:
                    out.append(FakeMessage(tp.topic, tp.partition, offset, key, value))
                    self._positions[where] = offset + 1
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(0.01)

    def commit(self, message: Any = None, offsets: Any = None, asynchronous: bool = True) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        for tp in offsets or []:
            db.execute("INSERT OR REPLACE INTO commits VALUES (?, ?, ?, ?, ?)",
                       (self._group, tp.topic, tp.partition, tp.offset, tp.metadata))  # fmt: skip
        db.execute("COMMIT")

    def committed(self, partitions: list[TopicPartition], timeout: float | None = None) -> list:
        out = []
        for tp in partitions:
            row = self._db.execute(
                "SELECT offset, metadata FROM commits WHERE grp = ? AND topic = ? AND "
                "partition = ?", (self._group, tp.topic, tp.partition)
            ).fetchone()  # fmt: skip
            offset, meta = row if row else (OFFSET_INVALID, None)
            out.append(TopicPartition(tp.topic, tp.partition, offset, meta))
        return out

    def seek(self, tp: TopicPartition) -> None:
        self._positions[(tp.topic, tp.partition)] = tp.offset

    def assignment(self) -> list[TopicPartition]:
        return list(self._assigned)

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float | None = None,
                              cached: bool = False) -> tuple[int, int]:  # fmt: skip
        (high,) = self._db.execute(
            "SELECT COALESCE(MAX(offset) + 1, 0) FROM records WHERE topic = ? AND partition = ?",
            (tp.topic, tp.partition),
        ).fetchone()
        return 0, int(high)

    def close(self) -> None:
        self._closed = True
        self._db.close()
