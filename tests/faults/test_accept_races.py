"""Five reps click Accept on the same card at once, for 200 cards: exactly one winner each."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter

import pytest
from sqlmodel import Session, select

from bot.core.models import MqlCycle, OutboxMessage, SlackMessage
from bot.views.lead_card import ACCEPT
from tests.conftest import Live, lead_json, wait_until
from tests.fakes.slack_payloads import block_action_payload

from .conftest import PIPELINE, RACERS, card_text, post_signed

LEADS = 200
BATCH = 50  # under the flood threshold, so every lead gets a card of its own


def _store_leads(live: Live) -> None:
    for start in range(0, LEADS, BATCH):
        batch = [
            lead_json(f"R-{i}", email=f"racer{i}@acme.example", score=90)
            for i in range(start, start + BATCH)
        ]
        assert live.intake({"leads": batch}).status_code == 202
        wait_until(
            lambda n=start + BATCH: len(_cards(live)) >= n,  # posted, and recorded as posted
            timeout=30,
            what=f"{start + BATCH} cards",
        )


def _cards(live: Live) -> dict[int, str]:
    with Session(live.services.engine) as session:
        rows = session.exec(select(SlackMessage).where(SlackMessage.role == "card")).all()
        return {row.cycle_id: row.ts for row in rows}


def _race(live: Live, cycle_id: int, ts: str) -> tuple[list[int], float]:
    """Five signed Accept clicks released together; returns their statuses and the send spread."""
    barrier = threading.Barrier(len(RACERS))
    statuses: list[int] = []
    sent_at: list[float] = []

    def click(user: str) -> None:
        payload = block_action_payload(
            user_id=user,
            action_id=ACCEPT,
            value=str(cycle_id),
            channel_id=PIPELINE,
            message_ts=ts,
            response_url=live.fake.response_url(f"c{cycle_id}-{user}"),
            trigger_id=f"trig-{cycle_id}-{user}",
        )
        barrier.wait()
        sent_at.append(time.monotonic())
        statuses.append(post_signed(live.url, payload).status_code)

    threads = [threading.Thread(target=click, args=(user,)) for user in RACERS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return statuses, max(sent_at) - min(sent_at)


def _told(live: Live) -> dict[tuple[int, str], list[str]]:
    told: dict[tuple[int, str], list[str]] = {}
    for call in live.fake.calls("response_url"):
        cycle, user = call.path.removeprefix("/response/c").split("-")
        told.setdefault((int(cycle), user), []).append(str(call.params.get("text")))
    return told


@pytest.mark.slow
def test_five_simultaneous_accepts_on_200_cards_have_exactly_one_winner_each(
    fast_live: Live,
) -> None:
    live = fast_live
    _store_leads(live)
    cards = _cards(live)
    assert len(cards) == LEADS

    spreads = []
    for cycle_id, ts in cards.items():
        statuses, spread = _race(live, cycle_id, ts)
        assert statuses == [200] * len(RACERS)
        spreads.append(spread)
    # The clicks of a round leave together; the property is checked whatever the spread.
    assert statistics.median(spreads) < 0.05

    losers_told = len(cards) * (len(RACERS) - 1)
    wait_until(
        lambda: len(live.fake.calls("response_url")) >= losers_told,
        timeout=60,
        what="every loser told",
    )
    wait_until(
        lambda: len(live.fake.calls("chat.update")) >= len(cards), timeout=60, what="card updates"
    )
    time.sleep(0.5)  # anything extra (a second winner's update) would arrive by now

    with Session(live.services.engine) as session:
        cycles = {c.id: c for c in session.exec(select(MqlCycle)).all()}
        refreshes = Counter(
            int(row.payload["cycle_id"])
            for row in session.exec(
                select(OutboxMessage).where(OutboxMessage.kind == "slack.refresh")
            ).all()
        )
    winners = {cid: cycles[cid].accepted_by for cid in cards}
    assert all(c.state == "accepted" for c in cycles.values())
    assert all(w in RACERS and cycles[cid].owner_slack_id == w for cid, w in winners.items())
    assert all(cycles[cid].version == 2 for cid in cards)  # one state change per card
    assert refreshes == Counter(dict.fromkeys(cards, 1))

    updates = Counter(call.params["ts"] for call in live.fake.calls("chat.update"))
    assert updates == Counter(dict.fromkeys(cards.values(), 1))
    by_ts = {m["ts"]: m for m in live.fake.messages(PIPELINE)}
    for cycle_id, ts in cards.items():
        assert f"*Accepted* by <@{winners[cycle_id]}>" in card_text(by_ts[ts])

    told = _told(live)
    assert len(live.fake.calls("response_url")) == losers_told
    for cycle_id, winner in winners.items():
        assert (cycle_id, winner) not in told
        for user in RACERS:
            if user != winner:
                assert told[(cycle_id, user)] == [
                    f"This lead was already accepted by <@{winner}>."
                ], (cycle_id, user)
    assert Counter(winners.values()).total() == LEADS
