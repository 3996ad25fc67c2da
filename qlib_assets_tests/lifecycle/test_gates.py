"""Gates over real registered versions: pass, a broken artifact, an incompatible schema."""

from pathlib import Path

import polars as pl
from mlflow import MlflowClient

from qlib_assets.lifecycle.gates import GATES, gate_version, run_gates
from qlib_assets.lifecycle.sample import load_on_cpu, score_sample, scoring_sample
from qlib_assets.models.platform import audit_log
from qlib_assets.models.registry import STATE_TAG
from qlib_assets.models.specs import FeatureSource
from qlib_assets.settings import Settings
from qlib_assets_tests.lifecycle.conftest import Template, train_version


def _bundle_path(settings: Settings, name: str, version: str) -> Path:
    client = MlflowClient(settings.mlflow_uri, settings.mlflow_uri)
    model_id = client.get_model_version(name, version).source.removeprefix("models:/")
    location = client.get_logged_model(model_id).artifact_location
    found = list(Path(location.removeprefix("file://")).rglob("bundle*"))
    assert len(found) == 1, found
    return found[0]


def test_a_sound_version_passes_every_gate_and_becomes_validated(
    home: Settings, template: Template
) -> None:
    version = template.versions[0]
    report = gate_version(home, template.spec, version)
    assert report.passed, report.evidence()
    assert [r.name for r in report.results] == list(GATES)
    tags = (
        MlflowClient(home.mlflow_uri, home.mlflow_uri)
        .get_model_version(template.spec.name, version)
        .tags
    )
    assert tags[STATE_TAG] == "validated"
    assert tags["gate.failed"] == "none" and tags["gate.latency"] == "pass"
    last = audit_log(home).history(template.spec.name, version)[-1]
    assert (last.from_value, last.to_value, last.actor) == ("candidate", "validated", "gates")
    assert last.evidence["gates"]["deterministic"]["reloaded_equal"] is True


def test_the_scoring_sample_is_fixed_and_scores_equal_across_loads(
    home: Settings, template: Template
) -> None:
    first = scoring_sample(home, template.spec)
    again = scoring_sample(home, template.spec)
    assert first.sha256 == again.sha256 and first.frame.height > 0
    assert first.frame.get_column("date").n_unique() == home.lifecycle.sample_sessions
    one = score_sample(load_on_cpu(home.mlflow_uri, template.spec.name, "1"), first)
    two = score_sample(load_on_cpu(home.mlflow_uri, template.spec.name, "1"), again)
    other = score_sample(load_on_cpu(home.mlflow_uri, template.spec.name, "2"), first)
    assert one.digest() == two.digest()
    assert one.digest() != other.digest()


def test_a_broken_artifact_is_rejected_with_the_load_error_as_evidence(
    home: Settings, template: Template
) -> None:
    version = template.versions[1]
    bundle = _bundle_path(home, template.spec.name, version)
    original = bundle.read_bytes()
    try:
        bundle.write_bytes(original[: len(original) // 3])
        report = gate_version(home, template.spec, version)
    finally:
        bundle.write_bytes(original)
    assert not report.passed
    assert report.failed == ["loads_on_cpu", "deterministic", "latency"]
    assert "Error" in report.result("loads_on_cpu").evidence["error"]
    client = MlflowClient(home.mlflow_uri, home.mlflow_uri)
    tags = client.get_model_version(template.spec.name, version).tags
    assert tags[STATE_TAG] == "rejected" and tags["gate.loads_on_cpu"] == "fail"
    last = audit_log(home).history(template.spec.name, version)[-1]
    assert last.to_value == "rejected" and "loads_on_cpu" in last.reason
    assert last.evidence["failed"] == report.failed


def test_a_version_trained_on_another_feature_schema_is_rejected(
    home: Settings, template: Template
) -> None:
    columns = tuple(
        c
        for c in pl.read_parquet(next((template.lake_dir / "alpha158").glob("*.parquet"))).columns
        if c not in ("instrument", "date")
    )[:40]
    narrow = template.spec.model_copy(
        update={"features": (FeatureSource(asset="alpha158", columns=columns),)}
    )
    key = (
        MlflowClient(home.mlflow_uri, home.mlflow_uri)
        .get_model_version(template.spec.name, "1")
        .tags["window"]
    )
    version = train_version(home, narrow, key)
    report = run_gates(home, template.spec, version)
    assert report.failed == ["compatible"]
    problems = report.result("compatible").evidence["problems"]
    assert any("feature schema" in p for p in problems)
    assert gate_version(home, template.spec, version).passed is False
    assert (
        MlflowClient(home.mlflow_uri, home.mlflow_uri)
        .get_model_version(template.spec.name, version)
        .tags[STATE_TAG]
        == "rejected"
    )
