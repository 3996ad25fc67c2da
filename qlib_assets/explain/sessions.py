"""Explanations of one spec's served scores for a session, from the lake and the registry.

Which model version served a session is read in one place, :func:`served_model_uri`: the
``model_version`` the session's prediction rows record (the lifecycle decides it).
"""

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from qlib_assets.explain.contributions import Contributions, explain_rows, session_frame
from qlib_assets.explain.families import by_family, family_map, global_importance
from qlib_assets.explain.model_input import ServedModel, load_served_model, processed_input
from qlib_assets.settings import Settings

LIME_FEATURES = 10
LIME_SAMPLES = 2000


def served_model_uri(settings: Settings, spec_name: str, day: date) -> str:
    """The registered version whose score of ``day`` is served, as its prediction rows say."""
    from qlib_assets.asset_keys import predictions_asset
    from qlib_assets.lifecycle.served import VERSION
    from qlib_assets.storage.lake import Lake

    lake = Lake(settings.lake_dir)
    asset = predictions_asset(spec_name)
    if not lake.exists(asset, day):
        raise ValueError(f"{spec_name}: no predictions for {day}")
    versions = lake.read_days(asset, [day]).get_column(VERSION).drop_nulls().unique().to_list()
    if len(versions) != 1:
        raise ValueError(
            f"{spec_name}: the predictions of {day} name {len(versions)} model versions, "
            "expected one"
        )
    return f"models:/{spec_name}/{versions[0]}"


def _spec(settings: Settings, spec_name: str) -> Any:
    from qlib_assets.models.platform import platform_specs

    specs = platform_specs(settings)
    if spec_name not in specs:
        raise ValueError(f"unknown spec {spec_name!r}: known specs are {', '.join(sorted(specs))}")
    return specs[spec_name]


def _session_features(settings: Settings, spec_name: str, day: date) -> pl.DataFrame:
    from qlib_assets.online.builders import predictions_asset
    from qlib_assets.online.predictions import scoring_features
    from qlib_assets.storage.lake import Lake

    spec = _spec(settings, spec_name)
    lake = Lake(settings.lake_dir)
    if not lake.exists(predictions_asset(spec_name), day):
        have = lake.days(predictions_asset(spec_name))
        latest = f"; latest with predictions: {have[-1]}" if have else "; none has any"
        raise ValueError(f"{spec_name}: no predictions for {day}{latest}")
    return scoring_features(lake, spec, [day])


def explain_session(settings: Settings, spec_name: str, day: date) -> Contributions:
    """SHAP contributions of every instrument the spec scored on ``day``."""
    features = _session_features(settings, spec_name, day)
    served = load_served_model(served_model_uri(settings, spec_name, day), settings.mlflow_uri)
    return explain_rows(served, session_frame(features, day))


@dataclass(frozen=True)
class InstanceExplanation:
    """One prediction: its SHAP contributions (top by |value|) and LIME's local weights."""

    spec: str
    day: date
    instrument: str
    model_uri: str
    score: float
    base_value: float
    shap: pl.DataFrame = field(repr=False)
    lime: pl.DataFrame = field(repr=False)
    lime_intercept: float
    lime_r2: float
    shap_method: str


def explain_instance(
    settings: Settings, spec_name: str, day: date, instrument: str, top: int = LIME_FEATURES
) -> InstanceExplanation:
    """SHAP and LIME for one (spec, session, instrument), both on the processed model input.

    LIME (``lime_tabular``, regression, fixed seed) fits a local linear model around the row
    from ``LIME_SAMPLES`` perturbations drawn from the session's own processed rows.
    """
    features = _session_features(settings, spec_name, day)
    frame = session_frame(features, day)
    if instrument not in set(frame["instrument"]):
        raise ValueError(
            f"{spec_name}: instrument {instrument!r} is not in the session {day} "
            f"({len(frame)} instruments scored)"
        )
    uri = served_model_uri(settings, spec_name, day)
    served = load_served_model(uri, settings.mlflow_uri)
    row = frame[frame["instrument"] == instrument]
    contributions = explain_rows(served, row)
    shap_table = (
        contributions.long()
        .select("feature", "value", "contribution")
        .sort(pl.col("contribution").abs(), descending=True)
        .head(top)
    )
    weights, intercept, r2 = _lime(served, frame, instrument, top)
    return InstanceExplanation(
        spec_name,
        day,
        instrument,
        uri,
        float(contributions.score[0]),
        contributions.base_value,
        shap_table,
        weights,
        intercept,
        r2,
        contributions.method,
    )


def _lime(
    served: ServedModel, frame: Any, instrument: str, top: int
) -> tuple[pl.DataFrame, float, float]:
    import pandas as pd
    from lime.lime_tabular import LimeTabularExplainer

    from qlib_assets.explain.model_input import raw_output

    processed = processed_input(served, frame)
    data = processed.to_numpy(dtype=np.float64)
    columns = list(processed.columns)
    explainer = LimeTabularExplainer(
        data, mode="regression", feature_names=columns, random_state=0, discretize_continuous=True
    )
    at = int(np.flatnonzero(frame["instrument"].to_numpy() == instrument)[0])

    def predict(rows: np.ndarray) -> np.ndarray:
        return raw_output(served, pd.DataFrame(rows.astype(np.float32), columns=columns))

    found = explainer.explain_instance(
        data[at], predict, num_features=top, num_samples=LIME_SAMPLES
    )
    weights = pl.DataFrame(
        found.as_list(), schema={"condition": pl.String(), "weight": pl.Float64()}, orient="row"
    )
    return weights, float(found.intercept[0]), float(found.score)


def family_table(contributions: Contributions) -> pl.DataFrame:
    """``family, mean_abs``: the session's global importance per factor family."""
    families = family_map(contributions.features)
    return global_importance(by_family(contributions.long(), families), key="family")


@dataclass(frozen=True)
class SessionsExplained:
    """``table``: wide contributions of every explained session; ``latest``: the last one's
    contributions (for pictures); ``skipped``: session -> reason."""

    table: pl.DataFrame = field(repr=False)
    latest: Contributions | None
    skipped: dict[date, str]


def build_explanations(settings: Settings, spec_name: str, days: list[date]) -> SessionsExplained:
    """Contributions of every session of ``days`` the spec has predictions for."""
    tables = []
    latest = None
    skipped: dict[date, str] = {}
    for day in days:
        try:
            latest = explain_session(settings, spec_name, day)
        except ValueError as exc:
            skipped[day] = str(exc)
            continue
        tables.append(latest.wide())
    table = pl.concat(tables) if tables else pl.DataFrame()
    return SessionsExplained(table, latest, skipped)
