"""Shared fixtures: small generated markets and a settings object rooted in a temp folder."""

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest

# Dagster's definitions loading reads a context variable that an instance sets when entered; an
# evaluation context can leave it pointing at a closed test instance, and a later test's
# Definitions then fail with "Attempted to resolve undefined DagsterInstance weakref" (it
# depends on the order tests run in). Reset it around every test.
from dagster._core.storage.defs_state.base import set_defs_state_storage

from qlib_assets.market.synthetic import Market, MarketSpec, generate_market
from qlib_assets.settings import LandingSettings, Settings

SMALL_START = date(2024, 1, 2)
SMALL_END = date(2024, 4, 30)


@pytest.fixture(autouse=True)
def no_leaked_defs_state() -> Iterator[None]:
    with set_defs_state_storage(None):
        yield


@pytest.fixture(scope="session")
def small_market() -> Market:
    """30 instruments over four months: suspensions, listings and splits included."""
    return generate_market(MarketSpec(instruments=30, start=SMALL_START, end=SMALL_END, seed=3))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Test files are written whole before they are read: no settle time.
    home = Settings(
        home=tmp_path / "home",
        start_date=date(2021, 1, 4),
        landing=LandingSettings(settle_seconds=0),
    )
    home.ensure_dirs()
    return home


def session_days(bars: pl.DataFrame) -> list[date]:
    return sorted(bars.get_column("date").unique().to_list())
