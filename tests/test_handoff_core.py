"""The handoff state machine: accept (first click wins), reject and recycle, who may act, outbox."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlmodel import col, select

from bot.core import db, handoff, outbox
from bot.core.handoff import HandoffRefused, InvalidDisposition
from bot.core.intake import LeadIn, ingest, validate_lead
from bot.core.models import MqlCycle, OutboxMessage
from bot.core.playbook import Playbook, load_playbook
from tests.conftest import FrozenClock, lead_json, team_playbook

NOTE = "Student email, no company behind it."


def new_cycle(
    engine: Any, playbook: Playbook, now: datetime, external_id: str = "L-1001", **fields: Any
) -> int:
    """Ingest a lead; its first cycle's id."""
    lead = validate_lead(lead_json(external_id, **fields))
    assert isinstance(lead, LeadIn)
    with db.transaction(engine) as session:
        return ingest(session, lead, playbook=playbook, now=now).cycle_id


def accept(engine: Any, cycle_id: int, user: str, pb: Playbook, now: datetime) -> MqlCycle:
    with db.transaction(engine) as session:
        return handoff.accept(session, cycle_id, user, playbook=pb, now=now).cycle


def reject(
    engine: Any,
    cycle_id: int,
    user: str,
    pb: Playbook,
    now: datetime,
    *,
    reason: str | None = "not_icp",
    note: str | None = NOTE,
) -> MqlCycle:
    with db.transaction(engine) as session:
        return handoff.reject(
            session, cycle_id, user, reason_code=reason, note=note, playbook=pb, now=now
        ).cycle


def recycle(
    engine: Any,
    cycle_id: int,
    user: str,
    pb: Playbook,
    now: datetime,
    *,
    reason: str | None = "timing",
    revisit_on: date | None = date(2027, 3, 1),
    note: str | None = None,
) -> MqlCycle:
    with db.transaction(engine) as session:
        return handoff.recycle(
            session,
            cycle_id,
            user,
            reason_code=reason,
            revisit_on=revisit_on,
            note=note,
            playbook=pb,
            now=now,
        ).cycle


def cycle(engine: Any, cycle_id: int) -> MqlCycle:
    with db.transaction(engine) as session:
        found = session.get(MqlCycle, cycle_id)
        assert found is not None
        return found


def rows(engine: Any, kind: str) -> list[OutboxMessage]:
    with db.transaction(engine) as session:
        query = select(OutboxMessage).where(OutboxMessage.kind == kind)
        return list(session.exec(query.order_by(col(OutboxMessage.id))).all())


def refused(action: Any, *args: Any, **kwargs: Any) -> str:
    """Run a handoff action that must be refused; the message the user would read."""
    with pytest.raises(HandoffRefused) as caught:
        action(*args, **kwargs)
    return caught.value.message


# --- accept ----------------------------------------------------------------------------------


def test_a_pool_member_accepts_a_claim_mode_lead(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook("claim")
    cid = new_cycle(engine, pb, clock.now)
    assert rows(engine, outbox.CRM_SYNC) == []
    accepted_at = clock.advance(minutes=2, seconds=14)
    returned = accept(engine, cid, "UREP2", pb, accepted_at)
    assert returned.state == "accepted"

    stored = cycle(engine, cid)
    assert stored.state == "accepted"
    assert stored.accepted_by == "UREP2"
    assert stored.accepted_at == accepted_at
    assert stored.owner_slack_id == "UREP2"
    assert stored.version == 2
    assert stored.closed_at is None
    assert stored.first_response_at == accepted_at

    [refresh] = rows(engine, outbox.SLACK_REFRESH)
    assert refresh.dedupe_key == f"refresh:{cid}:v2"
    assert refresh.lane == outbox.REFRESH_LANE
    assert refresh.priority == outbox.PRIORITY_FEEDBACK
    assert refresh.payload == {"cycle_id": cid}
    [crm] = rows(engine, outbox.CRM_SYNC)
    assert crm.lane == outbox.CRM_LANE
    assert crm.payload == {"lead_id": stored.lead_id}
    assert crm.dedupe_key == f"crm:{stored.lead_id}:{cid}:v2"


def test_a_second_accept_is_refused_naming_who_has_it(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook("claim")
    cid = new_cycle(engine, pb, clock.now)
    accept(engine, cid, "UREP1", pb, clock.now)
    message = refused(accept, engine, cid, "UREP2", pb, clock.now)
    assert message == "This lead was already accepted by <@UREP1>."
    assert refused(accept, engine, cid, "UREP1", pb, clock.now) == (
        "This lead was already accepted by you."
    )
    assert cycle(engine, cid).version == 2
    assert len(rows(engine, outbox.SLACK_REFRESH)) == 1


def test_eight_concurrent_accepts_have_exactly_one_winner(engine: Any, clock: FrozenClock) -> None:
    pb = load_playbook(None)  # an open pool: anyone may claim
    cid = new_cycle(engine, pb, clock.now)
    users = [f"UCLICK{i}" for i in range(8)]
    start = threading.Barrier(len(users))
    winners: list[str] = []
    refusals: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def click(user: str) -> None:
        try:
            start.wait()
            accept(engine, cid, user, pb, clock.now)
            with lock:
                winners.append(user)
        except HandoffRefused as exc:
            with lock:
                refusals.append(exc.message)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=click, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(winners) == 1
    assert len(refusals) == 7
    assert all(m == f"This lead was already accepted by <@{winners[0]}>." for m in refusals)
    stored = cycle(engine, cid)
    assert (stored.accepted_by, stored.owner_slack_id, stored.version) == (
        winners[0],
        winners[0],
        2,
    )
    assert len(rows(engine, outbox.SLACK_REFRESH)) == 1
    assert len(rows(engine, outbox.CRM_SYNC)) == 1


def test_someone_outside_the_pool_is_refused(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook("claim")
    cid = new_cycle(engine, pb, clock.now)
    message = refused(accept, engine, cid, "UOUTSIDER", pb, clock.now)
    assert "Only members of the `sales` pool" in message
    assert "Only members of the `sales` pool" in refused(
        accept, engine, cid, "UMGR2", pb, clock.now
    )
    assert "Only members of the `sales` pool" in refused(
        reject, engine, cid, "UREP3", pb, clock.now
    )
    assert cycle(engine, cid).state == "open"
    assert rows(engine, outbox.SLACK_REFRESH) == []


def test_the_pool_manager_may_accept(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook("claim")
    cid = new_cycle(engine, pb, clock.now)
    assert accept(engine, cid, "UMGR1", pb, clock.now).owner_slack_id == "UMGR1"


def test_an_unknown_cycle_is_refused(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook("claim")
    assert "no record of this lead" in refused(accept, engine, 999, "UREP1", pb, clock.now)


# --- who may act in assign mode ------------------------------------------------------------


def test_in_assign_mode_only_the_owner_or_manager_may_act(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook("assign")
    cid = new_cycle(engine, pb, clock.now)
    assert cycle(engine, cid).owner_slack_id == "UREP1"
    message = refused(accept, engine, cid, "UREP2", pb, clock.now)
    assert message.startswith("This lead is assigned to <@UREP1>")
    assert "assigned to <@UREP1>" in refused(reject, engine, cid, "UREP2", pb, clock.now)
    assert "assigned to <@UREP1>" in refused(recycle, engine, cid, "UREP2", pb, clock.now)
    accepted = accept(engine, cid, "UREP1", pb, clock.now)
    assert (accepted.accepted_by, accepted.owner_slack_id) == ("UREP1", "UREP1")


def test_in_assign_mode_the_manager_may_reject_before_anyone_accepts(
    engine: Any, clock: FrozenClock
) -> None:
    pb = team_playbook("assign")
    cid = new_cycle(engine, pb, clock.now)
    closed = reject(engine, cid, "UMGR1", pb, clock.now)
    assert closed.state == "rejected"
    assert closed.closed_by == "UMGR1"
    assert closed.owner_slack_id == "UREP1"


def test_after_accept_only_the_owner_or_manager_may_reject_or_recycle(
    engine: Any, clock: FrozenClock
) -> None:
    pb = team_playbook("claim")
    first = new_cycle(engine, pb, clock.now, "L-1")
    second = new_cycle(engine, pb, clock.now, "L-2")
    accept(engine, first, "UREP1", pb, clock.now)
    accept(engine, second, "UREP1", pb, clock.now)
    message = refused(reject, engine, first, "UREP2", pb, clock.now)
    assert message.startswith("This lead belongs to <@UREP1>")
    assert "belongs to <@UREP1>" in refused(recycle, engine, first, "UREP2", pb, clock.now)

    by_owner = reject(engine, first, "UREP1", pb, clock.advance(hours=1))
    assert (by_owner.state, by_owner.closed_by, by_owner.owner_slack_id) == (
        "rejected",
        "UREP1",
        "UREP1",
    )
    by_manager = recycle(engine, second, "UMGR1", pb, clock.now)
    assert (by_manager.state, by_manager.closed_by, by_manager.owner_slack_id) == (
        "recycled",
        "UMGR1",
        "UREP1",
    )


def test_a_closed_lead_refuses_everything(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook("claim")
    cid = new_cycle(engine, pb, clock.now)
    reject(engine, cid, "UREP2", pb, clock.now)
    for user in ("UREP1", "UREP2", "UMGR1"):
        for action in (accept, reject, recycle):
            message = refused(action, engine, cid, user, pb, clock.now)
            assert "already rejected by" in message
            assert "closed" in message
    assert refused(accept, engine, cid, "UREP1", pb, clock.now) == (
        "This lead was already rejected by <@UREP2>; it is closed."
    )
    assert refused(accept, engine, cid, "UREP2", pb, clock.now) == (
        "This lead was already rejected by you; it is closed."
    )
    assert cycle(engine, cid).version == 2


def test_a_recycled_lead_refuses_everything(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook("claim")
    cid = new_cycle(engine, pb, clock.now)
    recycle(engine, cid, "UREP1", pb, clock.now)
    assert refused(accept, engine, cid, "UMGR1", pb, clock.now) == (
        "This lead was already recycled by <@UREP1>; it is closed."
    )


# --- reject and recycle ----------------------------------------------------------------------


def test_reject_records_the_reason_and_note(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook("claim")
    cid = new_cycle(engine, pb, clock.now)
    when = clock.advance(minutes=7)
    reject(engine, cid, "UREP1", pb, when, reason="bad_contact", note=f"  {NOTE}  ")
    stored = cycle(engine, cid)
    assert stored.state == "rejected"
    assert stored.closed_by == "UREP1"
    assert stored.closed_at == when
    assert stored.first_response_at == when
    assert stored.accepted_at is None
    assert stored.reason_code == "bad_contact"
    assert stored.note == NOTE
    assert stored.revisit_on is None
    assert stored.owner_slack_id == "UREP1"
    assert stored.version == 2
    assert [r.dedupe_key for r in rows(engine, outbox.SLACK_REFRESH)] == [f"refresh:{cid}:v2"]
    assert len(rows(engine, outbox.CRM_SYNC)) == 1


def test_recycle_records_the_reason_and_revisit_date(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook("claim")
    cid = new_cycle(engine, pb, clock.now)
    accept(engine, cid, "UREP1", pb, clock.now)
    recycle(engine, cid, "UREP1", pb, clock.now, reason="no_response", note="   ")
    stored = cycle(engine, cid)
    assert stored.state == "recycled"
    assert stored.reason_code == "no_response"
    assert stored.revisit_on == date(2027, 3, 1)
    assert stored.note is None
    assert stored.accepted_by == "UREP1"
    assert stored.version == 3
    assert [r.dedupe_key for r in rows(engine, outbox.SLACK_REFRESH)] == [
        f"refresh:{cid}:v2",
        f"refresh:{cid}:v3",
    ]


def test_reason_codes_are_checked_per_kind() -> None:
    pb = team_playbook("claim")
    assert handoff.validate_reject(pb, "timing", NOTE) == {
        "reason": "Pick a reason for rejecting this lead."
    }
    assert handoff.validate_recycle(pb, "not_icp", date(2027, 1, 1), None, today=date(2026, 1, 1))
    assert handoff.validate_reject(pb, "not_icp", NOTE) == {}
    assert (
        handoff.validate_recycle(pb, "timing", date(2027, 1, 1), None, today=date(2026, 1, 1)) == {}
    )


@pytest.mark.parametrize(
    ("reason", "note", "fields"),
    [
        (None, NOTE, {"reason"}),
        ("", NOTE, {"reason"}),
        ("nonsense", NOTE, {"reason"}),
        ("not_icp", None, {"note"}),
        ("not_icp", "", {"note"}),
        ("not_icp", " \n\t ", {"note"}),
        ("not_icp", "x" * 501, {"note"}),
        ("nonsense", "", {"reason", "note"}),
    ],
)
def test_validate_reject_errors(reason: str | None, note: str | None, fields: set[str]) -> None:
    assert set(handoff.validate_reject(team_playbook(), reason, note)) == fields


def test_a_note_of_exactly_500_characters_is_fine() -> None:
    pb = team_playbook()
    assert handoff.validate_reject(pb, "not_icp", "x" * 500) == {}
    assert handoff.validate_reject(pb, "not_icp", f"  {'x' * 500}  ") == {}
    assert "500" in handoff.validate_reject(pb, "not_icp", "x" * 501)["note"]


@pytest.mark.parametrize(
    ("revisit_on", "note", "fields"),
    [
        (date(2026, 11, 24), None, set()),
        (date(2026, 11, 23), None, {"revisit_on"}),
        (date(2026, 1, 1), None, {"revisit_on"}),
        (None, None, {"revisit_on"}),
        (date(2026, 12, 1), "x" * 501, {"note"}),
        (date(2026, 12, 1), "", set()),
    ],
)
def test_validate_recycle_errors(
    revisit_on: date | None, note: str | None, fields: set[str]
) -> None:
    errors = handoff.validate_recycle(
        team_playbook(), "timing", revisit_on, note, today=date(2026, 11, 23)
    )
    assert set(errors) == fields


def test_invalid_reject_names_the_modal_blocks_and_changes_nothing(
    engine: Any, clock: FrozenClock
) -> None:
    pb = team_playbook("claim")
    cid = new_cycle(engine, pb, clock.now)
    with pytest.raises(InvalidDisposition) as caught:
        reject(engine, cid, "UREP1", pb, clock.now, reason="nonsense", note=" ")
    assert set(caught.value.errors) == {"reason", "note"}
    assert "reason:" in str(caught.value)
    assert cycle(engine, cid).state == "open"
    assert rows(engine, outbox.SLACK_REFRESH) == []


def test_invalid_recycle_names_the_modal_blocks(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook("claim")
    cid = new_cycle(engine, pb, clock.now)
    with pytest.raises(InvalidDisposition) as caught:
        recycle(engine, cid, "UREP1", pb, clock.now, reason=None, revisit_on=None, note="x" * 600)
    assert set(caught.value.errors) == {"reason", "revisit_on", "note"}
    assert cycle(engine, cid).state == "open"


def test_recycle_today_is_the_playbook_timezone_date(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook("claim")  # America/New_York
    # 03:00 UTC on the 24th is still 22:00 on the 23rd in New York.
    now = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    first = new_cycle(engine, pb, now, "L-1")
    second = new_cycle(engine, pb, now, "L-2")

    with pytest.raises(InvalidDisposition) as caught:
        recycle(engine, first, "UREP1", pb, now, revisit_on=date(2026, 11, 23))
    assert set(caught.value.errors) == {"revisit_on"}

    done = recycle(engine, second, "UREP1", pb, now, revisit_on=date(2026, 11, 24))
    assert done.state == "recycled"
    assert done.revisit_on == date(2026, 11, 24)


def test_recycle_today_in_a_timezone_ahead_of_utc(engine: Any, clock: FrozenClock) -> None:
    pb = load_playbook(None).model_copy(update={"timezone": "Asia/Tokyo"})
    # 20:00 UTC on the 23rd is already 05:00 on the 24th in Tokyo.
    now = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
    cid = new_cycle(engine, pb, now)
    with pytest.raises(InvalidDisposition):
        recycle(engine, cid, "UANY1", pb, now, revisit_on=date(2026, 11, 24))
    assert recycle(engine, cid, "UANY1", pb, now, revisit_on=date(2026, 11, 25)).state == "recycled"


# --- CRM sync coalescing -----------------------------------------------------------------------


def test_changes_while_a_crm_sync_is_pending_share_one_row(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook("claim")
    cid = new_cycle(engine, pb, clock.now)
    accept(engine, cid, "UREP1", pb, clock.now)
    reject(engine, cid, "UREP1", pb, clock.advance(minutes=1))
    [crm] = rows(engine, outbox.CRM_SYNC)
    assert crm.state == outbox.PENDING
    assert len(rows(engine, outbox.SLACK_REFRESH)) == 2


def test_assign_mode_intake_sync_absorbs_the_accept(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook("assign")
    cid = new_cycle(engine, pb, clock.now)
    accept(engine, cid, "UREP1", pb, clock.now)
    recycle(engine, cid, "UREP1", pb, clock.now)
    assert len(rows(engine, outbox.CRM_SYNC)) == 1


def test_a_change_after_the_sync_was_picked_up_queues_a_new_one(
    engine: Any, clock: FrozenClock
) -> None:
    pb = team_playbook("claim")
    cid = new_cycle(engine, pb, clock.now)
    accept(engine, cid, "UREP1", pb, clock.now)
    with db.transaction(engine) as session:
        [claimed] = outbox.claim(session, outbox.CRM_LANE, 10, now=clock.now)
    reject(engine, cid, "UREP1", pb, clock.advance(seconds=1))
    syncs = rows(engine, outbox.CRM_SYNC)
    assert [r.state for r in syncs] == [outbox.IN_FLIGHT, outbox.PENDING]
    assert syncs[0].id == claimed.id
    assert syncs[1].dedupe_key == f"crm:{syncs[1].payload['lead_id']}:{cid}:v3"


def test_latest_cycle(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook("claim")
    cid = new_cycle(engine, pb, clock.now)
    lead_id = cycle(engine, cid).lead_id
    with db.transaction(engine) as session:
        latest = handoff.latest_cycle(session, lead_id)
        assert latest is not None
        assert latest.id == cid
        assert handoff.latest_cycle(session, lead_id + 1000) is None


def test_check_close_raises_what_closing_would_and_writes_nothing(
    engine: Any, clock: FrozenClock
) -> None:
    pb = team_playbook("claim")
    cid = new_cycle(engine, pb, clock.now)
    bad_form = handoff.Close(handoff.REJECTED, "UREP1", "no_such_reason", "")
    outsider = handoff.Close(handoff.REJECTED, "UOUTSIDER", "not_icp", NOTE)
    good = handoff.Close(handoff.RECYCLED, "UREP1", "timing", None, date(2027, 3, 1))
    with db.transaction(engine) as session:
        with pytest.raises(InvalidDisposition) as invalid:
            handoff.check_close(session, cid, bad_form, playbook=pb, now=clock.now)
        assert set(invalid.value.errors) == {"reason", "note"}
        with pytest.raises(HandoffRefused, match="Only members of the `sales` pool"):
            handoff.check_close(session, cid, outsider, playbook=pb, now=clock.now)
        checked, lead = handoff.check_close(session, cid, good, playbook=pb, now=clock.now)
        assert (checked.id, lead.id) == (cid, checked.lead_id)
    assert (cycle(engine, cid).state, cycle(engine, cid).version) == ("open", 1)
    assert rows(engine, outbox.SLACK_REFRESH) == []


def test_already_done_is_true_only_for_the_same_close_by_the_same_user(
    engine: Any, clock: FrozenClock
) -> None:
    pb = team_playbook("claim")
    cid = new_cycle(engine, pb, clock.now)
    asked = handoff.Close(handoff.REJECTED, "UREP1", "not_icp", NOTE)
    with db.transaction(engine) as session:
        assert not handoff.already_done(session, cid, asked)
        handoff.close(session, cid, asked, playbook=pb, now=clock.now)
    with db.transaction(engine) as session:
        assert handoff.already_done(session, cid, asked)
        assert not handoff.already_done(
            session, cid, handoff.Close(handoff.REJECTED, "UREP2", "not_icp", NOTE)
        )
        assert not handoff.already_done(
            session, cid, handoff.Close(handoff.REJECTED, "UREP1", "bad_contact", NOTE)
        )
        assert not handoff.already_done(
            session, cid, handoff.Close(handoff.RECYCLED, "UREP1", "not_icp", None)
        )
        assert not handoff.already_done(session, 99999, asked)
