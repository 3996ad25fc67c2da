"""build_definitions: the whole asset graph for one settings object."""

import dagster as dg

from qlib_assets.calendar import trading_days_partitions
from qlib_assets.defs.automation import build_automation_defs
from qlib_assets.defs.daily import LAKE, LakeResource
from qlib_assets.defs.evaluation import build_evaluation_defs
from qlib_assets.defs.explain import build_explain_defs
from qlib_assets.defs.features import build_feature_defs
from qlib_assets.defs.market import build_market_defs
from qlib_assets.defs.models import build_model_defs
from qlib_assets.defs.monitoring import build_monitoring_defs
from qlib_assets.defs.online import build_online_defs
from qlib_assets.defs.qlib_data import build_qlib_data_defs
from qlib_assets.instance import set_sqlite_synchronous
from qlib_assets.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    set_sqlite_synchronous(settings.sqlite_synchronous)
    trading_days = trading_days_partitions(settings.calendar, settings.start_date)
    return dg.Definitions.merge(
        build_market_defs(settings, trading_days),
        build_qlib_data_defs(settings, trading_days),
        build_feature_defs(settings, trading_days),
        build_model_defs(settings),
        build_online_defs(settings, trading_days),
        build_evaluation_defs(settings, trading_days),
        build_monitoring_defs(settings, trading_days),
        build_explain_defs(settings, trading_days),
        build_automation_defs(settings),
        dg.Definitions(resources={LAKE: LakeResource(root=str(settings.lake_dir))}),
    )
