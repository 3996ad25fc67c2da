"""Deployments chosen by settings: the instance configuration, the executor, Celery workers.

``operations.instance`` picks the dagster.yaml (embedded SQLite, PostgreSQL, Kubernetes);
``operations.executor`` picks how a run's steps execute (multiprocess, Celery, Kubernetes).
Nothing else changes between deployments: the asset code is the same.
"""

import re
from pathlib import Path
from string import Template

import dagster as dg

from qlib_assets.operations.capacity import machine_capacity
from qlib_assets.operations.config import OperationsSettings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = PROJECT_ROOT / "deploy"
INSTANCE_FILES = {
    "embedded": PROJECT_ROOT / "dagster.yaml",
    "postgres": DEPLOY_DIR / "postgres" / "dagster.yaml",
    "kubernetes": DEPLOY_DIR / "kubernetes" / "dagster.yaml",
}
# The module Celery workers load (-A): dagster-celery's app with the execute_plan task.
CELERY_APP = "dagster_celery.app"
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def instance_template(ops: OperationsSettings) -> Path:
    path = INSTANCE_FILES[ops.instance]
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing (operations.instance={ops.instance}): "
            "qlib-assets runs from a checkout (pip install -e .)"
        )
    return path


def render_instance_config(ops: OperationsSettings) -> str:
    """The instance YAML of ``ops.instance`` with its placeholders filled from the settings."""
    text = instance_template(ops).read_text()
    capacity = machine_capacity()
    values = {
        "postgres_url": ops.postgres_url,
        "max_concurrent_runs": str(capacity.max_concurrent_runs),
        "k8s_namespace": ops.k8s_namespace,
        "k8s_image": ops.k8s_image,
    }
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    unknown = sorted(set(_PLACEHOLDER.findall(body)) - set(values))
    if unknown:
        raise ValueError(f"{instance_template(ops)}: unknown placeholder(s) {unknown}")
    return Template(text).safe_substitute(values)


def install_instance_config(ops: OperationsSettings, dagster_home: Path) -> Path:
    """Write the chosen instance configuration as ``dagster_home/dagster.yaml`` (atomically)."""
    target = dagster_home / "dagster.yaml"
    text = render_instance_config(ops)
    if not target.is_file() or target.read_text() != text:
        partial = target.with_suffix(".yaml.partial")
        partial.write_text(text)
        partial.replace(target)
    return target


def size_pools(instance: dg.DagsterInstance) -> int:
    """Give the training pool as many slots as the machine holds models; returns the limit."""
    slots = machine_capacity().training_slots
    instance.event_log_storage.set_concurrency_slots("training", slots)
    return slots


def executor_definition(ops: OperationsSettings) -> dg.ExecutorDefinition:
    """The executor every job of the code location uses."""
    if ops.executor == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(
            {
                "broker": ops.celery_broker,
                "backend": ops.celery_backend,
                "config_source": {"task_default_queue": ops.celery_queue},
            },
            name="celery",
        )
    if ops.executor == "kubernetes":
        from dagster_k8s import k8s_job_executor

        config: dict = {
            "job_namespace": ops.k8s_namespace,
            "image_pull_policy": "IfNotPresent",
            "step_k8s_config": {
                "container_config": {
                    "resources": {
                        "requests": {"cpu": "1", "memory": "2Gi"},
                        "limits": {"memory": "6Gi"},
                    }
                }
            },
        }
        # Unset: as many step pods as the graph allows (the cluster's quota is the limit).
        if ops.max_concurrent_steps:
            config["max_concurrent"] = ops.max_concurrent_steps
        return k8s_job_executor.configured(config, name="kubernetes")
    steps = ops.max_concurrent_steps or machine_capacity().max_concurrent_steps
    return dg.multiprocess_executor.configured({"max_concurrent": steps}, name="multiprocess")


def celery_worker_command(
    ops: OperationsSettings,
    name: str,
    concurrency: int = 1,
    autoscale_min: int | None = None,
    python: str = "python",
) -> list[str]:
    """The command that starts one Celery worker for the platform's queue.

    With ``autoscale_min`` the worker grows to ``concurrency`` processes under load and shrinks
    to ``autoscale_min`` (0 allowed) when idle: Celery's own scale-down.
    """
    command = [python, "-m", "celery", "-A", CELERY_APP, "-b", ops.celery_broker]
    command += ["--result-backend", ops.celery_backend, "worker", "-Q", ops.celery_queue]
    command += ["-n", f"{name}@%h", "--prefetch-multiplier=1", "--without-gossip"]
    command += ["--without-mingle", "--loglevel=INFO"]
    if autoscale_min is None:
        command.append(f"--concurrency={concurrency}")
    else:
        command.append(f"--autoscale={concurrency},{autoscale_min}")
    return command
