"""Route the metrics Qlib's models log through ``qlib.workflow.R`` to a plain callback.

Qlib's PyTorch models report their per-step losses only through ``R.log_metrics``, which outside
an active Qlib recorder starts an MLflow run on Qlib's default file store (refused by MLflow 3).
While ``qlib_metrics_to`` is active, ``R`` is a sink that hands each call to the callback
instead; the caller decides where metrics go (Dagster log, our own MLflow run).
"""

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from threading import Lock

from qlib.utils import Wrapper
from qlib.workflow import R

MetricCallback = Callable[[int, Mapping[str, float]], None]

# R is process-global: two trainings in one process must not swap each other's sink.
_ROUTE_LOCK = Lock()


class _MetricSink:
    def __init__(self, callback: MetricCallback) -> None:
        self._callback = callback
        self._last_step = 0

    def log_metrics(self, step: int | None = None, **metrics: float) -> None:
        if step is None:
            step = self._last_step
        self._last_step = step
        self._callback(step, {name: float(value) for name, value in metrics.items()})

    def log_params(self, **params: object) -> None:
        """Qlib models rarely log params here; the spec already records them."""


@contextmanager
def qlib_metrics_to(callback: MetricCallback) -> Iterator[None]:
    with _ROUTE_LOCK:
        previous = R.__dict__.get("_provider")
        # Wrapper.register, not RecorderWrapper.register: the latter inspects the provider's
        # experiment manager, which the sink does not have.
        Wrapper.register(R, _MetricSink(callback))
        try:
            yield
        finally:
            Wrapper.register(R, previous)
