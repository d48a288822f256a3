"""``pitstop.data_source`` (Feast's module path for sources and :class:`PushMode`)."""

from pitstop.definitions.sources import (
    DataSource,
    FileSource,
    KafkaSource,
    PushMode,
    PushSource,
    RequestSource,
)

__all__ = ["DataSource", "FileSource", "KafkaSource", "PushMode", "PushSource", "RequestSource"]
