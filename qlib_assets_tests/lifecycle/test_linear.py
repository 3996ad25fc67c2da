"""Seed 003's Linear benchmark: the shipped linear_alpha158 spec trains, registers and passes
its gates (Qlib's LinearModel.fit takes no evals_result)."""

from mlflow import MlflowClient

from qlib_assets.lifecycle.gates import gate_version
from qlib_assets.models.specs import load_specs
from qlib_assets.models.tracking import experiment_name
from qlib_assets.settings import Settings
from qlib_assets_tests.lifecycle.conftest import Template, train_version


def test_the_linear_spec_trains_registers_and_passes_its_gates(
    home: Settings, template: Template
) -> None:
    shipped = load_specs()["linear_alpha158"]
    assert shipped.model.class_name == "LinearModel"
    spec = shipped.model_copy(update={"rolling": template.spec.rolling})
    client = MlflowClient(home.mlflow_uri, home.mlflow_uri)
    client.create_experiment(
        experiment_name(spec), artifact_location=(home.root / "linear_artifacts").as_uri()
    )
    key = client.get_model_version(template.spec.name, "1").tags["window"]
    version = train_version(home, spec, key)
    tags = client.get_model_version(spec.name, version).tags
    assert float(tags["metric.valid_ic"]) > 0.0
    assert gate_version(home, spec, version).passed
