"""Factor families: Alpha158's column groups and the indicator catalog's families.

Alpha158 names its columns by operator and window (``ROC5``, ``VSUMP20``); the family is the
operator part, with Qlib's pairs kept together (MAX/MIN, QTLU/QTLD, IMAX/IMIN/IMXD, CORR/CORD,
CNTP/CNTN/CNTD, SUMP/SUMN/SUMD, VSUMP/VSUMN/VSUMD) and the zero-window price ratios (OPEN0,
HIGH0, LOW0, VWAP0) as ``price``. Indicator columns take the family of the catalog entry that
produced them (``rsi``, ``macd``, ``bbands``, ``kdj``...), prefixed ``ind:`` so an indicator
family never merges with an Alpha158 one of a similar name.
"""

import re
from collections.abc import Iterable

import polars as pl

ALPHA158_FAMILIES: dict[str, str] = {
    "KMID": "KBAR", "KLEN": "KBAR", "KMID2": "KBAR", "KUP": "KBAR", "KUP2": "KBAR",
    "KLOW": "KBAR", "KLOW2": "KBAR", "KSFT": "KBAR", "KSFT2": "KBAR",
    "OPEN": "price", "HIGH": "price", "LOW": "price", "VWAP": "price",
    "ROC": "ROC", "MA": "MA", "STD": "STD", "BETA": "BETA", "RSQR": "RSQR", "RESI": "RESI",
    "MAX": "MAX/MIN", "MIN": "MAX/MIN", "QTLU": "QTLU/QTLD", "QTLD": "QTLU/QTLD",
    "RANK": "RANK", "RSV": "RSV",
    "IMAX": "IMAX/IMIN/IMXD", "IMIN": "IMAX/IMIN/IMXD", "IMXD": "IMAX/IMIN/IMXD",
    "CORR": "CORR/CORD", "CORD": "CORR/CORD",
    "CNTP": "CNT", "CNTN": "CNT", "CNTD": "CNT",
    "SUMP": "SUM", "SUMN": "SUM", "SUMD": "SUM",
    "VMA": "VMA", "VSTD": "VSTD", "WVMA": "WVMA",
    "VSUMP": "VSUM", "VSUMN": "VSUM", "VSUMD": "VSUM",
}  # fmt: skip
_ALPHA = re.compile(r"^([A-Z]+?)(\d*)$")
UNKNOWN = "other"


def alpha158_family(column: str) -> str | None:
    """The Alpha158 family of ``column``, None when it is not an Alpha158 name."""
    if column in ALPHA158_FAMILIES:
        return ALPHA158_FAMILIES[column]
    match = _ALPHA.match(column)
    if match is None:
        return None
    return ALPHA158_FAMILIES.get(match.group(1))


def indicator_families() -> dict[str, str]:
    """Indicator column -> ``ind:<family>`` for the default catalog."""
    from qlib_assets.features.indicators.catalog import build_catalog

    return {name: f"ind:{spec.family}" for name, spec in build_catalog().items()}


def family_map(columns: Iterable[str]) -> dict[str, str]:
    """Column -> family for every column (``other`` when neither table knows it)."""
    indicators = indicator_families()
    found = {}
    for column in columns:
        if column in indicators:
            found[column] = indicators[column]
        else:
            found[column] = alpha158_family(column) or UNKNOWN
    return found


def by_family(contributions: pl.DataFrame, families: dict[str, str]) -> pl.DataFrame:
    """``instrument, date, family, contribution``: a long contribution table summed per family
    (SHAP values are additive, so a family's contribution is the sum of its columns')."""
    mapping = pl.DataFrame(
        {"feature": list(families), "family": list(families.values())},
        schema={"feature": pl.String(), "family": pl.String()},
    )
    return (
        contributions.join(mapping, on="feature", how="left")
        .group_by("instrument", "date", "family")
        .agg(pl.col("contribution").sum())
        .sort("date", "instrument", "family")
    )


def global_importance(contributions: pl.DataFrame, key: str = "feature") -> pl.DataFrame:
    """``<key>, mean_abs``: mean |contribution| per feature (or family), largest first."""
    return (
        contributions.group_by(key)
        .agg(mean_abs=pl.col("contribution").abs().mean())
        .sort(["mean_abs", key], descending=[True, False])
    )
