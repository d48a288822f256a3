"""The public API is explicit and pinned, and importing pitstop stays light."""

from __future__ import annotations

import subprocess
import sys

import pitstop

PUBLIC = {
    "Aggregation", "DataSource", "Entity", "Feature", "FeatureService", "FeatureStore",
    "FeatureView", "Field", "FileSource", "KafkaSource", "OnDemandFeatureView", "Project",
    "PushMode", "PushSource",
    "RepoConfig", "RequestSource", "SparkSource", "StreamFeatureView", "ValueType", "__version__",
    "on_demand_feature_view",
    # expectations (pitstop.quality)
    "between", "freshness", "in_set", "matches", "max_null_rate", "not_in_future", "not_null",
    "of_type", "row_count", "unique",
}  # fmt: skip


def test_all_is_pinned() -> None:
    assert set(pitstop.__all__) == PUBLIC
    for name in pitstop.__all__:
        assert getattr(pitstop, name) is not None


def test_feast_module_paths() -> None:
    from pitstop.aggregation import Aggregation
    from pitstop.data_source import PushMode
    from pitstop.types import Array, Float32, Int64

    assert Aggregation is pitstop.Aggregation
    assert PushMode.ONLINE_AND_OFFLINE.name == "ONLINE_AND_OFFLINE"
    assert str(Array(Int64)) == "Array(Int64)" and str(Float32) == "Float32"
    assert callable(pitstop.on_demand_feature_view)


def test_import_does_not_load_heavy_dependencies() -> None:
    code = (
        "import sys, pitstop; "
        "heavy = {'duckdb', 'pandas', 'pyarrow', 'redis', 'fastapi', 'starlette', 'psycopg', "
        "'pydantic', 'numpy', 'rich', 'click', 'yaml'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_errors_share_one_root_and_mix_in_builtins() -> None:
    from pitstop import errors

    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.NotFoundError, LookupError)
    assert issubclass(errors.BackendUnavailableError, ConnectionError)
    for name in dir(errors):
        obj = getattr(errors, name)
        if (
            isinstance(obj, type)
            and issubclass(obj, Exception)
            and obj.__module__ == errors.__name__
        ):
            assert issubclass(obj, errors.PitstopError)
    assert str(errors.NotFoundError("plain message")) == "plain message"
