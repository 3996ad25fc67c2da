"""Trained LightGBM (two windows, from the online fixture) and XGBoost (one window) models on a
small generated market with strong planted effects."""

from dataclasses import dataclass

import pytest
from mlflow import MlflowClient

from qlib_assets.models.audit import AuditLog, default_audit_url
from qlib_assets.models.dataset import load_window_frame, window_days
from qlib_assets.models.rolling import rolling_windows
from qlib_assets.models.specs import ModelSpec, load_specs
from qlib_assets.models.tracking import experiment_name, train_and_track
from qlib_assets_tests.online.conftest import ROLLING, OnlineSetup, online

__all__ = ["online"]


@dataclass(frozen=True)
class XgbSetup:
    spec: ModelSpec
    model_uri: str
    tracking_uri: str


def small_xgb_spec() -> ModelSpec:
    """The shipped XGBoost spec on Alpha158 only, a short rolling layout, few rounds."""
    spec = load_specs()["xgb_alpha158_indicators"]
    model = spec.model.model_copy(
        update={
            "kwargs": {**spec.model.kwargs, "nthread": 1},
            "fit_kwargs": {"num_boost_round": 60, "early_stopping_rounds": 20},
        }
    )
    return spec.model_copy(
        update={"model": model, "rolling": ROLLING, "features": spec.features[:1]}
    )


@pytest.fixture(scope="session")
def xgb_model(online: OnlineSetup, tmp_path_factory: pytest.TempPathFactory) -> XgbSetup:
    home = tmp_path_factory.mktemp("xgb_home")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    spec = small_xgb_spec()
    MlflowClient(uri).create_experiment(
        experiment_name(spec), artifact_location=(home / "artifacts").as_uri()
    )
    window = rolling_windows(spec.rolling, online.sessions, online.sessions[-1])[0]
    data = load_window_frame(online.lake, spec, window_days(window, online.sessions))
    tracked = train_and_track(
        spec, window, data, tracking_uri=uri, audit=AuditLog(default_audit_url(home)), actor="t"
    )
    return XgbSetup(spec, tracked.model_uri, uri)
