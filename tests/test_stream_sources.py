"""Stream sources without a broker: URLs, decoders, JetStream reply subjects, marks for
stable ids, and the ingestion metrics endpoint."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from pitstop import FeatureStore
from pitstop.config import parse_config
from pitstop.engine.ingest import IngestStats, _columns
from pitstop.errors import ConfigError
from pitstop.server.metrics import render_ingest, serve_ingest_metrics
from pitstop.streams import open_source
from pitstop.streams.base import stable_id
from pitstop.streams.decode import decoder, json_lines, json_object
from pitstop.streams.nats import _delivery


def test_a_url_names_a_known_broker_and_a_stream() -> None:
    with pytest.raises(ConfigError, match=r"unknown scheme 'kafkaa'; use one of amqp://, "):
        open_source("kafkaa://host/topic", None)
    with pytest.raises(ConfigError, match=r"names no stream; add it to the URL's path or pass "):
        open_source("nats://127.0.0.1:4222", None)
    with pytest.raises(ConfigError, match=r"query \(\?stream=KEY\) or pass --stream"):
        open_source("redis://127.0.0.1:6379/0", None)
    with pytest.raises(ConfigError, match=r"'amqp://guest:\*\*\*@h/'"):
        open_source("amqp://guest:secret@h/", None)


def test_decoders_read_objects_and_json_lines() -> None:
    assert json_object(b'{"a": 1}') == [{"a": 1}]
    assert json_object({"json": '{"a": 2}'}) == [{"a": 2}]
    assert json_object({"a": "3"}) == [{"a": "3"}]
    assert json_lines(b'{"a": 1}\n\n{"a": 2}\n') == [{"a": 1}, {"a": 2}]
    with pytest.raises(ValueError, match="not JSON"):
        json_object(b"nope")
    with pytest.raises(ValueError, match="must hold a JSON object, not list"):
        json_object(b"[1]")
    assert decoder("jsonl") is json_lines
    assert decoder("pitstop.streams.decode:json_object") is json_object
    with pytest.raises(ConfigError, match="neither 'json' nor 'jsonl' nor 'module:function'"):
        decoder("yaml")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        decoder("pitstop.streams.decode:nothing")


def test_jetstream_reply_subjects_give_deliveries_and_sequences() -> None:
    assert _delivery("$JS.ACK.S.c.2.417.9.1700000000000000000.5") == (2, 417)
    assert _delivery("$JS.ACK._.hash.S.c.1.99.3.1700000000000000000.0.tok") == (1, 99)


def test_stable_ids_differ_by_content() -> None:
    assert stable_id(b"a") == stable_id(b"a") != stable_id(b"b")
    assert 0 <= stable_id(b"a")[0] < 2**63


def test_columns_of_text_and_numbers_become_text() -> None:
    cols = _columns([(0, {"a": 1, "b": 1.5}), (1, {"a": "2", "b": 2}), (2, {"b": None})])
    assert cols == {"a": ["1", "2", None], "b": [1.5, 2, None]}


def test_stable_ids_are_applied_once_and_forgotten_with_their_tile(tmp_path: Path) -> None:
    from pitstop.engine.streams import Delivery, decode_row, push_events
    from pitstop.online.encoding import entity_key
    from test_streams import push_source, seed_view, user

    store = FeatureStore(config=parse_config({"project": "ids", "online_store": {"type": "memory"}},
                                             repo_path=tmp_path))  # fmt: skip
    store.apply([user, push_source, seed_view])
    now = datetime.now(UTC)
    stamps = [now - timedelta(minutes=m) for m in (3, 2, 1)]
    table = pa.table({"user_id": [1, 1, 1], "transaction_amount": [1.0, 2.0, 4.0],
                      "transaction_timestamp": stamps})  # fmt: skip
    ids = [(7, 0), (7, 0), (9, 0)]  # two events of one message, then another message
    for _ in range(3):
        push_events(store.online, seed_view, table, delivery=Delivery("q", ids, ordered=False))
    refs = [f"{seed_view.name}:transaction_count_1h", f"{seed_view.name}:total_amount_1h"]
    got = store.get_online_features(refs, {"user_id": [1]}).to_dict()
    assert got["transaction_count_1h"] == [3] and got["total_amount_1h"] == [7.0]

    def seen() -> list[tuple[int, ...]]:
        row = store.online.read([(seed_view.name, [entity_key(("user_id",), (1,))])])[0][0]
        marks = decode_row(row.value)[1]["q"]["seen"]
        return sorted(tuple(i) for ids_ in marks.values() for i in ids_)

    assert seen() == [(7, 0), (7, 0), (9, 0)]
    later = now + timedelta(hours=3)  # the first tiles have left every window
    late = table.slice(0, 1).set_column(
        2, "transaction_timestamp", pa.array([later], pa.timestamp("us", "UTC"))
    )
    push_events(store.online, seed_view, late, now_us=int(later.timestamp() * 1e6),
                delivery=Delivery("q", [(11, 0)], ordered=False))  # fmt: skip
    assert seen() == [(11, 0)]
    store.close()


def test_the_metrics_endpoint_serves_the_worker_numbers() -> None:
    stats = IngestStats(events=1200, dead=3, batches=4, seconds=2.0, lag=17)
    text = render_ingest(stats, 'ev"ents').decode()
    assert 'pitstop_ingest_events_total{stream="ev\\"ents"} 1200' in text
    assert 'pitstop_ingest_consumer_lag{stream="ev\\"ents"} 17' in text
    assert 'pitstop_ingest_events_per_second{stream="ev\\"ents"} 600.0' in text
    assert "consumer_lag" not in render_ingest(IngestStats(), "s").decode()  # lag unknown
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = serve_ingest_metrics(port, stats, "events")
    try:
        stats.events = 1300
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
            assert resp.headers["Content-Type"].startswith("text/plain")
        assert 'pitstop_ingest_events_total{stream="events"} 1300' in body
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
