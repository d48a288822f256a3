"""Stream sources: the protocol (:mod:`.base`), decoders, and one driver per broker.

:func:`open_source` picks the driver from the URL's scheme; each driver module imports its
client library only when it opens a source (``pip install 'pitstop[nats]'`` and so on):

==========  =====================  ================================================
scheme      module                 the stream is
==========  =====================  ================================================
redis(s)    :mod:`.redis`          ``--stream`` or ``?stream=KEY`` (the path is the db)
nats        :mod:`.nats`           the path: a JetStream stream name
amqp(s)     :mod:`.rabbitmq`       the path: a queue name (``?vhost=`` for the vhost)
mqtt(s)     :mod:`.mqtt`           the path: a topic filter (``#`` written ``%23``)
kafka       :mod:`.kafka`          the path: a topic (several brokers: ``host:port,...``)
==========  =====================  ================================================

The rest of the query string holds broker settings each driver documents.
"""

from __future__ import annotations

import importlib
from urllib.parse import parse_qsl, unquote, urlsplit

from pitstop.errors import ConfigError
from pitstop.streams.base import Batch, DeadLetter, Message, Source, SourceOptions

__all__ = ["Batch", "DeadLetter", "Message", "Source", "SourceOptions", "open_source"]

DRIVERS = {
    "redis": "pitstop.streams.redis",
    "rediss": "pitstop.streams.redis",
    "nats": "pitstop.streams.nats",
    "amqp": "pitstop.streams.rabbitmq",
    "amqps": "pitstop.streams.rabbitmq",
    "mqtt": "pitstop.streams.mqtt",
    "mqtts": "pitstop.streams.mqtt",
    "kafka": "pitstop.streams.kafka",
}


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def open_source(url: str, stream: str | None, options: SourceOptions | None = None) -> Source:
    """The source a URL names; ``stream`` (if given) replaces the stream in the URL."""
    parts = urlsplit(url)
    module = DRIVERS.get(parts.scheme)
    if module is None:
        raise ConfigError(
            f"--source {_safe(url)!r}: unknown scheme {parts.scheme!r}; use one of "
            f"{', '.join(s + '://' for s in sorted(DRIVERS))}"
        )
    options = options or SourceOptions()
    query = dict(parse_qsl(parts.query))
    options.extra = {**options.extra, **query}
    if stream is None and parts.scheme in ("redis", "rediss"):
        stream = query.get("stream")
    elif stream is None:
        stream = unquote(parts.path.lstrip("/")) or None
    if not stream:
        raise ConfigError(
            f"--source {_safe(url)!r} names no stream; add it to the URL's "
            f"{'query (?stream=KEY)' if parts.scheme.startswith('redis') else 'path'} "
            "or pass --stream"
        )
    driver = importlib.import_module(module)
    source: Source = driver.open_url(url, stream, options)
    return source
