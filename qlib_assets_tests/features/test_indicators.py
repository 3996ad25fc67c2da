"""Indicators against TA-Lib called directly per instrument, and against hand-written loops."""

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
import talib
from talib import abstract

from qlib_assets.features.indicators import (
    BLOCK_ROWS,
    CATALOG,
    KEYS,
    IndicatorSpec,
    build_catalog,
    compute_indicators,
    max_warmup,
)
from qlib_assets.features.indicators.catalog import talib_input_fields

TOLERANCE = 1e-9
WITH_LINES = build_catalog({"obv": {}, "ad": {}})
CUSTOM = build_catalog(
    {
        "sma": [{"timeperiod": 5}, {"timeperiod": 60}],
        "macd": {"fastperiod": 5, "slowperiod": 35, "signalperiod": 5},
        "stoch": {"fastk_period": 9, "slowk_period": 1, "slowd_period": 5},
        "bbands": {"timeperiod": 10, "nbdev": 1.5},
        "kdj": {"n": 5, "m1": 4, "m2": 2},
        "vrsi": {"timeperiod": 6},
        "sar": {"acceleration": 0.03, "maximum": 0.3},
    }
)


def random_bars(
    lengths: tuple[int, ...], levels: tuple[float, ...], volumes: tuple[float, ...], seed: int
) -> pl.DataFrame:
    """Random-walk bars with valid OHLC, flat stretches and a zero-volume session."""
    rng = np.random.default_rng(seed)
    frames = []
    for index, (length, level, volume_scale) in enumerate(
        zip(lengths, levels, volumes, strict=True)
    ):
        sigma = rng.uniform(0.01, 0.04)
        steps = sigma * rng.standard_normal(length)
        steps[rng.random(length) < 0.05] = 0.0
        close = level * np.exp(np.cumsum(steps))
        open_ = close * np.exp(0.3 * sigma * rng.standard_normal(length))
        high = np.maximum(open_, close) * np.exp(np.abs(0.5 * sigma * rng.standard_normal(length)))
        low = np.minimum(open_, close) * np.exp(-np.abs(0.5 * sigma * rng.standard_normal(length)))
        flat = rng.random(length) < 0.02
        open_[flat] = high[flat] = low[flat] = close[flat]
        volume = volume_scale * rng.lognormal(0.0, 0.5, length)
        volume[length // 2] = 0.0
        frames.append(
            pl.DataFrame(
                {
                    "instrument": f"SZ{index:06d}",
                    "date": [date(2015, 1, 1) + timedelta(days=day) for day in range(length)],
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": volume,
                    "amount": volume * close,
                    "vwap": close,
                    "factor": 1.0,
                }
            )
        )
    return pl.concat(frames)


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    """Price levels and volumes far apart, so rounding carried across instruments would show;
    one instrument shorter than some lookbacks."""
    return random_bars(
        (320, 260, 45, 300), (0.7, 3000.0, 25.0, 150.0), (1e3, 1e9, 1e5, 1e7), seed=7
    )


CATALOGS = {"default": WITH_LINES, "custom": CUSTOM}


def columns(with_talib: bool) -> list[tuple[str, str]]:
    return [
        (label, name)
        for label, catalog in CATALOGS.items()
        for name, spec in catalog.items()
        if (spec.talib is not None) == with_talib
    ]


@pytest.fixture(scope="module")
def computed(bars: pl.DataFrame) -> dict[str, pl.DataFrame]:
    shuffled = bars.sample(fraction=1.0, shuffle=True, seed=3)
    return {
        label: compute_indicators(shuffled, catalog=catalog) for label, catalog in CATALOGS.items()
    }


def by_instrument(bars: pl.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    return {
        part["instrument"][0]: {column: part[column].to_numpy() for column in part.columns[2:]}
        for part in bars.sort("instrument", "date").partition_by("instrument")
    }


def assert_matches(
    ours: np.ndarray, reference: np.ndarray, lookback: int, tolerance: float, label: str
) -> None:
    """Null before the lookback; after it equal within ``tolerance`` of the column's scale."""
    assert np.isnan(ours[:lookback]).all(), f"{label}: values before the lookback"
    ours, reference = ours[lookback:], reference[lookback:]
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference), err_msg=label)
    scale = np.nanmax(np.abs(reference), initial=1e-300)
    np.testing.assert_allclose(
        ours, reference, rtol=tolerance, atol=tolerance * scale, equal_nan=True, err_msg=label
    )


def test_output_shape(bars: pl.DataFrame, computed: dict[str, pl.DataFrame]) -> None:
    frame = computed["default"]
    assert frame.columns == ["instrument", "date", *WITH_LINES]
    assert all(frame[name].dtype == pl.Float64 for name in WITH_LINES)
    assert frame.height == bars.height
    assert frame.select("instrument", "date").equals(
        bars.select("instrument", "date").sort("instrument", "date")
    )


def talib_reference(spec: IndicatorSpec, arrays: dict[str, np.ndarray]) -> np.ndarray:
    function, kwargs, output = spec.talib  # type: ignore[misc]
    inputs = (arrays[field] for field in talib_input_fields(function))
    result = getattr(talib, function)(*inputs, **kwargs)
    return result[output] if isinstance(result, tuple) else result


@pytest.mark.parametrize(("label", "name"), columns(with_talib=True))
def test_talib_columns_equal_talib(
    label: str, name: str, bars: pl.DataFrame, computed: dict[str, pl.DataFrame]
) -> None:
    spec = CATALOGS[label][name]
    function, kwargs, _ = spec.talib  # type: ignore[misc]
    assert spec.lookback == abstract.Function(function, **kwargs).lookback
    outputs = by_instrument(computed[label])
    for instrument, arrays in by_instrument(bars).items():
        reference = talib_reference(spec, arrays)
        assert_matches(outputs[instrument][name], reference, spec.lookback, TOLERANCE, name)


def rolling(values: np.ndarray, window: int, reduce: "np.ufunc | object") -> np.ndarray:
    out = np.full(values.size, np.nan)
    for end in range(window, values.size + 1):
        out[end - 1] = reduce(values[end - window : end])  # type: ignore[operator]
    return out


def log_returns(a: dict[str, np.ndarray]) -> np.ndarray:
    returns = np.full(a["close"].size, np.nan)
    returns[1:] = np.log(a["close"][1:] / a["close"][:-1])
    return returns


def ref_bollinger(a: dict[str, np.ndarray], timeperiod: int, nbdev: float) -> dict[str, np.ndarray]:
    upper, middle, lower = talib.BBANDS(a["close"], timeperiod, nbdev, nbdev)
    width = (upper - lower) / middle
    with np.errstate(invalid="ignore", divide="ignore"):
        pctb = np.where(upper > lower, (a["close"] - lower) / (upper - lower), np.nan)
    return {"width": width, "pctb": pctb}


def ref_senkou_a(a: dict[str, np.ndarray], tenkan: int, kijun: int) -> np.ndarray:
    def mid(period: int) -> np.ndarray:
        return (rolling(a["high"], period, np.max) + rolling(a["low"], period, np.min)) / 2

    return (mid(tenkan) + mid(kijun)) / 2


def ref_vwap(a: dict[str, np.ndarray], timeperiod: int) -> np.ndarray:
    typical = (a["high"] + a["low"] + a["close"]) / 3
    out = np.full(typical.size, np.nan)
    for t in range(timeperiod - 1, typical.size):
        window = slice(t - timeperiod + 1, t + 1)
        volume = a["volume"][window].sum()
        if volume > 0:
            out[t] = (typical[window] * a["volume"][window]).sum() / volume
    return out


def ref_obv_window(a: dict[str, np.ndarray], timeperiod: int) -> np.ndarray:
    out = np.full(a["close"].size, np.nan)
    for t in range(timeperiod, out.size):
        total = 0.0
        for i in range(t - timeperiod + 1, t + 1):
            if a["close"][i] > a["close"][i - 1]:
                total += a["volume"][i]
            elif a["close"][i] < a["close"][i - 1]:
                total -= a["volume"][i]
        out[t] = total
    return out


def ref_ad_window(a: dict[str, np.ndarray], timeperiod: int) -> np.ndarray:
    high, low, close, volume = a["high"], a["low"], a["close"], a["volume"]
    flow = np.zeros(close.size)
    for i in range(close.size):
        if high[i] > low[i]:
            flow[i] = ((close[i] - low[i]) - (high[i] - close[i])) / (high[i] - low[i]) * volume[i]
    return rolling(flow, timeperiod, np.sum)


def ref_volume_rsi(a: dict[str, np.ndarray], timeperiod: int) -> np.ndarray:
    close, volume = a["close"], a["volume"]
    out = np.full(close.size, np.nan)
    up = np.where(np.diff(close, prepend=close[0]) > 0, volume, 0.0)
    down = np.where(np.diff(close, prepend=close[0]) < 0, volume, 0.0)
    if close.size <= timeperiod:
        return out
    mean_up, mean_down = up[1 : timeperiod + 1].mean(), down[1 : timeperiod + 1].mean()
    for t in range(timeperiod, close.size):
        if t > timeperiod:
            mean_up = (mean_up * (timeperiod - 1) + up[t]) / timeperiod
            mean_down = (mean_down * (timeperiod - 1) + down[t]) / timeperiod
        total = mean_up + mean_down
        out[t] = 100 * mean_up / total if total > 0 else 0.0
    return out


def ref_vix(a: dict[str, np.ndarray], timeperiod: int) -> np.ndarray:
    squares = rolling(log_returns(a) ** 2, timeperiod, np.sum)
    return 100 * np.sqrt(252 / timeperiod * squares)


def ref_hv(a: dict[str, np.ndarray], timeperiod: int) -> np.ndarray:
    return 100 * np.sqrt(252) * rolling(log_returns(a), timeperiod, lambda w: np.std(w, ddof=1))


def ref_kdj(a: dict[str, np.ndarray], n: int, m1: int, m2: int) -> dict[str, np.ndarray]:
    size = a["close"].size
    k_out, d_out = np.full(size, np.nan), np.full(size, np.nan)
    k = d = 50.0
    for t in range(n - 1, size):
        highest, lowest = a["high"][t - n + 1 : t + 1].max(), a["low"][t - n + 1 : t + 1].min()
        rsv = 100 * (a["close"][t] - lowest) / (highest - lowest) if highest > lowest else 50.0
        k = ((m1 - 1) * k + rsv) / m1
        d = ((m2 - 1) * d + k) / m2
        k_out[t], d_out[t] = k, d
    return {"k": k_out, "d": d_out, "j": 3 * k_out - 2 * d_out}


HAND_REFERENCES = {
    "bbands": ref_bollinger,
    "ichimoku": lambda a, tenkan, kijun, senkou_b: {"senkou_a": ref_senkou_a(a, tenkan, kijun)},
    "vwap": lambda a, timeperiod: {"value": ref_vwap(a, timeperiod)},
    "obv_window": lambda a, timeperiod: {"value": ref_obv_window(a, timeperiod)},
    "ad_window": lambda a, timeperiod: {"value": ref_ad_window(a, timeperiod)},
    "vrsi": lambda a, timeperiod: {"value": ref_volume_rsi(a, timeperiod)},
    "vix": lambda a, timeperiod: {"value": ref_vix(a, timeperiod)},
    "hv": lambda a, timeperiod: {"value": ref_hv(a, timeperiod)},
    "kdj": ref_kdj,
}


@pytest.mark.parametrize(("label", "name"), columns(with_talib=False))
def test_custom_columns_equal_hand_references(
    label: str, name: str, bars: pl.DataFrame, computed: dict[str, pl.DataFrame]
) -> None:
    spec = CATALOGS[label][name]
    outputs = by_instrument(computed[label])
    for instrument, arrays in by_instrument(bars).items():
        reference = HAND_REFERENCES[spec.family](arrays, **spec.params)[spec.output]
        assert_matches(outputs[instrument][name], reference, spec.lookback, TOLERANCE, name)


def assert_frames_close(ours: pl.DataFrame, reference: pl.DataFrame, tolerance: float) -> None:
    assert ours.select("instrument", "date").equals(reference.select("instrument", "date"))
    for name in ours.columns[2:]:
        assert_matches(ours[name].to_numpy(), reference[name].to_numpy(), 0, tolerance, name)


def test_values_ignore_later_bars(bars: pl.DataFrame, computed: dict[str, pl.DataFrame]) -> None:
    """Bars after a cutoff, changed or removed, change no value at or before it (beyond
    rounding carried through the concatenated runs, 1e-12 of the column's scale)."""
    cutoff = date(2015, 1, 1) + timedelta(days=150)
    later = pl.col("date") > cutoff
    rng = np.random.default_rng(11)
    factor = pl.Series(rng.uniform(0.5, 2.0, bars.height))
    changed = bars.with_columns(
        pl.when(later).then(pl.col(field) * factor).otherwise(pl.col(field)).alias(field)
        for field in ("open", "high", "low", "close", "volume")
    )
    before = computed["default"].filter(~later)
    for variant in (changed, bars.filter(~later)):
        ours = compute_indicators(variant, catalog=WITH_LINES).filter(~later)
        assert_frames_close(ours, before, 1e-12)


def suffix(bars: pl.DataFrame, sessions: int) -> pl.DataFrame:
    return (
        bars.sort("instrument", "date").group_by("instrument", maintain_order=True).tail(sessions)
    )


@pytest.mark.parametrize("name", list(CATALOG))
def test_window_of_warmup_sessions_gives_full_history_values(name: str) -> None:
    """Computing on only the last warmup + k sessions reproduces the full-history values of the
    last k sessions: what the daily asset relies on."""
    long_bars = random_bars((900, 700), (40.0, 8.0), (1e6, 1e4), seed=5)
    warmup, tail = CATALOG[name].warmup, 15
    assert warmup is not None
    full = compute_indicators(long_bars, [name])
    window = compute_indicators(suffix(long_bars, warmup + tail), [name])
    assert_frames_close(suffix(window, tail), suffix(full, tail), 1e-8)


def test_max_warmup() -> None:
    assert max_warmup() == max(spec.warmup or 0 for spec in CATALOG.values())
    assert max_warmup(["sma_20", "rsi_14"]) == CATALOG["rsi_14"].warmup
    with pytest.raises(ValueError, match="obv"):
        max_warmup(["obv", "sma_20"], catalog=WITH_LINES)


def test_suspended_sessions_are_skipped(
    bars: pl.DataFrame, computed: dict[str, pl.DataFrame]
) -> None:
    """Missing rows and rows with null or NaN fields: the other sessions get the values of the
    instrument's compressed series; the null/NaN rows get nulls."""
    rng = np.random.default_rng(2)
    target = bars.filter(pl.col("instrument") == "SZ000003").with_row_index("row")
    kept = target.filter(pl.Series(rng.random(target.height) > 0.1))
    voided = kept.with_columns(
        pl.when(pl.col("row") % 17 == 0).then(None).otherwise(pl.col("close")).alias("close"),
        pl.when(pl.col("row") % 23 == 0).then(np.nan).otherwise(pl.col("high")).alias("high"),
    ).drop("row")
    traded = voided.filter(pl.col("close").is_not_null() & pl.col("high").is_not_nan())
    compressed = traded.with_columns(
        pl.Series("date", [date(2001, 1, 1) + timedelta(days=i) for i in range(traded.height)])
    )
    ours = compute_indicators(voided, catalog=WITH_LINES)
    assert ours.height == voided.height
    suspended = ours.join(traded.select("date"), on="date", how="anti")
    assert suspended.height > 0
    assert suspended.select(pl.all_horizontal(pl.col(list(WITH_LINES)).is_null())).to_series().all()
    reference = compute_indicators(compressed, catalog=WITH_LINES)
    assert_frames_close(
        ours.join(traded.select("date"), on="date").with_columns(reference["date"]), reference, 0.0
    )


def test_build_catalog_parameters() -> None:
    catalog = build_catalog({"sma": [{"timeperiod": 5}, {"timeperiod": 60}], "kdj": None})
    assert {"sma_5", "sma_60"} <= set(catalog)
    assert "sma_20" not in catalog and "kdj_k" not in catalog
    assert catalog["sma_60"].talib == ("SMA", {"timeperiod": 60}, 0)
    assert catalog["sma_60"].warmup == 59
    assert "obv" not in CATALOG and "obv" in WITH_LINES
    assert CATALOG["bb_upper_20"].talib == (
        "BBANDS",
        {"timeperiod": 20, "nbdevup": 2.0, "nbdevdn": 2.0},
        0,
    )
    for bad, message in (
        ({"smma": {}}, "unknown indicator family"),
        ({"sma": {"period": 3}}, "unexpected keyword"),
        ({"ema": {"timeperiod": 1}}, "integer >= 2"),
        ({"sma": [{"timeperiod": 5}, {"timeperiod": 5}]}, "both named 'sma_5'"),
    ):
        with pytest.raises(ValueError, match=message):
            build_catalog(bad)


def test_rejects_bad_bars(bars: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="more than one row for instrument SZ000002"):
        compute_indicators(pl.concat([bars, bars.filter(pl.col("instrument") == "SZ000002")]))
    broken = bars.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(0.0).otherwise(pl.col("low")).alias("low")
    )
    with pytest.raises(ValueError, match="SZ000000 on 2015-01-06: a price is not positive"):
        compute_indicators(broken)
    with pytest.raises(ValueError, match="unknown indicator columns"):
        compute_indicators(bars, ["sma_21"])


def test_short_and_empty_inputs(bars: pl.DataFrame, computed: dict[str, pl.DataFrame]) -> None:
    """No rows gives no rows; instruments shorter than every lookback get nulls and leave the
    other instruments' values as they were."""
    assert compute_indicators(bars.head(0)).columns == ["instrument", "date", *CATALOG]
    one_session = bars.group_by("instrument").head(1).with_columns(pl.col("instrument") + "_NEW")
    ours = compute_indicators(pl.concat([bars, one_session]), catalog=WITH_LINES)
    added = ours.filter(pl.col("instrument").str.ends_with("_NEW"))
    lookback_zero = [name for name, spec in WITH_LINES.items() if spec.lookback == 0]
    assert added.drop("instrument", "date", *lookback_zero).null_count().sum_horizontal()[0] == (
        added.height * (len(WITH_LINES) - len(lookback_zero))
    )
    kept = ours.filter(~pl.col("instrument").str.ends_with("_NEW"))
    assert_frames_close(kept, computed["default"], 1e-12)


def test_thread_count_does_not_change_the_result(
    bars: pl.DataFrame, computed: dict[str, pl.DataFrame]
) -> None:
    one_thread = compute_indicators(bars, catalog=WITH_LINES, threads=1)
    assert one_thread.equals(computed["default"])


def test_panel_of_several_blocks() -> None:
    """A panel larger than one block (blocks cut between instruments, at rows that are not
    multiples of 8, so validity bytes straddle two blocks): every column still equals its
    reference per instrument, nulls are exactly the NaNs, and threads do not change it."""
    rng = np.random.default_rng(13)
    lengths = tuple(int(length) for length in rng.integers(180, 320, 600))
    assert sum(lengths) > 2 * BLOCK_ROWS
    levels = tuple(float(level) for level in 10 ** rng.uniform(-1, 3, len(lengths)))
    volumes = tuple(float(volume) for volume in 10 ** rng.uniform(3, 9, len(lengths)))
    many = random_bars(lengths, levels, volumes, seed=17)
    ours = compute_indicators(many, catalog=WITH_LINES, threads=2)
    assert ours.equals(compute_indicators(many, catalog=WITH_LINES, threads=1))
    assert not ours.select(pl.any_horizontal(pl.exclude(KEYS).is_nan())).to_series().any()
    starts = np.cumsum((0, *lengths))
    cuts = set(np.searchsorted(starts, np.arange(BLOCK_ROWS, starts[-1], BLOCK_ROWS)).tolist())
    assert any(starts[cut] % 8 for cut in cuts)
    near_cuts = {f"SZ{index:06d}" for cut in cuts for index in (cut - 1, cut)}
    outputs = by_instrument(ours)
    for instrument, arrays in by_instrument(many).items():
        for name, spec in WITH_LINES.items():
            if spec.talib is not None:
                reference = talib_reference(spec, arrays)
            elif instrument in near_cuts:
                reference = HAND_REFERENCES[spec.family](arrays, **spec.params)[spec.output]
            else:
                continue
            assert_matches(outputs[instrument][name], reference, spec.lookback, TOLERANCE, name)
