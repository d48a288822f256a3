"""Access control: every action allowed and denied, through the SDK, on every registry
backend; the command line and the feature server (API keys and JWTs) share the one check."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pitstop import FeatureStore, FeatureView
from pitstop.access import ACTIONS, Resource, authorize, policy_of
from pitstop.definitions import Permission, Role
from pitstop.errors import PermissionDeniedError
from pitstop.registry.audit import Actor, acting_as
from test_feature_store import write_users
from test_lineage import OBJECTS, boosted, service, user, users
from test_server_registry import configured

ADMIN, READER, NOBODY = Actor("admin", "t"), Actor("reader", "t"), Actor("nobody", "t")
POLICY = [
    Role(name="admins", principals=["admin"]),
    Role(name="readers", principals=["reader", "jwt:*"]),
    Permission(name="admin-all", roles=["admins"], actions=list(ACTIONS)),
    Permission(
        name="readers-read", roles=["readers"], actions=["describe", "read_online", "read_offline"]
    ),
]
NOW = datetime.now(UTC)
ROW = pd.DataFrame({"user_id": [1], "ts": [NOW], "age": [5], "score": [2.0]})


@pytest.fixture
def store(tmp_path: Path, registry_url: str, project_name: str) -> Iterator[FeatureStore]:
    write_users(tmp_path)
    with configured(tmp_path, registry_url, project_name) as s:
        with acting_as(ADMIN):
            s.apply([*OBJECTS, *POLICY])  # no policy yet: anyone may apply the first one
            s.materialize(NOW - timedelta(days=3650), NOW)
        yield s


def entity_df() -> pd.DataFrame:
    return pd.DataFrame({"user_id": [1], "bonus": [1.0], "event_timestamp": [NOW]})


EXTRA = FeatureView(name="extra", entities=[user], source=users.source, schema=users.schema)
ACTS = {
    "describe": lambda s: s.catalog.describe(FeatureView, "users"),
    "apply": lambda s: s.apply([user, users, boosted, service, *POLICY, EXTRA]),
    "delete": lambda s: s.apply([user, users, boosted, *POLICY], partial=False),
    "read_online": lambda s: s.get_online_features(["users:age"], [{"user_id": 1}]).to_dict(),
    "read_offline": lambda s: s.get_historical_features(entity_df(), service).to_df(),
    "write_online": lambda s: s.push("users_push", ROW),
    "write_offline": lambda s: s.push("users_push", ROW, to="offline", allow_missing_columns=True),
    "materialize": lambda s: s.materialize(NOW - timedelta(days=1), NOW),
}


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_allowed_and_denied(store: FeatureStore, action: str) -> None:
    run = ACTS[action]
    reader_may = action in ("describe", "read_online", "read_offline")
    refused = rf"^nobody may not {action.replace('_', ' ')} .* holds no role"
    with acting_as(NOBODY), pytest.raises(PermissionDeniedError, match=refused):
        run(store)
    with acting_as(READER):
        if reader_may:
            run(store)
        else:
            with pytest.raises(PermissionDeniedError, match="reader holds the roles readers"):
                run(store)
    with acting_as(ADMIN):
        run(store)


def test_a_denied_apply_writes_nothing_and_is_audited(store: FeatureStore) -> None:
    before = store.catalog.serial()
    with acting_as(READER), pytest.raises(PermissionDeniedError, match="may not apply"):
        ACTS["apply"](store)
    assert store.catalog.serial() == before
    last = store.catalog.audit_log()[-1]
    assert (last.action, last.outcome, last.principal) == ("apply", "denied", "reader")


def test_listings_and_search_show_only_what_one_may_describe(store: FeatureStore) -> None:
    with acting_as(NOBODY):
        assert store.list_feature_views() == []
        assert store.search("age") == []
    with acting_as(READER):
        assert [v.name for v in store.list_feature_views()] == ["users"]
        assert store.search("age")[0].ref == "users:age"


def test_permissions_select_by_kind_name_and_tags(store: FeatureStore) -> None:
    policy = policy_of(store.catalog.snapshot(fresh=True))
    narrow = Permission(name="p", roles=["r"], actions=["read_online"], types=[FeatureView],
                        name_patterns=["user.*"], required_tags={"team": "growth"})  # fmt: skip
    from pitstop.access import Policy

    only = Policy([narrow], [Role(name="r", principals=["api-key:*"])])
    key = Actor("api-key:0123abcd4567", "t")
    assert only.allows(key, "read_online", Resource("feature_view", "users", {"team": "growth"}))
    assert not only.allows(key, "read_online", Resource("feature_view", "users", {}))
    assert not only.allows(key, "read_online", Resource("feature_view", "scores",
                                                        {"team": "growth"}))  # fmt: skip
    assert not only.allows(key, "read_online", Resource("feature_service", "users",
                                                        {"team": "growth"}))  # fmt: skip
    assert not only.allows(Actor("alice", "t"), "read_online",
                           Resource("feature_view", "users", {"team": "growth"}))  # fmt: skip
    assert only.allows(Actor("jwt:bob", "t", ("r",)), "read_online",
                       Resource("feature_view", "users", {"team": "growth"}))  # fmt: skip
    assert policy.enabled
    authorize(policy, "describe", Resource("feature_view", "users"), ADMIN)


def test_no_policy_changes_nothing_and_projects_are_apart(
    store: FeatureStore, tmp_path: Path, registry_url: str, project_name: str
) -> None:
    with configured(tmp_path, registry_url, project_name + "_b") as other, acting_as(NOBODY):
        other.apply(OBJECTS)  # the first project's policy does not reach this one
        assert other.get_online_features(["users:age"], [{"user_id": 1}]).to_dict()
    with acting_as(NOBODY), pytest.raises(PermissionDeniedError):
        store.get_online_features(["users:age"], [{"user_id": 1}])


def test_the_command_line_is_checked_too(tmp_path: Path) -> None:
    import getpass

    from test_cli import pitstop

    pitstop("init", "repo", "--users", "20", cwd=tmp_path)
    repo = tmp_path / "repo"
    (repo / "features/policy.py").write_text(
        "from pitstop.definitions import Permission, Role\n"
        "admins = Role(name='admins', principals=['someone-else'])\n"
        "everything = Permission(name='admins-all', roles=['admins'], actions=['apply',"
        " 'delete', 'describe', 'materialize'])\n"
    )
    pitstop("apply", cwd=repo)  # no policy yet
    views = repo / "features/user_features.py"
    views.write_text(views.read_text().replace("ttl=timedelta(days=1)", "ttl=timedelta(days=2)"))
    denied = pitstop("apply", cwd=repo, ok=False)
    assert denied.returncode == 1 and f"Error: {getpass.getuser()} may not apply" in denied.stderr
    assert "may not describe" in pitstop("feature-views", "describe", "user_features", cwd=repo,
                                         ok=False).stderr  # fmt: skip
    records = json.loads(pitstop("audit", "-o", "json", cwd=repo).stdout)
    assert records[-1]["outcome"] == "denied"


CLI_POLICY = f"""from pitstop.definitions import Permission, Role
admins = Role(name="admins", principals=["admin"])
readers = Role(name="readers", principals=["reader"])
admin_all = Permission(name="admin-all", roles=["admins"], actions={list(ACTIONS)!r})
readers_read = Permission(name="readers-read", roles=["readers"],
                          actions=["describe", "read_online", "read_offline"])
"""
EXTRA_VIEW = """from datetime import timedelta
from features.user_features import user, user_source
from pitstop import FeatureView, Field
from pitstop.types import Int64
extra_features = FeatureView(name="extra_features", entities=[user], ttl=timedelta(days=1),
                             schema=[Field(name="tenure_months", dtype=Int64)], source=user_source)
"""


def test_every_action_allowed_and_denied_through_the_command_line(
    tmp_path: Path,
    registry_url: str,
    project_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The commands that do each action, run as the principal the command line takes from the
    OS user name (LOGNAME), in one repo whose registry is the backend's."""
    from pitstop.cli.main import main

    def cli(who: str, *args: str) -> tuple[int, str, str]:
        monkeypatch.setenv("LOGNAME", who)
        with acting_as(Actor("pytest", "t")):  # the command line sets its own; ours after
            code = main(["-c", str(repo), *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    repo = tmp_path / "repo"
    assert main(["init", str(repo), "--users", "20", "--project", project_name]) == 0
    if registry_url.startswith("postgresql"):
        yaml = repo / "feature_store.yaml"
        yaml.write_text(yaml.read_text().replace(
            "registry: data/registry.db", f"registry:\n  registry_type: sql\n  path: {registry_url}"
        ))  # fmt: skip
        assert "registry_type: sql" in yaml.read_text()
    (repo / "features/policy.py").write_text(CLI_POLICY)
    assert cli("admin", "apply")[0] == 0  # no policy yet: anyone may apply the first one
    assert (repo / "data/registry.db").exists() == registry_url.startswith("sqlite")
    assert cli("admin", "materialize", "2000-01-01", NOW.isoformat())[0] == 0
    entities, rows = tmp_path / "entities.csv", tmp_path / "rows.csv"
    entities.write_text(f"user_id,event_timestamp\n1001,{NOW.isoformat()}\n")
    rows.write_text(
        f"user_id,transaction_amount,transaction_timestamp\n1001,12.5,{NOW.isoformat()}\n"
    )
    extra = repo / "features/extra.py"
    commands: dict[str, tuple[Callable[[], object], list[str], str]] = {
        # action: (what changes the repo first, the command, what its output shows)
        "describe": (lambda: None, ["feature-views", "describe", "user_features"],
                     '"name": "user_features"'),
        "read_online": (lambda: None, ["get-online-features", "user_features:total_purchases",
                                       "-e", "user_id=1001", "-o", "json"], '"user_id": 1001'),
        "read_offline": (lambda: None, ["get-historical-features", "-s", "churn_model_v1",
                                        "--entities", str(entities), "-o", "json"],
                         '"tenure_months"'),
        "apply": (lambda: extra.write_text(EXTRA_VIEW), ["apply"], "extra_features"),
        "delete": (extra.unlink, ["apply"], "Deleted"),
        "write_online": (lambda: None, ["push", "transaction_push_source", str(rows)],
                         "1 online rows written"),
        "write_offline": (lambda: None, ["push", "transaction_push_source", str(rows), "--to",
                                         "offline"], "Pushed 1 rows"),
        "materialize": (lambda: None, ["materialize", "2000-01-01", NOW.isoformat()],
                        "user_features"),
    }  # fmt: skip
    assert set(commands) == set(ACTIONS)
    for action, (change, args, shown) in commands.items():
        change()
        words = action.replace("_", " ")
        code, _, err = cli("nobody", *args)
        assert code == 1 and f"Error: nobody may not {words} " in err, (action, err)
        assert "holds no role" in err
        code, out, err = cli("reader", *args)
        if action in ("describe", "read_online", "read_offline"):
            assert code == 0 and shown in out, (action, err)
        else:
            assert code == 1 and f"Error: reader may not {words} " in err, (action, err)
            assert "reader holds the roles readers" in err
        code, out, err = cli("admin", *args)
        assert code == 0 and shown in out, (action, err)
    # the writes refused are audited (the feature server audits refused reads too)
    code, out, _ = cli("admin", "audit", "-o", "json")
    refused = [r for r in json.loads(out) if r["outcome"] == "denied"]
    assert {(r["principal"], r["action"]) for r in refused} == {
        (p, a) for p in ("nobody", "reader") for a in ("apply", "push", "materialize")}  # fmt: skip
    writes = [a for a in ACTIONS if a not in ("describe", "read_online", "read_offline")]
    for action in writes:
        assert any(f"may not {action.replace('_', ' ')} " in r["detail"] for r in refused), action


def _jwt_pair(tmp_path: Path) -> tuple[Any, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path / "issuer.pem"
    path.write_bytes(public)
    return key, path


def test_the_server_with_api_keys_and_jwts(
    tmp_path: Path, registry_url: str, project_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx
    import jwt

    from test_server import thread_server

    key, public = _jwt_pair(tmp_path)
    write_users(tmp_path)
    auth = {"auth": {"type": "jwt", "issuer": "https://issuer.test", "audience": "pitstop",
                     "public_key_file": str(public), "roles_claim": "groups"}}  # fmt: skip
    online = {"features": ["users:age"], "entities": {"user_id": [1]}}

    def token(sub: str, groups: list[str], **extra: Any) -> dict[str, str]:
        claims = {"sub": sub, "groups": groups, "iss": "https://issuer.test", "aud": "pitstop",
                  "exp": datetime.now(UTC) + timedelta(minutes=5), **extra}  # fmt: skip
        return {"Authorization": "Bearer " + jwt.encode(claims, key, algorithm="RS256")}

    with configured(tmp_path, registry_url, project_name, feature_server=auth) as store:
        with acting_as(ADMIN):
            writers = Role(name="writers", principals=["jwt:carol"])
            grant = Permission(name="w", roles=["writers"], actions=["write_online"])
            store.apply([*OBJECTS, *POLICY, writers, grant])
            store.materialize(NOW - timedelta(days=3650), NOW)
        with thread_server(store, registry_ttl_sec=0) as url:
            post = lambda path, body, headers: httpx.post(  # noqa: E731
                f"{url}{path}", json=body, headers=headers, timeout=30
            )
            assert post("/get-online-features", online, token("bob", [])).status_code == 200
            unsigned = {
                "Authorization": "Bearer "
                + jwt.encode(
                    {
                        "sub": "eve",
                        "iss": "https://issuer.test",
                        "aud": "pitstop",
                        "exp": datetime.now(UTC) + timedelta(minutes=5),
                    },
                    "s" * 32,
                    algorithm="HS256",
                )
            }
            assert post("/get-online-features", online, unsigned).status_code == 401
            push = {
                "push_source_name": "users_push",
                "df": {"user_id": [1], "ts": [NOW.isoformat()], "age": [1], "score": [1.0]},
            }
            refused = post("/push", push, token("bob", []))
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["type"] == "PermissionDeniedError"
            assert "jwt:bob may not write online" in refused.json()["error"]["message"]
            assert post("/push", push, token("carol", [])).status_code == 200
            assert post("/push", push, token("dave", ["writers"])).status_code == 200  # claim
            forged = token("carol", [])
            forged["Authorization"] += "x"
            assert post("/push", push, forged).status_code == 401
            expired = token("carol", [], exp=datetime.now(UTC) - timedelta(minutes=1))
            assert post("/push", push, expired).status_code == 401
            other = token("carol", [], aud="someone-else")
            assert post("/push", push, other).status_code == 401
        log = store.catalog.audit_log()
        denials = [(r.principal, r.outcome) for r in log if r.outcome == "denied"]
        assert ("jwt:bob", "denied") in denials


HTTP_ACTS = {
    "describe": ("GET", "/registry/feature-views/users", None),
    "read_online": ("POST", "/get-online-features",
                    {"features": ["users:age"], "entities": {"user_id": [1]}}),
    "write_online": ("POST", "/write-to-online-store", {"feature_view_name": "users", "df": {
        "user_id": [1], "ts": [NOW.isoformat()], "age": [1], "score": [1.0], "x": [0]}}),
    "write_offline": ("POST", "/push", {"push_source_name": "users_push", "to": "offline",
                                        "allow_missing_columns": True, "df": {
        "user_id": [1], "ts": [NOW.isoformat()], "age": [1], "score": [1.0]}}),
    "materialize": ("POST", "/materialize", {"start_ts": (NOW - timedelta(days=1)).isoformat(),
                                             "end_ts": NOW.isoformat()}),
}  # fmt: skip


def test_every_http_action_allowed_and_denied_with_api_keys(
    tmp_path: Path, registry_url: str, project_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    import httpx

    from test_server import thread_server

    def principal(key: str) -> str:
        return "api-key:" + hashlib.sha256(key.encode()).hexdigest()[:12]

    monkeypatch.setenv("PITSTOP_TEST_KEYS", "admin-key:rw reader-key:rw nobody-key:rw")
    write_users(tmp_path)
    auth = {"auth": {"type": "api_key", "keys_env": "PITSTOP_TEST_KEYS"}}
    with configured(tmp_path, registry_url, project_name, feature_server=auth) as store:
        with acting_as(ADMIN):
            store.apply(
                [
                    *OBJECTS,
                    *POLICY,
                    Role(name="admins-by-key", principals=[principal("admin-key")]),
                    Role(name="readers-by-key", principals=[principal("reader-key")]),
                ]
            )
            store.apply(
                [
                    Permission(
                        name="admin-all", roles=["admins", "admins-by-key"], actions=list(ACTIONS)
                    ),
                    Permission(
                        name="readers-read",
                        roles=["readers", "readers-by-key"],
                        actions=["describe", "read_online", "read_offline"],
                    ),
                ]
            )
            store.materialize(NOW - timedelta(days=3650), NOW)  # fmt: skip
        with thread_server(store, registry_ttl_sec=0) as url:
            for action, (method, path, body) in HTTP_ACTS.items():
                reader_may = action in ("describe", "read_online")
                for key, allowed in (("admin-key", True), ("reader-key", reader_may),
                                     ("nobody-key", False)):  # fmt: skip
                    headers = {"Authorization": f"Bearer {key}"}
                    r = httpx.request(method, f"{url}{path}", json=body, headers=headers,
                                      timeout=30)  # fmt: skip
                    assert r.status_code == (200 if allowed else 403), (action, key, r.text)
                    if not allowed:
                        assert f"{principal(key)} may not {action.replace('_', ' ')}" in (
                            r.json()["error"]["message"]), (action, key)  # fmt: skip
        denied = {r.principal for r in store.catalog.audit_log() if r.outcome == "denied"}
        assert denied == {principal("reader-key"), principal("nobody-key")}


def test_jwt_auth_settings_are_checked(tmp_path: Path) -> None:
    from pitstop.config import JwtAuthConfig, parse_config
    from pitstop.errors import ConfigError
    from pitstop.server.auth import JwtAuth

    config = parse_config({"project": "p", "feature_server": {"auth": {
        "type": "jwt", "issuer": "i", "audience": "a"}}}, repo_path=tmp_path)  # fmt: skip
    auth = config.feature_server.auth
    assert isinstance(auth, JwtAuthConfig) and auth.roles_claim == "roles"
    with pytest.raises(ConfigError, match=r"give public_key_file .* or jwks_url"):
        JwtAuth.load(auth, tmp_path)
    missing = JwtAuthConfig(type="jwt", issuer="i", audience="a", public_key_file="nope.pem")
    with pytest.raises(ConfigError, match="public_key_file: cannot read"):
        JwtAuth.load(missing, tmp_path)
    with pytest.raises(ConfigError, match="unknown key 'issuer_url'"):
        parse_config({"project": "p", "feature_server": {"auth": {
            "type": "jwt", "issuer_url": "i", "audience": "a", "issuer": "i"}}},
            repo_path=tmp_path)  # fmt: skip
