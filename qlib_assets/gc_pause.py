"""Python's cyclic garbage collector paused around hot stretches of work."""

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector, restoring its previous state on exit.

    For work that allocates many short-lived objects and no reference cycles: the collections
    those allocations set off sweep the caller's whole heap, and in a process holding a large
    one (a Dagster run, Qlib's caches) a full collection costs more than the work itself.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
