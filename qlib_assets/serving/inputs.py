"""What a prediction request scores: a session's features from the lake, or the caller's rows.

Each failure is a ``RequestError`` carrying the HTTP status and a detail that names the field or
what is missing, so the app turns it into a clear 4xx without knowing the rules.
"""

import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import date
from typing import Any

import polars as pl

from qlib_assets.calendar import is_session
from qlib_assets.models.specs import ModelSpec
from qlib_assets.online.predictions import KEYS, scoring_features
from qlib_assets.serving.schemas import FeatureRow
from qlib_assets.storage.lake import Lake

CACHED_SESSIONS = 8


class RequestError(Exception):
    """A request the service refuses: ``status`` and a JSON-able ``detail``."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


def field_error(field: str, message: str) -> RequestError:
    """422 in FastAPI's own layout, so every malformed body reads the same."""
    return RequestError(422, [{"loc": ["body", field], "msg": message, "type": "value_error"}])


class SessionFeatures:
    """A session's feature rows per spec, read once and kept while the files are unchanged."""

    def __init__(self, lake: Lake, calendar: str) -> None:
        self.lake = lake
        self.calendar = calendar
        self._cache: OrderedDict[tuple[str, date, tuple[int, ...]], pl.DataFrame] = OrderedDict()
        self._lock = threading.Lock()

    def frame(self, spec: ModelSpec, day: date, columns: Sequence[str]) -> pl.DataFrame:
        """``instrument, date`` + ``columns`` of ``day``; 400 not a session, 409 missing."""
        if not is_session(self.calendar, day):
            raise RequestError(
                400, {"field": "date", "msg": f"{day} is not a {self.calendar} trading session"}
            )
        assets = [source.asset for source in spec.features]
        missing = [a for a in assets if not self.lake.exists(a, day)]
        if missing:
            raise RequestError(
                409,
                {
                    "msg": f"features of {day} are not materialized for {spec.name}",
                    "missing_assets": missing,
                    "date": day.isoformat(),
                },
            )
        stamp = tuple(self.lake.path(a, day).stat().st_mtime_ns for a in assets)
        key = (spec.name, day, stamp)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
        if cached is None:
            cached = scoring_features(self.lake, spec, [day])
            with self._lock:
                self._cache[key] = cached
                while len(self._cache) > CACHED_SESSIONS:
                    self._cache.popitem(last=False)
        absent = [c for c in columns if c not in cached.columns]
        if absent:
            raise RequestError(
                409,
                {
                    "msg": f"features of {day} lack {len(absent)} column(s) the model reads",
                    "missing_columns": absent,
                    "date": day.isoformat(),
                },
            )
        return cached.select(*KEYS, *columns)

    def latest_session(self, spec: ModelSpec) -> date | None:
        common = None
        for source in spec.features:
            days = set(self.lake.days(source.asset))
            common = days if common is None else common & days
        return max(common) if common else None


def select_instruments(
    frame: pl.DataFrame, instruments: Sequence[str]
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Rows of the requested instruments (first occurrence order) and a reason per absent one."""
    wanted = list(dict.fromkeys(instruments))
    present = set(frame.get_column("instrument").to_list())
    day = frame.get_column("date")[0] if frame.height else None
    reasons = {
        name: f"no feature row for {name} on {day}: unknown instrument or not trading that session"
        for name in wanted
        if name not in present
    }
    rows = frame.filter(pl.col("instrument").is_in(pl.Series([w for w in wanted if w in present])))
    return rows, reasons


def rows_frame(rows: Sequence[FeatureRow], columns: Sequence[str]) -> pl.DataFrame:
    """The caller's rows in the model's layout; 422 naming the absent features or a duplicate."""
    seen: set[tuple[str, date]] = set()
    for index, row in enumerate(rows):
        absent = [c for c in columns if c not in row.features]
        if absent:
            shown = ", ".join(absent[:5]) + (" ..." if len(absent) > 5 else "")
            raise field_error(
                f"rows[{index}].features",
                f"{len(absent)} feature(s) the model reads are absent: {shown}",
            )
        key = (row.instrument, row.date)
        if key in seen:
            raise field_error(f"rows[{index}]", f"duplicate row for {row.instrument} {row.date}")
        seen.add(key)
    data: dict[str, Any] = {
        "instrument": [r.instrument for r in rows],
        "date": [r.date for r in rows],
    }
    for column in columns:
        data[column] = [r.features[column] for r in rows]
    schema = {"instrument": pl.String(), "date": pl.Date(), **dict.fromkeys(columns, pl.Float32())}
    return pl.DataFrame(data, schema=schema)
