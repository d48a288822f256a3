"""uvicorn's httptools protocol over a :class:`~pitstop.server.transport.CoalescingTransport`.

A module of its own so that the class can be pickled into ``--workers`` processes and so that
importing it fails cleanly (``ImportError``) where httptools is not installed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pitstop.server.transport import CoalescingTransport


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """Sends each response (status line, headers, body) in one write."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing: Any = CoalescingTransport(transport, self.loop)
        super().connection_made(coalescing)
