"""Benchmark: Accept click → the CRM write lands, on the Salesforce and HubSpot fakes.

    python -m tests.perf.bench_click_to_crm [--crm both|salesforce|hubspot] [--clicks 150] \\
        [--rate 5] [--load-rate 100] [--load-seconds 30] \\
        [--database-url postgresql://postgres@127.0.0.1:5432/test] [--json out.json]

revbot serves HTTP with its worker and the real CRM adapter, pointed at the local fake of the
vendor's API (Salesforce over HTTPS, HubSpot over HTTP). MQLs are stored as that CRM's leads and
their cards posted first (Slack's real per-channel pace applies, so most are listed in a flood
summary's thread: the cards are not what this measures); then signed Accept clicks go to the
real `/slack/events`.

- Healthy: `--clicks` clicks at `--rate` a second. Each click's latency runs from just before
  the click is sent to the moment the fake received the write naming that record (a Salesforce
  `composite/sobjects` PATCH, a HubSpot `contacts/batch/update`). Bar: p95 < 2 s.
- Load: clicks at `--load-rate` a second for `--load-seconds`, from 16 client threads; every
  write batch's size is recorded against the vendor's maximum (200 for Salesforce, 100 for
  HubSpot). Design bar: batches at ≥ 95% of the maximum under load.

  "Under load" means a full batch was there to send, by revbot's own outbox: as the worker's
  round began, at least the vendor's maximum of writes was queued and unsent (a backlog), or
  had been queued within the last fill window (`outbox.FILL_WINDOW`: arrivals fast enough to
  fill a batch by waiting). Other rounds (the burst's ramp-up, and its remainder once the
  clicks stop) are listed apart and not held to the bar, as no bounded wait could fill them;
  every batch's mean and share are reported too.

Not collected by pytest (run on demand).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from sqlmodel import Session, col, func, select

from bot.core import db, outbox
from bot.core.crm import CRM
from bot.core.crm_intake import store_crm_leads
from bot.core.models import OutboxMessage
from bot.core.playbook import Playbook, parse_playbook
from integrations.hubspot.client import HubSpotApi
from integrations.hubspot.crm import HubSpotCRM
from integrations.salesforce.leads import mql_criterion, to_intake
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, TEST_PLAYBOOK
from tests.fakes.hubspot_api import FakeHubSpot
from tests.fakes.hubspot_api import Recorded as HubSpotRequest
from tests.fakes.hubspot_testing import PORTAL_ID
from tests.fakes.salesforce_api import FakeSalesforce
from tests.fakes.salesforce_api import Recorded as SalesforceRequest
from tests.fakes.salesforce_support import salesforce_crm
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_payloads import block_action_payload, form_body
from tests.fakes.slack_signing import signed_headers
from tests.perf.harness import database, percentile, report, running_revbot

BAR_P95_SECONDS = 2.0
BAR_BATCH_SHARE = 0.95
CLIENT_THREADS = 16
HUBSPOT_OWNER = "41629779"
PLAYBOOK = (
    TEST_PLAYBOOK.replace("MODE", "claim")
    + f"""
crm_fields:
  salesforce: {{poll: false}}
  hubspot: {{poll: false, owners: {{UREP1: '{HUBSPOT_OWNER}'}}}}
"""
)


@dataclass
class Writes:
    """When each record's first write arrived at the fake, and the size of every write batch."""

    landed: dict[str, float] = field(default_factory=dict)
    batches: list[tuple[float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, ids: list[str]) -> None:
        """Note one write call naming `ids`."""
        at = time.perf_counter()
        with self.lock:
            self.batches.append((at, len(ids)))
            for record_id in ids:
                self.landed.setdefault(record_id, at)


class TimedSalesforce(FakeSalesforce):
    """The fake Salesforce, noting when each sObject Collections update arrives."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.writes = Writes()

    def handle(self, rec: SalesforceRequest) -> tuple[int, Any, str]:
        """Answer as the fake does, after noting a Lead update's record ids."""
        body = rec.json
        if rec.method == "PATCH" and rec.path.endswith("composite/sobjects") and body:
            ids = [
                str(r.get("id") or r.get("Id"))
                for r in body.get("records", [])
                if r.get("attributes", {}).get("type") == "Lead"
            ]
            if ids:
                self.writes.record(ids)
        return super().handle(rec)


class TimedHubSpot(FakeHubSpot):
    """The fake HubSpot, noting when each contacts batch update arrives."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.writes = Writes()

    def handle(self, request: HubSpotRequest, authorization: str | None) -> Any:
        """Answer as the fake does, after noting the batch's record ids."""
        body = request.body
        if request.path.endswith("/contacts/batch/update") and isinstance(body, dict):
            self.writes.record([str(i.get("id")) for i in body.get("inputs", [])])
        return super().handle(request, authorization)


@dataclass
class Vendor:
    """One CRM under test: its fake, how revbot's adapter is built, how MQLs are seeded."""

    name: str
    max_batch: int
    writes: Writes
    build: Callable[[Playbook], CRM]
    seed: Callable[[int], list[dict[str, Any]]]


@contextlib.contextmanager
def salesforce_vendor() -> Iterator[Vendor]:
    """The fake Salesforce, with the rep's user for the owner lookup."""
    fake = TimedSalesforce()
    with fake:
        fake.seed("User", Name="Ana Diaz", Email="ana@example.com", IsActive=True)

        def seed(n: int) -> list[dict[str, Any]]:
            playbook = parse_playbook(PLAYBOOK, "bench playbook")
            criterion = mql_criterion(playbook.field_map("salesforce"))
            ids = [
                fake.seed("Lead", LastName=f"Click{i}", Company="Bench", Status="MQL")
                for i in range(n)
            ]
            return [to_intake(fake.record(i), criterion) for i in ids]

        yield Vendor(
            "salesforce",
            200,
            fake.writes,
            lambda playbook: salesforce_crm(fake, playbook, lambda: datetime.now(UTC)),
            seed,
        )


@contextlib.contextmanager
def hubspot_vendor() -> Iterator[Vendor]:
    """The fake HubSpot; the adapter's rate limiters run on the real clock."""
    fake = TimedHubSpot()
    with fake:

        def build(playbook: Playbook) -> CRM:
            api = HubSpotApi(fake.token, fake.url)
            return HubSpotCRM(
                api, playbook.field_map("hubspot"), lambda: datetime.now(UTC), portal_id=PORTAL_ID
            )

        def seed(n: int) -> list[dict[str, Any]]:
            now = datetime.now(UTC)
            return [
                {
                    "external_id": record_id,
                    "source": "hubspot",
                    "crm_record_id": record_id,
                    "last_name": "Click",
                    "company": "Bench",
                    "mql_at": now,
                }
                for record_id in (fake.seed_mql(mql_at=now) for _ in range(n))
            ]

        yield Vendor("hubspot", 100, fake.writes, build, seed)


def _store(
    engine: Any, crm_name: str, leads: list[dict[str, Any]], playbook: Playbook
) -> list[int]:
    cycles: list[int] = []
    for start in range(0, len(leads), 500):
        with db.transaction(engine) as session:
            summary = store_crm_leads(
                session,
                crm_name,
                leads[start : start + 500],
                playbook=playbook,
                now=datetime.now(UTC),
            )
        cycles.extend(r.cycle_id for r in summary.results if r.cycle_id is not None)
    return cycles


def _pending(engine: Any) -> int:
    with Session(engine) as session:
        return int(
            session.exec(
                select(func.count())
                .select_from(OutboxMessage)
                .where(col(OutboxMessage.state).in_((outbox.PENDING, outbox.IN_FLIGHT)))
            ).one()
        )


def _wait_drained(engine: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _pending(engine) and time.monotonic() < deadline:
        time.sleep(0.2)


class Clicker:
    """Sends signed Accept clicks; remembers when each record's click was sent."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/slack/events"
        self.sent: dict[str, float] = {}
        self.failures = 0
        self._local = threading.local()

    def click(self, cycle_id: int, record_id: str) -> None:
        """Accept `cycle_id` as UREP1 and note the send time against its CRM record."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        body = form_body(
            block_action_payload(user_id="UREP1", action_id="lead_accept", value=str(cycle_id))
        )
        headers = signed_headers(body, SIGNING_SECRET)
        self.sent[record_id] = time.perf_counter()
        response = session.post(self.url, data=body, headers=headers, timeout=30)
        if response.status_code != 200:
            self.failures += 1


def _paced(
    pool: ThreadPoolExecutor, clicker: Clicker, work: list[tuple[int, str]], rate: float
) -> None:
    start = time.perf_counter()
    futures = []
    for i, (cycle_id, record_id) in enumerate(work):
        time.sleep(max(start + i / rate - time.perf_counter(), 0))
        futures.append(pool.submit(clicker.click, cycle_id, record_id))
    for future in futures:
        future.result()


def _wait_landed(writes: Writes, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with writes.lock:
            if all(i in writes.landed for i in ids):
                return
        time.sleep(0.1)


def _rounds(engine: Any, since: datetime) -> list[tuple[int, int]]:
    """Each write round of the load: its batch size, and the writes it could have carried.

    From revbot's own outbox: a round's rows share their completion time (the round's `now`).
    Its demand is the larger of the writes queued and not yet sent as it began (a backlog) and
    those queued within the fill window before it (arrivals fast enough to fill it by waiting).
    """
    with Session(engine) as session:
        rows = session.exec(
            select(OutboxMessage.created_at, OutboxMessage.completed_at).where(
                OutboxMessage.kind == outbox.CRM_SYNC, col(OutboxMessage.created_at) >= since
            )
        ).all()
    window = outbox.FILL_WINDOW
    rounds = Counter(done for _, done in rows if done is not None)
    return [
        (
            size,
            max(
                sum(1 for c, d in rows if c <= at and (d is None or d >= at)),
                sum(1 for c, _ in rows if at - window < c <= at),
            ),
        )
        for at, size in sorted(rounds.items())
    ]


def _share(sizes: list[int], full: float) -> float:
    return sum(1 for s in sizes if s >= full) / len(sizes) if sizes else 0.0


def measure(vendor: Vendor, args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Run the healthy and the load phase against one vendor; return its figures."""
    playbook = parse_playbook(PLAYBOOK, "bench playbook")
    load_clicks = int(args.load_rate * args.load_seconds)
    with (
        FakeSlack(bot_token=BOT_TOKEN) as slack,
        running_revbot(url, slack, playbook=playbook, crm=lambda _: vendor.build(playbook)) as live,
    ):
        engine = live.services.engine
        leads = vendor.seed(args.clicks + load_clicks)
        cycles = _store(engine, vendor.name, leads, playbook)
        live.services.notify()
        _wait_drained(engine, 120)  # the cards are posted before any click
        work = [(c, str(lead["crm_record_id"])) for c, lead in zip(cycles, leads, strict=True)]
        healthy, loaded = work[: args.clicks], work[args.clicks :]
        clicker = Clicker(live.url)
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            _paced(pool, clicker, healthy, args.rate)
            _wait_landed(vendor.writes, [r for _, r in healthy], 30)
            with vendor.writes.lock:
                latencies = [
                    vendor.writes.landed[r] - clicker.sent[r]
                    for _, r in healthy
                    if r in vendor.writes.landed
                ]
                healthy_batches = len(vendor.writes.batches)
            load_started = time.perf_counter()
            load_since = datetime.now(UTC)
            _paced(pool, clicker, loaded, args.load_rate)
            load_sent = time.perf_counter() - load_started
            _wait_landed(vendor.writes, [r for _, r in loaded], 120)
        _wait_drained(engine, 60)  # the last round's outcomes are recorded
        demand = _rounds(engine, load_since)
        with vendor.writes.lock:
            load_batches = list(vendor.writes.batches[healthy_batches:])
            sizes = [size for _, size in load_batches]
            load_latencies = [
                vendor.writes.landed[r] - clicker.sent[r]
                for _, r in loaded
                if r in vendor.writes.landed
            ]
    full = vendor.max_batch * BAR_BATCH_SHARE
    under = [size for size, wanted in demand if wanted >= vendor.max_batch]
    edges = [size for size, wanted in demand if wanted < vendor.max_batch]
    share_full = _share(under, full)
    name = vendor.name
    return {
        f"{name}: healthy clicks": len(healthy),
        f"{name}: healthy click rate (/s)": args.rate,
        f"{name}: writes landed": len(latencies),
        f"{name}: click → CRM p50 (s)": percentile(latencies, 50),
        f"{name}: click → CRM p95 (s)": percentile(latencies, 95),
        f"{name}: click → CRM max (s)": max(latencies, default=float("nan")),
        f"{name}: load clicks": len(loaded),
        f"{name}: load click rate achieved (/s)": len(loaded) / load_sent,
        f"{name}: load writes landed": len(load_latencies),
        f"{name}: load click → CRM p95 (s)": percentile(load_latencies, 95),
        f"{name}: vendor max batch": vendor.max_batch,
        f"{name}: load batches, all": len(sizes),
        f"{name}: load batch size mean, all": statistics.fmean(sizes) if sizes else float("nan"),
        f"{name}: load batches ≥ 95% full, all (share)": _share(sizes, full),
        f"{name}: load batches under load (a full batch queued or queued in a window)": len(under),
        f"{name}: under-load batch size mean": statistics.fmean(under) if under else float("nan"),
        f"{name}: under-load batches ≥ 95% full (share)": share_full,
        f"{name}: ramp-up and remainder batch sizes (not under load)": edges,
        f"{name}: outbox rounds match the vendor's batches": sorted(sizes)
        == sorted(size for size, _ in demand),
        f"{name}: failed clicks": clicker.failures,
        f"{name}: bar p95 < 2 s": percentile(latencies, 95) < BAR_P95_SECONDS
        and len(latencies) == len(healthy),
        f"{name}: bar batches ≥ 95% full under load": bool(under) and share_full >= BAR_BATCH_SHARE,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure each chosen CRM in turn and report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crm", choices=("both", "salesforce", "hubspot"), default="both")
    parser.add_argument("--clicks", type=int, default=150)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--load-rate", type=float, default=100.0)
    parser.add_argument("--load-seconds", type=float, default=30.0)
    parser.add_argument("--database-url")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    vendors = {"salesforce": salesforce_vendor, "hubspot": hubspot_vendor}
    chosen = list(vendors) if args.crm == "both" else [args.crm]
    figures: dict[str, Any] = {"database": "postgresql" if args.database_url else "sqlite"}
    for name in chosen:
        with database(args.database_url) as url, vendors[name]() as vendor:
            figures.update(measure(vendor, args, url))
    report("click → CRM write", figures, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
