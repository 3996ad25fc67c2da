"""The shadow test: is the challenger's daily IC not worse than the champion's by a margin?

Both score the same sessions; their daily ICs (Pearson, per session, against the realized label)
are paired and the difference ``d_t = IC_challenger - IC_champion`` is tested one-sided for
non-inferiority, H0: E[d] <= -margin against H1: E[d] > -margin, with the mean's standard error
from Newey-West (HAC) covariance (statsmodels' OLS of ``d + margin`` on a constant). Labels of
consecutive sessions overlap by horizon - 1 sessions, so the differences are autocorrelated: the
lag is at least ``label horizon - 1``. The challenger is promoted when H0 is rejected at ``alpha``.
"""

from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from qlib_assets.models.scoring import daily_ic


@dataclass(frozen=True)
class ShadowTest:
    sessions: tuple[date, ...]
    champion_ic: float
    challenger_ic: float
    mean_difference: float
    margin: float
    statistic: float  # HAC t of mean(d) + margin
    p_value: float  # one-sided
    lags: int
    alpha: float

    @property
    def promote(self) -> bool:
        return self.p_value < self.alpha

    def evidence(self) -> dict[str, Any]:
        return {
            "test": "one-sided paired non-inferiority, Newey-West HAC",
            "sessions": [d.isoformat() for d in self.sessions],
            "n": len(self.sessions),
            "champion_ic": self.champion_ic,
            "challenger_ic": self.challenger_ic,
            "mean_difference": self.mean_difference,
            "margin": self.margin,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "lags": self.lags,
            "alpha": self.alpha,
            "decision": "promote" if self.promote else "keep champion",
        }


def session_ic(predictions: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """``date, ic``: the daily IC of ``predictions`` (instrument, date, score) against
    ``labels`` (instrument, date, label), the definition the training report uses."""
    joined = predictions.select("instrument", "date", "score").join(
        labels.select("instrument", "date", "label"), on=["instrument", "date"], how="inner"
    )
    frame = joined.to_pandas().rename(columns={"date": "datetime"})
    frame["datetime"] = frame["datetime"].astype("datetime64[ns]")
    frame = frame.set_index(["datetime", "instrument"])
    return daily_ic(frame["score"], frame["label"]).daily.select("date", "ic")


def hac_lags(horizon: int, configured: int | None = None) -> int:
    return max(horizon - 1, configured or 0)


def shadow_test(
    champion: pl.DataFrame,
    challenger: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    margin: float,
    alpha: float,
    lags: int,
) -> ShadowTest:
    """Test the challenger's predictions against the champion's on their common sessions."""
    import numpy as np
    import statsmodels.api as sm
    from scipy.stats import norm

    paired = (
        session_ic(champion, labels)
        .rename({"ic": "champion"})
        .join(session_ic(challenger, labels).rename({"ic": "challenger"}), on="date")
        .sort("date")
    )
    if paired.height < 3:
        raise ValueError(f"the shadow test needs >= 3 paired sessions, got {paired.height}")
    diff = (paired["challenger"] - paired["champion"]).to_numpy()
    fit = sm.OLS(diff + margin, np.ones((len(diff), 1))).fit(
        cov_type="HAC", cov_kwds={"maxlags": lags}
    )
    statistic = float(fit.tvalues[0])
    return ShadowTest(
        sessions=tuple(paired["date"].to_list()),
        champion_ic=float(paired["champion"].mean()),  # type: ignore[arg-type]
        challenger_ic=float(paired["challenger"].mean()),  # type: ignore[arg-type]
        mean_difference=float(diff.mean()),
        margin=margin,
        statistic=statistic,
        p_value=float(norm.sf(statistic)),
        lags=lags,
        alpha=alpha,
    )
