"""Concurrency sized from the machine: cores and memory at start, never a fixed number."""

import os
from dataclasses import dataclass

import psutil

# Measured peaks: a daily feature step of a few hundred instruments stays under 1 GB; a LightGBM
# window on Alpha158 of a few hundred instruments x 2 years peaks at about 2 GB.
STEP_GB = 1.0
TRAINING_GB = 2.0


@dataclass(frozen=True)
class Capacity:
    """How much of the machine one instance may use at once."""

    cores: int
    memory_gb: float
    max_concurrent_steps: int
    max_concurrent_runs: int
    training_slots: int


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_capacity(cores: int | None = None, memory_gb: float | None = None) -> Capacity:
    """Steps, runs and training slots that fit in ``cores`` and ``memory_gb`` (default: here).

    Steps are CPU-bound, so one per core, fewer when memory would not hold them; runs get half
    the cores (each run has its own steps); training takes the most memory, so its pool gets
    what memory allows, at most one slot per two cores (LightGBM threads itself).
    """
    cores = cores or usable_cores()
    memory_gb = memory_gb if memory_gb is not None else psutil.virtual_memory().available / 2**30
    steps = max(1, min(cores, int(memory_gb // STEP_GB)))
    return Capacity(
        cores=cores,
        memory_gb=round(memory_gb, 1),
        max_concurrent_steps=steps,
        max_concurrent_runs=max(1, cores // 2),
        training_slots=max(1, min(cores // 2, int(memory_gb // TRAINING_GB))),
    )
