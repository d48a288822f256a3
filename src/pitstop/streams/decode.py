"""Message decoders: a message's payload to the events it holds (a list of JSON objects).

Built in: ``json`` (one JSON object per message, the default) and ``jsonl`` (JSON lines: one
object per line, several events per message). A Redis entry is its fields, or the text of its
``json`` field decoded as above. Anything else is a ``module:function`` taking the payload
(``bytes``, or a mapping for Redis entries) and returning a list of dicts; it raises
``ValueError`` for a message it cannot read, which then goes to the dead letters with the
error as the reason.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from typing import Any

from pitstop.errors import ConfigError
from pitstop.streams.base import Decoder, Payload

_loads: Any
try:  # several times faster than the standard library (pitstop[server] installs it)
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - without the server extra
    _loads = json.loads


def _text(payload: Payload) -> str | bytes | None:
    """The JSON text of a payload, or ``None`` for a Redis entry that is its own event."""
    if isinstance(payload, bytes | str):
        return payload
    return payload.get("json")


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"a message must hold a JSON object, not {type(value).__name__}")
    return value


def json_object(payload: Payload) -> list[dict[str, Any]]:
    """One JSON object per message (a Redis entry: its fields, or its ``json`` field)."""
    text = _text(payload)
    if text is None:
        assert isinstance(payload, Mapping)
        return [dict(payload)]
    try:
        return [_object(_loads(text))]
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None


def json_lines(payload: Payload) -> list[dict[str, Any]]:
    """JSON lines: one object per non-blank line."""
    text = _text(payload)
    if text is None:
        assert isinstance(payload, Mapping)
        return [dict(payload)]
    lines = text.splitlines()
    try:
        return [_object(_loads(line)) for line in lines if line.strip()]
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON lines: {exc}") from None


BUILT_IN: dict[str, Decoder] = {"json": json_object, "jsonl": json_lines}


def decoder(spec: str | Decoder | None) -> Decoder:
    """A decoder by name (``json``, ``jsonl``), as ``module:function``, or itself."""
    if spec is None:
        return json_object
    if callable(spec):
        return spec
    if spec in BUILT_IN:
        return BUILT_IN[spec]
    module, _, attr = spec.partition(":")
    if not attr:
        raise ConfigError(
            f"decoder {spec!r} is neither {' nor '.join(map(repr, BUILT_IN))} nor "
            "'module:function'; pass one of those to --decoder"
        )
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"decoder {spec!r} cannot be loaded ({exc}); check --decoder") from None
    if not callable(found):
        raise ConfigError(f"decoder {spec!r} is not a function; check --decoder")
    return found
