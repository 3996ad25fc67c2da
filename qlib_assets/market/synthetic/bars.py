"""Daily OHLC, vwap, volume and amount from the latent close and volume paths.

Units (Qlib's convention): prices are adjusted (raw price x factor), volume is adjusted
(raw shares / factor), so ``amount = vwap * volume`` is the traded value in currency whether
read in raw or adjusted units. Raw volume is a whole number of 100-share lots.
"""

from dataclasses import dataclass

import numpy as np

from qlib_assets.market.synthetic.process import PRICE_LIMIT

LOT = 100.0


@dataclass(frozen=True)
class BarArrays:
    """(session x instrument) arrays of the written range; rows without a bar hold junk."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    amount: np.ndarray
    vwap: np.ndarray
    factor: np.ndarray


def build_bars(
    rng: np.random.Generator,
    log_price: np.ndarray,
    returns: np.ndarray,
    sigma: np.ndarray,
    volume: np.ndarray,
    factor: np.ndarray,
    first_price: np.ndarray,
    burn: int,
) -> BarArrays:
    """``log_price`` etc. span burn + range rows; the result covers the range rows only.

    Open, high and low stay inside the price limit band around the previous close, as the
    exchange's limit applies intraday too; on ex-dates the adjusted previous close is the
    exchange's ex-rights reference price, so the band is the same in raw terms.
    """
    close_full = first_price * np.exp(log_price - log_price[burn - 1])
    close = close_full[burn:]
    prev = close_full[burn - 1 : -1]
    ret = returns[burn:]
    vol = sigma[burn:]
    shape = close.shape
    upper = prev * (1.0 + PRICE_LIMIT)
    lower = prev * (1.0 - PRICE_LIMIT)

    gap = np.clip(0.3 * ret + 0.35 * vol * rng.standard_normal(shape), -PRICE_LIMIT, PRICE_LIMIT)
    open_ = np.clip(prev * (1.0 + gap), lower, upper)
    top = np.maximum(open_, close)
    bottom = np.minimum(open_, close)
    high = np.maximum(
        np.minimum(top * (1.0 + 0.6 * vol * np.abs(rng.standard_normal(shape))), upper), top
    )
    low = np.minimum(
        np.maximum(bottom * (1.0 - 0.6 * vol * np.abs(rng.standard_normal(shape))), lower), bottom
    )

    span = high - low
    middle = np.divide(0.5 * (open_ + close) - low, span, out=np.full(shape, 0.5), where=span > 0)
    weight = 0.5 * middle + 0.5 * rng.beta(4.0, 4.0, size=shape)
    vwap = np.clip(low + weight * span, low, high)

    fac = factor[burn:]
    raw_shares = np.round(volume[burn:] * fac / LOT) * LOT
    adjusted_volume = raw_shares / fac
    return BarArrays(
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=adjusted_volume,
        amount=vwap * adjusted_volume,
        vwap=vwap,
        factor=fac,
    )
