"""A small generated market with planted effects, its features and labels in a Parquet lake, and
two of its LightGBM rolling windows trained and registered in MLflow (the third is not)."""

from dataclasses import dataclass
from datetime import date

import pytest
from mlflow import MlflowClient

from qlib_assets.features.alpha158 import compute_alpha158, compute_label
from qlib_assets.market.synthetic import MarketSpec, generate_market
from qlib_assets.models.audit import AuditLog, default_audit_url
from qlib_assets.models.dataset import load_window_frame, window_days
from qlib_assets.models.rolling import Window, rolling_windows
from qlib_assets.models.specs import ModelSpec, RollingSection, load_specs
from qlib_assets.models.tracking import experiment_name, train_and_track
from qlib_assets.storage.lake import Lake

MARKET = MarketSpec(
    instruments=60, start=date(2022, 1, 4), end=date(2023, 6, 30), seed=5, effect_strength=0.15
)
ROLLING = RollingSection(
    step=40, type="sliding", train_sessions=160, valid_sessions=40, trunc_days=3
)
TRAINED_WINDOWS = 2


def small_lgbm_spec() -> ModelSpec:
    """The shipped LightGBM spec on a short rolling layout, one thread, few rounds."""
    spec = load_specs()["lgbm_alpha158"]
    model = spec.model.model_copy(
        update={
            "kwargs": {
                **spec.model.kwargs,
                "num_threads": 1,
                "num_boost_round": 80,
                "early_stopping_rounds": 20,
            }
        }
    )
    return spec.model_copy(update={"model": model, "rolling": ROLLING})


@dataclass(frozen=True)
class OnlineSetup:
    lake: Lake
    sessions: tuple[date, ...]
    spec: ModelSpec
    windows: tuple[Window, ...]
    model_uris: dict[str, str]
    tracking_uri: str


@pytest.fixture(scope="session")
def online(tmp_path_factory: pytest.TempPathFactory) -> OnlineSetup:
    market = generate_market(MARKET)
    days = market.sessions
    lake = Lake(tmp_path_factory.mktemp("online_lake"))
    lake.write_days("alpha158", compute_alpha158(market.bars, sessions=days), days)
    lake.write_days("raw_bars", market.bars, days)
    # The last two sessions have no label yet, as in production.
    lake.write_days("labels", compute_label(market.bars, sessions=days), days[:-2])
    home = tmp_path_factory.mktemp("online_home")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    audit = AuditLog(default_audit_url(home))
    spec = small_lgbm_spec()
    # Without an artifact location, MLflow on SQLite puts artifacts in ./mlruns of the cwd.
    MlflowClient(uri).create_experiment(
        experiment_name(spec), artifact_location=(home / "artifacts").as_uri()
    )
    windows = tuple(rolling_windows(spec.rolling, days, days[-1]))
    uris = {}
    for window in windows[:TRAINED_WINDOWS]:
        data = load_window_frame(lake, spec, window_days(window, days))
        tracked = train_and_track(spec, window, data, tracking_uri=uri, audit=audit, actor="pytest")
        uris[window.key] = tracked.model_uri
    return OnlineSetup(lake, days, spec, windows, uris, uri)
