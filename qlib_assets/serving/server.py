"""Running the service: in the foreground (the CLI), on a thread (tests, benchmarks), or as a
separate process (environments side by side, SIGKILL tests, the deployment pipeline)."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

import httpx

from qlib_assets.settings import Settings

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def run_service(settings: Settings, port: int | None = None) -> None:
    """Serve in the foreground until interrupted."""
    import uvicorn

    from qlib_assets.serving.app import create_app
    from qlib_assets.serving.service import PredictionService

    app = create_app(PredictionService(settings))
    uvicorn.run(
        app,
        host=settings.serving.host,
        port=port or settings.serving.port(settings.env),
        log_level="warning",
        access_log=False,
    )


def wait_ready(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url``/ready until it answers 200; raise with the last answer when it does not."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the service at {url} exited with {process.returncode}")
        try:
            answer = httpx.get(f"{url}/ready", timeout=2)
            if answer.status_code == 200:
                return
            last = answer.text
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s: {last}")


class ThreadServer:
    """A uvicorn server on a loopback port in a thread of this process; stops on exit."""

    def __init__(self, settings: Settings, port: int | None = None) -> None:
        import uvicorn

        from qlib_assets.serving.app import create_app
        from qlib_assets.serving.service import PredictionService

        self.service = PredictionService(settings)
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        config = uvicorn.Config(
            create_app(self.service),
            host=LOOPBACK,
            port=self.port,
            log_level="warning",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        try:
            deadline = time.monotonic() + 60
            while not self.server.started:
                if not self.thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn did not start on {self.url}")
                time.sleep(0.02)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class ServiceProcess:
    """``qlib-assets serve`` in a child process with its own environment; stops on exit."""

    def __init__(
        self, env: str, port: int, environ: dict[str, str], log_path: Path | None = None
    ) -> None:
        self.port = port
        self.url = f"http://{LOOPBACK}:{port}"
        command = [sys.executable, "-m", "qlib_assets.cli", "serve", "--env", env]
        self._log = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [*command, "--port", str(port)],
            env={**os.environ, **environ},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 120) -> "ServiceProcess":
        try:
            wait_ready(self.url, timeout, self.process)
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL: no flush, no shutdown hook."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._close_log()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not subprocess.DEVNULL:
            self._log.close()

    def __enter__(self) -> "ServiceProcess":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
