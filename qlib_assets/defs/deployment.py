"""The deployment pipeline as a Dagster asset: launch it with a spec and a validated version."""

from pathlib import Path

import dagster as dg

from qlib_assets.defs.daily import code_version
from qlib_assets.settings import Settings

GROUP = "deployment"
# The pipeline's source, read as text: importing it here would pull mlflow into the code location.
PIPELINE = Path(__file__).parents[1] / "serving" / "deployment.py"


class DeploymentConfig(dg.Config):
    spec: str
    version: str


def build_deployment_defs(settings: Settings) -> dg.Definitions:
    @dg.asset(
        name="deployment",
        group_name=GROUP,
        code_version=code_version([], [PIPELINE.read_text(), settings.serving.model_dump_json()]),
        description="A validated version through staging (health, performance test), then prod "
        "by blue-green or canary (serving.strategy) with the approval prod needs; a failed step "
        "rolls back by itself. Results on the version (deploy.* tags) and in the audit table.",
    )
    def deployment(
        context: dg.AssetExecutionContext, config: DeploymentConfig
    ) -> dg.MaterializeResult:
        from qlib_assets.models.platform import platform_specs
        from qlib_assets.serving.deployment import deploy_version, report_frame

        spec = platform_specs(settings)[config.spec]
        report = deploy_version(settings, spec, config.version)
        table = report_frame(report).to_pandas().to_markdown(index=False)
        metadata = {
            "spec": config.spec,
            "version": config.version,
            "outcome": report.outcome,
            "reason": report.reason,
            "steps": dg.MetadataValue.md(table),
        }
        if report.outcome != "deployed":
            raise dg.Failure(f"{config.spec} v{config.version}: {report.reason}", metadata=metadata)
        return dg.MaterializeResult(metadata=metadata)

    return dg.Definitions(assets=[deployment])
