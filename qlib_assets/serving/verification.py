"""A loaded model is verified in its idle slot before it may serve (seed 004 8.4: the Qlib
environment at deployment equals the one the model was trained with).

The checks are the lifecycle's, run on the instance the slot will serve: the version is not
rejected or rolled back; it scores the spec's fixed sample (``lifecycle.sample``) twice to
identical finite scores; the registry's compatibility report holds (feature schema equal to the
serving set, Qlib version equal, the model library's major.minor equal).
"""

from collections.abc import Sequence
from typing import Any

from qlib_assets.lifecycle.champion import NOT_SERVING
from qlib_assets.lifecycle.sample import score_sample, scoring_sample
from qlib_assets.models.registry import STATE_TAG, ModelRegistry
from qlib_assets.models.specs import ModelSpec
from qlib_assets.models.window_training import serving_features
from qlib_assets.serving.slots import LoadedModel
from qlib_assets.settings import Settings


class VerificationFailed(RuntimeError):
    def __init__(self, model: LoadedModel, problems: Sequence[str], evidence: dict[str, Any]):
        super().__init__(f"{model.spec} v{model.version} refused: {'; '.join(problems)}")
        self.problems = list(problems)
        self.evidence = evidence


def verify_model(
    model: LoadedModel, settings: Settings, registry: ModelRegistry, spec: ModelSpec
) -> dict[str, Any]:
    """Evidence of a passed verification; raises ``VerificationFailed`` with every problem."""
    problems: list[str] = []
    state = registry.version(model.spec, model.version).tags.get(STATE_TAG)
    if state in NOT_SERVING:
        problems.append(f"the version is {state}")
    report = registry.check_compatibility(
        model.spec, model.version, serving_features(settings, spec)
    )
    problems.extend(report.problems)
    evidence: dict[str, Any] = {"state": state, "compatibility": report.evidence()}
    try:
        sample = scoring_sample(settings, spec)
        first, second = score_sample(model.scorer, sample), score_sample(model.scorer, sample)
    except Exception as exc:
        problems.append(f"scoring the fixed sample raised {type(exc).__name__}: {exc}")
    else:
        scores = first.frame.get_column("score")
        evidence.update(
            sample_sha256=sample.sha256,
            sample_rows=sample.frame.height,
            scores_digest=first.digest(),
            sample_seconds=round(first.seconds, 4),
        )
        if not scores.is_finite().all():
            problems.append(f"{int((~scores.is_finite()).sum())} non-finite sample score(s)")
        if not first.frame.equals(second.frame):
            problems.append("the fixed sample scored twice gave different scores")
    if problems:
        raise VerificationFailed(model, problems, evidence)
    return evidence
