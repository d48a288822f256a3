"""The web UI without a browser: the lineage layout, routing, sign-in with JSON Web Tokens and
cookies, the UI mounted in the feature server, page declarations, and lazy imports. The pages
themselves are tested in a browser (tests/ui/)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from pitstop import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource
from pitstop.catalog.lineage import Edge, LineageGraph, Node
from pitstop.errors import MissingExtraError
from pitstop.types import Int64
from pitstop.ui import create_ui, pages
from pitstop.ui.app import decode_cookie, encode_cookie, local_target
from pitstop.ui.graph import DUMMY_H, NODE_H, NODE_W, layout
from pitstop.ui.http import Request, Response, Router

# --- the lineage layout ----------------------------------------------------------------------


def graph(edges: list[tuple[str, str]], root: str) -> LineageGraph:
    nodes = {n: Node("feature_view", n) for pair in edges for n in pair} | {
        root: Node("feature_view", root)
    }
    links = tuple(Edge(nodes[a], nodes[b], "input") for a, b in edges)
    return LineageGraph(nodes[root], tuple(sorted(nodes.values())), links, "both", 1)


def test_every_edge_points_right_and_no_boxes_overlap() -> None:
    edges = [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d"), ("e", "c"), ("b", "f"), ("a", "c")]
    drawing = layout(graph(edges, "c"))
    x = {p.node.name: (p.x, p.y) for p in drawing.nodes}
    assert set(x) == set("abcdef")
    for a, b in edges:
        assert x[a][0] < x[b][0], (a, b)
    assert x["a"][0] < x["b"][0] < x["c"][0] < x["d"][0]  # longest paths set the layers
    boxes = list(x.values())
    for i, (ax, ay) in enumerate(boxes):
        for bx, by in boxes[i + 1 :]:
            assert abs(ax - bx) >= NODE_W or abs(ay - by) >= NODE_H
    assert [p.node.name for p in drawing.nodes if p.root] == ["c"]
    assert drawing.width >= max(px for px, _ in boxes) + NODE_W
    assert drawing.height >= max(py for _, py in boxes) + NODE_H


def test_a_long_edge_bends_around_the_columns_it_crosses() -> None:
    drawing = layout(graph([("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")], "a"))
    by_pair = {(w.source.name, w.target.name): w.d for w in drawing.wires}
    assert by_pair[("a", "b")].count("L") == 0
    assert by_pair[("a", "d")].count("L") == 2  # a straight run through columns b and c
    # the bend points have a slot of their own: the long edge passes b and c, not through them
    ys = {p.node.name: p.y for p in drawing.nodes}
    runs = [float(y) for y in re.findall(r"L[\d.]+,([\d.]+)", by_pair[("a", "d")])]
    assert len(runs) == 2
    for name, y in zip("bc", runs, strict=True):
        assert not ys[name] - DUMMY_H / 2 < y < ys[name] + NODE_H + DUMMY_H / 2


def test_crossings_are_removed_by_the_sweeps() -> None:
    # two chains whose second layer starts in the wrong order (kinds and names sort them so)
    edges = [("r", "a1"), ("r", "b1"), ("a1", "z2"), ("b1", "y2"), ("z2", "z3"), ("y2", "y3")]
    drawing = layout(graph(edges, "r"))
    y = {p.node.name: p.y for p in drawing.nodes}
    assert (y["a1"] < y["b1"]) == (y["z2"] < y["y2"]) == (y["z3"] < y["y3"])


def test_big_graphs_keep_the_nearest_nodes_and_cycles_do_not_hang() -> None:
    star = [("root", f"n{i:03d}") for i in range(150)] + [(f"n{i:03d}", f"m{i:03d}")
                                                          for i in range(150)]  # fmt: skip
    drawing = layout(graph(star, "root"), max_nodes=40)
    names = {p.node.name for p in drawing.nodes}
    assert len(names) == 40 and "root" in names and all(n[0] in "rn" for n in names)
    assert drawing.omitted == 301 - 40
    looped = layout(graph([("a", "b"), ("b", "c"), ("c", "a")], "a"))
    assert len(looped.nodes) == 3 and len(looped.wires) == 3


# --- routing, cookies, redirects -------------------------------------------------------------


def test_routes_without_parameters_win_and_wrong_methods_are_named() -> None:
    router = Router()

    def a(r: Request) -> Response:
        return Response(200, b"a")

    def b(r: Request) -> Response:
        return Response(200, b"b")

    router.add("/{collection}", a)
    router.add("/search", b)
    router.add("/login", b, "POST")
    assert router.match("GET", "/search") == (b, {})
    assert router.match("GET", "/entities") == (a, {"collection": "entities"})
    assert router.match("HEAD", "/entities") == (a, {"collection": "entities"})
    assert router.match("GET", "/a/b") is None
    assert router.match("PUT", "/login") == "POST"  # /login's methods, not /{collection}'s
    router.add("/login", a)
    assert router.match("PUT", "/login") == "GET, POST"


def test_cookies_carry_any_key_and_redirects_stay_on_the_ui() -> None:
    for token in ("plain", "with;semi,comma=and spaces", "ünïcode:rw"):
        assert decode_cookie(encode_cookie(token)) == token
    assert decode_cookie("%%%") is None and decode_cookie(None) is None
    assert local_target("/ui/feature-views?tag=a=b", "/ui") == "/ui/feature-views?tag=a=b"
    for outside in ("//evil.example/x", "https://evil.example/", "/other", "/ui\\x", ""):
        assert local_target(outside, "/ui") == "/ui/"
    assert local_target("/feature-views", "") == "/feature-views"


# --- a repo, served ---------------------------------------------------------------------------

NOW = datetime.now(UTC).replace(microsecond=0)


def write_repo(path: Path, extra: str = "") -> Path:
    import pandas as pd

    (path / "data").mkdir(parents=True)
    rows = {"user_id": [1, 2], "clicks": [3, 4], "ts": [NOW - timedelta(hours=1), NOW]}
    pd.DataFrame(rows).to_parquet(path / "data" / "u.parquet")
    (path / "feature_store.yaml").write_text(
        "project: ui_test\nregistry: data/registry.db\n"
        "online_store: {type: sqlite, path: data/online.db}\n" + extra
    )
    return path


def objects() -> list[Any]:
    user = Entity(name="user_id", join_keys=["user_id"])
    source = FileSource(name="u_source", path="data/u.parquet", timestamp_field="ts")
    view = FeatureView(name="clicks", entities=[user], schema=[Field(name="clicks", dtype=Int64)],
                       source=source, ttl=timedelta(days=1), tags={"team": "web"})  # fmt: skip
    return [user, source, view, FeatureService(name="svc", features=[view])]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FeatureStore]:
    with FeatureStore(repo_path=write_repo(tmp_path)) as opened:
        opened.apply(objects())
        yield opened


def client(app: Any, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui.test",
                             headers=headers)  # fmt: skip


def run(test: Callable[[], Awaitable[None]]) -> None:
    """Run ``test`` on an event loop of its own (in a thread: the browser tests' Playwright
    keeps one running in the main thread)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(test())).result()  # type: ignore[arg-type]


def test_the_feature_server_serves_the_ui_under_its_prefix(store: FeatureStore) -> None:
    from pitstop.server import create_app

    run(lambda: served_under_ui(create_app(store, registry_ttl_sec=0, ui=True)))


async def served_under_ui(app: Any) -> None:
    async with client(app) as http:
        home = await http.get("/")
        assert home.status_code == 303 and home.headers["location"] == "/ui/"
        page = await http.get("/ui/feature-views/clicks")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert 'href="/ui/data-sources/u_source"' in page.text
        css = (await http.get("/ui/static/ui.css")).headers
        assert css["content-type"].startswith("text/css") and "max-age" in css["cache-control"]
        assert (await http.get("/health")).json()["status"] == "ok"  # the API is untouched
        body = {"features": ["clicks:clicks"], "entities": {"user_id": [1]}}
        online = await http.post("/get-online-features", json=body)
        assert online.status_code == 200
        gone = await http.get("/ui/nothing-here/x")
        assert gone.status_code == 404 and "not a kind of registry object" in gone.text
        wrong = await http.post("/ui/feature-views", data={"x": "1"})
        assert wrong.status_code == 405 and wrong.headers["allow"] == "GET"
        bad = await http.get("/ui/audit?since=yesterday")
        assert bad.status_code == 400 and "is not a date or time" in bad.text


def test_signing_in_with_a_json_web_token(tmp_path: Path) -> None:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    auth = ("feature_server:\n  auth: {type: jwt, issuer: https://issuer.test, "
            "audience: pitstop, public_key_file: issuer.pem}\n")  # fmt: skip

    def token(minutes: int) -> str:
        claims = {"sub": "alice", "iss": "https://issuer.test", "aud": "pitstop",
                  "exp": datetime.now(UTC) + timedelta(minutes=minutes)}  # fmt: skip
        return str(jwt.encode(claims, key, algorithm="RS256"))

    repo = write_repo(tmp_path / "repo", auth)
    (repo / "issuer.pem").write_bytes(public)
    with FeatureStore(repo_path=repo) as store:
        store.apply(objects())
        run(lambda: sign_in(create_ui(store), token))
        denied = [r for r in store.catalog.audit_log() if r.outcome == "denied"]
        assert denied and denied[-1].action == "http POST /login"


async def sign_in(app: Any, token: Callable[[int], str]) -> None:
    async with client(app) as http:
        first = await http.get("/feature-views")
        assert first.status_code == 303
        assert first.headers["location"] == "/login?next=%2Ffeature-views"
        refused = await http.post("/login", data={"token": token(-1), "next": "/"})
        assert refused.status_code == 401 and "Signature has expired" in refused.text
        signed = await http.post("/login", data={"token": token(5), "next": "//evil/"})
        assert signed.status_code == 303 and signed.headers["location"] == "/"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        page = await http.get("/feature-views")
        assert page.status_code == 200 and "jwt:alice" in page.text
    async with client(app, authorization=f"Bearer {token(5)}") as http:
        assert "jwt:alice" in (await http.get("/")).text  # the header works as well


def test_a_declared_page_is_routed_and_listed(store: FeatureStore) -> None:
    from pitstop.ui.render import render

    def drift(request: Request) -> Response:
        return render(request, "error.html", title="Drift", heading="Drift",
                      message="drift reports", denied=False)  # fmt: skip

    def profile(request: Request) -> Response:
        return Response(200, f"profile of {request.params['name']}".encode(), "text/plain")

    async def visit(app: Any) -> None:
        async with client(app) as http:
            answer = await http.get("/quality")
            assert answer.status_code == 200 and "drift reports" in answer.text
            listed = r'<h2>Quality</h2>\s*<ul>\s*<li><a href="/quality"[^>]*>Reports</a>'
            assert re.search(listed, answer.text)  # in the navigation, under its section
            view = await http.get("/feature-views/clicks")
            assert '<a class="button" href="/feature-views/clicks/profile">Profile</a>' in view.text
            service = await http.get("/feature-services/svc")
            assert "/profile" not in service.text  # declared for feature views only
            profiled = await http.get("/feature-views/clicks/profile")
            assert profiled.text == "profile of clicks"

    pages.page("/quality", "Reports", nav="Quality")(drift)
    pages.page("/{collection}/{name}/profile", "Profile", on=("feature_view",))(profile)
    try:
        run(lambda: visit(create_ui(store)))
    finally:
        pages._PAGES[:] = [p for p in pages._PAGES if p.handler not in (drift, profile)]
        pages.NAV_SECTIONS.remove("Quality")


def test_a_missing_template_engine_names_the_extra(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "jinja2", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'pitstop\[ui\]'"):
        create_ui(store)


def test_import_pitstop_does_not_import_the_ui() -> None:
    code = (
        "import sys, pitstop, pitstop.server\n"
        "print(sorted(m for m in sys.modules if m.startswith(('pitstop.ui', 'jinja2'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_lookup_names_features_by_view_when_two_views_share_a_name(
    store: FeatureStore,
) -> None:
    user, source, view, _ = objects()
    clicks = [Field(name="clicks", dtype=Int64)]
    twin = FeatureView(name="clicks_copy", entities=[user], source=source, schema=clicks,
                       ttl=timedelta(days=1))  # fmt: skip
    store.apply([twin, FeatureService(name="both", features=[view, twin])])
    store.materialize(NOW - timedelta(days=1), NOW)

    async def visit(app: Any) -> None:
        async with client(app) as http:
            page = await http.get("/lookup?target=service:both&key.user_id=2,7")
            assert page.status_code == 200, page.text
            assert '<th scope="col">clicks__clicks</th>' in page.text
            assert '<th scope="col">clicks_copy__clicks</th>' in page.text
            assert 'name="full" type="checkbox" value="1" checked' in page.text
            assert page.text.count('class="status s-present">PRESENT') == 2
            assert page.text.count('class="status s-not_found">NOT_FOUND') == 2

    run(lambda: visit(create_ui(store)))


def test_many_views_are_named_in_a_field_not_listed(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pitstop.ui import lookup

    monkeypatch.setattr(lookup, "MAX_CHOICES", 0)
    store.materialize(NOW - timedelta(days=1), NOW)

    async def visit(app: Any) -> None:
        async with client(app) as http:
            page = await http.get("/lookup?target=&view=clicks&key.user_id=2")
            assert page.status_code == 200, page.text
            assert 'value="view:clicks"' not in page.text  # views are not listed
            assert '<option value="service:svc">svc (feature service)</option>' in page.text
            assert 'id="view-name" name="view" value="clicks"' in page.text
            assert page.text.count('class="status s-present">PRESENT') == 1

    run(lambda: visit(create_ui(store)))
