"""RetrievalJob (laziness, transforms per streamed batch, outputs), plan validation, imports,
on every engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pitstop.errors import DefinitionError, MissingExtraError, RetrievalError
from pitstop.offline import OfflineEngine, PitPlan, RetrievalJob, SourceRef, ViewJoin
from pitstop.offline.pit import infer_file_format

from .conftest import Harness
from .test_pit import T0, H, driver_source, entity, run, trips_view

# -- the job ----------------------------------------------------------------------------------


def _ratio(batch: pa.RecordBatch) -> pa.RecordBatch:
    ratio = pc.divide(pc.cast(batch.column("trips"), pa.float64()), batch.column("label"))
    return batch.append_column("ratio", ratio)


def test_transforms_run_per_streamed_batch(harness: Harness, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10), (2, T0, T0, 20)])
    n = 10
    ent = entity([(1 + i % 2, T0) for i in range(n)], label=[float(i + 1) for i in range(n)])
    seen: list[int] = []

    def count(batch: pa.RecordBatch) -> pa.RecordBatch:
        seen.append(batch.num_rows)
        return batch

    eng = harness.engine(tmp_path, batch_size=3)
    try:
        job = eng.historical(ent, PitPlan((trips_view(src),)))
        assert not seen
        job = job.with_transforms([count, _ratio])
        reader = job.to_batches()
        batches = list(reader)
        assert len(batches) > 1
        assert sum(seen) == n
        table = pa.Table.from_batches(batches)
        assert table.column("ratio").to_pylist() == [
            (10 + 10 * (i % 2)) / (i + 1) for i in range(n)
        ]
        path = tmp_path / "out.parquet"
        assert job.to_parquet(path) == n
        assert pq.read_table(path).column("ratio").to_pylist() == table.column("ratio").to_pylist()
    finally:
        eng.close()


def test_transforms_on_empty_result(engine: OfflineEngine, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    ent = entity([], label=pa.array([], pa.float64()))
    job = engine.historical(ent, PitPlan((trips_view(src),))).with_transforms([_ratio])
    out = job.to_arrow()
    assert out.num_rows == 0
    assert out.schema.field("ratio").type == pa.float64()


def test_transform_must_return_a_batch(engine: OfflineEngine, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    job = engine.historical(entity([(1, T0)]), PitPlan((trips_view(src),)))
    with pytest.raises(RetrievalError, match="RecordBatch"):
        job.with_transforms([lambda b: b.to_pylist()]).to_arrow()  # type: ignore[arg-type,return-value]


def test_job_is_lazy(engine: OfflineEngine, tmp_path: Path) -> None:
    src = SourceRef(str(tmp_path / "later.parquet"), "parquet", "event_timestamp", "created")
    job = engine.historical(entity([(1, T0)]), PitPlan((trips_view(src),)))
    assert isinstance(job, RetrievalJob)
    driver_source(tmp_path, [(1, T0, T0, 10)], name="later")  # the file appears after the call
    assert job.to_arrow().column("trips").to_pylist() == [10]


def test_to_polars_without_polars(engine: OfflineEngine, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    job = engine.historical(entity([(1, T0)]), PitPlan((trips_view(src),)))
    try:
        import polars  # noqa: F401
    except ImportError:
        with pytest.raises(MissingExtraError, match=r"pitstop\[polars\]"):
            job.to_polars()
    else:  # pragma: no cover - depends on the environment
        assert job.to_polars().height == 1


def test_view_without_columns_adds_nothing(engine: OfflineEngine, tmp_path: Path) -> None:
    src = driver_source(tmp_path, [(1, T0, T0, 10)])
    view = ViewJoin("driver", src, ("driver_id",), ("driver_id",), ())
    out = run(engine, entity([(1, T0)]), view)
    assert out.column_names == ["driver_id", "event_timestamp"]


# -- plan validation and imports ---------------------------------------------------------------


def test_plan_validation(tmp_path: Path) -> None:
    src = SourceRef("/x.parquet", "parquet", "ts")
    with pytest.raises(DefinitionError, match="pair up"):
        ViewJoin("v", src, ("a", "b"), ("a",), ())
    with pytest.raises(DefinitionError, match="negative"):
        ViewJoin("v", src, ("a",), ("a",), (), ttl=-H)
    with pytest.raises(DefinitionError, match="file_format"):
        SourceRef("/x.json", "json", "ts")
    one = ViewJoin("one", src, ("a",), ("a",), (("f", "f"),))
    two = ViewJoin("two", src, ("a",), ("a",), (("g", "f"),))
    with pytest.raises(RetrievalError, match=r"'one'.*'two'"):
        PitPlan((one, two))
    assert infer_file_format("/a/b.CSV") == "csv" and infer_file_format("/a/b") == "parquet"
    assert one.effective_ttl is None and ViewJoin("z", src, ("a",), ("a",), (), H).ttl == H
    assert hash(src) == hash(SourceRef("/x.parquet", "parquet", "ts"))


def test_import_is_light() -> None:
    code = (
        "import sys, pitstop.offline, pitstop.offline.duckdb;"
        "print(sorted(m for m in ('duckdb', 'pandas', 'polars') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_engine_satisfies_protocol(engine: OfflineEngine) -> None:
    assert isinstance(engine, OfflineEngine)
    assert set(engine.capabilities.file_formats) >= {"parquet", "csv"}


@pytest.mark.notimpl(["reference"], reason="takes no SQL entity queries")
def test_engine_takes_sql_entity_frames(engine: OfflineEngine) -> None:
    assert engine.capabilities.entity_sql


def test_polars_in_and_out(engine: OfflineEngine, tmp_path: Path) -> None:
    pl = pytest.importorskip("polars")
    src = driver_source(tmp_path, [(1, T0, T0, 10), (2, T0, T0, None)])
    frame = pl.DataFrame(
        {"driver_id": [2, 1, 3], "event_timestamp": [T0, T0, T0], "y": list("abc")}
    )
    out = engine.historical(frame, PitPlan((trips_view(src),))).to_polars()
    assert out.columns == ["driver_id", "event_timestamp", "y", "trips"]
    assert out["trips"].to_list() == [None, 10, None]
    assert str(out["event_timestamp"].dtype.time_zone) == "UTC"
