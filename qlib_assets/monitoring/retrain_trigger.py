"""Which specs to retrain after drift or decay breaches: the decision of the retraining sensor.

One breach, one retrain: a spec's breach requests retraining unless an earlier request for that
spec is less than ``cooldown`` before it, measured on session dates (not wall time, so a backfill
that replays months of breaches decides exactly as the daily runs did). A rolling IC stays below
its bound for up to a window after the cause, and every one of those sessions is a breach; the
cool-down turns them into one request.

:func:`plan_retraining` is pure; :func:`record_requests` writes one audit row per request (the
reason and the evidence) before the sensor yields its run requests and moves its cursor.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from qlib_assets.models.audit import AuditEntry, AuditLog
from qlib_assets.monitoring.decay import DecayResult
from qlib_assets.monitoring.drift import DriftResult

BreachKind = Literal["drift", "decay"]
COOLDOWN = timedelta(days=30)  # about 20 sessions: one decay window
ACTOR = "monitoring"
AUDIT_KIND = "retrain"
AUDIT_SUBJECT = "retraining"


@dataclass(frozen=True)
class Breach:
    """``version``: the model version whose predictions or inputs breached, when known."""

    spec: str
    session: date
    kind: BreachKind
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    version: str | None = None


@dataclass(frozen=True)
class RetrainPlan:
    """``requests``: the breaches that request retraining, at most one per spec; ``suppressed``:
    the breaches inside a cool-down; ``cursor``: spec -> session of its last request."""

    requests: tuple[Breach, ...]
    suppressed: tuple[Breach, ...]
    cursor: dict[str, date]


def decay_breach(spec: str, result: DecayResult, version: str | None = None) -> Breach | None:
    """The breach of a decay result whose latest session is in breach, else None."""
    if not result.breached:
        return None
    ev = result.evidence
    reason = (
        f"rolling {ev['window']}-session IC {ev['rolling_ic']:.4f} below bound "
        f"{ev['ic_bound']:.4f} (valid IC {ev['valid_ic']:.4f} x {ev['ratio']}, floor {ev['floor']})"
    )
    session = date.fromisoformat(ev["session"])
    return Breach(spec, session, "decay", reason, dict(ev), version)


def drift_breach(spec: str, result: DriftResult, version: str | None = None) -> Breach | None:
    """The breach of a drift result whose latest session suggests ``retrain``, else None."""
    latest = result.session()
    if latest.action != "retrain":
        return None
    limit = "per-column thresholds" if result.threshold is None else result.threshold
    reason = (
        f"{latest.drifted} of {latest.columns} columns drifted ({latest.share:.0%}, "
        f"{result.method} >= {limit}); most: {', '.join(latest.top_features[:5])}"
    )
    evidence = {
        "session": latest.date.isoformat(),
        "method": result.method,
        "threshold": result.threshold,
        "share": latest.share,
        "drifted": latest.drifted,
        "columns": latest.columns,
        "top_features": list(latest.top_features),
        "report": str(latest.report) if latest.report else None,
    }
    return Breach(spec, latest.date, "drift", reason, evidence, version)


def plan_retraining(
    breaches: Iterable[Breach],
    last_requests: Mapping[str, date],
    cooldown: timedelta = COOLDOWN,
) -> RetrainPlan:
    """Decide, per spec and in session order, which breaches request retraining.

    A breach requests when its spec has no earlier request or the last one is at least
    ``cooldown`` before the breach's session; otherwise (including breaches of sessions before
    the last request) it is suppressed. Drift and decay breaches share one cool-down per spec.
    """
    cursor = dict(last_requests)
    requests: list[Breach] = []
    suppressed: list[Breach] = []
    for breach in sorted(breaches, key=lambda b: (b.spec, b.session, b.kind)):
        last = cursor.get(breach.spec)
        if last is not None and breach.session < last + cooldown:
            suppressed.append(breach)
            continue
        requests.append(breach)
        cursor[breach.spec] = breach.session
    return RetrainPlan(tuple(requests), tuple(suppressed), cursor)


def record_requests(plan: RetrainPlan, audit: AuditLog, actor: str = ACTOR) -> list[AuditEntry]:
    """One audit row per request: model = spec, reason and evidence of the breach."""
    return [
        audit.record(
            model=breach.spec,
            version=breach.version or "unknown",
            kind=AUDIT_KIND,
            subject=AUDIT_SUBJECT,
            from_value=None,
            to_value="requested",
            actor=actor,
            reason=f"{breach.kind} breach on {breach.session.isoformat()}: {breach.reason}",
            evidence={
                "kind": breach.kind,
                "session": breach.session.isoformat(),
                **breach.evidence,
            },
        )
        for breach in plan.requests
    ]


def encode_cursor(cursor: Mapping[str, date]) -> str:
    """The sensor cursor: JSON of spec -> ISO session date."""
    return json.dumps({spec: day.isoformat() for spec, day in sorted(cursor.items())})


def decode_cursor(text: str | None) -> dict[str, date]:
    if not text:
        return {}
    return {spec: date.fromisoformat(day) for spec, day in json.loads(text).items()}
