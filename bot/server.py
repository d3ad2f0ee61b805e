"""Serving the HTTP app with gunicorn (threaded workers), optionally with the worker in-process."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication

if TYPE_CHECKING:
    from bot.runtime import Runtime

HTTP_THREADS = 16
# The path without its query string (a client may put a secret there); the duration in
# microseconds; X-Request-Id as a platform's router sets it, to match the router's own logs.
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(b)s %(D)s "%({x-request-id}i)s"'


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
    build: Callable[[], Runtime],
    *,
    host: str,
    port: int,
    workers: int,
    log_level: str,
    access_log: str | None = None,
) -> None:
    """Run gunicorn until it is told to stop; `build` makes each worker process's runtime.

    `access_log` is a file path, or `-` for stdout, to log each request (with its duration)
    to; None logs no requests."""
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": HTTP_THREADS,
        "timeout": 60,
        "graceful_timeout": 20,
        "loglevel": log_level.lower(),
        "accesslog": access_log,
        "access_log_format": ACCESS_LOG_FORMAT,
        "proc_name": "revbot",
    }
    _Gunicorn(build, options).run()
