"""Feature and label tables for a range of sessions, computed over a lookback of raw_bars.

Each builder reads exactly the raw_bars window its values depend on, so a one-session run and
a full backfill go through the same code and give the same values for the same session.
"""

from collections.abc import Mapping, Sequence
from datetime import date

import polars as pl

from qlib_assets.calendar import sessions
from qlib_assets.features.alpha158 import alpha158_lookback, compute_alpha158, compute_label
from qlib_assets.features.custom import compute_custom, is_polars_formula, load_custom_formulas
from qlib_assets.features.expressions import lookback
from qlib_assets.features.indicators import compute_indicators
from qlib_assets.features.indicators.catalog import IndicatorSpec, build_catalog, max_warmup
from qlib_assets.market.raw_bars import instrument_first_dates, read_raw_bars_window
from qlib_assets.settings import Settings

LABEL_HORIZON = 2
# Up to this many target sessions, windows are evaluated at the target rows only; a longer
# backfill is cheaper as one pass over the whole panel.
TARGETED_SESSIONS = 20
# Margin beyond the strict lookback: cheap, and it keeps a window that starts inside a long
# suspension from ever being the binding constraint.
ALPHA158_MARGIN = 10


def _keep(frame: pl.DataFrame, bars: pl.DataFrame, days: Sequence[date]) -> pl.DataFrame:
    """Rows of ``days`` for the instruments that have a bar that day (the day's universe)."""
    universe = bars.filter(pl.col("date").is_in(list(days))).select("instrument", "date")
    return universe.join(frame, on=["instrument", "date"], how="left").sort("instrument", "date")


def _window_sessions(settings: Settings, bars: pl.DataFrame) -> list[date]:
    first, last = bars.get_column("date").min(), bars.get_column("date").max()
    return list(sessions(settings.calendar, first, last))


def indicator_catalog(settings: Settings) -> dict[str, IndicatorSpec]:
    return build_catalog(settings.indicator_params)


def indicator_lookback(settings: Settings) -> int:
    """Sessions before the first target a run must read.

    Polars custom formulas declare no window; they get the catalog's warm-up, so keep their
    windows within it.
    """
    load_custom_formulas(settings.custom_indicators)
    warmup = max_warmup(catalog=indicator_catalog(settings))
    qlib_formulas = [f for f in settings.custom_indicators.values() if not is_polars_formula(f)]
    return max(warmup, lookback(qlib_formulas) - 1 if qlib_formulas else 0)


def build_indicators(settings: Settings, days: Sequence[date]) -> pl.DataFrame:
    bars = read_raw_bars_window(settings, days, before=indicator_lookback(settings))
    table = compute_indicators(bars, catalog=indicator_catalog(settings))
    if settings.custom_indicators:
        custom = compute_custom(bars, settings.custom_indicators, _window_sessions(settings, bars))
        table = table.join(
            custom.with_columns(pl.exclude("instrument", "date").cast(pl.Float64)),
            on=["instrument", "date"],
            how="left",
        )
    return _keep(table, bars, days)


def alpha158_window(custom_factors: Mapping[str, str]) -> int:
    load_custom_formulas(custom_factors)
    needed = max(
        alpha158_lookback(), lookback(list(custom_factors.values())) if custom_factors else 0
    )
    return needed - 1 + ALPHA158_MARGIN


def build_alpha158(
    settings: Settings, days: Sequence[date], engine: str = "polars"
) -> pl.DataFrame:
    """Qlib's 158 factors (float32, raw: normalisation belongs to training), then custom ones."""
    bars = read_raw_bars_window(settings, days, before=alpha158_window(settings.custom_factors))
    window = _window_sessions(settings, bars)
    table = compute_alpha158(
        bars,
        engine=engine,
        sessions=window,
        provider_uri=settings.qlib_data_dir,
        first_dates=instrument_first_dates(settings),
        targets=list(days) if len(days) <= TARGETED_SESSIONS else None,
    )
    if settings.custom_factors:
        custom = compute_custom(bars, settings.custom_factors, window)
        table = table.join(custom, on=["instrument", "date"], how="left")
    return _keep(table, bars, days)


def build_labels(settings: Settings, days: Sequence[date]) -> pl.DataFrame:
    """Qlib's label ``Ref($close,-2)/Ref($close,-1)-1`` for ``days``: needs two sessions after."""
    bars = read_raw_bars_window(settings, days, before=0, after=LABEL_HORIZON)
    table = compute_label(bars, sessions=_window_sessions(settings, bars))
    return _keep(table, bars, days)
