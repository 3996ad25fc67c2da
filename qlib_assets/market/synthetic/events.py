"""Corporate and exchange events of the synthetic market: listings, delistings, suspensions,
splits and dividends, as (session x instrument) arrays.

Arrays span ``burn + sessions`` rows: the first ``burn`` rows are an unwritten warm-up so that
GARCH states and the 60-session momentum signal are settled on the first written session.
Events only happen inside the written range.
"""

from dataclasses import dataclass

import numpy as np

SESSIONS_PER_YEAR = 243
# Bonus-share ratios typical of A-share "送转" (10 for 10 -> 2.0, 10 for 3 -> 1.3).
_SPLIT_RATIOS = np.array([1.2, 1.3, 1.5, 2.0, 3.0])


@dataclass(frozen=True)
class EventRates:
    listing_share: float
    delisting_share: float
    suspensions_per_year: float
    mean_suspension_sessions: float
    splits_per_year: float
    dividends_per_year: float


@dataclass(frozen=True)
class Events:
    """``listed``: the instrument trades on its exchange (between listing and delisting).
    ``active``: it has a bar (listed and not suspended). ``factor``: Qlib adjustment factor,
    1.0 on the first written session, multiplied by the split/dividend ratio on ex-dates.
    ``listed_at``: row of the first listed session (0 for instruments listed before the range).
    """

    listed: np.ndarray
    active: np.ndarray
    factor: np.ndarray
    listed_at: np.ndarray


def draw_events(
    rng: np.random.Generator, burn: int, sessions: int, instruments: int, rates: EventRates
) -> Events:
    total = burn + sessions
    years = sessions / SESSIONS_PER_YEAR
    # A listing or delisting inside the range keeps at least this many sessions of bars.
    min_life = max(2, min(60, sessions // 3))

    listed_at = np.zeros(instruments, dtype=np.int64)
    delisted_at = np.full(instruments, total, dtype=np.int64)
    if sessions > 2 * min_life:
        new = rng.random(instruments) < rates.listing_share
        listed_at[new] = rng.integers(burn + 1, total - min_life, size=int(new.sum()))
        gone = rng.random(instruments) < rates.delisting_share
        lower = np.maximum(listed_at[gone], burn) + min_life
        delisted_at[gone] = rng.integers(lower, total)
    rows = np.arange(total)[:, None]
    listed = (rows >= listed_at[None, :]) & (rows < delisted_at[None, :])

    suspended = _stretches(rng, burn, total, instruments, rates, years)
    # The listing day always trades: an instrument's first bar is its listing.
    suspended[listed_at, np.arange(instruments)] = False
    active = listed & ~suspended

    factor = _factor(rng, burn, total, instruments, rates, years)
    return Events(listed=listed, active=active, factor=factor, listed_at=listed_at)


def _stretches(
    rng: np.random.Generator,
    burn: int,
    total: int,
    instruments: int,
    rates: EventRates,
    years: float,
) -> np.ndarray:
    counts = rng.poisson(rates.suspensions_per_year * years, size=instruments)
    owner = np.repeat(np.arange(instruments), counts)
    starts = rng.integers(burn, total, size=owner.size)
    # Geometric lengths: mostly one or two sessions, with a tail of multi-week halts.
    lengths = rng.geometric(1.0 / rates.mean_suspension_sessions, size=owner.size)
    ends = np.minimum(starts + lengths, total)
    edges = np.zeros((total + 1, instruments), dtype=np.int32)
    np.add.at(edges, (starts, owner), 1)
    np.add.at(edges, (ends, owner), -1)
    return np.cumsum(edges[:total], axis=0) > 0


def _factor(
    rng: np.random.Generator,
    burn: int,
    total: int,
    instruments: int,
    rates: EventRates,
    years: float,
) -> np.ndarray:
    # An ex-date needs a previous written session to be measured against.
    per_year = years if total > burn + 1 else 0.0
    splits = rng.poisson(rates.splits_per_year * per_year, size=instruments)
    dividends = rng.poisson(rates.dividends_per_year * per_year, size=instruments)
    owner = np.concatenate(
        [np.repeat(np.arange(instruments), splits), np.repeat(np.arange(instruments), dividends)]
    )
    # A cash dividend of yield y lowers the raw price by y: the factor grows by 1 / (1 - y).
    ratios = np.concatenate(
        [
            rng.choice(_SPLIT_RATIOS, size=int(splits.sum())),
            1.0 / (1.0 - rng.uniform(0.005, 0.04, size=int(dividends.sum()))),
        ]
    )
    days = rng.integers(burn + 1, total, size=owner.size)
    steps = np.ones((total, instruments))
    np.multiply.at(steps, (days, owner), ratios)
    return np.cumprod(steps, axis=0)
