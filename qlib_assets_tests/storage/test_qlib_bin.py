"""The Qlib provider writer, read back through Qlib 0.9.7's own data API."""

import os
import random
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import filelock
import numpy as np
import pandas as pd
import polars as pl
import pytest
import qlib
from qlib.data import D

from qlib_assets.calendar import sessions
from qlib_assets.market.schema import BAR_SCHEMA, FIELD_COLUMNS
from qlib_assets.storage.qlib_bin import LOCK_NAME, QlibProviderWriter
from qlib_assets.storage.qlib_journal import JOURNAL_DIR

DAYS = list(sessions("XSHG", date(2024, 1, 2), date(2024, 2, 20)))[:20]
QLIB_FIELDS = [f"${name}" for name in FIELD_COLUMNS]
REPO = Path(__file__).resolve().parents[2]

# code -> (first session number, last session number, session numbers without a bar)
LIFE = {
    "SH600000": (0, 19, {5, 6, 13}),  # suspended three times
    "SH600001": (0, 11, {3}),  # delisted after session 11
    "SZ000001": (8, 19, {10}),  # listed at session 8
    "SZ000002": (0, 19, set()),
}


def make_bars(days: list[date], seed: int, life: dict = LIFE) -> pl.DataFrame:
    """Random but plausible bars of the instruments alive on ``days``."""
    rng = np.random.default_rng(seed)
    rows = []
    for code, (first, last, missing) in life.items():
        for day in days:
            number = DAYS.index(day)
            if first <= number <= last and number not in missing:
                close = float(rng.uniform(5, 50))
                rows.append(
                    {
                        "instrument": code,
                        "date": day,
                        "open": close * rng.uniform(0.97, 1.03),
                        "high": close * 1.04,
                        "low": close * 0.95,
                        "close": close,
                        "volume": float(rng.integers(1_000, 1_000_000)),
                        "amount": float(rng.uniform(1e5, 1e8)),
                        "vwap": close * rng.uniform(0.99, 1.01),
                        "factor": float(rng.choice([1.0, 1.25, 2.0])),
                    }
                )
    return pl.DataFrame(rows, schema=BAR_SCHEMA)


def replace_days(base: pl.DataFrame, new: pl.DataFrame, days: list[date]) -> pl.DataFrame:
    return pl.concat([base.filter(~pl.col("date").is_in(days)), new])


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != LOCK_NAME
    }


def read_qlib(root: Path, instruments: list[str] | str, start: date, end: date) -> pd.DataFrame:
    # qlib.init clears Qlib's in-memory caches, so every read sees the files as they are now.
    qlib.init(provider_uri=str(root), region="cn", kernels=1, logging_level="WARNING")
    universe = D.instruments(instruments) if isinstance(instruments, str) else instruments
    frame = D.features(universe, QLIB_FIELDS, start_time=str(start), end_time=str(end))
    frame.columns = list(FIELD_COLUMNS)
    return frame


def expected_frame(bars: pl.DataFrame, life: dict = LIFE) -> pd.DataFrame:
    """What Qlib must return: each instrument from its first to last bar, NaN where it has none."""
    written = sorted(set(bars["date"].to_list()))
    calendar = list(sessions("XSHG", written[0], written[-1]))
    parts = []
    for code in life:
        own = bars.filter(pl.col("instrument") == code).sort("date")
        if own.height == 0:
            continue
        span = [day for day in calendar if own["date"][0] <= day <= own["date"][-1]]
        values = own.to_pandas().set_index("date")[list(FIELD_COLUMNS)]
        values.index = pd.to_datetime(values.index)
        values = values.reindex(pd.to_datetime(span)).astype(np.float32)
        values.index = pd.MultiIndex.from_product([[code], values.index])
        parts.append(values)
    frame = pd.concat(parts)
    frame.index.names = ["instrument", "datetime"]
    return frame


def assert_reads(root: Path, bars: pl.DataFrame, life: dict = LIFE) -> None:
    written = sorted(set(bars["date"].to_list()))
    got = read_qlib(root, sorted(life), written[0], written[-1])
    want = expected_frame(bars, life)
    pd.testing.assert_frame_equal(got.sort_index(), want.sort_index(), check_dtype=True)


def test_sync_reads_back_exactly_through_qlib(tmp_path: Path) -> None:
    bars = make_bars(DAYS[:15], seed=1)
    result = QlibProviderWriter(tmp_path).sync(bars, DAYS[:15])

    assert (result.sessions_appended, result.sessions_rewritten, result.sessions_padded) == (
        15,
        0,
        0,
    )
    assert result.first_session == DAYS[0] and result.last_session == DAYS[14]
    assert_reads(tmp_path, bars)
    suspended = read_qlib(tmp_path, ["SH600000"], DAYS[0], DAYS[14]).loc["SH600000"]
    assert suspended.loc[pd.Timestamp(DAYS[5])].isna().all()
    assert suspended.loc[pd.Timestamp(DAYS[4])].notna().all()


def test_instruments_file_bounds_late_listing_and_delisting(tmp_path: Path) -> None:
    bars = make_bars(DAYS, seed=2)
    QlibProviderWriter(tmp_path).sync(bars, DAYS)

    assert (tmp_path / "instruments" / "all.txt").read_text().splitlines() == [
        f"SH600000\t{DAYS[0]}\t{DAYS[19]}",
        f"SH600001\t{DAYS[0]}\t{DAYS[11]}",
        f"SZ000001\t{DAYS[8]}\t{DAYS[19]}",
        f"SZ000002\t{DAYS[0]}\t{DAYS[19]}",
    ]
    header = np.fromfile(tmp_path / "features" / "sz000001" / "close.day.bin", "<f4")[0]
    assert header == 8
    market = read_qlib(tmp_path, "all", DAYS[0], DAYS[19])
    late = market.loc["SZ000001"].index
    gone = market.loc["SH600001"].index
    assert late.min() == pd.Timestamp(DAYS[8]) and gone.max() == pd.Timestamp(DAYS[11])
    assert (tmp_path / "calendars" / "day.txt").read_text().split() == [str(d) for d in DAYS]


def test_append_sessions_equals_rebuild(tmp_path: Path) -> None:
    bars = make_bars(DAYS, seed=3)
    writer = QlibProviderWriter(tmp_path / "synced")
    writer.sync(bars.filter(pl.col("date") < DAYS[12]), DAYS[:12])
    one = writer.sync(bars.filter(pl.col("date") == DAYS[12]), [DAYS[12]])
    writer.sync(bars.filter(pl.col("date") > DAYS[12]), DAYS[13:])

    assert one.sessions_appended == 1 and one.instruments_touched == 3
    assert one.files_written == 3 * len(FIELD_COLUMNS)
    assert_reads(tmp_path / "synced", bars)
    QlibProviderWriter(tmp_path / "rebuilt").rebuild(bars)
    assert snapshot(tmp_path / "synced") == snapshot(tmp_path / "rebuilt")


def test_range_rewrite_changes_only_that_range(tmp_path: Path) -> None:
    bars = make_bars(DAYS, seed=4)
    writer = QlibProviderWriter(tmp_path)
    writer.sync(bars, DAYS)
    before = read_qlib(tmp_path, sorted(LIFE), DAYS[0], DAYS[19])
    window = DAYS[5:8]
    changed_life = dict(LIFE)
    changed_life["SH600000"] = (0, 19, {6, 13})  # now trades on session 5
    changed_life["SZ000002"] = (0, 19, {7})  # now suspended on session 7
    fresh = make_bars(window, seed=99, life=changed_life)

    result = writer.sync(fresh, window)

    assert result.sessions_rewritten == 3 and result.sessions_appended == 0
    merged = replace_days(bars, fresh, window)
    assert_reads(tmp_path, merged)
    after = read_qlib(tmp_path, sorted(LIFE), DAYS[0], DAYS[19])
    outside = ~after.index.get_level_values("datetime").isin(pd.to_datetime(window))
    pd.testing.assert_frame_equal(after[outside], before[outside])
    assert not after[~outside].equals(before[~outside])


def test_rewrites_that_move_an_instruments_bounds_equal_rebuild(tmp_path: Path) -> None:
    bars = make_bars(DAYS, seed=5)
    writer = QlibProviderWriter(tmp_path / "synced")
    writer.sync(bars, DAYS)
    # The delisted one loses its last bar, the late listing its first two, SZ000002 vanishes
    # from the rewritten range and SH600000 gains bars before nothing changes.
    window = DAYS[7:12]
    life = {
        "SH600000": (0, 19, set()),
        "SH600001": (0, 10, {3}),
        "SZ000001": (10, 19, set()),
    }
    fresh = make_bars(window, seed=6, life=life)
    writer.sync(fresh, window)
    merged = replace_days(bars, fresh, window)

    QlibProviderWriter(tmp_path / "rebuilt").rebuild(merged)
    assert snapshot(tmp_path / "synced") == snapshot(tmp_path / "rebuilt")
    assert_reads(tmp_path / "synced", merged)


def test_random_sync_sequences_equal_rebuild(tmp_path: Path) -> None:
    shuffle = random.Random(7)
    truth = make_bars(DAYS[:8], seed=10)
    writer = QlibProviderWriter(tmp_path / "synced")
    writer.sync(truth, DAYS[:8])
    for step in range(30):
        window = sorted(shuffle.sample(DAYS, shuffle.randint(1, 4)))
        life = {
            code: (shuffle.randint(0, 10), shuffle.randint(9, 19), {shuffle.randint(0, 19)})
            for code in shuffle.sample(sorted(LIFE), shuffle.randint(0, 4))
        }
        fresh = make_bars(window, seed=100 + step, life=life)
        writer.sync(fresh, window)
        truth = replace_days(truth, fresh, window)
        synced_days = sorted(set(truth["date"].to_list()))
        rebuilt = tmp_path / f"rebuilt{step}"
        if synced_days:
            QlibProviderWriter(rebuilt).rebuild(truth, writer.sessions())
            assert snapshot(tmp_path / "synced") == snapshot(rebuilt), f"step {step}"


def test_skipped_sessions_are_padded_then_filled(tmp_path: Path) -> None:
    bars = make_bars(DAYS[:12], seed=8)
    writer = QlibProviderWriter(tmp_path)
    writer.sync(bars.filter(pl.col("date") < DAYS[5]), DAYS[:5])
    jump = writer.sync(bars.filter(pl.col("date") >= DAYS[9]), DAYS[9:12])

    assert jump.sessions_appended == 3 and jump.sessions_padded == 4
    assert writer.sessions() == DAYS[:12]
    gap = read_qlib(tmp_path, ["SZ000002"], DAYS[5], DAYS[8])
    assert len(gap) == 4 and gap.isna().all().all()

    writer.sync(bars.filter(pl.col("date").is_in(DAYS[5:9])), DAYS[5:9])
    assert_reads(tmp_path, bars)


def test_rejects_what_it_cannot_write(tmp_path: Path) -> None:
    bars = make_bars(DAYS[5:10], seed=9)
    writer = QlibProviderWriter(tmp_path)
    writer.sync(bars, DAYS[5:10])
    with pytest.raises(ValueError, match="before the provider's first session"):
        writer.sync(make_bars(DAYS[:2], seed=9), DAYS[:2])
    with pytest.raises(ValueError, match="not XSHG sessions: 2024-01-06"):
        writer.sync(bars.clear(), [date(2024, 1, 6)])
    with pytest.raises(ValueError, match="outside the synced sessions"):
        writer.sync(bars, DAYS[9:10])
    with pytest.raises(ValueError, match="duplicated"):
        writer.sync(pl.concat([bars, bars.head(1)]), DAYS[5:10])


def test_resync_of_the_same_input_is_byte_identical(tmp_path: Path) -> None:
    bars = make_bars(DAYS, seed=11)
    writer = QlibProviderWriter(tmp_path)
    writer.sync(bars, DAYS)
    first = snapshot(tmp_path)
    writer.sync(bars.filter(pl.col("date").is_in(DAYS[3:9])), DAYS[3:9])
    writer.sync(bars, DAYS)
    assert snapshot(tmp_path) == first


def test_failure_mid_write_rolls_back(tmp_path: Path) -> None:
    bars = make_bars(DAYS[:10], seed=12)
    writer = QlibProviderWriter(tmp_path)
    writer.sync(bars, DAYS[:10])
    before = snapshot(tmp_path)
    # A folder where the newcomer's close file must go makes its write fail after the
    # appends and the range rewrite of the other instruments went through.
    (tmp_path / "features" / "sz300999" / "close.day.bin").mkdir(parents=True)
    newcomer = {**LIFE, "SZ300999": (0, 19, set())}
    window = DAYS[8:14]

    with pytest.raises(IsADirectoryError):
        writer.sync(make_bars(window, seed=13, life=newcomer), window)

    assert snapshot(tmp_path) == before
    assert not (tmp_path / JOURNAL_DIR).exists()
    assert not (tmp_path / "features" / "sz300999").exists()
    assert writer.recover() is False
    writer.sync(make_bars(window, seed=13), window)
    assert_reads(tmp_path, replace_days(bars, make_bars(window, seed=13), window))


_CHILD = """
import sys
from datetime import date
from pathlib import Path
import polars as pl
from qlib_assets.storage.qlib_bin import QlibProviderWriter
days = [date.fromisoformat(d) for d in sys.argv[3].split(",")]
QlibProviderWriter(Path(sys.argv[1])).sync(pl.read_parquet(sys.argv[2]), days)
"""


def test_killed_writer_is_rolled_back_by_the_next_run(tmp_path: Path) -> None:
    root = tmp_path / "provider"
    bars = make_bars(DAYS[:10], seed=14)
    writer = QlibProviderWriter(root)
    writer.sync(bars, DAYS[:10])
    before = snapshot(root)
    # Opening a FIFO for writing blocks, so the child stops in the middle of its writes.
    (root / "features" / "sz300999").mkdir()
    os.mkfifo(root / "features" / "sz300999" / "close.day.bin")
    window = DAYS[10:13]
    payload = tmp_path / "bars.parquet"
    make_bars(window, seed=15, life={**LIFE, "SZ300999": (0, 19, set())}).write_parquet(payload)
    grown = root / "features" / "sh600000" / "close.day.bin"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root), str(payload), ",".join(map(str, window))],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 60
        while grown.stat().st_size == len(before["features/sh600000/close.day.bin"]):
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    assert (root / JOURNAL_DIR / "manifest.json").is_file()
    assert (root / "calendars" / "day.txt").read_bytes() == before["calendars/day.txt"]
    assert writer.recover() is True
    assert snapshot(root) == before
    assert writer.recover() is False


def test_a_second_writer_waits_for_the_lock(tmp_path: Path) -> None:
    bars = make_bars(DAYS[:3], seed=16)
    writer = QlibProviderWriter(tmp_path, lock_timeout=0.2)
    writer.sync(bars, DAYS[:3])
    with filelock.FileLock(writer.lock_path), pytest.raises(filelock.Timeout):
        writer.sync(bars, DAYS[:3])
    writer.sync(bars, DAYS[:3])


def test_rebuild_replaces_an_existing_provider(tmp_path: Path) -> None:
    old = make_bars(DAYS, seed=17)
    writer = QlibProviderWriter(tmp_path)
    writer.sync(old, DAYS)
    new = make_bars(DAYS[4:8], seed=18)

    result = writer.rebuild(new)

    assert result.first_session == DAYS[4] and result.last_session == DAYS[7]
    assert writer.sessions() == DAYS[4:8]
    assert not (tmp_path / JOURNAL_DIR).exists()
    life = {code: span for code, span in LIFE.items() if code != "SZ000001"}
    assert_reads(tmp_path, new, life)
    assert not (tmp_path / "features" / "sz000001").exists()
