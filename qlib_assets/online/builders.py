"""Predictions and the ensemble signal for a range of sessions, from the lake and the registry."""

from collections.abc import Sequence
from datetime import date

import polars as pl

# SIGNAL and predictions_asset are re-exported: callers name the online tables through here.
from qlib_assets.asset_keys import SIGNAL as SIGNAL
from qlib_assets.asset_keys import predictions_asset as predictions_asset
from qlib_assets.models.platform import audit_log, platform_specs
from qlib_assets.models.registry import STATE_TAG, ModelRegistry
from qlib_assets.models.specs import ModelSpec
from qlib_assets.online.ensemble import average_ensemble
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake


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
