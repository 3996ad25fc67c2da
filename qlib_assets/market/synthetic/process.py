"""The latent price and volume process of the synthetic market, with planted return effects.

Daily simple return of instrument i at session t (before the price limit):

    r[t, i] = mu[t, i] + beta_i * m[t] + gamma_i * s[t, sector_i] + sigma[t, i] * e[t, i]

- ``m`` (market) and ``s`` (sectors) are GARCH(1,1) factors with Student-t innovations;
  ``sigma`` is each instrument's own GARCH(1,1) volatility, ``e`` standardized Student-t.
- ``mu[t + 1]`` is fixed at the close of session t from information up to t only:
  ``mu = strength * sigma[t + 1] * score`` where ``score`` is a unit-variance cross-sectional
  blend of three z-scored signals: short-term reversal (minus the last 5-session log return),
  medium-term momentum (log return from t-60 to t-5) and abnormal volume (log volume minus the
  log of its 20-session mean). ``sigma[t + 1]`` is the GARCH forecast, known at t.
- The realized return is clipped to +-10% (the price limit, relative to the previous close).
  Suspended and unlisted instruments do not move and carry their last volume.
"""

from dataclasses import dataclass

import numpy as np

REVERSAL_WINDOW = 5
MOMENTUM_WINDOW = 60
VOLUME_WINDOW = 20
PRICE_LIMIT = 0.10
_Z_CAP = 3.0
# Log volume has an AR(1) part with persistence 0.9 and a stationary spread of 0.35.
_VOLUME_PERSISTENCE = 0.9
_VOLUME_INNOVATION = 0.35 * float(np.sqrt(1.0 - _VOLUME_PERSISTENCE**2))


@dataclass(frozen=True)
class Regime:
    """Per-row schedule: ``vol_scale`` multiplies all volatilities, ``volume_shift`` is added
    to log volume, ``weights`` (rows x 3: reversal, momentum, volume) and ``strength`` shape
    the planted expected return of that row's session."""

    vol_scale: np.ndarray
    volume_shift: np.ndarray
    weights: np.ndarray
    strength: np.ndarray


@dataclass(frozen=True)
class Paths:
    """``log_price``: cumulative log return; ``volume``: adjusted volume in shares of the first
    session; ``sigma``: volatility used for the session; ``expected_next[t]``: the planted
    expected simple return of session t + 1 as known at the close of t."""

    log_price: np.ndarray
    volume: np.ndarray
    sigma: np.ndarray
    returns: np.ndarray
    expected_next: np.ndarray


def _garch_step(
    var: np.ndarray, shock: np.ndarray, long_run: np.ndarray | float, alpha: float, beta: float
) -> np.ndarray:
    return long_run * (1.0 - alpha - beta) + alpha * var * shock * shock + beta * var


def _student_t(rng: np.random.Generator, df: float, size: tuple[int, ...]) -> np.ndarray:
    # Scaled to unit variance so that GARCH variances are return variances.
    return rng.standard_t(df, size=size) * np.sqrt((df - 2.0) / df)


def _zscore(values: np.ndarray, use: np.ndarray) -> np.ndarray:
    if use.sum() < 2:
        return np.zeros_like(values)
    picked = values[use]
    spread = picked.std()
    if spread == 0.0:
        return np.zeros_like(values)
    z = np.clip((values - picked.mean()) / spread, -_Z_CAP, _Z_CAP)
    return np.where(use, z, 0.0)


def _signal(
    t: int,
    log_price: np.ndarray,
    log_volume: np.ndarray,
    volume_sum: np.ndarray,
    use: np.ndarray,
    age: np.ndarray,
    weights: np.ndarray,
) -> np.ndarray:
    """Unit cross-sectional-variance blend of the planted signals at the close of row t.

    A signal counts only for instruments listed long enough to have its whole window; the
    z-scores are taken over instruments with a bar at t.
    """
    count = log_price.shape[1]
    reversal = np.zeros(count)
    momentum = np.zeros(count)
    abnormal = np.zeros(count)
    if t >= REVERSAL_WINDOW:
        reversal = log_price[t] - log_price[t - REVERSAL_WINDOW]
    if t >= MOMENTUM_WINDOW:
        momentum = log_price[t - REVERSAL_WINDOW] - log_price[t - MOMENTUM_WINDOW]
    if t >= VOLUME_WINDOW:
        abnormal = log_volume[t] - np.log(volume_sum / VOLUME_WINDOW)
    w_rev, w_mom, w_vol = weights
    score = (
        -w_rev * _zscore(reversal, use & (age >= REVERSAL_WINDOW))
        + w_mom * _zscore(momentum, use & (age >= MOMENTUM_WINDOW))
        + w_vol * _zscore(abnormal, use & (age >= VOLUME_WINDOW))
    )
    spread = score[use].std() if use.sum() > 1 else 0.0
    return score / spread if spread > 0 else np.zeros(count)


def simulate(
    rng: np.random.Generator,
    active: np.ndarray,
    listed_at: np.ndarray,
    sectors: np.ndarray,
    sector_count: int,
    regime: Regime,
) -> Paths:
    total, count = active.shape
    idio_long_run = (rng.lognormal(np.log(0.021), 0.3, size=count)) ** 2
    market_long_run = 0.011**2
    sector_long_run = 0.007**2
    beta = np.clip(rng.normal(1.0, 0.3, size=count), 0.2, 2.0)
    gamma = np.clip(rng.normal(1.0, 0.3, size=count), 0.2, 2.0)
    base_volume = rng.lognormal(np.log(6e6), 0.8, size=count)
    typical_move = np.sqrt(idio_long_run + market_long_run + sector_long_run)

    idio_shock = _student_t(rng, 5.0, (total, count))
    market_shock = _student_t(rng, 6.0, (total,))
    sector_shock = _student_t(rng, 6.0, (total, sector_count))
    volume_noise = rng.standard_normal((total, count))

    log_price = np.zeros((total, count))
    log_volume = np.zeros((total, count))
    volume = np.zeros((total, count))
    sigma = np.zeros((total, count))
    returns = np.zeros((total, count))
    expected_next = np.zeros((total, count))

    idio_var = idio_long_run.copy()
    market_var = market_long_run
    sector_var = np.full(sector_count, sector_long_run)
    volume_state = np.zeros(count)
    volume_sum = np.zeros(count)
    mu = np.zeros(count)
    prev_log_price = np.zeros(count)
    prev_log_volume = np.log(base_volume)

    for t in range(total):
        scale = regime.vol_scale[t]
        sigma[t] = np.sqrt(idio_var) * scale
        market = np.sqrt(market_var) * scale * market_shock[t]
        sector = np.sqrt(sector_var) * scale * sector_shock[t]
        raw = mu + beta * market + gamma * sector[sectors] + sigma[t] * idio_shock[t]
        ret = np.where(active[t], np.clip(raw, -PRICE_LIMIT, PRICE_LIMIT), 0.0)
        returns[t] = ret
        log_price[t] = prev_log_price + np.log1p(ret)

        # Volume clusters with volatility: big moves (in units of the usual move) trade more.
        volume_state = _VOLUME_PERSISTENCE * volume_state + _VOLUME_INNOVATION * volume_noise[t]
        fresh = (
            np.log(base_volume)
            + regime.volume_shift[t]
            + volume_state
            + 0.25 * (np.abs(ret) / typical_move - 0.8)
        )
        log_volume[t] = np.where(active[t], fresh, prev_log_volume)
        volume[t] = np.exp(log_volume[t])
        volume_sum += volume[t]
        if t >= VOLUME_WINDOW:
            volume_sum -= volume[t - VOLUME_WINDOW]

        idio_var = _garch_step(idio_var, idio_shock[t], idio_long_run, 0.08, 0.89)
        market_var = _garch_step(market_var, market_shock[t], market_long_run, 0.07, 0.90)
        sector_var = _garch_step(sector_var, sector_shock[t], sector_long_run, 0.06, 0.90)
        prev_log_price = log_price[t]
        prev_log_volume = log_volume[t]
        # The last row's forecast is for a session beyond the range, under the last regime.
        next_row = min(t + 1, total - 1)
        unit = _signal(
            t, log_price, log_volume, volume_sum, active[t], t - listed_at, regime.weights[next_row]
        )
        next_sigma = np.sqrt(idio_var) * regime.vol_scale[next_row]
        mu = regime.strength[next_row] * next_sigma * unit
        expected_next[t] = mu

    return Paths(
        log_price=log_price,
        volume=volume,
        sigma=sigma,
        returns=returns,
        expected_next=expected_next,
    )
