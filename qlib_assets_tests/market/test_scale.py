"""Scale: a month of a 5,000-instrument market through raw_bars and the Qlib provider.

Skipped by default (`make test-slow` runs it): it takes minutes and gigabytes.
"""

from datetime import date

import pytest

from qlib_assets.market.raw_bars import build_raw_bars
from qlib_assets.market.synthetic import MarketSpec, generate_market, write_landing
from qlib_assets.settings import Settings
from qlib_assets.storage.provider_sync import sync_provider
from qlib_assets.storage.qlib_bin import QlibProviderWriter


@pytest.mark.slow
def test_five_thousand_instruments_one_month(settings: Settings) -> None:
    market = generate_market(
        MarketSpec(instruments=5_000, start=date(2024, 1, 2), end=date(2024, 1, 31), seed=1)
    )
    write_landing(market, settings.landing_dir)
    days = list(market.sessions)
    report = build_raw_bars(settings, days)
    assert report.rows == market.bars.height and report.instruments > 4_500
    result = sync_provider(settings, days)
    assert result.sessions_appended == len(days)
    writer = QlibProviderWriter(settings.qlib_data_dir, settings.calendar)
    assert writer.sessions() == days
    assert len(writer.instruments()) == market.bars.get_column("instrument").n_unique()
