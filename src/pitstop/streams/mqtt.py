"""MQTT: a persistent session subscribed at QoS 1, acknowledged by hand (``paho-mqtt`` 2.x).

``mqtt://[user:password@]host:1883/TOPIC?protocol=5&client_id=ID`` subscribes to the topic
filter ``TOPIC`` (``+`` as is, ``#`` written ``%23``) at QoS 1 in a persistent session: MQTT 5
with ``clean_start`` false and a session that does not expire, or ``protocol=3.1.1`` with
``clean_session`` false. The client id is ``--consumer`` (default ``HOST:PUSH_SOURCE``), the
same after a restart, so the broker keeps the session and resends what was not acknowledged.

* **Acknowledgements.** ``PUBACK`` is sent by hand after the batch's writes (paho's
  ``manual_ack``). With MQTT 5 the client's *receive maximum* is the batch size (at most
  65,535), so a whole batch can be in flight; MQTT 3.1.1 leaves that number to the broker
  (Mosquitto's ``max_inflight_messages``, 20 by default), which bounds the batches.
* **Positions.** MQTT packet ids are reused, so messages are known by a stable id: a hash of
  the payload (the source is not ``ordered``). Give events an id field of their own when two
  messages may carry the same payload: without it they count once.
* **Redelivery** happens when the session reconnects (``release`` reconnects); resent messages
  carry the ``DUP`` flag.
* **Dead letters** are published at QoS 1 to ``pitstop/dead-letter/<TOPIC>`` (wildcards
  replaced by ``_``): a JSON document with the reason and the payload. Messages on that
  prefix are never handled as events.
* **Lag** is not known: MQTT does not tell a client how many messages its session holds.

**The broker must keep what it queues.** Mosquitto drops QoS 1 messages for a session beyond
``max_queued_messages`` (1000 by default) whether or not the client is connected; for
at-least-once delivery set it (and ``max_inflight_messages``) to 0 or to more than a worker
may fall behind by.
"""

from __future__ import annotations

import contextlib
import select
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from pitstop.errors import BackendUnavailableError, ConfigError, require
from pitstop.streams.base import (
    Batch,
    DeadLetter,
    Message,
    Position,
    SourceOptions,
    dead_letter_body,
    stable_id,
)

DEAD_PREFIX = "pitstop/dead-letter/"
LINGER_S = 0.005
NEVER_EXPIRES = 0xFFFFFFFF


def _buffered_client(mqtt: Any) -> Any:
    """paho's client reading the socket 64 KiB at a time (paho asks for a packet's bytes a
    few at a time, one system call each otherwise), sending a batch's acknowledgements in
    one write rather than one each (:meth:`gathered`), and handing every message to the one
    ``on_message`` without matching its topic against per-topic callbacks (none are set)."""

    class Client(mqtt.Client):
        _rbuf = b""
        _wbuf: bytearray | None = None

        def _sock_send(self, buf: bytes) -> int:
            if self._wbuf is not None:
                self._wbuf += buf
                return len(buf)
            return super()._sock_send(buf)

        def gathered(self, send: Any) -> None:
            """Call ``send()``, which queues packets, and write them all at once."""
            self._wbuf = bytearray()
            try:
                send()
            finally:
                data, self._wbuf = memoryview(self._wbuf), None
            while data:
                try:
                    sent = self._sock.send(data)
                except BlockingIOError:
                    select.select([], [self._sock], [], 1.0)
                    continue
                data = data[sent:]

        _rpos = 0

        def _sock_recv(self, bufsize: int) -> bytes:
            if self._rpos >= len(self._rbuf):
                self._rbuf, self._rpos = super()._sock_recv(max(bufsize, 65_536)), 0
            start = self._rpos
            self._rpos = start + bufsize
            return self._rbuf[start : self._rpos]

        def _handle_on_message(self, message: Any) -> None:
            # one handler for every topic: skip paho's per-message topic-filter matching
            with self._in_callback_mutex:
                self._on_message(self, self._userdata, message)

        def buffered(self) -> bool:
            return self._rpos < len(self._rbuf)

        def _reset_sockets(self, *args: Any, **kwargs: Any) -> None:
            self._rbuf, self._rpos = b"", 0
            super()._reset_sockets(*args, **kwargs)

    return Client


class MqttSource:
    """An MQTT topic filter read through a persistent session."""

    ordered = False

    def __init__(
        self, url: str, topic: str, client_id: str, *, protocol: str = "5",
        receive_maximum: int = 50_000,
    ) -> None:  # fmt: skip
        mqtt = require("paho.mqtt.client", "mqtt")
        parts = urlsplit(url)
        self.name = topic
        self.client_id = client_id
        self._where = f"{parts.hostname}:{parts.port or 1883}"
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 1883
        self._dead_topic = DEAD_PREFIX + topic.replace("+", "_").replace("#", "_")
        if protocol not in ("5", "3.1.1"):
            raise ConfigError(f"protocol must be 5 or 3.1.1, got {protocol!r} in --source")
        self._v5 = protocol == "5"
        self._mqtt = mqtt
        version = mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311  # type: ignore[attr-defined]
        self._client = _buffered_client(mqtt)(
            mqtt.CallbackAPIVersion.VERSION2,  # type: ignore[attr-defined]
            client_id=client_id, protocol=version, manual_ack=True,
            clean_session=None if self._v5 else False,
        )  # fmt: skip
        if parts.username:
            self._client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        if parts.scheme == "mqtts":
            self._client.tls_set()
        self._client.on_message = self._on_message
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.max_queued_messages_set(0)
        self._buffer: list[Message] = []
        self._subscribed = False
        self._receive_maximum = max(1, min(receive_maximum, 65_535))
        self._connect()

    def _connect(self) -> None:
        props = None
        if self._v5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = NEVER_EXPIRES
            props.ReceiveMaximum = self._receive_maximum
        self._subscribed = False
        try:
            if self._v5:
                self._client.connect(self._host, self._port, keepalive=60, clean_start=False,
                                     properties=props)  # fmt: skip
            else:
                self._client.connect(self._host, self._port, keepalive=60)
        except OSError as exc:
            raise BackendUnavailableError(
                f"MQTT broker at {self._where} is not available ({exc}); check --source"
            ) from None
        deadline = time.monotonic() + 30
        while not self._subscribed:  # a kept session is subscribed already
            if time.monotonic() > deadline:
                raise BackendUnavailableError(
                    f"MQTT broker at {self._where} did not accept the subscription to "
                    f"{self.name!r} within 30 s"
                )
            self._pump(0.05)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            raise BackendUnavailableError(
                f"MQTT broker at {self._where} refused client {self.client_id!r}: {reason}"
            )
        client.subscribe(self.name, qos=1)
        if flags.session_present:  # the session kept its subscription: no need to wait
            self._subscribed = True

    def _on_subscribe(self, *args: Any) -> None:
        self._subscribed = True

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if msg.topic.startswith(DEAD_PREFIX):  # our own dead letters under a wide filter
            client.ack(msg.mid, msg.qos)
            return
        payload = msg.payload
        self._buffer.append(Message(0, stable_id(payload), payload, (msg.mid, msg.qos, msg.dup)))

    def _pump(self, wait: float) -> None:
        """Handle the network once: write what is queued, read what arrived (or wait for it
        up to ``wait`` seconds), send keep-alives."""
        client = self._client
        sock = client.socket()
        if sock is None:
            raise BackendUnavailableError(f"MQTT broker at {self._where} closed the connection")
        if client.want_write():
            client.loop_write()
        if not client.buffered():
            readable, _, _ = select.select([sock], [], [], wait)
            if not readable:
                client.loop_misc()
                return
        while True:
            rc = client.loop_read()
            if rc != 0:
                raise BackendUnavailableError(
                    f"MQTT broker at {self._where} went away ({self._mqtt.error_string(rc)})"  # type: ignore[attr-defined]
                )
            if not client.buffered():
                break
        client.loop_misc()

    def read(self, count: int, block_ms: int) -> Batch:
        if self._client.socket() is None:
            self._buffer.clear()  # the session resends what was not acknowledged
            self._connect()
        deadline = time.monotonic() + block_ms / 1000
        while len(self._buffer) < count:
            before = len(self._buffer)
            if before:
                self._pump(LINGER_S)
                if len(self._buffer) == before:
                    break
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._pump(left)
        messages, self._buffer = self._buffer[:count], self._buffer[count:]
        return Batch(messages, redelivered=any(m.token[2] for m in messages))

    def ack(self, messages: Sequence[Message]) -> None:
        ack = self._client.ack

        def send() -> None:
            for m in messages:
                ack(m.token[0], m.token[1])
            while self._client.want_write():
                self._client.loop_write()

        if self._client.socket() is not None:
            self._client.gathered(send)

    def release(self, messages: Sequence[Message]) -> None:
        """Reconnect: the broker resends the session's unacknowledged messages."""
        self._buffer.clear()
        if self._client.socket() is not None:
            with contextlib.suppress(OSError):
                self._client.disconnect()

    def dead_letter(self, bad: Sequence[DeadLetter]) -> None:
        infos = [
            self._client.publish(self._dead_topic,
                                 dead_letter_body(d.message, d.reason, d.event), qos=1)
            for d in bad
        ]  # fmt: skip
        deadline = time.monotonic() + 30
        while not all(i.is_published() for i in infos):
            if time.monotonic() > deadline:
                raise BackendUnavailableError(
                    f"MQTT broker at {self._where} did not confirm the dead letters on "
                    f"{self._dead_topic!r} within 30 s"
                )
            self._pump(0.01)

    def settled(self) -> dict[int, Position]:
        return {}

    def lag(self) -> int | None:
        return None

    def close(self) -> None:
        if self._client.socket() is not None:
            self._client.disconnect()


def open_url(url: str, stream: str, options: SourceOptions) -> MqttSource:
    """``mqtt://[user:password@]host:port/TOPIC?protocol=5|3.1.1&client_id=ID``."""
    client_id = options.extra.get("client_id") or options.consumer or f"pitstop-{options.group}"
    return MqttSource(url, stream, client_id, protocol=options.extra.get("protocol", "5"),
                      receive_maximum=options.batch)  # fmt: skip
