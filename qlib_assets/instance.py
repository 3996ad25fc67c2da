"""The embedded Dagster instance: DAGSTER_HOME under the settings' home, with our dagster.yaml."""

import os
import shutil
from pathlib import Path

import dagster as dg

from qlib_assets.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
INSTANCE_CONFIG = PROJECT_ROOT / "dagster.yaml"


def prepare_dagster_home(settings: Settings) -> Path:
    """Point DAGSTER_HOME at the home folder's instance and install the project's dagster.yaml."""
    settings.ensure_dirs()
    home = settings.dagster_home
    target = home / "dagster.yaml"
    if not INSTANCE_CONFIG.is_file():
        raise FileNotFoundError(
            f"{INSTANCE_CONFIG} is missing: qlib-assets runs from a checkout (pip install -e .)"
        )
    if not target.is_file() or target.read_bytes() != INSTANCE_CONFIG.read_bytes():
        shutil.copyfile(INSTANCE_CONFIG, target)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def embedded_instance(settings: Settings) -> dg.DagsterInstance:
    prepare_dagster_home(settings)
    return dg.DagsterInstance.get()
