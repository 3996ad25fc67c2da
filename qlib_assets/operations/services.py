"""Scratch use of the real servers: a fresh PostgreSQL database, local Celery workers.

Tests and benchmarks create a database per run and drop it afterwards, and stop every worker
they start, so nothing outlives them.
"""

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from qlib_assets.operations.config import OperationsSettings
from qlib_assets.operations.deployment import celery_worker_command

ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
BROKER_URL = "pyamqp://guest:guest@127.0.0.1:5672//"


def reachable(url: str, default_port: int) -> bool:
    """Whether something accepts TCP connections at the host and port of ``url``."""
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def database_url(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def _admin_connection(admin_url: str):
    import psycopg2

    parts = urlsplit(admin_url)
    connection = psycopg2.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or None,
        dbname=parts.path.lstrip("/") or "postgres",
    )
    connection.autocommit = True
    return connection


@contextmanager
def temporary_databases(admin_url: str, *purposes: str) -> Iterator[dict[str, str]]:
    """Fresh databases ``qa_<purpose>_<random>``; yields purpose -> URL; drops them at exit."""
    token = uuid.uuid4().hex[:10]
    names = {purpose: f"qa_{purpose}_{token}" for purpose in purposes}
    connection = _admin_connection(admin_url)
    try:
        with connection.cursor() as cursor:
            for name in names.values():
                cursor.execute(f'CREATE DATABASE "{name}"')
        yield {purpose: database_url(admin_url, name) for purpose, name in names.items()}
    finally:
        with connection.cursor() as cursor:
            for name in names.values():
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.close()


@contextmanager
def celery_workers(
    ops: OperationsSettings,
    count: int,
    env: Mapping[str, str],
    log_dir: Path,
    ready_timeout: float = 120.0,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` local workers on ``ops.celery_queue``, each one process; stopped at exit.

    Waits until every worker answers a ping, so the first task finds them all listening.
    """
    processes: list[subprocess.Popen[bytes]] = []
    names = [f"qa{index}-{uuid.uuid4().hex[:6]}" for index in range(count)]
    try:
        for name in names:
            log = (log_dir / f"{name}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    celery_worker_command(ops, name, python=sys.executable),
                    env={**os.environ, **env},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        _wait_for_workers(ops, names, processes, log_dir, ready_timeout)
        yield processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_workers(
    ops: OperationsSettings,
    names: list[str],
    processes: list[subprocess.Popen[bytes]],
    log_dir: Path,
    timeout: float,
) -> None:
    from celery import Celery

    app = Celery(broker=ops.celery_broker)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            dead = [p for p in processes if p.poll() is not None]
            if dead:
                raise RuntimeError(f"a Celery worker exited at start; see the logs in {log_dir}")
            replies = app.control.ping(timeout=1.0) or []
            answered = {key.split("@")[0] for reply in replies for key in reply}
            if answered >= set(names):
                return
            time.sleep(0.5)
    finally:
        app.close()
    raise TimeoutError(
        f"{len(names)} Celery worker(s) did not answer within {timeout}s; see {log_dir}"
    )
