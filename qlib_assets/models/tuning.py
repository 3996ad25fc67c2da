"""Optuna search over a spec's model kwargs on one window; the best becomes the spec's next version.

The objective is the valid segment's mean daily IC (higher is better). One MLflow parent run per
search, one nested child run per trial (params, metrics, state). The best kwargs are written as
``<specs_dir>/<name>.v<N>.yaml`` with ``version: N`` and ``parent: name@v<N-1>``; ``load_specs``
then serves version N, and older versions stay on disk for reproducibility.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import optuna

from qlib_assets.models.dataset import WindowFrame
from qlib_assets.models.rolling import Window
from qlib_assets.models.specs import ModelSpec, dump_spec, load_spec, spec_versions
from qlib_assets.models.tracking import use_experiment
from qlib_assets.models.training import WindowTrainingError, train_window

SearchSpace = Callable[[optuna.Trial], dict[str, Any]]


def _lightgbm_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 15, 255, log=True),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 20, 500, log=True),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 100.0, log=True),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
    }


def _xgboost_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "eta": trial.suggest_float("eta", 0.01, 0.2, log=True),
        "max_depth": trial.suggest_int("max_depth", 3, 10),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 200.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
    }


def _mlp_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
    }


SEARCH_SPACES: dict[str, SearchSpace] = {
    "LGBModel": _lightgbm_space,
    "XGBModel": _xgboost_space,
    "DNNModelPytorch": _mlp_space,
}


@dataclass(frozen=True)
class TuningResult:
    best_kwargs: dict[str, Any]
    best_value: float
    trials: int
    spec: ModelSpec
    path: Path
    parent_run_id: str


def next_version_path(spec: ModelSpec, specs_dir: Path) -> tuple[int, Path]:
    versions = [s.version for s in spec_versions(spec.name, specs_dir)] or [spec.version]
    version = max(*versions, spec.version) + 1
    return version, specs_dir / f"{spec.name}.v{version}.yaml"


def tune_spec(
    spec: ModelSpec,
    window: Window,
    data: WindowFrame,
    *,
    n_trials: int,
    tracking_uri: str,
    specs_dir: Path,
    seed: int = 0,
    space: SearchSpace | None = None,
    run_tags: Mapping[str, str] | None = None,
    timeout: float | None = None,
    artifact_root: Path | None = None,
) -> TuningResult:
    """Search up to ``n_trials`` kwargs sets on ``window`` (stopping after ``timeout`` seconds);
    write and return the best as a new version."""
    suggest = space or SEARCH_SPACES.get(spec.model.class_name)
    if suggest is None:
        raise ValueError(f"no search space for {spec.model.class_name}; pass space=")
    mlflow.set_tracking_uri(tracking_uri)
    use_experiment(spec, artifact_root)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tags = {"spec": spec.ref, "window": window.key, "kind": "tuning", **dict(run_tags or {})}

    def objective(trial: optuna.Trial) -> float:
        kwargs = {**spec.model.kwargs, **suggest(trial)}
        candidate = spec.model_copy(
            update={"model": spec.model.model_copy(update={"kwargs": kwargs})}
        )
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True, tags=tags):
            mlflow.log_params({f"model.{k}": v for k, v in trial.params.items()})
            try:
                result = train_window(candidate, window, data)
            except WindowTrainingError as exc:
                mlflow.set_tag("error", str(exc)[:5000])
                raise optuna.TrialPruned(str(exc)) from exc
            mlflow.log_metrics(result.metrics())
            return result.valid_ic.ic

    with mlflow.start_run(run_name=f"tune:{spec.name}:{window.key}", tags=tags) as parent:
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
        )
        study.optimize(objective, n_trials=n_trials, timeout=timeout)
        completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not completed:
            raise RuntimeError(f"{spec.ref}: all {n_trials} trials failed on window {window.key}")
        best = study.best_trial
        mlflow.log_params({f"best.{k}": v for k, v in best.params.items()})
        mlflow.log_metric("best_valid_ic", float(best.value or 0.0))
        version, path = next_version_path(spec, specs_dir)
        tuned = spec.model_copy(
            update={
                "version": version,
                "parent": spec.ref,
                "description": f"{spec.description} Tuned on window {window.key} "
                f"({len(completed)} trials, valid IC {best.value:.4f}).".strip(),
                "model": spec.model.model_copy(
                    update={"kwargs": {**spec.model.kwargs, **best.params}}
                ),
            }
        )
        path.write_text(dump_spec(tuned))
        mlflow.log_artifact(str(path), "spec")
    return TuningResult(
        best_kwargs=dict(best.params),
        best_value=float(best.value or 0.0),
        trials=len(completed),
        spec=load_spec(path),
        path=path,
        parent_run_id=parent.info.run_id,
    )
