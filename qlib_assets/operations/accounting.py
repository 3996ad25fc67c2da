"""What one step costs: CPU seconds, peak memory, wall time and bytes written (psutil).

``measure()`` wraps the body of a step. CPU time and written bytes are the differences of the
process counters (children included for CPU, so a multiprocess library call is charged too);
the peak resident memory is sampled by a background thread, since the kernel's high-water mark
covers the whole process life and a worker process runs many steps.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil

SAMPLE_SECONDS = 0.05


@dataclass
class ResourceUsage:
    """One measured step; filled in when the ``measure()`` block exits."""

    cpu_seconds: float = 0.0
    peak_memory_mb: float = 0.0
    wall_seconds: float = 0.0
    bytes_written: int = 0

    def as_metadata(self) -> dict[str, float | int]:
        return {
            "cpu_seconds": round(self.cpu_seconds, 3),
            "peak_memory_mb": round(self.peak_memory_mb, 1),
            "wall_seconds": round(self.wall_seconds, 3),
            "bytes_written": self.bytes_written,
        }


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def _written(process: psutil.Process) -> int:
    """Bytes this process handed to write() (page cache included, unlike storage-level counts)."""
    try:
        counters = process.io_counters()
    except (psutil.AccessDenied, AttributeError):
        return 0
    return int(getattr(counters, "write_chars", counters.write_bytes))


class _PeakSampler(threading.Thread):
    def __init__(self, process: psutil.Process) -> None:
        super().__init__(name="peak-rss-sampler", daemon=True)
        self.process = process
        self.peak = process.memory_info().rss
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        self.done.set()
        self.join()
        return max(self.peak, self.process.memory_info().rss)


@contextmanager
def measure() -> Iterator[ResourceUsage]:
    """Measure the block; the yielded object holds the figures after the block."""
    process = psutil.Process()
    usage = ResourceUsage()
    sampler = _PeakSampler(process)
    cpu, written, started = _cpu_seconds(process), _written(process), time.perf_counter()
    sampler.start()
    try:
        yield usage
    finally:
        usage.peak_memory_mb = sampler.stop() / 2**20
        usage.wall_seconds = time.perf_counter() - started
        usage.cpu_seconds = _cpu_seconds(process) - cpu
        usage.bytes_written = _written(process) - written
