"""Scoring: the incoming score wins; otherwise the playbook's fit and intent points add up."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from bot.core.playbook import Scoring
from bot.core.scoring import ScoreInput, score_lead

SCORING = Scoring.model_validate(
    {
        "fit": {
            "titles": {"Chief": 20, "vp": 15, "vice president": 15, "head": 12, "director": 10},
            "industries": {"Healthcare": 10, "fintech": 8},
            "countries": {"us": 5, "DE": 4},
            "employees": [
                {"min": 1000, "points": 20},
                {"min": 200, "max": 999, "points": 15},
                {"min": 50, "max": 199, "points": 8},
            ],
        },
        "intent": {
            "signals": {"demo_request": 40, "pricing_page": 20, "webinar": 10},
            "content": 5,
            "lead_sources": {"Webinar": 3},
        },
    }
)


def lead(**overrides: Any) -> ScoreInput:
    """A lead with nothing the playbook gives points for, plus overrides."""
    values: dict[str, Any] = {
        "score": None,
        "source": "intake",
        "title": None,
        "industry": None,
        "country": None,
        "employees": None,
        "lead_source": None,
        "signals": (),
        "content": (),
    }
    values.update(overrides)
    return ScoreInput(**values)


# --- an incoming score ------------------------------------------------------------------------


def test_incoming_score_wins_over_playbook_points() -> None:
    result = score_lead(lead(score=42, source="hubspot", signals=("demo_request",)), SCORING)
    assert result.score == 42
    assert result.reasons == ("score 42 from hubspot",)


@pytest.mark.parametrize(("incoming", "expected"), [(120, 100), (100, 100), (0, 0), (-7, 0)])
def test_incoming_score_is_clamped_to_0_100(incoming: int, expected: int) -> None:
    assert score_lead(lead(score=incoming), SCORING).score == expected


def test_an_incoming_zero_is_a_score_not_a_missing_one() -> None:
    result = score_lead(lead(score=0, signals=("demo_request",)), SCORING)
    assert result.score == 0
    assert result.reasons == ("score 0 from intake",)


# --- playbook points --------------------------------------------------------------------------


def test_nothing_matching_scores_zero_without_reasons() -> None:
    result = score_lead(lead(title="Intern", industry="Retail", country="FR"), SCORING)
    assert result.score == 0
    assert result.reasons == ()


def test_title_matches_by_substring_case_insensitively_taking_the_best_key() -> None:
    result = score_lead(lead(title="Senior VICE PRESIDENT, Head of Ops"), SCORING)
    assert result.score == 15
    assert result.reasons == ("title: Senior VICE PRESIDENT, Head of Ops",)
    assert score_lead(lead(title="Chief Revenue Officer"), SCORING).score == 20
    assert score_lead(lead(title="Director of IT"), SCORING).score == 10


def test_industry_and_country_match_case_insensitively_and_exactly() -> None:
    result = score_lead(lead(industry="healthcare", country="US"), SCORING)
    assert result.score == 15
    assert result.reasons == ("industry: healthcare", "country: US")
    assert score_lead(lead(industry=" FinTech "), SCORING).score == 8
    assert score_lead(lead(industry="Healthcare IT"), SCORING).score == 0


def test_lead_source_points() -> None:
    result = score_lead(lead(lead_source="webinar"), SCORING)
    assert result.score == 3
    assert result.reasons == ("source: webinar",)


@pytest.mark.parametrize(
    ("employees", "points"),
    [(0, 0), (49, 0), (50, 8), (199, 8), (200, 15), (999, 15), (1000, 20), (250_000, 20)],
)
def test_employee_bands(employees: int, points: int) -> None:
    result = score_lead(lead(employees=employees), SCORING)
    assert result.score == points
    if points:
        assert result.reasons == (f"{employees:,} employees",)


def test_signals_each_add_their_points_and_unknown_signals_add_nothing() -> None:
    result = score_lead(lead(signals=("pricing_page", "Webinar", "newsletter_open")), SCORING)
    assert result.score == 30
    assert result.reasons == ("pricing page", "Webinar")


def test_content_points_per_piece() -> None:
    result = score_lead(lead(content=("ROI calculator", "Buyer guide", "Case study")), SCORING)
    assert result.score == 15
    assert result.reasons == ("3 content piece(s)",)


def test_points_are_summed_and_reasons_ordered_by_points() -> None:
    result = score_lead(
        lead(
            title="Director of Operations",
            industry="Healthcare",
            country="DE",
            employees=120,
            signals=("pricing_page",),
            content=("ROI calculator",),
        ),
        SCORING,
    )
    assert result.score == 10 + 10 + 4 + 8 + 20 + 5
    assert result.reasons == (
        "pricing page",
        "title: Director of Operations",
        "industry: Healthcare",
        "120 employees",
        "1 content piece(s)",
        "country: DE",
    )


def test_total_is_capped_at_100() -> None:
    result = score_lead(
        lead(
            title="Chief Executive",
            industry="Healthcare",
            employees=5000,
            signals=("demo_request", "pricing_page", "webinar"),
        ),
        SCORING,
    )
    assert result.score == 100
    assert result.reasons[0] == "demo request"
    assert len(result.reasons) == 6


def test_negative_points_lower_the_score_but_never_below_zero() -> None:
    scoring = Scoring.model_validate(
        {"fit": {"titles": {"student": -30}}, "intent": {"signals": {"webinar": 10}}}
    )
    result = score_lead(lead(title="Student", signals=("webinar",)), scoring)
    assert result.score == 0
    assert result.reasons == ("webinar", "title: Student")


def test_empty_scoring_gives_zero() -> None:
    assert score_lead(lead(title="VP", signals=("demo_request",)), Scoring()).score == 0


def test_generated_leads_stay_in_range_and_more_signals_never_lower_the_score() -> None:
    rng = random.Random(4242)
    titles = [None, "VP Sales", "Head of Growth", "Chief of Staff", "Analyst", "director"]
    industries = [None, "Healthcare", "FINTECH", "Retail"]
    countries = [None, "US", "de", "FR"]
    signals = ["demo_request", "pricing_page", "webinar", "unknown"]
    for _ in range(500):
        base = lead(
            title=rng.choice(titles),
            industry=rng.choice(industries),
            country=rng.choice(countries),
            employees=rng.choice([None, rng.randint(0, 5000)]),
            signals=tuple(rng.sample(signals, rng.randint(0, 3))),
            content=tuple("x" * rng.randint(0, 2)),
        )
        result = score_lead(base, SCORING)
        assert 0 <= result.score <= 100
        assert (result.score == 0) == (result.reasons == ())
        more = replace(base, signals=(*base.signals, rng.choice(signals)))
        assert score_lead(more, SCORING).score >= result.score
