"""SLA chasing: nudge before the deadline, escalate at breach, reassign later, escalate limbo.

Every step is recorded in `sla_events`, unique on (cycle, kind, step), in the same transaction as
its outbox rows: a step another worker already took inserts nothing and is rolled back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.core import outbox
from bot.core.db import transaction
from bot.core.handoff import after_change
from bot.core.intake import routing_fields, tier_priority
from bot.core.models import OPEN, Lead, MqlCycle, SlaEvent
from bot.core.playbook import Playbook, Pool, Tier
from bot.core.routing import assign
from bot.core.sql import compare_and_set, insert_ignore

NUDGE = "nudge"
ESCALATE = "escalate"
REASSIGN = "reassign"
LIMBO = "limbo"
UNASSIGNED = "unassigned"
MAX_STEPS_PER_SWEEP = 8


@dataclass(frozen=True)
class Step:
    """One SLA step due for a cycle; `step` is the cycle's reassignment count (limbo: always 0)."""

    kind: str
    step: int


def due_steps(cycle: MqlCycle, tier: Tier, playbook: Playbook, now: datetime) -> list[Step]:
    """The SLA steps whose time has come for an open cycle, in the order they are taken."""
    if not cycle.is_open:
        return []
    step = cycle.reassignments
    steps: list[Step] = []
    assign_mode = playbook.routing.mode == "assign"
    breached = now >= cycle.sla_due_at
    if assign_mode and cycle.owner_slack_id is None:
        # Unassigned: every sweep tries to assign it again; the manager is told once.
        steps.append(Step(UNASSIGNED, step))
    else:
        due = cycle.sla_due_at
        if not breached and playbook.time_between(tier, now, due) <= tier.nudge_lead_time:
            steps.append(Step(NUDGE, step))
        if breached and _has_run(playbook, tier, due, tier.escalate_after, now):
            steps.append(Step(ESCALATE, step))
        if breached and assign_mode and _has_run(playbook, tier, due, tier.reassign_delay, now):
            steps.append(Step(REASSIGN, step))
    if now - cycle.received_at >= playbook.limbo_after:
        steps.append(Step(LIMBO, 0))
    return steps


def _has_run(
    playbook: Playbook, tier: Tier, start: datetime, span: timedelta, now: datetime
) -> bool:
    """True once `span` has run on the tier's clock since `start` (at once when it is zero)."""
    # Adding the span walks only the span's days; measuring from `start` would walk every day since.
    return span <= timedelta(0) or now >= playbook.deadline(tier, start, within=span)


@dataclass(frozen=True)
class Notice:
    """One SLA message to render: the step (`kind`), who reads it (`audience`), and the facts."""

    kind: str
    audience: str  # "owner" or "manager" (a DM), or "thread" (a line under the card)
    lead: Lead
    cycle: MqlCycle
    playbook: Playbook
    span: timedelta = timedelta(0)  # nudge: time left; escalate: overdue by; limbo: time waited
    manager: str | None = None
    previous_owner: str | None = None
    pool_members: tuple[str, ...] = ()
    reassign_in: timedelta | None = None


Render = Callable[[Notice], dict[str, Any]]


@dataclass
class SweepReport:
    """What one sweep did: how many steps of each kind it took."""

    taken: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        """Steps taken in all."""
        return sum(self.taken.values())


@dataclass(frozen=True)
class _Context:
    render: Render
    now: datetime
    done: set[tuple[int, str, int]]  # steps recorded before this sweep began
    tried: set[tuple[int, str, int]] = field(default_factory=set)  # attempted in this sweep


class _AlreadyTaken(Exception):
    """Another worker took this step (or changed the cycle) first: roll the transaction back."""


def sweep(engine: Engine, playbook: Playbook, render: Render, *, now: datetime) -> SweepReport:
    """Take every SLA step now due on open cycles, each in its own short transaction."""
    with transaction(engine) as session:
        cycles = list(
            session.exec(
                select(MqlCycle)
                .where(MqlCycle.state == OPEN)
                .order_by(col(MqlCycle.sla_due_at), col(MqlCycle.id))
            ).all()
        )
        done = set(
            session.exec(
                select(SlaEvent.cycle_id, SlaEvent.kind, SlaEvent.step)
                .join(MqlCycle, col(MqlCycle.id) == col(SlaEvent.cycle_id))
                .where(MqlCycle.state == OPEN)
            ).all()
        )
    ctx = _Context(render, now, done)
    report = SweepReport()
    for snapshot in cycles:
        assert snapshot.id is not None
        if not _pending(snapshot, playbook, ctx):
            continue
        for _ in range(MAX_STEPS_PER_SWEEP):
            taken = _take_next(engine, playbook, snapshot.id, ctx)
            if taken is None:
                break
            if taken:
                report.taken[taken] += 1
    return report


def _pending(cycle: MqlCycle, playbook: Playbook, ctx: _Context) -> list[Step]:
    assert cycle.id is not None
    steps = due_steps(cycle, playbook.tier(cycle.tier), playbook, ctx.now)
    return [
        s
        for s in steps
        if (cycle.id, s.kind, s.step) not in ctx.tried
        and (s.kind == UNASSIGNED or (cycle.id, s.kind, s.step) not in ctx.done)
    ]


def _take_next(engine: Engine, playbook: Playbook, cycle_id: int, ctx: _Context) -> str | None:
    """Try the cycle's next pending step: its kind if taken, "" if not, None if none is left."""
    try:
        with transaction(engine) as session:
            # The row lock orders this step after any concurrent click or sweep of the same cycle.
            cycle = session.exec(
                select(MqlCycle).where(MqlCycle.id == cycle_id).with_for_update()
            ).first()
            lead = session.get(Lead, cycle.lead_id) if cycle else None
            if cycle is None or lead is None:
                return None
            pending = _pending(cycle, playbook, ctx)
            if not pending:
                return None
            step = pending[0]
            ctx.tried.add((cycle_id, step.kind, step.step))
            return _apply(session, playbook, cycle, lead, step, ctx)
    except _AlreadyTaken:
        return ""


def _apply(
    session: Session, playbook: Playbook, cycle: MqlCycle, lead: Lead, step: Step, ctx: _Context
) -> str:
    if step.kind in (REASSIGN, UNASSIGNED):
        return _reassign(session, playbook, cycle, lead, step, ctx)
    _record(session, cycle, step.kind, step.step, ctx.now)
    tier = playbook.tier(cycle.tier)
    chase = _Chase(session, playbook, cycle, lead, step, ctx)
    manager = _pool(playbook, cycle).manager
    if step.kind == NUDGE:
        left = playbook.time_between(tier, ctx.now, cycle.sla_due_at)
        if cycle.owner_slack_id:
            chase.dm(cycle.owner_slack_id, "owner", span=left)
        else:
            members = tuple(m.slack_id for m in _pool(playbook, cycle).members)
            chase.thread(span=left, pool_members=members)
    elif step.kind == ESCALATE:
        late = playbook.time_between(tier, cycle.sla_due_at, ctx.now)
        owned = playbook.routing.mode == "assign" and cycle.owner_slack_id is not None
        reassign_in = tier.reassign_delay - late if owned else None
        chase.dm(manager, "manager", span=late, manager=manager, reassign_in=reassign_in)
        chase.thread(span=late, manager=manager, reassign_in=reassign_in)
    else:
        waited = ctx.now - cycle.received_at
        chase.dm(manager, "manager", span=waited, manager=manager)
        chase.thread(span=waited, manager=manager)
    return step.kind


def _reassign(
    session: Session, playbook: Playbook, cycle: MqlCycle, lead: Lead, step: Step, ctx: _Context
) -> str:
    """Move the lead to the next available rep; with nobody available it waits unassigned."""
    previous = cycle.owner_slack_id
    # Never hand it straight back to the rep it was just taken from.
    skip = previous or _unassigned_from(session, cycle, step.step)
    routed = assign(
        session,
        playbook,
        routing_fields(lead, score=cycle.score),
        now=ctx.now,
        exclude=frozenset({skip} if skip else ()),
        pool=cycle.pool if cycle.pool in playbook.routing.pools else None,
    )
    manager = _pool(playbook, cycle).manager
    if routed.owner is None:
        _record(session, cycle, UNASSIGNED, step.step, ctx.now)
        if previous is not None:
            _compare_and_set(session, cycle, owner_slack_id=None)
            after_change(session, cycle, now=ctx.now)
        chase = _Chase(session, playbook, cycle, lead, Step(UNASSIGNED, step.step), ctx)
        chase.dm(manager, "manager", manager=manager, previous_owner=previous)
        chase.thread(manager=manager, previous_owner=previous)
        return UNASSIGNED
    _record(session, cycle, REASSIGN, step.step, ctx.now)
    _compare_and_set(
        session,
        cycle,
        owner_slack_id=routed.owner,
        pool=routed.pool,
        assigned_at=ctx.now,
        sla_due_at=playbook.deadline(playbook.tier(cycle.tier), ctx.now),
        reassignments=cycle.reassignments + 1,
    )
    after_change(session, cycle, now=ctx.now)
    chase = _Chase(session, playbook, cycle, lead, Step(REASSIGN, step.step), ctx)
    chase.dm(routed.owner, "owner", previous_owner=previous)
    chase.thread(previous_owner=previous)
    return REASSIGN


def _record(session: Session, cycle: MqlCycle, kind: str, step: int, now: datetime) -> None:
    values = {
        "cycle_id": cycle.id,
        "kind": kind,
        "step": step,
        "owner_slack_id": cycle.owner_slack_id,
        "created_at": now,
    }
    if not insert_ignore(session, SlaEvent, values):
        raise _AlreadyTaken


def _unassigned_from(session: Session, cycle: MqlCycle, step: int) -> str | None:
    """The rep a still-unassigned lead was taken from (None when it never had an owner)."""
    return session.exec(
        select(SlaEvent.owner_slack_id).where(
            SlaEvent.cycle_id == cycle.id, SlaEvent.kind == UNASSIGNED, SlaEvent.step == step
        )
    ).first()


def _compare_and_set(session: Session, cycle: MqlCycle, **changes: Any) -> None:
    if not compare_and_set(session, cycle, **changes):
        raise _AlreadyTaken


def _pool(playbook: Playbook, cycle: MqlCycle) -> Pool:
    pools = playbook.routing.pools
    return pools.get(cycle.pool) or pools[playbook.routing.default_pool]


class _Chase:
    """Queues one step's messages under deterministic keys, rendered by the context's views."""

    def __init__(
        self,
        session: Session,
        playbook: Playbook,
        cycle: MqlCycle,
        lead: Lead,
        step: Step,
        ctx: _Context,
    ) -> None:
        self.session, self.playbook, self.cycle, self.lead = session, playbook, cycle, lead
        self.step, self.ctx = step, ctx
        self.priority = tier_priority(playbook, cycle.tier)

    def dm(self, user: str | None, audience: str, **facts: Any) -> None:
        """DM `user` (nothing when the pool names no such person)."""
        if user:
            self._send(user, user, self._notice(audience, facts), thread_of=None)

    def thread(self, **facts: Any) -> None:
        """Post a line in the card's thread."""
        channel = self.playbook.channels.pipeline
        self._send(channel, "thread", self._notice("thread", facts), thread_of=self.cycle.id)

    def _notice(self, audience: str, facts: dict[str, Any]) -> Notice:
        return Notice(self.step.kind, audience, self.lead, self.cycle, self.playbook, **facts)

    def _send(self, to: str, recipient: str, notice: Notice, *, thread_of: int | None) -> None:
        message = self.ctx.render(notice)
        outbox.enqueue_message(
            self.session,
            key=f"sla:{self.cycle.id}:{self.step.kind}:{self.step.step}:{recipient}",
            to=to,
            text=message["text"],
            blocks=message["blocks"],
            thread_of=thread_of,
            now=self.ctx.now,
            priority=self.priority,
        )
