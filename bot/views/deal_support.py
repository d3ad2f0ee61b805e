"""#deal-support views: the request modal, the card, the deliver / decline modals, thread lines,
DMs, `/deal-support list` and the digest's section."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from bot.core.crm import Deal
from bot.core.deal_support import (
    CLAIMED,
    DECLINED_LINE,
    DELIVERED,
    DELIVERED_LINE,
    MAX_DETAILS,
    OPEN,
    TAKEN,
    Listing,
)
from bot.core.deal_support_metrics import DealSupportWeek
from bot.core.deal_support_sla import ESCALATE, NUDGE, OVERDUE
from bot.core.durations import format_duration
from bot.core.models import DealSupportRequest
from bot.core.playbook import Playbook
from bot.views.blocks import Block, button, clip, context, escape, mrkdwn, option, plain, section
from bot.views.blocks import slack_date as _slack_date
from bot.views.changes import change, with_change

TAKE = "ds_take"
DELIVER = "ds_deliver"
DECLINE = "ds_decline"
DEAL_SEARCH = "ds_deal_search"
REQUEST_VIEW = "deal_support_request"
DELIVER_VIEW = "deal_support_deliver"
DECLINE_VIEW = "deal_support_decline"
SHORTCUT = "deal_support_from_message"
ACTIONS_BLOCK = "ds_actions"
VALUE = "value"
DEAL, ASK, COMPETITOR, DUE, DETAILS = "deal", "ask_type", "competitor", "due_on", "details"
ASSET, NOTE, REASON = "asset_url", "note", "reason"
LIST_SHOWN = 10

Message = dict[str, Any]


# -- the request modal --------------------------------------------------------------------------


def _input(
    block_id: str, label: str, element: Block, *, optional: bool = False, hint: str | None = None
) -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": plain(label),
        "element": element,
    }
    if hint:
        block["hint"] = plain(hint)
    return block


def _text_element(*, multiline: bool, max_length: int, initial: str | None = None) -> Block:
    element: Block = {
        "type": "plain_text_input",
        "action_id": VALUE,
        "multiline": multiline,
        "max_length": max_length,
    }
    if initial:
        element["initial_value"] = initial
    return element


def build_request_modal(
    playbook: Playbook,
    *,
    search: bool,
    details: str | None = None,
    source_permalink: str | None = None,
    today: date | None = None,
) -> dict[str, Any]:
    """The /deal-support form; `search` picks the opportunity from the CRM (else it is typed),
    `details` and `source_permalink` pre-fill it from a message (the shortcut)."""
    if search:
        deal: Block = _input(
            DEAL,
            "Opportunity",
            {
                "type": "external_select",
                "action_id": DEAL_SEARCH,
                "placeholder": plain("Search the CRM by name"),
                "min_query_length": 2,
            },
        )
    else:
        deal = _input(
            DEAL,
            "Opportunity",
            _text_element(multiline=False, max_length=255),
            hint="No CRM is connected: type the opportunity's name.",
        )
    due: Block = {"type": "datepicker", "action_id": VALUE, "placeholder": plain("Needed by")}
    if today is not None:
        due["initial_date"] = (today + timedelta(days=3)).isoformat()
    intro = "Ask marketing for help on a live deal. The request is posted in "
    blocks: list[Block] = [
        section(intro + escape(playbook.channels.deal_support) + " for marketers to take."),
        deal,
        _input(
            ASK,
            "What do you need?",
            {
                "type": "static_select",
                "action_id": VALUE,
                "placeholder": plain("Pick an ask"),
                "options": [option(a.label, a.code) for a in playbook.deal_support.ask_types][:100],
            },
        ),
        _input(
            COMPETITOR,
            "Competitor",
            _text_element(multiline=False, max_length=255),
            optional=True,
            hint="Who you are up against, if anyone.",
        ),
        _input(DUE, "Due date", due),
        _input(
            DETAILS,
            "Details",
            _text_element(multiline=True, max_length=MAX_DETAILS, initial=details),
            hint="The deal situation, the audience and the angle you need.",
        ),
    ]
    if source_permalink:
        blocks.insert(1, context(f"From <{source_permalink}|this message>"))
    return {
        "type": "modal",
        "callback_id": REQUEST_VIEW,
        "private_metadata": json.dumps({"source": source_permalink} if source_permalink else {}),
        "title": plain("Ask marketing"),
        "submit": plain("Post request"),
        "close": plain("Cancel"),
        "blocks": blocks,
    }


def form_values(view: dict[str, Any]) -> dict[str, str | None]:
    """A submitted modal's values by block id (the selected option, text or date of its input)."""
    values: dict[str, str | None] = {}
    for block_id, actions in view.get("state", {}).get("values", {}).items():
        state: dict[str, Any] = (
            next(iter(actions.values()), {}) if isinstance(actions, dict) else {}
        )
        selected = state.get("selected_option") or {}
        values[block_id] = selected.get("value") or state.get("value") or state.get("selected_date")
    return values


def selected_label(view: dict[str, Any], block_id: str) -> str | None:
    """The text of the option selected in a submitted modal's `block_id` input."""
    actions = view.get("state", {}).get("values", {}).get(block_id)
    state: dict[str, Any] = next(iter(actions.values()), {}) if isinstance(actions, dict) else {}
    text = ((state.get("selected_option") or {}).get("text") or {}).get("text")
    return text.strip() or None if isinstance(text, str) else None


def metadata_of(view: dict[str, Any]) -> dict[str, Any]:
    """A modal's private metadata (an empty dict when missing or unreadable)."""
    try:
        found = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def request_id_of(view: dict[str, Any]) -> int | None:
    """The request a deliver / decline modal is about."""
    value = metadata_of(view).get("request_id")
    return value if isinstance(value, int) else None


def _money(amount: float | None, currency: str | None) -> str | None:
    if amount is None:
        return None
    return f"{amount:,.0f} {currency}" if currency else f"{amount:,.0f}"


def _day(day: date | None) -> str | None:
    return f"{day:%a %b} {day.day}, {day.year}" if day else None


def build_deal_options(deals: list[Deal], *, typed: str, failed: bool = False) -> dict[str, Any]:
    """Options for the opportunity search: the CRM's matches; when the CRM did not answer, one
    option that uses the typed name, so the rep can still ask."""
    if failed:
        name = clip(typed.strip(), 140)
        if not name:
            return {"options": []}
        return {"options": [option(f"Use “{name}” (CRM search unavailable)", f"name:{name}")]}
    options = []
    for deal in deals[:100]:
        facts = " · ".join(
            p
            for p in (deal.account, deal.stage, _money(deal.amount, deal.currency))
            if p and p != deal.name
        )
        label = f"{deal.name} — {facts}" if facts else deal.name
        options.append(option(label, f"deal:{deal.id}"[:150]))
    return {"options": options}


# -- the card ------------------------------------------------------------------------------------


def ask_label(playbook: Playbook, code: str) -> str:
    """The ask type's label (its code when the playbook no longer has it)."""
    ask = playbook.deal_support.ask_type(code)
    return ask.label if ask else code


def who_answers(playbook: Playbook) -> str:
    """Who may take requests, as mentions."""
    ds = playbook.deal_support
    if ds.open_to_all:
        return "anyone in the channel"
    names = [f"<@{m}>" for m in ds.marketers]
    if ds.marketer_group:
        names.append(f"<!subteam^{ds.marketer_group}>")
    return ", ".join(names)


def _deal_line(r: DealSupportRequest) -> str:
    facts = [
        escape(r.deal_stage) if r.deal_stage else None,
        escape(_money(r.deal_amount, r.deal_currency) or "") or None,
        f"closes {_day(r.deal_close_date)}" if r.deal_close_date else None,
    ]
    shown = " · ".join(f for f in facts if f)
    return f"*{escape(r.deal_name)}*" + (f"\n{shown}" if shown else "")


def _status(r: DealSupportRequest) -> str:
    if r.state == OPEN:
        return (
            f":hourglass_flowing_sand: *Unclaimed* · first response due "
            f"{_slack_date(r.first_response_due_at)}"
        )
    took = f" in {format_duration(r.claimed_at - r.created_at)}" if r.claimed_at else ""
    if r.state == CLAIMED:
        return f":raising_hand: *Taken* by <@{r.claimed_by}>{took}"
    if r.state == DELIVERED:
        line = f":white_check_mark: *Delivered* by <@{r.claimed_by}>"
        if r.delivered_at:
            line += f" in {format_duration(r.delivered_at - r.created_at)}"
        line += f" · <{r.asset_url}|the asset>" if r.asset_url else ""
        if r.delivery_note:
            line += f"\n> {escape(clip(r.delivery_note, 500))}"
        return line
    line = f":no_entry_sign: *Can't do it* · <@{r.declined_by}>"
    if r.decline_reason:
        line += f"\n> {escape(clip(r.decline_reason, 500))}"
    return line


def _card_actions(r: DealSupportRequest) -> Block | None:
    value = str(r.id)
    if r.state == OPEN:
        elements = [
            button("Take it", TAKE, value=value, style="primary"),
            button("Can't do it", DECLINE, value=value, style="danger"),
        ]
    elif r.state == CLAIMED:
        elements = [
            button("Mark delivered", DELIVER, value=value, style="primary"),
            button("Can't do it", DECLINE, value=value, style="danger"),
        ]
    else:
        return None
    return {"type": "actions", "block_id": ACTIONS_BLOCK, "elements": elements}


def build_request_card(r: DealSupportRequest, playbook: Playbook) -> Message:
    """The request's card in #deal-support, reflecting its current state."""
    label = ask_label(playbook, r.ask_type)
    fields = [
        f"*Requested by*\n<@{r.requester_slack_id}>",
        f"*Ask*\n{escape(label)}",
        f"*Competitor*\n{escape(r.competitor) if r.competitor else '—'}",
        f"*Due*\n{_day(r.due_on) or '—'}",
    ]
    blocks: list[Block] = [
        {"type": "header", "text": plain(clip(f"Deal support · {label}", 150))},
        section(_deal_line(r), fields=fields),
        section(f"*Details*\n{escape(clip(r.details, 2800))}"),
    ]
    if r.source_permalink:
        blocks.append(context(f"From <{r.source_permalink}|this message>"))
    blocks.append(section(_status(r)))
    actions = _card_actions(r)
    if actions:
        blocks.append(actions)
    footer = f"Request #{r.id}"
    if r.state == OPEN:
        footer += f" · {who_answers(playbook)} can take it; discuss in the thread"
    blocks.append(context(footer))
    text = f"Deal support: {label} for {r.deal_name}"
    if r.state == OPEN:
        text += f", requested by <@{r.requester_slack_id}>"
    else:
        text += f" ({r.state})"
    return {"text": clip(text, 3000), "blocks": blocks}


# -- deliver / decline modals --------------------------------------------------------------------


def _request_modal(
    callback_id: str, title: str, submit: str, r: DealSupportRequest, blocks: list[Block]
) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": json.dumps({"request_id": r.id}),
        "title": plain(title),
        "submit": plain(submit),
        "close": plain("Cancel"),
        "blocks": blocks,
    }


def build_deliver_modal(r: DealSupportRequest, playbook: Playbook) -> dict[str, Any]:
    """Ask for the asset link and an optional note before marking the request delivered."""
    intro = (
        f"Delivering *{escape(ask_label(playbook, r.ask_type))}* for *{escape(r.deal_name)}* "
        f"to <@{r.requester_slack_id}>."
    )
    if r.deal_id:
        intro += " A note with the link is added to the opportunity in the CRM."
    return _request_modal(
        DELIVER_VIEW,
        "Mark delivered",
        "Delivered",
        r,
        [
            {"type": "section", "text": mrkdwn(intro)},
            _input(
                ASSET,
                "Link to the asset",
                {"type": "url_text_input", "action_id": VALUE, "placeholder": plain("https://…")},
            ),
            _input(
                NOTE,
                "Note for the rep",
                _text_element(multiline=True, max_length=2000),
                optional=True,
                hint="How to use it, what to send to whom.",
            ),
        ],
    )


def build_decline_modal(r: DealSupportRequest, playbook: Playbook) -> dict[str, Any]:
    """Ask for the reason before telling the rep marketing cannot do this one."""
    return _request_modal(
        DECLINE_VIEW,
        "Can't do it",
        "Tell the rep",
        r,
        [
            {
                "type": "section",
                "text": mrkdwn(
                    f"Declining *{escape(ask_label(playbook, r.ask_type))}* for "
                    f"*{escape(r.deal_name)}*. <@{r.requester_slack_id}> sees your reason."
                ),
            },
            _input(
                REASON,
                "Why not?",
                _text_element(multiline=True, max_length=2000),
                hint="Say what could work instead, if anything.",
            ),
        ],
    )


# -- thread lines and DMs ------------------------------------------------------------------------


def _message(text: str) -> Message:
    return {"text": clip(text, 3000), "blocks": [section(text)]}


def build_deal_gone(chosen: str, details: str | None) -> Message:
    """DM to a rep whose request named an opportunity the CRM no longer holds (nothing was posted)."""
    asked = (details or "").strip()
    quoted = "\n".join(f"> {escape(line)}" for line in asked.splitlines()[:20])
    text = (
        f"revbot cannot find the opportunity “{escape(chosen)}” in the CRM any more, so your "
        "#deal-support request was not posted. Search for the opportunity again with "
        "`/deal-support`."
    )
    return _message(f"{text}\nWhat you asked:\n{quoted}" if quoted else text)


def build_thread_update(kind: str, r: DealSupportRequest, playbook: Playbook) -> Message:
    """The line posted in the card's thread for a step (taken, delivered, declined, SLA)."""
    rep = f"<@{r.requester_slack_id}>"
    label = escape(ask_label(playbook, r.ask_type).lower())
    if kind == TAKEN:
        return _message(f"{rep} <@{r.claimed_by}> is on it. Discuss the details here.")
    if kind == DELIVERED_LINE:
        text = f"{rep} delivered by <@{r.claimed_by}>: <{r.asset_url}|the {label}>"
        if r.delivery_note:
            text += f"\n> {escape(clip(r.delivery_note, 1500))}"
        return _message(text)
    if kind == DECLINED_LINE:
        text = f"{rep} <@{r.declined_by}> says marketing can't do this one"
        if r.decline_reason:
            text += f":\n> {escape(clip(r.decline_reason, 1500))}"
        return _message(text)
    if kind == NUDGE:
        return _message(
            f":bell: {who_answers(playbook)}: this request has had no answer since "
            f"{_slack_date(r.created_at)}; its first response was due "
            f"{_slack_date(r.first_response_due_at)}. *Take it* on the card."
        )
    manager = playbook.deal_support.manager
    told = f" <@{manager}> has been told." if manager else ""
    if kind == ESCALATE:
        return _message(f":rotating_light: Still unclaimed after its first-response time.{told}")
    owner = f"<@{r.claimed_by}>" if r.state == CLAIMED else "nobody has taken it"
    return _message(
        f":alarm_clock: This was due {_day(r.due_on)} and is not delivered yet ({owner})."
        + ("" if r.state == CLAIMED else told)
    )


def build_dm(kind: str, r: DealSupportRequest, playbook: Playbook) -> Message:
    """The DM for an SLA step: the manager on escalation, the owner when delivery is overdue."""
    about = (
        f"*{escape(ask_label(playbook, r.ask_type))}* for *{escape(r.deal_name)}* "
        f"(requested by <@{r.requester_slack_id}>, request #{r.id})"
    )
    where = escape(playbook.channels.deal_support)
    if kind == ESCALATE:
        return _message(
            f":rotating_light: Nobody in marketing has taken {about} since "
            f"{_slack_date(r.created_at)}; its first response was due "
            f"{_slack_date(r.first_response_due_at)}. The card is in {where}."
        )
    if kind == OVERDUE and r.state == CLAIMED:
        return _message(
            f":alarm_clock: {about} was due {_day(r.due_on)}. Mark it delivered on the card in "
            f"{where}, or tell the rep in the thread when it will be ready."
        )
    return _message(
        f":alarm_clock: {about} was due {_day(r.due_on)} and nobody has taken it. The card is in "
        f"{where}."
    )


# -- /deal-support list and help -----------------------------------------------------------------


def _list_line(r: DealSupportRequest, playbook: Playbook, *, show_requester: bool) -> str:
    due = f" · due {_day(r.due_on)}" if r.due_on else ""
    state = "unclaimed" if r.state == OPEN else f"taken by <@{r.claimed_by}>"
    who = f" · from <@{r.requester_slack_id}>" if show_requester else f" · {state}"
    return (
        f"• #{r.id} *{escape(ask_label(playbook, r.ask_type))}* for {escape(r.deal_name)}"
        f"{due}{who} · asked {_slack_date(r.created_at, '{date_short}')}"
    )


def _list_section(
    title: str, rows: list[DealSupportRequest], playbook: Playbook, *, show_requester: bool
) -> Block:
    if not rows:
        return section(f"*{title}*\nNone.")
    lines = [_list_line(r, playbook, show_requester=show_requester) for r in rows[:LIST_SHOWN]]
    if len(rows) > LIST_SHOWN:
        lines.append(f"…and {len(rows) - LIST_SHOWN} more")
    return section(f"*{title}*\n" + "\n".join(lines))


def build_listing(found: Listing, playbook: Playbook) -> Message:
    """`/deal-support list`: the caller's open requests, what they took, and the queue."""
    blocks = [
        _list_section("Your open requests", found.mine, playbook, show_requester=False),
    ]
    if found.working:
        blocks.append(
            _list_section("You are working on", found.working, playbook, show_requester=True)
        )
    if found.queue is not None:
        title = f"Unclaimed queue ({found.queue_total}), soonest due first"
        blocks.append(_list_section(title, found.queue, playbook, show_requester=True))
    text = f"You have {len(found.mine)} open #deal-support request(s)"
    if found.queue is not None:
        text += f"; {found.queue_total} unclaimed in the queue"
    return {"text": text, "blocks": blocks, "response_type": "ephemeral"}


def build_usage(asked: str = "") -> Message:
    """What `/deal-support` does, for an unknown subcommand."""
    text = (
        "`/deal-support` opens a request for marketing help on a deal; "
        "`/deal-support list` shows your open requests (and, for marketers, the unclaimed queue)."
    )
    if asked:
        text = f"`/deal-support {escape(clip(asked, 40))}` is not something revbot knows. " + text
    return {"text": text, "blocks": [section(text)], "response_type": "ephemeral"}


# -- the digest's section ------------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    return "no data" if seconds is None else format_duration(timedelta(seconds=round(seconds)))


def build_digest_section(
    week: DealSupportWeek, previous: DealSupportWeek | None, playbook: Playbook
) -> list[Block]:
    """The weekly digest's #deal-support section: volume by ask, response times, overdue,
    competitors named (input for marketing's content plan), each with last week's change."""
    before = previous or DealSupportWeek()
    if week.requests == 0:
        last = f" (last week: {before.requests:,})" if before.requests else ""
        return [section(f"*Deal support*\nNo #deal-support requests this week{last}.")]
    by_type = "\n".join(
        f"{escape(ask_label(playbook, code))}: {n:,}" for code, n in week.by_type[:10]
    )
    competitors = (
        "\n".join(f"{i}. {escape(name)}: {n:,}" for i, (name, n) in enumerate(week.competitors, 1))
        or "none named"
    )
    requests = with_change(f"{week.requests:,}", change(week.requests, before.requests))
    overdue = with_change(f"{week.overdue:,}", change(week.overdue, before.overdue))
    first = with_change(
        f"median {_duration(week.median_first_response)}",
        change(week.median_first_response, before.median_first_response),
    )
    delivery = with_change(
        f"median {_duration(week.median_delivery)}",
        change(week.median_delivery, before.median_delivery),
    )
    fields = [
        f"*Requests*\n{requests} · {week.delivered:,} delivered · {week.declined:,} declined",
        f"*Overdue*\n{overdue}",
        f"*Time to first response*\n{first} ({week.responded:,} answered)",
        f"*Time to delivery*\n{delivery}",
        f"*By ask*\n{by_type}",
        f"*Top competitors named*\n{competitors}",
    ]
    return [section("*Deal support*", fields=fields)]
