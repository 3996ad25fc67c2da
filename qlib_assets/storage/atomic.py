"""Writes that are either whole or absent: temp file in the target folder, fsync, rename."""

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import psutil

_CHUNK = 1 << 20
# ".<target name>.<writer pid>.<random>.tmp": the pid tells a dead writer's leftover from a
# file another process is writing right now.
_TEMP = re.compile(r"^\..+\.(?P<pid>\d+)\.[^.]+\.tmp$")
# Temps without a pid (an older version's) are left alone while they may still be written.
_ANONYMOUS_TEMP_AGE = 3600.0


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temp path beside ``target``; on success it replaces ``target`` in one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_with(target: Path, writer: Callable[[Path], None]) -> None:
    with atomic_path(target) as tmp:
        writer(tmp)


def write_parquet_atomic(frame: pl.DataFrame, target: Path) -> str:
    """Write ``frame`` to ``target`` atomically; return the SHA-256 of the written file.

    Statistics are off and compression fixed so that equal frames give equal bytes.
    """
    with atomic_path(target) as tmp:
        frame.write_parquet(tmp, compression="zstd", compression_level=3, statistics=False)
        digest = sha256_file(tmp)
    return digest


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def remove_stale_temps(root: Path) -> list[Path]:
    """Delete the temp files under ``root`` that killed writers left behind; return them.

    A temp whose writer process is still alive is kept: it is being written.
    """
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    now = time.time()
    for path in root.rglob(".*.tmp"):
        match = _TEMP.match(path.name)
        if match is not None:
            stale = not psutil.pid_exists(int(match["pid"]))
        else:
            stale = now - path.stat().st_mtime > _ANONYMOUS_TEMP_AGE
        if stale and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
