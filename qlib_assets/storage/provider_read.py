"""Reading the Qlib provider only in a committed state: a readers-writer lock on the folder.

A provider write changes feature files in place, so a reader in the middle of one (or after a
write that was killed and not yet rolled back) would mix old and new bytes. Every read the
platform makes goes through :func:`committed_provider`: it holds a shared ``flock`` on
``.read.lock`` for the whole read, and the writer holds it exclusively for its whole write, so
a read sees the state before or after a write, never a mix. A lock is released by the kernel
when its process dies, so a killed writer cannot keep readers out; the reader then finds the
writer's journal and rolls the write back before reading.
"""

import fcntl
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from qlib_assets.storage.qlib_journal import JOURNAL_DIR

READ_LOCK_NAME = ".read.lock"


@contextmanager
def _flock(root: Path, mode: int) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / READ_LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


def writing_excludes_readers(root: Path) -> AbstractContextManager[None]:
    """Held by the writer for its whole write: no reader is inside the provider meanwhile."""
    return _flock(root, fcntl.LOCK_EX)


@contextmanager
def committed_provider(root: Path) -> Iterator[Path]:
    """Yield ``root`` with a committed provider in it, kept so until the block ends."""
    from qlib_assets.storage.qlib_bin import QlibProviderWriter

    while True:
        with _flock(root, fcntl.LOCK_SH):
            if not (root / JOURNAL_DIR / "manifest.json").is_file():
                yield root
                return
        # A write was interrupted (its writer holds no lock any more): undo it, then read.
        QlibProviderWriter(root).recover()
