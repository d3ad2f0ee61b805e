"""Routing: rules pick a pool, smooth weighted round-robin with capacity caps picks the owner."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

from bot.core import availability, db
from bot.core.models import ACCEPTED, OPEN, REJECTED, Lead, MqlCycle, RoutingWeight
from bot.core.playbook import Member, Playbook, Routing, RuleMatch, parse_playbook
from bot.core.routing import Assignment, assign, choose_pool, rule_matches, weighted_round_robin
from tests.conftest import TEST_PLAYBOOK, team_playbook

ROUTING = Routing.model_validate(
    {
        "default_pool": "sales",
        "rules": [
            {"when": {"country": ["DE", "fr"], "employees": {"min": 1000}}, "pool": "emea_ent"},
            {"when": {"country": ["de", "FR", "ES"]}, "pool": "emea"},
            {"when": {"score": {"min": 90}, "lead_source": "Webinar"}, "pool": "hot_desk"},
        ],
        "pools": {
            "sales": {"open": True},
            "emea": {"open": True},
            "emea_ent": {"open": True},
            "hot_desk": {"open": True},
        },
    }
)

US_LEAD = {"country": "US", "employees": 450, "score": 87}


def members(*spec: tuple[str, int, int | None]) -> list[Member]:
    """Members from (slack_id, weight, capacity) triples."""
    return [Member(slack_id=s, weight=w, capacity=c) for s, w, c in spec]


def picks(
    team: list[Member], n: int, open_counts: dict[str, int] | None = None
) -> tuple[list[str], dict[str, int]]:
    """Run `n` round-robin picks from zeroed counters; the chosen ids and the final counters."""
    counters: dict[str, int] = {}
    chosen: list[str] = []
    for _ in range(n):
        pick = weighted_round_robin(team, counters, open_counts or {})
        assert pick is not None
        counters = {**counters, **pick.counters}
        chosen.append(pick.slack_id)
    return chosen, counters


NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
_ids = itertools.count(1)


def route(engine: Any, playbook: Playbook, **fields: Any) -> Assignment:
    with db.transaction(engine) as session:
        return assign(session, playbook, {**US_LEAD, **fields}, now=NOW)


def hold(engine: Any, owner: str, *, state: str = OPEN, pool: str = "emea") -> int:
    """Store a lead with one cycle owned by `owner` in `state`; the cycle id."""
    with db.transaction(engine) as session:
        lead = Lead(origin="test", external_id=f"held-{next(_ids)}", created_at=NOW, updated_at=NOW)
        session.add(lead)
        session.flush()
        assert lead.id is not None
        cycle = MqlCycle(
            lead_id=lead.id,
            mql_at=NOW,
            received_at=NOW,
            tier="hot",
            sla_due_at=NOW + timedelta(minutes=15),
            pool=pool,
            owner_slack_id=owner,
            state=state,
        )
        session.add(cycle)
        session.flush()
        assert cycle.id is not None
        return cycle.id


def weights(engine: Any, pool: str) -> dict[str, int]:
    with db.transaction(engine) as session:
        rows = session.exec(select(RoutingWeight).where(RoutingWeight.pool == pool)).all()
        return {r.slack_id: r.current for r in rows}


# --- rules -------------------------------------------------------------------------------------


def test_rule_lists_match_case_insensitively_and_ignore_surrounding_space() -> None:
    match = RuleMatch(country=["DE", "fr"])
    assert rule_matches(match, {"country": "de"})
    assert rule_matches(match, {"country": " FR "})
    assert not rule_matches(match, {"country": "US"})


def test_a_rule_on_a_missing_field_does_not_match() -> None:
    assert not rule_matches(RuleMatch(industry=["Healthcare"]), {"country": "US"})
    assert not rule_matches(RuleMatch(industry=["Healthcare"]), {"industry": None})


def test_an_empty_rule_matches_everything() -> None:
    assert rule_matches(RuleMatch(), {})
    assert rule_matches(RuleMatch(), US_LEAD)


@pytest.mark.parametrize(
    ("employees", "matches"), [(None, False), (99, False), (100, True), (500, True), (501, False)]
)
def test_employee_range_is_inclusive(employees: int | None, matches: bool) -> None:
    match = RuleMatch.model_validate({"employees": {"min": 100, "max": 500}})
    assert rule_matches(match, {"employees": employees}) is matches


def test_score_range_with_one_bound() -> None:
    match = RuleMatch.model_validate({"score": {"max": 49}})
    assert rule_matches(match, {"score": 0})
    assert rule_matches(match, {"score": 49})
    assert not rule_matches(match, {"score": 50})


def test_every_condition_must_hold() -> None:
    match = RuleMatch.model_validate({"country": ["US"], "score": {"min": 80}})
    assert rule_matches(match, {"country": "us", "score": 80})
    assert not rule_matches(match, {"country": "us", "score": 79})
    assert not rule_matches(match, {"country": "ca", "score": 95})


@pytest.mark.parametrize(
    ("fields", "pool"),
    [
        ({"country": "DE", "employees": 5000}, "emea_ent"),
        ({"country": "fr", "employees": 1000}, "emea_ent"),
        ({"country": "DE", "employees": 999}, "emea"),
        ({"country": "es", "employees": 5000}, "emea"),
        ({"country": "DE"}, "emea"),
        ({"country": "DE", "score": 95, "lead_source": "webinar"}, "emea"),
        ({"country": "US", "score": 95, "lead_source": "WEBINAR"}, "hot_desk"),
        ({"country": "US", "score": 89, "lead_source": "Webinar"}, "sales"),
        (US_LEAD, "sales"),
        ({}, "sales"),
    ],
)
def test_choose_pool_first_matching_rule_wins_else_default(
    fields: dict[str, Any], pool: str
) -> None:
    assert choose_pool(ROUTING, fields) == pool


# --- weighted round-robin ------------------------------------------------------------------


def test_weights_2_and_1_give_the_heavy_member_two_of_every_three_picks() -> None:
    chosen, counters = picks(members(("UAA", 2, None), ("UBB", 1, None)), 30)
    for start in range(0, 30, 3):
        window = chosen[start : start + 3]
        assert window.count("UAA") == 2, (start, window)
        assert window.count("UBB") == 1, (start, window)
    assert counters == {"UAA": 0, "UBB": 0}


def test_equal_weights_alternate_in_listed_order() -> None:
    chosen, _ = picks(members(("UAA", 1, None), ("UBB", 1, None), ("UCC", 1, None)), 6)
    assert chosen == ["UAA", "UBB", "UCC", "UAA", "UBB", "UCC"]


def test_smooth_round_robin_interleaves_rather_than_bunching() -> None:
    chosen, _ = picks(members(("UAA", 5, None), ("UBB", 1, None), ("UCC", 1, None)), 7)
    assert chosen == ["UAA", "UAA", "UBB", "UAA", "UCC", "UAA", "UAA"]


def test_generated_weights_are_honoured_exactly_over_full_cycles() -> None:
    rng = random.Random(7)
    for _ in range(100):
        team = members(*((f"U{i:02d}", rng.randint(1, 9), None) for i in range(rng.randint(1, 5))))
        total = sum(m.weight for m in team)
        cycles = rng.randint(1, 4)
        chosen, counters = picks(team, total * cycles)
        assert Counter(chosen) == {m.slack_id: m.weight * cycles for m in team}
        assert set(counters.values()) == {0}
        # Over any stretch each share stays within one pick of its weighted share.
        for n in range(1, total * cycles + 1):
            seen = Counter(chosen[:n])
            for m in team:
                assert abs(seen[m.slack_id] - n * m.weight / total) < 1, (team, n)


def test_members_at_capacity_are_skipped() -> None:
    team = members(("UAA", 5, 2), ("UBB", 1, None), ("UCC", 1, 3))
    chosen, _ = picks(team, 6, open_counts={"UAA": 2, "UCC": 2})
    assert set(chosen) == {"UBB", "UCC"}
    assert chosen.count("UCC") == 3  # UC's cap is about open leads, which picks do not add to


def test_capacity_counts_only_the_given_members_open_leads() -> None:
    team = members(("UAA", 1, 1), ("UBB", 1, 1))
    pick = weighted_round_robin(team, {}, {"UAA": 1, "UZZ": 10})
    assert pick is not None
    assert pick.slack_id == "UBB"
    assert set(pick.counters) == {"UBB"}  # members at capacity keep their counters untouched


def test_none_when_every_member_is_full() -> None:
    team = members(("UAA", 1, 1), ("UBB", 3, 2))
    assert weighted_round_robin(team, {}, {"UAA": 1, "UBB": 2}) is None
    assert weighted_round_robin([], {}, {}) is None


def test_counters_continue_from_the_stored_state() -> None:
    team = members(("UAA", 2, None), ("UBB", 1, None))
    first = weighted_round_robin(team, {}, {})
    assert first is not None
    second = weighted_round_robin(team, first.counters, {})
    assert second is not None
    assert (first.slack_id, second.slack_id) == ("UAA", "UBB")
    assert second.counters == {"UAA": 1, "UBB": -1}


# --- assign, with the database --------------------------------------------------------------


def test_claim_mode_routes_to_a_pool_without_an_owner(engine: Any) -> None:
    pb = team_playbook("claim")
    assert route(engine, pb) == Assignment("sales", None)
    assert route(engine, pb, country="de") == Assignment("emea", None)
    assert weights(engine, "sales") == {}


def test_round_robin_persists_across_transactions(engine: Any) -> None:
    pb = team_playbook("assign")
    owners = [route(engine, pb).owner for _ in range(6)]
    assert owners == ["UREP1", "UREP2", "UREP1", "UREP1", "UREP2", "UREP1"]
    assert weights(engine, "sales") == {"UREP1": 0, "UREP2": 0}
    assert route(engine, pb).owner == "UREP1"
    assert weights(engine, "sales") == {"UREP1": -1, "UREP2": 1}


def test_a_rolled_back_assignment_does_not_advance_the_rotation(engine: Any) -> None:
    pb = team_playbook("assign")
    assert route(engine, pb).owner == "UREP1"
    rolled_back: list[str | None] = []

    def route_then_fail() -> None:
        with db.transaction(engine) as session:
            rolled_back.append(assign(session, pb, US_LEAD, now=NOW).owner)
            raise RuntimeError("the request failed after routing")

    with pytest.raises(RuntimeError):
        route_then_fail()
    assert rolled_back == ["UREP2"]
    assert route(engine, pb).owner == "UREP2"


def test_capacity_counts_only_open_cycles_of_that_owner(engine: Any) -> None:
    pb = team_playbook("assign")
    assert route(engine, pb, country="DE") == Assignment("emea", "UREP3")
    hold(engine, "UREP1", state=OPEN, pool="sales")
    hold(engine, "UREP3", state=ACCEPTED)
    hold(engine, "UREP3", state=REJECTED)
    assert route(engine, pb, country="DE") == Assignment("emea", "UREP3")
    hold(engine, "UREP3", state=OPEN)
    assert route(engine, pb, country="DE") == Assignment("sales", "UREP1")


def test_backup_pool_takes_over_when_the_primary_pool_is_full(engine: Any) -> None:
    pb = team_playbook("assign")
    hold(engine, "UREP3")
    backups = [route(engine, pb, country="FR") for _ in range(3)]
    assert backups == [
        Assignment("sales", "UREP1"),
        Assignment("sales", "UREP2"),
        Assignment("sales", "UREP1"),
    ]
    assert route(engine, pb) == Assignment("sales", "UREP1")  # the sales rotation was shared


def test_nobody_is_assigned_when_the_pool_and_its_backup_are_full(engine: Any) -> None:
    text = (
        TEST_PLAYBOOK.replace("MODE", "assign")
        .replace("weight: 2}", "weight: 2, capacity: 1}")
        .replace("ben@example.com}", "ben@example.com, capacity: 1}")
    )
    pb = parse_playbook(text)
    hold(engine, "UREP1", pool="sales")
    hold(engine, "UREP2", pool="sales")
    hold(engine, "UREP3")
    assert route(engine, pb, country="DE") == Assignment("emea", None)
    assert route(engine, pb) == Assignment("sales", None)


def test_backup_chains_stop_at_a_loop(engine: Any) -> None:
    text = (
        TEST_PLAYBOOK.replace("MODE", "assign")
        .replace("      manager: UMGR1\n", "      manager: UMGR1\n      backup: emea\n")
        .replace("weight: 2}", "weight: 2, capacity: 1}")
        .replace("ben@example.com}", "ben@example.com, capacity: 1}")
    )
    pb = parse_playbook(text)
    for owner in ("UREP1", "UREP2", "UREP3"):
        hold(engine, owner)
    assert route(engine, pb, country="DE") == Assignment("emea", None)
    assert route(engine, pb) == Assignment("sales", None)


def test_assignment_skips_reps_who_are_away_and_falls_back_to_the_backup_pool(engine: Any) -> None:
    pb = team_playbook("assign")
    with db.transaction(engine) as session:
        availability.set_away(session, "UREP3", now=NOW, until=None)
        emea = assign(session, pb, {**US_LEAD, "country": "DE"}, now=NOW)
    assert emea.pool == "sales"
    assert emea.owner in {"UREP1", "UREP2"}
    with db.transaction(engine) as session:
        availability.set_away(session, "UREP1", now=NOW, until=NOW + timedelta(hours=1))
        picks = {assign(session, pb, US_LEAD, now=NOW).owner for _ in range(3)}
        later = assign(
            session, pb, US_LEAD, now=NOW + timedelta(hours=2), exclude=frozenset({"UREP2"})
        )
    assert picks == {"UREP2"}
    assert later.owner == "UREP1"
    with db.transaction(engine) as session:
        availability.set_back(session, "UREP3", now=NOW)
        availability.set_away(session, "UREP2", now=NOW, until=None)
        nobody = assign(session, pb, US_LEAD, now=NOW, exclude=frozenset({"UREP1", "UREP3"}))
    assert nobody.owner is None
    assert nobody.pool == "sales"
