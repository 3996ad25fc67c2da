"""Concurrency sized from the machine, training ordered by spec priority."""

import pytest

from qlib_assets.defs.build import build_definitions
from qlib_assets.operations.capacity import machine_capacity
from qlib_assets.operations.config import OperationsSettings
from qlib_assets.operations.deployment import executor_definition
from qlib_assets.operations.scheduling import training_priority_tags
from qlib_assets.settings import Settings


@pytest.mark.parametrize(
    ("cores", "memory", "steps", "runs", "training"),
    [(2, 16.0, 2, 1, 1), (8, 64.0, 8, 4, 4), (8, 3.0, 3, 4, 1), (1, 0.5, 1, 1, 1)],
)
def test_capacity_follows_cores_and_memory(
    cores: int, memory: float, steps: int, runs: int, training: int
) -> None:
    capacity = machine_capacity(cores=cores, memory_gb=memory)
    assert (capacity.max_concurrent_steps, capacity.max_concurrent_runs) == (steps, runs)
    assert capacity.training_slots == training


def test_multiprocess_executor_is_sized_from_the_machine_unless_set() -> None:
    def steps(ops: OperationsSettings) -> int:
        config = executor_definition(ops).config_schema.resolve_config({}).value
        return config["config"]["max_concurrent"]

    assert steps(OperationsSettings()) == machine_capacity().max_concurrent_steps
    assert steps(OperationsSettings(max_concurrent_steps=5)) == 5


def test_training_priority_reaches_steps_and_training_jobs(settings: Settings) -> None:
    ops = OperationsSettings(training_priority={"lgbm_alpha158": 7})
    defs = build_definitions(settings.model_copy(update={"operations": ops}))
    model = defs.resolve_assets_def("model_lgbm_alpha158")
    assert model.op.tags["dagster/priority"] == "7"
    assert model.op.tags["dagster-celery/priority"] == "7"
    assert defs.resolve_job_def("train_lgbm_alpha158").tags["dagster/priority"] == "7"
    other = defs.resolve_assets_def("model_xgb_alpha158_indicators")
    assert other.op.tags["dagster/priority"] == "0"
    with pytest.raises(ValueError, match="training_priority"):
        training_priority_tags(OperationsSettings(training_priority={"x": 11}), "x")
