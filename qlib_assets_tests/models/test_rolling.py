"""Rolling windows against Qlib's own RollingGen on the same calendar."""

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import qlib
from qlib.workflow.task.gen import RollingGen

from qlib_assets.calendar import sessions
from qlib_assets.models.rolling import Window, rolling_windows, window_for_day, window_for_key
from qlib_assets.models.specs import RollingSection

DAYS = sessions("XSHG", date(2020, 1, 2), date(2023, 12, 29))


@pytest.fixture(scope="module")
def qlib_calendar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A provider holding only a calendar: RollingGen reads nothing but ``D.calendar``."""
    root: Path = tmp_path_factory.mktemp("provider")
    (root / "calendars").mkdir()
    (root / "instruments").mkdir()
    (root / "features").mkdir()
    (root / "calendars" / "day.txt").write_text("".join(f"{d.isoformat()}\n" for d in DAYS))
    (root / "instruments" / "all.txt").write_text(f"SH600000\t{DAYS[0]}\t{DAYS[-1]}\n")
    qlib.init(
        provider_uri=str(root), region="cn", kernels=1, expression_cache=None, dataset_cache=None
    )
    yield


def _qlib_windows(rolling: RollingSection, first: int, last_day: date) -> list[Window]:
    """RollingGen over the untruncated layout of our first window."""
    step = rolling.step
    assert isinstance(step, int)
    valid, train = rolling.valid_sessions, rolling.train_sessions
    task = {
        "dataset": {
            "kwargs": {
                "segments": {
                    "train": (DAYS[first - valid - train], DAYS[first - valid - 1]),
                    "valid": (DAYS[first - valid], DAYS[first - 1]),
                    "test": (DAYS[first], last_day),
                }
            }
        }
    }
    gen = RollingGen(
        step=step, rtype=rolling.type, ds_extra_mod_func=None, trunc_days=rolling.trunc_days
    )

    def seg(pair: tuple[pd.Timestamp, pd.Timestamp]) -> tuple[date, date]:
        return pair[0].date(), pair[1].date()

    out = []
    for t in gen.generate(task):
        s = t["dataset"]["kwargs"]["segments"]
        out.append(Window(train=seg(s["train"]), valid=seg(s["valid"]), test=seg(s["test"])))
    return out


@pytest.mark.parametrize(
    ("step", "kind", "train", "valid", "trunc"),
    [
        (20, "expanding", 250, 60, 3),
        (20, "sliding", 250, 60, 3),
        (7, "sliding", 120, 30, 5),
        (63, "expanding", 200, 40, 10),
    ],
)
def test_windows_equal_qlib_rolling_gen(
    qlib_calendar: None, step: int, kind: str, train: int, valid: int, trunc: int
) -> None:
    rolling = RollingSection(
        step=step, type=kind, train_sessions=train, valid_sessions=valid, trunc_days=trunc
    )
    first = train + valid + 5
    last_day = DAYS[-80]
    ours = rolling_windows(rolling, DAYS, last_day, first_test_start=DAYS[first])
    theirs = _qlib_windows(rolling, first, last_day)
    assert len(ours) > 5
    assert ours == theirs


def test_expanding_moves_only_train_end_and_sliding_moves_everything() -> None:
    base = {"step": 20, "train_sessions": 250, "valid_sessions": 60, "trunc_days": 3}
    expanding = rolling_windows(RollingSection(type="expanding", **base), DAYS, DAYS[-30])
    sliding = rolling_windows(RollingSection(type="sliding", **base), DAYS, DAYS[-30])
    assert {w.train[0] for w in expanding} == {DAYS[0]}
    assert len({w.train[1] for w in expanding}) == len(expanding)
    assert len({w.train[0] for w in sliding}) == len(sliding)
    for window in sliding:
        train_len = DAYS.index(window.train[1]) - DAYS.index(window.train[0]) + 1
        assert train_len == 250


@pytest.mark.parametrize("step", [20, 5, "month"])
@pytest.mark.parametrize("kind", ["expanding", "sliding"])
def test_no_train_or_valid_label_reaches_the_test_segment(step: int | str, kind: str) -> None:
    horizon = 2
    rolling = RollingSection(
        step=step, type=kind, train_sessions=200, valid_sessions=40, trunc_days=horizon + 1
    )
    windows = rolling_windows(rolling, DAYS, DAYS[-10])
    assert windows
    for window in windows:
        test_start = DAYS.index(window.test[0])
        for segment in (window.train, window.valid):
            # The label of day d reads the close of d + horizon.
            assert DAYS.index(segment[1]) + horizon < test_start
        assert window.train[1] < window.valid[0] <= window.valid[1] < window.test[0]


def test_monthly_windows_test_one_calendar_month_each() -> None:
    rolling = RollingSection(
        step="month", type="sliding", train_sessions=200, valid_sessions=40, trunc_days=3
    )
    windows = rolling_windows(rolling, DAYS, date(2023, 6, 30), first_test_start=date(2021, 7, 1))
    assert [w.key for w in windows[:2]] == ["2021-07-01", "2021-08-02"]
    assert len(windows) == 24
    for window in windows:
        month = [
            d for d in DAYS if (d.year, d.month) == (window.test[0].year, window.test[0].month)
        ]
        assert window.test == (month[0], month[-1])


def test_keys_lookup_and_too_little_history() -> None:
    rolling = RollingSection(
        step=20, type="sliding", train_sessions=200, valid_sessions=40, trunc_days=3
    )
    windows = rolling_windows(rolling, DAYS, DAYS[-1])
    assert window_for_key(windows, windows[3].key) == windows[3]
    assert window_for_day(windows, windows[3].test[1]) == windows[3]
    with pytest.raises(KeyError, match="no rolling window with key"):
        window_for_key(windows, "1999-01-04")
    with pytest.raises(ValueError, match="needs 240"):
        rolling_windows(rolling, DAYS, DAYS[-1], first_test_start=DAYS[100])
