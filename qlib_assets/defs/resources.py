"""Dagster resources: MLflow tracking and the registry's audit table."""

from pathlib import Path

import dagster as dg

from qlib_assets.models.audit import AuditLog
from qlib_assets.models.platform import audit_url
from qlib_assets.operations.locations import is_url
from qlib_assets.settings import Settings


class MLflowTracking(dg.ConfigurableResource):
    """Where runs, models and their artifacts go; defaults come from the settings object.

    dagster-mlflow's resource keeps one MLflow run per Dagster run; training needs one per
    (spec, window), so this resource only carries the locations and training opens its runs.
    """

    tracking_uri: str
    artifact_root: str
    audit_url: str

    def audit(self) -> AuditLog:
        return AuditLog(self.audit_url)

    def artifacts(self) -> Path | str:
        return self.artifact_root if is_url(self.artifact_root) else Path(self.artifact_root)


def mlflow_resource(settings: Settings) -> MLflowTracking:
    return MLflowTracking(
        tracking_uri=settings.mlflow_uri,
        artifact_root=str(settings.mlflow_artifacts),
        audit_url=audit_url(settings),
    )
