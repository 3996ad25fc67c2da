"""Isolation for tests that evaluate sensors, schedules and automation conditions."""

from collections.abc import Iterator

import pytest

# Dagster's definitions loading reads a context variable that an instance sets when entered; an
# evaluation context here can leave it pointing at a closed test instance, and later tests'
# Definitions then fail with "Attempted to resolve undefined DagsterInstance weakref" (seen on
# main too, when online/test_daily_routine.py runs before models/). Reset it around each test.
from dagster._core.storage.defs_state.base import set_defs_state_storage


@pytest.fixture(autouse=True)
def no_leaked_defs_state() -> Iterator[None]:
    with set_defs_state_storage(None):
        yield
