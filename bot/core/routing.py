"""Routing: rules pick a pool, weighted round-robin with capacity caps picks the owner."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.core.availability import away_reps
from bot.core.models import OPEN, MqlCycle, RoutingWeight
from bot.core.playbook import RULE_FIELDS, Member, Playbook, Pool, Routing, RuleMatch
from bot.core.sql import insert_ignore


def rule_matches(match: RuleMatch, fields: Mapping[str, Any]) -> bool:
    """True when every condition of `match` holds for the lead's fields."""
    for name in RULE_FIELDS:
        wanted = getattr(match, name)
        if wanted is None:
            continue
        value = fields.get(name)
        if value is None or str(value).strip().lower() not in {w.lower() for w in wanted}:
            return False
    for name in ("employees", "score"):
        bounds = getattr(match, name)
        if bounds is not None and not bounds.contains(fields.get(name)):
            return False
    return True


def choose_pool(routing: Routing, fields: Mapping[str, Any]) -> str:
    """The pool of the first rule that matches, else the default pool."""
    return next(
        (r.pool for r in routing.rules if rule_matches(r.when, fields)), routing.default_pool
    )


@dataclass(frozen=True)
class Pick:
    """The rep chosen and every eligible rep's round-robin counter after the choice."""

    slack_id: str
    counters: dict[str, int]


def weighted_round_robin(
    members: list[Member], counters: Mapping[str, int], open_counts: Mapping[str, int]
) -> Pick | None:
    """Smooth weighted round-robin over members below their capacity; None when all are full."""
    eligible = [
        m for m in members if m.capacity is None or open_counts.get(m.slack_id, 0) < m.capacity
    ]
    if not eligible:
        return None
    updated = {m.slack_id: counters.get(m.slack_id, 0) + m.weight for m in eligible}
    chosen = max(eligible, key=lambda m: updated[m.slack_id])
    updated[chosen.slack_id] -= sum(m.weight for m in eligible)
    return Pick(chosen.slack_id, updated)


@dataclass(frozen=True)
class Assignment:
    """Where a new MQL goes: its pool and, in assign mode, its owner (None = anyone may claim)."""

    pool: str
    owner: str | None


def assign(
    session: Session,
    playbook: Playbook,
    fields: Mapping[str, Any],
    *,
    now: datetime,
    exclude: frozenset[str] = frozenset(),
    pool: str | None = None,
) -> Assignment:
    """Route a lead (to `pool` when given); in assign mode pick an available owner not in `exclude`,
    falling back along the pools' backup chain; owner None when nobody anywhere is available."""
    routing = playbook.routing
    pool_name = pool or choose_pool(routing, fields)
    if routing.mode == "claim":
        return Assignment(pool_name, None)
    unavailable = exclude | away_reps(session, now=now)
    seen: set[str] = set()
    candidate: str | None = pool_name
    while candidate is not None and candidate not in seen:
        seen.add(candidate)
        current = routing.pools[candidate]
        owner = _pick_in_pool(session, candidate, current, unavailable)
        if owner is not None:
            return Assignment(candidate, owner)
        candidate = current.backup
    return Assignment(pool_name, None)


def _pick_in_pool(
    session: Session, pool_name: str, pool: Pool, unavailable: frozenset[str] | set[str]
) -> str | None:
    members = [m for m in pool.members if m.slack_id not in unavailable]
    if not members:
        return None
    ids = [m.slack_id for m in members]
    rows = _weights(session, pool_name, ids)
    missing = set(ids) - {r.slack_id for r in rows}
    if missing:
        for slack_id in sorted(missing):
            insert_ignore(
                session, RoutingWeight, {"pool": pool_name, "slack_id": slack_id, "current": 0}
            )
        rows = _weights(session, pool_name, ids)
    counters = {r.slack_id: r.current for r in rows}
    open_counts: dict[str, int] = {}
    capped = [m.slack_id for m in members if m.capacity is not None]
    if capped:  # counting open leads is only worth it when someone has a cap
        counted = session.exec(
            select(MqlCycle.owner_slack_id, func.count())
            .where(MqlCycle.state == OPEN, col(MqlCycle.owner_slack_id).in_(capped))
            .group_by(MqlCycle.owner_slack_id)
        ).all()
        open_counts = {owner: n for owner, n in counted if owner is not None}
    pick = weighted_round_robin(members, counters, open_counts)
    if pick is None:
        return None
    for row in rows:
        if row.slack_id in pick.counters:
            row.current = pick.counters[row.slack_id]
            session.add(row)
    return pick.slack_id


def _weights(session: Session, pool_name: str, ids: list[str]) -> list[RoutingWeight]:
    return list(
        session.exec(
            select(RoutingWeight)
            .where(RoutingWeight.pool == pool_name, col(RoutingWeight.slack_id).in_(ids))
            .with_for_update()
        ).all()
    )
