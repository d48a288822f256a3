"""``pitstop.aggregation`` (Feast's module path for :class:`Aggregation`)."""

from pitstop.definitions.stream import Aggregation

__all__ = ["Aggregation"]
