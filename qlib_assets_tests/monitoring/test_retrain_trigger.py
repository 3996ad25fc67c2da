"""The retraining decision: one breach, one request and one audit row; cool-downs hold."""

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from qlib_assets.models.audit import AuditLog
from qlib_assets.monitoring.drift import feature_drift
from qlib_assets.monitoring.retrain_trigger import (
    AUDIT_KIND,
    Breach,
    decay_breach,
    decode_cursor,
    drift_breach,
    encode_cursor,
    plan_retraining,
    record_requests,
)
from qlib_assets_tests.monitoring.conftest import SHIFT, DecayCase, ShiftedFeatures

SPEC = "lgb_alpha158"


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    return AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")


def test_decay_breach_requests_one_retrain_with_its_audit_row(
    decay_case: DecayCase, audit: AuditLog
) -> None:
    breach = decay_breach(SPEC, decay_case.result, version="7")
    assert breach is not None and breach.kind == "decay"

    plan = plan_retraining([breach], last_requests={})
    assert plan.requests == (breach,)
    assert plan.cursor == {SPEC: breach.session}
    [entry] = record_requests(plan, audit)

    [stored] = audit.history(SPEC)
    assert stored == entry
    assert (stored.kind, stored.version, stored.to_value) == (AUDIT_KIND, "7", "requested")
    assert stored.reason.startswith(f"decay breach on {breach.session.isoformat()}")
    assert "below bound" in stored.reason
    assert stored.evidence["ic_bound"] == pytest.approx(decay_case.result.evidence["ic_bound"])
    assert stored.evidence["rolling_ic"] < stored.evidence["ic_bound"]

    # The next session's breach falls inside the cool-down: no request, no audit row.
    later = decay_case.predictions.filter(pl.col("date") > breach.session)
    next_day = later.get_column("date").min()
    second = Breach(SPEC, next_day, "decay", "still below", {"rolling_ic": 0.001})
    replan = plan_retraining([second], decode_cursor(encode_cursor(plan.cursor)))
    assert replan.requests == () and replan.suppressed == (second,)
    assert record_requests(replan, audit) == []
    assert audit.count() == 1


def test_cooldown_is_per_spec_and_on_session_dates() -> None:
    day = date(2024, 3, 7)
    breaches = [
        Breach(SPEC, day, "decay", "ic"),
        Breach(SPEC, day, "drift", "share"),  # same session, other kind: one retrain
        Breach(SPEC, day + timedelta(days=5), "decay", "ic"),
        Breach("mlp_alpha158", day + timedelta(days=5), "drift", "share"),
        Breach(SPEC, day + timedelta(days=30), "decay", "ic"),  # cool-down over
    ]
    plan = plan_retraining(breaches, last_requests={}, cooldown=timedelta(days=30))
    assert [(b.spec, b.session, b.kind) for b in plan.requests] == [
        ("lgb_alpha158", day, "decay"),
        ("lgb_alpha158", day + timedelta(days=30), "decay"),
        ("mlp_alpha158", day + timedelta(days=5), "drift"),
    ]
    assert len(plan.suppressed) == 2
    # A replayed older breach (a backfill) does not request again either.
    replay = plan_retraining([Breach(SPEC, day - timedelta(days=40), "decay", "ic")], plan.cursor)
    assert replay.requests == ()


def test_drift_breach_from_a_retrain_suggestion(shifted_features: ShiftedFeatures) -> None:
    reference = shifted_features.reference
    names = ["KLEN", "VMA30", "VMA60", "VSUMP30", "VSUMP60", "ROC5"]
    after = shifted_features.alpha158.filter(pl.col("date") == SHIFT)
    breach = drift_breach(SPEC, feature_drift(reference, after, names))
    assert breach is not None
    assert (breach.kind, breach.session) == ("drift", SHIFT)
    assert breach.evidence["share"] >= 0.5
    assert "KLEN" in breach.evidence["top_features"]
    before = shifted_features.alpha158.filter(pl.col("date") == shifted_features.before[-1])
    assert drift_breach(SPEC, feature_drift(reference, before, names)) is None


def test_cursor_round_trip() -> None:
    cursor = {"b": date(2024, 3, 1), "a": date(2024, 1, 2)}
    assert decode_cursor(encode_cursor(cursor)) == cursor
    assert decode_cursor(None) == {} and decode_cursor("") == {}
