"""Canary routing and analysis.

Routing is sticky: a client's bucket is the SHA-256 of its id mapped to [0, 100), so the same
client always reaches the same version for a given weight, and raising the weight only adds
clients. The analysis compares the canary with the champion over the same period: error rate,
p99 latency and the score distribution (two-sample Kolmogorov-Smirnov distance, scipy).
"""

import hashlib
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from qlib_assets.serving.slots import LoadedModel

SCORE_SAMPLE = 20_000


def client_bucket(client_id: str) -> float:
    digest = hashlib.sha256(client_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def routes_to_canary(client_id: str, weight: float) -> bool:
    return client_bucket(client_id) < weight


@dataclass
class ArmStats:
    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def add(self, seconds: float, scores: np.ndarray | None, failed: bool) -> None:
        self.requests += 1
        self.errors += int(failed)
        self.latencies.append(seconds)
        if scores is not None and len(self.scores) < SCORE_SAMPLE:
            self.scores.extend(float(s) for s in scores[np.isfinite(scores)])

    def p99(self) -> float | None:
        return float(np.quantile(self.latencies, 0.99)) if self.latencies else None

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.errors / self.requests if self.requests else None,
            "p99_ms": None if (p := self.p99()) is None else p * 1000,
            "scores": len(self.scores),
        }


@dataclass(frozen=True)
class CanaryPolicy:
    weight: float
    min_requests: int
    max_minutes: float
    max_error_rate: float
    p99_ratio: float
    max_ks: float


@dataclass(frozen=True)
class CanaryDecision:
    action: Literal["wait", "promote", "rollback"]
    reasons: tuple[str, ...]
    evidence: dict[str, Any]


class Canary:
    """One canary of one spec: its model, its weight and what both arms saw since it began."""

    def __init__(self, model: LoadedModel, policy: CanaryPolicy) -> None:
        self.model = model
        self.policy = policy
        self.weight = policy.weight
        self.started = time.monotonic()
        self.canary = ArmStats()
        self.champion = ArmStats()
        self.decision: CanaryDecision | None = None
        self.lock = threading.Lock()

    def record(self, arm: str, seconds: float, scores: np.ndarray | None, failed: bool) -> None:
        with self.lock:
            (self.canary if arm == "canary" else self.champion).add(seconds, scores, failed)

    def analyse(self, now: float | None = None) -> CanaryDecision:
        """``wait`` until enough requests or time; then ``promote`` or ``rollback``.

        A canary whose errors already exceed what the whole sample may hold is rolled back at
        once: more requests cannot bring its error rate under the bound.
        """
        from scipy.stats import ks_2samp

        policy = self.policy
        with self.lock:
            canary, champion = self.canary, self.champion
            minutes = ((now or time.monotonic()) - self.started) / 60
            evidence: dict[str, Any] = {
                "version": self.model.version,
                "minutes": round(minutes, 3),
                "canary": canary.summary(),
                "champion": champion.summary(),
                "policy": policy.__dict__,
            }
            allowed_errors = math.floor(policy.max_error_rate * policy.min_requests)
            if canary.errors > allowed_errors:
                return CanaryDecision(
                    "rollback",
                    (
                        f"{canary.errors} failed canary requests, more than the {allowed_errors} "
                        f"allowed in {policy.min_requests} (error rate bound "
                        f"{policy.max_error_rate:.2%})",
                    ),
                    evidence,
                )
            if canary.requests < policy.min_requests and minutes < policy.max_minutes:
                return CanaryDecision("wait", (), evidence)
            reasons = []
            if canary.requests == 0:
                reasons.append(f"no canary traffic in {minutes:.1f} minutes")
            elif canary.errors / canary.requests > policy.max_error_rate:
                reasons.append(
                    f"error rate {canary.errors / canary.requests:.2%} above "
                    f"{policy.max_error_rate:.2%}"
                )
            canary_p99, champion_p99 = canary.p99(), champion.p99()
            if canary_p99 and champion_p99 and canary_p99 > policy.p99_ratio * champion_p99:
                reasons.append(
                    f"p99 {canary_p99 * 1000:.1f} ms above {policy.p99_ratio} x the champion's "
                    f"{champion_p99 * 1000:.1f} ms"
                )
            if canary.scores and champion.scores:
                ks = ks_2samp(canary.scores, champion.scores)
                evidence["ks_statistic"] = float(ks.statistic)
                evidence["ks_pvalue"] = float(ks.pvalue)
                if ks.statistic > policy.max_ks:
                    reasons.append(
                        f"score distribution differs from the champion's: KS {ks.statistic:.3f} "
                        f"> {policy.max_ks}"
                    )
            action: Literal["promote", "rollback"] = "rollback" if reasons else "promote"
            return CanaryDecision(action, tuple(reasons) or ("within every bound",), evidence)
