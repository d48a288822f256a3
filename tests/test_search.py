"""Search over the registry's full-text index, on every registry backend."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pitstop import (
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
)
from pitstop.catalog.search import _distance, _Typos, allowed_typos
from pitstop.errors import RetrievalError
from pitstop.registry import search_index
from pitstop.registry.search_index import Filters, words
from pitstop.types import Float32, Float64, Int64, String
from test_feature_store import make_store, write_users

user = Entity(name="user", join_keys=["user_id"], description="A customer")
source = FileSource(path="data/users.parquet", timestamp_field="ts")


def view(name: str, fields: dict[str, object], **extra: object) -> FeatureView:
    return FeatureView(
        name=name,
        entities=[user],
        ttl=timedelta(days=1),
        schema=[Field(name=n, dtype=t) for n, t in fields.items()],  # type: ignore[arg-type]
        source=source,
        **extra,  # type: ignore[arg-type]
    )


user_features = view(
    "user_features",
    {"total_purchases": Int64, "avg_purchase_amount": Float32},
    description="Purchase behaviour of each customer",
    tags={"team": "growth"},
    owner="growth@example.com",
)
user_profile = view(
    "user_profile",
    {"age": Int64, "segment": String},
    tags={"team": "risk", "pii": "true"},
    owner="risk@example.com",
)
scores = view("scores", {"score": Float64, "user": Int64}, description="Model scores")
service = FeatureService(name="churn_model", features=[user_features, scores],
                         description="Churn prediction", owner="ds@example.com")  # fmt: skip
OBJECTS = [user, user_features, user_profile, scores, service]


@pytest.fixture
def store(tmp_path: Path, registry_url: str, project_name: str) -> Iterator[FeatureStore]:
    write_users(tmp_path)
    with make_store(tmp_path, registry_url, project_name) as s:
        s.apply(OBJECTS, skip_source_validation=True)
        yield s


def refs(hits: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(h.ref, h.match) for h in hits]


def test_exact_then_prefix_then_token_then_fuzzy(store: FeatureStore) -> None:
    hits = refs(store.search("user"))
    # the entity and the feature named exactly "user" first, then names starting with it
    assert hits[:2] == [("user", "exact"), ("scores:user", "exact")]
    # shortest first, ties by name
    assert hits[2:5] == [("user_profile", "prefix"), ("users_source", "prefix"),
                         ("user_features", "prefix")]  # fmt: skip
    # then the word "user" elsewhere (a service listing user_features)
    assert ("churn_model", "token") in hits
    assert [m for _, m in hits] == sorted((m for _, m in hits), key=["exact", "prefix",
                                          "token", "fuzzy"].index)  # fmt: skip


def test_words_of_descriptions_tags_owners_and_dtypes(store: FeatureStore) -> None:
    assert ("user_features", "token") in refs(store.search("purchase behaviour"))
    assert {h.ref for h in store.search("risk")} >= {"user_profile", "user_profile:age"}
    assert ("churn_model", "token") in refs(store.search("ds example"))
    floats = {h.ref for h in store.search("float32", Field)}
    assert floats == {"user_features:avg_purchase_amount"}
    # the last word may be the start of one (as one types)
    assert {h.ref for h in store.search("avg purch", Field)} == {
        "user_features:avg_purchase_amount"
    }


def test_typos_are_found_last(store: FeatureStore) -> None:
    # eight letters: two edits allowed, so "purchase" is near too
    assert set(refs(store.search("purchses", Field))) == {
        ("user_features:total_purchases", "fuzzy"),
        ("user_features:avg_purchase_amount", "fuzzy"),
    }
    assert refs(store.search("segmnet"))[0] == ("user_profile:segment", "fuzzy")
    assert store.search("zzzzzz") == []


def test_filters_by_kind_tag_and_owner(store: FeatureStore) -> None:
    # a view with a feature named "user" matches by that word
    assert refs(store.search("user", FeatureView)) == [
        ("user_profile", "prefix"), ("user_features", "prefix"), ("scores", "token")]  # fmt: skip
    assert [h.ref for h in store.search("user", Entity)] == ["user"]
    assert all(h.feature for h in store.search("user", Field))
    tagged = store.search("user", tags={"team": "risk"})
    assert {h.ref for h in tagged} == {"user_profile", "user_profile:age",
                                       "user_profile:segment"}  # fmt: skip
    assert {h.ref for h in store.search("a", owner="RISK@example.com", limit=50)} <= {
        "user_profile", "user_profile:age", "user_profile:segment"}  # fmt: skip
    assert store.search("user", tags={"team": "risk", "pii": "false"}) == []
    assert [h.ref for h in store.search("user", [FeatureView, Entity], limit=1)] == ["user"]


def test_hits_carry_what_people_read(store: FeatureStore) -> None:
    hit, view_hit = store.search("avg_purchase_amount")
    assert (view_hit.ref, view_hit.match) == ("user_features", "token")  # one of its features
    assert hit.to_dict() == {
        "kind": "feature", "name": "user_features", "feature": "avg_purchase_amount",
        "ref": "user_features:avg_purchase_amount", "view_kind": "feature_view",
        "match": "exact", "description": "", "owner": "growth@example.com",
        "tags": {"team": "growth"}, "dtype": "Float32",
    }  # fmt: skip


def test_index_follows_apply_rollback_delete_and_teardown(store: FeatureStore) -> None:
    renamed = view("user_profile", {"years": Int64}, owner="risk@example.com")
    store.apply([user, renamed], skip_source_validation=True)
    assert store.search("age", Field) == []
    assert refs(store.search("years")) == [("user_profile:years", "exact"),
                                           ("user_profile", "token")]  # fmt: skip
    store.rollback("user_profile", 1)
    assert [h.ref for h in store.search("age")] == ["user_profile:age", "user_profile"]
    store.apply([user, user_features, scores, service], partial=False,
                skip_source_validation=True)  # fmt: skip
    assert store.search("user_profile") == []
    store.teardown()
    assert store.search("user") == []


def test_projects_are_searched_apart(
    store: FeatureStore, tmp_path: Path, registry_url: str, project_name: str
) -> None:
    with make_store(tmp_path, registry_url, project_name + "_other") as other:
        other.apply([user, view("other_view", {"age": Int64})], skip_source_validation=True)
        assert [h.ref for h in other.search("age")] == ["other_view:age", "other_view"]
    assert [h.ref for h in store.search("age")] == ["user_profile:age", "user_profile"]


def test_a_registry_written_before_the_index_is_indexed_on_first_search(
    store: FeatureStore,
) -> None:
    raw = store.registry.store
    raw._db.execute("DELETE FROM pitstop_search WHERE project = ?", (store.project,))
    raw._db.execute("DELETE FROM pitstop_meta WHERE project = ?", (store.project,))
    with make_store(store.repo_path, store.registry.url, store.project) as fresh:
        assert refs(fresh.search("scores"))[0] == ("scores", "exact")
        assert len(fresh.search("scores")) == 4


def test_the_tiers_in_one_statement_are_the_tiers_one_by_one(
    tmp_path: Path, registry_url: str, project_name: str
) -> None:
    # names sharing prefixes and words, so that the tiers repeat each other's rows
    views = [view(f"user_{i}", {"user": Int64, f"score_{i}": Float32}) for i in range(25)]
    with make_store(tmp_path, registry_url, project_name) as s:
        s.apply([user, *views], skip_source_validation=True)
        index = s.registry.store.index
        typos = _Typos(index.vocabulary())
        queries = ["user", "user_1", "user 1", "score", "u", "usre", "scroe 1", "usre_1"]
        for text, limit in itertools.product(queries, [1, 5, 20]):
            tokens = words(text)
            fuzzy = typos.alternatives(tokens) if typos.misspelled(tokens) else None
            for filters in [Filters(), Filters(("feature",)), Filters(("feature_view",))]:
                by_one: list[tuple[str, str, str]] = []
                for tier in ("exact", "prefix", "token", "fuzzy"):
                    n = limit + len(by_one)  # as many as the rows before may repeat
                    if tier in ("exact", "prefix"):
                        rows = getattr(index, tier)(text, filters, n)
                    elif tier == "token":
                        rows = index.match([[t] for t in tokens], True, filters, n)
                    else:
                        rows = index.match(fuzzy, False, filters, n) if fuzzy else []
                    by_one += [k for r in rows if (k := (r.kind, r.name, r.feature)) not in by_one]
                tiers = index.tiers(text, tokens, filters, limit, fuzzy)
                together = [(r.kind, r.name, r.feature) for _, r in tiers]
                assert list(dict.fromkeys(together))[:limit] == by_one[:limit], (text, filters)
            assert fuzzy or not text.startswith(("usre", "scroe")), text  # typos were asked


def test_an_index_an_older_version_built_is_built_again(store: FeatureStore) -> None:
    raw = store.registry.store
    raw.set_meta(search_index.META_KEY, "1")
    postgres = raw._db.dialect.name == "postgresql"
    if postgres:  # as an older version created it: new rows wait in a pending list
        raw._db.execute("ALTER INDEX pitstop_search_words SET (fastupdate = on)")
    with make_store(store.repo_path, store.registry.url, store.project) as fresh:
        assert refs(fresh.search("scores"))[0] == ("scores", "exact")
        assert fresh.registry.store.get_meta(search_index.META_KEY) == search_index.INDEX_VERSION
        if postgres:
            [(options,)] = raw._db.query(
                "SELECT reloptions FROM pg_class WHERE oid = 'pitstop_search_words'::regclass"
            )
            assert options == ["fastupdate=off"]


@pytest.mark.postgres
def test_a_large_write_refreshes_the_planner_statistics(
    fresh_postgres_url: str, postgres_admin: Any, project_name: str, monkeypatch: Any
) -> None:
    from pitstop.registry.store import RegistryStore

    schema = fresh_postgres_url.rpartition("%3D")[2]

    def analyzed() -> object:
        return postgres_admin.execute(
            "SELECT last_analyze FROM pg_stat_user_tables"
            " WHERE schemaname = %s AND relname = 'pitstop_search'",
            (schema,),
        ).fetchone()[0]

    monkeypatch.setattr(search_index, "ANALYZE_ROWS", 3)
    with RegistryStore.open(fresh_postgres_url, project_name) as raw:
        raw.apply([("entity", "user", user.to_spec())])  # one row: no statistics
        assert analyzed() is None
        raw.apply([("feature_view", "user_features", user_features.to_spec())])  # three rows
        assert analyzed() is not None


@pytest.mark.parametrize(
    ("query", "limit", "message"),
    [
        ("", 20, "the search query is empty"),
        ("   ", 20, "the search query is empty"),
        ("a\x00b", 20, "control characters"),
        ("x" * 201, 20, "at most 200"),
        ("user", 0, "from 1 to 1000"),
    ],
)
def test_bad_queries_are_errors(store: FeatureStore, query: str, limit: int, message: str) -> None:
    with pytest.raises(RetrievalError, match=message):
        store.search(query, limit=limit)


def test_punctuation_only_queries_match_names_only(store: FeatureStore) -> None:
    assert store.search("::") == []
    assert store.search("%") == []  # not a LIKE pattern
    assert store.search('"') == []


def test_words_and_typos() -> None:
    assert words("user_features:Float32 data-science") == [
        "user", "features", "float32", "data", "science"]  # fmt: skip
    assert [allowed_typos(w) for w in ("age", "segment", "purchases")] == [0, 1, 2]
    assert _distance("segmnet", "segment") == 1  # a transposition is one edit
    assert _distance("purchse", "purchase") == 1
    assert _distance("kitten", "sitting") == 3
    typos = _Typos(["purchases", "purchase", "segment", "age"])
    assert typos.near("purchse") == ["purchase"]  # seven letters: one edit
    assert typos.near("purchasse") == ["purchase", "purchases"]
    assert typos.near("aeg") == []  # short words must be spelled right
    assert typos.alternatives(["segmnet", "zzz"]) is None


def test_objects_this_version_cannot_read_are_found_by_name_and_words(
    registry_url: str, project_name: str
) -> None:
    from pitstop.registry.store import RegistryStore

    with RegistryStore.open(registry_url, project_name) as raw:
        spec = {"name": "fraud_v3", "description": "Gradient boosted fraud scorer",
                "owner": "risk@example.com", "tags": {"stage": "prod"}, "future": [1]}  # fmt: skip
        raw.apply([("ml_model", "fraud_v3", spec)])
        [row] = raw.index.match([["boosted"]], False, Filters(), 10)
        assert (row.kind, row.name, row.owner, row.tags) == (
            "ml_model", "fraud_v3", "risk@example.com", {"stage": "prod"})  # fmt: skip
        assert raw.index.exact("fraud_v3", Filters(tags={"stage": "prod"}), 10) == [row]
