"""Benchmark: Slack ack latency at 50 requests/s while every CRM call takes 2 s.

    python -m tests.perf.bench_ack [--rate 50] [--seconds 60] [--crm-delay 2] [--lookups 20] \\
        [--baseline-seconds 10] [--database-url postgresql://postgres@127.0.0.1:5432/test] \\
        [--json out.json]

revbot serves HTTP with its worker; its CRM is the local one with every call (write, task, note,
poll, search, deal read, check) slowed to `--crm-delay` seconds. Signed Slack requests go to the
real `/slack/events` at a steady `--rate` (open loop: a slow answer never delays the next send):
Accept clicks on distinct leads, Reject and Recycle modal submissions, /pipeline and /lead, and a
few #deal-support request submissions that name a CRM deal. Beside them `--lookups` users each
keep one /deal search in flight (a new one as soon as the previous answer reaches its
response_url), every search a different text so none is served from the cache.

First a baseline: Accept clicks alone, no lookups. Then the measured run. Ack latency is measured
server-side (a WSGI timer around revbot's app, by request kind) and client-side (send to answer).
Bars: server-side p99 < 100 ms, no request past Slack's 3 s, clicks no slower with the lookups in
flight. Not collected by pytest (run on demand).
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.core.crm import (
    CrmTask,
    CrmWrite,
    Deal,
    DealNote,
    LeadOutcome,
    LeadRef,
    MqlPage,
    WriteResult,
)
from bot.core.db import transaction
from bot.core.models import LocalDeal, MqlCycle
from bot.core.playbook import Playbook, parse_playbook
from integrations.local import LocalCRM
from tests.conftest import BOT_TOKEN, INTAKE_TOKEN, SIGNING_SECRET
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
from tests.perf.harness import (
    PLAYBOOK,
    database,
    percentile,
    report,
    running_revbot,
    time_requests,
)

BAR_P99_SECONDS = 0.1
SLACK_TIMEOUT_SECONDS = 3.0
# One round of the open-loop mix (50 requests): mostly clicks, then modals and commands. The
# #deal-support submission is the one request whose ack waits on the CRM (it reads the deal).
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


class SlowCRM(LocalCRM):
    """The local CRM with every call that would reach a vendor slowed to `delay` seconds."""

    def __init__(self, engine: Engine, delay: float) -> None:
        super().__init__(engine, lambda: datetime.now(UTC))
        self.delay = delay

    def apply(self, writes: Sequence[CrmWrite]) -> list[WriteResult]:
        """Write after the delay."""
        time.sleep(self.delay)
        return super().apply(writes)

    def log_tasks(self, tasks: Sequence[CrmTask]) -> list[WriteResult]:
        """Log tasks after the delay."""
        time.sleep(self.delay)
        return super().log_tasks(tasks)

    def add_deal_notes(self, notes: Sequence[DealNote]) -> list[WriteResult]:
        """Add notes after the delay."""
        time.sleep(self.delay)
        return super().add_deal_notes(notes)

    def poll_mqls(self, watermark: str | None, *, now: datetime) -> MqlPage:
        """Poll after the delay."""
        time.sleep(self.delay)
        return super().poll_mqls(watermark, now=now)

    def fetch_mqls(self, record_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Fetch after the delay."""
        time.sleep(self.delay)
        return super().fetch_mqls(record_ids)

    def fetch_outcomes(self, leads: Sequence[LeadRef]) -> list[LeadOutcome]:
        """Fetch outcomes after the delay."""
        time.sleep(self.delay)
        return super().fetch_outcomes(leads)

    def search_deals(self, text: str, *, limit: int = 10) -> list[Deal]:
        """Search after the delay."""
        time.sleep(self.delay)
        return super().search_deals(text, limit=limit)

    def get_deal(self, deal_id: str) -> Deal | None:
        """Read the deal after the delay."""
        time.sleep(self.delay)
        return super().get_deal(deal_id)

    def check(self) -> str:
        """Check after the delay."""
        time.sleep(self.delay)
        return super().check()

    # record_url stays instant: every adapter builds the link locally, without a call.


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
    """Sends signed Slack requests to revbot and records each one's client-side latency."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/slack/events"
        self.seconds: dict[str, list[float]] = {}
        self.failures: list[str] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def send(self, kind: str, body: bytes) -> float:
        """POST `body` signed as Slack would; returns the seconds until the answer."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        headers = signed_headers(body, SIGNING_SECRET)
        headers["X-Bench-Kind"] = kind
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


def ack_playbook() -> Playbook:
    """The benchmark team with #deal-support and deal lookups open to everyone."""
    return parse_playbook(PLAYBOOK + EXTRA, "ack benchmark playbook")


def _seed_leads(live_url: str, count: int) -> None:
    http = requests.Session()
    headers = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
    for start in range(0, count, 250):
        leads = [
            {
                "external_id": f"A-{i:06d}",
                "last_name": f"Ack{i:06d}",
                "company": "Bench",
                "score": 60,
            }
            for i in range(start, min(start + 250, count))
        ]
        http.post(
            f"{live_url}/intake/leads", json={"leads": leads}, headers=headers, timeout=60
        ).raise_for_status()


def _open_cycles(engine: Engine) -> list[tuple[int, str]]:
    with Session(engine) as session:
        rows = session.exec(
            select(MqlCycle.id, MqlCycle.owner_slack_id).order_by(col(MqlCycle.id))
        ).all()
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

    def __init__(self, cycles: list[tuple[int, str]], response_url: str) -> None:
        self._cycles = iter(cycles)
        self._response_url = response_url
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
            values = {
                "deal": {"ds_deal_search": select_state(f"deal:D-{n % 50}")},
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


def _seed_deals(engine: Engine) -> None:
    with transaction(engine) as session:
        for n in range(50):
            session.add(LocalDeal(id=f"D-{n}", name=f"Deal {n} Acme", stage="Proposal"))


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
    args = parser.parse_args(argv)

    kinds = _schedule(MIX)
    per_lead = sum(w for k, w in MIX if k.endswith(("click", "submission")) and "deal" not in k)
    needed = int(
        args.rate * args.seconds * per_lead / len(kinds) + args.rate * args.baseline_seconds
    )
    sink = ResponseSink()
    answers: list[float] = []
    with (
        database(args.database_url) as url,
        FakeSlack(bot_token=BOT_TOKEN) as fake,
        running_revbot(
            url, fake, playbook=ack_playbook(), crm=lambda e: SlowCRM(e, args.crm_delay)
        ) as live,
    ):
        engine = live.services.engine
        _seed_deals(engine)
        _seed_leads(live.url, needed + 100)
        builder = Requests(_open_cycles(engine), sink.url)
        timer = time_requests(live)
        client = Client(live.url)

        _open_loop(client, builder, ["accept click"], args.rate / 2, args.baseline_seconds)
        baseline_server = timer.seconds.pop("accept click", [])
        baseline_client = client.seconds.pop("accept click", [])

        stop = threading.Event()
        users = [
            threading.Thread(target=_lookup_user, args=(client, sink, u, stop, answers))
            for u in range(args.lookups)
        ]
        for user in users:
            user.start()
        time.sleep(min(args.crm_delay * 2, 5))  # let the lookups fill the CRM queue first
        started = time.perf_counter()
        sent = _open_loop(client, builder, kinds, args.rate, args.seconds)
        elapsed = time.perf_counter() - started
        stop.set()
        for user in users:
            user.join(60)
        by_kind_server = {k: list(v) for k, v in timer.seconds.items()}
        by_kind_client = {k: list(v) for k, v in client.seconds.items()}
        deal_acks = len(by_kind_client.get("/deal", []))
    sink.close()

    everything_server = _all(by_kind_server, lambda k: True)
    everything_client = _all(by_kind_client, lambda k: True)
    without_crm = _all(by_kind_server, lambda k: k != "deal-support submission")
    figures: dict[str, Any] = {
        "database": "postgresql" if args.database_url else "sqlite",
        "CRM delay per call (s)": args.crm_delay,
        "open-loop rate (req/s)": args.rate,
        "seconds": args.seconds,
        "requests sent (open loop)": sent,
        "/deal requests (closed loop)": deal_acks,
        "total req/s achieved": (sent + deal_acks) / elapsed,
        "lookup users in flight": args.lookups,
        **_stats("server ack all", everything_server),
        **_stats("client ack all", everything_client),
        **_stats("server ack without #deal-support", without_crm),
        "past 3 s (client)": sum(1 for s in everything_client if s > SLACK_TIMEOUT_SECONDS),
        "failed requests": len(client.failures),
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
    figures["bar: server p99 < 100 ms"] = percentile(everything_server, 99) < BAR_P99_SECONDS
    figures["bar: zero past 3 s"] = figures["past 3 s (client)"] == 0
    figures["bar: lookups do not delay a click"] = (
        percentile(by_kind_server.get("accept click", []), 99) < BAR_P99_SECONDS
    )
    if client.failures:
        figures["failures (first 5)"] = client.failures[:5]
    report("ack under a slow CRM", figures, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
