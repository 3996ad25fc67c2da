"""The embedded Dagster instance: DAGSTER_HOME under the settings' home, with our dagster.yaml."""

import os
from pathlib import Path
from typing import Any

import dagster as dg
from sqlalchemy import event
from sqlalchemy.engine import Engine

from qlib_assets.operations.deployment import install_instance_config, size_pools
from qlib_assets.settings import Settings

_SYNC_MODES = ("FULL", "NORMAL")


def set_sqlite_synchronous(mode: str, root: Path) -> None:
    """Set SQLite's ``synchronous`` pragma on the connections SQLAlchemy opens to database files
    under ``root`` (the project's home: Dagster's instance storage, MLflow's and the audit
    table's databases); other databases of the process keep SQLite's default.

    Dagster's SQLite storage runs in WAL mode and opens a connection per event; with the
    default FULL every event pays a commit fsync and a checkpoint fsync. In WAL mode NORMAL
    stays consistent after a process crash; only a power loss can drop the last transactions.
    Dagster creates its engines inside its storage classes, so the setting is made when any
    engine connects and checks the database file; a later call replaces mode and root.
    """
    if mode not in _SYNC_MODES:
        raise ValueError(f"sqlite_synchronous must be one of {_SYNC_MODES}, got {mode!r}")
    _PRAGMA.mode = mode
    _PRAGMA.root = root.expanduser().resolve()
    if not event.contains(Engine, "connect", _PRAGMA):
        event.listen(Engine, "connect", _PRAGMA)


class _SynchronousPragma:
    def __init__(self) -> None:
        self.mode = "FULL"
        self.root: Path | None = None

    def __call__(self, dbapi_connection: Any, _record: object) -> None:
        if self.root is None or not type(dbapi_connection).__module__.startswith("sqlite3"):
            return
        cursor = dbapi_connection.cursor()
        try:
            # (seq, name, file) per attached database; file is "" for an in-memory one.
            files = [row[2] for row in cursor.execute("PRAGMA database_list") if row[1] == "main"]
            if files and files[0] and Path(files[0]).resolve().is_relative_to(self.root):
                cursor.execute(f"PRAGMA synchronous={self.mode}")
        finally:
            cursor.close()


_PRAGMA = _SynchronousPragma()


def prepare_dagster_home(settings: Settings) -> Path:
    """Point DAGSTER_HOME at the home folder's instance and install the dagster.yaml that
    ``operations.instance`` selects (the project's embedded one by default)."""
    settings.ensure_dirs()
    home = settings.dagster_home
    install_instance_config(settings.operations, home)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def embedded_instance(settings: Settings) -> dg.DagsterInstance:
    """The instance ``operations.instance`` selects (embedded SQLite by default), its training
    pool sized from the machine, after failing the runs whose worker died and freeing their
    pool slots.

    The CLI's in-process runs have no daemon to notice a killed predecessor; without this, a
    run killed while it held the ``qlib_provider`` slot would make every later one wait forever.
    """
    from qlib_assets.runs.health import describe, recover_dead_runs
    from qlib_assets.storage.atomic import remove_stale_temps
    from qlib_assets.terminal import console

    prepare_dagster_home(settings)
    instance = dg.DagsterInstance.get()
    for line in describe(recover_dead_runs(instance)):
        console.print(f"[yellow]recovered[/yellow] {line}")
    for path in remove_stale_temps(settings.lake_dir):
        console.print(f"[yellow]removed[/yellow] {path}, left by a killed writer")
    size_pools(instance)
    return instance
