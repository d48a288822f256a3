"""Shared test fixtures.

Services: a test that needs a server it cannot reach is *skipped* with the reason, except with
``CI=true``, where it *fails* — CI must never pass by silently skipping a backend. Call
:func:`require_service` wherever a service turns out to be missing.

PostgreSQL: ``postgres_url`` routes a session to a fresh schema ``pitstop_test_<random>`` (dropped
at the end) through ``?options=-csearch_path%3D<schema>``; ``fresh_postgres_url`` gives one test a
schema of its own. The server is ``PITSTOP_TEST_POSTGRES_URL`` or ``postgresql://postgres@127.0.0.1:5432/test``.

Redis: ``redis_url`` is the server at ``PITSTOP_TEST_REDIS_URL`` (default 127.0.0.1:6379, db 0)
and ``redis_key_prefix`` a prefix of the session's own; ``redis_cluster`` starts a three-node
Redis Cluster from the machine's ``redis-server`` for the session.

Brokers: ``nats_url`` (NATS with JetStream, ``PITSTOP_TEST_NATS_URL``), ``rabbitmq_url``
(``PITSTOP_TEST_RABBITMQ_URL``, guest/guest) and ``mqtt_url`` (Mosquitto,
``PITSTOP_TEST_MQTT_URL``) are the local servers once they answer; tests name their streams,
subjects, queues and topics uniquely so that parallel runs never collide.

Registry: ``registry_url`` runs a test once per registry backend (SQLite file, PostgreSQL);
``project_name`` is unique per test so tests sharing a database never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

POSTGRES_URL = os.environ.get(
    "PITSTOP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def require_service(name: str, exc: BaseException) -> NoReturn:
    """Skip the current test because ``name`` is unavailable (with ``CI=true``: fail it)."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    reason = f"{name} is not available: {detail}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true, so a missing service is a failure)", pytrace=False)
    pytest.skip(reason)


def url_with_schema(url: str, schema: str) -> str:
    """A PostgreSQL URL whose sessions use ``schema`` as their search path."""
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Any]:
    """An autocommit psycopg connection to the test server, for creating and dropping schemas."""
    try:
        import psycopg
    except ImportError as exc:
        require_service("the PostgreSQL driver (psycopg)", exc)
    try:
        conn = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        where = POSTGRES_URL.rpartition("@")[2].partition("/")[0]  # host:port, no credentials
        require_service(f"PostgreSQL at {where}", exc)
    with conn:
        yield conn


def _create_schema(admin: Any) -> str:
    schema = f"pitstop_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    return schema


@pytest.fixture(scope="session")
def postgres_url(postgres_admin: Any) -> Iterator[str]:
    """A URL routed to a fresh schema shared by the whole session (dropped at the end)."""
    schema = _create_schema(postgres_admin)
    try:
        yield url_with_schema(POSTGRES_URL, schema)
    finally:
        postgres_admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def fresh_postgres_url(postgres_admin: Any) -> Iterator[str]:
    """A URL routed to an empty schema of this test's own (dropped afterwards)."""
    schema = _create_schema(postgres_admin)
    try:
        yield url_with_schema(POSTGRES_URL, schema)
    finally:
        postgres_admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A registry URL, once per backend: a SQLite file in tmp_path, the session's PG schema."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'registry.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def project_name() -> str:
    """A project name no other test uses."""
    return f"test_{uuid.uuid4().hex[:12]}"


REDIS_URL = os.environ.get("PITSTOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis server's URL, once it answers a PING (skipped or failed otherwise)."""
    try:
        import redis
    except ImportError as exc:
        require_service("the Redis driver (redis-py)", exc)
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        where = REDIS_URL.rpartition("@")[2].partition("/")[0].removeprefix("redis://")
        require_service(f"Redis at {where}", exc)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_key_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix ``pitstop_test_<random>:`` of this session; its keys are deleted at the end."""
    import redis

    prefix = f"pitstop_test_{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.unlink(*keys[start : start + 1000])
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real three-node Redis Cluster (no replicas) started from this machine's
    ``redis-server`` on free ports for the session: its ``connection_string``."""
    import itertools
    import random
    import shutil
    import socket
    import subprocess
    import time

    import redis

    server = shutil.which("redis-server")
    if server is None or shutil.which("redis-cli") is None:
        require_service("redis-server and redis-cli (for a Redis Cluster)", FileNotFoundError())
    folder = tmp_path_factory.mktemp("redis-cluster")

    def free(port: int) -> bool:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    # a node also listens on port + 10000 (the cluster bus), so ports stay below 55536
    candidates = (random.randrange(20_000, 50_000) for _ in range(1000))
    ports = list(itertools.islice((p for p in candidates if free(p) and free(p + 10_000)), 3))

    def start(port: int) -> subprocess.Popen[bytes]:
        command = [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
        command += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"]
        command += ["--appendonly", "no", "--save", ""]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    procs = [start(port) for port in ports]

    def node_answers(port: int, command: str) -> Any:
        client = redis.Redis(port=port, socket_connect_timeout=1)
        try:
            return client.execute_command(command)
        finally:
            client.close()

    try:
        nodes = [f"127.0.0.1:{port}" for port in ports]
        deadline = time.monotonic() + 20
        for port in ports:
            while True:
                try:
                    node_answers(port, "PING")
                    break
                except redis.ConnectionError as exc:
                    if time.monotonic() > deadline:
                        require_service(f"a Redis Cluster node on port {port}", exc)
                    time.sleep(0.05)
        create = ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0"]
        subprocess.run([*create, "--cluster-yes"], check=True, capture_output=True, timeout=30)
        for port in ports:
            while node_answers(port, "CLUSTER INFO").get("cluster_state") != "ok":
                if time.monotonic() > deadline:
                    require_service("a Redis Cluster", TimeoutError("cluster_state never ok"))
                time.sleep(0.05)
        yield ",".join(nodes)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


NATS_URL = os.environ.get("PITSTOP_TEST_NATS_URL", "nats://127.0.0.1:4222")
RABBITMQ_URL = os.environ.get("PITSTOP_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")
MQTT_URL = os.environ.get("PITSTOP_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


def _where(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The test NATS server's URL, once it answers with JetStream enabled."""
    import asyncio

    try:
        import nats
    except ImportError as exc:
        require_service("the NATS client (nats-py)", exc)

    async def check() -> None:
        nc = await nats.connect(NATS_URL, connect_timeout=3, max_reconnect_attempts=0)
        try:
            await nc.jetstream().account_info()
        finally:
            await nc.close()

    try:
        asyncio.run(check())
    except Exception as exc:
        require_service(f"NATS with JetStream at {_where(NATS_URL)}", exc)
    return NATS_URL


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """The test RabbitMQ server's URL, once it accepts a connection."""
    try:
        import pika
    except ImportError as exc:
        require_service("the RabbitMQ client (pika)", exc)
    try:
        pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL + "/%2F")).close()
    except Exception as exc:
        require_service(f"RabbitMQ at {_where(RABBITMQ_URL)}", exc)
    return RABBITMQ_URL


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    """The test MQTT broker's URL, once it accepts an MQTT connection."""
    import socket

    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError as exc:
        require_service("the MQTT client (paho-mqtt)", exc)
    from urllib.parse import urlsplit

    parts = urlsplit(MQTT_URL)
    try:  # CONNECT (MQTT 3.1.1, clean session) and expect CONNACK "accepted"
        with socket.create_connection((parts.hostname, parts.port or 1883), timeout=3) as sock:
            client_id = f"pitstop-check-{uuid.uuid4().hex[:8]}".encode()
            body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
            sock.sendall(bytes([0x10, len(body)]) + body)
            reply = sock.recv(4)
            if reply[:2] != b"\x20\x02" or reply[3:4] != b"\x00":
                raise ConnectionError(f"unexpected reply {reply!r}")
            sock.sendall(b"\xe0\x00")
    except OSError as exc:
        require_service(f"the MQTT broker at {_where(MQTT_URL)}", exc)
    return MQTT_URL
