"""Per-prediction feature contributions to the served score, with SHAP.

Tree models: ``shap.TreeExplainer`` on the LightGBM booster, and XGBoost's built-in TreeSHAP
(``pred_contribs``, the same algorithm, see :func:`_xgboost_tree_shap`), both exact:
for every row, the contributions plus the base value equal the model's raw output (the served
score) to float rounding; :func:`explain_rows` checks it (``ADDITIVITY_TOLERANCE``) and fails
otherwise. The MLP (Qlib's DNNModelPytorch): ``shap.GradientExplainer`` (expected gradients)
over a background of ``BACKGROUND_ROWS`` processed rows of the same session; it costs one
forward and backward pass per row and sample (``MLP_SAMPLES``), and its contributions add up to
the output only in expectation, so the stated gap (``max_additivity_error``) is reported, not
checked.
"""

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
import polars as pl

from qlib_assets.explain.model_input import ServedModel, processed_input, raw_output

ADDITIVITY_TOLERANCE = 1e-6
BACKGROUND_ROWS = 200
MLP_SAMPLES = 50
BACKGROUND_SEED = 0


class AdditivityError(AssertionError):
    """Contributions plus base value did not reproduce the model's output."""


@dataclass(frozen=True)
class Contributions:
    """``values``: one row per (instrument, date), one column per feature (its contribution);
    ``base_value``: the explainer's expected output; ``score``: the raw model output (served
    score); ``method``: the SHAP explainer; ``exact``: whether additivity is exact and checked;
    ``max_additivity_error``: max |base + sum(contributions) - score| over the rows."""

    keys: pl.DataFrame = field(repr=False)
    values: np.ndarray = field(repr=False)
    inputs: np.ndarray = field(repr=False)
    features: list[str]
    base_value: float
    score: np.ndarray = field(repr=False)
    method: str
    exact: bool
    max_additivity_error: float

    def long(self) -> pl.DataFrame:
        """``instrument, date, feature, value, contribution`` (value: the processed input)."""
        rows = self.keys.height
        return pl.DataFrame(
            {
                "instrument": np.repeat(self.keys["instrument"].to_numpy(), len(self.features)),
                "date": self.keys["date"].gather(np.repeat(np.arange(rows), len(self.features))),
                "feature": np.tile(np.array(self.features), rows),
                "value": self.inputs.reshape(-1).astype(np.float64),
                "contribution": self.values.reshape(-1).astype(np.float64),
            }
        )

    def wide(self) -> pl.DataFrame:
        """``instrument, date, score, base_value`` and one contribution column per feature."""
        return self.keys.with_columns(
            pl.Series("score", self.score),
            pl.lit(self.base_value).alias("base_value"),
        ).hstack(pl.DataFrame(self.values.astype(np.float64), schema=self.features, orient="row"))


def explain_rows(served: ServedModel, frame: pd.DataFrame) -> Contributions:
    """SHAP contributions of every row of ``frame`` (``instrument``, ``date`` + raw features)."""
    import shap

    features = processed_input(served, frame)
    inputs = features.to_numpy(dtype=np.float32)
    score = raw_output(served, features)
    keys = pl.DataFrame(
        {
            "instrument": frame["instrument"].astype(str).to_numpy(),
            "date": pd.to_datetime(frame["date"]).dt.date,
        },
        schema={"instrument": pl.String(), "date": pl.Date()},
    )
    if served.kind == "lightgbm":
        explainer = shap.TreeExplainer(served.model.model)
        values = np.asarray(explainer.shap_values(inputs), dtype=np.float64)
        base = float(np.asarray(explainer.expected_value).reshape(-1)[0])
        method, exact = "shap.TreeExplainer (path-dependent, exact)", True
    elif served.kind == "xgboost":
        values, base = _xgboost_tree_shap(served, features)
        method, exact = "XGBoost's TreeSHAP (pred_contribs, exact)", True
    else:
        import torch

        rng = np.random.default_rng(BACKGROUND_SEED)
        pick = rng.choice(len(inputs), size=min(BACKGROUND_ROWS, len(inputs)), replace=False)
        background = torch.from_numpy(inputs[np.sort(pick)])
        network = served.model.dnn_model
        network.eval()
        explainer = shap.GradientExplainer(network, background)
        raw = explainer.shap_values(torch.from_numpy(inputs), nsamples=MLP_SAMPLES, rseed=0)
        values = np.asarray(raw, dtype=np.float64).reshape(len(inputs), -1)
        with torch.no_grad():
            base = float(network(background).mean())
        method = (
            f"shap.GradientExplainer (expected gradients, {MLP_SAMPLES} samples per row, "
            f"background {len(pick)} rows of the session; approximate)"
        )
        exact = False
    error = float(np.max(np.abs(base + values.sum(axis=1) - score))) if len(score) else 0.0
    if exact and error > ADDITIVITY_TOLERANCE:
        raise AdditivityError(
            f"{served.uri}: contributions + base value differ from the model output by {error:.3g}"
            f" (tolerance {ADDITIVITY_TOLERANCE})"
        )
    return Contributions(
        keys, values, inputs, list(features.columns), base, score, method, exact, error
    )


def _xgboost_tree_shap(served: ServedModel, features: pd.DataFrame) -> tuple[np.ndarray, float]:
    """XGBoost's own TreeSHAP (the algorithm shap.TreeExplainer implements), over the same trees
    and base score its ``predict`` uses. shap 0.51's TreeExplainer on Qlib's XGBModel under
    xgboost 3.2 missed the served output by 0.255 (tested), so it is not used for XGBoost."""
    import xgboost as xgb

    matrix = xgb.DMatrix(features.to_numpy(dtype=np.float32), feature_names=list(features.columns))
    contributions = np.asarray(served.model.model.predict(matrix, pred_contribs=True), np.float64)
    bias = contributions[:, -1]
    return contributions[:, :-1], float(bias[0]) if len(bias) else 0.0


def session_frame(features: pl.DataFrame, day: date) -> pd.DataFrame:
    """The rows of one session from a scoring-features frame, as the pyfunc takes them."""
    rows = features.filter(pl.col("date") == day)
    if rows.is_empty():
        raise ValueError(f"no feature rows for session {day}")
    return rows.to_pandas()
