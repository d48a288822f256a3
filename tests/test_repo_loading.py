"""pitstop.repo.load_repo: which files are imported, how they import each other, duplicates,
errors that name the file, and repos loaded one after another in one process."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from pitstop import FeatureView
from pitstop.definitions.feature_view import Projection
from pitstop.errors import RepoError
from pitstop.repo import RepoContents, load_repo, python_files

ENTITY = """
from pitstop import Entity
{var} = Entity(name={name!r}, join_keys=[{key!r}])
"""

VIEW = """
from pitstop import FeatureView, Field, FileSource
from pitstop.types import Int64
{var} = FeatureView(
    name={name!r},
    entities=["user_id"],
    schema=[Field(name="n", dtype=Int64)],
    source=FileSource(path="data/{name}.parquet", timestamp_field="ts"),
)
"""

MUST_NOT_LOAD = 'raise RuntimeError("this file must not be imported")\n'


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    (root / "feature_store.yaml").write_text("project: test\n", encoding="utf-8")
    return root


def names(contents: RepoContents, kind: str) -> list[str]:
    return sorted(contents.objects.get(kind, {}))


def test_files_in_nested_folders_are_found(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "top.py": ENTITY.format(var="a", name="top", key="k"),
            "features/deep/deeper/views.py": ENTITY.format(var="b", name="deep", key="k"),
            "features/deep/__init__.py": "",
        },
    )
    contents = load_repo(tmp_path)
    assert names(contents, "entity") == ["deep", "top"]
    assert contents.origins[("entity", "deep")] == "features/deep/deeper/views.py"
    assert contents.origins[("entity", "top")] == "top.py"


@pytest.mark.parametrize(
    "skipped",
    [
        ".hidden/defs.py",
        "features/.cache/defs.py",
        ".venv/lib/python3.11/site-packages/pkg/mod.py",
        "venv/lib/mod.py",
        "data/make_data.py",
        "tests/test_features.py",
        "features/__pycache__/views.py",
        "node_modules/x.py",
        "setup.py",
        ".hidden_file.py",
    ],
)
def test_hidden_dirs_virtualenvs_data_and_tests_are_skipped(tmp_path: Path, skipped: str) -> None:
    write(tmp_path, {"features/ok.py": ENTITY.format(var="u", name="user", key="user_id")})
    write(tmp_path, {skipped: MUST_NOT_LOAD})
    assert tmp_path / skipped not in python_files(tmp_path)
    assert names(load_repo(tmp_path), "entity") == ["user"]


def test_imports_between_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "features/entities.py": ENTITY.format(var="user", name="user", key="user_id"),
            "features/views.py": """
                from pitstop import FeatureView, Field, FileSource
                from pitstop.types import Int64
                from features.entities import user

                user_stats = FeatureView(
                    name="user_stats",
                    entities=[user],
                    schema=[Field(name="n", dtype=Int64)],
                    source=FileSource(path="data/stats.parquet", timestamp_field="ts"),
                )
            """,
        },
    )
    contents = load_repo(tmp_path)
    view = contents.objects["feature_view"]["user_stats"]
    assert isinstance(view, FeatureView)
    assert view.join_keys == ("user_id",)
    assert contents.objects["entity"]["user"] is sys.modules["features.entities"].user


def test_imports_through_a_regular_package(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "features/__init__.py": "from features.entities import user as user\n",
            "features/entities.py": ENTITY.format(var="user", name="user", key="user_id"),
            "services.py": """
                from pitstop import FeatureService
                import features
                from features import views

                svc = FeatureService(name="svc", features=[views.stats])
                assert features.user.name == "user"
            """,
            "features/views.py": VIEW.format(var="stats", name="stats"),
        },
    )
    contents = load_repo(tmp_path)
    assert names(contents, "feature_service") == ["svc"]
    assert contents.origins[("entity", "user")] == "features/entities.py"


def test_the_same_object_imported_in_two_files_is_not_a_duplicate(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "features/a_first.py": "from features.z_entities import user\n",
            "features/b_second.py": "from features.z_entities import user as customer\n",
            "features/z_entities.py": ENTITY.format(var="user", name="user", key="user_id"),
        },
    )
    contents = load_repo(tmp_path)
    assert names(contents, "entity") == ["user"]
    # the origin is the file that defines it, not the first file that imports it
    assert contents.origins[("entity", "user")] == "features/z_entities.py"


def test_equal_objects_built_in_two_files_are_not_duplicates(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "features/one.py": ENTITY.format(var="u", name="user", key="user_id"),
            "features/two.py": ENTITY.format(var="u", name="user", key="user_id"),
        },
    )
    assert names(load_repo(tmp_path), "entity") == ["user"]


def test_different_objects_with_the_same_name_name_both_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "features/one.py": ENTITY.format(var="u", name="user", key="user_id"),
            "features/two.py": ENTITY.format(var="customer", name="user", key="customer_id"),
        },
    )
    with pytest.raises(RepoError) as info:
        load_repo(tmp_path)
    message = str(info.value)
    assert "entity 'user' is defined twice, differently" in message
    assert "in features/one.py and in features/two.py" in message
    assert "rename one of them" in message


def test_duplicate_error_names_the_defining_files_not_an_importer(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "features/a_importer.py": "from features.m_views import stats\n",
            "features/m_views.py": VIEW.format(var="stats", name="stats"),
            "features/z_views.py": VIEW.format(var="other", name="stats").replace(
                'name="n"', 'name="m"'
            ),
        },
    )
    with pytest.raises(RepoError) as info:
        load_repo(tmp_path)
    message = str(info.value)
    assert "feature view 'stats' is defined twice, differently" in message
    assert "in features/m_views.py and in features/z_views.py" in message


def test_a_syntax_error_names_the_file(tmp_path: Path) -> None:
    write(tmp_path, {"features/broken.py": "x = 1\ndef f(:\n    pass\n"})
    with pytest.raises(RepoError) as info:
        load_repo(tmp_path)
    message = str(info.value)
    assert message.startswith("cannot load features/broken.py: SyntaxError:")
    assert "line 2" in message
    assert "fix the file or move it out of the feature repo" in message
    assert "pitstop" not in message.split(";")[0]  # no frame of pitstop's own code


def test_a_file_raising_at_import_names_the_file_and_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "features/ok.py": ENTITY.format(var="u", name="user", key="user_id"),
            "features/raising.py": 'import os\nraise RuntimeError("no data here")\n',
        },
    )
    with pytest.raises(RepoError) as info:
        load_repo(tmp_path)
    message = str(info.value)
    assert "cannot load features/raising.py: RuntimeError: no data here" in message
    assert "(line 2 of features/raising.py)" in message
    assert isinstance(info.value.__cause__, RuntimeError)


def test_an_invalid_definition_points_at_the_users_line(tmp_path: Path) -> None:
    write(
        tmp_path, {"features/bad.py": "from pitstop import Entity\n\nuser = Entity(name='a b')\n"}
    )
    with pytest.raises(RepoError) as info:
        load_repo(tmp_path)
    message = str(info.value)
    assert "cannot load features/bad.py: DefinitionError: Entity 'a b': names may use" in message
    assert "(line 3 of features/bad.py)" in message


def test_an_error_in_an_imported_file_names_where_it_happened(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "features/a_user.py": "from features.z_helper import value\n",
            "features/z_helper.py": "value = 1 / 0\n",
        },
    )
    with pytest.raises(RepoError) as info:
        load_repo(tmp_path)
    message = str(info.value)
    assert "cannot load features/a_user.py: ZeroDivisionError" in message
    assert "(line 1 of features/z_helper.py)" in message


def test_sys_path_is_restored(tmp_path: Path) -> None:
    before = list(sys.path)
    write(tmp_path, {"features/ok.py": ENTITY.format(var="u", name="user", key="user_id")})
    load_repo(tmp_path)
    assert sys.path == before
    write(tmp_path, {"features/raising.py": MUST_NOT_LOAD})
    with pytest.raises(RepoError):
        load_repo(tmp_path)
    assert sys.path == before


def test_two_repos_in_one_process_do_not_mix_modules(tmp_path: Path) -> None:
    first = write(
        tmp_path / "first",
        {
            "features/views.py": ENTITY.format(var="one", name="one", key="k1"),
            "features/only_in_first.py": ENTITY.format(var="extra", name="extra", key="k"),
        },
    )
    second = write(
        tmp_path / "second",
        {"features/views.py": ENTITY.format(var="two", name="two", key="k2")},
    )
    assert names(load_repo(first), "entity") == ["extra", "one"]
    contents = load_repo(second)
    assert names(contents, "entity") == ["two"]
    assert sys.modules["features.views"].__file__ == str((second / "features/views.py").resolve())
    assert "features.only_in_first" not in sys.modules
    # the first repo's modules are not importable from the second
    write(second, {"features/uses_first.py": "from features.only_in_first import extra\n"})
    with pytest.raises(
        RepoError, match=r"cannot load features/uses_first\.py: ModuleNotFoundError"
    ):
        load_repo(second)
    # and loading the first again gives its own objects back
    assert names(load_repo(first), "entity") == ["extra", "one"]


def test_reloading_a_repo_sees_edited_and_new_files(tmp_path: Path) -> None:
    write(tmp_path, {"features/views.py": ENTITY.format(var="u", name="user", key="user_id")})
    assert load_repo(tmp_path).objects["entity"]["user"].join_keys == ("user_id",)
    write(
        tmp_path,
        {
            "features/views.py": ENTITY.format(var="u", name="user", key="customer_identifier"),
            "features/more.py": ENTITY.format(var="d", name="driver", key="driver_id"),
        },
    )
    contents = load_repo(tmp_path)
    assert contents.objects["entity"]["user"].join_keys == ("customer_identifier",)
    assert names(contents, "entity") == ["driver", "user"]


def test_embedded_sources_are_collected(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "features/views.py": """
                from pitstop import FileSource, PushSource, RequestSource, Field
                from pitstop import on_demand_feature_view
                from pitstop.types import Float64

                push = PushSource(
                    name="events_push",
                    batch_source=FileSource(path="data/events.parquet", timestamp_field="ts"),
                )

                @on_demand_feature_view(
                    sources=[RequestSource(name="req", schema=[Field(name="x", dtype=Float64)])],
                    schema=[Field(name="y", dtype=Float64)],
                    mode="python",
                )
                def doubled(inputs):
                    return {"y": [2 * v for v in inputs["x"]]}
            """,
        },
    )
    contents = load_repo(tmp_path)
    assert names(contents, "data_source") == ["events_push", "events_source", "req"]
    assert names(contents, "on_demand_feature_view") == ["doubled"]
    assert contents.origins[("data_source", "events_source")] == "features/views.py"


def test_a_module_level_projection_is_stored_as_the_plain_view(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            # sorts first, and reaches the view only through a module attribute
            "features/a_services.py": """
                from pitstop import FeatureService
                from features import z_views

                buyer = z_views.stats.with_name("buyer")[["n"]]
                svc = FeatureService(name="svc", features=[z_views.stats, buyer])
            """,
            "features/z_views.py": VIEW.format(var="stats", name="stats"),
        },
    )
    contents = load_repo(tmp_path)
    view = contents.objects["feature_view"]["stats"]
    assert view.projection == Projection(name="stats")
    assert contents.origins[("feature_view", "stats")] == "features/z_views.py"
    service = contents.objects["feature_service"]["svc"]
    assert [p.name_to_use for p in service.projections] == ["stats", "buyer"]


def test_classes_and_non_definitions_are_ignored(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "features/misc.py": """
                from pitstop import Entity, Field, FeatureView
                from pitstop.types import Int64

                KIND = Entity
                field = Field(name="n", dtype=Int64)
                numbers = [1, 2, 3]
            """,
        },
    )
    contents = load_repo(tmp_path)
    assert contents.objects == {}
    assert list(contents.all()) == []
