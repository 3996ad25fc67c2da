"""Automatic gates a new version passes before anything else (candidate -> validated/rejected).

Gates, in order: the artifact loads on the CPU (``loads_on_cpu``); it scores the spec's fixed
sample twice, and a second load once more, to identical finite scores (``deterministic``); its
feature schema and library versions match what is served (``compatible``); its valid IC is at
or above the floor (``ic_floor``); scoring the sample takes at most the bound (``latency``).
A gate that cannot run because an earlier one failed fails with that reason as its evidence.
"""

import math
import time
from dataclasses import dataclass, field
from typing import Any

from qlib_assets.lifecycle.registry_access import registry_of
from qlib_assets.lifecycle.sample import load_on_cpu, score_sample, scoring_sample
from qlib_assets.models.audit import AuditEntry
from qlib_assets.models.specs import ModelSpec
from qlib_assets.models.window_training import serving_features
from qlib_assets.settings import Settings

GATES = ("loads_on_cpu", "deterministic", "compatible", "ic_floor", "latency")
ACTOR = "gates"


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GateReport:
    spec: str
    version: str
    results: tuple[GateResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list[str]:
        return [r.name for r in self.results if not r.passed]

    def result(self, name: str) -> GateResult:
        return next(r for r in self.results if r.name == name)

    def evidence(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "gates": {r.name: {"passed": r.passed, **r.evidence} for r in self.results},
        }

    def summary(self) -> str:
        if self.passed:
            return f"{self.spec} v{self.version}: every gate passed"
        first = self.result(self.failed[0])
        why = first.evidence.get("error") or first.evidence.get("problems") or first.evidence
        return f"{self.spec} v{self.version}: gate {first.name} failed: {why}"


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def run_gates(settings: Settings, spec: ModelSpec, version: str) -> GateReport:
    """Run every gate on ``spec.name`` v``version``; writes nothing."""
    version = str(version)
    registry = registry_of(settings)
    tags = registry.version(spec.name, version).tags
    conf = settings.lifecycle
    results: list[GateResult] = []

    scorer = None
    started = time.perf_counter()
    try:
        scorer = load_on_cpu(settings.mlflow_uri, spec.name, version)
        results.append(
            GateResult("loads_on_cpu", True, {"seconds": round(time.perf_counter() - started, 3)})
        )
    except Exception as exc:
        results.append(GateResult("loads_on_cpu", False, {"error": _error(exc)}))

    first = None
    if scorer is None:
        results.append(GateResult("deterministic", False, {"error": "the model did not load"}))
    else:
        try:
            sample = scoring_sample(settings, spec)
            first = score_sample(scorer, sample)
            again = score_sample(scorer, sample)
            reloaded = score_sample(load_on_cpu(settings.mlflow_uri, spec.name, version), sample)
            scores = first.frame.get_column("score")
            evidence: dict[str, Any] = {
                "sample": str(sample.path),
                "sample_sha256": sample.sha256,
                "rows": sample.frame.height,
                "scores_digest": first.digest(),
                "finite": bool(scores.is_finite().all()),
                "same_model_equal": first.frame.equals(again.frame),
                "reloaded_equal": first.frame.equals(reloaded.frame),
            }
            ok = evidence["finite"] and evidence["same_model_equal"] and evidence["reloaded_equal"]
            results.append(GateResult("deterministic", bool(ok), evidence))
        except Exception as exc:
            results.append(GateResult("deterministic", False, {"error": _error(exc)}))

    try:
        report = registry.check_compatibility(spec.name, version, serving_features(settings, spec))
        results.append(GateResult("compatible", report.ok, report.evidence()))
    except Exception as exc:
        results.append(GateResult("compatible", False, {"error": _error(exc)}))

    raw_ic = tags.get("metric.valid_ic")
    valid_ic = float(raw_ic) if raw_ic is not None else math.nan
    results.append(
        GateResult(
            "ic_floor",
            bool(valid_ic >= conf.ic_floor),
            {"valid_ic": raw_ic, "floor": conf.ic_floor},
        )
    )

    if first is None:
        results.append(GateResult("latency", False, {"error": "the sample was not scored"}))
    else:
        results.append(
            GateResult(
                "latency",
                first.seconds <= conf.max_score_seconds,
                {
                    "seconds": round(first.seconds, 4),
                    "bound_seconds": conf.max_score_seconds,
                    "rows": first.frame.height,
                },
            )
        )
    return GateReport(spec.name, version, tuple(results))


def apply_gates(settings: Settings, report: GateReport, actor: str = ACTOR) -> AuditEntry:
    """candidate -> validated when every gate passed, else -> rejected; the report is the audit
    row's evidence and each gate's outcome a ``gate.<name>`` tag on the version."""
    registry = registry_of(settings)
    for result in report.results:
        registry.client.set_model_version_tag(
            report.spec, report.version, f"gate.{result.name}", "pass" if result.passed else "fail"
        )
    registry.client.set_model_version_tag(
        report.spec, report.version, "gate.failed", ",".join(report.failed) or "none"
    )
    deterministic = report.result("deterministic").evidence
    for key in ("sample_sha256", "scores_digest"):
        if key in deterministic:
            registry.client.set_model_version_tag(
                report.spec, report.version, f"gate.{key}", deterministic[key]
            )
    target = "validated" if report.passed else "rejected"
    return registry.transition(
        report.spec, report.version, target, actor, report.summary(), report.evidence()
    )


def gate_version(
    settings: Settings, spec: ModelSpec, version: str, actor: str = ACTOR
) -> GateReport:
    """Run the gates of a candidate and apply the outcome."""
    report = run_gates(settings, spec, version)
    apply_gates(settings, report, actor)
    return report


def pending_candidates(settings: Settings, spec: ModelSpec) -> list[str]:
    """Versions of the spec still waiting for their gates, oldest first."""
    found = registry_of(settings).search(spec=spec.name, state="candidate")
    return [str(mv.version) for mv in found]
