"""Fuzzing the feature server: no request body, however wrong, gets a 5xx.

Hypothesis sends every POST endpoint three kinds of bodies over real HTTP: arbitrary bytes,
arbitrary JSON, and JSON shaped like the endpoint's OpenAPI schema with wrong, odd or valid
values in each field (names the registry knows and does not, entity values of every JSON
type, timestamps valid and not). Every answer must be below 500, and every error must carry
the ``{"error": {"type", "message"}}`` body.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_server import thread_server, write_repo

ENDPOINTS = [
    "/get-online-features",
    "/push",
    "/write-to-online-store",
    "/materialize",
    "/materialize-incremental",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
names = st.sampled_from(
    ["users", "boosted", "late", "users_push", "user_service", "", "nope", "users:age"]
) | st.text(max_size=8)
refs = st.sampled_from(
    [
        "users:age",
        "users:tier",
        "users:avatar",
        "users:last_login",
        "users:score",
        "boosted:boosted",
        "users:nope",
        "nope:age",
        "users",
        ":",
        "a:b:c",
    ]
)
timestamps = st.sampled_from(
    [
        "2024-01-01",
        "2024-01-01T00:00:00Z",
        "9999-12-31T23:59:59",
        "0001-01-01T00:00:00+05:00",
        "yesterday",
        "",
        "2024-13-01",
    ]
) | (st.datetimes().map(lambda d: d.isoformat()))
# per column: plausible values, and now and then a value of another JSON type
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "user_id": st.integers(0, 5) | st.integers(-(2**65), 2**65),
    "age": st.integers(-5, 200),
    "score": st.floats(allow_nan=False, width=32) | st.integers(-5, 5),
    "tier": st.text(max_size=3),
    "avatar": st.text(max_size=4),
    "last_login": timestamps | st.integers(0, 2**40),
    "ts": timestamps,
    "bonus": st.floats() | st.integers(-5, 5),
}


def valid_or(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``strategy``, sometimes any JSON value."""
    return st.one_of(strategy, strategy, strategy, json_values)


@st.composite
def tables(draw: st.DrawFn) -> dict[str, Any]:
    """Columns of about one length, mostly with plausible values (``entities``, ``df``)."""
    n = draw(st.integers(0, 3))
    chosen = draw(st.lists(st.sampled_from(sorted(PLAUSIBLE)), unique=True, max_size=8))
    out: dict[str, Any] = {}
    for name in chosen:
        size = n if draw(st.integers(0, 9)) else draw(st.integers(0, 4))
        out[name] = draw(
            valid_or(st.lists(valid_or(PLAUSIBLE[name]), min_size=size, max_size=size))
        )
    if draw(st.booleans()) and draw(st.booleans()):
        out[draw(st.text(max_size=5))] = draw(json_values)
    return out


SHAPED: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "/get-online-features": st.fixed_dictionaries(
        {"entities": valid_or(tables())},
        optional={
            "features": valid_or(st.lists(refs, max_size=4)),
            "feature_service": valid_or(names),
            "full_feature_names": valid_or(st.booleans()),
        },
    ),
    "/push": st.fixed_dictionaries(
        {"push_source_name": valid_or(st.just("users_push") | names), "df": valid_or(tables())},
        optional={
            "to": valid_or(st.sampled_from(["online", "offline", "online_and_offline", "both"])),
            "allow_registry_cache": valid_or(st.booleans()),
        },
    ),
    "/write-to-online-store": st.fixed_dictionaries(
        {"feature_view_name": valid_or(st.just("users") | names), "df": valid_or(tables())}
    ),
    "/materialize": st.fixed_dictionaries(
        {"start_ts": valid_or(timestamps), "end_ts": valid_or(timestamps)},
        optional={"feature_views": valid_or(st.lists(names, max_size=2))},
    ),
    "/materialize-incremental": st.fixed_dictionaries(
        {"end_ts": valid_or(timestamps)},
        optional={"feature_views": valid_or(st.lists(names, max_size=2))},
    ),
}
_ROW = {
    "user_id": [4, 5],
    "age": [1, None],
    "score": [0.5, 1],
    "tier": ["a", "b"],
    "avatar": [None, None],
    "last_login": [None, None],
    "ts": ["2024-01-01 00:00:00", "2030-01-01 00:00:00"],
}
VALID: dict[str, list[dict[str, Any]]] = {
    "/get-online-features": [
        {"features": ["users:age", "users:tier"], "entities": {"user_id": [1, 2]}},
        {"feature_service": "user_service", "entities": {"user_id": [1], "bonus": [1.0]}},
        {
            "features": ["boosted:boosted", "users:avatar", "users:last_login", "users:score"],
            "entities": {"user_id": [1, 3], "bonus": [0.5, 2]},
            "full_feature_names": True,
        },
    ],
    "/push": [
        {"push_source_name": "users_push", "df": _ROW},
        {"push_source_name": "users_push", "df": _ROW, "to": "online_and_offline"},
    ],
    "/write-to-online-store": [{"feature_view_name": "users", "df": _ROW}],
    "/materialize": [
        {"start_ts": "2020-01-01", "end_ts": "2030-01-01T00:00:00Z", "feature_views": ["users"]}
    ],
    "/materialize-incremental": [{"end_ts": "2030-01-01T00:00:00+01:00"}],
}


def _slots(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) inside ``value``."""
    found: list[tuple[Any, Any]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, inner in list(items):
        found.append((value, key))
        if isinstance(inner, dict | list):
            found += _slots(inner)
    return found


@st.composite
def mutated(draw: st.DrawFn, endpoint: str) -> dict[str, Any]:
    """A valid body with up to three things changed, removed or added, deep or shallow."""
    body = copy.deepcopy(draw(st.sampled_from(VALID[endpoint])))
    for _ in range(draw(st.integers(0, 3))):
        slots = _slots(body)
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "delete":
            del container[key]
        elif action == "add" and isinstance(container, dict):
            container[draw(st.text(max_size=5))] = draw(json_values)
        elif action == "add":
            container.append(draw(scalars))
        else:
            container[key] = draw(scalars | json_values | st.sampled_from(sorted(PLAUSIBLE)))
    return body


bodies = st.one_of(
    st.tuples(st.sampled_from(ENDPOINTS), st.binary(max_size=64)),
    st.tuples(st.sampled_from(ENDPOINTS), json_values.map(lambda v: json.dumps(v).encode())),
    *(SHAPED[e].map(lambda v, e=e: (e, json.dumps(v).encode())) for e in ENDPOINTS),
    *(mutated(e).map(lambda v, e=e: (e, json.dumps(v).encode())) for e in ENDPOINTS),
    *(mutated(e).map(lambda v, e=e: (e, json.dumps(v).encode())) for e in ENDPOINTS[:3]),
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    store = write_repo(tmp_path_factory.mktemp("fuzz") / "repo")
    with thread_server(store) as base, httpx.Client(base_url=base, timeout=30) as http:
        yield http
    store.close()


@settings(max_examples=800, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=bodies)
def test_no_5xx_for_any_body(client: httpx.Client, request: tuple[str, bytes]) -> None:
    path, body = request
    r = client.post(path, content=body)
    assert r.status_code < 500, (path, body, r.text)
    if r.status_code >= 400:
        error = r.json()["error"]
        assert isinstance(error["type"], str) and isinstance(error["message"], str)


def test_fuzz_repo_still_serves(client: httpx.Client) -> None:
    """After the fuzzing (whatever it pushed), reads still answer in Feast's shape."""
    body = {"features": ["users:age"], "entities": {"user_id": [1, 2]}}
    r = client.post("/get-online-features", json=body)
    assert r.status_code == 200 and r.json()["metadata"]["feature_names"] == ["user_id", "age"]
