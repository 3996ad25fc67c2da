"""Kept partition versions: every rewrite keeps the old bytes; history, retention, restore."""

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from qlib_assets.storage.lake import Lake
from qlib_assets.storage.restore import RestoreError, restore_in_place, restore_to
from qlib_assets.storage.versions import (
    UNTRACKED_RUN,
    Retention,
    VersionError,
    from_ns,
    to_ns,
    writing_run,
)
from qlib_assets_tests.storage.test_qlib_bin import DAYS, LIFE, assert_reads, make_bars

DAY = DAYS[3]


def frame(value: float) -> pl.DataFrame:
    return pl.DataFrame({"instrument": ["SH600000"], "date": [DAY], "close": [value]})


def tick() -> datetime:
    """A moment strictly between two writes (the index keeps nanoseconds)."""
    time.sleep(0.002)
    moment = datetime.now(UTC)
    time.sleep(0.002)
    return moment


def snapshot(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_rewrite_keeps_old_bytes_with_sha_time_and_run(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    with writing_run("run-a"):
        first = lake.write_day("raw_bars", DAY, frame(1.0))
    old_bytes = lake.path("raw_bars", DAY).read_bytes()
    second = Lake(tmp_path / "lake", run_id="run-b").write_day("raw_bars", DAY, frame(2.0))
    history = lake.versions.history("raw_bars", DAY)
    assert [(v.sha256, v.run_id) for v in history] == [(first, "run-a"), (second, "run-b")]
    assert history[0].written_at < history[1].written_at <= datetime.now(UTC)
    assert lake.versions.open_version(history[0]).read_bytes() == old_bytes
    # The time history shows names its version exactly when given back as an as-of time.
    for version in history:
        [current] = lake.versions.as_of(to_ns(version.written_at), "raw_bars")
        assert current.sha256 == version.sha256
    # Equal bytes are no new version; back to old content shares the kept object.
    lake.write_day("raw_bars", DAY, frame(2.0))
    lake.write_day("raw_bars", DAY, frame(1.0))
    history = lake.versions.history("raw_bars", DAY)
    assert [v.sha256 for v in history] == [first, second, first]
    assert len(list(lake.versions.objects.glob("*/*"))) == 2
    # The lake file is the kept object itself (a hard link), not a copy.
    assert os.path.samefile(lake.path("raw_bars", DAY), lake.versions.object_path(first))


def test_file_written_before_versioning_is_kept_on_rewrite(tmp_path: Path) -> None:
    target = tmp_path / "lake" / "alpha158" / f"{DAY}.parquet"
    target.parent.mkdir(parents=True)
    frame(7.0).write_parquet(target)
    legacy = target.read_bytes()
    lake = Lake(tmp_path / "lake")
    lake.write_day("alpha158", DAY, frame(8.0))
    history = lake.versions.history("alpha158", DAY)
    assert [v.run_id for v in history] == [UNTRACKED_RUN, "manual"]
    assert lake.versions.open_version(history[0]).read_bytes() == legacy


def test_retention_prunes_superseded_versions_only(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    for value in (1.0, 2.0, 3.0):
        lake.write_day("raw_bars", DAY, frame(value))
    lake.write_day("labels", DAY, frame(9.0))
    unbounded = lake.versions.prune(Retention())
    assert unbounded.versions == 0
    superseded, _ = lake.versions.usage()
    one = lake.versions.history("raw_bars", DAY)[0].size
    result = lake.versions.prune(Retention(max_bytes=superseded - 1))
    assert (result.versions, result.objects, result.bytes_freed) == (1, 1, one)
    history = lake.versions.history("raw_bars", DAY)
    assert [v.pruned_ns is not None for v in history] == [True, False, False]
    with pytest.raises(VersionError, match="no longer kept"):
        lake.versions.open_version(history[0])
    later = time.time_ns() + int(2 * 86_400e9)
    aged = lake.versions.prune(Retention(keep_days=1), now_ns=later)
    assert aged.versions == 1
    # Current versions survive any retention; their bytes are still readable.
    assert lake.read_days("raw_bars", [DAY])["close"].to_list() == [3.0]
    assert lake.read_days("labels", [DAY])["close"].to_list() == [9.0]


def test_retention_setting_applies_after_each_write(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake", retention=Retention(max_bytes=0))
    for value in (1.0, 2.0, 3.0):
        lake.write_day("raw_bars", DAY, frame(value))
    assert [v.pruned_ns is None for v in lake.versions.history("raw_bars", DAY)] == [
        False,
        False,
        True,
    ]
    assert lake.versions.usage()[0] == 0


def test_restore_as_of_gives_the_bytes_and_provider_of_that_time(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    before = make_bars(DAYS[:10], seed=1)
    lake.write_days("raw_bars", before, DAYS[:10])
    lake.write_days("indicators", before.select("instrument", "date", "close"), DAYS[:10])
    between = tick()
    corrected = make_bars(DAYS[4:5], seed=2)
    lake.write_days("raw_bars", corrected, DAYS[4:5])
    lake.write_days("raw_bars", make_bars(DAYS[10:12], seed=3), DAYS[10:12])
    after = tick()

    old = restore_to(lake, between, tmp_path / "old", "XSHG")
    new = restore_to(lake, after, tmp_path / "new", "XSHG")
    assert old.partitions == {"indicators": 10, "raw_bars": 10}
    assert new.partitions == {"indicators": 10, "raw_bars": 12}
    assert old.provider_sessions == 10 and new.provider_sessions == 12
    old_lake, new_lake = Lake(tmp_path / "old" / "lake"), Lake(tmp_path / "new" / "lake")
    by_key = ("date", "instrument")
    assert old_lake.read_days("raw_bars", DAYS[:10]).sort(by_key).equals(before.sort(by_key))
    assert new_lake.read_days("raw_bars", DAYS[4:5]).sort(by_key).equals(corrected.sort(by_key))
    assert (
        new_lake.path("raw_bars", DAYS[4]).read_bytes()
        == lake.path("raw_bars", DAYS[4]).read_bytes()
    )
    # Each restored provider reads back through Qlib as its restored raw_bars.
    assert_reads(tmp_path / "old" / "qlib_data", old_lake.read_days("raw_bars", DAYS[:10]))
    assert_reads(tmp_path / "new" / "qlib_data", new_lake.read_days("raw_bars", DAYS[:12]))


def test_bad_restore_requests_change_nothing(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    with pytest.raises(RestoreError, match="no recorded versions"):
        restore_to(lake, datetime.now(UTC), tmp_path / "out", "XSHG")
    lake.write_days("raw_bars", make_bars(DAYS[:3], seed=1), DAYS[:3])
    first = lake.versions.history("raw_bars", DAYS[0])[0].written_ns
    state = snapshot(tmp_path)
    with pytest.raises(RestoreError, match="before the first recorded version"):
        restore_to(lake, from_ns(first) - timedelta(seconds=1), tmp_path / "out", "XSHG")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    state = snapshot(tmp_path)
    with pytest.raises(RestoreError, match="not an empty folder"):
        restore_to(lake, datetime.now(UTC), tmp_path / "busy", "XSHG")
    with pytest.raises(RestoreError, match="needs a reason"):
        restore_in_place(lake, datetime.now(UTC), tmp_path / "qlib", "XSHG", "me", " ")
    assert snapshot(tmp_path) == state


def test_in_place_restore_is_audited_and_keeps_newer_versions(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    lake.write_days("raw_bars", make_bars(DAYS[:5], seed=1), DAYS[:5])
    original = snapshot(lake.root / "raw_bars")
    between = tick()
    lake.write_days("raw_bars", make_bars(DAYS[2:7], seed=2), DAYS[2:7])
    newest = snapshot(lake.root / "raw_bars")
    after = tick()

    result = restore_in_place(lake, between, tmp_path / "qlib", "XSHG", "ops", "bad vendor file")
    assert result.changed == 5  # three corrected sessions back, two later sessions removed
    assert snapshot(lake.root / "raw_bars") == original
    assert_reads(tmp_path / "qlib", lake.read_days("raw_bars", DAYS[:5]), LIFE)
    [audit] = lake.versions.restores()
    assert (audit["actor"], audit["reason"], audit["in_place"]) == ("ops", "bad vendor file", True)
    # The newer state is one more restore away.
    restore_to(lake, after, tmp_path / "back", "XSHG")
    assert snapshot(tmp_path / "back" / "lake" / "raw_bars") == newest
