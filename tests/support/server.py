"""A real RailServe server (`railserve serve`, its default ASGI server) on a free 127.0.0.1 port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RAILSERVE = Path(sys.executable).parent / "railserve"


# argon2 at its lowest cost: passwords are not what the suite is about, and at full cost
# every sign-up takes 64 MiB and tens of milliseconds of a core. Production refuses it.
CHEAP_HASHING = {"password_time_cost": 1, "password_memory_cost": 1024}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def railserve(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(RAILSERVE), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


class ServerExited(RuntimeError):
    """The server process ended before it answered."""


class LiveServer:
    """Start with `start()`, stop with `stop()` (SIGTERM) or `kill()` (SIGKILL)."""

    def __init__(
        self, database_url: str, workers: int = 1, server: str = "hypercorn", **settings: str
    ) -> None:
        self.server = server
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = {
            **os.environ,
            "RAILSERVE_DATABASE_URL": database_url,
            "RAILSERVE_ENV": "development",
            "RAILSERVE_SECRET_KEY": "live-test-secret",
            "RAILSERVE_WEBHOOK_SECRET": "live-test-webhook",
            "RAILSERVE_GATEWAY_DELAY": "0.3",
            "RAILSERVE_GATEWAY_SEED": "live",
            "RAILSERVE_TEST_MODE": "1",
            "RAILSERVE_RATE_LIMITS": "off",
            **{f"RAILSERVE_{k.upper()}": str(v) for k, v in CHEAP_HASHING.items()},
            **{f"RAILSERVE_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.process: subprocess.Popen | None = None
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"railserve-{self.port}.log"

    def start(self, timeout: float = 30.0, attempts: int = 3) -> LiveServer:
        """Start and wait until it answers. A port found free can be taken before the
        server binds it (parallel test workers, other servers on the machine): a server
        that exits before answering is started again on another port."""
        for attempt in range(attempts):
            try:
                return self._start_once(timeout)
            except ServerExited:
                if attempt == attempts - 1:
                    raise
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
                self.log_path = self.log_path.with_name(f"railserve-{self.port}.log")
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> LiveServer:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                str(RAILSERVE),
                "serve",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
            ],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: signals reach every worker
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerExited(f"server exited: {self.log()}")
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1)
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server did not answer within {timeout} s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def _signal(self, sig: int) -> None:
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)
        if self.process:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        if self.process:
            self.process.wait(timeout=10)
