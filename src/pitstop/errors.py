"""The one error hierarchy of pitstop.

Every error pitstop raises on purpose is a :class:`PitstopError`. Each subclass also derives
from the builtin that describes it best, so ``except ValueError`` keeps working for callers who
do not know pitstop::

    PitstopError
    ├── ConfigError            (ValueError)      feature_store.yaml or a config object is wrong
    ├── DefinitionError        (ValueError)      a definition is invalid at construction
    ├── RepoError              (ValueError)      a feature repo cannot be loaded
    ├── NotFoundError          (LookupError)     a named object, feature or version does not exist
    ├── RegistryError          (RuntimeError)    the registry cannot complete an operation
    ├── RetrievalError         (ValueError)      a feature request is malformed (columns, types)
    ├── DataSourceError        (ValueError)      a source's data is missing or unreadable
    ├── DataQualityError       (ValueError)      data broke a view's expectations (policy reject)
    ├── BackendUnavailableError(ConnectionError) a server (Redis, PostgreSQL) does not answer
    ├── PermissionDeniedError  (PermissionError) the caller may not do this (access policies)
    └── MissingExtraError      (ImportError)     an optional dependency is not installed

Messages name the object, the file or key, and the fix. Mapping errors to HTTP status codes or
CLI exit codes is the job of ``pitstop.server`` and ``pitstop.cli``, not of these classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class PitstopError(Exception):
    """Root of every error pitstop raises on purpose."""


class ConfigError(PitstopError, ValueError):
    """The configuration (``feature_store.yaml`` or a config object) is invalid."""


class DefinitionError(PitstopError, ValueError):
    """A definition (entity, source, view, service) is invalid."""


class RepoError(PitstopError, ValueError):
    """A feature repository cannot be loaded."""


class NotFoundError(PitstopError, LookupError):
    """A named object, feature or version does not exist."""

    def __str__(self) -> str:  # LookupError would quote the message like a KeyError
        return str(self.args[0]) if self.args else ""


class RegistryError(PitstopError, RuntimeError):
    """The registry could not complete an operation."""


class RetrievalError(PitstopError, ValueError):
    """A feature retrieval request is malformed."""


class DataSourceError(PitstopError, ValueError):
    """A data source's data is missing or unreadable."""


class DataQualityError(PitstopError, ValueError):
    """Data broke the expectations of a view whose policy is ``reject``; nothing was written.

    ``reports`` holds one :class:`~pitstop.quality.ValidationReport` per view that failed.
    """

    def __init__(self, message: str, reports: Sequence[object] = ()) -> None:
        super().__init__(message)
        self.reports = list(reports)


class BackendUnavailableError(PitstopError, ConnectionError):
    """A backend server does not answer."""


class PermissionDeniedError(PitstopError, PermissionError):
    """The caller is not allowed to do this by the project's access policies."""


class MissingExtraError(PitstopError, ImportError):
    """An optional dependency is not installed."""


def suggest(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """Return a ``" Did you mean 'x'?"`` hint for ``name`` among ``candidates``, or ``""``."""
    import difflib

    pool = sorted(set(candidates))
    close = difflib.get_close_matches(name, pool, n=n, cutoff=0.5)
    if close:
        return " Did you mean " + " or ".join(repr(c) for c in close) + "?"
    if pool and len(pool) <= 10:
        return " Known: " + ", ".join(repr(c) for c in pool) + "."
    return ""


def require(module: str, extra: str) -> object:
    """Import an optional dependency or raise :class:`MissingExtraError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module!r} is not installed; install it with: pip install 'pitstop[{extra}]'"
        ) from exc
