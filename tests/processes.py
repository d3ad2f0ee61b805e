"""Running the real `revbot` command in a subprocess for CLI and restart tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.conftest import BOT_TOKEN, INTAKE_TOKEN, SIGNING_SECRET


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def revbot_env(
    tmp_path: Path, *, slack_url: str | None = None, database_url: str | None = None, **extra: str
) -> dict[str, str]:
    """An environment for a revbot process: the fakes, a temp database, a free port."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "REVBOT_", "DATABASE_URL"))
    }
    env.update(
        DATABASE_URL=database_url or f"sqlite:///{tmp_path / 'revbot.db'}",
        REVBOT_HOST="127.0.0.1",
        PORT=str(free_port()),
        PYTHONUNBUFFERED="1",
    )
    if slack_url:
        env.update(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=slack_url,
            REVBOT_INTAKE_TOKEN=INTAKE_TOKEN,
        )
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `python -m bot ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class RevbotProcess:
    """A long-running `revbot` command in its own process group, killable like a crashed host."""

    def __init__(self, env: dict[str, str], cwd: Path, command: str = "run") -> None:
        self.env = env
        self.command = command
        self.url = f"http://127.0.0.1:{env['PORT']}"
        self.log = cwd / f"revbot-{time.monotonic_ns()}.log"
        self._out = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", command],
            env=env,
            cwd=cwd,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_log(self, text: str, timeout: float = 30) -> None:
        """Wait until the process has logged `text`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text():
                return
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"revbot exited with {self.proc.returncode}:\n{self.log.read_text()}"
                )
            time.sleep(0.1)
        raise AssertionError(f"revbot never logged {text!r}:\n{self.log.read_text()}")

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until /readyz answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"revbot exited with {self.proc.returncode}:\n{self.log.read_text()}"
                )
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.1)
        raise AssertionError(f"revbot did not become ready:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown hooks run."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._out.close()

    def stop(self) -> None:
        """Graceful stop (SIGTERM), as a platform would on deploy."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._out.close()
