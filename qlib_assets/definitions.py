"""The code location workspace.yaml loads: the asset graph for the environment's settings."""

from qlib_assets.defs.build import build_definitions
from qlib_assets.settings import load_settings

defs = build_definitions(load_settings())
