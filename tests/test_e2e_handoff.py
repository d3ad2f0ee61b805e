"""End to end over HTTP: intake -> card in #revenue-pipeline -> Accept / Reject / Recycle -> CRM."""

from __future__ import annotations

import threading
from typing import Any

from sqlmodel import Session, select

from bot.core.models import LocalCrmRecord, MqlCycle
from tests.conftest import Live, blocks_text, lead_json, wait_until
from tests.fakes.slack_payloads import (
    block_action_payload,
    date_state,
    select_state,
    text_state,
    view_submission_payload,
)


def _card(live: Live) -> dict[str, Any]:
    rec = live.fake.wait_for("chat.postMessage")[0]
    return rec.params


def _cycle_id(card: dict[str, Any]) -> int:
    return int(card["metadata"]["event_payload"]["cycle_id"])


def _click(live: Live, user: str, action: str, cycle_id: int, *, response_key: str = "r1") -> Any:
    payload = block_action_payload(
        user_id=user,
        action_id=action,
        value=str(cycle_id),
        response_url=live.fake.response_url(response_key),
    )
    return live.slack(payload)


def _record(live: Live, lead_id: int) -> LocalCrmRecord | None:
    with Session(live.services.engine) as session:
        return session.get(LocalCrmRecord, lead_id)


def test_intake_posts_a_card_then_accept_updates_it_in_place_and_writes_the_crm(live: Live) -> None:
    response = live.intake(lead_json())
    assert response.status_code == 202
    result = response.json()["results"][0]
    assert result["status"] == "created"

    card = _card(live)
    assert card["channel"] == "#revenue-pipeline"
    text = blocks_text(card["blocks"])
    for expected in (
        "Ana Diaz",
        "VP Operations",
        "Acme Health",
        "450 employees",
        "Healthcare",
        "Webinar",
        "2026 Planning Kit",
        "demo request",
        "ROI calculator",
        "Hot",
        "87",
        "<!date^",
    ):
        assert expected in text, expected
    assert "ana@acme.example" not in text + card["text"]
    assert "555 0100" not in text + card["text"]
    actions = next(b for b in card["blocks"] if b["type"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == [
        "lead_accept",
        "lead_reject",
        "lead_recycle",
    ]

    cycle_id = _cycle_id(card)
    assert _click(live, "UREP1", "lead_accept", cycle_id).status_code == 200
    update = live.fake.wait_for("chat.update")[0].params
    assert update["ts"] == live.fake.messages("#revenue-pipeline")[0]["ts"]
    assert "Accepted" in blocks_text(update["blocks"])
    assert "<@UREP1>" in blocks_text(update["blocks"])
    assert "lead_accept" not in blocks_text(update["blocks"])

    record = wait_until(lambda: _record(live, result["lead_id"]), what="the CRM write")
    assert record.status == "Working"
    assert record.owner == "ana@example.com"


def test_second_clicker_is_told_who_has_the_lead(live: Live) -> None:
    live.intake(lead_json())
    cycle_id = _cycle_id(_card(live))
    _click(live, "UREP1", "lead_accept", cycle_id, response_key="first")
    live.fake.wait_for("chat.update")
    _click(live, "UREP2", "lead_accept", cycle_id, response_key="second")
    reply = live.fake.wait_for("response_url")[0]
    assert reply.path.endswith("second")
    assert reply.params["response_type"] == "ephemeral"
    assert "already accepted by <@UREP1>" in reply.params["text"]


def test_concurrent_accepts_have_exactly_one_winner(live: Live) -> None:
    live.intake(lead_json())
    cycle_id = _cycle_id(_card(live))
    users = ["UREP1", "UREP2", "UMGR1", "UREP1", "UREP2"]
    threads = [
        threading.Thread(
            target=_click,
            args=(live, user, "lead_accept", cycle_id),
            kwargs={"response_key": f"k{i}"},
        )
        for i, user in enumerate(users)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    live.fake.wait_for("response_url", count=4)
    with Session(live.services.engine) as session:
        cycle = session.get(MqlCycle, cycle_id)
        assert cycle is not None
        assert cycle.state == "accepted"
        assert cycle.version == 2
    winner = cycle.accepted_by
    texts = [r.params["text"] for r in live.fake.calls("response_url")]
    assert len(texts) == 4
    assert all("already accepted" in t for t in texts)
    assert all(f"<@{winner}>" in t or "by you" in t for t in texts)


def test_reject_needs_a_reason_and_context_then_updates_the_card_and_crm(live: Live) -> None:
    result = live.intake(lead_json()).json()["results"][0]
    cycle_id = _cycle_id(_card(live))
    _click(live, "UREP2", "lead_reject", cycle_id)
    opened = live.fake.wait_for("views.open")[0].params
    view = opened["view"]
    assert view["callback_id"] == "lead_reject_modal"
    reason_block = next(b for b in view["blocks"] if b.get("block_id") == "reason")
    assert [o["value"] for o in reason_block["element"]["options"]] == ["not_icp", "bad_contact"]

    empty = view_submission_payload(
        user_id="UREP2",
        callback_id="lead_reject_modal",
        private_metadata=view["private_metadata"],
        values={"reason": {"value": select_state(None)}, "note": {"value": text_state("   ")}},
    )
    answer = live.slack(empty)
    assert answer.status_code == 200
    assert answer.json()["response_action"] == "errors"
    assert set(answer.json()["errors"]) == {"reason", "note"}
    with Session(live.services.engine) as session:
        assert session.get(MqlCycle, cycle_id).state == "open"  # type: ignore[union-attr]

    good = view_submission_payload(
        user_id="UREP2",
        callback_id="lead_reject_modal",
        private_metadata=view["private_metadata"],
        values={
            "reason": {"value": select_state("not_icp")},
            "note": {"value": text_state("Student project, no budget.")},
        },
    )
    answer = live.slack(good)
    assert answer.status_code == 200
    assert not answer.content.strip()
    update = live.fake.wait_for("chat.update")[0].params
    shown = blocks_text(update["blocks"])
    assert "Rejected" in shown
    assert "Not our ICP" in shown
    assert "Student project" in shown
    assert "lead_reject" not in shown
    record = wait_until(lambda: _record(live, result["lead_id"]), what="the CRM write")
    assert (record.status, record.reason, record.note) == (
        "Disqualified",
        "Not ICP",
        "Student project, no budget.",
    )


def test_recycle_needs_a_future_revisit_date(live: Live) -> None:
    result = live.intake(lead_json()).json()["results"][0]
    cycle_id = _cycle_id(_card(live))
    _click(live, "UREP1", "lead_recycle", cycle_id)
    view = live.fake.wait_for("views.open")[0].params["view"]
    assert view["callback_id"] == "lead_recycle_modal"

    def submit(revisit: str | None) -> Any:
        return live.slack(
            view_submission_payload(
                user_id="UREP1",
                callback_id="lead_recycle_modal",
                private_metadata=view["private_metadata"],
                values={
                    "reason": {"value": select_state("timing")},
                    "revisit_on": {"value": date_state(revisit)},
                    "note": {"value": text_state(None)},
                },
            )
        )

    missing = submit(None).json()
    assert missing["response_action"] == "errors"
    assert set(missing["errors"]) == {"revisit_on"}
    past = submit("2020-01-01").json()
    assert "future" in past["errors"]["revisit_on"]
    assert not submit("2031-01-15").content.strip()
    shown = blocks_text(live.fake.wait_for("chat.update")[0].params["blocks"])
    assert "Recycled" in shown
    assert "2031-01-15" in shown
    record = wait_until(lambda: _record(live, result["lead_id"]), what="the CRM write")
    assert (record.status, record.reason, str(record.revisit_on)) == (
        "Recycled",
        "Timing",
        "2031-01-15",
    )


def test_duplicate_intake_makes_one_card(live: Live) -> None:
    first = live.intake(lead_json()).json()["results"][0]
    second = live.intake({"leads": [lead_json(), lead_json()]}).json()["results"]
    assert first["status"] == "created"
    assert [r["status"] for r in second] == ["duplicate", "duplicate"]
    assert {r["lead_id"] for r in second} == {first["lead_id"]}
    live.fake.wait_for("chat.postMessage")
    live.services.notify()
    wait_until(lambda: _outbox_idle(live), what="the outbox to drain")
    assert len(live.fake.calls("chat.postMessage")) == 1


def _outbox_idle(live: Live) -> bool:
    from bot.core.models import OutboxMessage

    with Session(live.services.engine) as session:
        return not session.exec(select(OutboxMessage).where(OutboxMessage.state != "done")).first()


def test_outsiders_and_stale_cards_get_an_ephemeral_explanation(live: Live) -> None:
    live.intake(lead_json())
    cycle_id = _cycle_id(_card(live))
    _click(live, "UOUTSIDER", "lead_accept", cycle_id, response_key="outsider")
    _click(live, "UREP1", "lead_accept", 99999, response_key="unknown")
    replies = {
        r.path.rsplit("/", 1)[-1]: r.params["text"]
        for r in live.fake.wait_for("response_url", count=2)
    }
    assert "Only members of the `sales` pool" in replies["outsider"]
    assert "no record of this lead" in replies["unknown"]
    with Session(live.services.engine) as session:
        assert session.get(MqlCycle, cycle_id).state == "open"  # type: ignore[union-attr]


def test_forged_and_stale_signatures_are_refused(live: Live) -> None:
    live.intake(lead_json())
    cycle_id = _cycle_id(_card(live))
    payload = block_action_payload(user_id="UREP1", action_id="lead_accept", value=str(cycle_id))
    assert live.slack(payload, secret="not-the-secret").status_code == 401
    assert live.slack(payload, timestamp=1_600_000_000).status_code == 401
    with Session(live.services.engine) as session:
        assert session.get(MqlCycle, cycle_id).state == "open"  # type: ignore[union-attr]
    assert live.fake.calls("response_url") == []


def test_racing_rejects_save_one_and_tell_the_other_inline_or_by_dm(live: Live) -> None:
    cycle_ids = []
    for i in range(5):
        live.intake(lead_json(f"L-RACE-{i}", email=f"race{i}@acme.example"))
        cycle_ids.append(_cycle_id(live.fake.wait_for("chat.postMessage", count=i + 1)[i].params))
    answers: dict[tuple[int, str], Any] = {}

    def reject(cycle_id: int, user: str) -> None:
        payload = view_submission_payload(
            user_id=user,
            callback_id="lead_reject_modal",
            private_metadata=f'{{"cycle_id": {cycle_id}}}',
            values={
                "reason": {"value": select_state("not_icp")},
                "note": {"value": text_state(f"Not a fit ({user}).")},
            },
            view_id=f"V{cycle_id}{user}",
        )
        answers[(cycle_id, user)] = live.slack(payload)

    for cycle_id in cycle_ids:
        racers = [threading.Thread(target=reject, args=(cycle_id, u)) for u in ("UREP1", "UREP2")]
        for t in racers:
            t.start()
        for t in racers:
            t.join()

    def saved() -> bool:
        # Each form is acked before its save, so the saves land after the answers.
        with Session(live.services.engine) as session:
            states = [session.get(MqlCycle, c).state for c in cycle_ids]  # type: ignore[union-attr]
        return all(state == "rejected" for state in states)

    wait_until(saved, what="one save per card")

    def told_by_dm(user: str) -> list[str]:
        return [
            str(r.params["text"])
            for r in live.fake.calls("chat.postMessage")
            if r.params.get("channel") == user and "was not saved" in str(r.params.get("text"))
        ]

    for cycle_id in cycle_ids:
        with Session(live.services.engine) as session:
            cycle = session.get(MqlCycle, cycle_id)
            assert cycle is not None
        assert (cycle.state, cycle.version) == ("rejected", 2)
        loser = "UREP2" if cycle.closed_by == "UREP1" else "UREP1"
        assert f"({cycle.closed_by})" in (cycle.note or "")
        assert not answers[(cycle_id, cycle.closed_by)].content.strip()
        inline = answers[(cycle_id, loser)].content.strip()
        if inline:
            assert "already rejected" in answers[(cycle_id, loser)].json()["errors"]["reason"]
    inline_losers = sum(
        1
        for cycle_id in cycle_ids
        for user in ("UREP1", "UREP2")
        if answers[(cycle_id, user)].content.strip()
    )
    expected_dms = len(cycle_ids) - inline_losers

    def all_dms() -> list[str]:
        return told_by_dm("UREP1") + told_by_dm("UREP2")

    if expected_dms:
        wait_until(lambda: len(all_dms()) >= expected_dms, what="a DM to each loser")
    assert len(all_dms()) == expected_dms, "each loser is told exactly once"
    assert all("already rejected" in text for text in all_dms())
