"""Optuna over LightGBM kwargs: nested MLflow trial runs and a new spec version on disk."""

import shutil
from pathlib import Path

from mlflow.tracking import MlflowClient

from qlib_assets.models.dataset import load_window_frame, window_days
from qlib_assets.models.rolling import rolling_windows
from qlib_assets.models.specs import SPECS_DIR, load_specs
from qlib_assets.models.tuning import tune_spec
from qlib_assets_tests.models.conftest import ModelLake, small_spec


def test_three_trials_give_nested_runs_and_spec_v2(model_lake: ModelLake, tmp_path: Path) -> None:
    specs_dir = tmp_path / "specs"
    specs_dir.mkdir()
    shutil.copy(SPECS_DIR / "lgbm_alpha158.yaml", specs_dir)
    spec = small_spec("lgbm_alpha158")
    window = rolling_windows(spec.rolling, model_lake.sessions, model_lake.sessions[-3])[0]
    data = load_window_frame(model_lake.lake, spec, window_days(window, model_lake.sessions))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    result = tune_spec(
        spec,
        window,
        data,
        n_trials=3,
        tracking_uri=uri,
        specs_dir=specs_dir,
        artifact_root=tmp_path / "mlartifacts",
    )

    assert result.trials == 3
    assert result.path == specs_dir / "lgbm_alpha158.v2.yaml"
    assert result.spec.version == 2 and result.spec.parent == "lgbm_alpha158@v1"
    for key, value in result.best_kwargs.items():
        assert result.spec.model.kwargs[key] == value
    assert load_specs(specs_dir)["lgbm_alpha158"].version == 2

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("qlib_assets/lgbm_alpha158").experiment_id]
    )
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result.parent_run_id]
    assert len(children) == 3
    assert all(r.info.status == "FINISHED" for r in children)
    best = max(r.data.metrics["valid_ic"] for r in children)
    assert best == result.best_value
