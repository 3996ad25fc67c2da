"""A platform home with a small generated market's Alpha158 features in the lake and two
LightGBM versions of ``lgbm_alpha158`` registered in MLflow (v1 champion), built once; each
test serves from its own copy of the registry so alias moves do not leak between tests."""

import pickle
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from qlib_assets.features.alpha158 import compute_alpha158, compute_label
from qlib_assets.lifecycle.gates import gate_version
from qlib_assets.lifecycle.promotion import promote
from qlib_assets.market.synthetic import MarketSpec, generate_market
from qlib_assets.models.dataset import load_window_frame, window_days
from qlib_assets.models.platform import audit_log
from qlib_assets.models.pyfunc import BUNDLE, QlibPyfuncModel, signature
from qlib_assets.models.registry import STATE_TAG, ModelRegistry
from qlib_assets.models.rolling import rolling_windows
from qlib_assets.models.specs import ModelSpec, RollingSection, load_specs
from qlib_assets.models.tracking import experiment_name, train_and_track
from qlib_assets.serving.server import ThreadServer
from qlib_assets.settings import LifecycleSettings, ServingSettings, Settings
from qlib_assets.storage.lake import Lake

MARKET = MarketSpec(
    instruments=40, start=date(2022, 1, 4), end=date(2022, 9, 30), seed=7, effect_strength=0.15
)
ROLLING = RollingSection(
    step=20, type="sliding", train_sessions=80, valid_sessions=20, trunc_days=3
)
SPEC = "lgbm_alpha158"
# A 30-round model on 40 instruments may have a negative valid IC; the gates' other checks stay.
LOW_IC_FLOOR = LifecycleSettings(ic_floor=-1.0)
ADMIN_TOKEN = "test-admin-token"


def tiny_spec() -> ModelSpec:
    spec = load_specs()[SPEC]
    kwargs = {**spec.model.kwargs, "num_threads": 1, "num_boost_round": 30}
    model = spec.model.model_copy(update={"kwargs": kwargs})
    return spec.model_copy(update={"model": model, "rolling": ROLLING})


@dataclass(frozen=True)
class Platform:
    home: Path
    sessions: tuple[date, ...]
    instruments: tuple[str, ...]
    versions: tuple[str, ...]


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    home = tmp_path_factory.mktemp("serving_platform")
    settings = Settings(home=home, start_date=MARKET.start, lifecycle=LOW_IC_FLOOR)
    settings.ensure_dirs()
    market = generate_market(MARKET)
    days = market.sessions
    lake = Lake(settings.lake_dir)
    lake.write_days("alpha158", compute_alpha158(market.bars, sessions=days), days)
    lake.write_days("labels", compute_label(market.bars, sessions=days), days[:-2])
    spec = tiny_spec()
    MlflowClient(settings.mlflow_uri).create_experiment(
        experiment_name(spec), artifact_location=(home / "mlartifacts").as_uri()
    )
    audit = audit_log(settings)
    versions = []
    for window in rolling_windows(spec.rolling, days, days[-1])[:2]:
        data = load_window_frame(lake, spec, window_days(window, days))
        tracked = train_and_track(
            spec, window, data, tracking_uri=settings.mlflow_uri, audit=audit, actor="pytest"
        )
        versions.append(tracked.model_version)
    served = load_specs()[SPEC]
    for version in versions:
        assert gate_version(settings, served, version).passed
    promote(settings, served, versions[0], effective_from=days[-5], actor="pytest", reason="first")
    instruments = tuple(sorted(market.bars.get_column("instrument").unique().to_list()))
    return Platform(home, days, instruments, tuple(versions))


def copy_home(platform: Platform, target: Path) -> Path:
    """A home sharing the lake and artifacts but with its own registry and audit databases."""
    target.mkdir(parents=True)
    for name in ("mlflow.db", "registry_audit.db"):
        shutil.copy2(platform.home / name, target / name)
    for name in ("lake", "lifecycle"):
        (target / name).symlink_to(platform.home / name)
    return target


def serving_settings(home: Path, env: str = "dev", **serving: Any) -> Settings:
    config = {
        "specs": [SPEC],
        "poll_seconds": 0.2,
        "admin_token": ADMIN_TOKEN,
        "flush_seconds": 0.1,
        **serving,
    }
    return Settings(
        home=home,
        start_date=MARKET.start,
        env=env,
        serving=ServingSettings(**config),
        lifecycle=LOW_IC_FLOOR,
    )


@pytest.fixture
def home(platform: Platform, tmp_path: Path) -> Path:
    return copy_home(platform, tmp_path / "home")


@pytest.fixture
def server(home: Path) -> Iterator[ThreadServer]:
    with ThreadServer(serving_settings(home)) as running:
        yield running


class FaultyModel(QlibPyfuncModel):
    """A planted faulty version: the champion's model that raises on one or three rows."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        if len(model_input) in (1, 3):
            raise RuntimeError(f"planted fault: {len(model_input)} rows")
        return super().predict(context, model_input, params)


def plant_faulty_version(settings: Settings, like: str) -> str:
    """Register a ``FaultyModel`` around version ``like``'s bundle, with its tags (so it passes
    the compatibility check and scores the fixed sample)."""
    registry = ModelRegistry(settings.mlflow_uri, audit_log(settings))
    source = registry.version(SPEC, like)
    local = Path(
        mlflow.artifacts.download_artifacts(
            f"models:/{SPEC}/{like}", tracking_uri=settings.mlflow_uri
        )
    )
    bundle = next(local.rglob(f"{BUNDLE}.pkl"))
    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    mlflow.set_experiment(experiment_name(tiny_spec()))
    with open(bundle, "rb") as handle:
        columns = pickle.load(handle)["columns"]
    with mlflow.start_run(run_name="planted-faulty"):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=FaultyModel(),
            artifacts={BUNDLE: str(bundle)},
            signature=signature(columns),
            pip_requirements=["mlflow"],
            registered_model_name=SPEC,
        )
    version = str(info.registered_model_version)
    for key, value in source.tags.items():
        if key != STATE_TAG:
            registry.client.set_model_version_tag(SPEC, version, key, value)
    registry.transition(SPEC, version, "candidate", "pytest", "planted faulty version")
    return version
