"""Predictions and the ensemble signal for a range of sessions, from the lake and the registry."""

from collections.abc import Sequence
from datetime import date

import polars as pl

from qlib_assets.models.platform import audit_log, platform_specs, spec_windows
from qlib_assets.models.registry import STATE_TAG, ModelRegistry
from qlib_assets.models.specs import ModelSpec
from qlib_assets.online.ensemble import average_ensemble
from qlib_assets.online.predictions import PredictionResult, predict_sessions, scoring_features
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake

SIGNAL = "signal"


def predictions_asset(spec_name: str) -> str:
    return f"predictions_{spec_name}"


def online_model_uris(settings: Settings, spec: ModelSpec) -> dict[str, str]:
    """Window key -> URI of the newest non-archived registered version trained for it."""
    registry = ModelRegistry(settings.mlflow_uri, audit_log(settings))
    newest: dict[str, int] = {}
    for mv in registry.search(spec=spec.name):
        key = mv.tags.get("window")
        if key is None or mv.tags.get(STATE_TAG) == "archived":
            continue
        newest[key] = max(newest.get(key, 0), int(mv.version))
    return {key: f"models:/{spec.name}/{version}" for key, version in newest.items()}


def build_predictions(
    settings: Settings, spec: ModelSpec, days: Sequence[date]
) -> PredictionResult:
    """Scores of ``days`` from each session's online model (PredUpdater semantics)."""
    lake = Lake(settings.lake_dir)
    available = [set(lake.days(source.asset)) for source in spec.features]
    common = sorted(set.intersection(*available)) if available else []
    if not common:
        raise FileNotFoundError(f"{spec.ref}: none of its feature assets is materialized")
    present = [d for d in days if d in set(common)]
    features = (
        scoring_features(lake, spec, present)
        if present
        else pl.DataFrame(schema={"instrument": pl.String(), "date": pl.Date()})
    )
    return predict_sessions(
        spec,
        spec_windows(settings, spec),
        online_model_uris(settings, spec),
        features,
        days,
        common[-1],
        settings.mlflow_uri,
    )


def read_predictions(settings: Settings, days: Sequence[date]) -> dict[str, pl.DataFrame]:
    """Every spec's predictions of ``days`` that exist, by spec name."""
    lake = Lake(settings.lake_dir)
    found = {}
    for name in platform_specs(settings):
        asset = predictions_asset(name)
        have = set(lake.days(asset))
        wanted = [d for d in days if d in have]
        if wanted:
            found[name] = lake.read_days(asset, wanted)
    return found


def build_signal(settings: Settings, days: Sequence[date]) -> pl.DataFrame:
    """Qlib's AverageEnsemble of the specs' scores: per-session z-score, then the mean."""
    predictions = read_predictions(settings, days)
    if not predictions:
        raise FileNotFoundError(f"no spec has predictions for {days[0]} .. {days[-1]}")
    return average_ensemble(predictions)
