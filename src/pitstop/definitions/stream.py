"""Stream feature views: windowed aggregations of pushed or streamed events."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Self

from pitstop.definitions.base import Definition, check_text, duration, seconds, unique
from pitstop.definitions.entity import Entity
from pitstop.definitions.feature_view import FeatureView
from pitstop.definitions.field import Field
from pitstop.definitions.sources import DataSource, PushSource, not_ingested
from pitstop.errors import DefinitionError
from pitstop.types import FeastType, Float64, Int64

if TYPE_CHECKING:
    from pitstop.quality.expectations import Expectation

FUNCTIONS = ("count", "sum", "mean", "avg", "min", "max", "count_distinct", "last")


def window_label(window: timedelta) -> str:
    """``1h``, ``30m``, ``7d``, ``90s``: the window part of default aggregation names."""
    if window.total_seconds() % 1:
        return f"{round(window.total_seconds() * 1000)}ms"
    total = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if total % size == 0:
            return f"{total // size}{unit}"
    return f"{total}s"


class Aggregation(Definition):
    """A windowed aggregation: ``function`` of ``column`` over the last ``time_window``.

    The value at time ``t`` covers events with ``t - time_window < event_ts <= t``.

    >>> Aggregation(column="amount", function="sum", time_window=timedelta(hours=1)).output_name
    'sum_amount_1h'
    """

    kind = "aggregation"
    column: str
    function: str
    time_window: timedelta
    slide_interval: timedelta | None
    name: str

    def __init__(
        self,
        column: str = "",
        function: str = "",
        time_window: timedelta | None = None,
        slide_interval: timedelta | None = None,
        name: str | None = None,
    ) -> None:
        what = f"Aggregation({function!r} of {column!r})"
        if not isinstance(column, str) or not column:
            raise DefinitionError(f"{what}: column is required")
        if function not in FUNCTIONS:
            raise DefinitionError(
                f"{what}: function {function!r} is not supported; allowed: {', '.join(FUNCTIONS)}"
            )
        if not isinstance(time_window, timedelta) or time_window <= timedelta(0):
            raise DefinitionError(f"{what}: time_window must be a positive timedelta")
        if slide_interval is not None and (
            not isinstance(slide_interval, timedelta)
            or not timedelta(0) < slide_interval <= time_window
        ):
            raise DefinitionError(
                f"{what}: slide_interval must be a positive timedelta no longer than time_window"
            )
        self._set(
            column=column,
            function=function,
            time_window=time_window,
            slide_interval=slide_interval,
            name=check_text(name, "name", what),
        )

    @property
    def output_name(self) -> str:
        return self.name or f"{self.function}_{self.column}_{window_label(self.time_window)}"

    def to_spec(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "function": self.function,
            "time_window_seconds": seconds(self.time_window),
            "slide_interval_seconds": seconds(self.slide_interval),
            "name": self.name,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Aggregation:
        return cls(
            column=spec["column"],
            function=spec["function"],
            time_window=duration(spec["time_window_seconds"]),
            slide_interval=duration(spec.get("slide_interval_seconds")),
            name=spec.get("name") or None,
        )

    def __repr__(self) -> str:
        return f"Aggregation({self.function}({self.column}) over {self.time_window})"


def aggregation_fields(
    aggregations: Sequence[Aggregation], schema: Sequence[Field]
) -> tuple[Field, ...]:
    """Output features of ``aggregations``, each named by its explicit ``name``, else by the
    schema's field at its position when there are as many, else ``{function}_{column}_{window}``.

    A schema field of the output's name gives its dtype; otherwise count -> Int64, min, max and
    last -> the dtype of the aggregated column when the schema declares it, the rest -> Float64.
    """
    positional = len(schema) == len(aggregations)
    by_name = {f.name: f for f in schema}
    out: list[Field] = []
    for i, agg in enumerate(aggregations):
        name = agg.name or (schema[i].name if positional else agg.output_name)
        if name in by_name:
            out.append(by_name[name])
            continue
        column = by_name.get(agg.column)
        if agg.function in ("count", "count_distinct"):
            dtype: FeastType = Int64
        elif agg.function in ("min", "max", "last") and column is not None:
            dtype = column.dtype
        else:
            dtype = Float64
        out.append(Field(name=name, dtype=dtype))
    return tuple(out)


class StreamFeatureView(FeatureView):
    """A feature view fed by a stream or push source, optionally aggregating over windows."""

    kind = "stream_feature_view"
    aggregations: tuple[Aggregation, ...]
    stream_timestamp_field: str
    mode: str

    def __init__(
        self,
        *,
        name: str,
        source: DataSource,
        entities: Sequence[Entity | str] | None = None,
        ttl: timedelta | None = timedelta(0),
        schema: Sequence[Field] | None = None,
        aggregations: Sequence[Aggregation] | None = None,
        timestamp_field: str = "",
        online: bool = True,
        offline: bool = False,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        owner: str = "",
        mode: str = "python",
        udf: Callable[..., Any] | None = None,
        expectations: Sequence[Expectation] | None = None,
        expectation_policy: str | None = None,
    ) -> None:
        what = f"StreamFeatureView {name!r}"
        aggs = tuple(aggregations or ())
        for agg in aggs:
            if not isinstance(agg, Aggregation):
                raise DefinitionError(f"{what}: aggregations must be Aggregation objects")
        if udf is not None:
            raise DefinitionError(f"{what}: stream transformations (udf) are not supported yet")
        self._set(aggregations=aggs, mode=mode)
        if isinstance(source, PushSource):  # known before the view checks its expectations
            ts = timestamp_field or source.batch_source.timestamp_field
            self._set(stream_timestamp_field=check_text(ts, "timestamp_field", what))
        super().__init__(
            name=name,
            source=source,
            entities=entities,
            ttl=ttl,
            schema=schema,
            online=online,
            offline=offline,
            description=description,
            tags=tags,
            owner=owner,
            expectations=expectations,
            expectation_policy=expectation_policy,
        )
        if aggs:
            unique([f.name for f in self.features], what)

    def _check_source(self, source: object, what: str) -> None:
        if not isinstance(source, PushSource):
            raise DefinitionError(
                f"{what}: source must be a PushSource (streams arrive by push), "
                f"got {type(source).__name__}{not_ingested(source)}"
            )

    def _with_keys(self, keys: tuple[str, ...]) -> None:
        super()._with_keys(keys)
        if self.aggregations:
            fields = [f for f in self.schema if f.name not in set(keys)]
            self._set(_features=aggregation_fields(self.aggregations, fields))

    @property
    def timestamp_field(self) -> str:
        return self.stream_timestamp_field

    def _columns(self, entities: Sequence[Entity | str] | None) -> dict[str, str | None]:
        """Expectations of a windowed view judge the events: the aggregated columns too."""
        inputs: dict[str, str | None] = {a.column: None for a in self.aggregations}
        return {**inputs, **super()._columns(entities)}

    def to_spec(self) -> dict[str, Any]:
        return {
            **super().to_spec(),
            "aggregations": [a.to_spec() for a in self.aggregations],
            "timestamp_field": self.stream_timestamp_field,
            "mode": self.mode,
        }

    @classmethod
    def _kwargs_from_spec(cls, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {
            **super()._kwargs_from_spec(spec),
            "aggregations": [Aggregation.from_spec(a) for a in spec.get("aggregations", [])],
            "timestamp_field": spec.get("timestamp_field", ""),
            "mode": spec.get("mode", "python"),
        }

    def resolve_entities(self, entities: Mapping[str, Entity]) -> Self:
        return super().resolve_entities(entities)
