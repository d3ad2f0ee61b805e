"""CRM write-back fills its batches under load: a stream of clicks waits briefly for company, a
lone write never does, and no write waits longer than the fill window.

Accept clicks are handled as the listener does (one transaction each, at the clock's time) and
the outbox worker runs a round after each, as `services.notify()` wakes it; dispositions go to
the fake Salesforce through the real adapter (200 records a call). Time is the test's frozen
clock, moved a few milliseconds per click.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from bot.core import db, handoff, outbox
from bot.core.crm_intake import store_crm_leads
from bot.core.outbox import FILL_LULL, FILL_MIN_SHARE, FILL_WINDOW, Arrivals, streaming
from bot.services import Services
from jobs import outbox as outbox_job
from tests.conftest import FrozenClock, make_services, outbox_rows, team_playbook
from tests.fakes.salesforce_api import FakeSalesforce
from tests.fakes.salesforce_support import salesforce_crm, seed_mql

SALESFORCE_BATCH = 200
# Clicks needed within one window before a stream counts as heavy (20 for Salesforce).
HEAVY = math.ceil(SALESFORCE_BATCH * FILL_MIN_SHARE)


@pytest.fixture
def fake(clock: FrozenClock) -> Iterator[FakeSalesforce]:
    """A running fake org whose record timestamps follow the test clock."""
    with FakeSalesforce(clock=clock) as server:
        server.seed("User", Name="Ana Diaz", Email="ana@example.com", IsActive=True)
        yield server


def _revbot(
    engine: Any, database_url: str, fake: FakeSalesforce, clock: FrozenClock, leads: int
) -> tuple[Services, list[int]]:
    """Services on the fake Salesforce, with `leads` of its MQLs stored; returns their cycles."""
    playbook = team_playbook()
    crm = salesforce_crm(fake, playbook, clock)
    ids = seed_mql(fake, leads)
    with db.transaction(engine) as session:
        summary = store_crm_leads(
            session, "salesforce", crm.fetch_mqls(ids), playbook=playbook, now=clock()
        )
    cycles = [r.cycle_id for r in summary.results if r.cycle_id is not None]
    assert len(cycles) == leads
    services = make_services(engine, database_url, None, playbook=playbook, clock=clock, crm=crm)
    clock.advance(minutes=1)
    return services, cycles


def _round(services: Services, clock: FrozenClock) -> int:
    """One worker round at the clock's time (CRM lanes only: there is no Slack here)."""
    return outbox_job.run(services, now=clock(), slack=False)


def _click(services: Services, clock: FrozenClock, cycle_id: int) -> None:
    """Accept one lead as the listener does, then let the woken worker run a round."""
    with db.transaction(services.engine) as session:
        handoff.accept(session, cycle_id, "UREP1", playbook=services.playbook, now=clock())
    _round(services, clock)


def _stream(services: Services, clock: FrozenClock, cycles: list[int], gap: timedelta) -> None:
    for cycle_id in cycles:
        clock.advance(seconds=gap.total_seconds())
        _click(services, clock, cycle_id)


def _settle(services: Services, clock: FrozenClock, *, tick: timedelta, limit: int = 100) -> None:
    """Idle worker rounds a tick apart until every CRM write is done."""
    for _ in range(limit):
        if all(r.state == outbox.DONE for r in outbox_rows(services.engine, outbox.CRM_SYNC)):
            return
        clock.advance(seconds=tick.total_seconds())
        _round(services, clock)
    raise AssertionError("CRM writes were still waiting")


def _batches(fake: FakeSalesforce) -> list[int]:
    return [len(r.json["records"]) for r in fake.calls("PATCH", "/composite/sobjects")]


def _waits(engine: Any) -> list[timedelta]:
    """How long each disposition waited between falling due and going out."""
    rows = outbox_rows(engine, outbox.CRM_SYNC)
    assert all(r.completed_at is not None for r in rows)
    return [r.completed_at - r.due_at for r in rows if r.completed_at is not None]


def test_under_a_sustained_stream_batches_go_out_full(
    engine: Any, database_url: str, fake: FakeSalesforce, clock: FrozenClock
) -> None:
    """250 clicks a second for 2 s: once the stream is seen to be heavy, every batch is full."""
    services, cycles = _revbot(engine, database_url, fake, clock, 500)

    _stream(services, clock, cycles, timedelta(milliseconds=4))
    last_click = clock()
    _settle(services, clock, tick=timedelta(milliseconds=100))

    sizes = _batches(fake)
    assert sum(sizes) == 500
    # Until a tenth of a batch has arrived within a window, each click goes out as it comes.
    ramp = sizes[: HEAVY - 1]
    assert ramp == [1] * (HEAVY - 1)
    assert sizes[HEAVY - 1 : -1] == [SALESFORCE_BATCH] * 2
    # The remainder goes once the stream has paused, not at the end of its window.
    remainder = max(r.completed_at for r in outbox_rows(engine, outbox.CRM_SYNC))
    assert remainder is not None
    assert remainder - last_click <= FILL_LULL + timedelta(milliseconds=100)
    assert max(_waits(engine)) < FILL_WINDOW
    written = [
        w["id"] for r in fake.calls("PATCH", "/composite/sobjects") for w in r.json["records"]
    ]
    assert len(set(written)) == len(written) == 500


def test_a_lone_click_goes_out_at_once(
    engine: Any, database_url: str, fake: FakeSalesforce, clock: FrozenClock
) -> None:
    """A single click (at night, say) is written in the round that follows it."""
    services, cycles = _revbot(engine, database_url, fake, clock, 1)

    _click(services, clock, cycles[0])

    assert _batches(fake) == [1]
    assert _waits(engine) == [timedelta(0)]


def test_a_few_clicks_a_second_never_wait(
    engine: Any, database_url: str, fake: FakeSalesforce, clock: FrozenClock
) -> None:
    """Five clicks a second (healthy traffic) each go out in the round right after the click."""
    services, cycles = _revbot(engine, database_url, fake, clock, 15)

    _stream(services, clock, cycles, timedelta(milliseconds=200))

    assert _batches(fake) == [1] * 15
    assert set(_waits(engine)) == {timedelta(0)}


def test_a_partial_batch_never_waits_beyond_the_window(
    engine: Any, database_url: str, fake: FakeSalesforce, clock: FrozenClock
) -> None:
    """40 clicks a second is heavy but fills no 200-record batch in a window: each batch waits
    out the window from its oldest write, then goes partial."""
    gap = timedelta(milliseconds=25)
    services, cycles = _revbot(engine, database_url, fake, clock, 160)

    _stream(services, clock, cycles, gap)
    _settle(services, clock, tick=gap)

    sizes = _batches(fake)
    held = sizes[HEAVY - 1 :]
    assert sum(sizes) == 160
    assert max(sizes) < SALESFORCE_BATCH
    # About a window's worth of clicks (40) rides each call once the stream is heavy.
    assert all(size >= 35 for size in held[:-1]), sizes
    assert max(_waits(engine)) <= FILL_WINDOW


def test_rows_written_together_go_out_at_once(
    engine: Any, database_url: str, fake: FakeSalesforce, clock: FrozenClock
) -> None:
    """A bulk change commits its rows at one instant: that is no stream, so nothing waits."""
    services, cycles = _revbot(engine, database_url, fake, clock, 250)
    with db.transaction(engine) as session:
        for cycle_id in cycles:
            handoff.accept(session, cycle_id, "UREP1", playbook=services.playbook, now=clock())

    _round(services, clock)
    _round(services, clock)

    assert _batches(fake) == [SALESFORCE_BATCH, 50]


@pytest.mark.parametrize(
    ("count", "first_ms", "last_ms", "expected"),
    [
        (HEAVY, 0, 900, True),  # a tenth of a batch within the window, the last just now
        (HEAVY - 1, 0, 900, False),  # fewer: traffic is light, nothing waits
        (HEAVY, 900, 900, False),  # one instant: a bulk change, not a stream
        (HEAVY, 0, 600, False),  # none for 300 ms: the stream has ended
    ],
)
def test_streaming_needs_a_heavy_live_stream(
    clock: FrozenClock, count: int, first_ms: int, last_ms: int, expected: bool
) -> None:
    start = clock() - FILL_WINDOW
    recent = Arrivals(
        count, start + timedelta(milliseconds=first_ms), start + timedelta(milliseconds=last_ms)
    )
    assert streaming(recent, SALESFORCE_BATCH, now=clock()) is expected
