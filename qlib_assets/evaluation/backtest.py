"""Backtest of a signal with Qlib's TopkDropoutStrategy and its daily simulator executor.

Qlib computes everything: ``qlib.contrib.evaluate.backtest_daily`` over the Qlib provider (the
signal of session d trades at session d+1's deal price), then ``risk_analysis`` of the returns as
Qlib's ``PortAnaRecord`` does (sums, 238 sessions a year). Three Qlib defaults are replaced:

- Benchmark. Qlib's ``benchmark=None`` silently falls back to SH000300, which our provider does
  not hold. ``equal_weight`` (default) passes Qlib a return series computed here from raw bars;
  ``none`` passes a series of zeros, so excess return is the strategy's own return; any other
  string is an instrument code read from the provider (Qlib raises if it is absent). The report's
  benchmark column is checked against the series passed, so a fallback cannot go unnoticed.
- Price limits. Qlib's float ``limit_threshold`` tests a ``$change`` field our provider does not
  write (Qlib would read NaN and silently never flag a limit), so the threshold becomes the
  equivalent expressions on ``$close / Ref($close, 1) - 1``.
- Costs: open 0.0005, close 0.0015, min 5 (``backtest_daily``'s defaults), configurable.
"""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
import polars as pl

from qlib_assets.storage.atomic import write_with

# Headless: the backend must be chosen before pyplot loads.
matplotlib.use("Agg")
import matplotlib.pyplot as plt

EQUAL_WEIGHT = "equal_weight"
NO_BENCHMARK = "none"
RISK_FIELDS = ("mean", "std", "annualized_return", "information_ratio", "max_drawdown")
# Qlib's annualisation for daily returns (contrib.evaluate.risk_analysis, freq "day").
ANALYSIS_FREQ = "day"


@dataclass(frozen=True)
class BacktestConfig:
    """TopkDropout and exchange settings; defaults are Qlib's CN defaults and examples'."""

    topk: int = 50
    n_drop: int = 5
    account: float = 1e8
    benchmark: str = EQUAL_WEIGHT
    deal_price: str = "close"
    open_cost: float = 0.0005
    close_cost: float = 0.0015
    min_cost: float = 5.0
    limit_threshold: float = 0.095
    only_tradable: bool = False
    forbid_all_trade_at_limit: bool = True

    def __post_init__(self) -> None:
        if self.topk < 1 or not 0 <= self.n_drop <= self.topk:
            raise ValueError(
                f"need topk >= 1 and 0 <= n_drop <= topk, got {self.topk}, {self.n_drop}"
            )
        if not self.limit_threshold > 0:
            raise ValueError(f"limit_threshold must be > 0, got {self.limit_threshold}")


@dataclass(frozen=True)
class BacktestReport:
    """What a backtest found; ``to_dict`` is JSON-ready (Dagster metadata, MLflow).

    ``metrics``: flat ``group.field`` -> value, groups ``return_with_cost``, ``benchmark``,
    ``excess_return_without_cost``, ``excess_return_with_cost`` (Qlib's ``risk_analysis``
    fields) plus ``turnover`` (mean daily), ``total_cost``, ``final_account``; a value that is not
    finite is None. ``daily``: Qlib's portfolio report per session (``date, account, return,
    turnover, cost, bench, ...``).
    """

    start: date
    end: date
    sessions: int
    benchmark: str
    config: BacktestConfig
    metrics: dict[str, float | None]
    daily: pl.DataFrame = field(repr=False)
    plot: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "sessions": self.sessions,
            "benchmark": self.benchmark,
            "config": asdict(self.config),
            "metrics": dict(self.metrics),
            "plot": self.plot,
        }


def equal_weight_benchmark(bars: pl.DataFrame, calendar: Sequence[date]) -> pl.DataFrame:
    """``date, bench``: the mean close-to-close return of the instruments that have a bar at the
    session and at the calendar's previous session, for every session of ``calendar`` but the
    first; 0 where no instrument has both (Qlib's ``fillna(0)`` for a list benchmark).

    This equals Qlib's benchmark of a list of codes (mean of ``$close/Ref($close,1)-1``), whose
    ``Ref`` also reads the previous calendar session, NaN during a suspension.
    """
    days = pl.DataFrame({"date": list(calendar)}, schema={"date": pl.Date()}).sort("date")
    previous = days.with_columns(pl.col("date").shift(1).alias("prev"))
    closes = bars.select("instrument", pl.col("date").cast(pl.Date), pl.col("close"))
    returns = (
        closes.join(previous, on="date", how="inner")
        .join(
            closes.rename({"date": "prev", "close": "prev_close"}),
            on=["instrument", "prev"],
            how="inner",
        )
        .group_by("date")
        .agg((pl.col("close") / pl.col("prev_close") - 1).mean().alias("bench"))
    )
    return (
        days.slice(1)
        .join(returns, on="date", how="left")
        .with_columns(pl.col("bench").fill_null(0.0))
        .sort("date")
    )


def limit_expressions(threshold: float) -> tuple[str, str]:
    """Qlib expressions flagging a session whose close-to-close change hits the limit up / down."""
    change = "$close/Ref($close,1)-1"
    return (f"Ge({change}, {threshold!r})", f"Le({change}, {-threshold!r})")


def _signal_series(signal: pl.DataFrame, column: str) -> pd.Series:
    frame = signal.select("instrument", "date", column).drop_nulls(column).to_pandas()
    index = pd.MultiIndex.from_arrays(
        [frame["instrument"].astype(str), pd.to_datetime(frame["date"])],
        names=["instrument", "datetime"],
    )
    return pd.Series(frame[column].to_numpy(dtype="float64"), index=index, name="score")


def _bench_series(frame: pl.DataFrame) -> pd.Series:
    return pd.Series(
        frame.get_column("bench").to_numpy(),
        index=pd.DatetimeIndex(pd.to_datetime(frame.get_column("date").to_list())),
        name="bench",
    )


def _finite(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


def _risk(series: pd.Series, group: str) -> dict[str, float | None]:
    from qlib.contrib.evaluate import risk_analysis

    risk = risk_analysis(series, freq=ANALYSIS_FREQ)["risk"]
    return {f"{group}.{name}": _finite(risk[name]) for name in RISK_FIELDS}


def _metrics(report: pd.DataFrame) -> dict[str, float | None]:
    ret, bench, cost = report["return"], report["bench"], report["cost"]
    return {
        **_risk(ret - cost, "return_with_cost"),
        **_risk(bench, "benchmark"),
        **_risk(ret - bench, "excess_return_without_cost"),
        **_risk(ret - bench - cost, "excess_return_with_cost"),
        "turnover": _finite(report["turnover"].mean()),
        "total_cost": _finite(report["total_cost"].iloc[-1]),
        "final_account": _finite(report["account"].iloc[-1]),
    }


def plot_cumulative_returns(daily: pl.DataFrame, path: Path, title: str) -> Path:
    """A PNG of cumulative (summed, as Qlib's analysis) strategy, benchmark and excess returns."""
    dates = daily.get_column("date").to_list()
    ret, bench, cost = (daily.get_column(c) for c in ("return", "bench", "cost"))
    figure, axis = plt.subplots(figsize=(10, 4.5))
    try:
        for label, values in (
            ("strategy (with cost)", ret - cost),
            ("benchmark", bench),
            ("excess without cost", ret - bench),
            ("excess with cost", ret - bench - cost),
        ):
            axis.plot(dates, values.cum_sum().to_list(), label=label)
        axis.axhline(0.0, color="black", linewidth=0.5)
        axis.set_ylabel("cumulative return (sum of daily)")
        axis.set_title(title)
        axis.legend(loc="upper left", fontsize="small")
        figure.autofmt_xdate()
        write_with(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(figure)
    return path


def init_qlib(provider_uri: Path) -> None:
    """Qlib over our provider, one process, no caches (Qlib's state is process-global)."""
    import qlib

    qlib.init(
        provider_uri=str(provider_uri),
        region="cn",
        kernels=1,
        expression_cache=None,
        dataset_cache=None,
    )


def run_backtest(
    signal: pl.DataFrame,
    provider_uri: Path,
    bars: pl.DataFrame | None = None,
    config: BacktestConfig | None = None,
    start: date | None = None,
    end: date | None = None,
    plot_path: Path | None = None,
    signal_column: str = "signal",
) -> BacktestReport:
    """Backtest ``signal`` (``instrument, date, <signal_column>``) over the provider.

    ``start``/``end`` are trading sessions (default: the session after the first signal date
    through the session after the last one, within the provider's calendar). ``bars``
    (``instrument, date, close``, from ``raw_bars``, covering the session before ``start``)
    is needed for the equal-weight benchmark.
    """
    from qlib.backtest.executor import SimulatorExecutor
    from qlib.contrib.evaluate import backtest_daily
    from qlib.contrib.strategy import TopkDropoutStrategy
    from qlib.data import D

    config = config or BacktestConfig()
    if signal.is_empty():
        raise ValueError("the signal is empty: nothing to backtest")
    init_qlib(provider_uri)
    calendar = [ts.date() for ts in D.calendar(freq="day")]
    signal_days = sorted(signal.get_column("date").unique().to_list())
    after = [d for d in calendar if d > signal_days[0]]
    if start is None:
        if not after:
            raise ValueError(f"the provider has no session after the first signal {signal_days[0]}")
        start = after[0]
    if end is None:
        following = [d for d in calendar if d > signal_days[-1]]
        end = following[0] if following else calendar[-1]
    # Qlib's trade calendar reads the session after each step's, so the provider's last session
    # cannot be traded.
    end = min(end, calendar[-2]) if len(calendar) > 1 else end
    span = [d for d in calendar if start <= d <= end]
    if not span:
        raise ValueError(f"no provider session between {start} and {end}")
    start, end = span[0], span[-1]
    with_previous = calendar[max(calendar.index(start) - 1, 0) : calendar.index(end) + 1]

    if config.benchmark == EQUAL_WEIGHT:
        if bars is None:
            raise ValueError(
                "the equal-weight benchmark needs the raw bars (instrument, date, close)"
            )
        bench_frame = equal_weight_benchmark(bars, with_previous).filter(
            pl.col("date").is_between(start, end)
        )
        benchmark: pd.Series | str = _bench_series(bench_frame)
    elif config.benchmark == NO_BENCHMARK:
        benchmark = pd.Series(0.0, index=pd.DatetimeIndex(pd.to_datetime(span)), name="bench")
    else:
        benchmark = config.benchmark

    strategy = TopkDropoutStrategy(
        signal=_signal_series(signal, signal_column),
        topk=config.topk,
        n_drop=config.n_drop,
        only_tradable=config.only_tradable,
        forbid_all_trade_at_limit=config.forbid_all_trade_at_limit,
    )
    executor = SimulatorExecutor(time_per_step="day", generate_portfolio_metrics=True)
    report, _ = backtest_daily(
        start_time=pd.Timestamp(start),
        end_time=pd.Timestamp(end),
        strategy=strategy,
        executor=executor,
        account=config.account,
        benchmark=benchmark,
        exchange_kwargs={
            "limit_threshold": limit_expressions(config.limit_threshold),
            "deal_price": config.deal_price,
            "open_cost": config.open_cost,
            "close_cost": config.close_cost,
            "min_cost": config.min_cost,
        },
    )
    if isinstance(benchmark, pd.Series):
        expected = benchmark.reindex(report.index).fillna(0.0)
        if not (report["bench"] - expected).abs().lt(1e-12).all():
            raise RuntimeError(
                "Qlib's report benchmark differs from the series passed to it: a fallback "
                "benchmark (e.g. SH000300) was used"
            )
    daily = pl.from_pandas(report.reset_index()).rename({"datetime": "date"})
    daily = daily.with_columns(pl.col("date").cast(pl.Date))
    plot = None
    if plot_path is not None:
        title = f"TopkDropout({config.topk}, {config.n_drop}) vs {config.benchmark}"
        plot = str(plot_cumulative_returns(daily, plot_path, title))
    return BacktestReport(
        start=start,
        end=end,
        sessions=daily.height,
        benchmark=config.benchmark,
        config=config,
        metrics=_metrics(report),
        daily=daily,
        plot=plot,
    )
