"""Serving the HTTP app with gunicorn (threaded workers), optionally with the worker in-process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from bot.runtime import Runtime

HTTP_THREADS = 16


class _Gunicorn(BaseApplication):
    def __init__(self, build: Callable[[], Runtime], options: dict[str, Any]) -> None:
        self._build = build
        self._options = options
        self._runtime: Runtime | None = None
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)
        self.cfg.set("worker_exit", self._on_worker_exit)

    def load(self) -> Any:
        # Runs in the worker process after the fork, so threads started here live in the worker.
        self._runtime = self._build()
        return self._runtime.web_app

    def _on_worker_exit(self, _server: Any, _worker: Any) -> None:
        if self._runtime is not None:
            self._runtime.stop()


def serve(
    build: Callable[[], Runtime], *, host: str, port: int, workers: int, log_level: str
) -> None:
    """Run gunicorn until it is told to stop; `build` makes each worker process's runtime."""
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": HTTP_THREADS,
        "timeout": 60,
        "graceful_timeout": 20,
        "loglevel": log_level.lower(),
        "accesslog": None,
        "proc_name": "revbot",
    }
    _Gunicorn(build, options).run()
