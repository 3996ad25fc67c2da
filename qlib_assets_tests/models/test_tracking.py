"""One MLflow run and one registered candidate version per (spec, window)."""

import json

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from qlib_assets.models.audit import AuditLog, default_audit_url
from qlib_assets.models.dataset import load_window_frame, window_days
from qlib_assets.models.registry import STATE_TAG
from qlib_assets.models.rolling import rolling_windows
from qlib_assets.models.tracking import frame_for_scoring, load_scorer, train_and_track
from qlib_assets.models.training import WindowTrainingError
from qlib_assets_tests.models.conftest import ModelLake, Tracked, small_spec


def test_run_version_tags_inputs_and_audit_rows_are_recorded(tracked: Tracked) -> None:
    client = MlflowClient(tracking_uri=tracked.tracking_uri, registry_uri=tracked.tracking_uri)
    first, data = tracked.windows[0], tracked.data[0]
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["dagster_run_id"] == "run-0"
    assert run.data.tags["partition_key"] == first.result.window.key
    assert run.data.tags["asset_key"] == "model_lgbm_alpha158"
    assert run.data.params["model.num_leaves"] == "63"
    history = client.get_metric_history(first.run_id, "valid_l2")
    assert len(history) == len(first.result.curves["valid"])
    assert run.data.metrics["valid_ic"] == pytest.approx(first.result.valid_ic.ic)

    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"alpha158", "labels"}
    for asset, dataset_input in inputs.items():
        ours = data.manifest.digest(asset)
        assert dataset_input.dataset.digest == ours[:32]
        tags = {t.key: t.value for t in dataset_input.tags}
        assert tags["sha256"] == ours

    version = client.get_model_version("lgbm_alpha158", first.model_version)
    assert version.run_id == first.run_id
    tags = version.tags
    # Registry tests may move this version on; the tag must agree with the audit trail.
    rows = tracked.audit.history("lgbm_alpha158", first.model_version)
    assert tags[STATE_TAG] == [r for r in rows if r.kind == "state"][-1].to_value
    assert tags["window"] == first.result.window.key
    assert tags["data_version.alpha158"] == data.manifest.digest("alpha158")
    assert float(tags["metric.valid_ic"]) == pytest.approx(first.result.valid_ic.ic, rel=1e-5)
    assert tags["lib.lightgbm"] and tags["lib.pyqlib"] == "0.9.7"
    assert len(tags["feature_schema_hash"]) == 64

    assert (rows[0].from_value, rows[0].to_value, rows[0].actor) == (None, "candidate", "pytest")
    assert rows[0].evidence["run_id"] == first.run_id

    lineage_file = mlflow.artifacts.download_artifacts(
        run_id=first.run_id,
        artifact_path="lineage/inputs.json",
        tracking_uri=tracked.tracking_uri,
    )
    with open(lineage_file) as handle:
        lineage = json.load(handle)
    assert lineage["partitions"]["alpha158"] == data.manifest.partitions("alpha158")


def test_registered_model_loads_and_predicts_the_validation_scores(tracked: Tracked) -> None:
    first, data = tracked.windows[0], tracked.data[0]
    scorer = load_scorer(first.model_uri, tracked.tracking_uri)
    frame = frame_for_scoring(data)
    window = first.result.window
    start, end = (pd.Timestamp(d) for d in window.valid)
    valid = frame[(frame["date"] >= start) & (frame["date"] <= end)].reset_index(drop=True)
    scores = scorer.predict(valid)["score"].to_numpy()
    expected = first.result.valid_pred.loc[
        list(zip(valid["date"].astype("datetime64[ns]"), valid["instrument"], strict=True))
    ].to_numpy()
    assert scores == pytest.approx(expected, abs=1e-9)


def test_a_failing_training_marks_its_run_failed(
    model_lake: ModelLake, tmp_path: pytest.TempPathFactory
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    audit = AuditLog(default_audit_url(tmp_path))
    spec = small_spec("lgbm_alpha158")
    bad = spec.model_copy(
        update={"model": spec.model.model_copy(update={"kwargs": {"loss": "huber"}})}
    )
    window = rolling_windows(spec.rolling, model_lake.sessions, model_lake.sessions[-3])[0]
    data = load_window_frame(model_lake.lake, spec, window_days(window, model_lake.sessions))
    with pytest.raises(WindowTrainingError):
        train_and_track(
            bad, window, data, tracking_uri=uri, audit=audit, artifact_root=tmp_path / "art"
        )
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("qlib_assets/lgbm_alpha158")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    assert "NotImplementedError" in run.data.tags["error"]
    assert audit.count() == 0
    assert mlflow.active_run() is None
