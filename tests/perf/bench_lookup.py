"""Benchmark: /deal, /lead and /pipeline latency with a CRM that takes 300 ms a call.

    python -m tests.perf.bench_lookup [--requests 200] [--clients 4] [--crm-delay 0.3]
        [--leads 2000] [--database-url sqlite:////tmp/bench-lookup.db]

Runs revbot's real web app (HTTP, signed Slack requests) against the fake Slack Web API, with the
local CRM slowed to `--crm-delay` seconds a search. For each command it prints p50 / p95 / max
of the ack (the HTTP answer Slack waits for, measured by the client, so it includes HTTP); for
/deal also the time until the first useful answer (the deal list) reaches a response_url
endpoint. Every /deal asks a different text, so each one really waits for the CRM. Not
collected by pytest (run on demand).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
from sqlalchemy import Engine

from bot.core import db
from bot.core.crm import Deal
from bot.core.db import transaction
from bot.core.models import Lead, LocalDeal, MqlCycle
from integrations.local import LocalCRM
from tests.conftest import SIGNING_SECRET, make_services, start_live
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_payloads import slash_command_form
from tests.fakes.slack_signing import signed_headers
from tests.test_lookup_commands import lookup_playbook


class SlowCRM(LocalCRM):
    """The local CRM, `delay` seconds slower per deal search."""

    def __init__(self, engine: Engine, delay: float) -> None:
        super().__init__(engine, lambda: datetime.now(UTC))
        self.delay = delay

    def search_deals(self, text: str, *, limit: int = 10) -> list[Deal]:
        time.sleep(self.delay)
        return super().search_deals(text, limit=limit)


class Arrivals:
    """A response_url endpoint recording when each key's first deal list arrived."""

    def __init__(self) -> None:
        self.first_answer: dict[str, float] = {}
        self.lock = threading.Lock()
        arrivals = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                key = self.path.rsplit("/", 1)[-1]
                if b"Deals matching" in body or b"No deal in the CRM" in body:
                    with arrivals.lock:
                        arrivals.first_answer.setdefault(key, time.perf_counter())
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/response/"


def _seed(engine: Engine, leads: int) -> None:
    with transaction(engine) as session:
        for n in range(200):
            session.add(
                LocalDeal(
                    id=f"D-{n}",
                    name=f"Deal {n:03d} Acme expansion",
                    stage="Proposal",
                    amount=1000.0 * n,
                    currency="USD",
                    close_date=date(2026, 12, 1),
                )
            )
    now = datetime.now(UTC)
    pools = [("sales", "UREP1"), ("sales", "UREP2"), ("emea", "UREP3")]
    with transaction(engine) as session:
        for n in range(leads):
            received = now - timedelta(minutes=n)
            lead = Lead(
                origin="bench",
                external_id=f"B-{n}",
                email=f"p{n}@bench.example",
                first_name=f"P{n}",
                company=f"Company {n % 300}",
                created_at=received,
                updated_at=received,
            )
            session.add(lead)
            session.flush()
            pool, owner = pools[n % 3]
            session.add(
                MqlCycle(
                    lead_id=lead.id or 0,
                    mql_at=received,
                    received_at=received,
                    tier="warm",
                    sla_due_at=received + timedelta(hours=4),
                    pool=pool,
                    owner_slack_id=owner,
                )
            )


def _post(url: str, command: str, text: str, user: str, response_url: str) -> float:
    form = slash_command_form(command=command, text=text, user_id=user, response_url=response_url)
    body = urlencode(form).encode()
    headers = signed_headers(body, SIGNING_SECRET)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    started = time.perf_counter()
    response = requests.post(f"{url}/slack/events", data=body, headers=headers, timeout=10)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


def _summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[max(0, round(0.95 * len(ms)) - 1)]
    return (
        f"{name:<34} n={len(ms):<4} p50={statistics.median(ms):7.1f} ms  p95={p95:7.1f} ms  "
        f"max={ms[-1]:7.1f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--crm-delay", type=float, default=0.3)
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="bench-lookup-"))
    url = args.database_url or f"sqlite:///{folder / 'bench.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    arrivals = Arrivals()
    with FakeSlack(bot_token="xoxb-test-token") as fake:
        services = make_services(
            engine, url, fake, playbook=lookup_playbook(), crm=SlowCRM(engine, args.crm_delay)
        )
        live, stop = start_live(services, fake)
        try:
            _seed(engine, args.leads)
            deal_acks: list[float] = []
            deal_answers: list[float] = []

            def one_deal(n: int) -> None:
                key = f"deal-{n}"
                started = time.perf_counter()
                deal_acks.append(
                    _post(live.url, "/deal", f"Deal {n % 200:03d}", "UREP1", arrivals.url + key)
                )
                deadline = started + 10
                while key not in arrivals.first_answer and time.perf_counter() < deadline:
                    time.sleep(0.002)
                if key in arrivals.first_answer:
                    deal_answers.append(arrivals.first_answer[key] - started)

            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(one_deal, range(args.requests)))
                lead_acks = list(
                    pool.map(
                        lambda n: _post(
                            live.url, "/lead", f"Company {n % 300}", "UMGR1", arrivals.url + "x"
                        ),
                        range(args.requests),
                    )
                )
                pipeline_acks = list(
                    pool.map(
                        lambda n: _post(
                            live.url,
                            "/pipeline",
                            "team" if n % 2 else "",
                            "UMGR1" if n % 2 else "UREP1",
                            arrivals.url + "x",
                        ),
                        range(args.requests),
                    )
                )
        finally:
            stop()
    print(
        f"revbot lookups: {args.requests} requests per command from {args.clients} clients, "
        f"CRM {args.crm_delay * 1000:.0f} ms per search, {args.leads} leads, {url.split(':')[0]}"
    )
    print(_summary("/deal ack", deal_acks))
    print(_summary("/deal first useful answer", deal_answers))
    print(_summary("/lead ack (answer included)", lead_acks))
    print(_summary("/pipeline (mine|team) ack", pipeline_acks))
    missing = args.requests - len(deal_answers)
    if missing:
        print(f"{missing} /deal answers never arrived", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
