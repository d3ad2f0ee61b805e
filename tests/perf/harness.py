"""Shared pieces of the benchmarks: a revbot serving HTTP with its worker (in this process or as
the real command), fakes, percentiles."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

from bot.core import db
from bot.core.crm import CRM
from bot.core.pacing import Pacer
from bot.core.playbook import Playbook, parse_playbook
from bot.services import default_pacer
from tests.conftest import Live, make_services, start_live
from tests.fakes.slack_api import FakeSlack
from tests.processes import RevbotProcess, revbot_env, run_cli

REPS = [f"UREP{i:02d}" for i in range(1, 21)]

PLAYBOOK = f"""
channels: {{pipeline: "#revenue-pipeline", alerts: "#revops-alerts"}}
tiers:
  - {{name: hot, min_score: 80, accept_within: 15m, clock: wall}}
  - {{name: warm, min_score: 50, accept_within: 4h, clock: wall}}
  - {{name: nurture, min_score: 0, accept_within: 1d, clock: wall}}
reasons:
  reject: [{{code: not_icp, label: Not ICP}}]
  recycle: [{{code: timing, label: Timing}}]
routing:
  mode: assign
  pools:
    sales:
      manager: UMGR1
      members: [{", ".join(f"{{slack_id: {r}}}" for r in REPS)}]
"""


def bench_playbook() -> Playbook:
    """Assign mode over twenty reps, wall-clock SLAs (a benchmark runs any day of the week)."""
    return parse_playbook(PLAYBOOK, "benchmark playbook")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0 to 100), interpolated; NaN for no values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


@contextlib.contextmanager
def database(url: str | None) -> Iterator[str]:
    """A fresh migrated database: a temp SQLite file, or a new schema on the given PostgreSQL."""
    if url is None:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    schema = f"revbot_bench_{os.getpid()}"
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        separator = "&" if "?" in url else "?"
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


@contextlib.contextmanager
def running_revbot(
    database_url: str,
    fake: FakeSlack,
    *,
    pacer: Pacer | None = None,
    playbook: Playbook | None = None,
    crm: Callable[[Engine], CRM] | None = None,
) -> Iterator[Live]:
    """revbot serving HTTP with its worker on the database, posting to the fake Slack; `crm`
    builds the CRM on revbot's engine (default: the local CRM)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    engine = db.make_engine(
        database_url.replace("postgresql://", "postgresql+psycopg://", 1)
        if database_url.startswith("postgresql://")
        else database_url
    )
    db.upgrade(engine)
    services = make_services(
        engine,
        database_url,
        fake,
        playbook=playbook or bench_playbook(),
        crm=crm(engine) if crm else None,
    )
    services.pacer = pacer or default_pacer()
    live, stop = start_live(services, fake)
    try:
        yield live
    finally:
        stop()
        engine.dispose()


@dataclass
class RevbotCli:
    """revbot running as the real command: its HTTP base URL, its processes, how it is laid out."""

    url: str
    processes: list[RevbotProcess]
    layout: str

    def logs(self) -> str:
        """Everything the processes have printed so far."""
        return "\n".join(p.log.read_text() for p in self.processes)


@contextlib.contextmanager
def running_revbot_cli(
    folder: Path,
    database_url: str,
    slack_url: str,
    playbook: str,
    *,
    web_concurrency: int = 2,
    **env: str,
) -> Iterator[RevbotCli]:
    """revbot as deployed, in subprocesses after `revbot db upgrade`: on SQLite `revbot run`
    (gunicorn with the worker in-process); on PostgreSQL the scaled layout, `revbot web` with
    `web_concurrency` gunicorn processes beside one `revbot worker`. `env` adds settings."""
    playbook_path = folder / "revbot.yml"
    playbook_path.write_text(playbook)
    settings = revbot_env(
        folder,
        slack_url=slack_url,
        database_url=database_url,
        REVBOT_PLAYBOOK=str(playbook_path),
        **env,
    )
    upgraded = run_cli("db", "upgrade", env=settings, cwd=folder)
    if upgraded.returncode != 0:
        raise SystemExit(f"revbot db upgrade failed:\n{upgraded.stdout}{upgraded.stderr}")
    if database_url.startswith("sqlite"):
        processes = [RevbotProcess(settings, folder, "run")]
        layout = "revbot run (one gunicorn worker, revbot's worker in-process)"
    else:
        web = {**settings, "WEB_CONCURRENCY": str(web_concurrency)}
        processes = [RevbotProcess(web, folder, "web"), RevbotProcess(settings, folder, "worker")]
        layout = f"revbot web ({web_concurrency} gunicorn workers) + revbot worker"
    try:
        processes[0].wait_ready(60)
        if len(processes) > 1:
            processes[1].wait_log("revbot worker running", 60)
        yield RevbotCli(processes[0].url, processes, layout)
    finally:
        for process in processes:
            process.stop()


def cpu_seconds(pids: Iterable[int]) -> float:
    """User plus system CPU seconds used so far by those of `pids` still running."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks summed over its cores."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    total = sum(ticks[:8])  # guest time is already counted in user
    return total - idle, total


class RequestTimer:
    """WSGI middleware timing each request inside revbot, from the call to the last body byte.

    Requests are grouped by their `X-Bench-Kind` header (the benchmark's own label), so the
    server-side figures exclude the client and the network but include Bolt's wait for `ack()`.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.seconds: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        started = time.perf_counter()
        result = self.app(environ, start_response)
        try:
            body = list(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
            elapsed = time.perf_counter() - started
            kind = environ.get("HTTP_X_BENCH_KIND", "other")
            with self._lock:
                self.seconds.setdefault(kind, []).append(elapsed)
        return body


def time_requests(live: Live) -> RequestTimer:
    """Time every request the running revbot serves from now on (see `RequestTimer`)."""
    app = live.runtime.web_app
    timer = RequestTimer(app.wsgi_app)
    app.wsgi_app = timer  # type: ignore[method-assign]
    return timer


def report(name: str, figures: dict[str, Any], out: Path | None) -> None:
    """Print the figures as a table and write them as JSON when asked."""
    width = max(len(k) for k in figures)
    print(f"\n{name}")
    for key, value in figures.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"  {key.ljust(width)}  {shown}")
    if out is not None:
        out.write_text(json.dumps({"benchmark": name, **figures}, indent=2) + "\n")
