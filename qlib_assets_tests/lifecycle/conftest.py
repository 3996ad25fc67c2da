"""A small generated market in a real lake, and a home with two LightGBM windows of one spec
trained and registered as candidates (copied per test, so each test owns its registry)."""

import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from mlflow import MlflowClient

from qlib_assets.features.alpha158 import compute_alpha158, compute_label
from qlib_assets.market.synthetic import Market, MarketSpec, generate_market
from qlib_assets.models.dataset import load_window_frame, window_days
from qlib_assets.models.platform import audit_log, platform_sessions, spec_windows
from qlib_assets.models.specs import ModelSpec, dump_spec
from qlib_assets.models.tracking import experiment_name, train_and_track
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake
from qlib_assets_tests.online.conftest import small_lgbm_spec

MARKET = MarketSpec(
    instruments=40, start=date(2022, 1, 4), end=date(2023, 1, 31), seed=11, effect_strength=0.15
)
FEATURE_ASSETS = ("alpha158", "labels", "raw_bars")


@dataclass(frozen=True)
class Template:
    market: Market
    lake_dir: Path
    home: Path
    spec: ModelSpec
    versions: tuple[str, ...]  # the trained windows' versions, oldest window first


def make_settings(home: Path, lake_dir: Path, spec: ModelSpec, **overrides: object) -> Settings:
    settings = Settings(home=home, start_date=MARKET.start, specs_dir=home / "specs", **overrides)
    settings.ensure_dirs()
    (home / "specs").mkdir(exist_ok=True)
    (home / "specs" / f"{spec.name}.yaml").write_text(dump_spec(spec))
    for asset in FEATURE_ASSETS:
        link = settings.lake_dir / asset
        if not link.exists():
            link.symlink_to(lake_dir / asset, target_is_directory=True)
    return settings


def train_version(settings: Settings, spec: ModelSpec, key: str) -> str:
    """Train and register the window with test start ``key``; its version."""
    window = next(w for w in spec_windows(settings, spec) if w.key == key)
    lake = Lake(settings.lake_dir)
    data = load_window_frame(lake, spec, window_days(window, platform_sessions(settings)))
    tracked = train_and_track(
        spec,
        window,
        data,
        tracking_uri=settings.mlflow_uri,
        audit=audit_log(settings),
        actor="pytest",
        artifact_root=settings.mlflow_artifacts,
    )
    return tracked.model_version


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    market = generate_market(MARKET)
    days = market.sessions
    lake_dir = tmp_path_factory.mktemp("lifecycle_lake")
    lake = Lake(lake_dir)
    lake.write_days("alpha158", compute_alpha158(market.bars, sessions=days), days)
    lake.write_days("raw_bars", market.bars, days)
    lake.write_days("labels", compute_label(market.bars, sessions=days), days[:-2])
    spec = small_lgbm_spec()
    home = tmp_path_factory.mktemp("lifecycle_home") / "home"
    settings = make_settings(home, lake_dir, spec)
    MlflowClient(settings.mlflow_uri).create_experiment(
        experiment_name(spec), artifact_location=settings.mlflow_artifacts.as_uri()
    )
    trainable = [w for w in spec_windows(settings, spec) if w.data_end <= days[-3]]
    versions = tuple(train_version(settings, spec, w.key) for w in trainable[:2])
    return Template(market, lake_dir, home, spec, versions)


@pytest.fixture
def home(template: Template, tmp_path: Path) -> Settings:
    """A private copy of the template's home: its registry, audit table and lake links (the
    artifacts stay where the registry points: the template's)."""
    target = tmp_path / "home"
    shutil.copytree(
        template.home, target, symlinks=True, ignore=shutil.ignore_patterns("mlartifacts")
    )
    return make_settings(target, template.lake_dir, template.spec)
