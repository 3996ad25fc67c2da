"""Model specs: YAML files in Qlib's task style, validated into one pydantic object.

A spec names a Qlib model class with its kwargs, the feature sets and label it reads from the
lake, the Qlib processors of its data handler and the rolling scheme of its windows. Errors name
the file and the field, e.g. ``lgbm_alpha158.yaml: rolling.trunc_days: ...``.
"""

import ast
import copy
import hashlib
import importlib
import importlib.util
import json
import sys
from collections.abc import Sequence
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SPECS_DIR = Path(__file__).parent / "specs"
# libyaml's loader when PyYAML was built with it: the code location parses every spec at load.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
PROCESSOR_MODULE = "qlib.data.dataset.processor"
LABEL_COLUMN = "label"


class SpecError(ValueError):
    """A spec file that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _QlibClass(_Strict):
    """A Qlib class by name, module and constructor kwargs, as Qlib's task configs write it."""

    class_name: str = Field(alias="class")
    module_path: str
    kwargs: dict[str, Any] = Field(default_factory=dict)

    def qlib_config(self) -> dict[str, Any]:
        # A deep copy: Qlib edits kwargs in place (check_transform_proc adds fit times).
        return {
            "class": self.class_name,
            "module_path": self.module_path,
            "kwargs": copy.deepcopy(self.kwargs),
        }


class ModelSection(_QlibClass):
    """A Qlib model: ``class`` in ``module_path`` with ``kwargs``; ``fit_kwargs`` go to fit."""

    fit_kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _importable(self) -> "ModelSection":
        if self.module_path not in sys.modules:
            _check_defined(self.module_path, self.class_name)
            return self
        from qlib.model.base import Model

        klass = _import_class(self.module_path, self.class_name)
        if not issubclass(klass, Model):
            raise ValueError(f"{self.module_path}.{self.class_name} is not a qlib Model")
        return self


class FeatureSource(_Strict):
    """Columns of one lake asset (``alpha158``, ``indicators`` or a custom asset).

    ``columns`` absent means every column of the asset except ``instrument`` and ``date``.
    """

    asset: str = Field(min_length=1)
    columns: tuple[str, ...] | None = None

    @field_validator("columns")
    @classmethod
    def _unique(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            if not value:
                raise ValueError("columns is empty: leave it out to take every column")
            duplicated = sorted({c for c in value if value.count(c) > 1})
            if duplicated:
                raise ValueError(f"duplicated columns {duplicated}")
        return value


class LabelSection(_Strict):
    """The label column and how many sessions after day d it reads (its horizon)."""

    asset: str = "labels"
    column: str = LABEL_COLUMN
    expression: str = "Ref($close, -2) / Ref($close, -1) - 1"
    horizon: int = Field(2, ge=1)


class ProcessorConfig(_QlibClass):
    module_path: str = PROCESSOR_MODULE

    @model_validator(mode="after")
    def _importable(self) -> "ProcessorConfig":
        _check_defined(self.module_path, self.class_name)
        for reserved in ("fit_start_time", "fit_end_time"):
            if reserved in self.kwargs:
                raise ValueError(
                    f"{self.class_name}: {reserved} is set per window (the window's train segment)"
                )
        return self


class ProcessorsSection(_Strict):
    """Qlib's DataHandlerLP processors: ``infer`` feed both views, ``learn`` only training."""

    infer: tuple[ProcessorConfig, ...] = ()
    learn: tuple[ProcessorConfig, ...] = ()


class RollingSection(_Strict):
    """Rolling windows after Qlib's RollingGen, lengths in sessions.

    ``step``: sessions per test segment, or ``month`` for one calendar month per window.
    ``train_sessions`` / ``valid_sessions``: the segment lengths before truncation (for
    ``expanding`` the train start stays at the first window's). ``trunc_days``: train and
    valid end at least this many sessions before the test start.
    """

    step: int | Literal["month"]
    type: Literal["expanding", "sliding"]
    train_sessions: int = Field(ge=20)
    valid_sessions: int = Field(ge=5)
    trunc_days: int = Field(ge=1)
    first_test_start: date | None = None

    @field_validator("step")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"step must be >= 1 session or 'month', got {value}")
        return value


class ModelSpec(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: int = Field(1, ge=1)
    description: str = ""
    model: ModelSection
    features: tuple[FeatureSource, ...] = Field(min_length=1)
    label: LabelSection = Field(default_factory=LabelSection)
    processors: ProcessorsSection = Field(default_factory=ProcessorsSection)
    rolling: RollingSection
    parent: str | None = Field(None, description="name@vN this spec was derived from (tuning).")

    @model_validator(mode="after")
    def _consistent(self) -> "ModelSpec":
        assets = [source.asset for source in self.features]
        if len(set(assets)) != len(assets):
            raise ValueError(f"features: an asset is listed twice in {assets}")
        # A label of day d reads sessions up to d + horizon; the last train/valid label must be
        # complete strictly before the test segment starts (Qlib: "2 + 1 == 3 days").
        minimum = self.label.horizon + 1
        if self.rolling.trunc_days < minimum:
            raise ValueError(
                f"rolling.trunc_days={self.rolling.trunc_days} lets labels reach into the test "
                f"segment: the label horizon is {self.label.horizon} sessions, so trunc_days "
                f"must be >= {minimum}"
            )
        if self.rolling.valid_sessions <= self.rolling.trunc_days:
            raise ValueError(
                f"rolling.valid_sessions={self.rolling.valid_sessions} leaves no valid session "
                f"after truncating {self.rolling.trunc_days}"
            )
        return self

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    def params(self) -> dict[str, str]:
        """Flat ``key -> str`` view for MLflow params."""
        flat: dict[str, str] = {
            "spec": self.name,
            "spec_version": str(self.version),
            "model_class": f"{self.model.module_path}.{self.model.class_name}",
            "features": ",".join(s.asset for s in self.features),
            "label": self.label.expression,
            "rolling.step": str(self.rolling.step),
            "rolling.type": self.rolling.type,
            "rolling.train_sessions": str(self.rolling.train_sessions),
            "rolling.valid_sessions": str(self.rolling.valid_sessions),
            "rolling.trunc_days": str(self.rolling.trunc_days),
        }
        for section, values in (
            ("model", self.model.kwargs),
            ("fit", self.model.fit_kwargs),
        ):
            for key, value in values.items():
                flat[f"{section}.{key}"] = json.dumps(value, default=str)
        return flat

    def digest(self) -> str:
        """SHA-256 of the spec's content, so two files with equal content share it."""
        text = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def _import_class(module_path: str, name: str) -> type:
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_path!r}: {exc}") from exc
    klass = getattr(module, name, None)
    if not isinstance(klass, type):
        raise ValueError(f"module {module_path!r} has no class {name!r}")
    return klass


def _check_defined(module_path: str, name: str) -> None:
    """Fail unless ``module_path`` defines or imports ``name``.

    A module not imported yet is read, not imported: specs load when the code location does,
    and importing Qlib's model zoo (torch, lightgbm, xgboost) there would cost seconds.
    """
    source = None if module_path in sys.modules else _source_file(module_path)
    if source is None:
        _import_class(module_path, name)
        return
    if name not in _top_level_names(source):
        raise ValueError(f"module {module_path!r} has no class {name!r}")


@lru_cache(maxsize=64)
def _top_level_names(source: Path) -> frozenset[str]:
    names: set[str] = set()
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return frozenset(names)


def _source_file(module_path: str) -> Path | None:
    """The .py file of ``module_path`` without importing its packages (None: not plain source)."""
    top, *rest = module_path.split(".")
    found = importlib.util.find_spec(top)
    if found is None:
        raise ValueError(f"cannot import module {module_path!r}: no module named {top!r}")
    if not rest:
        return Path(found.origin) if found.origin and found.origin.endswith(".py") else None
    for location in found.submodule_search_locations or []:
        base = Path(location).joinpath(*rest)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    raise ValueError(f"cannot import module {module_path!r}: no such module")


def _format_errors(source: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        field = ".".join(str(part) for part in item["loc"])
        # Cross-field checks have no loc of their own; their message starts with the field.
        lines.append(f"{source}: {field}: {message}" if field else f"{source}: {message}")
    return "\n".join(lines)


def parse_spec(data: dict[str, Any], source: str = "<spec>") -> ModelSpec:
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_format_errors(source, exc)) from None


def load_spec(path: Path) -> ModelSpec:
    """Read and validate one spec file; a bad file raises ``SpecError`` naming file and field."""
    try:
        data = yaml.load(path.read_text(), Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path.name}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path.name}: (top level): expected a mapping")
    return parse_spec(data, path.name)


def load_specs(folder: Path = SPECS_DIR) -> dict[str, ModelSpec]:
    """The latest version of every spec in ``folder`` (``name.yaml`` and ``name.vN.yaml``)."""
    latest: dict[str, ModelSpec] = {}
    for path in sorted(folder.glob("*.yaml")):
        spec = load_spec(path)
        if spec.name in latest and latest[spec.name].version == spec.version:
            raise SpecError(f"{path.name}: name: {spec.ref} is defined twice in {folder}")
        if spec.name not in latest or spec.version > latest[spec.name].version:
            latest[spec.name] = spec
    return latest


def spec_versions(name: str, folder: Path = SPECS_DIR) -> Sequence[ModelSpec]:
    """Every version of spec ``name`` in ``folder``, oldest first."""
    found = [load_spec(p) for p in sorted(folder.glob(f"{name}*.yaml"))]
    return sorted((s for s in found if s.name == name), key=lambda s: s.version)


def dump_spec(spec: ModelSpec) -> str:
    return yaml.safe_dump(spec.model_dump(mode="json", by_alias=True), sort_keys=False)
