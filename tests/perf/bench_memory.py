"""Benchmark: resident memory of a `revbot run` process, idle and busy.

    python -m tests.perf.bench_memory [--idle-seconds 20] [--busy-seconds 60] [--rate 10] \\
        [--database-url postgresql://postgres@127.0.0.1:5432/test] [--json out.json]

Runs `revbot db upgrade`, then starts the real `revbot run` command (gunicorn with the worker
in-process) against the local fake Slack and a fresh database, and samples VmRSS from
`/proc/<pid>/status` of the process and every descendant (gunicorn forks a worker) twice a
second. Idle: after startup, nothing happening.
Busy: `--rate` leads a second through intake, and an Accept click on each one as soon as it is
stored, for `--busy-seconds`. Reported: the peak of the summed RSS of the tree (pages shared by
parent and child after the fork are counted twice, so this overstates), the summed PSS
(`/proc/<pid>/smaps_rollup`: shared pages split between the processes sharing them, the tree's
fair total), and each process's RSS and PSS peaks (main: gunicorn's arbiter; child: its worker,
which serves HTTP and runs the background worker). Bar: < 150 MB. Not collected by pytest (run
on demand).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from sqlmodel import Session, select

from bot.core import db
from bot.core.models import MqlCycle
from tests.conftest import BOT_TOKEN, INTAKE_TOKEN, SIGNING_SECRET, TEST_PLAYBOOK
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_payloads import block_action_payload, form_body
from tests.fakes.slack_signing import signed_headers
from tests.perf.harness import database, report
from tests.processes import RevbotProcess, revbot_env, run_cli

BAR_MB = 150.0
SAMPLE_SECONDS = 0.5


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc's children lists."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                queue.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def rss_mb(pid: int) -> float | None:
    """VmRSS of one process in MB (None once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def pss_mb(pid: int) -> float | None:
    """Proportional set size in MB (shared pages split between their users), None once gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Sampler:
    """Samples the RSS of a process tree in the background; `phase` names the current samples."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.phase = "startup"
        self.total: dict[str, list[float]] = {}
        self.pss: dict[str, list[float]] = {}
        self.per_process: dict[str, dict[int, float]] = {}
        self.per_process_pss: dict[str, dict[int, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            sizes = {p: rss_mb(p) for p in descendants(self.pid)}
            known = {p: s for p, s in sizes.items() if s is not None}
            self.total.setdefault(self.phase, []).append(sum(known.values()))
            shares = {p: pss_mb(p) for p in known}
            self.pss.setdefault(self.phase, []).append(
                sum(s for s in shares.values() if s is not None)
            )
            _keep_peaks(self.per_process.setdefault(self.phase, {}), known)
            _keep_peaks(
                self.per_process_pss.setdefault(self.phase, {}),
                {p: s for p, s in shares.items() if s is not None},
            )
            self._stop.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()


def _keep_peaks(peaks: dict[int, float], sizes: dict[int, float]) -> None:
    for pid, size in sizes.items():
        peaks[pid] = max(peaks.get(pid, 0.0), size)


def _busy(url: str, database_url: str, seconds: float, rate: float) -> tuple[int, int]:
    """Post `rate` leads a second and click Accept on each; returns (leads, clicks answered)."""
    engine = db.make_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    http = requests.Session()
    clicks = 0
    lock = threading.Lock()

    def click(cycle_id: int) -> None:
        nonlocal clicks
        body = form_body(
            block_action_payload(user_id="UREP1", action_id="lead_accept", value=str(cycle_id))
        )
        answer = requests.post(
            f"{url}/slack/events",
            data=body,
            headers=signed_headers(body, SIGNING_SECRET),
            timeout=30,
        )
        if answer.status_code == 200:
            with lock:
                clicks += 1

    total = int(seconds * rate)
    with ThreadPoolExecutor(8) as pool:
        start = time.monotonic()
        for i in range(total):
            time.sleep(max(start + i / rate - time.monotonic(), 0))
            lead = {"external_id": f"M-{i:06d}", "last_name": f"Mem{i}", "company": "Bench"}
            answer = http.post(
                f"{url}/intake/leads",
                json={**lead, "email": f"mem{i}@example.com", "score": 40 + i % 60},
                headers={"Authorization": f"Bearer {INTAKE_TOKEN}"},
                timeout=30,
            )
            answer.raise_for_status()
            lead_id = int(answer.json()["results"][0]["lead_id"])
            with Session(engine) as session:
                cycle_id = session.exec(
                    select(MqlCycle.id).where(MqlCycle.lead_id == lead_id)
                ).one()
            pool.submit(click, int(cycle_id or 0))
    engine.dispose()
    return total, clicks


def _peak(values: list[float]) -> float:
    return max(values, default=float("nan"))


def main(argv: list[str] | None = None) -> int:
    """Start `revbot run`, sample it idle and busy, and report the peaks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--busy-seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--database-url")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    with (
        tempfile.TemporaryDirectory() as folder,
        database(args.database_url) as url,
        FakeSlack(bot_token=BOT_TOKEN) as fake,
    ):
        playbook = Path(folder) / "revbot.yml"
        playbook.write_text(TEST_PLAYBOOK.replace("MODE", "claim"))
        env = revbot_env(
            Path(folder),
            slack_url=fake.url,
            database_url=url,
            REVBOT_PLAYBOOK=str(playbook),
            LOG_LEVEL="WARNING",
        )
        upgraded = run_cli("db", "upgrade", env=env, cwd=Path(folder))
        if upgraded.returncode != 0:
            raise SystemExit(f"revbot db upgrade failed:\n{upgraded.stdout}{upgraded.stderr}")
        revbot = RevbotProcess(env, Path(folder), "run")
        try:
            revbot.wait_ready(60)
            sampler = Sampler(revbot.proc.pid)
            sampler.phase = "idle"
            time.sleep(args.idle_seconds)
            sampler.phase = "busy"
            leads, clicks = _busy(revbot.url, url, args.busy_seconds, args.rate)
            time.sleep(2)
            sampler.stop()
            processes = len(descendants(revbot.proc.pid))
        finally:
            revbot.stop()
        cards = len(fake.calls("chat.postMessage"))
    idle, busy = sampler.total.get("idle", []), sampler.total.get("busy", [])
    figures: dict[str, Any] = {
        "database": "postgresql" if args.database_url else "sqlite",
        "processes in the tree": processes,
        "idle seconds": args.idle_seconds,
        "idle RSS peak, tree sum (MB)": _peak(idle),
        "idle RSS last, tree sum (MB)": idle[-1] if idle else float("nan"),
        "busy seconds": args.busy_seconds,
        "leads sent": leads,
        "clicks answered": clicks,
        "Slack posts made": cards,
        "busy RSS peak, tree sum (MB)": _peak(busy),
        "busy RSS last, tree sum (MB)": busy[-1] if busy else float("nan"),
        "idle PSS peak, tree sum (MB)": _peak(sampler.pss.get("idle", [])),
        "busy PSS peak, tree sum (MB)": _peak(sampler.pss.get("busy", [])),
    }
    for phase in ("idle", "busy"):
        for kind, peaks in (("RSS", sampler.per_process), ("PSS", sampler.per_process_pss)):
            for pid, size in sorted(peaks.get(phase, {}).items()):
                role = "main" if pid == sampler.pid else "child"
                figures[f"{phase} {kind} peak, {role} pid {pid} (MB)"] = size
    figures["bar: < 150 MB (RSS, tree sum)"] = max(_peak(idle), _peak(busy)) < BAR_MB
    figures["bar: < 150 MB (RSS, largest process)"] = (
        max(sampler.per_process.get("busy", {0: float("nan")}).values()) < BAR_MB
    )
    figures["bar: < 150 MB (PSS, tree sum)"] = _peak(sampler.pss.get("busy", [])) < BAR_MB
    report("memory of revbot run", figures, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
