"""The state of a running service: which model serves each spec, how a request is scored, and
the thread that keeps the slots in step with the registry's aliases.

The service follows one alias per environment (``settings.serving.aliases``). A move of that
alias is deployed blue-green: load and verify in the idle slot, switch, keep the old slot warm.
A ``canary`` alias (followed where the service's alias is ``champion``) starts a canary that
takes ``canary_weight`` % of clients until its analysis promotes it (the champion alias moves to
it) or rolls it back (the canary alias is removed), audited either way. Manual admin actions
(deploy, switch) stand until the alias moves again.
"""

import dataclasses
import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import polars as pl

from qlib_assets.models.platform import audit_log, platform_specs
from qlib_assets.models.registry import ModelRegistry
from qlib_assets.models.specs import ModelSpec
from qlib_assets.online.ensemble import average_ensemble
from qlib_assets.serving.canary import Canary, CanaryDecision, CanaryPolicy, routes_to_canary
from qlib_assets.serving.inputs import (
    RequestError,
    SessionFeatures,
    field_error,
    rows_frame,
    select_instruments,
)
from qlib_assets.serving.metrics import ServingMetrics
from qlib_assets.serving.request_log import RequestLog
from qlib_assets.serving.schemas import (
    ModelsResponse,
    PredictRequest,
    PredictResponse,
    Score,
    SignalResponse,
    SignalRow,
    SlotView,
    SpecView,
)
from qlib_assets.serving.slots import LoadedModel, Serving, SlotPair, load_model
from qlib_assets.serving.verification import VerificationFailed, verify_model
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake

CANARY_ALIAS = "canary"
ACTOR = "serving"


@dataclasses.dataclass
class Outcome:
    """What a finished request leaves in the log and the metrics."""

    spec: str = ""
    version: str = ""
    slot: str = ""
    session: date | None = None
    instruments: int = 0
    digest: str = ""
    scores: list[float | None] = dataclasses.field(default_factory=list)


def inputs_digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()[:32]


class PredictionService:
    def __init__(self, settings: Settings, registry: ModelRegistry | None = None) -> None:
        self.settings = settings
        self.config = settings.serving
        self.env = settings.env
        self.alias = self.config.alias(settings.env)
        self.registry = registry or ModelRegistry(settings.mlflow_uri, audit_log(settings))
        all_specs = platform_specs(settings)
        names = self.config.specs or sorted(all_specs)
        unknown = [n for n in names if n not in all_specs]
        if unknown:
            raise ValueError(f"serving.specs names unknown spec(s) {unknown}; have {all_specs}")
        self.specs: dict[str, ModelSpec] = {n: all_specs[n] for n in names}
        self.features = SessionFeatures(Lake(settings.lake_dir), settings.calendar)
        self.pairs = {name: SlotPair(name) for name in self.specs}
        self.canaries: dict[str, Canary] = {}
        self.alias_versions: dict[str, str | None] = dict.fromkeys(self.specs)
        self._followed: dict[tuple[str, str], str | None] = {}
        self.last_error: dict[str, str] = {}
        self.metrics = ServingMetrics()
        self.log: RequestLog | None = None
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None
        self._sync_lock = threading.Lock()

    # -- lifecycle of the process -------------------------------------------------------------

    def start(self) -> None:
        """Open the request log, deploy what the aliases name, then follow them."""
        self.log = RequestLog(
            self.settings.serving_dir / "request_log",
            self.config.flush_seconds,
            self.config.flush_rows,
        )
        self.sync()
        self._follower = threading.Thread(target=self._follow, name="alias-follower", daemon=True)
        self._follower.start()

    def close(self) -> None:
        self._stop.set()
        if self._follower is not None:
            self._follower.join()
        if self.log is not None:
            self.log.close()

    def _follow(self) -> None:
        while not self._stop.wait(self.config.poll_seconds):
            try:
                self.sync()
            except Exception as exc:  # the registry may be briefly unreachable; retry next tick
                self.last_error["*"] = f"alias sync failed: {type(exc).__name__}: {exc}"

    # -- following the registry ---------------------------------------------------------------

    def sync(self, force: bool = False) -> None:
        """Act on alias moves since the last sync (``force``: re-read and act on every alias)."""
        with self._sync_lock:
            if force:
                self._followed.clear()
            for name in self.specs:
                try:
                    aliases = self.registry.aliases(name)
                except Exception as exc:
                    self.last_error[name] = f"cannot read aliases: {type(exc).__name__}: {exc}"
                    continue
                target = aliases.get(self.alias)
                self.alias_versions[name] = target
                if self._moved(name, self.alias, target) and target is not None:
                    self._deploy_quietly(name, target, f"alias {self.alias} -> v{target}")
                if self.alias == "champion":
                    self._follow_canary(name, aliases.get(CANARY_ALIAS))
                    self._conclude_canary(name)

    def _moved(self, spec: str, alias: str, target: str | None) -> bool:
        key = (spec, alias)
        if key in self._followed and self._followed[key] == target:
            return False
        self._followed[key] = target
        return True

    def _deploy_quietly(self, spec: str, version: str, why: str) -> None:
        try:
            self.deploy(spec, version, why)
        except Exception as exc:
            self.last_error[spec] = f"v{version} not deployed: {exc}"

    def deploy(self, spec: str, version: str, why: str = "admin") -> Serving:
        """Load and verify ``version`` in the idle slot (or reuse a warm one) and switch to it."""
        pair = self._pair(spec)
        canary = self.canaries.get(spec)
        reuse = canary.model if canary is not None and canary.model.version == version else None
        try:
            serving = pair.deploy(
                version,
                (lambda: reuse) if reuse is not None else (lambda: self._load(spec, version)),
                (lambda m: m) if reuse is not None else self._verify,
            )
        except VerificationFailed:
            self.metrics.swaps.labels(spec, "refused").inc()
            raise
        self.metrics.swaps.labels(spec, "switched").inc()
        self.metrics.active_version.labels(spec, serving.slot).set(float(version))
        self.last_error.pop(spec, None)
        return serving

    def switch(self, spec: str) -> Serving:
        serving = self._pair(spec).switch()
        self.metrics.swaps.labels(spec, "rolled_back").inc()
        self.metrics.active_version.labels(spec, serving.slot).set(float(serving.model.version))
        return serving

    def _pair(self, spec: str) -> SlotPair:
        if spec not in self.pairs:
            raise field_error(
                "spec", f"unknown spec {spec!r}; this service serves {list(self.pairs)}"
            )
        return self.pairs[spec]

    def _load(self, spec: str, version: str) -> LoadedModel:
        return load_model(spec, version, self.settings.mlflow_uri)

    def _verify(self, model: LoadedModel) -> LoadedModel:
        spec = self.specs[model.spec]
        evidence = verify_model(model, self.settings, self.registry, spec)
        return dataclasses.replace(model, verification=evidence)

    # -- canary -------------------------------------------------------------------------------

    def _policy(self) -> CanaryPolicy:
        c = self.config
        return CanaryPolicy(
            c.canary_weight,
            c.canary_min_requests,
            c.canary_max_minutes,
            c.max_error_rate,
            c.canary_p99_ratio,
            c.canary_max_ks,
        )

    def _follow_canary(self, spec: str, target: str | None) -> None:
        if not self._moved(spec, CANARY_ALIAS, target):
            return
        self.canaries.pop(spec, None)
        if target is None:
            return
        try:
            model = self._verify(self._load(spec, target))
        except Exception as exc:
            self.last_error[spec] = f"canary v{target} not started: {exc}"
            self.registry.remove_alias(
                spec,
                CANARY_ALIAS,
                ACTOR,
                f"canary v{target} failed verification",
                {"error": str(exc)},
            )
            return
        self.canaries[spec] = Canary(model, self._policy())

    def _promote(
        self, spec: str, version: str, reason: str, evidence: dict[str, Any]
    ) -> str | None:
        """Make the canary the champion through the lifecycle (approval, states, alias); the
        refusal's reason, or None once this service serves it."""
        from qlib_assets.lifecycle.champion import next_session_to_serve
        from qlib_assets.lifecycle.promotion import last_promotion_session, promote

        model = self.specs[spec]
        try:
            # A live service serves from now on: never before the latest assignment.
            effective = next_session_to_serve(self.settings, model, version)
            latest = last_promotion_session(self.settings, spec)
            outcome = promote(
                self.settings,
                model,
                version,
                effective_from=max(effective, latest) if latest else effective,
                actor=ACTOR,
                reason=reason,
                evidence=evidence,
            )
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        if not outcome.promoted:
            return outcome.reason
        self.deploy(spec, version, "canary promoted")
        self._followed[(spec, self.alias)] = version
        return None

    def set_canary_weight(self, spec: str, weight: float) -> Canary:
        canary = self.canaries.get(spec)
        if canary is None:
            raise RequestError(409, {"msg": f"{spec} has no canary running", "field": "spec"})
        canary.weight = weight
        return canary

    def _conclude_canary(self, spec: str) -> CanaryDecision | None:
        canary = self.canaries.get(spec)
        if canary is None:
            return None
        decision = canary.analyse()
        if decision.action == "wait":
            return decision
        canary.decision = decision
        version = canary.model.version
        evidence = {**decision.evidence, "reasons": list(decision.reasons), "env": self.env}
        reason = f"canary analysis: {decision.action}: {'; '.join(decision.reasons)}"
        if decision.action == "promote":
            refusal = self._promote(spec, version, reason, evidence)
            if refusal is not None:
                decision = CanaryDecision("rollback", (refusal,), decision.evidence)
                reason = f"canary analysis passed but the promotion was refused: {refusal}"
        self.registry.client.set_model_version_tag(spec, version, "canary_result", decision.action)
        self.registry.remove_alias(spec, CANARY_ALIAS, ACTOR, reason, evidence)
        self._followed[(spec, CANARY_ALIAS)] = None
        self.canaries.pop(spec, None)
        return decision

    # -- requests -----------------------------------------------------------------------------

    def default_spec(self) -> str:
        return next(
            (n for n, p in self.pairs.items() if p.active() is not None), next(iter(self.pairs))
        )

    def predict(self, request: PredictRequest, client: str, body: bytes) -> PredictResponse:
        request_id = uuid.uuid4().hex
        outcome = Outcome(digest=inputs_digest(body))
        return self._observed(
            "predict",
            request_id,
            client,
            outcome,
            lambda: self._predict(request, client, request_id, outcome),
        )

    def signal(self, day: date, client: str) -> SignalResponse:
        request_id = uuid.uuid4().hex
        outcome = Outcome(
            spec="ensemble", session=day, digest=inputs_digest(day.isoformat().encode())
        )
        return self._observed(
            "signal", request_id, client, outcome, lambda: self._signal(day, request_id, outcome)
        )

    def reject(self, endpoint: str, client: str, body: bytes, status: int, error: str) -> None:
        """Log and count a request refused before it reached the service (422 of the schema)."""
        outcome = Outcome(digest=inputs_digest(body))
        self._finish(endpoint, uuid.uuid4().hex, client, outcome, status, 0.0, error)

    def _observed(
        self, endpoint: str, request_id: str, client: str, outcome: Outcome, work: Callable[[], Any]
    ) -> Any:
        started = time.perf_counter()
        status, error = 500, None
        try:
            result = work()
            status = 200
            return result
        except RequestError as exc:
            status, error = exc.status, str(exc.detail)
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._finish(
                endpoint, request_id, client, outcome, status, time.perf_counter() - started, error
            )

    def _finish(
        self,
        endpoint: str,
        request_id: str,
        client: str,
        outcome: Outcome,
        status: int,
        seconds: float,
        error: str | None,
    ) -> None:
        self.metrics.observe(endpoint, outcome.spec, outcome.version, outcome.slot, status, seconds)
        if self.log is None:
            return
        self.log.append(
            {
                "request_id": request_id,
                "time": datetime.now(UTC),
                "client": client,
                "endpoint": endpoint,
                "spec": outcome.spec,
                "version": outcome.version,
                "slot": outcome.slot,
                "session": outcome.session,
                "instruments": outcome.instruments,
                "inputs_digest": outcome.digest,
                "scores": outcome.scores,
                "latency_ms": seconds * 1000,
                "status": status,
                "error": error,
            }
        )
        self.metrics.log_pending.set(self.log.pending)

    def _active(self, spec: str) -> Serving:
        serving = self._pair(spec).active()
        if serving is None:
            why = self.last_error.get(spec) or f"alias {self.alias} is not set"
            raise RequestError(503, {"msg": f"{spec}: no model is serving yet", "reason": why})
        return serving

    def _rows(
        self, request: PredictRequest, model: LoadedModel
    ) -> tuple[pl.DataFrame, dict[str, str]]:
        if request.rows is not None:
            return rows_frame(request.rows, model.columns), {}
        assert request.date is not None and request.instruments is not None
        spec = self.specs[model.spec]
        return select_instruments(
            self.features.frame(spec, request.date, model.columns), request.instruments
        )

    def _predict(
        self, request: PredictRequest, client: str, request_id: str, outcome: Outcome
    ) -> PredictResponse:
        spec = request.spec or self.default_spec()
        outcome.spec = spec
        serving = self._active(spec)
        outcome.session = request.date
        canary = self.canaries.get(spec)
        to_canary = (
            canary is not None
            and canary.decision is None
            and routes_to_canary(client, canary.weight)
        )
        model, slot, fallback = (
            (canary.model, "canary", False) if to_canary else (serving.model, serving.slot, False)
        )
        outcome.version, outcome.slot = model.version, slot
        started = time.perf_counter()
        try:
            rows, reasons = self._rows(request, model)
            scores = model.score(rows.to_pandas()) if rows.height else np.empty(0)
        except RequestError:
            raise
        except Exception:
            if not to_canary:
                raise
            assert canary is not None
            canary.record("canary", time.perf_counter() - started, None, failed=True)
            self.metrics.errors.labels("predict", spec, model.version, "canary").inc()
            model, slot, fallback = serving.model, serving.slot, True
            outcome.version, outcome.slot = model.version, slot
            rows, reasons = self._rows(request, model)
            scores = model.score(rows.to_pandas()) if rows.height else np.empty(0)
        else:
            if canary is not None and canary.decision is None:
                canary.record(
                    "canary" if to_canary else "champion",
                    time.perf_counter() - started,
                    scores,
                    failed=False,
                )
        found = dict(
            zip(
                zip(
                    rows.get_column("instrument").to_list(),
                    rows.get_column("date").to_list(),
                    strict=True,
                ),
                scores.tolist(),
                strict=True,
            )
        )
        keys = (
            [(r.instrument, r.date) for r in request.rows]
            if request.rows is not None
            else [(name, request.date) for name in dict.fromkeys(request.instruments or [])]
        )
        out = []
        for name, day in keys:
            value = found.get((name, day))
            if value is not None and not np.isfinite(value):
                out.append(
                    Score(
                        instrument=name,
                        date=day,
                        score=None,
                        reason="the model returned a non-finite score",
                    )
                )
            elif value is None:
                out.append(
                    Score(
                        instrument=name,
                        date=day,
                        score=None,
                        reason=reasons.get(name, "not scored"),
                    )
                )
            else:
                out.append(Score(instrument=name, date=day, score=value))
        outcome.instruments = len(out)
        outcome.scores = [s.score for s in out]
        return PredictResponse(
            request_id=request_id,
            spec=spec,
            version=model.version,
            slot=slot,
            scores=out,
            fallback=fallback,
        )

    def _signal(self, day: date, request_id: str, outcome: Outcome) -> SignalResponse:
        frames, versions, refusals = {}, {}, []
        for name in self.specs:
            serving = self._pair(name).active()
            if serving is None:
                continue
            try:
                rows = self.features.frame(self.specs[name], day, serving.model.columns)
            except RequestError as exc:
                if exc.status == 400:
                    raise
                refusals.append(exc.detail)
                continue
            scores = serving.model.score(rows.to_pandas())
            frames[name] = rows.select("instrument", "date").with_columns(
                pl.Series("score", scores)
            )
            versions[name] = serving.model.version
        if not frames:
            raise RequestError(
                409 if refusals else 503,
                {"msg": f"no served spec can score {day}", "specs": refusals},
            )
        signal = average_ensemble(frames)
        outcome.version = ",".join(f"{k}:{v}" for k, v in versions.items())
        outcome.instruments = signal.height
        return SignalResponse(
            request_id=request_id,
            date=day,
            versions=versions,
            signal=[
                SignalRow(instrument=i, signal=s)
                for i, s in signal.select("instrument", "signal").iter_rows()
            ],
        )

    # -- views --------------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when some spec serves and every spec whose alias is set serves it verified."""
        problems = {}
        serving = []
        for name, pair in self.pairs.items():
            active = pair.active()
            target = self.alias_versions.get(name)
            if active is not None:
                serving.append(name)
            if target is not None and (active is None or not active.model.verification):
                problems[name] = self.last_error.get(name, f"v{target} is loading")
        ok = bool(serving) and not problems
        return ok, {"ready": ok, "serving": serving, "problems": problems}

    def models(self) -> ModelsResponse:
        views = []
        for name, pair in self.pairs.items():
            active = pair.active()
            slots = [
                SlotView(
                    slot=slot,
                    version=m.version,
                    active=active is not None and active.slot == slot,
                    loaded_at=m.loaded_at,
                    load_seconds=m.load_seconds,
                    verification=m.verification,
                )
                for slot, m in pair.loaded().items()
            ]
            canary = self.canaries.get(name)
            views.append(
                SpecView(
                    spec=name,
                    alias=self.alias,
                    alias_version=self.alias_versions.get(name),
                    slots=slots,
                    canary=None
                    if canary is None
                    else {
                        "version": canary.model.version,
                        "weight": canary.weight,
                        **canary.analyse().evidence,
                    },
                    last_error=self.last_error.get(name),
                )
            )
        return ModelsResponse(env=self.env, specs=views)
