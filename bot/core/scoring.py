"""Scoring a lead into a number and the reasons behind it (playbook points when no score came in)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.playbook import Scoring

MAX_SCORE = 100


@dataclass(frozen=True)
class ScoreInput:
    """The lead facts scoring looks at."""

    score: int | None
    source: str
    title: str | None
    industry: str | None
    country: str | None
    employees: int | None
    lead_source: str | None
    signals: tuple[str, ...]
    content: tuple[str, ...]


@dataclass(frozen=True)
class ScoreResult:
    """A 0-100 score and why, in words a rep reads on the card."""

    score: int
    reasons: tuple[str, ...]


def _lookup(table: dict[str, int], value: str | None) -> int:
    if not value:
        return 0
    wanted = value.strip().lower()
    return next((pts for key, pts in table.items() if key.lower() == wanted), 0)


def score_lead(lead: ScoreInput, scoring: Scoring) -> ScoreResult:
    """Use the incoming score when present, else add up the playbook's fit and intent points."""
    if lead.score is not None:
        return ScoreResult(
            min(max(lead.score, 0), MAX_SCORE),
            (f"score {min(max(lead.score, 0), MAX_SCORE)} from {lead.source}",),
        )
    reasons: list[tuple[int, str]] = []
    fit = scoring.fit
    if lead.title:
        title = lead.title.lower()
        best = max(
            ((pts, key) for key, pts in fit.titles.items() if key.lower() in title), default=None
        )
        if best and best[0]:
            reasons.append((best[0], f"title: {lead.title}"))
    for label, table, value in (
        ("industry", fit.industries, lead.industry),
        ("country", fit.countries, lead.country),
        ("source", scoring.intent.lead_sources, lead.lead_source),
    ):
        pts = _lookup(table, value)
        if pts:
            reasons.append((pts, f"{label}: {value}"))
    if lead.employees is not None:
        band = next(
            (
                b
                for b in fit.employees
                if (b.min is None or lead.employees >= b.min)
                and (b.max is None or lead.employees <= b.max)
            ),
            None,
        )
        if band and band.points:
            reasons.append((band.points, f"{lead.employees:,} employees"))
    for signal in lead.signals:
        pts = _lookup(scoring.intent.signals, signal)
        if pts:
            reasons.append((pts, signal.replace("_", " ")))
    if lead.content and scoring.intent.content:
        reasons.append(
            (scoring.intent.content * len(lead.content), f"{len(lead.content)} content piece(s)")
        )
    total = min(sum(pts for pts, _ in reasons), MAX_SCORE)
    ordered = tuple(text for _, text in sorted(reasons, key=lambda r: -r[0]))
    return ScoreResult(max(total, 0), ordered)
