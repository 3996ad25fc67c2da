"""Synthetic sample market: realistic, deterministic daily bars with planted, learnable effects.

``generate_market`` builds the bars of ``MarketSpec.instruments`` A-share main-board style
instruments over the exchange sessions of a calendar; ``write_landing`` writes them as landing
files. See ``.process`` for the return model and ``.bars`` for units.

The oracle (``Market.oracle``) holds, for every bar (instrument, date d), ``expected_return``:
the planted expectation, given information up to the close of d, of the simple close-to-close
return of the next exchange session d+1, ``close[d+1] / close[d] - 1`` in adjusted prices.
It is the mean before the +-10% price limit clips the return, and it is defined even when the
instrument has no bar at d+1 (suspension, delisting, end of range).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from rich.progress import track

from qlib_assets.calendar import sessions
from qlib_assets.market.schema import BAR_COLUMNS, BAR_SCHEMA, canonical
from qlib_assets.market.synthetic.bars import build_bars
from qlib_assets.market.synthetic.events import EventRates, draw_events
from qlib_assets.market.synthetic.process import MOMENTUM_WINDOW, Regime, simulate
from qlib_assets.storage.atomic import write_parquet_atomic, write_with

Format = Literal["parquet", "csv"]
Layout = Literal["per-day", "per-instrument"]

ORACLE_PATH = Path("_oracle") / "oracle.parquet"
ORACLE_SCHEMA: dict[str, pl.DataType] = {
    "instrument": pl.String(),
    "date": pl.Date(),
    "expected_return": pl.Float64(),
}
# Warm-up sessions simulated before the range and not written, so that volatility states
# and the momentum signal are settled on the first written session.
_BURN = MOMENTUM_WINDOW + 20
# Planted effect weights (reversal, momentum, abnormal volume) before and after the shift:
# after it, reversal turns into continuation and the volume effect flips.
_WEIGHTS_BEFORE = (0.6, 0.4, 0.35)
_WEIGHTS_AFTER = (-0.35, 0.7, -0.35)
_SHIFT_VOL_SCALE = 1.6
_SHIFT_LOG_VOLUME = 0.6
# Qlib-style main-board codes only, since the +-10% limit is the main-board rule.
_CODE_POOL = (
    *(f"SH{n:06d}" for n in range(600000, 606000)),
    *(f"SZ{n:06d}" for n in range(1, 4000)),
)


@dataclass(frozen=True)
class MarketSpec:
    """What to generate. Rates are per instrument; shares are fractions of all instruments.

    ``effect_strength`` is the planted expected return in units of the instrument's own
    volatility per unit of signal; the oracle IC is a little below it.
    """

    instruments: int
    start: date
    end: date
    seed: int = 0
    calendar: str = "XSHG"
    sectors: int = 10
    shift_date: date | None = None
    listing_share: float = 0.10
    delisting_share: float = 0.05
    suspensions_per_year: float = 0.6
    mean_suspension_sessions: float = 4.0
    splits_per_year: float = 0.12
    dividends_per_year: float = 0.7
    effect_strength: float = 0.065

    def __post_init__(self) -> None:
        if not 1 <= self.instruments <= len(_CODE_POOL):
            raise ValueError(f"instruments must be in 1..{len(_CODE_POOL)}, got {self.instruments}")
        if self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        if self.sectors < 1:
            raise ValueError(f"sectors must be >= 1, got {self.sectors}")
        for name in ("listing_share", "delisting_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.mean_suspension_sessions < 1.0:
            raise ValueError("mean_suspension_sessions must be >= 1")


@dataclass(frozen=True)
class Market:
    """``bars``: canonical schema, sorted by instrument then date. ``oracle``: one row per bar
    with the planted ``expected_return`` of the next session (see the module docstring)."""

    spec: MarketSpec
    sessions: tuple[date, ...]
    bars: pl.DataFrame = field(repr=False)
    oracle: pl.DataFrame = field(repr=False)


def generate_market(spec: MarketSpec) -> Market:
    days = sessions(spec.calendar, spec.start, spec.end)
    if not days:
        raise ValueError(f"no {spec.calendar} sessions between {spec.start} and {spec.end}")
    count = spec.instruments
    total = _BURN + len(days)
    events_rng, process_rng, bars_rng, names_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(spec.seed).spawn(4)
    )
    codes = np.sort(names_rng.choice(np.array(_CODE_POOL), size=count, replace=False))
    sector = names_rng.integers(0, spec.sectors, size=count)
    first_price = names_rng.lognormal(np.log(12.0), 0.6, size=count)

    events = draw_events(
        events_rng,
        _BURN,
        len(days),
        count,
        EventRates(
            listing_share=spec.listing_share,
            delisting_share=spec.delisting_share,
            suspensions_per_year=spec.suspensions_per_year,
            mean_suspension_sessions=spec.mean_suspension_sessions,
            splits_per_year=spec.splits_per_year,
            dividends_per_year=spec.dividends_per_year,
        ),
    )
    paths = simulate(
        process_rng,
        events.active,
        events.listed_at,
        sector,
        spec.sectors,
        _regime(spec, days, total),
    )
    arrays = build_bars(
        bars_rng,
        paths.log_price,
        paths.returns,
        paths.sigma,
        paths.volume,
        events.factor,
        first_price,
        _BURN,
    )

    # Transposed so that rows come out sorted by instrument, then date.
    has_bar = events.active[_BURN:].T
    who, when = np.nonzero(has_bar)
    instrument = pl.Series("instrument", codes).gather(pl.Series(who, dtype=pl.UInt32))
    day = pl.Series("date", np.array(days, dtype="datetime64[D]")).gather(
        pl.Series(when, dtype=pl.UInt32)
    )
    columns = {
        "open": arrays.open,
        "high": arrays.high,
        "low": arrays.low,
        "close": arrays.close,
        "volume": arrays.volume,
        "amount": arrays.amount,
        "vwap": arrays.vwap,
        "factor": arrays.factor,
    }
    bars = pl.DataFrame(
        [instrument, day, *(pl.Series(name, values.T[has_bar]) for name, values in columns.items())]
    )
    oracle = pl.DataFrame(
        [
            instrument,
            day,
            pl.Series("expected_return", paths.expected_next[_BURN:].T[has_bar]),
        ]
    )
    return Market(
        spec=spec,
        sessions=days,
        bars=bars.select(pl.col(n).cast(t) for n, t in BAR_SCHEMA.items()),
        oracle=oracle.select(pl.col(n).cast(t) for n, t in ORACLE_SCHEMA.items()),
    )


def _regime(spec: MarketSpec, days: tuple[date, ...], total: int) -> Regime:
    shifted = np.zeros(total, dtype=bool)
    if spec.shift_date is not None:
        after = np.array([d >= spec.shift_date for d in days])
        shifted[_BURN:] = after
    weights = np.where(shifted[:, None], np.array(_WEIGHTS_AFTER), np.array(_WEIGHTS_BEFORE))
    return Regime(
        vol_scale=np.where(shifted, _SHIFT_VOL_SCALE, 1.0),
        volume_shift=np.where(shifted, _SHIFT_LOG_VOLUME, 0.0),
        weights=weights,
        strength=np.full(total, spec.effect_strength),
    )


def write_landing(
    market: Market,
    out: Path,
    fmt: Format = "parquet",
    layout: Layout = "per-day",
    oracle: bool = False,
    progress: bool = False,
) -> list[Path]:
    """Write the bars as landing files under ``out``; return the paths written, in order.

    ``per-day``: ``out/bars_YYYY-MM-DD.<fmt>`` sorted by instrument; ``per-instrument``:
    ``out/<INSTRUMENT>.<fmt>`` sorted by date. With ``oracle``, also ``out/_oracle/
    oracle.parquet`` (always Parquet; kept in a subfolder so landing globs do not see it).
    """
    bars = canonical(market.bars)
    if layout == "per-day":
        key, prefix = "date", "bars_"
        bars = bars.sort("date", "instrument")
    elif layout == "per-instrument":
        key, prefix = "instrument", ""
    else:
        raise ValueError(f"unknown layout {layout!r}")
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"unknown format {fmt!r}")

    parts = bars.partition_by(key, maintain_order=True, as_dict=True)
    items: Iterable[tuple[tuple[object, ...], pl.DataFrame]] = parts.items()
    if progress:
        items = track(items, total=len(parts), description=f"writing {layout} {fmt}")
    written = []
    for (value,), part in items:
        stem = value.isoformat() if isinstance(value, date) else str(value)
        target = out / f"{prefix}{stem}.{fmt}"
        _write(part.select(BAR_COLUMNS), target, fmt)
        written.append(target)
    if oracle:
        target = out / ORACLE_PATH
        write_parquet_atomic(market.oracle, target)
        written.append(target)
    return written


def _write(frame: pl.DataFrame, target: Path, fmt: Format) -> None:
    if fmt == "parquet":
        write_parquet_atomic(frame, target)
    else:
        write_with(target, lambda tmp: frame.write_csv(tmp, date_format="%Y-%m-%d"))
