"""SHAP contributions of the served score: exact for both tree models, planted effects on top."""

import numpy as np
import polars as pl
import pytest

from qlib_assets.explain.contributions import explain_rows
from qlib_assets.explain.families import by_family, family_map, global_importance
from qlib_assets.explain.model_input import load_served_model
from qlib_assets.models.tracking import load_scorer
from qlib_assets.online.predictions import scoring_features
from qlib_assets_tests.explain.conftest import XgbSetup
from qlib_assets_tests.online.conftest import OnlineSetup

# Alpha158 columns nearest to the generator's planted effects: 5-session reversal (ROC5, and the
# 5-session price position), 60-session momentum, abnormal volume against its 20-session mean.
PLANTED = {"ROC5", "MA5", "RSV5", "ROC60", "MA60", "VMA20", "VMA10", "VMA5", "VSTD20", "WVMA5"}


def _session(online: OnlineSetup, window_index: int) -> tuple[str, pl.DataFrame]:
    window = online.windows[window_index]
    day = window.test[0]
    return online.model_uris[window.key], scoring_features(online.lake, online.spec, [day])


def test_lightgbm_contributions_add_up_to_the_served_score(online: OnlineSetup) -> None:
    uri, features = _session(online, 1)
    served = load_served_model(uri, online.tracking_uri)
    result = explain_rows(served, features.to_pandas())
    served_scores = load_scorer(uri, online.tracking_uri).predict(features.to_pandas())
    assert result.exact and result.max_additivity_error <= 1e-6
    np.testing.assert_allclose(result.score, served_scores["score"].to_numpy(), atol=1e-9)
    recomposed = result.base_value + result.values.sum(axis=1)
    np.testing.assert_allclose(recomposed, result.score, atol=1e-6)
    assert result.values.shape == (features.height, 158)
    assert result.keys.equals(features.select("instrument", "date"))


def test_xgboost_contributions_add_up_to_the_served_score(
    online: OnlineSetup, xgb_model: XgbSetup
) -> None:
    _, features = _session(online, 1)
    served = load_served_model(xgb_model.model_uri, xgb_model.tracking_uri)
    result = explain_rows(served, features.to_pandas())
    served_scores = load_scorer(xgb_model.model_uri, xgb_model.tracking_uri).predict(
        features.to_pandas()
    )
    np.testing.assert_allclose(result.score, served_scores["score"].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(
        result.base_value + result.values.sum(axis=1), result.score, atol=1e-6
    )


def test_planted_effects_rank_near_the_top(online: OnlineSetup) -> None:
    uri, features = _session(online, 1)
    result = explain_rows(load_served_model(uri, online.tracking_uri), features.to_pandas())
    ranking = global_importance(result.long()).get_column("feature").to_list()
    top = set(ranking[:15])
    assert top & PLANTED, ranking[:15]
    families = global_importance(
        by_family(result.long(), family_map(result.features)), key="family"
    )
    ranked = families.get_column("family").to_list()
    assert {"ROC", "MA", "VMA"} & set(ranked[:6]), families
    assert families.get_column("family").n_unique() == families.height


@pytest.mark.parametrize(
    ("column", "family"),
    [("KMID2", "KBAR"), ("ROC60", "ROC"), ("VSUMD20", "VSUM"), ("IMXD5", "IMAX/IMIN/IMXD"),
     ("OPEN0", "price"), ("CNTN10", "CNT"), ("rsi_14", "ind:rsi"), ("macd_hist", "ind:macd"),
     ("bb_pctb_20", "ind:bbands"), ("kdj_j", "ind:kdj"), ("mystery", "other")],
)  # fmt: skip
def test_families(column: str, family: str) -> None:
    assert family_map([column]) == {column: family}
