"""A CLI-style in-process run of raw_bars + qlib_dataset that SIGKILLs itself at a kill point.

Run as ``python -m qlib_assets_tests.runs.kill_child POINT START END`` with QLIB_ASSETS_HOME
set; the kill points are inside and around the provider write.
"""

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from qlib_assets.defs.build import build_definitions
from qlib_assets.instance import embedded_instance
from qlib_assets.orchestration import materialize_range
from qlib_assets.settings import load_settings
from qlib_assets.storage import qlib_bin, qlib_journal


def _kill(*_: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _after(owner: type, name: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        _kill()
        return result

    setattr(owner, name, wrapped)


POINTS: dict[str, Callable[[], None]] = {
    # the journal is recorded, no feature byte written yet
    "journal_begun": lambda: _after(qlib_journal.Journal, "begin"),
    # feature files written, calendar and instruments not yet: the torn state
    "features_written": lambda: _after(qlib_bin.QlibProviderWriter, "_apply"),
    # the write committed, Dagster has not recorded the materialization
    "committed": lambda: _after(qlib_journal.Journal, "commit"),
    # raw_bars written to the lake, the provider not started
    "lake_written": lambda: _after(qlib_bin.QlibProviderWriter, "sessions"),
}


def main(point: str, start: str, end: str) -> None:
    POINTS[point]()
    settings = load_settings()
    materialize_range(
        build_definitions(settings),
        embedded_instance(settings),
        ["raw_bars", "qlib_dataset"],
        start,
        end,
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
