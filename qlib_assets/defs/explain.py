"""Explanation assets: each spec's daily per-prediction contributions (SHAP)."""

import dagster as dg

from qlib_assets.asset_keys import explanations_asset, predictions_asset
from qlib_assets.defs.daily import DailyAssets, LakeResource, session_days
from qlib_assets.defs.png import png_metadata
from qlib_assets.models.platform import platform_specs
from qlib_assets.models.specs import ModelSpec
from qlib_assets.settings import Settings

GROUP = "explain"


def _explanations(settings: Settings, spec: ModelSpec, daily: DailyAssets) -> dg.AssetsDefinition:
    name = spec.name

    @daily.asset(
        explanations_asset(name),
        code=["qlib_assets.explain.sessions:build_explanations"],
        spec=[spec.digest()],
        deps=[predictions_asset(name)],
        kinds={"shap", "polars"},
        description=f"Each instrument's per-feature SHAP contribution to {name}'s served score "
        "(the raw model output on the processed input; contributions + base_value = score).",
    )
    def explanations(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        from qlib_assets.explain.pictures import beeswarm, family_bars
        from qlib_assets.explain.sessions import build_explanations, family_table

        days = session_days(context)
        result = build_explanations(settings, name, days)
        for day, reason in sorted(result.skipped.items()):
            context.log.warning(f"{day}: skipped, {reason}")
        explained = [d for d in days if d not in result.skipped]
        if explained:
            lake.write_days(explanations_asset(name), result.table, explained)
        metadata: dict[str, dg.MetadataValue | str | int | float] = {
            "sessions_explained": len(explained),
            "sessions_skipped": len(result.skipped),
        }
        if result.latest is not None:
            latest = result.latest
            folder = settings.root / "reports" / "explain" / name
            families = family_table(latest)
            shown = explained[-1].isoformat()
            metadata |= {
                "method": latest.method,
                "max_additivity_error": latest.max_additivity_error,
                "families": dg.MetadataValue.md(families.to_pandas().to_markdown(index=False)),
            }
            metadata |= png_metadata(
                beeswarm(latest, folder / "beeswarm.png", f"{name} {shown}"), "beeswarm"
            )
            metadata |= png_metadata(
                family_bars(families, folder / "families.png", f"{name} {shown}: mean |SHAP|"),
                "families_chart",
            )
        return dg.MaterializeResult(metadata=metadata)

    return explanations


def build_explain_defs(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    daily = DailyAssets(partitions, GROUP)
    return dg.Definitions(
        assets=[_explanations(settings, spec, daily) for spec in platform_specs(settings).values()]
    )
