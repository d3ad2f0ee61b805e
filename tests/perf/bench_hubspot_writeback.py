"""Benchmark: N dispositions written to HubSpot through `deliver_batch`, against the fake HubSpot.

    python -m tests.perf.bench_hubspot_writeback --dispositions 10000

Stores N HubSpot MQLs (SQLite in a temp folder), then rejects, recycles or accepts each (accepts
spread over two reps: one mapped in the playbook, one looked up by email), and drains the CRM lane
as the worker does: claim `crm.max_batch` rows, `deliver_batch`, repeat. Prints the number of
HubSpot calls by endpoint and the write-back time. Not collected by pytest (run on demand).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

from sqlmodel import func, select

from bot.core import db, handoff, outbox
from bot.core.crm_intake import store_crm_leads
from bot.core.models import OutboxMessage
from bot.core.playbook import parse_playbook
from bot.core.writeback import deliver_batch
from tests.conftest import TEST_PLAYBOOK
from tests.fakes.hubspot_api import FakeHubSpot
from tests.fakes.hubspot_testing import hubspot_crm

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
PLAYBOOK = (
    TEST_PLAYBOOK.replace("MODE", "claim")
    + "crm_fields:\n  hubspot:\n    owners: {UREP1: '41629779'}\n"
)


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dispositions", type=int, default=10_000)
    args = parser.parse_args()
    n = args.dispositions
    playbook = parse_playbook(PLAYBOOK, "bench playbook")
    with tempfile.TemporaryDirectory() as folder, FakeHubSpot(clock=lambda: NOW) as fake:
        engine = db.make_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
        db.upgrade(engine)
        crm = hubspot_crm(fake, lambda: NOW, playbook=playbook)
        ids = [fake.seed_mql(mql_at=NOW) for _ in range(n)]
        leads = [
            {
                "external_id": i,
                "source": "hubspot",
                "crm_record_id": i,
                "last_name": "L",
                "company": "C",
                "mql_at": NOW,
            }
            for i in ids
        ]
        with db.transaction(engine) as session:
            cycles = [
                r.cycle_id
                for r in store_crm_leads(
                    session, "hubspot", leads, playbook=playbook, now=NOW
                ).results
            ]
        with db.transaction(engine) as session:
            for k, cycle in enumerate(cycles):
                if k % 3 == 0:
                    handoff.accept(
                        session, cycle, "UREP1" if k % 2 else "UREP2", playbook=playbook, now=NOW
                    )
                elif k % 3 == 1:
                    handoff.reject(
                        session,
                        cycle,
                        "UREP1",
                        reason_code="not_icp",
                        note="No budget.",
                        playbook=playbook,
                        now=NOW,
                    )
                else:
                    handoff.recycle(
                        session,
                        cycle,
                        "UREP1",
                        reason_code="timing",
                        revisit_on=date(2027, 3, 1),
                        note="Q2.",
                        playbook=playbook,
                        now=NOW,
                    )
        fake.requests.clear()
        batches = 0
        started = time.perf_counter()
        while True:
            with db.transaction(engine) as session:
                row_ids = [
                    r.id for r in outbox.claim(session, outbox.CRM_LANE, crm.max_batch, now=NOW)
                ]
            if not row_ids:
                break
            deliver_batch(engine, [i for i in row_ids if i is not None], crm, playbook, now=NOW)
            batches += 1
        elapsed = time.perf_counter() - started
        with db.transaction(engine) as session:
            states = dict(
                session.exec(
                    select(OutboxMessage.state, func.count())
                    .where(OutboxMessage.kind == outbox.CRM_SYNC)
                    .group_by(OutboxMessage.state)
                ).all()
            )
        calls = Counter(f"{r.method} {r.path}" for r in fake.requests)
        written = sum(1 for i in ids if "hs_lead_status" in fake.record("contacts", i))
        print("command: python -m tests.perf.bench_hubspot_writeback --dispositions", n)
        print(f"dispositions: {n}; contacts written: {written}; outbox rows by state: {states}")
        print(f"HubSpot calls: {sum(calls.values())} ({dict(calls)})")
        print(f"batches delivered: {batches}; write-back time: {elapsed:.2f} s")
        print(f"schema errors: {len(fake.schema_errors)}")
        engine.dispose()


if __name__ == "__main__":
    main()
