"""The weekly digest: the shared sales-marketing scoreboard as one Block Kit message."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.core.metrics import Outcomes, Quantiles, Scoreboard, SourceRow, WeekFigures, ratio
from bot.core.playbook import Playbook
from bot.views.blocks import Block, clip, context, escape, section
from bot.views.changes import NO_DATA, change, change_pts, duration, pct
from bot.views.changes import with_change as _with
from bot.views.deal_support import build_digest_section

ALARM = ":rotating_light:"
MAX_REPS = 25
TOP_SOURCES = 6
NOT_CONNECTED = "not available yet: connect Salesforce or HubSpot"


def _flag(alarm: bool) -> str:
    return f"{ALARM} " if alarm else ""


def _quantiles(now: Quantiles, before: Quantiles) -> str:
    if now.median is None:
        return NO_DATA
    return _with(
        f"median {duration(now.median)} · p90 {duration(now.p90)}",
        change(now.median, before.median),
    )


def _handoff_fields(board: Scoreboard) -> list[str]:
    week, last, targets = board.current, board.previous, board.targets
    alarms = {a.key for a in board.alarms}
    committed = f" of {targets.weekly_mqls:,} committed" if targets.weekly_mqls is not None else ""
    return [
        f"*MQLs delivered*\n{_flag('mqls' in alarms)}"
        + _with(f"{week.mqls:,}{committed}", change(week.mqls, last.mqls)),
        f"*Acceptance*\n{_flag('acceptance' in alarms)}"
        + _with(
            f"{pct(week.acceptance_rate)} (target ≥ {pct(targets.acceptance_min)})",
            change_pts(week.acceptance_rate, last.acceptance_rate),
        ),
        f"*Rejection*\n{_flag('rejection' in alarms)}"
        + _with(
            f"{pct(week.rejection_rate)} (alarm above {pct(targets.rejection_max)})",
            change_pts(week.rejection_rate, last.rejection_rate),
        ),
        "*Recycled · still open*\n"
        + f"{week.recycled:,} recycled{_paren(change(week.recycled, last.recycled))} · "
        + f"{week.open:,} open",
        f"*Time to accept*\n{_quantiles(week.time_to_accept, last.time_to_accept)}",
        f"*Time to first touch*\n{_quantiles(week.time_to_first_touch, last.time_to_first_touch)}",
        "*SLA compliance*\n"
        + _with(
            f"{pct(week.sla_rate)} of {week.sla_decided:,} (target ≥ {pct(targets.sla_compliance_min)})",
            change_pts(week.sla_rate, last.sla_rate),
        ),
        "*Nudges · escalations*\n"
        + _events(week, last, ("nudge", "nudges"), ("escalate", "escalations")),
        "*Reassignments · limbo alerts*\n"
        + _events(week, last, ("reassign", "reassigned"), ("limbo", "in limbo")),
    ]


def _paren(delta: str) -> str:
    return f" ({delta})" if delta else ""


def _events(week: WeekFigures, last: WeekFigures, *kinds: tuple[str, str]) -> str:
    now, before = week.sla_events, last.sla_events
    return " · ".join(
        f"{now.get(k, 0):,} {noun}{_paren(change(now.get(k, 0), before.get(k, 0)))}"
        for k, noun in kinds
    )


def _tier_fields(board: Scoreboard) -> list[str]:
    target = board.targets.sla_compliance_min
    fields = []
    for tier in board.current.sla[:10]:
        before = board.previous.tier(tier.tier)
        alarm = tier.rate is not None and tier.rate < target
        shown = f"{pct(tier.rate)} ({tier.met:,} of {tier.decided:,})" if tier.decided else NO_DATA
        delta = change_pts(tier.rate, before.rate if before else None)
        fields.append(f"*{escape(tier.label)}*\n{_flag(alarm)}{_with(shown, delta)}")
    return fields


def _reasons(title: str, week: WeekFigures, last: WeekFigures, kind: str) -> str:
    now = week.reject_reasons if kind == "reject" else week.recycle_reasons
    before = {
        r.code: r.count for r in (last.reject_reasons if kind == "reject" else last.recycle_reasons)
    }
    if not now:
        return f"*{title}*\nnone"
    lines = [
        f"{i}. {escape(r.label)}: {_with(f'{r.count:,}', change(r.count, before.get(r.code, 0)))}"
        for i, r in enumerate(now, 1)
    ]
    return f"*{title}*\n" + "\n".join(lines)


def _sources(week: WeekFigures, last: WeekFigures) -> str:
    if not week.sources:
        return "*MQLs by lead source*\nnone this week"
    top = week.sources[:TOP_SOURCES]
    rows = [(s.source, s.mqls, s.acceptance_rate, last.source(s.source)) for s in top]
    rest = week.sources[TOP_SOURCES:]
    if rest:
        shown = {s.source for s in top}
        accepted, responded = sum(s.accepted for s in rest), sum(s.responded for s in rest)
        before = [s for s in last.sources if s.source not in shown]
        rows.append(
            (
                "Other sources",
                sum(s.mqls for s in rest),
                ratio(accepted, responded),
                SourceRow("", sum(s.mqls for s in before), 0, 0) if before else None,
            )
        )
    lines = [
        f"{escape(name)}: "
        + _with(f"{mqls:,} MQLs", change(mqls, before.mqls if before else 0))
        + f" · {pct(rate)} accepted"
        for name, mqls, rate, before in rows
    ]
    return "*MQLs by lead source*\n" + "\n".join(lines)


def _outcomes(now: Outcomes | None, before: Outcomes | None) -> str:
    if now is None:
        return (
            f"*MQL→SQL conversion*: {NOT_CONNECTED}\n*Pipeline created*: {NOT_CONNECTED}\n"
            f"*Win rate and pipeline by lead source*: {NOT_CONNECTED}"
        )
    lines = [
        "*MQL→SQL conversion*: "
        + _with(
            f"{pct(now.mql_to_sql)} ({now.sqls:,} SQLs)",
            change_pts(now.mql_to_sql, before.mql_to_sql if before else None),
        ),
        "*Pipeline created*: "
        + _with(
            f"{now.pipeline_created:,.0f}",
            change(now.pipeline_created, before.pipeline_created if before else None),
        ),
        "*Win rate*: "
        + _with(pct(now.win_rate), change_pts(now.win_rate, before.win_rate if before else None)),
    ]
    for source, amount in sorted(now.pipeline_by_source.items(), key=lambda kv: -kv[1])[:6]:
        rate = now.win_rate_by_source.get(source)
        lines.append(f"{escape(source)}: {amount:,.0f} pipeline · {pct(rate)} won")
    return "\n".join(lines)


def _rep_names(playbook: Playbook) -> dict[str, str]:
    return {
        m.slack_id: m.name or m.slack_id
        for pool in playbook.routing.pools.values()
        for m in pool.members
    }


def _rep_table(board: Scoreboard, playbook: Playbook) -> str:
    if not board.reps:
        return "*Per rep*\nNo lead had an owner this week."
    names = _rep_names(playbook)
    header = f"{'Rep':<16}{'Owned':>6}{'Acc':>6}{'Med TTA':>9}{'SLA':>6}{'Rej':>5}{'Rec':>5}"
    lines = [header]
    for rep in board.reps[:MAX_REPS]:
        name = clip(names.get(rep.slack_id, rep.slack_id), 15)
        tta = duration(rep.median_accept) if rep.median_accept is not None else "-"
        sla = pct(rep.sla_rate) if rep.sla_rate is not None else "-"
        lines.append(
            f"{name:<16}{rep.owned:>6}{rep.accepted:>6}{tta:>9}{sla:>6}{rep.rejected:>5}{rep.recycled:>5}"
        )
    more = len(board.reps) - MAX_REPS
    tail = f"\n…and {more} more reps" if more > 0 else ""
    return "*Per rep*\n```" + escape("\n".join(lines)) + "```" + tail


def _text(board: Scoreboard) -> str:
    week, last = board.current, board.previous
    text = f"Weekly scoreboard {week.week.label}: {week.mqls:,} MQLs"
    delta = change(week.mqls, last.mqls)
    text += f" ({delta})" if delta else ""
    text += (
        f", {pct(week.acceptance_rate)} accepted, {pct(week.rejection_rate)} rejected, "
        f"median time to accept {duration(week.time_to_accept.median)}"
    )
    alarms = board.alarms
    if alarms:
        text += f". {len(alarms)} alarm{'s' if len(alarms) > 1 else ''}: " + "; ".join(
            a.message for a in alarms
        )
    return clip(text, 3000)


def build_digest(scoreboard: Scoreboard, playbook: Playbook) -> dict[str, Any]:
    """The weekly scoreboard message: figures with their change from the previous week, alarms."""
    board = scoreboard
    week, last = board.current, board.previous
    sunday = week.week.monday + timedelta(days=6)
    blocks: list[Block] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": f"Weekly scoreboard · {week.week.label}",
                "emoji": True,
            },
        },
        context(
            f"{week.week.monday:%a %b %d} to {sunday:%a %b %d, %Y} ({escape(playbook.timezone)}) · "
            f"changes are against {last.week.label}"
        ),
    ]
    if board.alarms:
        blocks.append(
            section(
                f"{ALARM} *Needs attention*\n"
                + "\n".join(f"• {escape(a.message)}" for a in board.alarms)
            )
        )
    if week.mqls == 0:
        blocks.append(section("No MQLs arrived this week."))
    blocks += [
        section("*Handoff*", fields=_handoff_fields(board)),
        {"type": "divider"},
        section("*SLA compliance by tier*", fields=_tier_fields(board)),
        section(
            "*Why leads went back*",
            fields=[
                _reasons("Top reject reasons", week, last, "reject"),
                _reasons("Top recycle reasons", week, last, "recycle"),
            ],
        ),
        section(_sources(week, last)),
        section(_outcomes(board.outcomes, board.previous_outcomes)),
        {"type": "divider"},
        *(
            build_digest_section(board.deal_support, board.previous_deal_support, playbook)
            if board.deal_support
            else []
        ),
        section(_rep_table(board, playbook)),
        context(
            "Acceptance and rejection are shares of the week's MQLs someone responded to. "
            "SLA compliance counts open leads past their deadline as misses. "
            f"Times are wall-clock; the {len(board.trend)}-week trend chart follows."
        ),
    ]
    return {"text": _text(board), "blocks": blocks}
