"""A reader of the provider sees a committed state while a write is in flight or was killed."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

from qlib_assets.storage.provider_read import committed_provider
from qlib_assets.storage.qlib_bin import QlibProviderWriter
from qlib_assets.storage.qlib_journal import JOURNAL_DIR
from qlib_assets_tests.storage.test_qlib_bin import (
    _CHILD,
    DAYS,
    LIFE,
    REPO,
    make_bars,
    read_qlib,
    snapshot,
)


def _start_blocked_writer(tmp_path: Path, root: Path) -> tuple[subprocess.Popen, Path]:
    """A writer stopped inside its journal, after some feature files changed (see the FIFO)."""
    (root / "features" / "sz300999").mkdir()
    os.mkfifo(root / "features" / "sz300999" / "close.day.bin")
    window = DAYS[6:9]  # a range rewrite: old bytes overwritten in place
    payload = tmp_path / "bars.parquet"
    make_bars(window, seed=22, life={**LIFE, "SZ300999": (0, 19, set())}).write_parquet(payload)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root), str(payload), ",".join(map(str, window))],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return child, root / JOURNAL_DIR / "manifest.json"


def test_reader_waits_for_a_write_then_reads_the_rolled_back_state(tmp_path: Path) -> None:
    root = tmp_path / "provider"
    bars = make_bars(DAYS[:10], seed=21)
    QlibProviderWriter(root).sync(bars, DAYS[:10])
    committed = read_qlib(root, sorted(LIFE), DAYS[0], DAYS[9])
    before = snapshot(root)
    child, manifest = _start_blocked_writer(tmp_path, root)
    seen: list[pd.DataFrame] = []

    def reader() -> None:
        with committed_provider(root):
            seen.append(read_qlib(root, sorted(LIFE), DAYS[0], DAYS[9]))

    thread = threading.Thread(target=reader)
    try:
        deadline = time.monotonic() + 120
        while not manifest.is_file():
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.5)  # the writer is now stuck opening the FIFO, files half rewritten
        assert snapshot(root) != before
        thread.start()
        thread.join(2.0)
        assert thread.is_alive() and not seen  # waits while the write is in flight
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    thread.join(60)
    assert not thread.is_alive()
    pd.testing.assert_frame_equal(seen[0], committed)
    assert not manifest.exists()
    assert {k: v for k, v in snapshot(root).items() if "sz300999" not in k} == before


def test_writer_waits_for_a_reader(tmp_path: Path) -> None:
    root = tmp_path / "provider"
    writer = QlibProviderWriter(root)
    writer.sync(make_bars(DAYS[:4], seed=23), DAYS[:4])
    finished = threading.Event()

    def write() -> None:
        QlibProviderWriter(root).sync(make_bars(DAYS[4:6], seed=24), DAYS[4:6])
        finished.set()

    with committed_provider(root):
        thread = threading.Thread(target=write)
        thread.start()
        assert not finished.wait(1.0)
        assert writer.sessions() == DAYS[:4]
    thread.join(60)
    assert finished.is_set() and writer.sessions() == DAYS[:6]
