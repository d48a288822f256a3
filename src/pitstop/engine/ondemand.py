"""Run on-demand feature views over Arrow data, and cast their outputs to the declared types."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pitstop.definitions.on_demand import OnDemandFeatureView
from pitstop.engine.request import OnDemandRequest, RequestPlan
from pitstop.errors import PitstopError, RetrievalError
from pitstop.types import to_arrow

if TYPE_CHECKING:
    import pyarrow as pa

T = TypeVar("T")


def run_on_demand(view: OnDemandFeatureView, inputs: pa.Table | pa.RecordBatch) -> pa.Table:
    """The view's declared features computed from ``inputs`` (one row out per row in).

    ``inputs`` holds the source views' features and the request fields by name. Outputs are cast
    to the declared dtypes (a float64 result declared ``Float32`` is narrowed); ``x/0`` stays
    ``±inf`` and ``0/0`` (NaN) becomes null.
    """
    import pyarrow as pa

    rows = inputs.num_rows
    if view.mode == "pandas":
        result = call_udf(view, inputs.to_pandas())
        if not hasattr(result, "columns"):
            raise RetrievalError(
                f"on-demand feature view {view.name!r}: the function must return a pandas "
                f"DataFrame, got {type(result).__name__}"
            )
        columns: Mapping[str, Any] = {c: result[c] for c in result.columns}
    else:
        result = call_udf(view, inputs.to_pydict())
        if not isinstance(result, Mapping):
            raise RetrievalError(
                f"on-demand feature view {view.name!r}: a python-mode function must return a "
                f"dict of lists, got {type(result).__name__}"
            )
        columns = result
    arrays = [cast_output(view, f.name, columns, rows, f.dtype) for f in view.schema]
    return pa.Table.from_arrays(arrays, names=[f.name for f in view.schema])


def call_udf(view: OnDemandFeatureView, data: Any) -> Any:
    """Run the view's function; its failures become errors naming the view."""
    try:
        return view.udf(data)
    except KeyError as exc:
        raise RetrievalError(
            f"on-demand feature view {view.name!r}: its function reads column {exc.args[0]!r}, "
            "which is not among its inputs; add the feature view or request source that "
            "provides it to the view's sources"
        ) from exc
    except PitstopError:
        raise
    except Exception as exc:
        raise RetrievalError(
            f"on-demand feature view {view.name!r}: its function failed on these inputs "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def cast_output(
    view: OnDemandFeatureView, name: str, columns: Mapping[str, Any], rows: int, dtype: Any
) -> pa.Array:
    """Column ``name`` of a function's result as an Arrow array of the declared dtype."""
    import pyarrow as pa

    if name not in columns:
        raise RetrievalError(
            f"on-demand feature view {view.name!r}: the function did not return column "
            f"{name!r} declared in its schema (returned: {sorted(columns)})"
        )
    values = columns[name]
    try:
        array = pa.Array.from_pandas(values) if hasattr(values, "dtype") else pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise RetrievalError(
            f"on-demand feature view {view.name!r}: column {name!r} cannot be converted ({exc})"
        ) from exc
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if len(array) != rows:
        raise RetrievalError(
            f"on-demand feature view {view.name!r}: column {name!r} has {len(array)} values "
            f"for {rows} input rows; return one value per row"
        )
    target = to_arrow(dtype)
    if array.type == target:
        return array
    try:
        return array.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise RetrievalError(
            f"on-demand feature view {view.name!r}: column {name!r} holds {array.type} values "
            f"that cannot be cast to the declared {dtype} ({exc}); fix the function or the "
            "schema"
        ) from exc


def input_columns(
    plan: RequestPlan,
    od: OnDemandRequest,
    features: Mapping[str, T],
    request: Mapping[str, T],
    where: str,
) -> dict[str, T]:
    """The columns one on-demand view's function receives, by name: its sources' features (as
    ``feature`` and ``view__feature``, from the joined ``features``) and its request fields
    (from ``request``). Offline the columns are Arrow arrays, online Python lists."""
    views = {v.projection.name_to_use: v for v in plan.views}
    inputs: dict[str, T] = {}
    for src in od.view.sources:
        for col in views[src.name_to_use].columns:
            if src.features is None or col.feature.name in src.features:
                inputs.setdefault(col.feature.name, features[col.name])
                inputs.setdefault(f"{src.name_to_use}__{col.feature.name}", features[col.name])
    for req in od.view.request_sources:
        for f in req.schema:
            if f.name not in request:
                raise RetrievalError(
                    f"on-demand feature view {od.view.name!r} needs request field {f.name!r} "
                    f"(request source {req.name!r}); add {f.name!r} to {where}"
                )
            inputs.setdefault(f.name, request[f.name])
    return inputs


def on_demand_transform(plan: RequestPlan) -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    """A per-batch step that appends on-demand outputs, drops hidden input columns and puts
    the features in the requested order (after the entity columns)."""
    import pyarrow as pa

    hidden = set(plan.hidden_columns)
    features = set(plan.output_names)

    def transform(batch: pa.RecordBatch) -> pa.RecordBatch:
        names = list(batch.schema.names)
        arrays = list(batch.columns)
        columns = dict(zip(batch.schema.names, batch.columns, strict=True))
        for od in plan.on_demand:
            inputs = input_columns(plan, od, columns, columns, "the entity data")
            out = run_on_demand(od.view, pa.table(inputs))
            for col in od.columns:
                names.append(col.name)
                arrays.append(out.column(col.feature.name).combine_chunks())
        index = {n: i for i, n in enumerate(names)}
        order = [n for n in names if n not in hidden and n not in features]
        order += plan.output_names
        return pa.RecordBatch.from_arrays([arrays[index[n]] for n in order], names=order)

    return transform
