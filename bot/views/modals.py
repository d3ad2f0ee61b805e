"""Modals for rejecting and recycling a lead, and for logging a touch on it."""

from __future__ import annotations

import json
from typing import Any

from bot.core.playbook import Reason
from bot.views.blocks import Block, clip, context, escape, mrkdwn, option, plain

REJECT_VIEW = "lead_reject_modal"
RECYCLE_VIEW = "lead_recycle_modal"
TOUCH_VIEW = "lead_touch_modal"
REASON_BLOCK, NOTE_BLOCK, REVISIT_BLOCK = "reason", "note", "revisit_on"
TOUCH_TYPE_BLOCK = "touch_type"
VALUE = "value"


def _reason_input(reasons: list[Reason], label: str) -> Block:
    return {
        "type": "input",
        "block_id": REASON_BLOCK,
        "label": plain(label),
        "element": {
            "type": "static_select",
            "action_id": VALUE,
            "placeholder": plain("Pick a reason"),
            "options": [option(r.label, r.code) for r in reasons][:100],
        },
    }


def _note_input(label: str, *, optional: bool, hint: str) -> Block:
    return {
        "type": "input",
        "block_id": NOTE_BLOCK,
        "optional": optional,
        "label": plain(label),
        "hint": plain(hint),
        "element": {
            "type": "plain_text_input",
            "action_id": VALUE,
            "multiline": True,
            "max_length": 500,
        },
    }


def _modal(
    callback_id: str, title: str, submit: str, cycle_id: int, blocks: list[Block]
) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": json.dumps({"cycle_id": cycle_id}),
        "title": plain(clip(title, 24)),
        "submit": plain(submit),
        "close": plain("Cancel"),
        "blocks": blocks,
    }


def build_reject_modal(cycle_id: int, lead_name: str, reasons: list[Reason]) -> dict[str, Any]:
    """Ask for a reason code and one sentence of context before rejecting."""
    return _modal(
        REJECT_VIEW,
        "Reject lead",
        "Reject",
        cycle_id,
        [
            {
                "type": "section",
                "text": mrkdwn(f"Rejecting *{clip(lead_name, 200)}*. Marketing sees your reason."),
            },
            _reason_input(reasons, "Reason"),
            _note_input(
                "Context for marketing",
                optional=False,
                hint="One sentence: what made this lead not sales-ready?",
            ),
        ],
    )


def build_recycle_modal(
    cycle_id: int, lead_name: str, reasons: list[Reason], *, touch_rule: str | None = None
) -> dict[str, Any]:
    """Ask for a reason code and a revisit date before recycling to marketing (with the touch
    minimum, when the playbook has one, stated up front)."""
    intro: list[Block] = [
        {
            "type": "section",
            "text": mrkdwn(f"Recycling *{clip(lead_name, 200)}* back to marketing nurture."),
        }
    ]
    if touch_rule:
        intro.append(context(touch_rule))
    return _modal(
        RECYCLE_VIEW,
        "Recycle lead",
        "Recycle",
        cycle_id,
        [
            *intro,
            _reason_input(reasons, "Reason"),
            {
                "type": "input",
                "block_id": REVISIT_BLOCK,
                "label": plain("Revisit on"),
                "element": {
                    "type": "datepicker",
                    "action_id": VALUE,
                    "placeholder": plain("When to bring it back"),
                },
            },
            _note_input(
                "Note", optional=True, hint="Anything marketing should know for the next touch."
            ),
        ],
    )


def build_touch_modal(
    cycle_id: int, lead_name: str, types: list[tuple[str, str]], *, logged: int = 0
) -> dict[str, Any]:
    """Ask what kind of touch was made (from the playbook's `(code, label)` types) and an optional note."""
    so_far = f" ({logged} logged so far)" if logged else ""
    return _modal(
        TOUCH_VIEW,
        "Log touch",
        "Log touch",
        cycle_id,
        [
            {
                "type": "section",
                "text": mrkdwn(f"Logging a touch on *{escape(clip(lead_name, 200))}*{so_far}."),
            },
            {
                "type": "input",
                "block_id": TOUCH_TYPE_BLOCK,
                "label": plain("Touch"),
                "element": {
                    "type": "static_select",
                    "action_id": VALUE,
                    "placeholder": plain("Pick a touch type"),
                    "options": [option(label, code) for code, label in types][:100],
                },
            },
            _note_input("Note", optional=True, hint="What happened: voicemail, reply, next step…"),
        ],
    )


def submitted_values(view: dict[str, Any]) -> dict[str, str | None]:
    """The modal's input values by block id (selected option, text or date)."""
    values: dict[str, str | None] = {}
    for block_id, actions in view.get("state", {}).get("values", {}).items():
        state = actions.get(VALUE, {})
        selected = state.get("selected_option") or {}
        values[block_id] = selected.get("value") or state.get("value") or state.get("selected_date")
    return values


def build_not_saved(view: dict[str, Any], problem: str) -> str:
    """DM text when a submitted card modal could not be saved after it closed (a race)."""
    title = str((view.get("title") or {}).get("text") or "change")
    return f"Your “{title}” was not saved: {problem}"


def cycle_id_of(view: dict[str, Any]) -> int | None:
    """The cycle a submitted modal is about (from its private metadata)."""
    try:
        value = json.loads(view.get("private_metadata") or "{}").get("cycle_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None
