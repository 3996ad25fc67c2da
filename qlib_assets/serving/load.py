"""An open-loop load generator for the service: requests are sent on a fixed schedule
(``rate`` per second) whatever the answers' pace, and each latency runs from the scheduled
send time, so a stalled server shows as latency instead of silently lowering the rate."""

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np


@dataclass
class LoadResult:
    rate: float
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    versions: list[tuple[float, str]] = field(default_factory=list)  # (scheduled offset, version)
    failures: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)

    def percentile_ms(self, q: float) -> float:
        return float(np.quantile(self.latencies, q) * 1000) if self.latencies else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "rate": self.rate,
            "achieved_rate": self.sent / self.seconds if self.seconds else 0.0,
            "p50_ms": self.percentile_ms(0.5),
            "p99_ms": self.percentile_ms(0.99),
            "statuses": dict(self.statuses),
        }


def run_load(
    url: str,
    body: Callable[[int], dict[str, Any]],
    rate: float,
    seconds: float,
    headers: Callable[[int], dict[str, str]] | None = None,
    workers: int = 64,
    timeout: float = 60.0,
    until: Callable[[LoadResult], bool] | None = None,
    max_seconds: float | None = None,
) -> LoadResult:
    """POST ``body(i)`` to ``url`` at ``rate`` per second for ``seconds``; with ``until``, go
    on past ``seconds`` (up to ``max_seconds``) until it holds for the answers so far."""
    result = LoadResult(rate, seconds)
    lock = threading.Lock()
    local = threading.local()
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=timeout, limits=limits)
        return local.client

    def send(index: int, scheduled: float, started: float) -> None:
        try:
            answer = client().post(
                url, json=body(index), headers=headers(index) if headers else None
            )
            status, version = answer.status_code, answer.json().get("version", "")
            error = None if status == 200 else f"{status}: {answer.text[:300]}"
        except Exception as exc:
            status, version, error = 0, "", f"{type(exc).__name__}: {exc}"
        latency = time.perf_counter() - scheduled
        with lock:
            result.statuses[status] += 1
            result.latencies.append(latency)
            result.versions.append((scheduled - started, version))
            if error is not None:
                result.failures.append(error)

    least = int(rate * seconds)
    most = int(rate * (max_seconds or seconds))
    with ThreadPoolExecutor(workers, thread_name_prefix="load") as pool:
        started = time.perf_counter()
        for index in range(most):
            if index >= least:
                with lock:
                    done = until is None or until(result)
                if done:
                    break
            scheduled = started + index / rate
            pause = scheduled - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            pool.submit(send, index, scheduled, started)
    result.versions.sort()
    result.seconds = result.sent / rate
    return result
