"""Indicator computations over a ``Panel``; each returns full-length arrays keyed by output.

Arithmetic is done in place where it can: every temporary array costs a pass over memory.

Values before an output's lookback are unspecified here (the caller masks them). Where TA-Lib
implements the indicator its C function gives the numbers; window-bounded functions run once on
the concatenation of the panel's instruments, recursive ones (infinite memory or path state) per
instrument, except KDJ's smoothing, one restarted run (``Panel.restarted_ema``). The docstrings
are the definitions.
"""

import numpy as np

from qlib_assets.features.indicators.panel import Panel, c_function

Outputs = dict[str, np.ndarray]

ANNUALIZATION = 252.0

AD = c_function("AD")
ATR = c_function("ATR")
CCI = c_function("CCI")
EMA = c_function("EMA")
MACD = c_function("MACD")
MAX = c_function("MAX")
MIDPRICE = c_function("MIDPRICE")
MIN = c_function("MIN")
MOM = c_function("MOM")
OBV = c_function("OBV")
ROC = c_function("ROC")
RSI = c_function("RSI")
SAR = c_function("SAR")
STOCH = c_function("STOCH")
WILLR = c_function("WILLR")
VAR = c_function("VAR")
WMA = c_function("WMA")


def sma(panel: Panel, *, timeperiod: int) -> Outputs:
    """Simple moving average of close over ``timeperiod`` sessions (TA-Lib SMA)."""
    return {"value": panel.close_mean(timeperiod)}


def ema(panel: Panel, *, timeperiod: int) -> Outputs:
    """Exponential moving average of close, alpha = 2 / (timeperiod + 1), seeded by the SMA of
    the first ``timeperiod`` closes (TA-Lib EMA)."""
    (value,) = panel.each_instrument(EMA, (panel.close,), 1, timeperiod=timeperiod)
    return {"value": value}


def wma(panel: Panel, *, timeperiod: int) -> Outputs:
    """Linearly weighted moving average of close, weights 1..timeperiod with the latest session
    heaviest, divided by the sum of the weights (TA-Lib WMA)."""
    value = WMA(panel.unit_close, timeperiod=timeperiod)
    value /= panel.close_scale
    return {"value": value}


def bollinger(panel: Panel, *, timeperiod: int, nbdev: float) -> Outputs:
    """Bollinger Bands (TA-Lib BBANDS): middle = SMA(close), upper/lower = middle +/- nbdev x
    population std of close over ``timeperiod``; width = (upper - lower) / middle;
    %b = (close - lower) / (upper - lower), null when the bands coincide."""
    # TA-Lib's BBANDS is the SMA plus and minus nbdev x its STDDEV, bit for bit; the two are
    # also columns of their own, so computing them once serves both.
    middle = panel.close_mean(timeperiod)
    band = panel.close_std(timeperiod) * nbdev
    upper = middle + band
    lower = middle - band
    spread = upper - lower
    width = spread / middle
    percent_b = panel.close - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        percent_b /= spread
    percent_b[spread <= 0] = np.nan
    return {"upper": upper, "middle": middle, "lower": lower, "width": width, "pctb": percent_b}


def parabolic_sar(panel: Panel, *, acceleration: float, maximum: float) -> Outputs:
    """Wilder's Parabolic SAR on high/low, acceleration step ``acceleration`` capped at
    ``maximum`` (TA-Lib SAR)."""
    (value,) = panel.each_instrument(
        SAR, (panel.high, panel.low), 1, acceleration=acceleration, maximum=maximum
    )
    return {"value": value}


def ichimoku(panel: Panel, *, tenkan: int, kijun: int, senkou_b: int) -> Outputs:
    """Ichimoku lines as known at the bar's session, without the forward displacement of the
    chart: tenkan / kijun / senkou B = (highest high + lowest low) / 2 over ``tenkan`` /
    ``kijun`` / ``senkou_b`` sessions (TA-Lib MIDPRICE); senkou A = (tenkan + kijun) / 2.
    The chikou span (close displaced back) is left out: at a session it is future data."""
    midprice = {
        period: MIDPRICE(panel.high, panel.low, timeperiod=period)
        for period in {tenkan, kijun, senkou_b}
    }
    senkou_a = midprice[tenkan] + midprice[kijun]
    senkou_a /= 2.0
    return {
        "tenkan": midprice[tenkan],
        "kijun": midprice[kijun],
        "senkou_a": senkou_a,
        "senkou_b": midprice[senkou_b],
    }


def rsi(panel: Panel, *, timeperiod: int) -> Outputs:
    """Wilder's RSI of close: 100 x avg gain / (avg gain + avg loss), both Wilder-smoothed
    (alpha = 1 / timeperiod) and seeded by their simple mean over the first ``timeperiod``
    changes (TA-Lib RSI)."""
    (value,) = panel.each_instrument(RSI, (panel.close,), 1, timeperiod=timeperiod)
    return {"value": value}


def stochastic(panel: Panel, *, fastk_period: int, slowk_period: int, slowd_period: int) -> Outputs:
    """Slow stochastic (TA-Lib STOCH with SMA smoothing): fast %K = 100 x (close - lowest low)
    / (highest high - lowest low) over ``fastk_period``; %K = SMA(fast %K, slowk_period);
    %D = SMA(%K, slowd_period)."""
    slow_k, slow_d = STOCH(
        panel.high,
        panel.low,
        panel.close,
        fastk_period=fastk_period,
        slowk_period=slowk_period,
        slowk_matype=0,
        slowd_period=slowd_period,
        slowd_matype=0,
    )
    return {"k": slow_k, "d": slow_d}


def williams_r(panel: Panel, *, timeperiod: int) -> Outputs:
    """Williams %R = -100 x (highest high - close) / (highest high - lowest low) over
    ``timeperiod`` (TA-Lib WILLR)."""
    return {"value": WILLR(panel.high, panel.low, panel.close, timeperiod=timeperiod)}


def cci(panel: Panel, *, timeperiod: int) -> Outputs:
    """Commodity Channel Index: (TP - SMA(TP)) / (0.015 x mean absolute deviation of TP),
    TP = (high + low + close) / 3, over ``timeperiod`` (TA-Lib CCI)."""
    return {"value": CCI(panel.high, panel.low, panel.close, timeperiod=timeperiod)}


def rolling_vwap(panel: Panel, *, timeperiod: int) -> Outputs:
    """Rolling VWAP of daily bars: sum(TP x volume) / sum(volume) over the last ``timeperiod``
    sessions, TP = (high + low + close) / 3; null when the window's volume is below 1e-12 of
    the instrument's largest session volume (none traded)."""
    weighted = panel.high + panel.low
    weighted += panel.close
    weighted *= panel.unit_volume
    traded = panel.rolling_sum(weighted, timeperiod)
    volume = panel.rolling_sum(panel.unit_volume, timeperiod)
    volume[volume < 1e-12] = np.nan
    traded /= volume
    traded /= 3.0
    return {"value": traded}


def obv_window(panel: Panel, *, timeperiod: int) -> Outputs:
    """On-balance volume over a window: the sum of the last ``timeperiod`` OBV steps
    (+volume on an up close, -volume on a down close), i.e. TA-Lib OBV(t) - OBV(t - timeperiod).
    Unlike the OBV line its value does not depend on where the history starts."""
    total = panel.rolling_sum(panel.unit_signed_volume, timeperiod)
    total /= panel.volume_scale
    return {"value": total}


def ad_window(panel: Panel, *, timeperiod: int) -> Outputs:
    """Accumulation/distribution over a window: the sum of the last ``timeperiod`` AD steps,
    money-flow volume ((close - low) - (high - close)) / (high - low) x volume (0 when
    high == low), i.e. TA-Lib AD(t) - AD(t - timeperiod)."""
    span = panel.high - panel.low
    flow = 2.0 * panel.close
    flow -= panel.low
    flow -= panel.high
    flow *= panel.unit_volume
    with np.errstate(divide="ignore", invalid="ignore"):
        flow /= span
    flow[span == 0.0] = 0.0
    total = panel.rolling_sum(flow, timeperiod)
    total /= panel.volume_scale
    return {"value": total}


def obv_line(panel: Panel) -> Outputs:
    """On-balance volume line from the instrument's first session (TA-Lib OBV, which starts at
    that session's volume); its level depends on where the history starts."""
    (value,) = panel.each_instrument(OBV, (panel.close, panel.volume), 1)
    return {"value": value}


def ad_line(panel: Panel) -> Outputs:
    """Chaikin accumulation/distribution line: cumulative money-flow volume from the
    instrument's first session (TA-Lib AD); its level depends on where the history starts."""
    inputs = (panel.high, panel.low, panel.close, panel.volume)
    (value,) = panel.each_instrument(AD, inputs, 1)
    return {"value": value}


def volume_rsi(panel: Panel, *, timeperiod: int) -> Outputs:
    """Volume RSI: RSI computed on volume, with the volume of up sessions (close above the
    previous close) as gains and of down sessions as losses, flat sessions neither:
    100 x U / (U + D), U and D Wilder-smoothed (alpha = 1 / timeperiod) and seeded by their
    mean over the first ``timeperiod`` sessions after the first; 0 when U + D is 0. Computed as
    TA-Lib RSI of each instrument's OBV line, whose steps are exactly those signed volumes."""
    # RSI reads only the line's steps: a running sum over the whole panel has them, and
    # unit-scaled volumes keep its rounding far below any instrument's own steps.
    line = np.cumsum(panel.unit_signed_volume)
    (value,) = panel.each_instrument(RSI, (line,), 1, timeperiod=timeperiod)
    return {"value": value}


def atr(panel: Panel, *, timeperiod: int) -> Outputs:
    """Average true range: Wilder-smoothed (alpha = 1 / timeperiod) true range, seeded by the
    mean of the first ``timeperiod`` true ranges (TA-Lib ATR)."""
    inputs = (panel.high, panel.low, panel.close)
    (value,) = panel.each_instrument(ATR, inputs, 1, timeperiod=timeperiod)
    return {"value": value}


def vix_like(panel: Panel, *, timeperiod: int) -> Outputs:
    """VIX-like index without options: annualized realized volatility in points,
    100 x sqrt(252 / timeperiod x sum of squared daily log returns over ``timeperiod``
    sessions), i.e. root mean square, no mean subtracted, as variance swaps measure it."""
    squares = panel.unit_return * panel.unit_return
    value = panel.rolling_sum(squares, timeperiod)
    np.sqrt(value, out=value)
    value *= 100.0 * np.sqrt(ANNUALIZATION / timeperiod)
    value /= panel.return_scale
    return {"value": value}


def rolling_std(panel: Panel, *, timeperiod: int) -> Outputs:
    """Population standard deviation of close over ``timeperiod`` sessions (TA-Lib STDDEV)."""
    return {"value": panel.close_std(timeperiod)}


def historical_volatility(panel: Panel, *, timeperiod: int) -> Outputs:
    """Historical volatility: 100 x sample std (n - 1) of the last ``timeperiod`` daily log
    returns x sqrt(252)."""
    value = VAR(panel.unit_return, timeperiod=timeperiod)
    np.maximum(value, 0.0, out=value)
    np.sqrt(value, out=value)
    value *= 100.0 * np.sqrt(ANNUALIZATION * timeperiod / (timeperiod - 1))
    value /= panel.return_scale
    return {"value": value}


def macd(panel: Panel, *, fastperiod: int, slowperiod: int, signalperiod: int) -> Outputs:
    """MACD (TA-Lib MACD): line = EMA(close, fast) - EMA(close, slow), both seeded where the
    slow EMA starts; signal = EMA(line, signalperiod); histogram = line - signal."""
    line, signal, histogram = panel.each_instrument(
        MACD,
        (panel.close,),
        3,
        fastperiod=fastperiod,
        slowperiod=slowperiod,
        signalperiod=signalperiod,
    )
    return {"line": line, "signal": signal, "hist": histogram}


def kdj(panel: Panel, *, n: int, m1: int, m2: int) -> Outputs:
    """KDJ as Chinese trading platforms compute it: RSV = 100 x (close - lowest low) /
    (highest high - lowest low) over ``n`` sessions (50 when the range is zero);
    K = ((m1 - 1) x K_prev + RSV) / m1 and D = ((m2 - 1) x D_prev + K) / m2, both seeded at 50
    before the first full window; J = 3K - 2D."""
    lowest = MIN(panel.low, timeperiod=n)
    span = MAX(panel.high, timeperiod=n)
    span -= lowest
    rsv = panel.close - lowest
    rsv *= 100.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rsv /= span
    rsv[span == 0.0] = 50.0
    # Smoothing by 1/m is an EMA of period 2m - 1.
    k = panel.restarted_ema(rsv, 2 * m1 - 1, n - 1, 50.0)
    d = panel.restarted_ema(k, 2 * m2 - 1, n - 1, 50.0)
    j = 3.0 * k
    j -= d
    j -= d
    return {"k": k, "d": d, "j": j}


def momentum(panel: Panel, *, timeperiod: int) -> Outputs:
    """Momentum: close - close ``timeperiod`` sessions earlier (TA-Lib MOM)."""
    return {"value": MOM(panel.close, timeperiod=timeperiod)}


def rate_of_change(panel: Panel, *, timeperiod: int) -> Outputs:
    """Rate of change in percent: 100 x (close / close ``timeperiod`` sessions earlier - 1)
    (TA-Lib ROC)."""
    return {"value": ROC(panel.close, timeperiod=timeperiod)}
