"""Resolution of feature requests: naming, collisions, services, aliases, on-demand inputs."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pytest

from pitstop import (
    Aggregation,
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    RequestSource,
    StreamFeatureView,
    on_demand_feature_view,
)
from pitstop.engine.ondemand import on_demand_transform, run_on_demand
from pitstop.engine.request import build_plan, online_source
from pitstop.errors import DefinitionError, NotFoundError, RetrievalError
from pitstop.registry.plan import resolve
from pitstop.registry.snapshot import Snapshot
from pitstop.types import Float32, Float64, Int64, String

user = Entity(name="user", join_keys=["user_id"])
src = FileSource(path="u.parquet", timestamp_field="ts")
users = FeatureView(
    name="users",
    entities=[user],
    ttl=timedelta(days=1),
    source=src,
    schema=[Field(name="age", dtype=Int64), Field(name="score", dtype=Float64)],
)
other = FeatureView(
    name="other",
    entities=[user],
    source=src,
    schema=[Field(name="score", dtype=Float64), Field(name="tag", dtype=String)],
)
req = RequestSource(name="req", schema=[Field(name="bonus", dtype=Float64)])


@on_demand_feature_view(
    sources=[users, req], schema=[Field(name="boosted", dtype=Float32)], mode="python"
)
def boosted(inputs: dict[str, list[float]]) -> dict[str, list[float]]:
    return {"boosted": [s + b for s, b in zip(inputs["score"], inputs["bonus"], strict=True)]}


def snapshot(*objects: object) -> Snapshot:
    objs: dict[str, dict[str, object]] = {}
    for o in (user, users, other, boosted, *objects):
        objs.setdefault(o.kind, {})[o.name] = o  # type: ignore[attr-defined]
    return Snapshot(resolve(objs))  # type: ignore[arg-type]


def test_short_and_full_names_in_request_order() -> None:
    snap = snapshot()
    plan = build_plan(snap, ["users:score", "other:tag", "users:age"], False)
    assert plan.output_names == ("score", "tag", "age")
    full = build_plan(snap, ["users:score", "other:tag"], True)
    assert full.output_names == ("users__score", "other__tag")
    assert plan.entity_keys == ("user_id",)


def test_collision_names_both_views() -> None:
    with pytest.raises(RetrievalError, match=r"'score' is produced by both 'users' and 'other'"):
        build_plan(snapshot(), ["users:score", "other:score"], False)
    plan = build_plan(snapshot(), ["users:score", "other:score"], True)
    assert plan.output_names == ("users__score", "other__score")


def test_unknown_view_and_feature_suggest() -> None:
    with pytest.raises(NotFoundError, match=r"'usres'.*Did you mean 'users'"):
        build_plan(snapshot(), ["usres:age"], False)
    with pytest.raises(NotFoundError, match=r"no feature 'agee'.*Did you mean 'age'"):
        build_plan(snapshot(), ["users:agee"], False)
    with pytest.raises(RetrievalError, match=r"'users.age' is not of the form 'view:feature'"):
        build_plan(snapshot(), ["users.age"], False)


def test_service_with_alias_and_join_key_map() -> None:
    buyer = users.with_name("buyer").with_join_key_map({"user_id": "buyer_id"})
    svc = FeatureService(name="svc", features=[users[["age"]], buyer[["age"]]])
    plan = build_plan(snapshot(svc), svc, True)
    assert plan.output_names == ("users__age", "buyer__age")
    assert plan.entity_keys == ("user_id", "buyer_id")
    with pytest.raises(RetrievalError, match="'age' is produced by both 'users' and 'buyer'"):
        build_plan(snapshot(svc), svc, False)


def test_on_demand_inputs_are_fetched_hidden_and_dropped() -> None:
    plan = build_plan(snapshot(), ["boosted:boosted"], False)
    assert plan.output_names == ("boosted",)
    assert [f.name for f in plan.request_fields] == ["bonus"]
    hidden = plan.hidden_columns
    assert len(hidden) == 2 and all(h.startswith("__pitstop_input__users__") for h in hidden)
    batch = pa.record_batch(
        {"user_id": [1, 2], "bonus": [1.0, 2.0], hidden[0]: [10, None], hidden[1]: [0.5, 1.5]}
    )
    out = on_demand_transform(plan)(batch)
    assert out.schema.names == ["user_id", "bonus", "boosted"]
    assert out.column("boosted").to_pylist() == [1.5, 3.5]
    assert out.schema.field("boosted").type == pa.float32()


def test_missing_request_field_is_named() -> None:
    plan = build_plan(snapshot(), ["boosted:boosted"], False)
    hidden = plan.hidden_columns
    batch = pa.record_batch({"user_id": [1], hidden[0]: [1], hidden[1]: [0.5]})
    with pytest.raises(RetrievalError, match=r"needs request field 'bonus'"):
        on_demand_transform(plan)(batch)


def _pandas_view(returns: str) -> object:
    @on_demand_feature_view(sources=[users], schema=[Field(name="out", dtype=Int64)])
    def bad(inputs):  # type: ignore[no-untyped-def]
        import pandas as pd

        return pd.DataFrame({"out": [returns] * len(inputs)})

    return bad


def test_uncastable_output_names_the_column() -> None:
    view = _pandas_view("text")
    with pytest.raises(
        RetrievalError,
        match=r"column .out. holds (large_)?string values that cannot be "
        r"cast to the declared Int64",
    ):
        run_on_demand(view, pa.table({"age": [1], "score": [1.0]}))  # type: ignore[arg-type]


def test_division_by_zero_gives_inf_and_nan_gives_null() -> None:
    @on_demand_feature_view(sources=[users], schema=[Field(name="ratio", dtype=Float32)])
    def ratio(inputs):  # type: ignore[no-untyped-def]
        import pandas as pd

        return pd.DataFrame({"ratio": inputs["score"] / inputs["age"]})

    out = run_on_demand(ratio, pa.table({"age": [0, 0, 2], "score": [1.0, 0.0, 1.0]}))
    assert out.column("ratio").to_pylist() == [float("inf"), None, 0.5]
    assert out.schema.field("ratio").type == pa.float32()


# --- pinned versions ------------------------------------------------------------------------------


def serving(kind: str, served: object, number: int, pinned: object) -> Snapshot:
    """A snapshot serving ``served`` as version ``number`` of ``users``; every other version
    of ``users`` reads as ``pinned`` (what the registry's version loader does, for one)."""
    objects = resolve({"entity": {"user": user}, "feature_view": {"other": other},
                       kind: {"users": served}})  # type: ignore[dict-item]  # fmt: skip
    old = resolve({"entity": {"user": user}, kind: {"users": pinned}})[kind]["users"]  # type: ignore[dict-item]
    return Snapshot(objects, number, {kind: {"users": number}}, lambda name, version: old)  # type: ignore[arg-type,return-value]


def test_a_pinned_version_plans_its_own_definition() -> None:
    old = FeatureView(name="users", entities=[user], ttl=timedelta(hours=2), source=src,
                      schema=[Field(name="age", dtype=Int64)])  # fmt: skip
    snap = serving("feature_view", users, 3, old)
    plan = build_plan(snap, ["users:score", "users@v1:age", "users:age"], True)
    assert plan.output_names == ("users__score", "users@v1__age", "users__age")
    pinned = next(v for v in plan.views if v.projection.version == 1)
    assert pinned.view.ttl == timedelta(hours=2)
    assert online_source(pinned, snap).ttl == timedelta(days=1)  # the served values answer it
    with pytest.raises(NotFoundError, match=r"feature view 'users@v1' has no feature 'score'"):
        build_plan(snap, ["users@v1:score"], False)


def test_online_needs_the_same_aggregation_and_an_online_served_version() -> None:
    events = PushSource(name="events", batch_source=FileSource(path="e.parquet",
                                                               timestamp_field="ts"))  # fmt: skip

    def counted(hours: int, online: bool = True) -> StreamFeatureView:
        return StreamFeatureView(
            name="users", entities=[user], source=events, online=online,
            schema=[Field(name="n", dtype=Int64)],
            aggregations=[Aggregation(column="x", function="count",
                                      time_window=timedelta(hours=hours))],
        )  # fmt: skip

    def source_for(snap: Snapshot) -> FeatureView:
        return online_source(build_plan(snap, ["users@v1:n"], False).views[0], snap)

    with pytest.raises(DefinitionError, match=r"feature view 'users' v1 cannot be read online: "
                       r"feature 'n' aggregates differently in the served v3"):  # fmt: skip
        source_for(serving("stream_feature_view", counted(1), 3, counted(2)))
    with pytest.raises(DefinitionError, match=r"the served v4 is not online \(online=False\)"):
        source_for(serving("stream_feature_view", counted(2, online=False), 4, counted(2)))
    assert source_for(serving("stream_feature_view", counted(2), 5, counted(2))).name == "users"
    batch = FeatureView(name="users", entities=[user], source=src,
                        schema=[Field(name="n", dtype=Int64)])  # fmt: skip
    with pytest.raises(DefinitionError, match=r"holds values of the served v6 \(feature_view "
                       r"keyed by user_id\), not of a stream_feature_view"):  # fmt: skip
        source_for(serving("feature_view", batch, 6, counted(2)))
