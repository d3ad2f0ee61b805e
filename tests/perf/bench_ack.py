"""Benchmark: Slack ack latency at 50 requests/s while every CRM call takes 2 s.

    python -m tests.perf.bench_ack [--rate 50] [--seconds 60] [--crm-delay 2] [--lookups 20] \\
        [--baseline-seconds 10] [--database-url postgresql://postgres@127.0.0.1:5432/test] \\
        [--json out.json] [--access-log access.log] [--profile DIR]

revbot runs as it does in production, as the real command in its own processes: on SQLite
`revbot run` (gunicorn with the worker in-process); with `--database-url` the scaled PostgreSQL
layout, `revbot web` with two gunicorn processes beside one `revbot worker`. Its CRM is HubSpot
(`REVBOT_CRM=hubspot`), pointed at the fake HubSpot API served by this process, which waits
`--crm-delay` seconds before answering each request (concurrent requests wait together). The fake
holds the contacts behind the leads (stored through `POST /intake/leads` with their
`crm_record_id`, so Accept, Reject and Recycle write back to them) and the deals the #deal-support
submissions name.

Signed Slack requests go to the real `/slack/events` at a steady `--rate` (open loop: a slow
answer never delays the next send): Accept clicks on distinct leads, Reject and Recycle modal
submissions, /pipeline and /lead, and a few #deal-support request submissions that name a CRM
deal. Beside them `--lookups` users each keep one /deal search in flight (a new one as soon as the
previous answer reaches its response_url), every search a different text so none is served from
the cache.

First a baseline: Accept clicks alone at half the rate, no lookups. Then the measured run. Ack
latency is measured server-side, inside revbot: its gunicorn access log (`REVBOT_ACCESS_LOG`)
gives each request's time from its parsed headers to its last body byte written, in
microseconds, and the `X-Request-Id` the benchmark set names its phase and kind. It is also
measured client-side (send to answer, including this process's own scheduling). Bars:
server-side p99 < 100 ms, no request past Slack's 3 s, clicks no slower with the lookups in
flight. `--profile DIR` samples every revbot process (gunicorn's workers included) with py-spy
during the measured run (the thread holding the GIL: where the CPU goes) and leaves one
collapsed-stack file per process there, for flamegraph.pl or speedscope. Not collected by pytest (run on demand).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
from sqlmodel import Session, col, select

from bot.core import db
from bot.core.models import MqlCycle
from tests.conftest import BOT_TOKEN, INTAKE_TOKEN, SIGNING_SECRET
from tests.fakes.hubspot_api import FakeHubSpot
from tests.fakes.hubspot_testing import PORTAL_ID
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_payloads import (
    block_action_payload,
    date_state,
    form_body,
    select_state,
    slash_command_form,
    text_state,
    view_submission_payload,
)
from tests.fakes.slack_signing import signed_headers
from tests.perf.bench_memory import descendants
from tests.perf.harness import (
    PLAYBOOK,
    RevbotCli,
    cpu_seconds,
    database,
    machine_busy,
    percentile,
    report,
    running_revbot_cli,
)

BAR_P99_SECONDS = 0.1
SLACK_TIMEOUT_SECONDS = 3.0
WEB_CONCURRENCY = 2
DEALS = 50
# One round of the open-loop mix (50 requests): mostly clicks, then modals and commands. The
# #deal-support submission is the one request whose ack may wait on the CRM (it reads the deal
# when the opportunity search did not just offer it).
MIX: Sequence[tuple[str, int]] = (
    ("accept click", 26),
    ("reject submission", 6),
    ("recycle submission", 6),
    ("/pipeline", 6),
    ("/lead", 5),
    ("deal-support submission", 1),
)
EXTRA = """
deal_support:
  marketers: [UMKT1]
  ask_types:
    - {code: battle_card, label: "Battle card", first_response_within: 4h, clock: wall}
access:
  deals: everyone
"""
# gunicorn's access log line as bot/server.py formats it: ... "METHOD PATH" STATUS BYTES MICROS "ID"
ACCESS_LINE = re.compile(r'" (?P<status>\d{3}) \S+ (?P<micros>\d+) "(?P<id>[^"]*)"$')
PHASES = ("baseline", "load")
# revbot's error lines, gunicorn's ("[ERROR]", a worker timed out), and each traceback's last line.
TROUBLE = re.compile(r" ERROR |\[ERROR\]|\[CRITICAL\]|WORKER TIMEOUT|^[\w.]+(Error|Exception): ")


class ResponseSink:
    """A response_url endpoint: signals when a key's final /deal answer (not the interim) lands."""

    def __init__(self) -> None:
        self._arrived: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if (
                    b"Deals matching" in body
                    or b"No deal in the CRM" in body
                    or b"could not look up" in body
                ):
                    sink.event(self.path.rsplit("/", 1)[-1]).set()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/response/"

    def event(self, key: str) -> threading.Event:
        """The event set when `key`'s answer arrives."""
        with self._lock:
            return self._arrived.setdefault(key, threading.Event())

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


class Client:
    """Sends signed Slack requests to revbot and records each one's client-side latency.

    Each request carries `X-Request-Id: phase|kind|n`, which revbot's access log repeats."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/slack/events"
        self.phase = PHASES[0]
        self.seconds: dict[str, list[float]] = {}
        self.failures: list[str] = []
        self._numbers = itertools.count()
        self._local = threading.local()
        self._lock = threading.Lock()

    def send(self, kind: str, body: bytes) -> float:
        """POST `body` signed as Slack would; returns the seconds until the answer."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        headers = signed_headers(body, SIGNING_SECRET)
        headers["X-Request-Id"] = f"{self.phase}|{kind}|{next(self._numbers)}"
        # A new connection each time: a kept-alive one that gunicorn closes as idle just as a
        # request is sent on it fails on the client without ever reaching revbot.
        headers["Connection"] = "close"
        started = time.perf_counter()
        try:
            response = session.post(self.url, data=body, headers=headers, timeout=30)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                self._fail(f"{kind}: HTTP {response.status_code}")
        except requests.RequestException as error:
            elapsed = time.perf_counter() - started
            self._fail(f"{kind}: {type(error).__name__}")
        with self._lock:
            self.seconds.setdefault(kind, []).append(elapsed)
        return elapsed

    def _fail(self, what: str) -> None:
        with self._lock:
            self.failures.append(what)


def server_seconds(access_log: Path) -> dict[str, dict[str, list[float]]]:
    """Server-side seconds by phase and kind, from the access log lines of the benchmark's
    requests (those whose X-Request-Id it set)."""
    found: dict[str, dict[str, list[float]]] = {phase: {} for phase in PHASES}
    text = access_log.read_text() if access_log.exists() else ""
    for line in text.splitlines():
        match = ACCESS_LINE.search(line)
        parts = match["id"].split("|") if match else []
        if match and len(parts) == 3 and parts[0] in found:
            found[parts[0]].setdefault(parts[1], []).append(int(match["micros"]) / 1e6)
    return found


def ack_playbook() -> str:
    """The benchmark team with #deal-support and deal lookups open to everyone."""
    return PLAYBOOK + EXTRA


def seed_crm(hubspot: FakeHubSpot, leads: int) -> tuple[list[str], list[str]]:
    """The deals and one contact per lead in the fake HubSpot; returns (deal ids, contact ids)."""
    deals = [
        hubspot.seed_deal(
            dealname=f"Deal {n} Acme",
            pipeline="default",
            dealstage="presentationscheduled",
            amount=50_000,
        )
        for n in range(DEALS)
    ]
    contacts = [
        hubspot.seed_contact(lastname=f"Ack{i:06d}", company="Bench", hs_lead_status="NEW")
        for i in range(leads)
    ]
    return deals, contacts


def seed_leads(live_url: str, contacts: list[str]) -> None:
    """Store one lead per HubSpot contact through revbot's intake, naming its CRM record."""
    http = requests.Session()
    headers = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
    for start in range(0, len(contacts), 250):
        leads = [
            {
                "external_id": f"A-{i:06d}",
                "crm_record_id": contacts[i],
                "last_name": f"Ack{i:06d}",
                "company": "Bench",
                "score": 60,
            }
            for i in range(start, min(start + 250, len(contacts)))
        ]
        http.post(
            f"{live_url}/intake/leads", json={"leads": leads}, headers=headers, timeout=60
        ).raise_for_status()


def usage(revbot: RevbotCli) -> tuple[float, float, float, float]:
    """CPU seconds used so far by revbot's processes and by this one, and the machine's busy
    and total CPU ticks."""
    pids = [pid for p in revbot.processes for pid in descendants(p.proc.pid)]
    own = resource.getrusage(resource.RUSAGE_SELF)
    return (cpu_seconds(pids), own.ru_utime + own.ru_stime, *machine_busy())


def _open_cycles(database_url: str) -> list[tuple[int, str]]:
    engine = db.make_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with Session(engine) as session:
            rows = session.exec(
                select(MqlCycle.id, MqlCycle.owner_slack_id).order_by(col(MqlCycle.id))
            ).all()
    finally:
        engine.dispose()
    return [(int(i), str(owner)) for i, owner in rows if i is not None and owner]


def _click(cycle_id: int, owner: str) -> bytes:
    return form_body(
        block_action_payload(user_id=owner, action_id="lead_accept", value=str(cycle_id))
    )


def _modal(callback_id: str, cycle_id: int, owner: str, values: dict[str, Any]) -> bytes:
    return form_body(
        view_submission_payload(
            user_id=owner,
            callback_id=callback_id,
            private_metadata=json.dumps({"cycle_id": cycle_id}),
            values=values,
        )
    )


def _command(command: str, text: str, user: str, response_url: str = "") -> bytes:
    form = slash_command_form(command=command, text=text, user_id=user, response_url=response_url)
    return urlencode(form).encode()


class Requests:
    """Builds the next request body of each kind (distinct leads for clicks and modals)."""

    def __init__(self, cycles: list[tuple[int, str]], deals: list[str]) -> None:
        self._cycles = iter(cycles)
        self._deals = deals
        self._n = itertools.count()
        self.revisit = (date.today() + timedelta(days=90)).isoformat()
        self.due = (date.today() + timedelta(days=3)).isoformat()

    def next_cycle(self) -> tuple[int, str]:
        """A lead no request has touched yet."""
        try:
            return next(self._cycles)
        except StopIteration:
            raise SystemExit("ran out of seeded leads; raise the seed count") from None

    def body(self, kind: str) -> bytes:
        """The body of one request of `kind`."""
        n = next(self._n)
        if kind == "accept click":
            return _click(*self.next_cycle())
        if kind == "reject submission":
            cycle_id, owner = self.next_cycle()
            values = {
                "reason": {"value": select_state("not_icp")},
                "note": {"value": text_state("Outside our market.")},
            }
            return _modal("lead_reject_modal", cycle_id, owner, values)
        if kind == "recycle submission":
            cycle_id, owner = self.next_cycle()
            values = {
                "reason": {"value": select_state("timing")},
                "revisit_on": {"value": date_state(self.revisit)},
                "note": {"value": text_state("Budget next quarter.")},
            }
            return _modal("lead_recycle_modal", cycle_id, owner, values)
        if kind == "/pipeline":
            return _command("/pipeline", "team" if n % 2 else "", "UMGR1" if n % 2 else "UREP01")
        if kind == "/lead":
            return _command("/lead", f"Ack{n % 500:06d}", "UMGR1")
        if kind == "deal-support submission":
            deal = self._deals[n % len(self._deals)]
            values = {
                "deal": {"ds_deal_search": select_state(f"deal:{deal}")},
                "ask_type": {"value": select_state("battle_card")},
                "competitor": {"value": text_state("Globex")},
                "due_on": {"value": date_state(self.due)},
                "details": {"value": text_state("Need a Globex one-pager for the CFO.")},
            }
            payload = view_submission_payload(
                user_id="UREP02",
                callback_id="deal_support_request",
                private_metadata="{}",
                values=values,
            )
            return form_body(payload)
        raise ValueError(kind)


def _schedule(mix: Sequence[tuple[str, int]]) -> list[str]:
    """One round of the mix with each kind spread evenly (largest-remainder interleave)."""
    total = sum(weight for _, weight in mix)
    slots: list[tuple[float, str]] = []
    for kind, weight in mix:
        slots.extend(((i + 0.5) * total / weight, kind) for i in range(weight))
    return [kind for _, kind in sorted(slots)]


def _open_loop(
    client: Client, builder: Requests, kinds: list[str], rate: float, seconds: float
) -> int:
    """Send `rate` requests a second for `seconds`, each on its own thread; returns the count."""
    total = int(rate * seconds)
    with ThreadPoolExecutor(max_workers=64, thread_name_prefix="bench-client") as pool:
        start = time.perf_counter()
        for i in range(total):
            kind = kinds[i % len(kinds)]
            body = builder.body(kind)
            time.sleep(max(start + i / rate - time.perf_counter(), 0))
            pool.submit(client.send, kind, body)
    return total


def _lookup_user(
    client: Client, sink: ResponseSink, user: int, stop: threading.Event, answers: list[float]
) -> None:
    for n in itertools.count():
        if stop.is_set():
            return
        key = f"deal-{user}-{n}"
        body = _command("/deal", f"Renewal {user} {n}", "UREP01", sink.url + key)
        started = time.perf_counter()
        client.send("/deal", body)
        if sink.event(key).wait(40):
            answers.append(time.perf_counter() - started)


def sampling(revbot: RevbotCli, folder: Path, seconds: float) -> list[subprocess.Popen[bytes]]:
    """Start py-spy on each revbot process (and its children) for `seconds`, writing collapsed
    stacks into `folder`: only threads holding the GIL, so the stacks show where the CPU goes
    (a wait for the database or the network is not in them); py-spy does not pause revbot."""
    folder.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    return [
        subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(process.proc.pid),
                "--subprocesses",
                "--nonblocking",
                "--gil",
                "--format",
                "raw",
                "--duration",
                str(int(seconds)),
                "--output",
                str(folder / f"revbot-{process.command}-{process.proc.pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for process in revbot.processes
    ]


def _stats(prefix: str, seconds: list[float]) -> dict[str, Any]:
    return {
        f"{prefix} n": len(seconds),
        f"{prefix} p50 (ms)": percentile(seconds, 50) * 1000,
        f"{prefix} p99 (ms)": percentile(seconds, 99) * 1000,
        f"{prefix} max (ms)": max(seconds, default=float("nan")) * 1000,
    }


def _all(by_kind: dict[str, list[float]], keep: Callable[[str], bool]) -> list[float]:
    return [s for kind, values in by_kind.items() if keep(kind) for s in values]


def main(argv: list[str] | None = None) -> int:
    """Run the baseline and the measured load, then report ack latencies."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--crm-delay", type=float, default=2.0)
    parser.add_argument("--lookups", type=int, default=20)
    parser.add_argument("--baseline-seconds", type=float, default=10.0)
    parser.add_argument("--database-url")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--access-log", type=Path, help="keep revbot's access log here (default: a temp file)"
    )
    parser.add_argument(
        "--profile", type=Path, help="sample revbot with py-spy during the run; stacks go here"
    )
    args = parser.parse_args(argv)

    kinds = _schedule(MIX)
    per_lead = sum(w for k, w in MIX if k.endswith(("click", "submission")) and "deal" not in k)
    needed = int(
        args.rate * args.seconds * per_lead / len(kinds) + args.rate * args.baseline_seconds
    )
    sink = ResponseSink()
    answers: list[float] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        database(args.database_url) as url,
        FakeSlack(bot_token=BOT_TOKEN, clock=time.time) as slack,
        FakeHubSpot() as hubspot,
    ):
        folder = Path(tmp)
        access_log = (args.access_log or folder / "access.log").resolve()
        access_log.unlink(missing_ok=True)
        deals, contacts = seed_crm(hubspot, needed + 100)
        with running_revbot_cli(
            folder,
            url,
            slack.url,
            ack_playbook(),
            web_concurrency=WEB_CONCURRENCY,
            REVBOT_CRM="hubspot",
            HUBSPOT_ACCESS_TOKEN=hubspot.token,
            HUBSPOT_API_URL=hubspot.url,
            HUBSPOT_PORTAL_ID=PORTAL_ID,
            REVBOT_ACCESS_LOG=str(access_log),
        ) as revbot:
            seed_leads(revbot.url, contacts)
            hubspot.latency = args.crm_delay
            builder = Requests(_open_cycles(url), deals)
            client = Client(revbot.url)

            _open_loop(client, builder, ["accept click"], args.rate / 2, args.baseline_seconds)
            baseline_client = client.seconds.pop("accept click", [])

            client.phase = PHASES[1]
            stop = threading.Event()
            users = [
                threading.Thread(target=_lookup_user, args=(client, sink, u, stop, answers))
                for u in range(args.lookups)
            ]
            for user in users:
                user.start()
            time.sleep(min(args.crm_delay * 2, 5))  # let the lookups fill the CRM queue first
            load_before, before = os.getloadavg()[0], usage(revbot)
            profilers = sampling(revbot, args.profile, args.seconds) if args.profile else []
            started = time.perf_counter()
            sent = _open_loop(client, builder, kinds, args.rate, args.seconds)
            elapsed = time.perf_counter() - started
            for profiler in profilers:
                profiler.wait(60)
            after, load_after = usage(revbot), os.getloadavg()[0]
            stop.set()
            for user in users:
                user.join(60)
            by_kind_client = {k: list(v) for k, v in client.seconds.items()}
            deal_acks = len(by_kind_client.get("/deal", []))
            errors = [line for line in revbot.logs().splitlines() if TROUBLE.search(line)]
            layout = revbot.layout
        server = server_seconds(access_log)
        crm_calls = len(hubspot.calls())
        crm_writes = len(hubspot.calls("/crm/v3/objects/contacts/batch/update"))
        crm_refused = len(hubspot.schema_errors)
    sink.close()

    baseline_server = server["baseline"].get("accept click", [])
    by_kind_server = server["load"]
    everything_server = _all(by_kind_server, lambda k: True)
    everything_client = _all(by_kind_client, lambda k: True)
    without_crm = _all(by_kind_server, lambda k: k != "deal-support submission")
    figures: dict[str, Any] = {
        "database": "postgresql" if args.database_url else "sqlite",
        "revbot": layout,
        "CRM": "HubSpot (fake API over HTTP)",
        "CRM delay per call (s)": args.crm_delay,
        "CRM calls made": crm_calls,
        "CRM contact write-back calls": crm_writes,
        "CRM calls refused as invalid": crm_refused,
        "open-loop rate (req/s)": args.rate,
        "seconds": args.seconds,
        "requests sent (open loop)": sent,
        "/deal requests (closed loop)": deal_acks,
        "total req/s achieved": (sent + deal_acks) / elapsed,
        "lookup users in flight": args.lookups,
        "revbot CPU during the run (cores)": (after[0] - before[0]) / elapsed,
        "benchmark process CPU during the run (cores)": (after[1] - before[1]) / elapsed,
        "machine CPU busy during the run (%)": 100
        * (after[2] - before[2])
        / (after[3] - before[3]),
        "machine cores": os.cpu_count(),
        "load 1-min before → after": f"{load_before:.1f} → {load_after:.1f}",
        "requests missing from the access log": len(baseline_client)
        + len(everything_client)
        - len(baseline_server)
        - len(everything_server),
        **_stats("server ack all", everything_server),
        **_stats("client ack all", everything_client),
        **_stats("server ack without #deal-support", without_crm),
        "past 3 s (client)": sum(1 for s in everything_client if s > SLACK_TIMEOUT_SECONDS),
        "failed requests": len(client.failures),
        "revbot error lines logged": len(errors),
        **_stats("baseline click server", baseline_server),
        **_stats("click server with lookups", by_kind_server.get("accept click", [])),
        **_stats("baseline click client", baseline_client),
        **_stats("click client with lookups", by_kind_client.get("accept click", [])),
        "/deal answers": len(answers),
        "/deal answer p50 (s)": percentile(answers, 50),
        "/deal answer max (s)": max(answers, default=float("nan")),
    }
    for kind in sorted(by_kind_server):
        figures[f"server p99 (ms): {kind}"] = percentile(by_kind_server[kind], 99) * 1000
        figures[f"server max (ms): {kind}"] = max(by_kind_server[kind]) * 1000
    for kind in sorted(by_kind_client):
        figures[f"client p99 (ms): {kind}"] = percentile(by_kind_client[kind], 99) * 1000
    figures["bar: server p99 < 100 ms"] = percentile(everything_server, 99) < BAR_P99_SECONDS
    figures["bar: zero past 3 s"] = figures["past 3 s (client)"] == 0
    figures["bar: lookups do not delay a click"] = (
        percentile(by_kind_server.get("accept click", []), 99) < BAR_P99_SECONDS
    )
    if client.failures:
        figures["failures (first 5)"] = client.failures[:5]
    if errors:
        figures["revbot errors (first 6)"] = errors[:6]
    report("ack under a slow CRM", figures, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
