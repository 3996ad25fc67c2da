"""Train one (spec, window) inside its own MLflow run and register the result as a candidate.

The run carries the caller's tags (Dagster run id, partition key, asset key, code version), the
spec's params, the per-iteration metrics, one ``log_input`` per input asset and the model. Input
digests are OUR SHA-256 over the exact Parquet files read (MLflow's own digest samples rows, and
its digest column holds 36 characters: the first 32 hex digits go there, the full hash and
the per-partition hashes are in the input's tags and in ``lineage/inputs.json``).

The model is an MLflow pyfunc (``qlib_assets.models.pyfunc``): the Qlib model plus the window's
fitted infer processors, so ``mlflow.pyfunc.load_model(uri).predict(frame)`` works on CPU on a
raw feature frame for every model family.

MLflow's fluent API is process-global (like Qlib's ``R``); runs are started and ended here only.
"""

import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd

from qlib_assets.models.audit import AuditLog
from qlib_assets.models.dataset import InputManifest, WindowFrame, feature_schema_hash
from qlib_assets.models.pyfunc import BUNDLE, QlibPyfuncModel, signature, write_bundle
from qlib_assets.models.qlib_metrics import MetricCallback
from qlib_assets.models.registry import ModelRegistry, library_versions
from qlib_assets.models.report import render_report
from qlib_assets.models.rolling import Window
from qlib_assets.models.specs import ModelSpec
from qlib_assets.models.training import TrainingResult, train_window
from qlib_assets.operations.locations import artifact_location

MLFLOW_DIGEST_CHARS = 32
FLUSH_EVERY_STEPS = 50
FLUSH_EVERY_SECONDS = 2.0


@dataclass(frozen=True)
class TrackedWindow:
    result: TrainingResult
    run_id: str
    model_name: str
    model_version: str
    model_uri: str
    report_artifact: str
    report_path: Path | None = None


def experiment_name(spec: ModelSpec) -> str:
    return f"qlib_assets/{spec.name}"


def use_experiment(spec: ModelSpec, artifact_root: Path | str | None) -> None:
    """Make the spec's experiment current, creating it with artifacts under ``artifact_root``.

    Without an explicit location an SQLite-tracked experiment stores artifacts in ./mlruns of
    whatever folder the process started in.
    """
    name = experiment_name(spec)
    if artifact_root is not None and mlflow.get_experiment_by_name(name) is None:
        location = artifact_location(artifact_root, spec.name)
        mlflow.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(name)


class _MetricStream:
    """Batches step metrics into MLflow (one SQLite write per batch, not per iteration)."""

    def __init__(self, run_id: str, forward: MetricCallback | None) -> None:
        self._client = mlflow.MlflowClient()
        self._run_id = run_id
        self._forward = forward
        self._pending: list[mlflow.entities.Metric] = []
        self._flushed_at = time.monotonic()

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
        now = int(time.time() * 1000)
        self._pending.extend(
            mlflow.entities.Metric(name, value, now, step) for name, value in metrics.items()
        )
        if self._forward is not None:
            self._forward(step, metrics)
        due = time.monotonic() - self._flushed_at > FLUSH_EVERY_SECONDS
        if len(self._pending) >= FLUSH_EVERY_STEPS or due:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._client.log_batch(self._run_id, metrics=self._pending)
            self._pending = []
        self._flushed_at = time.monotonic()


def _log_inputs(data: WindowFrame, manifest: InputManifest) -> None:
    head = data.frame.head(5).to_pandas()
    for asset in manifest.assets():
        digest = manifest.digest(asset)
        partitions = manifest.partitions(asset)
        source = str(Path(next(f.path for f in manifest.files if f.asset == asset)).parent)
        dataset = mlflow.data.from_pandas(
            head, source=source, name=asset, digest=digest[:MLFLOW_DIGEST_CHARS]
        )
        mlflow.log_input(
            dataset,
            context="training",
            tags={
                "sha256": digest,
                "partitions": str(len(partitions)),
                "first_partition": min(partitions),
                "last_partition": max(partitions),
            },
        )


def _version_tags(
    spec: ModelSpec, result: TrainingResult, manifest: InputManifest, run_tags: Mapping[str, str]
) -> dict[str, str]:
    window = result.window
    tags: dict[str, str] = {
        "spec": spec.name,
        "spec_version": str(spec.version),
        "spec_digest": spec.digest(),
        "model_class": f"{spec.model.module_path}.{spec.model.class_name}",
        "window": window.key,
        "train": f"{window.train[0]}..{window.train[1]}",
        "valid": f"{window.valid[0]}..{window.valid[1]}",
        "test": f"{window.test[0]}..{window.test[1]}",
        "feature_schema_hash": feature_schema_hash(result.feature_columns),
        "feature_count": str(len(result.feature_columns)),
    }
    tags.update(
        {
            **{f"data_version.{asset}": manifest.digest(asset) for asset in manifest.assets()},
            **{f"metric.{k}": f"{v:.10g}" for k, v in result.metrics().items()},
            **{f"lib.{k}": v for k, v in library_versions(tags["model_class"]).items()},
        }
    )
    tags.update({k: v for k, v in run_tags.items() if k in ("code_version", "partition_key")})
    return tags


def train_and_track(
    spec: ModelSpec,
    window: Window,
    data: WindowFrame,
    *,
    tracking_uri: str,
    audit: AuditLog,
    run_tags: Mapping[str, str] | None = None,
    on_metric: MetricCallback | None = None,
    landing_files: Mapping[str, str] | None = None,
    raw_bars: Mapping[str, Mapping[str, str]] | None = None,
    actor: str = "training",
    report_dir: Path | None = None,
    artifact_root: Path | str | None = None,
) -> TrackedWindow:
    """Train ``window``, track it in MLflow, register it as a ``candidate`` version.

    ``run_tags``: e.g. ``dagster_run_id``, ``partition_key``, ``asset_key``, ``code_version``.
    ``landing_files``: path -> SHA-256 of the landing files the inputs came from (lineage).
    ``raw_bars``: day -> {sha256, written_at, run_id} of the raw_bars partition versions the
    inputs were computed from (``window_training.raw_bars_lineage``), for ``models reproduce``.
    ``report_dir``: keep the training report PNG there too (it is always logged to MLflow).
    ``artifact_root``: where a new experiment keeps its artifacts (default: MLflow's ./mlruns).
    The run ends FINISHED, or FAILED with the error in its ``error`` tag, and the error is raised.
    """
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    use_experiment(spec, artifact_root)
    manifest = data.manifest
    tags = {"spec": spec.ref, "window": window.key, **dict(run_tags or {})}
    model_class = f"{spec.model.module_path}.{spec.model.class_name}"
    run = mlflow.start_run(run_name=f"{spec.name}:{window.key}", tags=tags)
    status = "FAILED"
    try:
        mlflow.log_params(spec.params())
        stream = _MetricStream(run.info.run_id, on_metric)
        if manifest.files:
            _log_inputs(data, manifest)
        try:
            result = train_window(spec, window, data, stream)
        finally:
            stream.flush()
        mlflow.log_metrics(result.metrics())
        mlflow.log_dict(
            {
                "partitions": {a: manifest.partitions(a) for a in manifest.assets()},
                "landing_files": dict(landing_files or {}),
                "raw_bars": {day: dict(v) for day, v in (raw_bars or {}).items()},
                "feature_columns": list(result.feature_columns),
            },
            "lineage/inputs.json",
        )
        with tempfile.TemporaryDirectory(prefix="qlib_model_") as scratch:
            report = render_report(
                result, (report_dir or Path(scratch)) / f"report_{window.key}.png"
            )
            mlflow.log_artifact(str(report), "report")
            bundle = Path(scratch) / "bundle.pkl"
            write_bundle(bundle, result.model, result.infer_processors, result.feature_columns)
            mlflow.log_text(
                result.valid_pred.rename("score").reset_index().to_csv(index=False),
                "valid_predictions.csv",
            )
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=QlibPyfuncModel(),
                artifacts={BUNDLE: str(bundle)},
                signature=signature(result.feature_columns),
                # Explicit requirements: MLflow's inference re-imports the model, seconds each.
                pip_requirements=[
                    f"{name}=={ver}" for name, ver in library_versions(model_class).items()
                ],
                registered_model_name=spec.name,
            )
        registry = ModelRegistry(tracking_uri, audit)
        version = str(info.registered_model_version)
        for key, value in _version_tags(spec, result, manifest, tags).items():
            registry.client.set_model_version_tag(spec.name, version, key, value)
        registry.transition(
            spec.name,
            version,
            "candidate",
            actor,
            f"trained window {window.key}",
            {"run_id": run.info.run_id, **result.metrics()},
        )
        status = "FINISHED"
    except Exception as exc:
        mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
        raise
    finally:
        mlflow.end_run(status=status)
    return TrackedWindow(
        result=result,
        run_id=run.info.run_id,
        model_name=spec.name,
        model_version=version,
        model_uri=f"models:/{spec.name}/{version}",
        report_artifact=f"report/{report.name}",
        report_path=report if report_dir is not None else None,
    )


def load_scorer(model_uri: str, tracking_uri: str) -> mlflow.pyfunc.PyFuncModel:
    """The registered model as a pyfunc; ``.predict(frame)`` with instrument, date, features."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow.pyfunc.load_model(model_uri)


def frame_for_scoring(data: WindowFrame) -> pd.DataFrame:
    """The pyfunc's input layout from a window frame: instrument, date, feature columns."""
    return data.frame.select("instrument", "date", *data.feature_columns).to_pandas()
