"""The registry and audit table of a settings object (one place that builds them)."""

from qlib_assets.models.platform import audit_log
from qlib_assets.models.registry import ModelRegistry
from qlib_assets.settings import Settings


def registry_of(settings: Settings) -> ModelRegistry:
    return ModelRegistry(settings.mlflow_uri, audit_log(settings))
