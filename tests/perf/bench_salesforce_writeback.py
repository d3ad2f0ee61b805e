"""Benchmark: N dispositions written back to (the fake) Salesforce through the outbox.

    python -m tests.perf.bench_salesforce_writeback --dispositions 10000

Stores N Salesforce MQLs, accepts 80% (owner looked up by email) and rejects 20%, then runs the
CRM lane the way the outbox worker does (claim up to `max_batch` rows, `deliver_batch`) until it
is empty, against a local HTTPS fake of the REST API. Prints the Salesforce calls by kind (the bar
is at most 55 for 10,000) and the delivery time. Not collected by pytest (run on demand).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bot.core import db, handoff, outbox
from bot.core.crm_intake import store_crm_leads
from bot.core.writeback import deliver_batch
from integrations.salesforce.leads import mql_criterion, to_intake
from tests.conftest import team_playbook
from tests.fakes.salesforce_api import FakeSalesforce
from tests.fakes.salesforce_support import salesforce_crm

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
CHUNK = 1000


def main() -> None:
    """Run the benchmark and print what it measured."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dispositions", type=int, default=10_000)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args()
    playbook = team_playbook()
    with tempfile.TemporaryDirectory() as tmp, FakeSalesforce(clock=lambda: NOW) as fake:
        engine = db.make_engine(args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.upgrade(engine)
        fake.seed("User", Name="Ana Diaz", Email="ana@example.com", IsActive=True)
        crm = salesforce_crm(fake, playbook, lambda: NOW)
        criterion = mql_criterion(playbook.field_map("salesforce"))
        started = time.perf_counter()
        for start in range(0, args.dispositions, CHUNK):
            count = min(CHUNK, args.dispositions - start)
            ids = [
                fake.seed("Lead", LastName=f"L{start + i}", Company="Bench", Status="MQL")
                for i in range(count)
            ]
            with db.transaction(engine) as session:
                summary = store_crm_leads(
                    session,
                    "salesforce",
                    [to_intake(fake.record(i), criterion) for i in ids],
                    playbook=playbook,
                    now=NOW,
                )
                for n, result in enumerate(summary.results):
                    if (start + n) % 5:
                        handoff.accept(
                            session, result.cycle_id, "UREP1", playbook=playbook, now=NOW
                        )
                    else:
                        handoff.reject(session, result.cycle_id, "UREP1", reason_code="not_icp",
                                       note="Not a fit", playbook=playbook, now=NOW)  # fmt: skip
        prepared = time.perf_counter() - started
        before = len(fake.requests)
        started = time.perf_counter()
        rounds = 0
        while True:
            with db.transaction(engine) as session:
                claimed = outbox.claim(session, outbox.CRM_LANE, crm.max_batch, now=NOW)
                ids = [r.id for r in claimed if r.id is not None]
            if not ids:
                break
            deliver_batch(engine, ids, crm, playbook, now=NOW)
            rounds += 1
        elapsed = time.perf_counter() - started
        calls = fake.requests[before:]
        kinds = Counter(f"{r.method} {r.path.split('/v61.0/')[-1]}" for r in calls)
        written = sum(1 for r in fake.records("Lead") if r["Status"] != "MQL")
        print(
            f"command: python -m tests.perf.bench_salesforce_writeback --dispositions {args.dispositions}"
        )
        print(f"prepared {args.dispositions} dispositions in {prepared:.1f} s")
        print(
            f"delivered in {rounds} outbox rounds, {elapsed:.2f} s ({args.dispositions / elapsed:.0f}/s)"
        )
        print(f"Salesforce calls: {len(calls)} (bar: <= 55 for 10,000)")
        for kind, n in sorted(kinds.items()):
            print(f"  {n:5d}  {kind}")
        print(f"Leads written: {written} of {args.dispositions}")


if __name__ == "__main__":
    main()
