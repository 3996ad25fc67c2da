"""The operations settings: deployment, storage locations, prices, budget and alert channels.

One sub-model of :class:`qlib_assets.settings.Settings` (field ``operations``), so every value
can come from ``QLIB_ASSETS_OPERATIONS__<FIELD>`` or the settings YAML file.
"""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

Instance = Literal["embedded", "postgres", "kubernetes"]
Executor = Literal["multiprocess", "celery", "kubernetes"]


class Prices(BaseModel):
    """Unit prices of the cost report, in the budget's currency."""

    cpu_hour: float = Field(0.04, ge=0, description="Price of one CPU-hour.")
    gb_hour: float = Field(0.005, ge=0, description="Price of one GB of peak memory for an hour.")
    storage_gb_month: float = Field(0.02, ge=0, description="Price of one GB stored for a month.")


class BudgetSettings(BaseModel):
    """The monthly budget and which runs it may hold."""

    monthly: float | None = Field(
        None, ge=0, description="Budget per calendar month; None switches the guard off."
    )
    threshold: float = Field(
        0.9, gt=0, le=1, description="Share of the budget past which non-critical runs are held."
    )
    non_critical_tags: dict[str, str] = Field(
        default_factory=lambda: {
            "qlib_assets/kind": "tuning|backfill|explanation",
        },
        description="Run tag -> '|'-separated values that mark a run as non-critical; a run "
        "launched by a backfill (tag dagster/backfill) is non-critical too.",
    )


class AlertSettings(BaseModel):
    """Where alerts go: a webhook (JSON POST) and/or SMTP email. Empty fields send nothing."""

    webhook_url: str | None = Field(None, description="HTTP(S) URL receiving a JSON POST.")
    smtp_host: str | None = Field(None, description="SMTP server; None: no email.")
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: str | None = None
    email_from: str = "qlib-assets@localhost"
    email_to: list[str] = Field(default_factory=list)
    timeout_seconds: float = Field(10.0, gt=0, description="Per delivery attempt.")


class OperationsSettings(BaseModel):
    """How and where the platform runs, what it costs, and whom it tells."""

    instance: Instance = Field(
        "embedded",
        description="Dagster instance configuration: 'embedded' (SQLite, ./dagster.yaml), "
        "'postgres' (deploy/postgres/dagster.yaml), 'kubernetes' (deploy/kubernetes/dagster.yaml).",
    )
    executor: Executor = Field(
        "multiprocess",
        description="Step executor of every job: multiprocess (one machine), celery (workers on "
        "a broker, see `qlib-assets worker`), kubernetes (one pod per step).",
    )
    postgres_url: str = Field(
        "postgresql+psycopg2://postgres@127.0.0.1:5432/dagster",
        description="SQLAlchemy URL of the Dagster storage database (instance 'postgres' and "
        "'kubernetes'); keep the +psycopg2 driver: SQLAlchemy 2.1 maps plain postgresql:// to "
        "psycopg 3.",
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        description="MLflow tracking and registry store, e.g. "
        "postgresql+psycopg2://postgres@127.0.0.1:5432/mlflow; default: SQLite under home.",
    )
    mlflow_artifact_root: str | None = Field(
        None,
        description="Where new MLflow experiments keep artifacts: a path or an fsspec/MLflow URL "
        "(s3://bucket/prefix, gs://...); default: <home>/mlartifacts.",
    )
    lake_dir: Path | None = Field(
        None, description="Parquet lake folder (a shared filesystem for several machines)."
    )
    qlib_provider_dir: Path | None = Field(
        None, description="Qlib provider folder (shared filesystem; see the provider lock)."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the operations tables (resource_usage, budget_audit); "
        "default: SQLite <home>/operations.db.",
    )
    celery_broker: str = Field(
        "pyamqp://guest:guest@127.0.0.1:5672//", description="Celery broker URL (RabbitMQ)."
    )
    celery_backend: str = Field("rpc://", description="Celery result backend URL.")
    celery_queue: str = Field("dagster", description="Queue the executor and workers share.")
    k8s_namespace: str = Field("qlib-assets", description="Namespace of step pods.")
    k8s_image: str = Field(
        "qlib-assets:latest", description="Image of step pods (deploy/kubernetes/Dockerfile)."
    )
    max_concurrent_steps: int | None = Field(
        None,
        ge=1,
        description="Steps one run executes at once; default: sized from the machine at start.",
    )
    training_priority: dict[str, int] = Field(
        default_factory=dict,
        description="Spec name -> priority (higher first, 0 by default, at most 10): orders "
        "queued training runs (dagster/priority) and waiting training steps on Celery.",
    )
    prices: Prices = Field(default_factory=Prices)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
