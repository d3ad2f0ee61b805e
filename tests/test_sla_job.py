"""SLA chasing: nudges, escalations, reassignments, limbo and unassigned leads, each exactly once.

The hot tier of the team playbook gives 15 minutes of business time (Mon-Fri 09:00-17:00 New
York), nudges 5 minutes before the deadline, escalates at the breach and reassigns 15 minutes
after it. The frozen clock starts on Monday 2026-11-23 at 10:00 in New York.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from bot.core import availability, db, handoff, outbox, sla
from bot.core.intake import IntakeResult, LeadIn, ingest
from bot.core.models import Lead, MqlCycle, OutboxMessage, SlackMessage, SlaEvent
from bot.core.playbook import Playbook, parse_playbook
from bot.services import Services
from bot.views.sla import build_sla_message
from jobs import outbox as outbox_job
from jobs import sla as sla_job
from tests.conftest import (
    TEST_PLAYBOOK,
    FrozenClock,
    blocks_text,
    lead_json,
    make_services,
    team_playbook,
)
from tests.fakes.slack_api import FakeSlack

START = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
PIPELINE = "#revenue-pipeline"
FOUR_REPS = TEST_PLAYBOOK.replace(
    "        - {slack_id: UREP2, name: Ben, email: ben@example.com}\n",
    "        - {slack_id: UREP2, name: Ben, email: ben@example.com}\n"
    "        - {slack_id: UREP4, name: Dana, email: dana@example.com}\n",
)


def services_for(
    engine: Any,
    database_url: str,
    clock: FrozenClock,
    mode: str = "assign",
    *,
    playbook: Playbook | None = None,
    fake: FakeSlack | None = None,
) -> Services:
    return make_services(
        engine, database_url, fake, playbook=playbook or team_playbook(mode), clock=clock
    )


def new_lead(
    services: Services, now: datetime, external_id: str = "L-1001", **overrides: Any
) -> IntakeResult:
    lead = LeadIn.model_validate(lead_json(external_id, **overrides))
    with db.transaction(services.engine) as session:
        return ingest(session, lead, playbook=services.playbook, now=now)


def sweep_at(services: Services, clock: FrozenClock, moment: datetime) -> int:
    clock.now = moment
    return sla_job.run(services, now=moment)


def cycle_of(engine: Any, cycle_id: int) -> MqlCycle:
    with db.transaction(engine) as session:
        found = session.get(MqlCycle, cycle_id)
        assert found is not None
        return found


def sla_rows(engine: Any) -> dict[str, OutboxMessage]:
    """Every message the SLA job queued, by key."""
    with db.transaction(engine) as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.dedupe_key).startswith("sla:"))
            .order_by(col(OutboxMessage.id))
        ).all()
        return {r.dedupe_key: r for r in rows}


def events(engine: Any, cycle_id: int) -> list[tuple[str, int, str | None]]:
    with db.transaction(engine) as session:
        rows = session.exec(
            select(SlaEvent).where(SlaEvent.cycle_id == cycle_id).order_by(col(SlaEvent.id))
        ).all()
        return [(e.kind, e.step, e.owner_slack_id) for e in rows]


def rows_of(engine: Any, kind: str) -> list[OutboxMessage]:
    with db.transaction(engine) as session:
        query = select(OutboxMessage).where(OutboxMessage.kind == kind)
        return list(session.exec(query.order_by(col(OutboxMessage.id))).all())


def shown(row: OutboxMessage) -> str:
    return row.payload["text"] + blocks_text(row.payload["blocks"])


def set_away(engine: Any, *reps: str, now: datetime = START) -> None:
    with db.transaction(engine) as session:
        for rep in reps:
            availability.set_away(session, rep, now=now, until=None)


def set_back(engine: Any, *reps: str, now: datetime) -> None:
    with db.transaction(engine) as session:
        for rep in reps:
            availability.set_back(session, rep, now=now)


def race(workers: int, job: Callable[[], int]) -> list[int]:
    """Run `job` in several threads released at once; what each returned."""
    gate = threading.Barrier(workers)
    results: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            gate.wait()
            taken = job()
            with lock:
                results.append(taken)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    return results


# --- the owner is nudged, the manager told, the lead moved -----------------------------------


def test_the_hot_lead_timeline_in_assign_mode(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = services_for(engine, database_url, clock)
    cid = new_lead(services, START).cycle_id
    assert cycle_of(engine, cid).owner_slack_id == "UREP1"

    assert sweep_at(services, clock, START) == 0
    assert sweep_at(services, clock, START + timedelta(minutes=9, seconds=59)) == 0
    assert sla_rows(engine) == {}

    # Five minutes before the deadline: one DM to the owner.
    assert sweep_at(services, clock, START + timedelta(minutes=10)) == 1
    [nudge] = sla_rows(engine).values()
    assert nudge.dedupe_key == f"sla:{cid}:nudge:0:UREP1"
    assert nudge.kind == outbox.SLACK_MESSAGE
    assert nudge.lane == outbox.dm_lane("UREP1")
    assert nudge.payload["channel"] == "UREP1"
    assert nudge.payload["thread_of"] is None
    assert "5m left" in shown(nudge)
    assert "Ana Diaz" in shown(nudge)
    assert '"action_id": "lead_accept"' in shown(nudge)
    assert sweep_at(services, clock, START + timedelta(minutes=12)) == 0
    assert len(sla_rows(engine)) == 1

    # At the breach: the pool's manager by DM, and a line on the card's thread.
    assert sweep_at(services, clock, START + timedelta(minutes=15)) == 1
    rows = sla_rows(engine)
    manager = rows[f"sla:{cid}:escalate:0:UMGR1"]
    assert manager.payload["channel"] == "UMGR1"
    assert "overdue by" in shown(manager)
    assert "<@UREP1>" in shown(manager)
    assert "next available rep in 15m" in shown(manager)
    thread = rows[f"sla:{cid}:escalate:0:thread"]
    assert (thread.payload["channel"], thread.payload["thread_of"]) == (PIPELINE, cid)
    assert thread.lane == outbox.channel_lane(PIPELINE)
    assert "<@UMGR1> has been told" in shown(thread)
    assert sweep_at(services, clock, START + timedelta(minutes=29)) == 0

    # Fifteen minutes after the breach: the next rep owns it, with a fresh deadline.
    refreshes = len(rows_of(engine, outbox.SLACK_REFRESH))
    moved_at = START + timedelta(minutes=30)
    assert sweep_at(services, clock, moved_at) == 1
    moved = cycle_of(engine, cid)
    assert moved.owner_slack_id == "UREP2"
    assert moved.reassignments == 1
    assert moved.assigned_at == moved_at
    assert moved.sla_due_at == moved_at + timedelta(minutes=15)
    assert moved.state == "open"
    assert moved.version == 2
    refresh_keys = [r.dedupe_key for r in rows_of(engine, outbox.SLACK_REFRESH)]
    assert len(refresh_keys) == refreshes + 1
    assert f"refresh:{cid}:v2" in refresh_keys
    rows = sla_rows(engine)
    told = rows[f"sla:{cid}:reassign:0:UREP2"]
    assert told.payload["channel"] == "UREP2"
    assert "reassigned to you" in shown(told)
    assert "<@UREP1> did not respond" in shown(told)
    note = rows[f"sla:{cid}:reassign:0:thread"]
    assert "from <@UREP1> to <@UREP2>" in shown(note)
    assert events(engine, cid) == [
        ("nudge", 0, "UREP1"),
        ("escalate", 0, "UREP1"),
        ("reassign", 0, "UREP1"),
    ]

    # The new owner gets their own nudge before their own deadline.
    assert sweep_at(services, clock, moved_at + timedelta(minutes=9)) == 0
    assert sweep_at(services, clock, moved_at + timedelta(minutes=10)) == 1
    assert f"sla:{cid}:nudge:1:UREP2" in sla_rows(engine)


def test_sweeps_racing_at_the_nudge_nudge_each_lead_once(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = services_for(engine, database_url, clock)
    cids = [
        new_lead(services, START, f"L-{i}", email=f"l{i}@acme.example").cycle_id for i in range(4)
    ]
    moment = START + timedelta(minutes=10)

    taken = race(4, lambda: sla_job.run(services, now=moment))

    assert sum(taken) == 4
    keys = sorted(sla_rows(engine))
    assert len(keys) == 4
    for cid in cids:
        assert [e[0] for e in events(engine, cid)] == ["nudge"]
        assert sum(k.startswith(f"sla:{cid}:nudge:0:") for k in keys) == 1
    assert race(3, lambda: sla_job.run(services, now=moment)) == [0, 0, 0]
    assert len(sla_rows(engine)) == 4


def test_sweeps_racing_at_the_reassignment_move_the_lead_once(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = services_for(engine, database_url, clock)
    cid = new_lead(services, START).cycle_id
    sweep_at(services, clock, START + timedelta(minutes=15))
    moment = START + timedelta(minutes=30)

    taken = race(4, lambda: sla_job.run(services, now=moment))

    assert sorted(taken) == [0, 0, 0, 1]
    moved = cycle_of(engine, cid)
    assert (moved.owner_slack_id, moved.reassignments, moved.version) == ("UREP2", 1, 2)
    assert [e[0] for e in events(engine, cid)] == ["escalate", "reassign"]
    reassign_rows = [k for k in sla_rows(engine) if ":reassign:" in k]
    assert sorted(reassign_rows) == [f"sla:{cid}:reassign:0:UREP2", f"sla:{cid}:reassign:0:thread"]


def test_reassignment_skips_the_owner_and_reps_who_are_away(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = services_for(
        engine, database_url, clock, playbook=parse_playbook(FOUR_REPS.replace("MODE", "assign"))
    )
    cid = new_lead(services, START).cycle_id
    assert cycle_of(engine, cid).owner_slack_id == "UREP1"
    set_away(engine, "UREP2")

    sweep_at(services, clock, START + timedelta(minutes=15))
    sweep_at(services, clock, START + timedelta(minutes=30))

    assert cycle_of(engine, cid).owner_slack_id == "UREP4"
    assert f"sla:{cid}:reassign:0:UREP4" in sla_rows(engine)


def test_reassignment_respects_capacity(engine: Any, database_url: str, clock: FrozenClock) -> None:
    text = TEST_PLAYBOOK.replace("ben@example.com}", "ben@example.com, capacity: 1}")
    services = services_for(
        engine, database_url, clock, playbook=parse_playbook(text.replace("MODE", "assign"))
    )
    hot = new_lead(services, START, "L-1").cycle_id
    warm = new_lead(services, START, "L-2", score=60, email="two@acme.example").cycle_id
    assert cycle_of(engine, hot).owner_slack_id == "UREP1"
    assert cycle_of(engine, warm).owner_slack_id == "UREP2"  # Ben is now at capacity

    sweep_at(services, clock, START + timedelta(minutes=15))
    sweep_at(services, clock, START + timedelta(minutes=30))
    assert cycle_of(engine, hot).owner_slack_id is None

    with db.transaction(engine) as session:
        handoff.accept(session, warm, "UREP2", playbook=services.playbook, now=clock())
    assert sweep_at(services, clock, START + timedelta(minutes=31)) == 1
    assert cycle_of(engine, hot).owner_slack_id == "UREP2"


# --- nobody available --------------------------------------------------------------------------


def test_with_nobody_else_available_the_lead_waits_unassigned_until_a_rep_is_back(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = services_for(engine, database_url, clock)
    cid = new_lead(services, START).cycle_id
    set_away(engine, "UREP2")
    sweep_at(services, clock, START + timedelta(minutes=15))

    assert sweep_at(services, clock, START + timedelta(minutes=30)) == 1
    waiting = cycle_of(engine, cid)
    assert waiting.owner_slack_id is None
    assert waiting.state == "open"
    assert waiting.reassignments == 0
    assert f"refresh:{cid}:v{waiting.version}" in {
        r.dedupe_key for r in rows_of(engine, outbox.SLACK_REFRESH)
    }
    rows = sla_rows(engine)
    manager = rows[f"sla:{cid}:unassigned:0:UMGR1"]
    assert manager.payload["channel"] == "UMGR1"
    assert "Nobody is available" in shown(manager)
    assert "<@UREP1> missed the SLA and every other rep" in shown(manager)
    assert "waits unassigned" in shown(rows[f"sla:{cid}:unassigned:0:thread"])

    # Told once; the rep it was taken from does not get it straight back.
    for minutes in (31, 45, 120):
        assert sweep_at(services, clock, START + timedelta(minutes=minutes)) == 0
    assert cycle_of(engine, cid).owner_slack_id is None
    assert len(sla_rows(engine)) == len(rows)

    back_at = START + timedelta(hours=3)
    set_back(engine, "UREP2", now=back_at)
    assert sweep_at(services, clock, back_at) == 1
    assigned = cycle_of(engine, cid)
    assert (assigned.owner_slack_id, assigned.reassignments) == ("UREP2", 1)
    assert assigned.sla_due_at == back_at + timedelta(minutes=15)
    assert f"sla:{cid}:reassign:0:UREP2" in sla_rows(engine)
    assert [e[0] for e in events(engine, cid)] == ["escalate", "unassigned", "reassign"]


def test_a_lead_nobody_could_take_at_intake_is_reported_then_assigned(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = services_for(engine, database_url, clock)
    set_away(engine, "UREP1", "UREP2")
    cid = new_lead(services, START).cycle_id
    assert cycle_of(engine, cid).owner_slack_id is None

    assert sweep_at(services, clock, START + timedelta(minutes=1)) == 1
    assert sweep_at(services, clock, START + timedelta(minutes=20)) == 0
    rows = sla_rows(engine)
    assert set(rows) == {f"sla:{cid}:unassigned:0:UMGR1", f"sla:{cid}:unassigned:0:thread"}
    assert "missed the SLA" not in shown(rows[f"sla:{cid}:unassigned:0:UMGR1"])

    set_back(engine, "UREP1", now=START + timedelta(minutes=25))
    assert sweep_at(services, clock, START + timedelta(minutes=25)) == 1
    assert cycle_of(engine, cid).owner_slack_id == "UREP1"
    assert "Nobody was available when it arrived" in shown(
        sla_rows(engine)[f"sla:{cid}:reassign:0:UREP1"]
    )


# --- limbo, closed leads, claim mode, the business clock ---------------------------------------


def test_a_nurture_lead_without_a_disposition_is_escalated_after_48_hours(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = services_for(engine, database_url, clock, mode="claim")
    cid = new_lead(services, START, score=10).cycle_id
    assert cycle_of(engine, cid).tier == "nurture"  # one day on the wall clock

    assert sweep_at(services, clock, START + timedelta(days=1)) == 1  # the breach: escalated
    assert sweep_at(services, clock, START + timedelta(hours=47, minutes=59)) == 0
    assert sweep_at(services, clock, START + timedelta(hours=48)) == 1
    rows = sla_rows(engine)
    limbo = rows[f"sla:{cid}:limbo:0:UMGR1"]
    assert "No disposition 2d after it landed" in shown(limbo)
    assert "Nobody in `sales` has claimed it" in shown(limbo)
    assert rows[f"sla:{cid}:limbo:0:thread"].payload["thread_of"] == cid
    assert sweep_at(services, clock, START + timedelta(days=5)) == 0
    assert [e[0] for e in events(engine, cid)] == ["escalate", "limbo"]


def test_limbo_applies_whatever_the_tier(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = services_for(engine, database_url, clock)
    cid = new_lead(services, START).cycle_id
    sweep_at(services, clock, START + timedelta(hours=48))
    assert f"sla:{cid}:limbo:0:UMGR1" in sla_rows(engine)
    assert ("limbo", 0, cycle_of(engine, cid).owner_slack_id) in events(engine, cid)


def test_accepted_and_closed_leads_are_never_chased(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = services_for(engine, database_url, clock)
    pb = services.playbook
    accepted = new_lead(services, START, "L-1").cycle_id
    rejected = new_lead(services, START, "L-2", email="two@acme.example").cycle_id
    recycled = new_lead(services, START, "L-3", email="three@acme.example").cycle_id
    with db.transaction(engine) as session:
        handoff.accept(session, accepted, "UREP1", playbook=pb, now=START)
        handoff.reject(
            session,
            rejected,
            "UMGR1",
            reason_code="not_icp",
            note="Wrong fit.",
            playbook=pb,
            now=START,
        )
        handoff.recycle(
            session,
            recycled,
            "UMGR1",
            reason_code="timing",
            revisit_on=datetime(2027, 3, 1).date(),
            note=None,
            playbook=pb,
            now=START,
        )

    for hours in (0.2, 0.25, 0.5, 1, 49, 24 * 7):
        assert sweep_at(services, clock, START + timedelta(hours=hours)) == 0
    assert sla_rows(engine) == {}
    for cid in (accepted, rejected, recycled):
        assert events(engine, cid) == []


def test_a_lead_accepted_after_its_nudge_gets_nothing_more(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = services_for(engine, database_url, clock)
    cid = new_lead(services, START).cycle_id
    sweep_at(services, clock, START + timedelta(minutes=10))
    with db.transaction(engine) as session:
        handoff.accept(session, cid, "UREP1", playbook=services.playbook, now=clock())
    assert sweep_at(services, clock, START + timedelta(hours=49)) == 0
    assert list(sla_rows(engine)) == [f"sla:{cid}:nudge:0:UREP1"]


def test_claim_mode_nudges_the_pool_in_the_thread_escalates_and_never_reassigns(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = services_for(engine, database_url, clock, mode="claim")
    cid = new_lead(services, START).cycle_id

    assert sweep_at(services, clock, START + timedelta(minutes=10)) == 1
    [nudge] = sla_rows(engine).values()
    assert nudge.dedupe_key == f"sla:{cid}:nudge:0:thread"
    assert (nudge.payload["channel"], nudge.payload["thread_of"]) == (PIPELINE, cid)
    assert "<@UREP1> <@UREP2>" in shown(nudge)
    assert "still unclaimed" in shown(nudge)

    assert sweep_at(services, clock, START + timedelta(minutes=15)) == 1
    manager = sla_rows(engine)[f"sla:{cid}:escalate:0:UMGR1"]
    assert "nobody in `sales` claimed it" in shown(manager)
    assert "next available rep" not in shown(manager)

    for minutes in (30, 60, 24 * 60):
        assert sweep_at(services, clock, START + timedelta(minutes=minutes)) == 0
    stored = cycle_of(engine, cid)
    assert (stored.owner_slack_id, stored.reassignments, stored.version) == (None, 0, 1)
    assert [e[0] for e in events(engine, cid)] == ["nudge", "escalate"]


def test_a_lead_landing_on_friday_evening_is_nudged_on_monday(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = services_for(engine, database_url, clock)
    friday_evening = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)  # 18:00 in New York
    cid = new_lead(services, friday_evening).cycle_id
    monday_open = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 09:00 in New York
    assert cycle_of(engine, cid).sla_due_at == monday_open + timedelta(minutes=15)

    for moment in (
        friday_evening,
        friday_evening + timedelta(hours=12),
        friday_evening + timedelta(hours=47, minutes=59),
    ):
        assert sweep_at(services, clock, moment) == 0
    # Limbo counts wall-clock hours: 48 of them are up on Sunday evening.
    assert sweep_at(services, clock, friday_evening + timedelta(hours=48)) == 1
    assert sweep_at(services, clock, monday_open + timedelta(minutes=9, seconds=59)) == 0
    assert sweep_at(services, clock, monday_open + timedelta(minutes=10)) == 1
    assert [e[0] for e in events(engine, cid)] == ["limbo", "nudge"]
    assert f"sla:{cid}:nudge:0:UREP1" in sla_rows(engine)


def test_the_reassignment_delay_runs_on_business_hours(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = services_for(engine, database_url, clock)
    friday = datetime(2026, 11, 20, 21, 40, tzinfo=UTC)  # 16:40 in New York
    cid = new_lead(services, friday).cycle_id
    breach = datetime(2026, 11, 20, 21, 55, tzinfo=UTC)
    assert cycle_of(engine, cid).sla_due_at == breach

    assert sweep_at(services, clock, breach) == 1  # the nudge window passed unswept
    assert [e[0] for e in events(engine, cid)] == ["escalate"]
    assert sweep_at(services, clock, breach + timedelta(hours=1)) == 0
    monday = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 09:00 in New York
    assert sweep_at(services, clock, monday + timedelta(minutes=9)) == 1  # limbo (wall clock)
    assert cycle_of(engine, cid).owner_slack_id == "UREP1"
    # Five minutes of Friday after the breach and ten on Monday morning: fifteen business minutes.
    assert sweep_at(services, clock, monday + timedelta(minutes=10)) == 1
    assert cycle_of(engine, cid).owner_slack_id == "UREP2"


# --- what people read ----------------------------------------------------------------------------


def test_sla_messages_name_the_lead_but_never_its_email_or_phone(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = services_for(engine, database_url, clock)
    set_away(engine, "UREP2")
    new_lead(services, START)
    new_lead(services, START, "L-2", score=10, email="nurture@acme.example")
    for hours in (0.17, 0.25, 0.5, 16, 24, 48, 72):
        sweep_at(services, clock, START + timedelta(hours=hours))
    rows = sla_rows(engine)
    kinds = {key.split(":")[2] for key in rows}
    assert kinds == {"nudge", "escalate", "unassigned", "limbo"}
    for row in rows.values():
        text = shown(row)
        assert row.payload["text"].strip()
        assert all(b.get("type") for b in row.payload["blocks"])
        assert "Ana Diaz" in text or "<@" in text
        for secret in ("acme.example", "555 0100", "+1 555"):
            assert secret not in text, (row.dedupe_key, secret)


def test_every_kind_of_notice_renders() -> None:
    pb = team_playbook("assign")
    lead = Lead(
        id=1,
        origin="intake",
        external_id="X-1",
        first_name="Ana",
        last_name="<Diaz>",
        company="Acme & Co",
        email="ana@acme.example",
        phone="+1 555 0100",
        created_at=START,
        updated_at=START,
    )
    cycle = _cycle(id=7, owner_slack_id="UREP2")
    for kind, audience in [
        ("nudge", "owner"),
        ("nudge", "thread"),
        ("escalate", "manager"),
        ("escalate", "thread"),
        ("limbo", "manager"),
        ("limbo", "thread"),
        ("unassigned", "manager"),
        ("unassigned", "thread"),
        ("reassign", "owner"),
        ("reassign", "thread"),
    ]:
        notice = sla.Notice(
            kind,
            audience,
            lead,
            cycle,
            pb,
            span=timedelta(minutes=5),
            manager="UMGR1",
            previous_owner="UREP1",
            pool_members=("UREP1", "UREP2"),
            reassign_in=timedelta(minutes=10),
        )
        message = build_sla_message(notice)
        text = message["text"] + blocks_text(message["blocks"])
        assert message["text"].strip(), kind
        assert all(b.get("type") for b in message["blocks"]), kind
        if audience != "thread":
            assert "Ana &lt;Diaz&gt;" in text, kind
            assert "Acme &amp; Co" in text, kind
        assert "<Diaz>" not in text
        assert "acme.example" not in text
        assert "555" not in text


# --- the decision alone ------------------------------------------------------------------------


def _cycle(**fields: Any) -> MqlCycle:
    values: dict[str, Any] = {
        "lead_id": 1,
        "mql_at": START,
        "received_at": START,
        "tier": "hot",
        "sla_due_at": START + timedelta(minutes=15),
        "pool": "sales",
        "owner_slack_id": "UREP1",
    }
    values.update(fields)
    return MqlCycle(**{"id": 1, **values})


@pytest.mark.parametrize(
    ("mode", "fields", "minutes", "expected"),
    [
        ("assign", {}, 9, []),
        ("assign", {}, 10, [("nudge", 0)]),
        ("assign", {}, 14, [("nudge", 0)]),
        ("assign", {}, 15, [("escalate", 0)]),
        ("assign", {}, 30, [("escalate", 0), ("reassign", 0)]),
        ("assign", {"reassignments": 2}, 30, [("escalate", 2), ("reassign", 2)]),
        ("claim", {"owner_slack_id": None}, 10, [("nudge", 0)]),
        ("claim", {"owner_slack_id": None}, 30, [("escalate", 0)]),
        ("assign", {"owner_slack_id": None}, 1, [("unassigned", 0)]),
        ("assign", {"owner_slack_id": None}, 60, [("unassigned", 0)]),
        ("assign", {}, 48 * 60, [("escalate", 0), ("reassign", 0), ("limbo", 0)]),
        ("assign", {"reassignments": 1}, 48 * 60, [("escalate", 1), ("reassign", 1), ("limbo", 0)]),
        ("assign", {"state": "accepted"}, 48 * 60, []),
        ("claim", {"state": "rejected"}, 48 * 60, []),
    ],
)
def test_due_steps(
    mode: str, fields: dict[str, Any], minutes: int, expected: list[tuple[str, int]]
) -> None:
    pb = team_playbook(mode)
    cycle = _cycle(**fields)
    now = START + timedelta(minutes=minutes)
    steps = sla.due_steps(cycle, pb.tier("hot"), pb, now)
    assert [(s.kind, s.step) for s in steps] == expected


def test_a_deadline_at_closing_time_escalates_at_once_and_reassigns_next_morning() -> None:
    pb = team_playbook("assign")
    closing = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)  # 17:00 in New York
    cycle = _cycle(sla_due_at=closing, received_at=closing - timedelta(minutes=15))

    def due(moment: datetime) -> list[str]:
        return [s.kind for s in sla.due_steps(cycle, pb.tier("hot"), pb, moment)]

    assert due(closing - timedelta(seconds=1)) == ["nudge"]
    assert due(closing) == ["escalate"]
    tuesday = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # 09:00 in New York
    assert due(tuesday + timedelta(minutes=14, seconds=59)) == ["escalate"]
    assert due(tuesday + timedelta(minutes=15)) == ["escalate", "reassign"]


def test_a_lead_whose_pool_left_the_playbook_is_still_chased(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = services_for(engine, database_url, clock)
    cid = new_lead(services, START).cycle_id
    with db.transaction(engine) as session:
        stored = session.get(MqlCycle, cid)
        assert stored is not None
        stored.pool = "retired"
        session.add(stored)

    sweep_at(services, clock, START + timedelta(minutes=15))
    assert f"sla:{cid}:escalate:0:UMGR1" in sla_rows(engine)  # the default pool's manager
    sweep_at(services, clock, START + timedelta(minutes=30))
    moved = cycle_of(engine, cid)
    assert (moved.pool, moved.owner_slack_id) == ("sales", "UREP2")


# --- through the outbox to Slack -----------------------------------------------------------------


def test_nudge_escalation_and_thread_line_reach_slack(
    engine: Any, database_url: str, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    services = services_for(engine, database_url, clock, fake=fake_slack)
    cid = new_lead(services, START).cycle_id
    outbox_job.run(services, now=START)
    [card] = fake_slack.messages(PIPELINE)

    sweep_at(services, clock, START + timedelta(minutes=10))
    outbox_job.run(services, now=clock())
    to_owner = [
        r.params for r in fake_slack.calls("chat.postMessage") if r.params["channel"] == "UREP1"
    ]
    assert len(to_owner) == 2  # the hot lead's DM, then the nudge
    assert "5m left" in to_owner[1]["text"]
    assert to_owner[1]["blocks"]

    sweep_at(services, clock, START + timedelta(minutes=15))
    outbox_job.run(services, now=clock())
    to_manager = [
        r.params for r in fake_slack.calls("chat.postMessage") if r.params["channel"] == "UMGR1"
    ]
    assert len(to_manager) == 1
    assert "overdue by" in to_manager[0]["text"]
    replies = [m for m in fake_slack.messages(PIPELINE) if m["thread_ts"]]
    assert len(replies) == 1
    assert replies[0]["thread_ts"] == card["ts"]
    assert "SLA missed" in replies[0]["text"]
    assert all(r.state == outbox.DONE for r in sla_rows(engine).values())

    outbox_job.run(services, now=clock() + timedelta(minutes=1))
    assert len(fake_slack.calls("chat.postMessage")) == 5  # card, hot DM, nudge, escalation x2
    with db.transaction(engine) as session:
        stored = session.exec(select(SlackMessage).where(SlackMessage.cycle_id == cid)).all()
    assert {m.role for m in stored} == {"card", "dm"}


def test_a_thread_message_waits_for_its_card_then_posts_under_it(
    engine: Any, database_url: str, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    services = services_for(engine, database_url, clock, mode="claim", fake=fake_slack)
    cid = new_lead(services, START).cycle_id
    with db.transaction(engine) as session:
        outbox.enqueue_message(
            session, key="note:1", to=PIPELINE, text="A note", thread_of=cid, now=START
        )
    [note] = rows_of(engine, outbox.SLACK_MESSAGE)
    assert note.priority < rows_of(engine, outbox.SLACK_CARD)[0].priority  # tried first

    outbox_job.run(services, now=START)
    [card] = fake_slack.messages(PIPELINE)
    assert card["thread_ts"] is None
    waiting = rows_of(engine, outbox.SLACK_MESSAGE)[0]
    assert (waiting.state, waiting.attempts) == (outbox.PENDING, 0)
    assert waiting.due_at > START

    clock.advance(seconds=5)
    outbox_job.run(services, now=clock())
    posted = [r.params for r in fake_slack.calls("chat.postMessage")]
    assert len(posted) == 2
    assert posted[1]["thread_ts"] == card["ts"]
    assert posted[1]["channel"] == "C0PIPELINE"
    assert rows_of(engine, outbox.SLACK_MESSAGE)[0].state == outbox.DONE

    clock.advance(seconds=5)
    outbox_job.run(services, now=clock())
    assert len(fake_slack.calls("chat.postMessage")) == 2
