"""Storage locations from settings; the provider's writer lock holds across processes."""

import subprocess
import sys
from pathlib import Path

import filelock
import mlflow
import polars as pl
import pytest

from qlib_assets.market.synthetic import Market
from qlib_assets.models.specs import load_specs
from qlib_assets.models.tracking import experiment_name, use_experiment
from qlib_assets.operations.config import OperationsSettings
from qlib_assets.operations.locations import artifact_location, is_url
from qlib_assets.settings import Settings
from qlib_assets.storage.qlib_bin import LOCK_NAME, QlibProviderWriter


def test_lake_provider_and_mlflow_locations_come_from_settings(tmp_path: Path) -> None:
    ops = OperationsSettings(
        lake_dir=tmp_path / "shared" / "lake",
        qlib_provider_dir=tmp_path / "shared" / "qlib",
        mlflow_tracking_uri="postgresql+psycopg2://postgres@db:5432/mlflow",
        mlflow_artifact_root="s3://bucket/mlflow",
    )
    settings = Settings(home=tmp_path / "home", operations=ops)
    assert settings.lake_dir == tmp_path / "shared" / "lake"
    assert settings.qlib_data_dir == tmp_path / "shared" / "qlib"
    assert settings.mlflow_uri == "postgresql+psycopg2://postgres@db:5432/mlflow"
    assert settings.mlflow_artifacts == "s3://bucket/mlflow"
    default = Settings(home=tmp_path / "home")
    assert default.lake_dir == (tmp_path / "home" / "lake").resolve()
    assert default.mlflow_artifacts == (tmp_path / "home" / "mlartifacts").resolve()


def test_artifact_location_keeps_urls_and_creates_paths(tmp_path: Path) -> None:
    assert is_url("s3://bucket/x") and is_url("file:///x")
    assert not is_url("/x") and not is_url(tmp_path) and not is_url("C:/x")
    assert artifact_location("s3://bucket/mlflow/", "spec") == "s3://bucket/mlflow/spec"
    local = artifact_location(tmp_path / "arts", "spec")
    assert local == (tmp_path / "arts" / "spec").as_uri()
    assert (tmp_path / "arts" / "spec").is_dir()


def test_experiment_created_under_an_artifact_url(tmp_path: Path) -> None:
    spec = load_specs()["lgbm_alpha158"]
    root = (tmp_path / "remote").as_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        use_experiment(spec, root)
        experiment = mlflow.get_experiment_by_name(experiment_name(spec))
    finally:
        mlflow.set_tracking_uri(None)
    assert experiment is not None
    assert experiment.artifact_location == f"{root}/{spec.name}"


def test_provider_writer_waits_for_a_writer_in_another_process(
    tmp_path: Path, small_market: Market
) -> None:
    root = tmp_path / "qlib"
    root.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, filelock\n"
            f"lock = filelock.FileLock({str(root / LOCK_NAME)!r}); lock.acquire()\n"
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        day = small_market.sessions[0]
        bars = small_market.bars.filter(pl.col("date") == day)
        writer = QlibProviderWriter(root, lock_timeout=0.5)
        with pytest.raises(filelock.Timeout):
            writer.sync(bars, [day])
        assert not (root / "calendars").exists()
    finally:
        holder.kill()
        holder.wait()
