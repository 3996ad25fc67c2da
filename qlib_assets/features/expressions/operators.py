"""Qlib's operators: one table read by the compilers, the lookback planning and the gathered
window statistics.

An operator's entry gives its family (how the compilers treat it), its arity, where its window
argument is, the smallest window it accepts, and for a window operator its forms: ``rolling``
(a polars expression over the window input, float64 with nulls for missing values) and
``statistic`` (numpy, over a matrix of windows, see :mod:`.kernels`). A new window operator is
one entry: with a ``statistic`` only, the whole-column path runs it over a sliding view of the
column; a ``rolling`` form lets polars run it instead; a ``column`` form is a faster numpy
pass over a whole column. The padded compiler has shared forms for a few operators on top
(window sums, extremes, ranks and quantiles over several windows); their entries stay the
reference.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from qlib_assets.features.expressions import kernels
from qlib_assets.features.expressions.kernels import FloatArray, IntArray

Family = Literal[
    "element",
    "arithmetic",
    "compare",
    "logic",
    "if",
    "ref",
    "delta",
    "ema",
    "window",
    "pair_window",
    "unsupported",
]


@dataclass(frozen=True)
class Windows:
    """The arguments of a numpy statistic: the window matrix of the first operand, each row's
    index within its instrument, the window length, Quantile's level and the second operand's
    windows (Corr, Cov)."""

    values: FloatArray
    pos: IntArray
    n: int
    quantile: float | None = None
    other: FloatArray | None = None


Rolling = Callable[[pl.Expr, int, float | None], pl.Expr]
Statistic = Callable[[Windows], FloatArray]
ColumnStatistic = Callable[[FloatArray, IntArray, int], FloatArray]


@dataclass(frozen=True)
class Operator:
    name: str
    family: Family
    arity: int
    least_window: int = 1
    rolling: Rolling | None = None
    statistic: Statistic | None = None
    column: ColumnStatistic | None = None
    # The rolling form never yields NaN (missing values are nulls).
    nan_free: bool = True

    @property
    def window_at(self) -> int | None:
        """Index of the window (Ref: offset) argument, None for element-wise operators."""
        if self.name == "Quantile":
            return 1
        if self.family in ("ref", "delta", "ema", "window", "pair_window"):
            return self.arity - 1
        return None

    @property
    def windowed(self) -> bool:
        """Reads a window of sessions (Ref reads one session)."""
        return self.family in ("delta", "ema", "window", "pair_window")


def _moment(kurtosis: bool) -> Rolling:
    def rolling(x: pl.Expr, n: int, _: float | None) -> pl.Expr:
        if kurtosis:
            value, flat = x.rolling_kurtosis(n, fisher=True, bias=False, min_samples=4), -3.0
        else:
            value, flat = x.rolling_skew(n, bias=False, min_samples=3), 0.0
        # pandas returns 0 (skew) and -3 (kurt) for a constant window, polars NaN.
        constant = x.rolling_max(n, min_samples=1) == x.rolling_min(n, min_samples=1)
        return pl.when(constant & value.is_nan()).then(flat).otherwise(value)

    return rolling


def _count(windows: Windows) -> FloatArray:
    return (~np.isnan(windows.values)).sum(axis=1).astype(np.float64)


def _regression(op: str) -> Statistic:
    return lambda w: kernels.regression(op, w.values, w.pos, w.n)


def _pair(op: str) -> Statistic:
    def statistic(w: Windows) -> FloatArray:
        if w.other is None:
            raise ValueError(f"{op} needs the second operand's windows")
        return kernels.pair(op, w.values, w.other)

    return statistic


def _rank_column(values: FloatArray, pos: IntArray, n: int) -> FloatArray:
    (ranks,) = kernels.rank_columns(values, pos, (n,))
    return ranks


_TABLE = (
    *(Operator(name, "element", 1) for name in ("Abs", "Sign", "Log", "Not", "Neg")),
    *(
        Operator(name, "arithmetic", 2)
        for name in ("Add", "Sub", "Mul", "Div", "Power", "Greater", "Less")
    ),
    *(Operator(name, "compare", 2) for name in ("Gt", "Ge", "Lt", "Le", "Eq", "Ne")),
    Operator("And", "logic", 2),
    Operator("Or", "logic", 2),
    Operator("If", "if", 3),
    Operator("Ref", "ref", 2),
    Operator(
        "Mean",
        "window",
        2,
        rolling=lambda x, n, _: x.rolling_mean(n, min_samples=1),
        statistic=lambda w: np.nanmean(w.values, axis=1),
    ),
    Operator(
        "Sum",
        "window",
        2,
        rolling=lambda x, n, _: x.rolling_sum(n, min_samples=1),
        statistic=lambda w: kernels.nan_if_empty(np.nansum(w.values, axis=1), w.values),
    ),
    Operator(
        "Std",
        "window",
        2,
        rolling=lambda x, n, _: x.rolling_std(n, min_samples=1),
        statistic=lambda w: np.nanstd(w.values, axis=1, ddof=1),
        nan_free=False,
    ),
    Operator(
        "Var",
        "window",
        2,
        rolling=lambda x, n, _: x.rolling_var(n, min_samples=1),
        statistic=lambda w: np.nanvar(w.values, axis=1, ddof=1),
        nan_free=False,
    ),
    Operator(
        "Skew",
        "window",
        2,
        least_window=3,
        rolling=_moment(kurtosis=False),
        statistic=lambda w: kernels.moment(w.values, kurtosis=False),
        nan_free=False,
    ),
    Operator(
        "Kurt",
        "window",
        2,
        least_window=5,
        rolling=_moment(kurtosis=True),
        statistic=lambda w: kernels.moment(w.values, kurtosis=True),
        nan_free=False,
    ),
    Operator(
        "Max",
        "window",
        2,
        rolling=lambda x, n, _: x.rolling_max(n, min_samples=1),
        statistic=lambda w: np.nanmax(w.values, axis=1),
    ),
    Operator(
        "Min",
        "window",
        2,
        rolling=lambda x, n, _: x.rolling_min(n, min_samples=1),
        statistic=lambda w: np.nanmin(w.values, axis=1),
    ),
    Operator(
        "IdxMax",
        "window",
        2,
        statistic=lambda w: kernels.idx_extreme(w.values, w.pos, w.n, find_max=True),
    ),
    Operator(
        "IdxMin",
        "window",
        2,
        statistic=lambda w: kernels.idx_extreme(w.values, w.pos, w.n, find_max=False),
    ),
    Operator(
        "Med",
        "window",
        2,
        rolling=lambda x, n, _: x.rolling_median(n, min_samples=1),
        statistic=lambda w: kernels.quantile(w.values, 0.5),
    ),
    Operator("Mad", "window", 2, statistic=lambda w: kernels.mad(w.values)),
    Operator("Rank", "window", 2, statistic=lambda w: kernels.rank(w.values), column=_rank_column),
    # The compilers count by running totals (Compiler.counting_sum).
    Operator("Count", "window", 2, statistic=_count),
    Operator("Delta", "delta", 2),
    *(
        Operator(name, "window", 2, statistic=_regression(name), nan_free=False)
        for name in ("Slope", "Rsquare", "Resi")
    ),
    Operator("WMA", "window", 2, statistic=_regression("WMA")),
    Operator("EMA", "ema", 2),
    Operator(
        "Quantile",
        "window",
        3,
        rolling=lambda x, n, q: x.rolling_quantile(
            q or 0.0, interpolation="linear", window_size=n, min_samples=1
        ),
        statistic=lambda w: kernels.quantile(w.values, w.quantile or 0.0),
    ),
    Operator("Corr", "pair_window", 3, statistic=_pair("Corr"), nan_free=False),
    Operator("Cov", "pair_window", 3, statistic=_pair("Cov"), nan_free=False),
    *(
        Operator(name, "unsupported", 0)
        for name in ("Mask", "ChangeInstrument", "TResample", "Rolling", "P", "PRef", "Feature")
    ),
)

OPERATORS: dict[str, Operator] = {op.name: op for op in _TABLE}
SUPPORTED: tuple[str, ...] = tuple(op.name for op in _TABLE if op.family != "unsupported")
