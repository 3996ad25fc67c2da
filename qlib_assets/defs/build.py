"""build_definitions: the whole asset graph for one settings object."""

import dagster as dg

from qlib_assets.calendar import trading_days_partitions
from qlib_assets.defs.automation import build_automation_defs
from qlib_assets.defs.daily import LAKE, LakeResource
from qlib_assets.defs.deployment import build_deployment_defs
from qlib_assets.defs.evaluation import build_evaluation_defs
from qlib_assets.defs.explain import build_explain_defs
from qlib_assets.defs.features import build_feature_defs
from qlib_assets.defs.landing import build_landing_defs
from qlib_assets.defs.lifecycle import build_lifecycle_defs
from qlib_assets.defs.market import build_market_defs
from qlib_assets.defs.models import build_model_defs
from qlib_assets.defs.monitoring import build_monitoring_defs
from qlib_assets.defs.online import build_online_defs
from qlib_assets.defs.operations import build_operations_defs
from qlib_assets.defs.qlib_data import build_qlib_data_defs
from qlib_assets.defs.serving import build_serving_defs
from qlib_assets.instance import set_sqlite_synchronous
from qlib_assets.operations.deployment import executor_definition
from qlib_assets.runs.pool_wait import install_pool_wait_fix
from qlib_assets.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    set_sqlite_synchronous(settings.sqlite_synchronous, settings.root)
    install_pool_wait_fix()
    trading_days = trading_days_partitions(settings.calendar, settings.start_date)
    return dg.Definitions.merge(
        build_market_defs(settings, trading_days),
        build_landing_defs(settings, trading_days),
        build_qlib_data_defs(settings, trading_days),
        build_feature_defs(settings, trading_days),
        build_model_defs(settings),
        build_online_defs(settings, trading_days),
        build_evaluation_defs(settings, trading_days),
        build_monitoring_defs(settings, trading_days),
        build_explain_defs(settings, trading_days),
        build_automation_defs(settings),
        build_lifecycle_defs(settings, trading_days),
        build_serving_defs(settings),
        build_deployment_defs(settings),
        build_operations_defs(settings),
        dg.Definitions(executor=executor_definition(settings.operations)),
        dg.Definitions(
            resources={
                LAKE: LakeResource(
                    root=str(settings.lake_dir),
                    keep_days=settings.versions.keep_days,
                    max_bytes=settings.versions.max_bytes,
                )
            }
        ),
    )
