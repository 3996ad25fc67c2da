"""Deployments by configuration: every deploy/ variant renders and validates; PostgreSQL for real.

No cluster runs here, so the Kubernetes variant is checked against Dagster's own config schemas
(instance, K8sRunLauncher, k8s_job_executor) and for consistency between its files.
"""

import os
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config

from qlib_assets.defs.build import build_definitions
from qlib_assets.instance import embedded_instance
from qlib_assets.operations.config import OperationsSettings
from qlib_assets.operations.deployment import (
    DEPLOY_DIR,
    celery_worker_command,
    executor_definition,
    install_instance_config,
    render_instance_config,
)
from qlib_assets.operations.services import ADMIN_URL, reachable, temporary_databases
from qlib_assets.settings import Settings, load_settings

VARIANTS = ["postgres", "celery", "kubernetes"]


def _variant_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    # The variant's file alone: environment variables (CI sets QLIB_ASSETS_HOME) would win.
    for key in [k for k in os.environ if k.startswith("QLIB_ASSETS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("QLIB_ASSETS_CONFIG", str(DEPLOY_DIR / name / "settings.yaml"))
    return load_settings()


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_settings_render_a_valid_instance(
    variant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = _variant_settings(variant, monkeypatch).operations
    text = render_instance_config(ops)
    body = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in body if "${" in line]
    install_instance_config(ops, tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    config, _ = dagster_instance_config(str(tmp_path))
    assert "postgres" in config["storage"]
    assert config["storage"]["postgres"]["postgres_url"] == ops.postgres_url
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] >= 1


@pytest.mark.parametrize(
    ("executor", "name"),
    [("multiprocess", "multiprocess"), ("celery", "celery"), ("kubernetes", "kubernetes")],
)
def test_executor_chosen_by_setting(executor: str, name: str, settings: Settings) -> None:
    ops = OperationsSettings(executor=executor)  # type: ignore[arg-type]
    definition = executor_definition(ops)
    assert definition.name == name
    defs = build_definitions(settings.model_copy(update={"operations": ops}))
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == name


def test_kubernetes_files_validate_against_dagster_schemas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster_k8s import K8sRunLauncher, k8s_job_executor

    ops = _variant_settings("kubernetes", monkeypatch).operations
    instance = yaml.safe_load(render_instance_config(ops))
    launcher = instance["run_launcher"]["config"]
    assert validate_config(K8sRunLauncher.config_type(), launcher).success
    assert launcher["job_image"] == ops.k8s_image
    assert launcher["job_namespace"] == ops.k8s_namespace
    executor = executor_definition(ops)
    assert executor.name == "kubernetes"
    resolved = executor.config_schema.resolve_config({}).value["config"]
    assert resolved["job_namespace"] == ops.k8s_namespace
    assert "max_concurrent" not in resolved  # unset means unlimited; 0 would be refused
    capped = executor_definition(ops.model_copy(update={"max_concurrent_steps": 4}))
    assert capped.config_schema.resolve_config({}).value["config"]["max_concurrent"] == 4
    assert validate_config(k8s_job_executor.config_schema.config_type, {}).success
    bad = validate_config(k8s_job_executor.config_schema.config_type, {"max_concurrent": "x"})
    assert not bad.success

    values = yaml.safe_load((DEPLOY_DIR / "kubernetes" / "values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "qlib_assets.definitions"]
    assert f"{deployment['image']['repository']}:{deployment['image']['tag']}" == ops.k8s_image
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert k8s["jobNamespace"] == ops.k8s_namespace
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in k8s["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {"qlib-assets-data"}
    mounts = {m["mountPath"] for m in deployment["volumeMounts"]}
    settings = load_settings()
    assert any(str(settings.home).startswith(m) for m in mounts)
    assert "/etc/qlib-assets" in mounts
    limits = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert {"key": "qlib_assets/budget", "value": "held", "limit": 0} in limits[
        "tagConcurrencyLimits"
    ]

    dockerfile = (DEPLOY_DIR / "kubernetes" / "Dockerfile").read_text()
    root = DEPLOY_DIR.parent
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (root / source).exists(), source
    assert '"-m", "qlib_assets.definitions"' in dockerfile
    assert "QLIB_ASSETS_CONFIG=/etc/qlib-assets/settings.yaml" in dockerfile


def test_celery_worker_command_follows_the_settings() -> None:
    ops = OperationsSettings(celery_broker="pyamqp://u:p@broker:5672//", celery_queue="q1")
    command = celery_worker_command(ops, "w1", concurrency=3, autoscale_min=0)
    assert command[1:5] == ["-m", "celery", "-A", "dagster_celery.app"]
    assert command[command.index("-b") + 1] == "pyamqp://u:p@broker:5672//"
    assert command[command.index("-Q") + 1] == "q1"
    assert "--autoscale=3,0" in command and "-n" in command
    assert "--concurrency=2" in celery_worker_command(ops, "w2", concurrency=2)


def test_postgres_instance_runs_a_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not reachable(ADMIN_URL, 5432):
        pytest.skip(
            "PostgreSQL is not reachable at 127.0.0.1:5432; the PostgreSQL instance test needs it"
        )

    @dg.asset
    def one() -> int:
        return 1

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with temporary_databases(ADMIN_URL, "dagster") as urls:
        ops = OperationsSettings(instance="postgres", postgres_url=urls["dagster"])
        settings = Settings(home=tmp_path / "home", operations=ops)
        instance = embedded_instance(settings)
        try:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
            assert dg.materialize([one], instance=instance).success
            assert instance.get_latest_materialization_event(dg.AssetKey("one")) is not None
            info = instance.event_log_storage.get_concurrency_info("training")
            assert info.slot_count >= 1
        finally:
            instance.dispose()
