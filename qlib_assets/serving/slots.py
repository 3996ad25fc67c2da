"""Blue and green slots of one spec: the active one serves, the idle one is loaded and verified
before an atomic switch and stays warm afterwards, so a rollback is one more switch.

Readers take ``active()`` once per request: it returns one immutable pair, replaced whole by a
switch, so a request in flight finishes on the model it started with and no request ever sees a
half-made change.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

SLOTS = ("blue", "green")


@dataclass(frozen=True)
class LoadedModel:
    spec: str
    version: str
    uri: str
    scorer: Any  # the MLflow PyFuncModel
    columns: tuple[str, ...]
    load_seconds: float
    loaded_at: float = field(default_factory=time.time)
    verification: dict[str, Any] = field(default_factory=dict)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """The pyfunc's scores of ``frame`` (keys + ``columns``, already typed as the signature
        says). MLflow's per-call schema enforcement is skipped: over 158 columns it costs more
        than the model, and the service has checked the columns and cast them itself."""
        output = self.scorer.unwrap_python_model().predict(None, frame)
        return output["score"].to_numpy(dtype=np.float64)


@dataclass(frozen=True)
class Serving:
    slot: str
    model: LoadedModel


def model_columns(scorer: Any) -> tuple[str, ...]:
    """The feature columns the pyfunc's signature reads (keys excluded)."""
    schema = scorer.metadata.get_input_schema()
    if schema is None:
        raise ValueError("the model has no input signature: its feature columns are unknown")
    return tuple(n for n in schema.input_names() if n not in ("instrument", "date"))


def load_model(spec: str, version: str, tracking_uri: str) -> LoadedModel:
    from qlib_assets.models.tracking import load_scorer

    uri = f"models:/{spec}/{version}"
    started = time.perf_counter()
    scorer = load_scorer(uri, tracking_uri)
    return LoadedModel(
        spec, str(version), uri, scorer, model_columns(scorer), time.perf_counter() - started
    )


class SlotPair:
    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._slots: dict[str, LoadedModel | None] = dict.fromkeys(SLOTS)
        self._active: Serving | None = None
        self._lock = threading.Lock()
        self._deploying = threading.Lock()

    def active(self) -> Serving | None:
        return self._active

    def idle_slot(self) -> str:
        current = self._active
        return SLOTS[0] if current is None else next(s for s in SLOTS if s != current.slot)

    def holding(self, version: str) -> str | None:
        """The slot that already holds ``version`` loaded, if any."""
        return next((s for s, m in self._slots.items() if m and m.version == version), None)

    def deploy(
        self,
        version: str,
        load: Callable[[], LoadedModel],
        verify: Callable[[LoadedModel], LoadedModel],
    ) -> Serving:
        """Serve ``version``: reuse a warm slot holding it, or load it into the idle slot and
        verify it there first. Returns the new serving pair.

        ``verify`` returns the model with its evidence, or raises to refuse; the active slot is
        then untouched.
        """
        with self._deploying:
            return self._deploy(version, load, verify)

    def _deploy(
        self,
        version: str,
        load: Callable[[], LoadedModel],
        verify: Callable[[LoadedModel], LoadedModel],
    ) -> Serving:
        with self._lock:
            warm = self.holding(version)
            if warm is not None:
                model = self._slots[warm]
                assert model is not None
                self._active = Serving(warm, model)
                return self._active
            slot = self.idle_slot()
        model = verify(load())
        with self._lock:
            if self._active is not None and self._active.slot == slot:
                raise RuntimeError(f"{self.spec}: slot {slot} became active during the load")
            self._slots[slot] = model
            self._active = Serving(slot, model)
            return self._active

    def switch(self) -> Serving:
        """Serve the other slot's model (an instant rollback to the previous version)."""
        with self._lock:
            slot = self.idle_slot()
            model = self._slots[slot]
            if model is None:
                raise LookupError(f"{self.spec}: slot {slot} holds no model to switch to")
            self._active = Serving(slot, model)
            return self._active

    def loaded(self) -> dict[str, LoadedModel]:
        return {s: m for s, m in self._slots.items() if m is not None}
