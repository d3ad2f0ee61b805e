"""Touch logging: the core use case, the touch minimum on recycles, CRM tasks, the card, end to end."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from bot.core import db, outbox, touches
from bot.core.crm import CrmAuthError, CrmError, CrmTask, CrmUnavailable, WriteResult
from bot.core.handoff import HandoffRefused, InvalidDisposition, validate_recycle
from bot.core.models import Lead, MqlCycle, OutboxMessage, Touch
from bot.core.playbook import Playbook, parse_playbook
from bot.services import Services
from bot.views.help import build_help
from bot.views.lead_card import LOG_TOUCH, build_lead_card
from jobs import outbox as outbox_job
from tests.conftest import (
    BOT_TOKEN,
    TEST_PLAYBOOK,
    FrozenClock,
    Live,
    blocks_text,
    lead_json,
    make_services,
    start_live,
    wait_until,
)
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_payloads import (
    block_action_payload,
    date_state,
    select_state,
    text_state,
    view_submission_payload,
)
from tests.test_handoff_core import accept, cycle, new_cycle, recycle, reject, rows
from tests.test_writeback import RecordingCRM

MINIMUM = "touches:\n  minimum: {touches: 8, within: 14d, reasons: [no_response]}\n"
ALERTS = "#revops-alerts"


def playbook(mode: str = "claim", *, minimum: bool = True) -> Playbook:
    """The team playbook, with the touch minimum (8 touches in 14 days before a no-response recycle)."""
    text = TEST_PLAYBOOK.replace("MODE", mode) + (MINIMUM if minimum else "")
    return parse_playbook(text, "touch playbook")


def log(
    engine: Any,
    cycle_id: int,
    user: str,
    pb: Playbook,
    clock: FrozenClock,
    kind: str | None = "call",
    note: str | None = None,
) -> Touch:
    with db.transaction(engine) as session:
        return touches.log_touch(session, cycle_id, user, kind, note, playbook=pb, now=clock())


def accepted_cycle(engine: Any, pb: Playbook, clock: FrozenClock, external_id: str = "L-1") -> int:
    cid = new_cycle(engine, pb, clock.now, external_id)
    accept(engine, cid, "UREP1", pb, clock.now)
    return cid


# --- logging a touch -----------------------------------------------------------------------


def test_a_touch_is_recorded_and_the_first_one_stamps_the_cycle(
    engine: Any, clock: FrozenClock
) -> None:
    pb = playbook()
    cid = accepted_cycle(engine, pb, clock)
    first_at = clock.advance(minutes=12)
    touch = log(engine, cid, "UREP1", pb, clock, "call", "  Left a voicemail.  ")

    assert (touch.cycle_id, touch.rep_slack_id, touch.kind) == (cid, "UREP1", "call")
    assert touch.note == "Left a voicemail."
    assert touch.touched_at == first_at
    assert touch.lead_id == cycle(engine, cid).lead_id
    stored = cycle(engine, cid)
    assert stored.first_touch_at == first_at
    assert stored.version == 3
    assert stored.state == "accepted"

    clock.advance(hours=1)
    log(engine, cid, "UREP1", pb, clock, "linkedin", "   ")
    stored = cycle(engine, cid)
    assert stored.first_touch_at == first_at, "only the first touch sets first_touch_at"
    assert stored.version == 4

    refreshes = [r.dedupe_key for r in rows(engine, outbox.SLACK_REFRESH)]
    assert refreshes == [f"refresh:{cid}:v2", f"refresh:{cid}:v3", f"refresh:{cid}:v4"]
    tasks = rows(engine, outbox.CRM_TASK)
    with db.transaction(engine) as session:
        logged = session.exec(select(Touch).order_by(col(Touch.id))).all()
        assert [t.note for t in logged] == ["Left a voicemail.", None]
        assert touches.touch_count(session, cid) == 2
    assert [t.dedupe_key for t in tasks] == [f"task:{t.id}" for t in logged]
    assert [t.payload for t in tasks] == [{"touch_id": t.id} for t in logged]
    assert {t.lane for t in tasks} == {outbox.CRM_TASK_LANE}
    assert len(rows(engine, outbox.CRM_SYNC)) == 1, "a touch does not change the lead's CRM state"


@pytest.mark.parametrize(
    ("kind", "note", "fields"),
    [
        (None, None, {"touch_type"}),
        ("", "Called", {"touch_type"}),
        ("fax", None, {"touch_type"}),
        ("email", "x" * 501, {"note"}),
        (None, "x" * 501, {"touch_type", "note"}),
    ],
)
def test_an_incomplete_touch_form_names_its_fields_and_changes_nothing(
    engine: Any, clock: FrozenClock, kind: str | None, note: str | None, fields: set[str]
) -> None:
    pb = playbook()
    cid = accepted_cycle(engine, pb, clock)
    with pytest.raises(InvalidDisposition) as caught:
        log(engine, cid, "UREP1", pb, clock, kind, note)
    assert set(caught.value.errors) == fields
    assert cycle(engine, cid).version == 2
    assert cycle(engine, cid).first_touch_at is None
    assert rows(engine, outbox.CRM_TASK) == []


def test_touch_types_come_from_the_playbook() -> None:
    custom = playbook().model_copy(
        update={"touches": playbook().touches.model_copy(update={"types": ["call", "sms"]})}
    )
    assert touches.validate_touch(custom, "sms", None) == {}
    assert set(touches.validate_touch(custom, "email", None)) == {"touch_type"}
    assert [touches.type_label(c) for c in ("call", "email", "linkedin", "in_person")] == [
        "Call",
        "Email",
        "LinkedIn",
        "In person",
    ]


def refused(action: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(HandoffRefused) as caught:
        action(*args, **kwargs)
    return caught.value.message


def test_only_the_owner_or_the_pool_manager_may_log(engine: Any, clock: FrozenClock) -> None:
    pb = playbook()
    cid = accepted_cycle(engine, pb, clock)
    message = refused(log, engine, cid, "UREP2", pb, clock)
    assert message == (
        "This lead belongs to <@UREP1>; only they or the pool's manager can change it."
    )
    assert "belongs to <@UREP1>" in refused(log, engine, cid, "UMGR2", pb, clock)
    assert log(engine, cid, "UMGR1", pb, clock).rep_slack_id == "UMGR1"
    assert cycle(engine, cid).version == 3


def test_touches_need_an_accepted_lead(engine: Any, clock: FrozenClock) -> None:
    pb = playbook()
    open_cid = new_cycle(engine, pb, clock.now, "L-open")
    assert refused(log, engine, open_cid, "UREP1", pb, clock) == (
        "Accept this lead before logging touches on it."
    )
    closed = new_cycle(engine, pb, clock.now, "L-closed")
    reject(engine, closed, "UREP2", pb, clock.now)
    assert refused(log, engine, closed, "UREP2", pb, clock) == (
        "This lead was already rejected by you; it is closed."
    )
    assert "no record of this lead" in refused(log, engine, 9999, "UREP1", pb, clock)
    assert rows(engine, outbox.CRM_TASK) == []


def test_concurrent_touches_all_land_and_the_first_time_is_kept(
    engine: Any, clock: FrozenClock
) -> None:
    pb = playbook()
    cid = accepted_cycle(engine, pb, clock)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def touch() -> None:
        try:
            start.wait()
            log(engine, cid, "UREP1", pb, clock)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=touch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    stored = cycle(engine, cid)
    assert stored.version == 6
    assert stored.first_touch_at == clock.now
    assert len(rows(engine, outbox.CRM_TASK)) == 4
    assert len(rows(engine, outbox.SLACK_REFRESH)) == 5


def test_touch_count_within_a_window(engine: Any, clock: FrozenClock) -> None:
    pb = playbook()
    cid = accepted_cycle(engine, pb, clock)
    other = accepted_cycle(engine, pb, clock, "L-2")
    start = clock.now
    for hours in (0, 24, 48):
        clock.now = start + timedelta(hours=hours)
        log(engine, cid, "UREP1", pb, clock)
    log(engine, other, "UREP1", pb, clock)
    with Session(engine) as session:
        assert touches.touch_count(session, cid) == 3
        assert touches.touch_count(session, cid, since=start + timedelta(hours=1)) == 2
        assert touches.touch_count(session, cid, until=start + timedelta(hours=24)) == 2
        assert touches.touch_count(session, other) == 1


# --- the touch minimum on recycles ----------------------------------------------------------


def test_recycling_for_no_response_needs_the_touch_minimum(engine: Any, clock: FrozenClock) -> None:
    pb = playbook()
    cid = accepted_cycle(engine, pb, clock)
    log(engine, cid, "UREP1", pb, clock)  # falls out of the 14-day window below
    clock.advance(days=15)
    for _ in range(7):
        log(engine, cid, "UREP1", pb, clock)
        clock.advance(hours=3)

    with pytest.raises(InvalidDisposition) as caught:
        recycle(engine, cid, "UREP1", pb, clock.now, reason="no_response")
    assert caught.value.errors == {
        "reason": (
            "Log at least 8 touches in 14 days before recycling for \u201cNo response\u201d "
            "(7 so far)."
        )
    }
    assert cycle(engine, cid).state == "accepted"

    log(engine, cid, "UREP1", pb, clock)
    done = recycle(engine, cid, "UREP1", pb, clock.now, reason="no_response")
    assert (done.state, done.reason_code) == ("recycled", "no_response")


def test_the_minimum_applies_only_to_its_reasons(engine: Any, clock: FrozenClock) -> None:
    pb = playbook()
    cid = accepted_cycle(engine, pb, clock)
    assert recycle(engine, cid, "UREP1", pb, clock.now, reason="timing").state == "recycled"
    unlimited = playbook(minimum=False)
    other = accepted_cycle(engine, unlimited, clock, "L-2")
    assert recycle(engine, other, "UREP1", unlimited, clock.now, reason="no_response").state == (
        "recycled"
    )


def test_the_minimum_holds_for_the_manager_and_for_unaccepted_leads(
    engine: Any, clock: FrozenClock
) -> None:
    pb = playbook()
    cid = new_cycle(engine, pb, clock.now)
    with pytest.raises(InvalidDisposition) as caught:
        recycle(engine, cid, "UMGR1", pb, clock.now, reason="no_response")
    assert "(0 so far)" in caught.value.errors["reason"]


def test_validate_recycle_reports_the_shortfall_with_other_errors() -> None:
    pb = playbook()
    today = date(2026, 11, 23)
    errors = validate_recycle(pb, "no_response", None, None, today=today, touches=3)
    assert set(errors) == {"reason", "revisit_on"}
    assert errors["reason"].endswith("(3 so far).")
    assert validate_recycle(pb, "no_response", date(2027, 1, 1), None, today=today, touches=8) == {}
    assert validate_recycle(pb, "no_response", date(2027, 1, 1), None, today=today) == {}
    assert validate_recycle(pb, "timing", date(2027, 1, 1), None, today=today, touches=0) == {}


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(days=14), "14 days"),
        (timedelta(days=1), "1 day"),
        (timedelta(hours=48), "2 days"),
        (timedelta(hours=36), "36 hours"),
        (timedelta(minutes=90), "90 minutes"),
        (timedelta(seconds=90), "1m 30s"),
    ],
)
def test_describe_span(span: timedelta, text: str) -> None:
    assert touches.describe_span(span) == text


# --- the card and help -----------------------------------------------------------------------


def test_the_card_offers_log_touch_once_accepted_and_counts_touches(
    engine: Any, clock: FrozenClock
) -> None:
    pb = playbook()
    cid = new_cycle(engine, pb, clock.now)

    def card() -> dict[str, Any]:
        with db.transaction(engine) as session:
            found = session.get(MqlCycle, cid)
            assert found is not None
            lead = session.get(Lead, found.lead_id)
            assert lead is not None
            count = touches.touch_count(session, cid)
            return build_lead_card(lead, found, playbook=pb, crm_url=None, touches=count)

    assert LOG_TOUCH not in blocks_text(card()["blocks"])
    accept(engine, cid, "UREP1", pb, clock.now)
    shown = card()
    actions = next(b for b in shown["blocks"] if b["type"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == [
        "lead_log_touch",
        "lead_reject",
        "lead_recycle",
    ]
    assert actions["elements"][0]["value"] == str(cid)
    assert "Touches:" not in blocks_text(shown["blocks"])

    clock.advance(minutes=12)
    log(engine, cid, "UREP1", pb, clock)
    clock.advance(hours=2)
    log(engine, cid, "UREP1", pb, clock, "email")
    assert "Touches: 2 (first after 12m)" in blocks_text(card()["blocks"])

    recycle(engine, cid, "UREP1", pb, clock.now, reason="timing")
    closed = blocks_text(card()["blocks"])
    assert LOG_TOUCH not in closed
    assert "Touches: 2" in closed


def test_a_passed_touch_count_needs_no_session(engine: Any, clock: FrozenClock) -> None:
    pb = playbook()
    cid = accepted_cycle(engine, pb, clock)
    clock.advance(minutes=5)
    log(engine, cid, "UREP1", pb, clock)
    with db.transaction(engine) as session:
        found = session.get(MqlCycle, cid)
        assert found is not None
        lead = session.get(Lead, found.lead_id)
        assert lead is not None
        session.expunge_all()
    assert "Touches:" not in blocks_text(
        build_lead_card(lead, found, playbook=pb, crm_url=None)["blocks"]
    )
    shown = build_lead_card(lead, found, playbook=pb, crm_url=None, touches=4)
    assert "Touches: 4 (first after 5m)" in blocks_text(shown["blocks"])


def test_help_mentions_log_touch_the_minimum_and_availability() -> None:
    text = blocks_text(build_help(playbook())["blocks"])
    assert "*Log touch*" in text
    assert "Call, Email or LinkedIn" in text
    assert "8 touches within 14 days" in text
    assert "/revbot away [until YYYY-MM-DD]" in text
    assert "/revbot back" in text
    assert "8 touches" not in blocks_text(build_help(playbook(minimum=False))["blocks"])


# --- CRM tasks -----------------------------------------------------------------------------


class TaskRecordingCRM(RecordingCRM):
    """RecordingCRM that also keeps the task batches it receives, failing them as scripted."""

    def __init__(self) -> None:
        super().__init__()
        self.task_batches: list[list[CrmTask]] = []
        self.raise_next_tasks: list[CrmError] = []
        self.refuse_tasks: dict[str, list[tuple[bool, str]]] = {}
        self.tasks: dict[str, CrmTask] = {}

    def log_tasks(self, tasks: Sequence[CrmTask]) -> list[WriteResult]:
        """Record the batch, then fail it as scripted or store each task by its external id."""
        self.task_batches.append(list(tasks))
        if self.raise_next_tasks:
            raise self.raise_next_tasks.pop(0)
        results = []
        for task in tasks:
            refusals = self.refuse_tasks.get(task.external_id)
            if refusals:
                retryable, error = refusals.pop(0)
                results.append(WriteResult(task.key, ok=False, retryable=retryable, error=error))
                continue
            assert task.external_id not in self.tasks, "task written twice"
            self.tasks[task.external_id] = task
            results.append(WriteResult(task.key, ok=True))
        return results


@pytest.fixture
def fake(clock: FrozenClock) -> Iterator[FakeSlack]:
    """Fake Slack for the cards and alerts the outbox runs deliver."""
    with FakeSlack(bot_token=BOT_TOKEN, clock=lambda: clock().timestamp()) as server:
        yield server


def crm_services(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock, crm: Any
) -> Services:
    return make_services(engine, database_url, fake, playbook=playbook(), clock=clock, crm=crm)


def task_rows(engine: Any) -> list[OutboxMessage]:
    return rows(engine, outbox.CRM_TASK)


def test_each_touch_reaches_the_crm_once_as_a_task(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    crm = TaskRecordingCRM()
    services = crm_services(engine, database_url, fake, clock, crm)
    cid = accepted_cycle(engine, services.playbook, clock)
    clock.advance(minutes=3)
    call = log(engine, cid, "UREP1", services.playbook, clock, "call", "Voicemail.")
    email = log(engine, cid, "UMGR1", services.playbook, clock, "email")

    outbox_job.run(services, now=clock())
    outbox_job.run(services, now=clock.advance(minutes=5))

    assert [len(b) for b in crm.task_batches] == [2]
    first, second = crm.task_batches[0]
    lead_id = cycle(engine, cid).lead_id
    assert first.external_id == f"revbot-touch-{call.id}"
    assert (first.lead.lead_id, first.lead.external_id, first.lead.origin) == (
        lead_id,
        "L-1",
        "hubspot-form",
    )
    assert (first.kind, first.label, first.note) == ("call", "Call", "Voicemail.")
    assert (first.owner_slack_id, first.owner_email) == ("UREP1", "ana@example.com")
    assert first.done_at == call.touched_at
    assert (second.kind, second.label, second.note) == ("email", "Email", None)
    assert (second.owner_slack_id, second.owner_email) == ("UMGR1", None)
    assert second.external_id == f"revbot-touch-{email.id}"
    assert {r.state for r in task_rows(engine)} == {outbox.DONE}
    assert [t.key for t in crm.task_batches[0]] == [str(r.id) for r in task_rows(engine)]
    assert [lead_id] == [w.disposition.lead.lead_id for b in crm.batches for w in b]


def test_a_crm_outage_delays_tasks_and_loses_none(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    crm = TaskRecordingCRM()
    crm.raise_next_tasks = [CrmUnavailable("503 Service Unavailable")]
    services = crm_services(engine, database_url, fake, clock, crm)
    cid = accepted_cycle(engine, services.playbook, clock)
    log(engine, cid, "UREP1", services.playbook, clock)

    outbox_job.run(services, now=clock())
    [row] = task_rows(engine)
    assert (row.state, row.attempts) == (outbox.PENDING, 1)
    assert "CrmUnavailable: 503" in (row.last_error or "")
    outbox_job.run(services, now=clock.advance(seconds=1))
    assert len(crm.task_batches) == 1, "retried before the backoff elapsed"

    outbox_job.run(services, now=clock.advance(seconds=5))
    assert len(crm.task_batches) == 2
    assert len(crm.tasks) == 1
    assert task_rows(engine)[0].state == outbox.DONE


def test_refused_tasks_retry_or_dead_letter_with_an_alert(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    crm = TaskRecordingCRM()
    services = crm_services(engine, database_url, fake, clock, crm)
    cid = accepted_cycle(engine, services.playbook, clock)
    locked, refused_touch, fine = (
        log(engine, cid, "UREP1", services.playbook, clock) for _ in range(3)
    )
    crm.refuse_tasks = {
        f"revbot-touch-{locked.id}": [(True, "UNABLE_TO_LOCK_ROW")],
        f"revbot-touch-{refused_touch.id}": [(False, "INVALID_FIELD: WhoId")],
    }

    outbox_job.run(services, now=clock())
    by_touch = {r.payload["touch_id"]: r for r in task_rows(engine)}
    assert by_touch[fine.id].state == outbox.DONE
    assert (by_touch[locked.id].state, by_touch[locked.id].attempts) == (outbox.PENDING, 1)
    assert by_touch[refused_touch.id].state == outbox.DEAD
    [alert] = rows(engine, outbox.SLACK_ALERT)
    assert alert.payload["channel"] == ALERTS
    assert "crm.task" in alert.payload["text"]
    assert "INVALID_FIELD: WhoId" in alert.payload["text"]

    outbox_job.run(services, now=clock.advance(seconds=5))
    outbox_job.run(services, now=clock.advance(hours=1))
    assert set(crm.tasks) == {f"revbot-touch-{t.id}" for t in (locked, fine)}
    assert [len(b) for b in crm.task_batches] == [3, 1]
    assert len(fake.messages(ALERTS)) == 1


def test_a_crm_auth_error_dead_letters_tasks_without_retrying(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    crm = TaskRecordingCRM()
    crm.raise_next_tasks = [CrmAuthError("INVALID_SESSION_ID")]
    services = crm_services(engine, database_url, fake, clock, crm)
    cid = accepted_cycle(engine, services.playbook, clock)
    log(engine, cid, "UREP1", services.playbook, clock)

    for _ in range(3):
        outbox_job.run(services, now=clock.advance(minutes=20))
    assert len(crm.task_batches) == 1
    assert task_rows(engine)[0].state == outbox.DEAD
    assert any("INVALID_SESSION_ID" in a.payload["text"] for a in rows(engine, outbox.SLACK_ALERT))


def test_the_local_crm_takes_tasks(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    services = make_services(engine, database_url, fake, playbook=playbook(), clock=clock)
    cid = accepted_cycle(engine, services.playbook, clock)
    log(engine, cid, "UREP1", services.playbook, clock)
    outbox_job.run(services, now=clock())
    assert [r.state for r in task_rows(engine)] == [outbox.DONE]


def test_a_task_whose_touch_is_gone_is_skipped(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    crm = TaskRecordingCRM()
    services = crm_services(engine, database_url, fake, clock, crm)
    with db.transaction(engine) as session:
        outbox.enqueue(
            session,
            kind=outbox.CRM_TASK,
            key="task:999",
            lane=outbox.CRM_TASK_LANE,
            now=clock(),
            payload={"touch_id": 999},
        )
    outbox_job.run(services, now=clock())
    [row] = task_rows(engine)
    assert (row.state, row.result) == (outbox.DONE, {"skipped": "touch no longer exists"})
    assert crm.task_batches == []


# --- end to end over HTTP --------------------------------------------------------------------


@pytest.fixture
def touch_live(
    engine: Any, database_url: str, fake_slack: FakeSlack
) -> Iterator[tuple[Live, TaskRecordingCRM]]:
    """revbot (claim mode, with the touch minimum) on a recording CRM."""
    crm = TaskRecordingCRM()
    services = make_services(engine, database_url, fake_slack, playbook=playbook(), crm=crm)
    live, stop = start_live(services, fake_slack)
    yield live, crm
    stop()


def _click(live: Live, user: str, action: str, cycle_id: int, key: str) -> Any:
    return live.slack(
        block_action_payload(
            user_id=user,
            action_id=action,
            value=str(cycle_id),
            response_url=live.fake.response_url(key),
        )
    )


def _submit(live: Live, user: str, view: dict[str, Any], values: dict[str, Any]) -> Any:
    return live.slack(
        view_submission_payload(
            user_id=user,
            callback_id=view["callback_id"],
            private_metadata=view["private_metadata"],
            values={block: {"value": state} for block, state in values.items()},
        )
    )


def test_log_touch_end_to_end(touch_live: tuple[Live, TaskRecordingCRM]) -> None:
    live, crm = touch_live
    live.intake(lead_json())
    card = live.fake.wait_for("chat.postMessage")[0].params
    cycle_id = int(card["metadata"]["event_payload"]["cycle_id"])
    assert "lead_log_touch" not in blocks_text(card["blocks"])

    _click(live, "UREP1", "lead_accept", cycle_id, "accept")
    accepted = live.fake.wait_for("chat.update")[0].params
    actions = next(b for b in accepted["blocks"] if b["type"] == "actions")
    assert {"action_id": "lead_log_touch", "value": str(cycle_id)}.items() <= (
        actions["elements"][0].items()
    )

    _click(live, "UREP2", "lead_log_touch", cycle_id, "outsider")
    reply = live.fake.wait_for("response_url")[0]
    assert reply.params["response_type"] == "ephemeral"
    assert "belongs to <@UREP1>" in reply.params["text"]

    _click(live, "UREP1", "lead_log_touch", cycle_id, "owner")
    view = live.fake.wait_for("views.open")[0].params["view"]
    assert view["callback_id"] == "lead_touch_modal"
    kinds = next(b for b in view["blocks"] if b.get("block_id") == "touch_type")
    assert [(o["value"], o["text"]["text"]) for o in kinds["element"]["options"]] == [
        ("call", "Call"),
        ("email", "Email"),
        ("linkedin", "LinkedIn"),
    ]
    note = next(b for b in view["blocks"] if b.get("block_id") == "note")
    assert note["optional"] is True
    assert note["element"]["max_length"] == 500

    missing = _submit(
        live, "UREP1", view, {"touch_type": select_state(None), "note": text_state("hi")}
    )
    assert missing.json()["response_action"] == "errors"
    assert set(missing.json()["errors"]) == {"touch_type"}

    done = _submit(
        live,
        "UREP1",
        view,
        {"touch_type": select_state("call"), "note": text_state("Left a voicemail.")},
    )
    assert done.status_code == 200
    assert not done.content.strip()
    updated = live.fake.wait_for("chat.update", count=2)[1].params
    assert "Touches: 1 (first after" in blocks_text(updated["blocks"])

    [task] = wait_until(lambda: list(crm.tasks.values()), what="the CRM task")
    assert (task.kind, task.note, task.owner_email) == (
        "call",
        "Left a voicemail.",
        "ana@example.com",
    )
    assert task.lead.external_id == "L-1001"

    _click(live, "UREP1", "lead_recycle", cycle_id, "recycle")
    recycle_view = live.fake.wait_for("views.open", count=2)[1].params["view"]
    assert "this lead has 1" in blocks_text(recycle_view["blocks"])
    values = {"reason": select_state("no_response"), "revisit_on": date_state("2031-01-15")}
    short = _submit(live, "UREP1", recycle_view, {**values, "note": text_state(None)})
    assert short.json() == {
        "response_action": "errors",
        "errors": {
            "reason": "Log at least 8 touches in 14 days before recycling for "
            "\u201cNo response\u201d (1 so far)."
        },
    }
    values["reason"] = select_state("timing")
    assert not _submit(
        live, "UREP1", recycle_view, {**values, "note": text_state(None)}
    ).content.strip()
    shown = blocks_text(live.fake.wait_for("chat.update", count=3)[2].params["blocks"])
    assert "Recycled" in shown
    assert "lead_log_touch" not in shown
    assert len(crm.tasks) == 1
