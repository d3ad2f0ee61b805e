"""#deal-support SLA with a fixed `now`: nudge the channel, escalate to the manager, chase overdue
deliveries; each step exactly once, even with racing sweeps."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from bot.core import deal_support, deal_support_sla
from bot.core.db import transaction
from bot.core.models import DealSupportEvent, OutboxMessage
from bot.views.deal_support import build_dm, build_thread_update
from tests.test_deal_support_core import NOW, ds_playbook, open_one, request_of

DUE_AT = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)  # 14:00 New York: 4 business hours after NOW
ESCALATE_AT = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)  # 2 business hours later
OVERDUE_AT = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)  # midnight in New York after the 25th


def messages(engine: Any) -> dict[str, OutboxMessage]:
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage)).all()
    return {r.dedupe_key: r for r in rows if ":reply:" in r.dedupe_key or ":dm:" in r.dedupe_key}


def events(engine: Any) -> list[tuple[int, str]]:
    with Session(engine) as session:
        rows = session.exec(select(DealSupportEvent).order_by(DealSupportEvent.id)).all()
    return [(e.request_id, e.kind) for e in rows]


def test_an_unclaimed_request_is_nudged_then_escalated_then_chased_when_overdue(
    engine: Any,
) -> None:
    playbook = ds_playbook()
    rid = open_one(engine, playbook, due_on=date(2026, 11, 25))
    assert request_of(engine, rid).first_response_due_at == DUE_AT

    def sweep(at: datetime) -> dict[str, int]:
        return dict(deal_support_sla.sweep(engine, playbook, now=at))

    assert sweep(DUE_AT - timedelta(seconds=1)) == {}
    assert sweep(DUE_AT) == {"nudge": 1}
    nudge = messages(engine)[f"ds:{rid}:reply:nudge"]
    assert nudge.payload == {"request_id": rid, "kind": "nudge", "broadcast": True}
    assert nudge.lane == "channel:#deal-support"
    assert sweep(DUE_AT + timedelta(minutes=30)) == {}

    assert sweep(ESCALATE_AT - timedelta(seconds=1)) == {}
    assert sweep(ESCALATE_AT) == {"escalate": 1}
    found = messages(engine)
    assert found[f"ds:{rid}:dm:escalate:UMKTMGR"].lane == "dm:UMKTMGR"
    assert f"ds:{rid}:reply:escalate" in found

    assert sweep(OVERDUE_AT - timedelta(seconds=1)) == {}
    assert sweep(OVERDUE_AT) == {"overdue": 1}
    # Unclaimed and overdue: the manager hears about it.
    assert f"ds:{rid}:dm:overdue:UMKTMGR" in messages(engine)
    assert sweep(OVERDUE_AT + timedelta(days=3)) == {}
    assert events(engine) == [(rid, "nudge"), (rid, "escalate"), (rid, "overdue")]


def test_a_taken_request_overdue_nudges_its_owner_only(engine: Any) -> None:
    playbook = ds_playbook()
    rid = open_one(engine, playbook, due_on=date(2026, 11, 25))
    with transaction(engine) as session:
        deal_support.take(session, playbook, rid, "UMKT2", now=NOW + timedelta(hours=1))
    assert dict(deal_support_sla.sweep(engine, playbook, now=ESCALATE_AT)) == {}
    assert dict(deal_support_sla.sweep(engine, playbook, now=OVERDUE_AT)) == {"overdue": 1}
    found = messages(engine)
    assert f"ds:{rid}:dm:overdue:UMKT2" in found
    assert not any("UMKTMGR" in key for key in found)
    dm = build_dm("overdue", request_of(engine, rid), playbook)
    assert "was due Wed Nov 25, 2026" in dm["text"]
    assert "Mark it delivered" in dm["text"]


def test_delivered_and_declined_requests_are_never_chased(engine: Any) -> None:
    playbook = ds_playbook()
    delivered = open_one(engine, playbook)
    declined = open_one(engine, playbook)
    with transaction(engine) as session:
        deal_support.take(session, playbook, delivered, "UMKT1", now=NOW)
        deal_support.deliver(
            session, playbook, delivered, "UMKT1", asset_url="https://a.example", note=None, now=NOW
        )
        deal_support.decline(session, playbook, declined, "UMKT1", reason="No.", now=NOW)
    assert dict(deal_support_sla.sweep(engine, playbook, now=OVERDUE_AT)) == {}
    assert events(engine) == []


def test_racing_sweeps_take_each_step_once(engine: Any) -> None:
    playbook = ds_playbook()
    ids = [open_one(engine, playbook) for _ in range(4)]
    barrier = threading.Barrier(3)
    totals: list[int] = []

    def run() -> None:
        barrier.wait()
        totals.append(sum(deal_support_sla.sweep(engine, playbook, now=ESCALATE_AT).values()))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(totals) == 8  # a nudge and an escalation per request, whoever took them
    assert sorted(events(engine)) == sorted((i, k) for i in ids for k in ("nudge", "escalate"))
    assert len([k for k in messages(engine) if ":dm:escalate:" in k]) == 4


def test_a_wall_clock_ask_escalates_at_night(engine: Any) -> None:
    playbook = ds_playbook()
    night = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)  # 23:00 in New York
    rid = open_one(engine, playbook, now=night, ask_type="rush")
    steps = deal_support_sla.sweep(engine, playbook, now=night + timedelta(hours=2, minutes=30))
    assert dict(steps) == {"nudge": 1, "escalate": 1}
    assert request_of(engine, rid).first_response_due_at == night + timedelta(minutes=30)


def test_sla_lines_mention_who_must_act() -> None:
    playbook = ds_playbook()
    request = deal_support.DealSupportRequest(
        id=7,
        requester_slack_id="UREP1",
        deal_name="Acme <Health>",
        ask_type="battle_card",
        details="x",
        first_response_due_at=DUE_AT,
        created_at=NOW,
        due_on=date(2026, 11, 25),
    )
    nudge = build_thread_update("nudge", request, playbook)["text"]
    assert "<@UMKT1>, <@UMKT2>, <!subteam^SMKTG>" in nudge
    assert "<!date^" in nudge
    escalation = build_dm("escalate", request, playbook)["text"]
    assert "Acme &lt;Health&gt;" in escalation
    assert "request #7" in escalation
    assert "<@UMKTMGR> has been told" in build_thread_update("escalate", request, playbook)["text"]
