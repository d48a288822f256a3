"""File and message formats (Feast's ``feast.data_format``): small values saying how data is laid
out. ``FileSource(file_format=ParquetFormat())`` uses the file ones; ``KafkaSource`` keeps the
message one in its definition."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pitstop.definitions.base import check_text
from pitstop.errors import DefinitionError


class FileFormat:
    """Base of file formats; ``FileSource`` reads the format's name (``parquet``, ``csv``)."""

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self).__name__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ParquetFormat(FileFormat):
    """Apache Parquet files (the default for ``.parquet`` paths)."""


class CsvFormat(FileFormat):
    """Comma-separated text files with a header row."""


class StreamFormat:
    """How stream messages are encoded; kept in the definition, not used to decode."""

    format_type: str = "abstract"
    schema: str

    def __init__(self, schema: str = "") -> None:
        self.schema = check_text(schema, "schema", type(self).__name__)

    def to_spec(self) -> dict[str, Any]:
        return {"type": self.format_type, "schema": self.schema}

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, StreamFormat)
            and type(self) is type(other)
            and (self.to_spec() == other.to_spec())
        )

    def __hash__(self) -> int:
        return hash((self.format_type, self.schema))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.schema!r})"


class JsonFormat(StreamFormat):
    """JSON messages; ``schema_json`` is the message schema as DDL text."""

    format_type = "json"

    def __init__(self, schema_json: str = "") -> None:
        super().__init__(schema_json)


class AvroFormat(StreamFormat):
    """Avro messages; ``schema_json`` is the Avro schema."""

    format_type = "avro"

    def __init__(self, schema_json: str = "") -> None:
        super().__init__(schema_json)


class ProtoFormat(StreamFormat):
    """Protocol Buffers messages; ``class_path`` names the message class."""

    format_type = "proto"

    def __init__(self, class_path: str = "") -> None:
        super().__init__(class_path)


STREAM_FORMATS: dict[str, type[StreamFormat]] = {
    f.format_type: f for f in (JsonFormat, AvroFormat, ProtoFormat)
}


def stream_format(value: object, what: str) -> StreamFormat | None:
    if value is None or isinstance(value, StreamFormat):
        return value
    raise DefinitionError(
        f"{what}: message_format must be JsonFormat, AvroFormat or ProtoFormat, got {value!r}"
    )


def stream_format_from_spec(spec: Mapping[str, Any] | None) -> StreamFormat | None:
    if not spec:
        return None
    return STREAM_FORMATS[spec["type"]](spec.get("schema", ""))
