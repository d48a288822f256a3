"""Feature logging settings of a feature service (Feast's ``LoggingConfig``).

They are part of the service's spec (and its versions). A service with a ``logging_config``
has the vectors it serves, in process or from ``pitstop serve``, sampled at ``sample_rate``
per request and written as Parquet part files under the destination's ``path``
(``service=<name>/date=<YYYY-MM-DD>/``) by :mod:`pitstop.quality.feature_log`, off the
request path; ``pitstop monitor`` reads them (:mod:`pitstop.quality.monitor`). ``partition_by``
is accepted and not used: logs are partitioned by service and date.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pitstop.errors import DefinitionError


class FileLoggingDestination:
    """Logs written as Parquet files under ``path``.

    >>> FileLoggingDestination(path="data/logs").to_spec()["path"]
    'data/logs'
    """

    def __init__(
        self,
        *,
        path: str,
        partition_by: Sequence[str] | None = None,
        s3_endpoint_override: str = "",
    ) -> None:
        if not isinstance(path, str) or not path:
            raise DefinitionError(
                f"FileLoggingDestination: path must be a folder path, got {path!r}"
            )
        parts = list(partition_by or [])
        if not all(isinstance(p, str) and p for p in parts):
            raise DefinitionError("FileLoggingDestination: partition_by must list column names")
        self.path = path
        self.partition_by = tuple(parts)
        self.s3_endpoint_override = str(s3_endpoint_override or "")

    def to_spec(self) -> dict[str, Any]:
        return {
            "type": "file",
            "path": self.path,
            "partition_by": list(self.partition_by),
            "s3_endpoint_override": self.s3_endpoint_override,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> FileLoggingDestination:
        return cls(
            path=spec["path"],
            partition_by=spec.get("partition_by"),
            s3_endpoint_override=spec.get("s3_endpoint_override", ""),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FileLoggingDestination) and self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"FileLoggingDestination(path={self.path!r})"


class LoggingConfig:
    """Where a feature service's served features are logged, and which share of requests.

    >>> LoggingConfig(destination=FileLoggingDestination(path="logs"), sample_rate=0.5).sample_rate
    0.5
    """

    def __init__(self, destination: FileLoggingDestination, sample_rate: float = 1.0) -> None:
        if not isinstance(destination, FileLoggingDestination):
            raise DefinitionError(
                f"LoggingConfig: destination must be a FileLoggingDestination, got {destination!r}"
            )
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | float):
            raise DefinitionError(
                f"LoggingConfig: sample_rate must be a number, got {sample_rate!r}"
            )
        if not 0 < sample_rate <= 1:
            raise DefinitionError(
                f"LoggingConfig: sample_rate must be in (0, 1], got {sample_rate}"
            )
        self.destination = destination
        self.sample_rate = float(sample_rate)

    def to_spec(self) -> dict[str, Any]:
        return {"destination": self.destination.to_spec(), "sample_rate": self.sample_rate}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> LoggingConfig:
        return cls(
            destination=FileLoggingDestination.from_spec(spec["destination"]),
            sample_rate=spec.get("sample_rate", 1.0),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LoggingConfig) and self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return hash(self.sample_rate)

    def __repr__(self) -> str:
        return f"LoggingConfig(destination={self.destination!r}, sample_rate={self.sample_rate})"
