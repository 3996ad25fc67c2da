"""The SQLite setting reaches the project's own databases, and only those."""

import sqlite3
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from qlib_assets.instance import set_sqlite_synchronous

# PRAGMA synchronous values: 1 NORMAL, 2 FULL (SQLite's default).
MODES = {"NORMAL": 1, "FULL": 2}


@pytest.fixture(autouse=True)
def _restore(tmp_path: Path):  # type: ignore[no-untyped-def]
    yield
    set_sqlite_synchronous("FULL", tmp_path / "nothing-here")


def _synchronous(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())
    finally:
        engine.dispose()


def test_dagster_sqlite_connections_under_the_root_use_the_setting(tmp_path: Path) -> None:
    set_sqlite_synchronous("NORMAL", tmp_path)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        storage = instance.event_log_storage
        with storage.index_connection() as conn:  # type: ignore[attr-defined]
            value = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    assert value == MODES["NORMAL"]


def test_databases_outside_the_root_keep_sqlites_default(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "home", tmp_path / "other"
    root.mkdir()
    elsewhere.mkdir()
    set_sqlite_synchronous("NORMAL", root)
    assert _synchronous(f"sqlite:///{root / 'mlflow.db'}") == MODES["NORMAL"]
    assert _synchronous(f"sqlite:///{elsewhere / 'theirs.db'}") == MODES["FULL"]
    assert _synchronous("sqlite://") == MODES["FULL"]
    with sqlite3.connect(root / "plain.db") as plain:
        # Not through SQLAlchemy: untouched.
        assert plain.execute("PRAGMA synchronous").fetchone()[0] == MODES["FULL"]


def test_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sqlite_synchronous"):
        set_sqlite_synchronous("OFF", tmp_path)
