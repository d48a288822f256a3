"""HTTP status codes for pitstop's errors: the one table, the error body, the error log line.

Every failed request answers ``{"error": {"type": "<class name>", "message": "..."}}``. For
pitstop's own errors the type is the :class:`~pitstop.errors.PitstopError` subclass; the few
protocol-level refusals that are not about feature data (a missing API key, a wrong method, a
body too large) are :class:`HTTPError` and carry their own type name (``Unauthorized``, ...).

Each error response writes one JSON line to the ``pitstop.server`` logger: time, method, path,
status, type and message (plus the traceback for a 500). Request headers are never logged.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Sequence

from pitstop.errors import (
    BackendUnavailableError,
    ConfigError,
    DataQualityError,
    DataSourceError,
    DefinitionError,
    MissingExtraError,
    NotFoundError,
    PermissionDeniedError,
    PitstopError,
    RegistryError,
    RepoError,
    RetrievalError,
)

logger = logging.getLogger("pitstop.server")

#: The one mapping of pitstop's error hierarchy to HTTP status codes. The most specific class
#: listed wins (the table is searched along the exception's MRO).
STATUS: dict[type[BaseException], int] = {
    RetrievalError: 400,  # the request is malformed: JSON, shape, key types, request data
    ConfigError: 400,  # a value in the request is not a valid setting (e.g. a push mode)
    NotFoundError: 404,  # a named view, feature, service or push source does not exist
    PermissionDeniedError: 403,  # the project's access policies do not allow this caller
    DefinitionError: 422,  # the named object cannot do this (e.g. write to an on-demand view)
    DataSourceError: 422,  # the source data a materialization needs is missing or unreadable
    DataQualityError: 422,  # the rows break the view's expectations (policy reject)
    BackendUnavailableError: 503,  # the online store or registry server does not answer
    RegistryError: 500,
    RepoError: 500,
    MissingExtraError: 500,
    PitstopError: 500,
}


class HTTPError(Exception):
    """A protocol-level refusal (auth, method, size): not an error of the feature data."""

    def __init__(
        self, status: int, kind: str, message: str, headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.headers = list(headers)


def status_of(exc: BaseException) -> int:
    """The HTTP status for ``exc``: :data:`STATUS` along its MRO, 500 for anything else."""
    if isinstance(exc, HTTPError):
        return exc.status
    for cls in type(exc).__mro__:
        found = STATUS.get(cls)
        if found is not None:
            return found
    return 500


def error_type(exc: BaseException) -> str:
    """The ``type`` of the error body: the PitstopError subclass (or HTTPError kind)."""
    if isinstance(exc, HTTPError):
        return exc.kind
    if isinstance(exc, PitstopError):
        return type(exc).__name__
    return "InternalError"


def error_body(exc: BaseException, status: int) -> dict[str, dict[str, str]]:
    """The JSON error body; a 500 from a non-pitstop exception does not leak its details."""
    if status >= 500 and not isinstance(exc, PitstopError | HTTPError):
        message = "internal error; see the server log"
    else:
        message = str(exc) or type(exc).__name__
    return {"error": {"type": error_type(exc), "message": message}}


def log_error(method: str, path: str, status: int, exc: BaseException) -> None:
    """Write the one JSON log line of a failed request."""
    record: dict[str, object] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
        "level": "error" if status >= 500 else "warning",
        "event": "request_failed",
        "method": method,
        "path": path,
        "status": status,
        "type": error_type(exc) if status < 500 else type(exc).__name__,
        "message": str(exc),
    }
    if status >= 500:
        record["traceback"] = "".join(traceback.format_exception(exc)).rstrip()
    logger.log(logging.ERROR if status >= 500 else logging.WARNING, json.dumps(record))
