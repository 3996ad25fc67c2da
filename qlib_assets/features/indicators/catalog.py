"""The indicator catalog: output column name -> how it is computed, its lookback and warm-up.

A column's *lookback* is how many prior sessions of its instrument it needs to be defined (it is
null before). Its *warm-up* is how many prior sessions a computation needs so that the value
equals the one computed on the instrument's full history to 1e-8: the lookback for
window-bounded indicators; for recursive ones (EMA family, Wilder smoothing, KDJ) the lookback
plus, per recursive stage with smoothing factor alpha, the sessions after which a seed's weight
(1 - alpha)^m has fallen below 1e-12 (so any seed error under 1e4 x the value's scale is gone to
1e-8); None for cumulative lines, whose level depends on where the history starts.
"""

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from talib import abstract as talib_abstract

from qlib_assets.features.indicators import families as fam

SEED_WEIGHT = 1e-12
# Parabolic SAR has path state without decay: two runs started at different sessions agree
# exactly once both have taken the same two reversals. Over 3,000 restarts (300 random walks of
# 3,000 sessions, 10 start points each) the longest time to agreement was 134 sessions; 250 is
# an empirical margin, not a bound.
SAR_WARMUP = 250

TalibCall = tuple[str, dict[str, float], int]
Params = Mapping[str, Any]


@dataclass(frozen=True)
class IndicatorSpec:
    """One output column: ``implementation(panel, **params)[output]``."""

    name: str
    family: str
    implementation: Callable[..., fam.Outputs]
    params: dict[str, Any]
    output: str
    lookback: int
    warmup: int | None
    talib: TalibCall | None = None

    @property
    def computation(self) -> tuple[str, tuple[tuple[str, Any], ...]]:
        """Columns with equal computations come out of one call of the implementation."""
        return self.family, tuple(sorted(self.params.items()))


def decay_sessions(alpha: float) -> int:
    """Sessions after which a recursion's seed weight (1 - alpha)^m is below SEED_WEIGHT."""
    return math.ceil(math.log(SEED_WEIGHT) / math.log1p(-alpha))


def ema_alpha(period: int) -> float:
    return 2.0 / (period + 1)


def _period(value: int, minimum: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


Column = tuple[str, str, int, int | None, TalibCall | None]


def _specs(
    family: str, implementation: Callable[..., fam.Outputs], params: Params, columns: list[Column]
) -> list[IndicatorSpec]:
    """Specs from (name, output, lookback, warmup, talib) rows sharing one computation."""
    return [
        IndicatorSpec(name, family, implementation, dict(params), output, lookback, warmup, talib)
        for name, output, lookback, warmup, talib in columns
    ]


def _single(
    family: str,
    prefix: str,
    implementation: Callable[..., fam.Outputs],
    extra_lookback: int,
    talib_name: str | None,
) -> Callable[[int], list[IndicatorSpec]]:
    """A family with one window parameter and lookback ``timeperiod - 1 + extra_lookback``."""

    def build(timeperiod: int) -> list[IndicatorSpec]:
        _period(timeperiod, 2, f"{family} timeperiod")
        lookback = timeperiod - 1 + extra_lookback
        talib = (talib_name, {"timeperiod": timeperiod}, 0) if talib_name else None
        column = (f"{prefix}_{timeperiod}", "value", lookback, lookback, talib)
        return _specs(family, implementation, {"timeperiod": timeperiod}, [column])

    return build


def _sma(timeperiod: int = 20) -> list[IndicatorSpec]:
    return _single("sma", "sma", fam.sma, 0, "SMA")(timeperiod)


def _wma(timeperiod: int = 20) -> list[IndicatorSpec]:
    return _single("wma", "wma", fam.wma, 0, "WMA")(timeperiod)


def _willr(timeperiod: int = 14) -> list[IndicatorSpec]:
    return _single("willr", "willr", fam.williams_r, 0, "WILLR")(timeperiod)


def _cci(timeperiod: int = 20) -> list[IndicatorSpec]:
    return _single("cci", "cci", fam.cci, 0, "CCI")(timeperiod)


def _mom(timeperiod: int = 10) -> list[IndicatorSpec]:
    return _single("mom", "mom", fam.momentum, 1, "MOM")(timeperiod)


def _roc(timeperiod: int = 10) -> list[IndicatorSpec]:
    return _single("roc", "roc", fam.rate_of_change, 1, "ROC")(timeperiod)


def _vwap(timeperiod: int = 20) -> list[IndicatorSpec]:
    return _single("vwap", "vwap", fam.rolling_vwap, 0, None)(timeperiod)


def _obv_window(timeperiod: int = 20) -> list[IndicatorSpec]:
    return _single("obv_window", "obv", fam.obv_window, 1, None)(timeperiod)


def _ad_window(timeperiod: int = 20) -> list[IndicatorSpec]:
    return _single("ad_window", "ad", fam.ad_window, 0, None)(timeperiod)


def _vix(timeperiod: int = 30) -> list[IndicatorSpec]:
    return _single("vix", "vix", fam.vix_like, 1, None)(timeperiod)


def _hv(timeperiod: int = 20) -> list[IndicatorSpec]:
    return _single("hv", "hv", fam.historical_volatility, 1, None)(timeperiod)


def _std(timeperiod: int = 20) -> list[IndicatorSpec]:
    _period(timeperiod, 2, "std timeperiod")
    lookback = timeperiod - 1
    talib = ("STDDEV", {"timeperiod": timeperiod, "nbdev": 1.0}, 0)
    column = (f"std_{timeperiod}", "value", lookback, lookback, talib)
    return _specs("std", fam.rolling_std, {"timeperiod": timeperiod}, [column])


def _ema(timeperiod: int = 20) -> list[IndicatorSpec]:
    _period(timeperiod, 2, "ema timeperiod")
    lookback = timeperiod - 1
    warmup = lookback + decay_sessions(ema_alpha(timeperiod))
    talib = ("EMA", {"timeperiod": timeperiod}, 0)
    column = (f"ema_{timeperiod}", "value", lookback, warmup, talib)
    return _specs("ema", fam.ema, {"timeperiod": timeperiod}, [column])


def _wilder(
    family: str, implementation: Callable[..., fam.Outputs], talib_name: str | None
) -> Callable[[int], list[IndicatorSpec]]:
    def build(timeperiod: int) -> list[IndicatorSpec]:
        _period(timeperiod, 2, f"{family} timeperiod")
        warmup = timeperiod + decay_sessions(1.0 / timeperiod)
        talib = (talib_name, {"timeperiod": timeperiod}, 0) if talib_name else None
        column = (f"{family}_{timeperiod}", "value", timeperiod, warmup, talib)
        return _specs(family, implementation, {"timeperiod": timeperiod}, [column])

    return build


def _rsi(timeperiod: int = 14) -> list[IndicatorSpec]:
    return _wilder("rsi", fam.rsi, "RSI")(timeperiod)


def _atr(timeperiod: int = 14) -> list[IndicatorSpec]:
    return _wilder("atr", fam.atr, "ATR")(timeperiod)


def _vrsi(timeperiod: int = 14) -> list[IndicatorSpec]:
    return _wilder("vrsi", fam.volume_rsi, None)(timeperiod)


def _bbands(timeperiod: int = 20, nbdev: float = 2.0) -> list[IndicatorSpec]:
    _period(timeperiod, 2, "bbands timeperiod")
    lookback = timeperiod - 1
    call = {"timeperiod": timeperiod, "nbdevup": nbdev, "nbdevdn": nbdev}
    columns: list[Column] = [
        (f"bb_upper_{timeperiod}", "upper", lookback, lookback, ("BBANDS", call, 0)),
        (f"bb_middle_{timeperiod}", "middle", lookback, lookback, ("BBANDS", call, 1)),
        (f"bb_lower_{timeperiod}", "lower", lookback, lookback, ("BBANDS", call, 2)),
        (f"bb_width_{timeperiod}", "width", lookback, lookback, None),
        (f"bb_pctb_{timeperiod}", "pctb", lookback, lookback, None),
    ]
    return _specs("bbands", fam.bollinger, {"timeperiod": timeperiod, "nbdev": nbdev}, columns)


def _sar(acceleration: float = 0.02, maximum: float = 0.2) -> list[IndicatorSpec]:
    params = {"acceleration": acceleration, "maximum": maximum}
    column = ("sar", "value", 1, SAR_WARMUP, ("SAR", dict(params), 0))
    return _specs("sar", fam.parabolic_sar, params, [column])


def _ichimoku(tenkan: int = 9, kijun: int = 26, senkou_b: int = 52) -> list[IndicatorSpec]:
    for value, what in ((tenkan, "tenkan"), (kijun, "kijun"), (senkou_b, "senkou_b")):
        _period(value, 2, f"ichimoku {what}")
    both = max(tenkan, kijun) - 1
    columns: list[Column] = [
        (f"ichimoku_tenkan_{tenkan}", "tenkan", tenkan - 1, tenkan - 1, _midprice(tenkan)),
        (f"ichimoku_kijun_{kijun}", "kijun", kijun - 1, kijun - 1, _midprice(kijun)),
        (f"ichimoku_senkou_a_{tenkan}_{kijun}", "senkou_a", both, both, None),
        (
            f"ichimoku_senkou_b_{senkou_b}",
            "senkou_b",
            senkou_b - 1,
            senkou_b - 1,
            _midprice(senkou_b),
        ),
    ]
    params = {"tenkan": tenkan, "kijun": kijun, "senkou_b": senkou_b}
    return _specs("ichimoku", fam.ichimoku, params, columns)


def _midprice(period: int) -> TalibCall:
    return ("MIDPRICE", {"timeperiod": period}, 0)


def _stoch(
    fastk_period: int = 14, slowk_period: int = 3, slowd_period: int = 3
) -> list[IndicatorSpec]:
    _period(fastk_period, 1, "stoch fastk_period")
    _period(slowk_period, 1, "stoch slowk_period")
    _period(slowd_period, 1, "stoch slowd_period")
    params = {
        "fastk_period": fastk_period,
        "slowk_period": slowk_period,
        "slowd_period": slowd_period,
    }
    call = {**params, "slowk_matype": 0, "slowd_matype": 0}
    lookback = fastk_period + slowk_period + slowd_period - 3
    columns: list[Column] = [
        (f"stoch_k_{fastk_period}", "k", lookback, lookback, ("STOCH", call, 0)),
        (f"stoch_d_{fastk_period}", "d", lookback, lookback, ("STOCH", call, 1)),
    ]
    return _specs("stoch", fam.stochastic, params, columns)


def _macd(fastperiod: int = 12, slowperiod: int = 26, signalperiod: int = 9) -> list[IndicatorSpec]:
    _period(fastperiod, 2, "macd fastperiod")
    _period(slowperiod, 2, "macd slowperiod")
    _period(signalperiod, 1, "macd signalperiod")
    params = {"fastperiod": fastperiod, "slowperiod": slowperiod, "signalperiod": signalperiod}
    lookback = max(fastperiod, slowperiod) - 1 + signalperiod - 1
    line = lookback + decay_sessions(ema_alpha(max(fastperiod, slowperiod)))
    signal = line + decay_sessions(ema_alpha(signalperiod))
    columns: list[Column] = [
        ("macd", "line", lookback, line, ("MACD", params, 0)),
        ("macd_signal", "signal", lookback, signal, ("MACD", params, 1)),
        ("macd_hist", "hist", lookback, signal, ("MACD", params, 2)),
    ]
    return _specs("macd", fam.macd, params, columns)


def _kdj(n: int = 9, m1: int = 3, m2: int = 3) -> list[IndicatorSpec]:
    _period(n, 2, "kdj n")
    _period(m1, 2, "kdj m1")
    _period(m2, 2, "kdj m2")
    lookback = n - 1
    k_warmup = lookback + decay_sessions(1.0 / m1)
    d_warmup = k_warmup + decay_sessions(1.0 / m2)
    columns: list[Column] = [
        ("kdj_k", "k", lookback, k_warmup, None),
        ("kdj_d", "d", lookback, d_warmup, None),
        ("kdj_j", "j", lookback, d_warmup, None),
    ]
    return _specs("kdj", fam.kdj, {"n": n, "m1": m1, "m2": m2}, columns)


def _obv() -> list[IndicatorSpec]:
    return _specs("obv", fam.obv_line, {}, [("obv", "value", 0, None, ("OBV", {}, 0))])


def _ad() -> list[IndicatorSpec]:
    return _specs("ad", fam.ad_line, {}, [("ad", "value", 0, None, ("AD", {}, 0))])


FAMILIES: dict[str, Callable[..., list[IndicatorSpec]]] = {
    "sma": _sma,
    "ema": _ema,
    "wma": _wma,
    "bbands": _bbands,
    "sar": _sar,
    "ichimoku": _ichimoku,
    "rsi": _rsi,
    "stoch": _stoch,
    "willr": _willr,
    "cci": _cci,
    "vwap": _vwap,
    "obv_window": _obv_window,
    "ad_window": _ad_window,
    "vrsi": _vrsi,
    "atr": _atr,
    "vix": _vix,
    "std": _std,
    "hv": _hv,
    "macd": _macd,
    "kdj": _kdj,
    "mom": _mom,
    "roc": _roc,
    "obv": _obv,
    "ad": _ad,
}

# The cumulative OBV and AD lines have no finite warm-up, so a windowed daily run cannot
# reproduce them; they are opt-in and their windowed forms are in the default catalog.
DEFAULT_FAMILIES = tuple(family for family in FAMILIES if family not in ("obv", "ad"))

FamilyParams = Mapping[str, Params | Sequence[Params] | None]


def build_catalog(params: FamilyParams | None = None) -> dict[str, IndicatorSpec]:
    """The catalog with some families' parameters changed, added or dropped.

    ``params`` maps a family name (see ``FAMILIES``) to keyword overrides of its defaults, to a
    list of such overrides for several instances (e.g. ``{"sma": [{"timeperiod": 5},
    {"timeperiod": 60}]}``), or to None to drop it. Families not named keep their defaults;
    "obv" and "ad" (cumulative lines) are only included when named.
    """
    chosen: dict[str, list[Params]] = {family: [{}] for family in DEFAULT_FAMILIES}
    for family, value in (params or {}).items():
        if family not in FAMILIES:
            raise ValueError(f"unknown indicator family {family!r}; known: {sorted(FAMILIES)}")
        if value is None:
            chosen.pop(family, None)
        else:
            chosen[family] = [value] if isinstance(value, Mapping) else list(value)
    catalog: dict[str, IndicatorSpec] = {}
    for family, instances in chosen.items():
        for overrides in instances:
            try:
                specs = FAMILIES[family](**overrides)
            except TypeError as error:
                raise ValueError(f"indicator family {family!r}: {error}") from error
            for spec in specs:
                if spec.name in catalog:
                    raise ValueError(
                        f"two indicator instances are both named {spec.name!r}; "
                        "their name parameters must differ"
                    )
                catalog[spec.name] = spec
    return catalog


CATALOG: Mapping[str, IndicatorSpec] = build_catalog()


def max_warmup(
    names: Iterable[str] | None = None, catalog: Mapping[str, IndicatorSpec] | None = None
) -> int:
    """Prior sessions a windowed run needs so every selected column equals its full-history
    value; raises for cumulative columns, which no window reproduces."""
    catalog = CATALOG if catalog is None else catalog
    specs = select(catalog, names)
    unbounded = [spec.name for spec in specs if spec.warmup is None]
    if unbounded:
        raise ValueError(f"cumulative indicators {unbounded} need the whole history, not a window")
    return max((spec.warmup or 0 for spec in specs), default=0)


def select(
    catalog: Mapping[str, IndicatorSpec], names: Iterable[str] | None
) -> list[IndicatorSpec]:
    if names is None:
        return list(catalog.values())
    names = list(names)
    unknown = [name for name in names if name not in catalog]
    if unknown:
        raise ValueError(f"unknown indicator columns {unknown}")
    return [catalog[name] for name in names]


def talib_input_fields(function_name: str) -> tuple[str, ...]:
    """The bar fields a TA-Lib function takes, in its positional order."""
    fields: list[str] = []
    for value in talib_abstract.Function(function_name).input_names.values():
        fields.extend([value] if isinstance(value, str) else value)
    return tuple(fields)
