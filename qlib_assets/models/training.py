"""Fit a spec's Qlib model on one rolling window, with per-iteration metrics on a callback.

How each family streams its metrics while it trains:

* ``LGBModel``: its ``fit`` passes a fixed ``callbacks=`` list to ``lgb.train``, so an extra
  callback collides with it; we call Qlib's own ``_prepare_data`` and run ``lgb.train`` with the
  model's params, its early stopping and one more callback, then set ``model.model``.
* ``XGBModel``: its ``fit`` forwards extra keyword arguments to ``xgb.train``; we pass an
  ``xgb.callback.TrainingCallback``.
* Every other Qlib model (``DNNModelPytorch`` ...): its ``fit`` runs unchanged while Qlib's ``R``
  routes ``R.log_metrics`` to the callback (see ``qlib_metrics``); ``evals_result`` is passed
  only to a ``fit`` that takes it (``LinearModel.fit`` does not, and has no curves).
"""

import contextlib
import inspect
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import polars as pl
import xgboost as xgb
from qlib.data.dataset import DatasetH
from qlib.data.dataset.handler import DataHandlerLP
from qlib.model.base import Model
from qlib.utils import init_instance_by_config

# Qlib's model package prints optional-dependency notices (CatBoost) to stdout when imported,
# which would corrupt `--json` output; they go to stderr instead.
with contextlib.redirect_stdout(sys.stderr):
    from qlib.contrib.model.gbdt import LGBModel
    from qlib.contrib.model.xgboost import XGBModel

from qlib_assets.models.dataset import WindowFrame, build_dataset, segment_rows, to_qlib_frame
from qlib_assets.models.qlib_metrics import MetricCallback, qlib_metrics_to
from qlib_assets.models.rolling import Window
from qlib_assets.models.scoring import ICSummary, daily_ic
from qlib_assets.models.specs import ModelSpec


class WindowTrainingError(RuntimeError):
    """Training of one window failed; the message names spec, window and Qlib's error."""


@dataclass
class TrainingResult:
    spec: ModelSpec
    window: Window
    model: Model
    feature_columns: tuple[str, ...]
    valid_pred: pd.Series
    valid_label: pd.Series
    valid_ic: ICSummary
    curves: dict[str, list[float]]
    curve_metric: str
    best_iteration: int | None
    feature_importance: pd.Series | None
    dataset: DatasetH
    prepare_seconds: float
    fit_seconds: float
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def infer_processors(self) -> list[Any]:
        """The window's fitted infer processors, which serving must apply before predicting."""
        return list(self.dataset.handler.infer_processors)

    def metrics(self) -> dict[str, float]:
        out = {
            "valid_ic": self.valid_ic.ic,
            "valid_rank_ic": self.valid_ic.rank_ic,
            "valid_icir": self.valid_ic.icir,
            "valid_rank_icir": self.valid_ic.rank_icir,
        }
        for name, values in self.curves.items():
            if values:
                out[f"final_{name}_{self.curve_metric}"] = float(values[-1])
        if self.best_iteration is not None:
            out["best_iteration"] = float(self.best_iteration)
        return out


def _ignore(step: int, metrics: Mapping[str, float]) -> None:
    """The default metric callback: training needs none."""


def _model_kwargs(spec: ModelSpec, n_features: int) -> dict[str, Any]:
    kwargs = dict(spec.model.kwargs)
    if "pt_model_kwargs" in kwargs:
        # Qlib's MLP needs its input size, which only the assembled feature set knows.
        kwargs["pt_model_kwargs"] = {**kwargs["pt_model_kwargs"], "input_dim": n_features}
    if (
        spec.model.class_name == "DNNModelPytorch"
        and kwargs.get("scheduler", "default") == "default"
    ):
        # Qlib picks the scheduler signature by comparing version strings ("2.13.0" <= "2.6.0"
        # is True) and passes ``verbose``, which torch >= 2.7 rejects. The same default
        # scheduler, built without it:
        kwargs["scheduler"] = partial(
            _torch_plateau_scheduler(),
            mode="min",
            factor=0.5,
            patience=10,
            threshold=0.0001,
            threshold_mode="rel",
            cooldown=0,
            min_lr=0.00001,
            eps=1e-08,
        )
    return kwargs


def _torch_plateau_scheduler() -> type:
    from torch.optim.lr_scheduler import ReduceLROnPlateau

    return ReduceLROnPlateau


def _lgb_stream(on_metric: MetricCallback) -> Any:
    def callback(env: lgb.callback.CallbackEnv) -> None:
        metrics = {
            f"{data}_{name}": float(value) for data, name, value, _ in env.evaluation_result_list
        }
        on_metric(env.iteration + 1, metrics)

    # After record_evaluation (20), before early_stopping (30), which raises on its last round.
    callback.order = 25  # type: ignore[attr-defined]
    return callback


class _XGBStream(xgb.callback.TrainingCallback):
    def __init__(self, on_metric: MetricCallback) -> None:
        super().__init__()
        self._on_metric = on_metric

    def after_iteration(self, model: Any, epoch: int, evals_log: Mapping[str, Any]) -> bool:
        metrics = {
            f"{data}_{name}": float(values[-1])
            for data, by_metric in evals_log.items()
            for name, values in by_metric.items()
        }
        self._on_metric(epoch + 1, metrics)
        return False


def _fit_lightgbm(
    model: LGBModel, dataset: DatasetH, fit_kwargs: Mapping[str, Any], on_metric: MetricCallback
) -> tuple[dict[str, list[float]], str, int]:
    sets = model._prepare_data(dataset)
    data, names = zip(*sets, strict=True)
    record: dict[str, Any] = {}
    rounds = fit_kwargs.get("early_stopping_rounds", model.early_stopping_rounds)
    model.model = lgb.train(
        model.params,
        data[0],
        num_boost_round=fit_kwargs.get("num_boost_round", model.num_boost_round),
        valid_sets=list(data),
        valid_names=list(names),
        callbacks=[
            lgb.early_stopping(rounds, verbose=False),
            lgb.record_evaluation(record),
            _lgb_stream(on_metric),
        ],
    )
    metric = next(iter(record["train"]))
    curves = {name: list(record[name][metric]) for name in names}
    return curves, metric, int(model.model.best_iteration)


def _fit_xgboost(
    model: XGBModel, dataset: DatasetH, fit_kwargs: Mapping[str, Any], on_metric: MetricCallback
) -> tuple[dict[str, list[float]], str, int]:
    record: dict[str, Any] = {}
    model.fit(
        dataset,
        evals_result=record,
        verbose_eval=False,
        callbacks=[_XGBStream(on_metric)],
        **fit_kwargs,
    )
    metric = str(model._params.get("eval_metric", "rmse"))
    curves = {"train": list(record["train"]), "valid": list(record["valid"])}
    return curves, metric, int(model.model.best_iteration)


def _fit_generic(
    model: Model, dataset: DatasetH, fit_kwargs: Mapping[str, Any], on_metric: MetricCallback
) -> tuple[dict[str, list[float]], str, int | None]:
    record: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="qlib_fit_") as scratch, qlib_metrics_to(on_metric):
        extra = dict(fit_kwargs)
        if isinstance(model, _torch_model_types()):
            # Qlib's default checkpoint path is ~/tmp; keep checkpoints inside this call.
            extra.setdefault("save_path", str(Path(scratch) / "checkpoint.pt"))
            extra.setdefault("verbose", False)
        if "evals_result" in inspect.signature(model.fit).parameters:
            extra["evals_result"] = record
        model.fit(dataset, **extra)
    curves = {k: [float(v) for v in record[k]] for k in ("train", "valid") if k in record}
    return curves, "loss", getattr(model, "best_step", None)


def _torch_model_types() -> tuple[type, ...]:
    from qlib.contrib.model.pytorch_nn import DNNModelPytorch

    return (DNNModelPytorch,)


def _importance(model: Model, columns: tuple[str, ...]) -> pd.Series | None:
    if isinstance(model, LGBModel):
        gain = model.model.feature_importance(importance_type="gain")
        return pd.Series(gain, index=list(columns)).sort_values(ascending=False)
    if isinstance(model, XGBModel):
        # XGBoost names the columns f0, f1, ... when trained on a bare array.
        scores = model.model.get_score(importance_type="gain")
        gain = np.array([scores.get(f"f{i}", 0.0) for i in range(len(columns))])
        return pd.Series(gain, index=list(columns)).sort_values(ascending=False)
    return None


def _window_frame_slice(frame: WindowFrame, window: Window) -> WindowFrame:
    sliced = frame.frame.filter(
        pl.col("date").is_between(window.data_start, max(window.data_end, window.test[1]))
    )
    return WindowFrame(sliced, frame.feature_columns, frame.label_column, frame.manifest)


def train_window(
    spec: ModelSpec,
    window: Window,
    data: WindowFrame,
    on_metric: MetricCallback = _ignore,
) -> TrainingResult:
    """Fit ``spec``'s Qlib model on ``window``: train segment, early stopping on valid.

    ``data`` must cover the window's train and valid sessions (more is sliced off; rows of the
    test segment, when present, are kept so the dataset can also predict it). Any failure is
    raised as ``WindowTrainingError`` naming the spec, the window and the original error.
    """
    try:
        started = time.perf_counter()
        frame = _window_frame_slice(data, window)
        columns = frame.feature_columns
        qlib_frame = to_qlib_frame(frame)
        dataset = build_dataset(spec, window, qlib_frame)
        model: Model = init_instance_by_config(
            {**spec.model.qlib_config(), "kwargs": _model_kwargs(spec, len(columns))}
        )
        rows = {seg: segment_rows(dataset, seg) for seg in ("train", "valid")}
        for seg, count in rows.items():
            if count == 0:
                raise ValueError(f"the {seg} segment has no rows with a label")
        prepared = time.perf_counter()
        fit_kwargs = spec.model.fit_kwargs
        if isinstance(model, LGBModel):
            curves, metric, best = _fit_lightgbm(model, dataset, fit_kwargs, on_metric)
        elif isinstance(model, XGBModel):
            curves, metric, best = _fit_xgboost(model, dataset, fit_kwargs, on_metric)
        else:
            curves, metric, best = _fit_generic(model, dataset, fit_kwargs, on_metric)
        fitted = time.perf_counter()
        valid_pred = model.predict(dataset, segment="valid")
        valid_label = dataset.prepare("valid", col_set="label", data_key=DataHandlerLP.DK_R)
        valid_label = valid_label.iloc[:, 0].reindex(valid_pred.index)
        summary = daily_ic(valid_pred, valid_label)
    except Exception as exc:
        raise WindowTrainingError(
            f"{spec.ref} window {window.key} (train {window.train[0]}..{window.train[1]}, "
            f"valid {window.valid[0]}..{window.valid[1]}): {type(exc).__name__}: {exc}"
        ) from exc
    return TrainingResult(
        spec=spec,
        window=window,
        model=model,
        feature_columns=columns,
        valid_pred=valid_pred,
        valid_label=valid_label,
        valid_ic=summary,
        curves=curves,
        curve_metric=metric,
        best_iteration=best,
        feature_importance=_importance(model, columns),
        dataset=dataset,
        prepare_seconds=(prepared - started) + (time.perf_counter() - fitted),
        fit_seconds=fitted - prepared,
        rows=rows,
    )
