"""The allocator setting qlib_assets makes for polars' jemalloc, in fresh interpreters."""

import os
import subprocess
import sys


def _conf_after_import(environ: dict[str, str]) -> str:
    code = "import qlib_assets, polars, os; print(os.environ['_RJEM_MALLOC_CONF'])"
    done = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_importing_qlib_assets_first_keeps_freed_pages_ten_seconds() -> None:
    environ = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    # Polars puts its own setting first; jemalloc takes the last value of each option.
    assert _conf_after_import(environ).endswith(",dirty_decay_ms:10000")


def test_a_setting_in_the_environment_wins() -> None:
    environ = {**os.environ, "_RJEM_MALLOC_CONF": "dirty_decay_ms:2000"}
    assert _conf_after_import(environ).endswith(",dirty_decay_ms:2000")
