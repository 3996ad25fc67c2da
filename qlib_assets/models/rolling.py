"""Rolling train / valid / test windows over trading sessions, with Qlib RollingGen semantics.

Each window is laid out at its test start ``t`` (a session index): valid covers the
``valid_sessions`` sessions before ``t``, train the ``train_sessions`` sessions before valid
(``expanding``: from the first window's train start instead), then every train and valid bound is
clipped to ``t - trunc_days`` so no label of those segments is complete only after ``t``. Test
starts advance by ``step`` sessions (or by calendar month). This equals RollingGen's output for the
same task: RollingGen truncates the first window and shifts it by ``step``; shifting a truncated
layout equals truncating the shifted one.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from qlib_assets.models.specs import RollingSection


@dataclass(frozen=True)
class Window:
    """One rolling window; ``key`` (the test start, ISO) is its partition key."""

    train: tuple[date, date]
    valid: tuple[date, date]
    test: tuple[date, date]

    @property
    def key(self) -> str:
        return self.test[0].isoformat()

    @property
    def data_start(self) -> date:
        return self.train[0]

    @property
    def data_end(self) -> date:
        """Last session whose features and labels training needs (the valid end)."""
        return self.valid[1]

    def segments(self) -> dict[str, tuple[date, date]]:
        return {"train": self.train, "valid": self.valid, "test": self.test}


def _test_starts(
    rolling: RollingSection, days: Sequence[date], first: int, last_day: date
) -> list[int]:
    if rolling.step == "month":
        starts = [first]
        for idx in range(first + 1, len(days)):
            if days[idx] > last_day:
                break
            if (days[idx].year, days[idx].month) != (days[idx - 1].year, days[idx - 1].month):
                starts.append(idx)
        return starts
    return [idx for idx in range(first, len(days), rolling.step) if days[idx] <= last_day]


def _test_end(rolling: RollingSection, days: Sequence[date], start: int) -> int:
    if rolling.step == "month":
        end = start
        while end + 1 < len(days) and days[end + 1].month == days[start].month:
            end += 1
        return end
    return min(start + rolling.step - 1, len(days) - 1)


def earliest_test_start(rolling: RollingSection, days: Sequence[date]) -> date:
    """The first session with enough history before it for a full train and valid segment."""
    needed = rolling.train_sessions + rolling.valid_sessions
    if len(days) <= needed:
        raise ValueError(
            f"the calendar has {len(days)} sessions; a window needs {needed} before its test start"
        )
    return days[needed]


def rolling_windows(
    rolling: RollingSection,
    days: Sequence[date],
    last_day: date,
    first_test_start: date | None = None,
) -> list[Window]:
    """Windows whose test segments start from ``first_test_start`` and cover ``last_day``.

    ``days`` is the trading calendar (sorted sessions). ``first_test_start`` defaults to the
    spec's, else to the earliest session with enough history; a non-session date is aligned to
    the next session, as RollingGen does.
    """
    days = list(days)
    start_day = first_test_start or rolling.first_test_start or earliest_test_start(rolling, days)
    first = next((i for i, d in enumerate(days) if d >= start_day), None)
    if first is None or days[first] > last_day:
        return []
    needed = rolling.train_sessions + rolling.valid_sessions
    if first < needed:
        raise ValueError(
            f"first test start {days[first]} has {first} sessions of history; the rolling spec "
            f"needs {needed} (train_sessions + valid_sessions)"
        )
    anchor_train_start = first - needed
    windows = []
    for start in _test_starts(rolling, days, first, last_day):
        cut = start - rolling.trunc_days
        valid_start = start - rolling.valid_sessions
        train_start = (
            anchor_train_start
            if rolling.type == "expanding"
            else valid_start - rolling.train_sessions
        )
        train_end = valid_start - 1
        windows.append(
            Window(
                train=(days[min(train_start, cut)], days[min(train_end, cut)]),
                valid=(days[min(valid_start, cut)], days[cut]),
                test=(days[start], days[_test_end(rolling, days, start)]),
            )
        )
    return windows


def window_for_key(windows: Sequence[Window], key: str) -> Window:
    for window in windows:
        if window.key == key:
            return window
    raise KeyError(f"no rolling window with key {key!r}; known: {[w.key for w in windows][:5]}...")


def window_for_day(windows: Sequence[Window], day: date) -> Window | None:
    """The window whose test segment holds ``day`` (the online model for that day)."""
    for window in windows:
        if window.test[0] <= day <= window.test[1]:
            return window
    return None
