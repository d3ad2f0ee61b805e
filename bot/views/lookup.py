"""Ephemeral answers to /pipeline, /lead and /deal (pure Block Kit builders)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.core.access import Viewer, scrub_contacts
from bot.core.crm import Deal
from bot.core.durations import format_duration
from bot.core.lookup import LeadMatch, LeadSearch, PoolSummary, Queue, QueueItem, RepPipeline
from bot.core.models import ACCEPTED, OPEN, REJECTED, DealSupportRequest, Lead, MqlCycle
from bot.core.playbook import Playbook
from bot.views.blocks import Block, clip, context, escape, section, slack_date
from bot.views.lead_card import build_lead_card

MAX_DEALS = 5
MAX_REQUESTS_PER_DEAL = 3


def ephemeral(text: str, blocks: list[Block] | None = None) -> dict[str, Any]:
    """A message only the person who asked sees."""
    message: dict[str, Any] = {"text": clip(text, 3000), "response_type": "ephemeral"}
    if blocks:
        message["blocks"] = blocks[:50]
    return message


def quoted(text: str) -> str:
    """User text quoted for mrkdwn: escaped and cut short, so it can neither mention nor link."""
    return f"\u201c{escape(clip(text, 80))}\u201d"


# -- shared pieces --------------------------------------------------------------------------------


def _safe(text: str | None, who: Viewer) -> str:
    return escape(scrub_contacts(text or "", allowed=who.contact_details))


def sla_clock(cycle: MqlCycle, now: datetime) -> str:
    """How long an open lead has left to be accepted, or how far past its SLA it is."""
    due = cycle.sla_due_at
    if due > now:
        return f":hourglass_flowing_sand: {format_duration(due - now)} left (by {slack_date(due)})"
    return f":rotating_light: *{format_duration(now - due)} past SLA*"


def lead_line(lead: Lead, cycle: MqlCycle, playbook: Playbook, who: Viewer) -> str:
    """Name, title and company, tier and source of a lead, on one line."""
    who_line = " at ".join(_safe(p, who) for p in (lead.title, lead.company) if p)
    parts = [
        f"*{_safe(lead.display_name, who)}*",
        who_line,
        escape(playbook.tier(cycle.tier).display),
    ]
    source = lead.lead_source or lead.origin
    parts.append(_safe(source, who))
    return " · ".join(p for p in parts if p)


def _state(cycle: MqlCycle, playbook: Playbook) -> str:
    if cycle.state == OPEN:
        return f"Open · <@{cycle.owner_slack_id}>" if cycle.owner_slack_id else "Open · unclaimed"
    if cycle.state == ACCEPTED:
        when = slack_date(cycle.accepted_at, "{date_short}") if cycle.accepted_at else ""
        return f"Accepted by <@{cycle.accepted_by}> {when}".strip()
    kind = "reject" if cycle.state == REJECTED else "recycle"
    reason = playbook.reason(kind, cycle.reason_code or "")
    label = reason.label if reason else "no reason given"
    code = f" (`{escape(cycle.reason_code)}`)" if cycle.reason_code else ""
    verb = "Rejected" if cycle.state == REJECTED else "Recycled"
    when = slack_date(cycle.closed_at, "{date_short}") if cycle.closed_at else ""
    line = f"{verb} by <@{cycle.closed_by}> {when} · {escape(label)}{code}"
    if cycle.revisit_on:
        line += f" · revisit {cycle.revisit_on.isoformat()}"
    return line


def history_lines(match: LeadMatch, playbook: Playbook, who: Viewer) -> list[str]:
    """One line per MQL cycle of the lead, oldest first, with reason codes and notes."""
    lines = []
    for cycle in match.cycles:
        line = f"MQL #{cycle.seq} {slack_date(cycle.received_at, '{date_short}')}: {_state(cycle, playbook)}"
        if cycle.note:
            line += f"\n> {_safe(clip(cycle.note, 300), who)}"
        lines.append(line)
    return lines


def _contact(lead: Lead, who: Viewer) -> str:
    if not who.contact_details:
        return ""
    found = [escape(v) for v in (lead.email, lead.phone) if v]
    return "Contact: " + " · ".join(found) if found else ""


# -- /lead ----------------------------------------------------------------------------------------

LEAD_USAGE = "Type `/lead` and an email, a name or a company, e.g. `/lead Acme`."


def build_lead_results(
    search: LeadSearch,
    *,
    playbook: Playbook,
    who: Viewer,
    crm_urls: Mapping[int, str | None],
    now: datetime,
) -> dict[str, Any]:
    """/lead's answer: nothing found (worded the same whether or not a hidden lead matched),
    the full card of the one match, or a short line per match (at most ten)."""
    if not search.matches:
        scope = (
            "You see every lead"
            if who.sees_all
            else (
                "You see the leads of "
                + ", ".join(f"`{escape(p)}`" for p in sorted(who.sees_pools))
                + " and your own"
                if who.sees_pools
                else "You see only leads you own or acted on"
            )
        )
        text = f"No lead you can see matches {quoted(search.text)}. {scope}."
        return ephemeral(text, [section(text)])
    if len(search.matches) == 1:
        match = search.matches[0]
        return build_lead_detail(
            match, playbook=playbook, who=who, crm_url=crm_urls.get(match.lead.id or 0), now=now
        )
    blocks: list[Block] = [
        section(
            f"*{search.total} leads* match {quoted(search.text)}"
            + (f"; here are the newest {len(search.matches)}." if search.more else ":")
        )
    ]
    for match in search.matches:
        cycle = match.latest
        fields = [_state(cycle, playbook)]
        if cycle.state == OPEN:
            fields.append(sla_clock(cycle, now))
        url = crm_urls.get(match.lead.id or 0)
        if url:
            fields.append(f"<{url}|Open in CRM>")
        note = f"\n> {_safe(clip(cycle.note, 300), who)}" if cycle.note else ""
        blocks.append(
            section(lead_line(match.lead, cycle, playbook, who) + "\n" + " · ".join(fields) + note)
        )
        extra = history_lines(match, playbook, who)[:-1][-3:]
        contact = _contact(match.lead, who)
        if extra or contact:
            blocks.append(context(*extra, contact))
    if search.more:
        blocks.append(context(f"{search.more} more; add a word to narrow the search."))
    return ephemeral(f"{search.total} leads match {quoted(search.text)}", blocks)


def build_lead_detail(
    match: LeadMatch, *, playbook: Playbook, who: Viewer, crm_url: str | None, now: datetime
) -> dict[str, Any]:
    """One lead in full: its card (with the buttons the card has) and its whole history."""
    card = build_lead_card(
        match.lead, match.latest, playbook=playbook, crm_url=crm_url, touches=match.touches
    )
    blocks = list(card["blocks"])
    lines = history_lines(match, playbook, who)
    if match.latest.state == OPEN:
        lines.append(sla_clock(match.latest, now))
    blocks.append(section("*History*\n" + "\n".join(lines)))
    contact = _contact(match.lead, who)
    if contact:
        blocks.append(context(contact))
    return ephemeral(card["text"], blocks)


# -- /pipeline ------------------------------------------------------------------------------------

PIPELINE_USAGE = (
    "`/pipeline`: your open leads and SLA clocks · `/pipeline team`: your pool · "
    "`/pipeline @rep`: a rep's leads (managers)."
)


def _queue_blocks(
    title: str, queue: Queue, playbook: Playbook, who: Viewer, now: datetime, *, clock: bool
) -> list[Block]:
    if not queue.total:
        return []
    lines = [f"*{title}* ({queue.total})"]
    for item in queue.items:
        lines.append("• " + _queue_line(item, playbook, who, now, clock=clock))
    if queue.more:
        lines.append(f"_…and {queue.more} more_")
    return [section("\n".join(lines))]


def _queue_line(
    item: QueueItem, playbook: Playbook, who: Viewer, now: datetime, *, clock: bool
) -> str:
    line = lead_line(item.lead, item.cycle, playbook, who)
    if clock:
        return f"{line} · {sla_clock(item.cycle, now)}"
    accepted = item.cycle.accepted_at
    return f"{line} · accepted {format_duration(now - accepted)} ago" if accepted else line


def build_pipeline(
    pipeline: RepPipeline, *, playbook: Playbook, who: Viewer, now: datetime
) -> dict[str, Any]:
    """A rep's queue: open leads (most urgent first), unclaimed ones they may take, untouched."""
    mine = pipeline.rep_id == who.user_id
    owner = "Your" if mine else f"<@{pipeline.rep_id}>'s"
    if pipeline.empty:
        text = (
            "Your pipeline is clear: no open leads and nothing accepted waits for a first touch."
            if mine
            else f"<@{pipeline.rep_id}> has no open leads and nothing untouched"
            + ("" if playbook.access.managers == "all" else " in the pools you manage")
            + "."
        )
        return ephemeral(text, [section(text)])
    blocks = [
        *_queue_blocks(f"{owner} open leads", pipeline.open, playbook, who, now, clock=True),
        *_queue_blocks(
            "Unclaimed in your pools", pipeline.unclaimed, playbook, who, now, clock=True
        ),
        *_queue_blocks(
            "Accepted, no touch logged yet", pipeline.untouched, playbook, who, now, clock=False
        ),
        context("Only you can see this. `/lead <name>` opens a lead's card with its buttons."),
    ]
    text = (
        f"{owner} pipeline: {pipeline.open.total} open, {pipeline.unclaimed.total} unclaimed, "
        f"{pipeline.untouched.total} untouched"
    )
    return ephemeral(text, blocks)


def build_team(summaries: Sequence[PoolSummary], *, playbook: Playbook) -> dict[str, Any]:
    """Each of the caller's pools: open by tier, unclaimed, breaches, untouched, who holds what."""
    blocks: list[Block] = []
    for summary in summaries:
        tiers = ", ".join(
            f"{escape(tier.display)} {summary.open_by_tier[tier.name]}"
            for tier in playbook.tiers_by_rank
            if summary.open_by_tier.get(tier.name)
        )
        lines = [
            f"*Pool `{escape(summary.pool)}`*",
            f"Open: *{summary.open}*"
            + (f" ({tiers})" if tiers else "")
            + f" · unclaimed {summary.unclaimed}",
            f"Past SLA: *{summary.breaching}*"
            + (" :rotating_light:" if summary.breaching else "")
            + f" · accepted, untouched: {summary.untouched}",
            f"This week: {summary.rejected_this_week} rejected, {summary.recycled_this_week} recycled",
        ]
        holders = sorted(
            summary.holders.values(), key=lambda h: (-h.open - h.untouched, h.slack_id)
        )
        if holders:
            lines.append("*Who holds what*")
            lines += [
                f"• <@{h.slack_id}>: {h.open} open"
                + (f" ({h.breaching} past SLA)" if h.breaching else "")
                + f", {h.untouched} untouched"
                for h in holders[:20]
            ]
        blocks.append(section("\n".join(lines)))
    text = "Team pipeline: " + "; ".join(
        f"{s.pool}: {s.open} open, {s.breaching} past SLA" for s in summaries
    )
    return ephemeral(text, blocks)


# -- /deal ----------------------------------------------------------------------------------------

DEAL_USAGE = "Type `/deal` and part of a deal's name, e.g. `/deal Acme renewal`."


def build_deal_looking(text: str) -> dict[str, Any]:
    """The immediate answer while the CRM is asked."""
    return ephemeral(f":mag: Looking up deals matching {quoted(text)} in the CRM…")


def build_deal_waiting(text: str, seconds: float) -> dict[str, Any]:
    """An interim answer when the CRM is slow."""
    return ephemeral(
        f":hourglass_flowing_sand: The CRM has not answered in {seconds:.0f} s; still waiting "
        f"for deals matching {quoted(text)}…"
    )


def build_deal_failed(text: str, reason: str) -> dict[str, Any]:
    """The CRM could not answer; say so plainly."""
    return ephemeral(
        f":warning: revbot could not look up deals matching {quoted(text)}: {escape(reason)} "
        "Try again in a minute; lead lookups (`/lead`, `/pipeline`) still work."
    )


def _money(amount: float | None, currency: str | None) -> str:
    if amount is None:
        return "—"
    shown = f"{amount:,.0f}" if amount == int(amount) else f"{amount:,.2f}"
    return f"{shown} {escape(currency)}" if currency else shown


def _request_line(request: DealSupportRequest, playbook: Playbook) -> str:
    ask = next(
        (a.label for a in playbook.deal_support.ask_types if a.code == request.ask_type), None
    )
    due = f" · due {request.due_on.isoformat()}" if request.due_on else ""
    taker = f" · <@{request.claimed_by}>" if request.claimed_by else ""
    return (
        f"{escape(ask or request.ask_type)} · {escape(request.state)}{taker}{due} "
        f"(asked by <@{request.requester_slack_id}>)"
    )


def build_deal_results(
    text: str,
    deals: Sequence[Deal],
    requests: Mapping[str, Sequence[DealSupportRequest]],
    *,
    playbook: Playbook,
    who: Viewer,
) -> dict[str, Any]:
    """Deals found in the CRM with stage (as a label), amount, close date, owner, next step and
    their #deal-support requests."""
    if not deals:
        message = f"No deal in the CRM matches {quoted(text)}."
        return ephemeral(message, [section(message)])
    blocks: list[Block] = [section(f"Deals matching {quoted(text)}:")]
    for deal in deals[:MAX_DEALS]:
        name = escape(clip(deal.name, 150))
        title = f"*<{deal.url}|{name}>*" if deal.url else f"*{name}*"
        if deal.account:
            title += f" · {_safe(deal.account, who)}"
        status = " (won)" if deal.is_won else " (lost)" if deal.is_closed else ""
        fields = [
            f"*Stage*\n{escape(deal.stage or '—')}{status}",
            f"*Amount*\n{_money(deal.amount, deal.currency)}",
            f"*Close date*\n{deal.close_date.isoformat() if deal.close_date else '—'}",
            f"*Owner*\n{_safe(deal.owner, who) or '—'}",
            f"*Next step*\n{_safe(clip(deal.next_step or '', 300), who) or '—'}",
        ]
        blocks.append(section(title, fields=fields))
        attached = list(requests.get(deal.id, ()))
        if attached:
            lines = [_request_line(r, playbook) for r in attached[:MAX_REQUESTS_PER_DEAL]]
            more = len(attached) - len(lines)
            blocks.append(
                context(
                    "*#deal-support:* " + " / ".join(lines) + (f" (+{more} more)" if more else "")
                )
            )
    if len(deals) > MAX_DEALS:
        blocks.append(context(f"{len(deals) - MAX_DEALS} more; add a word to narrow the search."))
    names = escape(", ".join(d.name for d in deals[:MAX_DEALS]))
    return ephemeral(f"Deals matching {quoted(text)}: {names}", blocks)
