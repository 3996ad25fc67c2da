"""Exchange trading sessions and the Dagster partitions built from them."""

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import dagster as dg
import exchange_calendars as xcals
import pandas as pd

PARTITION_FMT = "%Y-%m-%d"
# exchange-calendars cannot build a calendar before its own first recorded year.
_EARLIEST = pd.Timestamp("2005-01-04")


@lru_cache(maxsize=8)
def _exchange(name: str) -> xcals.ExchangeCalendar:
    return xcals.get_calendar(name, start=_EARLIEST)


@lru_cache(maxsize=64)
def sessions(name: str, start: date, end: date) -> tuple[date, ...]:
    """Trading sessions of exchange ``name`` between start and end, both inclusive."""
    cal = _exchange(name)
    start_ts = max(pd.Timestamp(start), cal.first_session)
    end_ts = min(pd.Timestamp(end), cal.last_session)
    if start_ts > end_ts:
        return ()
    return tuple(ts.date() for ts in cal.sessions_in_range(start_ts, end_ts))


def last_recorded_session(name: str) -> date:
    """The last session the exchange's holiday table covers."""
    return _exchange(name).last_session.date()


def exchange_timezone(name: str) -> str:
    return str(_exchange(name).tz)


def is_session(name: str, day: date) -> bool:
    cal = _exchange(name)
    ts = pd.Timestamp(day)
    return cal.first_session <= ts <= cal.last_session and cal.is_session(ts)


def shift_sessions(name: str, day: date, offset: int) -> date:
    """The session ``offset`` sessions after (negative: before) the session ``day``."""
    cal = _exchange(name)
    ts = pd.Timestamp(day)
    if not cal.is_session(ts):
        raise ValueError(f"{day} is not a {name} session")
    return cal.session_offset(ts, offset).date()


def current_session(name: str, now: datetime | None = None) -> date:
    """The latest session on or before today in the exchange's time zone (capped at the last
    session its holiday table covers)."""
    today = (now or datetime.now(UTC)).astimezone(ZoneInfo(exchange_timezone(name))).date()
    cal = _exchange(name)
    ts = min(pd.Timestamp(today), cal.last_session)
    return (ts if cal.is_session(ts) else cal.date_to_session(ts, direction="previous")).date()


def trading_days_partitions(name: str, start: date) -> dg.DailyPartitionsDefinition:
    """One partition per session: weekends and the exchange's holidays are excluded.

    Partitions end at the current session in the exchange's time zone, so "missing" means
    missing; if the exchange's holiday table ends sooner they stop there, since beyond it
    holidays would silently become partitions.
    """
    first = sessions(name, start, start + timedelta(days=14))[0]
    end = last_recorded_session(name)
    weekdays = pd.bdate_range(first, end)
    open_days = set(sessions(name, first, end))
    holidays = [
        datetime.combine(d.date(), datetime.min.time())
        for d in weekdays
        if d.date() not in open_days
    ]
    open_ended = end >= datetime.now(UTC).date()
    return dg.DailyPartitionsDefinition(
        start_date=first.strftime(PARTITION_FMT),
        end_date=None if open_ended else (end + timedelta(days=1)).strftime(PARTITION_FMT),
        timezone=exchange_timezone(name),
        fmt=PARTITION_FMT,
        # The session's partition exists from its morning on, so the routine after the close
        # can materialize it the same day.
        end_offset=1,
        exclusions=["0 0 * * 6,0", *holidays],
    )


def partition_date(key: str) -> date:
    return datetime.strptime(key, PARTITION_FMT).date()
