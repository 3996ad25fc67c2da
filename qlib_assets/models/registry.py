"""Model lifecycle over the MLflow registry, with every change mirrored in the audit table.

A model version's lifecycle state is its ``lifecycle_state`` tag; roles are the registered
model's aliases. Only the moves in ``TRANSITIONS`` are allowed: an illegal move raises
``IllegalTransition`` before anything is written, so it leaves no tag and no audit row.
"""

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from qlib_assets.models.audit import AuditEntry, AuditLog
from qlib_assets.models.dataset import feature_schema_hash
from qlib_assets.models.states import ALIASES, STATE_TAG, STATES

# production -> staging is a demotion; archived -> staging restores a version for a rollback.
# rejected: a gate failed; rolled_back: removed from production by a rollback, promoted again
# only after a new decision (rolled_back -> validated).
TRANSITIONS: dict[str | None, frozenset[str]] = {
    None: frozenset({"candidate"}),
    "candidate": frozenset({"validated", "rejected", "archived"}),
    "validated": frozenset({"staging", "archived"}),
    "rejected": frozenset({"archived"}),
    "staging": frozenset({"production", "validated", "archived"}),
    "production": frozenset({"staging", "rolled_back", "archived"}),
    "rolled_back": frozenset({"validated", "archived"}),
    "archived": frozenset({"staging"}),
}
LIBRARY_TAG = re.compile(r"^lib\.(?P<name>[a-z0-9_]+)$")


class IllegalTransition(ValueError):
    """A lifecycle or alias change the rules forbid; nothing was written."""


@dataclass(frozen=True)
class Compatibility:
    ok: bool
    problems: tuple[str, ...]
    expected_schema: str
    serving_schema: str
    libraries: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (model, here)

    def evidence(self) -> dict[str, Any]:
        return {
            "compatible": self.ok,
            "problems": list(self.problems),
            "feature_schema": self.expected_schema,
            "serving_schema": self.serving_schema,
            "libraries": {k: list(v) for k, v in self.libraries.items()},
        }


@dataclass(frozen=True)
class Lineage:
    model: str
    version: str
    run_id: str
    run_status: str
    tags: dict[str, str]
    params: dict[str, str]
    inputs: list[dict[str, Any]]  # name, digest, source, tags (full sha256, data versions)
    partitions: dict[str, dict[str, str]]  # asset -> {day: sha256}
    landing_files: dict[str, str]  # path -> sha256
    # raw_bars day -> {sha256, written_at, run_id}: the versions the inputs were computed from
    raw_bars: dict[str, dict[str, str]] = field(default_factory=dict)


def library_versions(model_class: str) -> dict[str, str]:
    """Versions a model depends on: Qlib, MLflow, and the model family's library."""
    names = ["pyqlib", "mlflow", "numpy", "pandas"]
    if "gbdt" in model_class or "LGB" in model_class:
        names.append("lightgbm")
    if "xgboost" in model_class:
        names.append("xgboost")
    if "pytorch" in model_class:
        names.append("torch")
    return {name: package_version(name) for name in names}


def _installed(name: str) -> str:
    try:
        return package_version(name)
    except PackageNotFoundError:
        return "missing"


def _major_minor(value: str) -> str:
    return ".".join(value.split("+")[0].split(".")[:2])


class ModelRegistry:
    def __init__(self, tracking_uri: str, audit: AuditLog) -> None:
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.audit = audit

    def version(self, name: str, version: str | int) -> ModelVersion:
        return self.client.get_model_version(name, str(version))

    def state(self, name: str, version: str | int) -> str | None:
        return self.version(name, version).tags.get(STATE_TAG)

    def aliases(self, name: str) -> dict[str, str]:
        """alias -> version; read from the registered model (search results leave it empty)."""
        aliases = self.client.get_registered_model(name).aliases
        return {alias: str(version) for alias, version in aliases.items()}

    def transition(
        self,
        name: str,
        version: str | int,
        to_state: str,
        actor: str,
        reason: str,
        evidence: Mapping[str, Any] | None = None,
        serving_features: Sequence[str] | None = None,
    ) -> AuditEntry:
        """Move a version to ``to_state``; production needs compatible ``serving_features``."""
        if to_state not in STATES:
            raise IllegalTransition(f"{name} v{version}: unknown state {to_state!r}; use {STATES}")
        current = self.state(name, version)
        if to_state not in TRANSITIONS[current]:
            allowed = sorted(TRANSITIONS[current]) or ["nothing"]
            raise IllegalTransition(
                f"{name} v{version}: {current} -> {to_state} is not allowed; "
                f"from {current} a version may move to {', '.join(allowed)}"
            )
        details = dict(evidence or {})
        if to_state == "production":
            if serving_features is None:
                raise IllegalTransition(
                    f"{name} v{version}: production needs the serving feature set to check "
                    "compatibility (serving_features)"
                )
            report = self.check_compatibility(name, version, serving_features)
            if not report.ok:
                raise IllegalTransition(
                    f"{name} v{version}: not compatible with serving: {'; '.join(report.problems)}"
                )
            details["compatibility"] = report.evidence()
        self.client.set_model_version_tag(name, str(version), STATE_TAG, to_state)
        return self.audit.record(
            name, str(version), "state", "lifecycle", current, to_state, actor, reason, details
        )

    def set_alias(
        self,
        name: str,
        alias: str,
        version: str | int,
        actor: str,
        reason: str,
        evidence: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        if alias not in ALIASES:
            raise IllegalTransition(f"{name}: unknown alias {alias!r}; use {ALIASES}")
        state = self.state(name, version)
        if state in ("archived", "rejected", "rolled_back"):
            raise IllegalTransition(f"{name} v{version} is {state} and cannot be {alias}")
        previous = self.aliases(name).get(alias)
        self.client.set_registered_model_alias(name, alias, str(version))
        return self.audit.record(
            name, str(version), "alias", alias, previous, str(version), actor, reason, evidence
        )

    def remove_alias(
        self,
        name: str,
        alias: str,
        actor: str,
        reason: str,
        evidence: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        previous = self.aliases(name).get(alias)
        if previous is None:
            raise IllegalTransition(f"{name}: alias {alias!r} is not set")
        self.client.delete_registered_model_alias(name, alias)
        return self.audit.record(
            name, previous, "alias", alias, previous, None, actor, reason, evidence
        )

    def history(self, name: str, version: str | int | None = None) -> list[AuditEntry]:
        return self.audit.history(name, None if version is None else str(version))

    def lineage(self, name: str, version: str | int) -> Lineage:
        """The run behind a version, the data it read (partitions + hashes) and landing files."""
        mv = self.version(name, version)
        if not mv.run_id:
            raise ValueError(f"{name} v{version} has no MLflow run")
        run = self.client.get_run(mv.run_id)
        inputs = [
            {
                "name": ds.dataset.name,
                "digest": ds.dataset.digest,
                "source": ds.dataset.source,
                "tags": {t.key: t.value for t in ds.tags},
            }
            for ds in run.inputs.dataset_inputs
        ]
        local = mlflow.artifacts.download_artifacts(
            run_id=mv.run_id, artifact_path="lineage/inputs.json", tracking_uri=self.tracking_uri
        )
        with open(local) as handle:
            manifest = json.load(handle)
        return Lineage(
            model=name,
            version=str(version),
            run_id=mv.run_id,
            run_status=run.info.status,
            tags=dict(run.data.tags),
            params=dict(run.data.params),
            inputs=inputs,
            partitions=manifest["partitions"],
            landing_files=manifest["landing_files"],
            raw_bars=manifest.get("raw_bars", {}),
        )

    def check_compatibility(
        self, name: str, version: str | int, serving_features: Sequence[str]
    ) -> Compatibility:
        """Same feature schema (names, in order); same Qlib version; same major.minor of the
        other libraries the model was trained with."""
        tags = self.version(name, version).tags
        expected = tags.get("feature_schema_hash", "")
        serving = feature_schema_hash(list(serving_features))
        problems = []
        if expected != serving:
            problems.append(
                f"feature schema {serving[:12]} differs from the model's {expected[:12]}"
            )
        trained = {m["name"]: v for k, v in tags.items() if (m := LIBRARY_TAG.match(k))}
        here = library_versions(tags.get("model_class", ""))
        libraries = {}
        for lib, was in trained.items():
            now = here.get(lib) or _installed(lib)
            libraries[lib] = (was, now)
            same = was == now if lib == "pyqlib" else _major_minor(was) == _major_minor(now)
            if not same:
                problems.append(f"{lib} {now} here, model trained with {was}")
        return Compatibility(not problems, tuple(problems), expected, serving, libraries)

    def search(
        self,
        spec: str | None = None,
        window: str | None = None,
        state: str | None = None,
        metric: str | None = None,
        min_value: float | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> list[ModelVersion]:
        """Versions matching every given condition; ``metric``/``min_value`` read the version's
        ``metric.<name>`` tag (e.g. ``metric="valid_ic", min_value=0.02``)."""
        query = f"name = '{spec}'" if spec else ""
        found = []
        for mv in self.client.search_model_versions(query):
            vt = mv.tags
            if window is not None and vt.get("window") != window:
                continue
            if state is not None and vt.get(STATE_TAG) != state:
                continue
            if metric is not None:
                value = vt.get(f"metric.{metric}")
                if value is None or (min_value is not None and float(value) < min_value):
                    continue
            if tags and any(vt.get(k) != v for k, v in tags.items()):
                continue
            found.append(mv)
        return sorted(found, key=lambda m: (m.name, int(m.version)))
