"""The web UI in a real browser, over the churn example's repo: search as you type, lists and
filters, an object's page (schema, versions and diff, lineage drawn as a graph, sample rows),
the online lookup, the audit trail, signing in, and what an analyst may not see."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from typing import Any

import pytest

from pitstop import FeatureStore

from .conftest import (
    ADMIN_KEY,
    ANALYST_KEY,
    Served,
    context,
    principal,
    serious_violations,
    shot,
)


def test_the_overview_counts_the_churn_repo(admin: Any, churn_ui: Served) -> None:
    admin.goto(churn_ui.url)
    assert admin.locator("h1").inner_text() == "churn_prediction"
    cards = {c.locator("a").inner_text().split("\n")[-1].strip(): c
             for c in admin.locator(".card").all()}  # fmt: skip
    assert cards["feature views"].locator(".count").inner_text() == "1"
    assert "5 features" in cards["feature views"].inner_text()
    assert cards["feature services"].locator(".count").inner_text() == "1"
    assert cards["permissions"].locator(".count").inner_text() == "2"
    assert principal(ADMIN_KEY) in admin.locator(".who").inner_text()
    shot(admin, "overview")


def test_search_as_you_type(admin: Any, churn_ui: Served) -> None:
    admin.goto(f"{churn_ui.url}/feature-views")
    box = admin.locator("#q")
    box.press_sequentially("purch", delay=30)
    popup = admin.locator("#search-popup")
    first = popup.locator(".results a").first
    first.wait_for()
    refs = popup.locator(".results a").all_inner_texts()
    assert "user_features:total_purchases" in refs
    assert "user_derived_features:purchase_frequency" in refs
    shot(admin, "search-as-you-type")
    admin.set_viewport_size({"width": 1100, "height": 440})
    shot(admin, "readme-search", full_page=False)
    admin.set_viewport_size({"width": 1280, "height": 860})
    box.fill("tenure")  # the list follows the words
    popup.locator(".results a", has_text="user_features:tenure_months").wait_for()
    box.press("ArrowDown")
    assert admin.evaluate("document.activeElement.textContent") == "user_features:tenure_months"
    admin.keyboard.press("Enter")
    admin.wait_for_url(re.compile(r"/feature-views/user_features#feature-tenure_months$"))
    assert admin.locator("tr:target th").inner_text() == "tenure_months"
    box = admin.locator("#q")
    box.fill("zzzqqq")
    popup.locator(".empty").wait_for()
    box.press("Escape")
    assert popup.is_hidden()


def test_the_search_page_works_without_the_script(browser: Any, churn_ui: Served) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    ctx = browser.new_context(java_script_enabled=False, extra_http_headers=auth)
    try:
        page = ctx.new_page()
        page.goto(f"{churn_ui.url}/search?q=purchase&kind=feature")
        refs = page.locator(".results .ref").all_inner_texts()
        assert refs and all(":" in ref for ref in refs)
        assert "user_features:total_purchases" in refs
        shot(page, "search")
    finally:
        ctx.close()


def test_lists_filter_by_kind_tag_and_owner(admin: Any, churn_ui: Served) -> None:
    admin.goto(f"{churn_ui.url}/feature-views?tag=team=ml-platform")
    assert admin.locator("table.objects tbody th").all_inner_texts() == ["user_features"]
    admin.goto(f"{churn_ui.url}/feature-views?tag=team=nobody")
    assert "match these filters" in admin.locator(".empty").inner_text()
    admin.goto(f"{churn_ui.url}/feature-services")
    admin.locator("table.objects a", has_text="data-science").click()  # its owner
    assert "owner=data-science" in admin.url
    assert admin.locator("table.objects tbody th").all_inner_texts() == ["churn_model_v1"]
    admin.select_option("#f-kind", "entities")
    admin.locator("form.filters button").click()
    admin.wait_for_url(re.compile(r"/entities\?"))
    assert admin.locator("h1").inner_text().startswith("Entities")
    admin.locator("nav.side a", has_text="Data sources").click()
    names = admin.locator("table.objects tbody th").all_inner_texts()
    assert names == ["user_features_push", "user_features_source"]
    shot(admin, "data-sources")


def test_a_view_page_shows_schema_versions_and_freshness(admin: Any, churn_ui: Served) -> None:
    admin.goto(f"{churn_ui.url}/feature-views/user_features")
    facts = dict(zip(admin.locator(".facts dt").all_inner_texts(),
                     admin.locator(".facts dd").all_inner_texts(), strict=False))  # fmt: skip
    assert facts["TTL"] == "3d"
    assert facts["Online"] == "yes"
    assert facts["Source"].startswith("user_features_push")
    assert re.match(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+[smh] ago\)", facts["Materialized until"]
    )
    rows = admin.locator("table.schema tbody tr").all()
    schema = {r.locator("th").inner_text(): r.locator("td code").inner_text() for r in rows}
    assert schema == {"total_purchases": "Int64", "avg_purchase_amount": "Float32",
                      "days_since_last_purchase": "Int64", "tenure_months": "Int64",
                      "customer_segment": "String"}  # fmt: skip
    versions = admin.locator("table.versions tbody th").all_inner_texts()
    assert versions == ["v2", "v1"]
    changes = admin.locator("table.diff tbody tr").all()  # the last two versions by default
    assert [c.locator("th").inner_text() for c in changes] == ["ttl_seconds"]
    assert changes[0].locator("td").all_inner_texts() == ["changed", "172800.0", "259200.0"]
    admin.locator(".fragment table.sample").wait_for()  # loaded after the page
    sample = admin.locator("table.sample")
    header = sample.locator("thead th").all_inner_texts()
    assert header[:2] == ["user_id", "event_timestamp"] and "total_purchases" in header
    assert sample.locator("tbody tr").count() == 5
    shot(admin, "feature-view")


def test_the_lineage_graph_is_drawn_left_to_right(admin: Any, churn_ui: Served) -> None:
    admin.goto(f"{churn_ui.url}/feature-views/user_features")
    svg = admin.locator(".lineage svg")
    labels = svg.locator(".node").evaluate_all(
        "nodes => nodes.map(n => [n.querySelector('title').textContent,"
        " n.querySelector('rect').getBBox().x])"
    )
    x = {name: left for name, left in labels}
    assert set(x) == {"entity user_id", "data source user_features_source",
                      "data source user_features_push", "feature view user_features",
                      "on-demand feature view user_derived_features",
                      "feature service churn_model_v1"}  # fmt: skip
    # every edge points right: sources, then the view, then what is built from it
    assert x["data source user_features_source"] < x["data source user_features_push"]
    assert x["data source user_features_push"] < x["feature view user_features"]
    assert x["entity user_id"] < x["feature view user_features"]
    assert x["feature view user_features"] < x["on-demand feature view user_derived_features"]
    assert x["on-demand feature view user_derived_features"] < x["feature service churn_model_v1"]
    assert svg.locator("path.wire").count() == 6
    root = svg.locator(".node.root")
    assert root.get_attribute("aria-label") == "feature view user_features (this object)"
    # the boxes do not overlap
    boxes = svg.locator(".node rect").evaluate_all(
        "rs => rs.map(r => { const b = r.getBBox(); return [b.x, b.y, b.width, b.height]; })"
    )
    for i, (ax, ay, aw, ah) in enumerate(boxes):
        for bx, by, bw, bh in boxes[i + 1 :]:
            assert ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay
    svg.locator("a.node", has_text="churn_model_v1").click()
    admin.wait_for_url(re.compile(r"/feature-services/churn_model_v1$"))
    projections = admin.locator("#h-features + table tbody tr").all()
    assert [p.locator("th").inner_text() for p in projections] == [
        "user_features", "user_derived_features"]  # fmt: skip
    assert projections[0].locator("td").nth(1).inner_text() == (
        "total_purchases Int64, avg_purchase_amount Float32, days_since_last_purchase Int64, "
        "tenure_months Int64")  # fmt: skip
    admin.set_viewport_size({"width": 1100, "height": 700})
    shot(admin, "readme-feature-service", full_page=False)
    admin.set_viewport_size({"width": 1280, "height": 860})
    admin.locator("a", has_text="upstream").click()
    titles = admin.locator(".lineage svg .node title").all_text_contents()
    assert "feature service churn_model_v1" in titles and len(titles) == 6
    shot(admin, "feature-service")


def test_the_online_lookup_answers_like_the_feature_server(admin: Any, churn_ui: Served) -> None:
    admin.goto(f"{churn_ui.url}/feature-services/churn_model_v1")
    admin.locator("a.button", has_text="Look up online values").click()
    assert admin.locator("#target").input_value() == "service:churn_model_v1"
    admin.fill("#key-user_id", "1001, 1002, 99999")
    admin.locator("form.filters button").click()
    table = admin.locator("table.lookup")
    header = table.locator("thead th").all_inner_texts()
    with FeatureStore(repo_path=churn_ui.repo) as store:
        from pitstop.registry.audit import Actor, acting_as

        with acting_as(Actor(principal(ADMIN_KEY), "test")):
            service = store.get_feature_service("churn_model_v1")
            expected = store.get_online_features(service, {"user_id": [1001, 1002, 99999]})
    assert header == ["user_id", *expected.values]
    rows = table.locator("tbody tr").all()
    assert [r.locator("th").inner_text() for r in rows] == ["1001", "1002", "99999"]
    for i, row in enumerate(rows):
        cells = row.locator("td").all()
        for cell, name in zip(cells, expected.values, strict=True):
            status = cell.locator(".status").inner_text()
            assert status == expected.statuses[name][i]
            value = expected.to_dict()[name][i]
            shown = cell.locator(".value").inner_text()
            if value is None:
                assert shown == "null"
            elif isinstance(value, float):
                assert float(shown) == pytest.approx(value, rel=1e-5)
            else:
                assert shown == str(value)
    assert rows[2].locator(".status").all_inner_texts() == ["NOT_FOUND"] * len(expected.values)
    assert '"feature_service": "churn_model_v1"' in admin.locator("details pre").text_content()
    shot(admin, "lookup")
    admin.set_viewport_size({"width": 1100, "height": 470})
    shot(admin, "readme-lookup", full_page=False)
    admin.set_viewport_size({"width": 1280, "height": 860})
    admin.fill("#key-user_id", "abc")
    admin.locator("form.filters button").click()
    assert "'user_id' is declared Int64; 'abc' is not a number" in admin.locator(
        ".error").inner_text()  # fmt: skip


def test_the_audit_trail(admin: Any, analyst: Any, churn_ui: Served) -> None:
    analyst.goto(f"{churn_ui.url}/feature-services/churn_model_v1")  # refused, and recorded
    admin.goto(f"{churn_ui.url}/audit")
    actions = admin.locator("table.audit tbody td:nth-child(5)").all_inner_texts()
    assert "apply" in actions and any(a.startswith("materialize") for a in actions)
    admin.goto(f"{churn_ui.url}/audit?outcome=denied&principal={principal(ANALYST_KEY)}")
    rows = admin.locator("table.audit tbody tr")
    assert rows.count() >= 1
    assert rows.first.locator("td").nth(3).inner_text() == (
        "http GET /feature-services/churn_model_v1"
    )
    assert "may not describe feature service 'churn_model_v1'" in rows.first.inner_text()
    admin.locator("button", has_text="Verify the hash chain").click()
    assert admin.locator("p.ok").inner_text().startswith("The chain holds")
    shot(admin, "audit")


def test_an_analyst_sees_only_what_they_may_describe(analyst: Any, churn_ui: Served) -> None:
    analyst.goto(f"{churn_ui.url}/feature-views")
    assert analyst.locator("table.objects tbody th").all_inner_texts() == ["user_features"]
    analyst.goto(f"{churn_ui.url}/on-demand-feature-views")
    assert "you may see" in analyst.locator(".empty").inner_text()
    analyst.goto(f"{churn_ui.url}/search?q=purchase")
    refs = analyst.locator(".results .ref").all_inner_texts()
    assert refs and all(r.startswith("user_features") for r in refs)
    response = analyst.goto(f"{churn_ui.url}/feature-services/churn_model_v1")
    assert response.status == 403
    assert analyst.locator("h1").inner_text() == "Permission denied"
    message = analyst.locator("p.error").inner_text()
    assert f"{principal(ANALYST_KEY)} may not describe feature service 'churn_model_v1'" in message
    assert "holds the roles analysts" in message
    shot(analyst, "permission-denied")
    # the lineage of a view it may see names nothing it may not
    analyst.goto(f"{churn_ui.url}/feature-views/user_features")
    titles = analyst.locator(".lineage svg .node title").all_text_contents()
    assert "feature service restricted" in titles
    assert not any("churn_model_v1" in t for t in titles)
    assert "churn_model_v1" not in analyst.content()
    sample = analyst.locator("#h-sample + p").inner_text()  # not asked, so not refused
    assert (
        sample == f"{principal(ANALYST_KEY)} may not read this view's offline data (read_offline)."
    )
    # and the audit trail is for those who may describe the project
    assert analyst.goto(f"{churn_ui.url}/audit").status == 403


def test_signing_in_and_out(browser: Any, churn_ui: Served) -> None:
    ctx = context(browser, None)
    try:
        page = ctx.new_page()
        page.goto(f"{churn_ui.url}/feature-views?tag=team=ml-platform")
        assert re.search(r"/login\?next=", page.url)
        page.fill("#token", "wrong-key")
        page.locator("form.login button").click()
        assert page.locator("p.error").inner_text() == "invalid API key"
        shot(page, "sign-in")
        page.fill("#token", ANALYST_KEY)
        page.locator("form.login button").click()
        page.wait_for_url(re.compile(r"/feature-views\?tag=team(=|%3D)ml-platform$"))
        assert principal(ANALYST_KEY) in page.locator(".who").inner_text()
        (cookie,) = [c for c in ctx.cookies() if c["name"] == "pitstop_ui"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert ANALYST_KEY not in cookie["value"]  # encoded, never the raw text
        assert page.evaluate("document.cookie") == ""  # scripts cannot read it
        page.locator("button", has_text="Sign out").click()
        page.wait_for_url(re.compile(r"/login$"))
        page.goto(f"{churn_ui.url}/feature-views")
        assert "/login?next=" in page.url
    finally:
        ctx.close()
    # no key at all: the pages' fragments and a bad header are refused the same way
    request = urllib.request.Request(f"{churn_ui.url}/search?q=x&fragment=1")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    with refused.value as answer:
        assert answer.code == 401


PAGES = {
    "overview": "/",
    "search": "/search?q=purchase",
    "list": "/feature-views",
    "view": "/feature-views/user_features",
    "service": "/feature-services/churn_model_v1",
    "on-demand view": "/on-demand-feature-views/user_derived_features",
    "entity": "/entities/user_id",
    "data source": "/data-sources/user_features_source",
    "lookup": "/lookup?target=service:churn_model_v1&key.user_id=1001,99999",
    "audit": "/audit",
    "not found": "/feature-views/nope",
}


@pytest.mark.parametrize("name", list(PAGES))
def test_no_serious_accessibility_violations(admin: Any, churn_ui: Served, name: str) -> None:
    admin.goto(churn_ui.url + PAGES[name])
    admin.wait_for_load_state("networkidle")
    assert serious_violations(admin) == []


def test_the_accessibility_check_finds_problems(admin: Any) -> None:
    admin.set_content('<html lang="en"><title>t</title><body><main><img src="x.png">'
                      '<button></button></main></body></html>')  # fmt: skip
    found = serious_violations(admin)
    assert any(v.startswith("image-alt (critical)") for v in found), found
    assert any(v.startswith("button-name (critical)") for v in found), found


def test_no_serious_accessibility_violations_signed_out_and_denied(
    browser: Any, analyst: Any, churn_ui: Served
) -> None:
    analyst.goto(f"{churn_ui.url}/feature-services/churn_model_v1")
    assert serious_violations(analyst) == []
    ctx = context(browser, None)
    try:
        page = ctx.new_page()
        page.goto(f"{churn_ui.url}/login")
        assert serious_violations(page) == []
    finally:
        ctx.close()


def test_the_as_you_type_list_is_the_search_page_cut_short(admin: Any, churn_ui: Served) -> None:
    admin.goto(f"{churn_ui.url}/search?q=user")
    full = admin.locator(".results .ref").all_inner_texts()
    admin.goto(f"{churn_ui.url}/search?q=user&fragment=1")
    short = admin.locator(".results .ref").all_inner_texts()
    assert len(short) >= 3 and short == full[: len(short)]
