"""The engines' write side: appending to a source's pushed data, whether a source has rows, its
columns, labelled appends, and that reads see what was appended (in arrival order)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pitstop.errors import DataSourceError, RetrievalError
from pitstop.offline import OfflineEngine, PitPlan, SourceRef, ViewJoin
from pitstop.offline.pit import AggregateJoin

T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)
H = timedelta(hours=1)


def rows(users: list[int], times: list[datetime], values: list[int]) -> pa.Table:
    return pa.table(
        {
            "uid": pa.array(users, pa.int64()),
            "ts": pa.array(times, pa.timestamp("us", "UTC")),
            "v": pa.array(values, pa.int64()),
        }
    )


def view(source: SourceRef) -> ViewJoin:
    return ViewJoin("u", source, ("user_id",), ("user_id",), (("value", "value"),))


def mapped(path: Path) -> SourceRef:
    """A source whose stored columns ``uid``/``v`` are ``user_id``/``value`` after mapping."""
    return SourceRef(str(path), "parquet", "ts", None, {"uid": "user_id", "v": "value"}, "u")


def entity(users: list[int], times: list[datetime]) -> pa.Table:
    return pa.table({"user_id": users, "event_timestamp": pa.array(times, pa.timestamp("us"))})


def values(engine: OfflineEngine, source: SourceRef, users: list[int], at: datetime) -> list:
    ent = entity(users, [at.replace(tzinfo=None)] * len(users))
    out = engine.historical(ent, PitPlan((view(source),))).to_arrow()
    return out.column("value").to_pylist()


def test_a_push_fed_source_has_no_rows_until_the_first_append(
    engine: OfflineEngine, tmp_path: Path
) -> None:
    source = mapped(tmp_path / "pushed_only.parquet")
    assert source.pushed == str(tmp_path / "pushed_only.parquet.pushed")
    assert not engine.has_rows(source)
    with pytest.raises(DataSourceError, match=r"'u'.*does not exist"):
        engine.schema(source)
    engine.append(source, rows([1], [T0], [10]))
    assert engine.has_rows(source)
    assert engine.schema(source).names == ["uid", "ts", "v"]
    assert values(engine, source, [1, 2], T0) == [10, None]


def test_appends_are_read_with_the_sources_own_rows(engine: OfflineEngine, tmp_path: Path) -> None:
    path = tmp_path / "users.parquet"
    pq.write_table(rows([1, 2], [T0 - H, T0 - H], [1, 2]), path)
    source = mapped(path)
    engine.append(source, rows([1], [T0], [11]))
    engine.append(source, rows([3], [T0], [30]))
    assert values(engine, source, [1, 2, 3], T0) == [11, 2, 30]
    assert values(engine, source, [1, 3], T0 - H) == [1, None]
    got = engine.range(view(source), T0, None).to_arrow()
    assert sorted(got.column("value").to_pylist()) == [11, 30]
    latest = engine.latest(view(source), None, None, key_order=True)
    assert latest.rows == 3
    assert latest.batches.read_all().column("value").to_pylist() == [11, 2, 30]


def test_appended_rows_may_encode_time_differently(engine: OfflineEngine, tmp_path: Path) -> None:
    path = tmp_path / "users.parquet"
    naive = rows([1], [T0 - H], [1]).cast(
        pa.schema([("uid", pa.int64()), ("ts", pa.timestamp("ms")), ("v", pa.int64())])
    )
    pq.write_table(naive, path)
    source = mapped(path)
    engine.append(source, rows([1], [T0], [2]))
    assert values(engine, source, [1, 1], T0) == [2, 2]
    assert values(engine, source, [1], T0 - timedelta(minutes=1)) == [1]


def test_a_directory_sources_appends_are_read_once(engine: OfflineEngine, tmp_path: Path) -> None:
    folder = tmp_path / "users"
    folder.mkdir()
    pq.write_table(rows([1], [T0 - H], [1]), folder / "first.parquet")
    source = mapped(folder)
    assert source.pushed == str(folder)
    engine.append(source, rows([2], [T0 - H], [2]))
    every = engine.range(view(source), None, None).to_arrow()
    assert sorted(every.column("value").to_pylist()) == [1, 2]


def test_appending_to_a_csv_source_is_an_error_and_writes_nothing(
    engine: OfflineEngine, tmp_path: Path
) -> None:
    path = tmp_path / "users.csv"
    path.write_text("uid,ts,v\n1,2024-05-01 11:00:00,1\n")
    source = SourceRef(str(path), "csv", "ts", None, {"uid": "user_id", "v": "value"}, "u")
    with pytest.raises(RetrievalError, match="offline pushes need a Parquet source; 'u' is csv"):
        engine.append(source, rows([1], [T0], [2]))
    assert not Path(str(source.pushed)).exists()


def test_a_failed_append_leaves_nothing(engine: OfflineEngine, tmp_path: Path) -> None:
    source = mapped(tmp_path / "users.parquet")
    engine.append(source, rows([1], [T0], [1]))
    bad = rows([2], [T0], [2]).append_column(
        "span", pa.array([pa.MonthDayNano([1, 0, 0])], pa.month_day_nano_interval())
    )
    with pytest.raises(DataSourceError, match=r"'u'.*nothing was written"):
        engine.append(source, bad)
    assert sorted(p.name.startswith("part-") for p in Path(str(source.pushed)).iterdir()) == [True]
    assert values(engine, source, [1, 2], T0) == [1, None]


def test_labelled_appends_replace_and_keep_their_metadata(
    engine: OfflineEngine, tmp_path: Path
) -> None:
    source = mapped(tmp_path / "users.parquet")
    first = rows([1], [T0], [1]).replace_schema_metadata({"run": "1"})
    engine.append(source, first, label="batch-7")
    again = rows([1], [T0], [2]).replace_schema_metadata({"run": "2"})
    engine.append(source, again, label="batch-7")  # a retry replaces, never adds
    engine.append(source, rows([3], [T0], [3]), label="other-1")
    engine.append(source, rows([4], [T0], [4]))
    labels = engine.labels(source, "batch-")
    assert list(labels) == ["batch-7"]
    assert labels["batch-7"][b"run"] == b"2"
    assert sorted(engine.labels(source, "")) == ["batch-7", "other-1"]
    assert values(engine, source, [1, 3, 4], T0) == [2, 3, 4]
    with pytest.raises(RetrievalError, match="label"):
        engine.append(source, rows([5], [T0], [5]), label="../escape")


def test_later_appends_win_last_value_ties(engine: OfflineEngine, tmp_path: Path) -> None:
    source = mapped(tmp_path / "users.parquet")
    for value in (5, 9, 7):  # three appends of one event time: arrival decides
        engine.append(source, rows([1], [T0], [value]))
    join = AggregateJoin(
        "w", source, ("user_id",), ("user_id",), (("last", "value", H, "last_value"),)
    )
    out = engine.historical(entity([1], [T0.replace(tzinfo=None)]), PitPlan((), aggregates=(join,)))
    assert out.to_arrow().column("last_value").to_pylist() == [7]
