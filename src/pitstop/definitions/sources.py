"""Data sources: where feature rows come from (files, pushes, requests)."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from pitstop.definitions.base import (
    Described,
    check_name,
    check_text,
    check_ttl,
    duration,
    seconds,
    unique,
)
from pitstop.definitions.field import Field, as_fields
from pitstop.definitions.formats import StreamFormat, stream_format, stream_format_from_spec
from pitstop.errors import DataSourceError, DefinitionError, RetrievalError

FILE_FORMATS = ("parquet", "csv")


class PushMode(enum.Enum):
    """Where :meth:`FeatureStore.push` writes."""

    ONLINE = 0
    OFFLINE = 1
    ONLINE_AND_OFFLINE = 2


def push_mode(value: Any) -> PushMode:
    """``value`` as a :class:`PushMode`: a member, or its name in any case (``"online"``,
    ``"offline"``, ``"online_and_offline"``, as the HTTP API takes them)."""
    if isinstance(value, PushMode):
        return value
    if isinstance(value, str):
        found = PushMode.__members__.get(value.upper())
        if found is not None:
            return found
    allowed = ", ".join(repr(m.name.lower()) for m in PushMode)
    raise RetrievalError(
        f"'to': {value!r} is not a push mode; allowed: {allowed} (any case) or a PushMode "
        "member such as PushMode.ONLINE_AND_OFFLINE"
    )


class DataSource(Described):
    """Base of all sources; sources are registered under kind ``data_source``."""

    kind = "data_source"
    source_type: str = "abstract"

    def _common(
        self, name: str, description: str, tags: Mapping[str, str] | None, owner: str
    ) -> None:
        self._set(name=check_name(name, type(self).__name__))
        self._set_described(f"{type(self).__name__} {name!r}", description, tags, owner)

    def _common_spec(self) -> dict[str, Any]:
        return {"type": self.source_type, "name": self.name, **self._described_spec()}


def _default_source_name(path: str) -> str:
    stem = Path(path.rstrip("/")).name.split(".")[0]
    stem = re.sub(r"[^A-Za-z0-9_.\-]", "_", stem).lstrip(".-")
    return f"{stem}_source" if stem else "source"


class FileSource(DataSource):
    """Feature rows in Parquet or CSV files.

    A relative ``path`` is resolved against the feature repo root (the folder holding
    ``feature_store.yaml``), whatever the working directory.

    >>> src = FileSource(path="data/user_features.parquet", timestamp_field="event_timestamp")
    >>> src.name, src.file_format
    ('user_features_source', 'parquet')
    """

    source_type = "file"
    path: str
    timestamp_field: str
    created_timestamp_column: str
    field_mapping: dict[str, str]
    file_format: str

    def __init__(
        self,
        *,
        path: str | Path,
        timestamp_field: str = "",
        created_timestamp_column: str = "",
        field_mapping: Mapping[str, str] | None = None,
        file_format: object = None,
        name: str | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        owner: str = "",
        event_timestamp_column: str | None = None,
    ) -> None:
        if not isinstance(path, str | Path) or not str(path):
            raise DefinitionError(f"FileSource {name!r}: path must be a file path, got {path!r}")
        path = str(path)
        name = name or _default_source_name(path)
        self._common(name, description, tags, owner)
        what = f"FileSource {name!r}"
        if event_timestamp_column and timestamp_field and event_timestamp_column != timestamp_field:
            raise DefinitionError(
                f"{what}: timestamp_field={timestamp_field!r} and the legacy "
                f"event_timestamp_column={event_timestamp_column!r} disagree; give only "
                "timestamp_field"
            )
        ts = timestamp_field or event_timestamp_column or ""
        if not isinstance(ts, str):
            raise DefinitionError(f"{what}: timestamp_field must be a column name")
        mapping = dict(field_mapping or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
            raise DefinitionError(f"{what}: field_mapping must map column names to names")
        self._set(
            path=path,
            timestamp_field=ts,
            created_timestamp_column=check_text(
                created_timestamp_column, "created_timestamp_column", what
            ),
            field_mapping=mapping,
            file_format=_file_format(file_format, path, what),
        )

    def resolve_path(self, repo_root: str | Path | None) -> str:
        """The absolute path of the data; relative paths are under ``repo_root``."""
        if "://" in self.path or Path(self.path).is_absolute() or repo_root is None:
            return self.path
        return str(Path(repo_root) / self.path)

    def to_spec(self) -> dict[str, Any]:
        return {
            **self._common_spec(),
            "path": self.path,
            "timestamp_field": self.timestamp_field,
            "created_timestamp_column": self.created_timestamp_column,
            "field_mapping": self.field_mapping,
            "file_format": self.file_format,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> FileSource:
        return cls(
            path=spec["path"],
            timestamp_field=spec.get("timestamp_field", ""),
            created_timestamp_column=spec.get("created_timestamp_column", ""),
            field_mapping=spec.get("field_mapping"),
            file_format=spec.get("file_format"),
            name=spec["name"],
            description=spec.get("description", ""),
            tags=spec.get("tags"),
            owner=spec.get("owner", ""),
        )


def _file_format(value: object, path: str, what: str) -> str:
    if value is None:
        return "csv" if path.lower().endswith(".csv") else "parquet"
    text = value if isinstance(value, str) else type(value).__name__.removesuffix("Format")
    text = text.lower()
    if text not in FILE_FORMATS:
        raise DefinitionError(
            f"{what}: file_format {value!r} is not supported; allowed: {', '.join(FILE_FORMATS)}"
        )
    return text


class SparkSource(FileSource):
    """Feature rows Spark reads: a table of its catalog, a SQL query, or files at ``path``
    (Feast's ``SparkSource``; exactly one of the three).

    A table or query needs the Spark offline engine (``offline_store: {type: spark}``); files
    are read like a :class:`FileSource`'s by any engine.

    >>> src = SparkSource(table="analytics.driver_stats", timestamp_field="event_timestamp")
    >>> src.name, src.table
    ('driver_stats_source', 'analytics.driver_stats')
    """

    source_type = "spark"
    table: str
    query: str

    def __init__(
        self,
        *,
        name: str | None = None,
        table: str | None = None,
        query: str | None = None,
        path: str | Path | None = None,
        file_format: object = None,
        timestamp_field: str = "",
        created_timestamp_column: str = "",
        field_mapping: Mapping[str, str] | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        owner: str = "",
        event_timestamp_column: str | None = None,
    ) -> None:
        what = f"SparkSource {name!r}"
        given = [k for k, v in (("table", table), ("query", query), ("path", path)) if v]
        if len(given) != 1:
            got = f"got {' and '.join(given)}" if given else "got none"
            raise DefinitionError(f"{what}: give exactly one of table, query or path ({got})")
        for key, value in (("table", table), ("query", query)):
            if value is not None and not isinstance(value, str):
                raise DefinitionError(f"{what}: {key} must be a string, got {value!r}")
        if query and not name:
            raise DefinitionError(f"{what}: a SparkSource over a query needs a name")
        if table and not name:
            name = _default_source_name(table.rsplit(".", 1)[-1])
        super().__init__(
            path=path or "-",  # a table or query has no files; see resolve_path
            timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column,
            field_mapping=field_mapping,
            file_format=file_format,
            name=name,
            description=description,
            tags=tags,
            owner=owner,
            event_timestamp_column=event_timestamp_column,
        )
        self._set(path=str(path) if path else "", table=table or "", query=query or "")

    @property
    def in_catalog(self) -> bool:
        """Whether the rows come from Spark's catalog (a table or query), not from files."""
        return bool(self.table or self.query)

    def resolve_path(self, repo_root: str | Path | None) -> str:
        """The absolute path of the files; a table or query source has none (an error)."""
        if self.in_catalog:
            what = f"the Spark table {self.table!r}" if self.table else "a Spark SQL query"
            raise DataSourceError(
                f"SparkSource {self.name!r} reads {what}, not files; only the Spark offline "
                "engine (offline_store: {type: spark} in feature_store.yaml) reads or writes "
                "its rows."
            )
        return super().resolve_path(repo_root)

    def to_spec(self) -> dict[str, Any]:
        return {**super().to_spec(), "table": self.table, "query": self.query}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> SparkSource:
        return cls(
            name=spec["name"],
            table=spec.get("table") or None,
            query=spec.get("query") or None,
            path=spec.get("path") or None,
            file_format=spec.get("file_format"),
            timestamp_field=spec.get("timestamp_field", ""),
            created_timestamp_column=spec.get("created_timestamp_column", ""),
            field_mapping=spec.get("field_mapping"),
            description=spec.get("description", ""),
            tags=spec.get("tags"),
            owner=spec.get("owner", ""),
        )


class PushSource(DataSource):
    """Rows pushed by applications (``store.push``), kept offline in ``batch_source``."""

    source_type = "push"
    batch_source: FileSource

    def __init__(
        self,
        *,
        name: str,
        batch_source: FileSource,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self._common(name, description, tags, owner)
        if not isinstance(batch_source, FileSource):
            raise DefinitionError(
                f"PushSource {name!r}: batch_source must be a FileSource, "
                f"got {type(batch_source).__name__}"
            )
        self._set(batch_source=batch_source)

    @property
    def timestamp_field(self) -> str:
        return self.batch_source.timestamp_field

    @property
    def created_timestamp_column(self) -> str:
        return self.batch_source.created_timestamp_column

    @property
    def field_mapping(self) -> dict[str, str]:
        return self.batch_source.field_mapping

    def to_spec(self) -> dict[str, Any]:
        return {**self._common_spec(), "batch_source": self.batch_source.to_spec()}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> PushSource:
        return cls(
            name=spec["name"],
            batch_source=source_from_spec(spec["batch_source"]),  # type: ignore[arg-type]
            description=spec.get("description", ""),
            tags=spec.get("tags"),
            owner=spec.get("owner", ""),
        )


class RequestSource(DataSource):
    """Values that arrive with the request (for on-demand feature views)."""

    source_type = "request"
    schema: tuple[Field, ...]

    def __init__(
        self,
        *,
        name: str,
        schema: Sequence[Field],
        description: str = "",
        tags: Mapping[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self._common(name, description, tags, owner)
        fields = as_fields(schema, f"RequestSource {name!r}")
        if not fields:
            raise DefinitionError(f"RequestSource {name!r}: schema must list at least one Field")
        unique([f.name for f in fields], f"RequestSource {name!r}")
        self._set(schema=fields)

    def to_spec(self) -> dict[str, Any]:
        return {**self._common_spec(), "schema": [f.to_spec() for f in self.schema]}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> RequestSource:
        return cls(
            name=spec["name"],
            schema=[Field.from_spec(f) for f in spec["schema"]],
            description=spec.get("description", ""),
            tags=spec.get("tags"),
            owner=spec.get("owner", ""),
        )


class KafkaSource(DataSource):
    """A Kafka topic, kept as a definition: registered, versioned and listed, but pitstop does
    not consume Kafka. Feed the views with a :class:`PushSource` over the same batch source
    (``store.push`` or ``pitstop ingest``)."""

    source_type = "kafka"
    bootstrap_servers: str
    topic: str
    timestamp_field: str
    created_timestamp_column: str
    field_mapping: dict[str, str]
    message_format: StreamFormat | None
    batch_source: FileSource | None
    watermark_delay_threshold: timedelta | None

    def __init__(
        self,
        *,
        name: str,
        timestamp_field: str = "",
        message_format: StreamFormat | None = None,
        bootstrap_servers: str = "",
        kafka_bootstrap_servers: str | None = None,
        topic: str = "",
        created_timestamp_column: str = "",
        field_mapping: Mapping[str, str] | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        owner: str = "",
        batch_source: FileSource | None = None,
        watermark_delay_threshold: timedelta | None = None,
    ) -> None:
        self._common(name, description, tags, owner)
        what = f"KafkaSource {name!r}"
        if batch_source is not None and not isinstance(batch_source, FileSource):
            raise DefinitionError(
                f"{what}: batch_source must be a FileSource, got {batch_source!r}"
            )
        mapping = dict(field_mapping or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
            raise DefinitionError(f"{what}: field_mapping must map column names to names")
        self._set(
            bootstrap_servers=check_text(
                bootstrap_servers or kafka_bootstrap_servers, "bootstrap_servers", what
            ),
            topic=check_text(topic, "topic", what),
            timestamp_field=check_text(timestamp_field, "timestamp_field", what),
            created_timestamp_column=check_text(
                created_timestamp_column, "created_timestamp_column", what
            ),
            field_mapping=mapping,
            message_format=stream_format(message_format, what),
            batch_source=batch_source,
            watermark_delay_threshold=check_ttl(watermark_delay_threshold, what),
        )

    def to_spec(self) -> dict[str, Any]:
        fmt = self.message_format
        batch = self.batch_source
        return {
            **self._common_spec(),
            "bootstrap_servers": self.bootstrap_servers,
            "topic": self.topic,
            "timestamp_field": self.timestamp_field,
            "created_timestamp_column": self.created_timestamp_column,
            "field_mapping": self.field_mapping,
            "message_format": None if fmt is None else fmt.to_spec(),
            "batch_source": None if batch is None else batch.to_spec(),
            "watermark_delay_threshold_seconds": seconds(self.watermark_delay_threshold),
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> KafkaSource:
        batch = spec.get("batch_source")
        return cls(
            name=spec["name"],
            timestamp_field=spec.get("timestamp_field", ""),
            message_format=stream_format_from_spec(spec.get("message_format")),
            bootstrap_servers=spec.get("bootstrap_servers", ""),
            topic=spec.get("topic", ""),
            created_timestamp_column=spec.get("created_timestamp_column", ""),
            field_mapping=spec.get("field_mapping"),
            description=spec.get("description", ""),
            tags=spec.get("tags"),
            owner=spec.get("owner", ""),
            batch_source=None if batch is None else FileSource.from_spec(batch),
            watermark_delay_threshold=duration(spec.get("watermark_delay_threshold_seconds")),
        )


def not_ingested(source: object) -> str:
    """A hint when a definition-only source (Kafka) is used where rows must flow, else ``""``."""
    if isinstance(source, KafkaSource):
        return (
            f"; KafkaSource {source.name!r} is kept as a definition only (pitstop does not "
            "consume Kafka): feed the view from a PushSource over the same batch source and "
            "write rows with store.push or `pitstop ingest`"
        )
    return ""


SOURCE_TYPES: dict[str, type[DataSource]] = {
    "file": FileSource,
    "push": PushSource,
    "request": RequestSource,
    "kafka": KafkaSource,
    "spark": SparkSource,
}


def source_from_spec(spec: Mapping[str, Any]) -> DataSource:
    cls = SOURCE_TYPES.get(spec.get("type", ""))
    if cls is None:
        raise DefinitionError(
            f"data source {spec.get('name')!r}: unknown type {spec.get('type')!r}"
        )
    return cls.from_spec(spec)
