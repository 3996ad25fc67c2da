"""A small generated market with Alpha158, simple indicators and labels in a real Parquet lake."""

from dataclasses import dataclass
from datetime import date

import polars as pl
import pytest

from qlib_assets.features.alpha158 import compute_alpha158, compute_label
from qlib_assets.market.synthetic import MarketSpec, generate_market
from qlib_assets.models.audit import AuditLog, default_audit_url
from qlib_assets.models.dataset import WindowFrame, load_window_frame, window_days
from qlib_assets.models.rolling import rolling_windows
from qlib_assets.models.specs import ModelSpec, RollingSection, load_specs
from qlib_assets.models.tracking import TrackedWindow, train_and_track
from qlib_assets.storage.lake import Lake

# Stronger planted effects than the default so that 80 instruments suffice for every model.
MARKET = MarketSpec(
    instruments=80, start=date(2022, 1, 4), end=date(2023, 12, 29), seed=1, effect_strength=0.15
)
SMALL_ROLLING = RollingSection(
    step=20, type="sliding", train_sessions=300, valid_sessions=80, trunc_days=3
)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> None:
    """Torch's thread pool thrashes on a shared 2-core machine; one thread is faster here."""
    import torch

    torch.set_num_threads(1)


@dataclass(frozen=True)
class ModelLake:
    lake: Lake
    sessions: tuple[date, ...]


def simple_indicators(bars: pl.DataFrame) -> pl.DataFrame:
    """A stand-in indicator table (lowercase names, like the real one)."""
    close, volume = pl.col("close"), pl.col("volume")
    return bars.sort("instrument", "date").select(
        "instrument",
        "date",
        *((close / close.shift(n).over("instrument") - 1).alias(f"roc_{n}") for n in (1, 5, 20)),
        (volume / volume.rolling_mean(20).over("instrument")).alias("volume_ratio_20"),
    )


@pytest.fixture(scope="session")
def model_lake(tmp_path_factory: pytest.TempPathFactory) -> ModelLake:
    market = generate_market(MARKET)
    lake = Lake(tmp_path_factory.mktemp("lake"))
    days = market.sessions
    lake.write_days("alpha158", compute_alpha158(market.bars, sessions=days), days)
    lake.write_days("indicators", simple_indicators(market.bars), days)
    # The last two sessions have no label yet, as in production.
    lake.write_days("labels", compute_label(market.bars, sessions=days), days[:-2])
    return ModelLake(lake, days)


def small_spec(name: str, **rolling: object) -> ModelSpec:
    """A shipped spec on the small rolling layout; the MLP gets a smaller, faster net."""
    spec = load_specs()[name]
    update: dict[str, object] = {"rolling": SMALL_ROLLING.model_copy(update=rolling)}
    if name.startswith("mlp"):
        kwargs = {
            **spec.model.kwargs,
            "lr": 0.001,
            "weight_decay": 0.001,
            "batch_size": 1024,
            "max_steps": 400,
            "pt_model_kwargs": {"layers": [32]},
        }
        update["model"] = spec.model.model_copy(update={"kwargs": kwargs})
    if name.startswith(("lgbm", "xgb")):
        # One thread: OpenMP's spinning collapses when the test machine is oversubscribed.
        threads = {"num_threads": 1} if name.startswith("lgbm") else {"nthread": 1}
        update["model"] = spec.model.model_copy(
            update={
                "kwargs": {**spec.model.kwargs, **threads},
                "fit_kwargs": {**spec.model.fit_kwargs, "num_boost_round": 150},
            }
        )
    return spec.model_copy(update=update)


@dataclass(frozen=True)
class Tracked:
    tracking_uri: str
    audit: AuditLog
    windows: tuple[TrackedWindow, ...]
    data: tuple[WindowFrame, ...]


@pytest.fixture(scope="session")
def tracked(model_lake: ModelLake, tmp_path_factory: pytest.TempPathFactory) -> Tracked:
    """Two LightGBM windows trained, tracked and registered in a fresh MLflow + audit DB."""
    home = tmp_path_factory.mktemp("home")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    audit = AuditLog(default_audit_url(home))
    spec = small_spec("lgbm_alpha158", step=60)
    days = model_lake.sessions
    results, frames = [], []
    for index, window in enumerate(rolling_windows(spec.rolling, days, days[-3])[:2]):
        data = load_window_frame(model_lake.lake, spec, window_days(window, days))
        frames.append(data)
        results.append(
            train_and_track(
                spec,
                window,
                data,
                tracking_uri=uri,
                audit=audit,
                run_tags={
                    "dagster_run_id": f"run-{index}",
                    "partition_key": window.key,
                    "asset_key": "model_lgbm_alpha158",
                    "code_version": "test",
                },
                landing_files={"landing/bars_2023.parquet": "ab" * 32},
                actor="pytest",
                artifact_root=home / "mlartifacts",
            )
        )
    return Tracked(uri, audit, tuple(results), tuple(frames))
