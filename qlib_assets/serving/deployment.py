"""The deployment pipeline of one validated version (seed 004 requirement 5).

Steps: (1) the staging service takes the version (its alias, ``challenger`` by default, moves to
it and the service swaps slots by itself); (2) health: /health and /ready of staging, and the
version active there; (3) a performance test at ``serving.perf_rate`` for ``perf_seconds``
(p50/p99 latency, error rate against ``p99_ms`` and ``max_error_rate``); (4) the results go on the
version (MLflow tags ``deploy.staging.*``) and in the audit table; (5) production, by
``serving.strategy``: blue-green (``lifecycle.promote`` under the prod environment, which needs
a recorded approval, then the prod service is checked to serve it) or canary (the ``canary``
alias; the prod service's analysis promotes or rolls back, and the pipeline waits for it).

A failed step rolls back by itself: staging's alias returns to what it was; a prod service that
does not come to serve the version healthy brings back the previous champion
(``lifecycle.decisions.rollback``). A refused approval changes nothing in prod.
"""

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import polars as pl

from qlib_assets.lifecycle.champion import champion, next_session_to_serve
from qlib_assets.lifecycle.decisions import rollback
from qlib_assets.lifecycle.promotion import last_promotion_session, promote, record_decision
from qlib_assets.lifecycle.registry_access import registry_of
from qlib_assets.models.specs import ModelSpec
from qlib_assets.serving.load import run_load
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake

ACTOR = "deployment"
PERF_INSTRUMENTS = 300
Outcome = Literal["deployed", "refused", "rolled_back"]


@dataclass(frozen=True)
class Step:
    name: str
    passed: bool
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class DeploymentReport:
    spec: str
    version: str
    strategy: str
    steps: list[Step] = field(default_factory=list)
    outcome: Outcome = "deployed"
    reason: str = ""

    def evidence(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "outcome": self.outcome,
            "steps": {s.name: {"passed": s.passed, **s.evidence} for s in self.steps},
        }


def service_url(settings: Settings, env: str) -> str:
    return f"http://{settings.serving.host}:{settings.serving.port(env)}"


def active_version(url: str, spec: str) -> str | None:
    views = httpx.get(f"{url}/v1/models", timeout=10).json()["specs"]
    view = next((v for v in views if v["spec"] == spec), None)
    if view is None:
        return None
    return next((s["version"] for s in view["slots"] if s["active"]), None)


def wait_serving(url: str, spec: str, version: str, timeout: float) -> dict[str, Any]:
    """Wait until the service at ``url`` serves ``version`` and is ready; the evidence."""
    deadline = time.monotonic() + timeout
    seen: str | None = None
    while time.monotonic() < deadline:
        try:
            seen = active_version(url, spec)
            ready = httpx.get(f"{url}/ready", timeout=10)
            if seen == version and ready.status_code == 200:
                health = httpx.get(f"{url}/health", timeout=10).json()
                return {"serving": seen, "ready": ready.json(), "health": health}
        except httpx.HTTPError as exc:
            seen = f"unreachable: {exc!r}"
        time.sleep(0.25)
    raise TimeoutError(f"{url} does not serve {spec} v{version} after {timeout:.0f}s (saw {seen})")


def performance_test(settings: Settings, spec: ModelSpec, url: str) -> Step:
    lake = Lake(settings.lake_dir)
    day = max(lake.days(spec.features[0].asset))
    names = (
        lake.read_days(spec.features[0].asset, [day])
        .get_column("instrument")
        .head(PERF_INSTRUMENTS)
        .to_list()
    )
    body = {"spec": spec.name, "date": day.isoformat(), "instruments": names}
    conf = settings.serving
    result = run_load(f"{url}/v1/predict", lambda i: body, conf.perf_rate, conf.perf_seconds)
    summary = result.summary()
    error_rate = result.failed / result.sent if result.sent else 1.0
    problems = []
    if error_rate > conf.max_error_rate:
        problems.append(f"error rate {error_rate:.2%} > {conf.max_error_rate:.2%}")
    if summary["p99_ms"] > conf.p99_ms:
        problems.append(f"p99 {summary['p99_ms']:.0f} ms > {conf.p99_ms:.0f} ms")
    evidence = {
        **{k: v for k, v in summary.items() if k != "statuses"},
        "error_rate": error_rate,
        "instruments": len(names),
        "problems": problems,
    }
    return Step("performance", not problems, evidence)


def _record(settings: Settings, report: DeploymentReport, stage: str) -> None:
    registry = registry_of(settings)
    for step in report.steps:
        for key, value in step.evidence.items():
            if isinstance(value, int | float | str) and not isinstance(value, bool):
                registry.client.set_model_version_tag(
                    report.spec, report.version, f"deploy.{stage}.{step.name}.{key}", str(value)
                )
        registry.client.set_model_version_tag(
            report.spec,
            report.version,
            f"deploy.{stage}.{step.name}",
            "pass" if step.passed else "fail",
        )
    record_decision(
        settings,
        report.spec,
        report.version,
        f"deployment.{stage}",
        report.outcome,
        ACTOR,
        report.reason or f"{stage}: every step passed",
        report.evidence(),
    )


def _restore_staging(settings: Settings, spec: str, alias: str, previous: str | None) -> None:
    registry = registry_of(settings)
    if previous is None:
        registry.remove_alias(spec, alias, ACTOR, "deployment failed: staging restored")
    else:
        registry.set_alias(spec, alias, previous, ACTOR, "deployment failed: staging restored")


def deploy_version(
    settings: Settings, spec: ModelSpec, version: str, timeout: float = 180
) -> DeploymentReport:
    """Take ``version`` through staging to prod; see the module doc."""
    version = str(version)
    conf = settings.serving
    registry = registry_of(settings)
    report = DeploymentReport(spec.name, version, conf.strategy)
    staging_alias = conf.alias("staging")
    staging = service_url(settings, "staging")
    previous = registry.aliases(spec.name).get(staging_alias)
    registry.set_alias(spec.name, staging_alias, version, ACTOR, "deploy to staging")
    try:
        report.steps.append(
            Step("staging", True, wait_serving(staging, spec.name, version, timeout))
        )
        report.steps.append(performance_test(settings, spec, staging))
    except Exception as exc:
        report.steps.append(Step("staging", False, {"error": f"{type(exc).__name__}: {exc}"}))
    failed = [s.name for s in report.steps if not s.passed]
    if failed:
        report.outcome = "rolled_back"
        report.reason = (
            f"staging step(s) {failed} failed; staging {staging_alias} restored to {previous}"
        )
        _restore_staging(settings, spec.name, staging_alias, previous)
        _record(settings, report, "staging")
        return report
    _record(settings, report, "staging")
    return _to_prod(settings, spec, version, report, timeout)


def _to_prod(
    settings: Settings, spec: ModelSpec, version: str, report: DeploymentReport, timeout: float
) -> DeploymentReport:
    prod_settings = settings.model_copy(update={"env": "prod"})
    prod = service_url(settings, "prod")
    registry = registry_of(settings)
    before = champion(settings, spec.name)
    if settings.serving.strategy == "canary":
        registry.set_alias(spec.name, "canary", version, ACTOR, "canary in prod")
        deadline = time.monotonic() + timeout
        while "canary" in registry.aliases(spec.name) and time.monotonic() < deadline:
            time.sleep(0.5)
        promoted = registry.aliases(spec.name).get("champion") == version
        result = registry.version(spec.name, version).tags.get("canary_result", "pending")
        report.steps.append(Step("canary", promoted, {"canary_result": result}))
        if not promoted:
            report.outcome = "rolled_back"
            report.reason = f"the prod canary did not promote v{version} ({result})"
        _record(settings, report, "prod")
        return report
    effective = next_session_to_serve(settings, spec, version)
    latest = last_promotion_session(settings, spec.name)
    outcome = promote(
        prod_settings,
        spec,
        version,
        effective_from=max(effective, latest) if latest else effective,
        actor=ACTOR,
        reason="deployment: staging passed",
        evidence=report.evidence(),
    )
    report.steps.append(Step("approval", outcome.promoted, {"reason": outcome.reason}))
    if not outcome.promoted:
        report.outcome = "refused"
        report.reason = outcome.reason
        _record(settings, report, "prod")
        return report
    try:
        report.steps.append(Step("prod", True, wait_serving(prod, spec.name, version, timeout)))
    except Exception as exc:
        report.steps.append(Step("prod", False, {"error": f"{type(exc).__name__}: {exc}"}))
        report.outcome = "rolled_back"
        report.reason = f"prod did not serve v{version} healthy: {exc}; back to v{before}"
        if before is not None:
            rollback(prod_settings, spec, version, before, report.reason, report.evidence(), ACTOR)
    _record(settings, report, "prod")
    return report


def report_frame(report: DeploymentReport) -> pl.DataFrame:
    return pl.DataFrame(
        [{"step": s.name, "passed": s.passed, "evidence": str(s.evidence)} for s in report.steps]
    )
