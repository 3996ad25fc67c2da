"""The bars of many instruments as one concatenated series, with per-instrument helpers.

Indicators run on the concatenation of the sessions of a block of instruments (sorted by
instrument then date; ``compute_indicators`` cuts the panel into such blocks). Window-bounded
computations run once over the concatenation and the first rows of each instrument, whose
windows reach into the previous instrument, are masked afterwards; recursive ones run per
instrument, or as one run with each instrument's start corrected.

Running totals (TA-Lib's SUM, SMA, WMA, VAR) would carry rounding left over from a large-valued
instrument into a small-valued one after it. Their inputs are therefore first scaled per
instrument by the power of two that brings the instrument's largest magnitude into [0.5, 1);
power-of-two scaling is exact in floating point, so what is carried over is of the size of the
instrument's own rounding.
"""

import math
import threading
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise

import numpy as np
import talib

FIELDS = ("open", "high", "low", "close", "volume")
# Below this weight a restarted recursion's correction vanishes in float64 rounding.
NEGLIGIBLE_WEIGHT = 1e-18


def c_function(name: str) -> Callable[..., np.ndarray]:
    """TA-Lib's function without the wrapper that accepts pandas and polars series: the
    wrapper's type checks cost more than a C call on a few hundred sessions."""
    function = getattr(talib, name)
    return getattr(function, "__wrapped__", function)


# On short series a TA-Lib call is mostly its wrapper's Python-side work, and the wrapper
# releases and re-takes the GIL four times per call: two threads looping over instruments at
# once hand the GIL back and forth thousands of times per panel, costing more than they gain.
# Taking turns makes the second thread wait once and then run out of step with the first.
# Instruments averaging SHORT_SERIES sessions or more spend most of a call in C, GIL released,
# so their loops run side by side.
_PER_INSTRUMENT = threading.Lock()
SHORT_SERIES = 1000

_EMA = c_function("EMA")
_SMA = c_function("SMA")
_STDDEV = c_function("STDDEV")
_SUM = c_function("SUM")


@dataclass(frozen=True)
class Panel:
    """Contiguous float64 field arrays and the row offsets where each instrument starts."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    offsets: np.ndarray  # int64, one per instrument plus the total row count
    _rows_at: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False
    )
    _split: dict[int, tuple[np.ndarray, list[np.ndarray]]] = field(default_factory=dict, repr=False)
    _restarts: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False
    )
    _close_windows: dict[tuple[str, int], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def rows(self) -> int:
        return int(self.offsets[-1])

    @cached_property
    def starts(self) -> np.ndarray:
        return self.offsets[:-1]

    @cached_property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @cached_property
    def previous_close(self) -> np.ndarray:
        """Close of the instrument's previous session; its own close on its first session."""
        previous = np.empty_like(self.close)
        previous[1:] = self.close[:-1]
        previous[self.starts] = self.close[self.starts]
        return previous

    @cached_property
    def log_return(self) -> np.ndarray:
        """Log return over the previous session; 0 on each instrument's first session."""
        ratio = self.close / self.previous_close
        return np.log(ratio, out=ratio)

    def unit_scale(self, values: np.ndarray, positive: bool = False) -> np.ndarray:
        """Per row, the power of two that brings the largest magnitude of its instrument's
        ``values`` (all >= 0 if ``positive``) into [0.5, 1)."""
        largest = np.maximum.reduceat(values, self.starts)
        if not positive:
            np.maximum(largest, -np.minimum.reduceat(values, self.starts), out=largest)
        return np.repeat(np.ldexp(1.0, -np.frexp(largest)[1]), self.lengths)

    @cached_property
    def close_scale(self) -> np.ndarray:
        return self.unit_scale(self.close, positive=True)

    @cached_property
    def unit_close(self) -> np.ndarray:
        return self.close * self.close_scale

    @cached_property
    def volume_scale(self) -> np.ndarray:
        return self.unit_scale(self.volume, positive=True)

    @cached_property
    def unit_volume(self) -> np.ndarray:
        return self.volume * self.volume_scale

    @cached_property
    def unit_signed_volume(self) -> np.ndarray:
        """The OBV step of each session, unit-scaled: +volume on an up close, -volume on a
        down close, 0 on a flat close and on the instrument's first session."""
        # np.sign in place is much slower than into a new array.
        steps = np.sign(self.close - self.previous_close)
        steps *= self.unit_volume
        return steps

    @cached_property
    def return_scale(self) -> np.ndarray:
        return self.unit_scale(self.log_return)

    @cached_property
    def unit_return(self) -> np.ndarray:
        return self.log_return * self.return_scale

    def close_mean(self, timeperiod: int) -> np.ndarray:
        """TA-Lib SMA of close over ``timeperiod``, run on the unit-scaled concatenation; kept,
        as several families read it. Not to be changed in place."""
        key = ("mean", timeperiod)
        if key not in self._close_windows:
            value = _SMA(self.unit_close, timeperiod=timeperiod)
            value /= self.close_scale
            self._close_windows[key] = value
        return self._close_windows[key]

    def close_std(self, timeperiod: int) -> np.ndarray:
        """TA-Lib STDDEV (population, nbdev 1) of close over ``timeperiod``, per instrument; kept,
        as several families read it. Not to be changed in place."""
        key = ("std", timeperiod)
        if key not in self._close_windows:
            (value,) = self.each_instrument(
                _STDDEV, (self.close,), 1, timeperiod=timeperiod, nbdev=1.0
            )
            self._close_windows[key] = value
        return self._close_windows[key]

    def rows_at(self, low: int, high: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows whose position within their instrument is in [low, high), those positions, and
        how many such rows each instrument has; built from the offsets alone, so the cost is
        that of the rows found, not of the panel."""
        key = (low, high)
        if key not in self._rows_at:
            first = np.minimum(low, self.lengths)
            counts = np.minimum(high, self.lengths) - first
            total = int(counts.sum())
            # Within each instrument's run of found rows, the index counts up from its first.
            run_starts = np.cumsum(counts) - counts
            positions = np.arange(total, dtype=np.int64) - np.repeat(run_starts - first, counts)
            rows = positions + np.repeat(self.starts, counts)
            self._rows_at[key] = (rows, positions, counts)
        return self._rows_at[key]

    def mask_before(self, values: np.ndarray, lookback: int) -> np.ndarray:
        """``values`` with NaN on each instrument's first ``lookback`` sessions (in place)."""
        values[self.rows_at(0, lookback)[0]] = np.nan
        return values

    def each_instrument(
        self,
        function: Callable[..., np.ndarray | tuple[np.ndarray, ...]],
        inputs: Sequence[np.ndarray],
        outputs: int,
        **kwargs: float,
    ) -> list[np.ndarray]:
        """``function(*inputs[instrument], **kwargs)`` on each instrument, concatenated."""
        if self.lengths.size == 0:
            return [np.empty(0) for _ in range(outputs)]
        short = self.rows < SHORT_SERIES * self.lengths.size
        with _PER_INSTRUMENT if short else nullcontext():
            computed = [
                function(*parts, **kwargs) for parts in zip(*map(self._parts, inputs), strict=True)
            ]
        if outputs == 1:
            return [np.concatenate(computed)]
        return [np.concatenate(output) for output in zip(*computed, strict=True)]

    def _parts(self, values: np.ndarray) -> list[np.ndarray]:
        """Each instrument's view of ``values``; kept, as several families split the same
        fields."""
        # The entry holds the array itself, so its id cannot be reused while it is cached.
        kept = self._split.get(id(values))
        if kept is None:
            # Plain slices: np.split costs several times more per piece.
            parts = [values[start:end] for start, end in self._bounds]
            kept = self._split[id(values)] = (values, parts)
        return kept[1]

    @cached_property
    def _bounds(self) -> list[tuple[int, int]]:
        """Each instrument's (start, end) rows as Python ints."""
        return list(pairwise(self.offsets.tolist()))

    def rolling_sum(self, values: np.ndarray, window: int) -> np.ndarray:
        """Sum of the last ``window`` values of each row's instrument (NaN before a full window);
        ``values`` should be unit-scaled (see the module docstring)."""
        return self.mask_before(_SUM(values, timeperiod=window), window - 1)

    def restarted_ema(self, values: np.ndarray, period: int, first: int, seed: float) -> np.ndarray:
        """Per instrument, y_p = y_(p-1) + k (x_p - y_(p-1)) with k = 2 / (period + 1) for
        positions p >= ``first``, starting from y_(first-1) = ``seed``; NaN before ``first - 1``.
        ``values`` must be of like magnitude across instruments.

        One TA-Lib EMA runs through the whole concatenation (values before ``first`` count as
        0). The recursion is linear, so where that run carries over the previous instrument's
        state it differs from the restarted one by (seed - run at first - 1) x (1 - k)^(p -
        first + 1), which is added back over the sessions where that weight is not negligible.
        """
        padded = np.empty(self.rows + period)
        padded[:period] = 0.0
        padded[period:] = values
        padded[period + self.rows_at(0, first)[0]] = 0.0
        run_from_pad = _EMA(padded, timeperiod=period)
        run = run_from_pad[period:]
        # An instrument shorter than ``first`` has no restarted rows; its anchor is clipped.
        anchors = np.minimum(period + self.offsets[:-1] + first - 1, run_from_pad.size - 1)
        gap = seed - run_from_pad[anchors]
        rows, weights, counts = self._restart_weights(period, first)
        run[rows] += np.repeat(gap, counts) * weights
        return self.mask_before(run, first - 1)

    def _restart_weights(
        self, period: int, first: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows whose restart correction is not negligible, their weights (1 - k)^(p - first +
        1), and how many such rows each instrument has."""
        key = (period, first)
        if key not in self._restarts:
            decay = 1.0 - 2.0 / (period + 1)
            reach = math.ceil(math.log(NEGLIGIBLE_WEIGHT) / math.log(decay))
            rows, positions, counts = self.rows_at(first - 1, first + reach)
            # A lookup of the few distinct powers costs less than a power per row.
            weights = np.power(decay, np.arange(reach + 1, dtype=np.float64))[
                positions - (first - 1)
            ]
            self._restarts[key] = (rows, weights, counts)
        return self._restarts[key]
