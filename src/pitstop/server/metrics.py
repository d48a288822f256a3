"""Prometheus metrics of the feature server, in the text exposition format (``GET /metrics``).

Written here rather than with ``prometheus_client``: the server needs a handful of counters
and histograms, and an ``observe`` that is one ``bisect`` and two additions costs less than a
microsecond on the hot path. Each worker process keeps its own numbers (a scrape reaches one
worker; run ``--workers 1`` per container when exact totals matter).

=================================================  =========  ==============================
metric                                             type       labels
=================================================  =========  ==============================
pitstop_server_request_duration_seconds            histogram  endpoint
pitstop_server_requests_total                      counter    endpoint, status
pitstop_server_errors_total                        counter    type
pitstop_server_entity_rows_total                   counter    (entity rows served)
pitstop_server_online_read_duration_seconds        histogram  (one store round trip)
pitstop_server_push_requests_total                 counter    push_source, to
pitstop_server_pushed_rows_total                   counter    push_source, to
pitstop_server_written_rows_total                  counter    feature_view
=================================================  =========  ==============================

Freshness, drift and feature-logging figures follow (:mod:`pitstop.quality.gauges`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
            1.0, 2.5, 5.0, 10.0, 30.0)  # fmt: skip


class Histogram:
    """Counts of observations per bucket (non-cumulative until rendered), sum and count."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(_BUCKETS, seconds)] += 1
        self.total += seconds

    def lines(self, name: str, labels: str) -> Iterable[str]:
        sep = "," if labels else ""
        running = 0
        for bound, n in zip((*_BUCKETS, "+Inf"), self.counts, strict=True):
            running += n
            yield f'{name}_bucket{{{labels}{sep}le="{bound}"}} {running}'
        inner = f"{{{labels}}}" if labels else ""
        yield f"{name}_sum{inner} {self.total!r}"
        yield f"{name}_count{inner} {running}"


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return ",".join(f'{n}="{esc(v)}"' for n, v in zip(names, values, strict=True))


class Metrics:
    """Every metric of one server process."""

    def __init__(self) -> None:
        self.latency: dict[str, Histogram] = {}
        self.requests: dict[tuple[str, str], int] = {}
        self.errors: dict[str, int] = {}
        self.entity_rows = 0
        self.online_read = Histogram()
        self.push_requests: dict[tuple[str, str], int] = {}
        self.pushed_rows: dict[tuple[str, str], int] = {}
        self.written_rows: dict[str, int] = {}

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        hist = self.latency.get(endpoint)
        if hist is None:
            hist = self.latency[endpoint] = Histogram()
        hist.observe(seconds)
        key = (endpoint, str(status))
        self.requests[key] = self.requests.get(key, 0) + 1

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def pushed(self, source: str, to: str, rows: int) -> None:
        key = (source, to)
        self.push_requests[key] = self.push_requests.get(key, 0) + 1
        self.pushed_rows[key] = self.pushed_rows.get(key, 0) + rows

    def written(self, view: str, rows: int) -> None:
        self.written_rows[view] = self.written_rows.get(view, 0) + rows

    def render(self) -> bytes:
        """All metrics in the Prometheus text format (version 0.0.4)."""
        out: list[str] = []

        def head(name: str, kind: str, text: str) -> str:
            out.append(f"# HELP {name} {text}")
            out.append(f"# TYPE {name} {kind}")
            return name

        name = head("pitstop_server_request_duration_seconds", "histogram",
                    "Time to answer a request, by endpoint.")  # fmt: skip
        for endpoint, hist in sorted(self.latency.items()):
            out.extend(hist.lines(name, _labels(("endpoint",), (endpoint,))))
        name = head("pitstop_server_requests_total", "counter", "Requests answered.")
        for (endpoint, status), n in sorted(self.requests.items()):
            out.append(f"{name}{{{_labels(('endpoint', 'status'), (endpoint, status))}}} {n}")
        name = head("pitstop_server_errors_total", "counter", "Failed requests by error type.")
        for kind, n in sorted(self.errors.items()):
            out.append(f"{name}{{{_labels(('type',), (kind,))}}} {n}")
        name = head("pitstop_server_entity_rows_total", "counter", "Entity rows served online.")
        out.append(f"{name} {self.entity_rows}")
        name = head("pitstop_server_online_read_duration_seconds", "histogram",
                    "Time of one online store read (one round trip).")  # fmt: skip
        out.extend(self.online_read.lines(name, ""))
        for metric, text, table in (
            ("push_requests_total", "Successful push requests.", self.push_requests),
            ("pushed_rows_total", "Rows written online by pushes.", self.pushed_rows),
        ):
            name = head(f"pitstop_server_{metric}", "counter", text)
            for (source, to), n in sorted(table.items()):
                out.append(f"{name}{{{_labels(('push_source', 'to'), (source, to))}}} {n}")
        name = head("pitstop_server_written_rows_total", "counter",
                    "Rows written by /write-to-online-store.")  # fmt: skip
        for view, n in sorted(self.written_rows.items()):
            out.append(f"{name}{{{_labels(('feature_view',), (view,))}}} {n}")
        return ("\n".join(out) + "\n").encode()


def render_gauges(gauges: Iterable[Any]) -> bytes:
    """Metric families with ``name``, ``text``, ``kind``, ``labels`` and ``samples`` (label
    values, value) in the text format (:class:`pitstop.quality.gauges.Gauge`)."""
    out: list[str] = []
    for g in gauges:
        out += [f"# HELP {g.name} {g.text}", f"# TYPE {g.name} {g.kind}"]
        out += [f"{g.name}{{{_labels(g.labels, values)}}} {value!r}" for values, value in g.samples]
    return ("\n".join(out) + "\n").encode() if out else b""


def render_ingest(stats: Any, stream: str) -> bytes:
    """The metrics of an ingestion worker (``pitstop ingest --metrics-port``):
    ``pitstop_ingest_events_total``, ``..._dead_letters_total``, ``..._batches_total``,
    ``..._events_per_second`` and ``..._consumer_lag`` (absent while the broker cannot
    say), labelled with the stream."""
    labels = _labels(("stream",), (stream,))
    rows = [
        ("events_total", "counter", "Events written online (and offline).", stats.events),
        ("dead_letters_total", "counter", "Events sent to the dead letters.", stats.dead),
        ("batches_total", "counter", "Batches handled.", stats.batches),
        ("events_per_second", "gauge", "Events per second since the start.", stats.rate),
        ("consumer_lag", "gauge", "Messages not yet acknowledged by this consumer.", stats.lag),
    ]
    out = []
    for metric, kind, text, value in rows:
        if value is None:
            continue
        name = f"pitstop_ingest_{metric}"
        out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name}{{{labels}}} {value}"]
    return ("\n".join(out) + "\n").encode()


def serve_ingest_metrics(port: int, stats: Any, stream: str, host: str = "127.0.0.1") -> Any:
    """Serve :func:`render_ingest` at ``GET /metrics`` from a daemon thread; returns the
    server (``shutdown()`` stops it)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served here")
                return
            body = render_ingest(stats, stream)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()
    return server
