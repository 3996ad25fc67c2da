"""Keep the Qlib provider in step with raw_bars for a range of sessions."""

from collections.abc import Sequence
from datetime import date

from qlib_assets.market.raw_bars import ASSET, read_raw_bars
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake
from qlib_assets.storage.qlib_bin import QlibProviderWriter, SyncResult


def sync_provider(settings: Settings, days: Sequence[date]) -> SyncResult:
    """Append or rewrite ``days``; a range older than the provider's first session rebuilds it
    from every materialized raw_bars session, since prepending would shift every calendar index.
    """
    days = sorted(days)
    writer = QlibProviderWriter(settings.qlib_data_dir, settings.calendar)
    existing = writer.sessions()
    if existing and days[0] < existing[0]:
        everything = Lake(settings.lake_dir).days(ASSET)
        return writer.rebuild(read_raw_bars(settings, everything), everything)
    return writer.sync(read_raw_bars(settings, days), days)
