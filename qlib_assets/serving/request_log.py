"""The request log: every request and response, appended durably off the request path.

``RequestLog.append`` only puts a record in a buffer. A writer thread flushes the buffer every
``flush_seconds`` (sooner once ``flush_rows`` are waiting) as one Parquet part file, written to a
temp file, fsynced and renamed, under ``<folder>/<YYYY-MM-DD>/``: a day's partition is its folder.
Parts of past days are compacted into one file when the writer starts or the day turns.

Loss bound: a SIGKILLed server loses only what was not yet renamed into place, that is the
requests answered during the last ``flush_seconds`` plus those of the batch being written;
``loss_bound_seconds`` gives that window (2 x flush_seconds: one wait and one write, which takes
milliseconds). Duplicates cannot arise from a crash mid-compaction: readers drop repeated
request ids.
"""

import os
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from qlib_assets.storage.atomic import write_parquet_atomic

LOG_SCHEMA: dict[str, pl.DataType] = {
    "request_id": pl.String(),
    "time": pl.Datetime("us", "UTC"),
    "client": pl.String(),
    "endpoint": pl.String(),
    "spec": pl.String(),
    "version": pl.String(),
    "slot": pl.String(),
    "session": pl.Date(),
    "instruments": pl.Int64(),
    "inputs_digest": pl.String(),
    "scores": pl.List(pl.Float64()),
    "latency_ms": pl.Float64(),
    "status": pl.Int64(),
    "error": pl.String(),
}
COMPACTED = "compacted.parquet"


def loss_bound_seconds(flush_seconds: float) -> float:
    return 2 * flush_seconds


def _day_of(record: Mapping[str, Any]) -> date:
    return record["time"].astimezone(UTC).date()


class RequestLog:
    def __init__(self, folder: Path, flush_seconds: float = 0.25, flush_rows: int = 2000) -> None:
        self.folder = folder
        self.flush_seconds = flush_seconds
        self.flush_rows = flush_rows
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sequence = 0
        self._today = datetime.now(UTC).date()
        self.written = 0
        self.failures = 0
        folder.mkdir(parents=True, exist_ok=True)
        compact_past_days(folder, self._today)
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()

    def append(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._buffer.append(record)
            full = len(self._buffer) >= self.flush_rows
        if full:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def close(self) -> None:
        """Flush what is buffered and stop the writer."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self._flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self._flush()
            today = datetime.now(UTC).date()
            if today != self._today:
                compact_past_days(self.folder, today)
                self._today = today

    def _flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return
        try:
            self._write(batch)
        except Exception:
            # A full disk must not take the service down; the batch goes back and is retried.
            self.failures += 1
            with self._lock:
                self._buffer = batch + self._buffer
            return
        self.written += len(batch)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        by_day: dict[date, list[dict[str, Any]]] = {}
        for record in batch:
            by_day.setdefault(_day_of(record), []).append(record)
        for day, records in by_day.items():
            self._sequence += 1
            name = f"part-{time.time_ns()}-{os.getpid()}-{self._sequence}.parquet"
            frame = pl.DataFrame(records, schema=LOG_SCHEMA, orient="row")
            write_parquet_atomic(frame, self.folder / day.isoformat() / name)


def log_days(folder: Path) -> list[date]:
    if not folder.is_dir():
        return []
    return sorted(
        date.fromisoformat(p.name)
        for p in folder.iterdir()
        if p.is_dir() and any(p.glob("*.parquet"))
    )


def read_request_log(folder: Path, days: Iterable[date]) -> pl.DataFrame:
    """Every logged request of ``days`` (each once), oldest first."""
    paths = [p for d in days for p in sorted((folder / d.isoformat()).glob("*.parquet"))]
    if not paths:
        return pl.DataFrame(schema=LOG_SCHEMA)
    frame = pl.concat([pl.read_parquet(p) for p in paths], how="vertical_relaxed")
    return frame.unique("request_id", keep="first", maintain_order=True).sort("time")


def compact_past_days(folder: Path, today: date) -> None:
    """One file per past day: parts merged (compacted file written before parts go)."""
    for day in log_days(folder):
        if day >= today:
            continue
        day_dir = folder / day.isoformat()
        parts = sorted(day_dir.glob("part-*.parquet"))
        if not parts:
            continue
        write_parquet_atomic(read_request_log(folder, [day]), day_dir / COMPACTED)
        for part in parts:
            part.unlink()
