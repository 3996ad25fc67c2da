"""The embedded instance's SQLite setting reaches Dagster's own storage connections."""

import dagster as dg
import pytest

from qlib_assets.instance import set_sqlite_synchronous

# PRAGMA synchronous values: 1 NORMAL, 2 FULL.
MODES = {"NORMAL": 1, "FULL": 2}


@pytest.mark.parametrize("mode", ["FULL", "NORMAL"])
def test_dagster_sqlite_connections_use_the_setting(mode: str) -> None:
    set_sqlite_synchronous(mode)
    try:
        with dg.instance_for_test() as instance:
            storage = instance.event_log_storage
            with storage.index_connection() as conn:
                value = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    finally:
        set_sqlite_synchronous("NORMAL")
    assert value == MODES[mode]


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="sqlite_synchronous"):
        set_sqlite_synchronous("OFF")
