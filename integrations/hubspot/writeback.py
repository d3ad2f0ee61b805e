"""Dispositions to HubSpot contacts: batch updates of 100, per-input errors retried or refused."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from bot.core.crm import CrmWrite, LeadDisposition, WriteResult
from bot.core.playbook import CrmFieldMap, FieldRole
from integrations.hubspot.client import HubSpotApi, HubSpotApiError
from integrations.hubspot.owners import OwnerDirectory

log = logging.getLogger(__name__)

MAX_INPUTS = 100
STATUS_PROPERTY = "hs_lead_status"
OWNER_PROPERTY = "hubspot_owner_id"
# Categories that will fail the same way on every retry: the record or the values are wrong.
PERMANENT_CATEGORIES = frozenset(("VALIDATION_ERROR", "OBJECT_NOT_FOUND", "INVALID_OPTION"))
MAX_ERROR_CHARS = 500


def hubspot_id(write: CrmWrite) -> str | None:
    """The contact id a write goes to, or None when the lead has no (numeric) HubSpot id."""
    record_id = write.disposition.lead.record_id_in("hubspot")
    return record_id if record_id and record_id.isdigit() else None


def contact_properties(
    d: LeadDisposition, fields: CrmFieldMap, owner_id: str | None
) -> dict[str, str]:
    """The properties a disposition sets, as absolute state ("" clears a property)."""
    props = {STATUS_PROPERTY: d.status_value}
    values: dict[FieldRole, str | None] = {
        "reason": d.reason_value if d.status in ("rejected", "recycled") else None,
        "note": d.note,
        "revisit_on": d.revisit_on.isoformat() if d.revisit_on else None,
    }
    for role, value in values.items():
        name = fields.field(role)
        if name:
            props[name] = value or ""
    if d.status == "accepted" and owner_id:
        props[OWNER_PROPERTY] = owner_id
    return props


def error_text(category: str | None, message: str | None, details: Sequence[Any] = ()) -> str:
    """A per-input error as people read it, with the property errors HubSpot listed."""
    parts = [str(message or "rejected by HubSpot")]
    for detail in details:
        text = getattr(detail, "message", None) or (
            detail.get("message") if isinstance(detail, dict) else None
        )
        if text and text not in parts[0]:
            parts.append(str(text))
    return f"{category or 'ERROR'}: {'; '.join(parts)}"[:MAX_ERROR_CHARS]


def _context_ids(context: Any) -> list[str]:
    if not isinstance(context, dict):
        return []
    return [str(i) for i in context.get("ids") or []]


def refused_ids(body: dict[str, Any]) -> list[str]:
    """Record ids a whole-batch 400 body names (its context or its error details)."""
    ids = _context_ids(body.get("context"))
    for detail in body.get("errors") or []:
        if isinstance(detail, dict):
            ids.extend(_context_ids(detail.get("context")))
    return list(dict.fromkeys(ids))


class ContactWriter:
    """Writes dispositions with `POST /crm/v3/objects/contacts/batch/update`."""

    def __init__(self, api: HubSpotApi, fields: CrmFieldMap, owners: OwnerDirectory) -> None:
        self._api = api
        self._fields = fields
        self._owners = owners

    def apply(self, writes: Sequence[CrmWrite]) -> list[WriteResult]:
        """One result per write; whole-call failures (429, 5xx, auth) raise a CrmError."""
        results: list[WriteResult] = []
        by_id: dict[str, list[CrmWrite]] = {}
        for write in writes:
            record_id = hubspot_id(write)
            if record_id is None:
                results.append(
                    WriteResult(write.key, ok=False, error="the lead has no HubSpot contact id")
                )
            else:
                by_id.setdefault(record_id, []).append(write)
        ids = list(by_id)
        for start in range(0, len(ids), MAX_INPUTS):
            chunk = {i: by_id[i] for i in ids[start : start + MAX_INPUTS]}
            outcome = self._update(self._inputs(chunk), retry_rest=True)
            for record_id, chunk_writes in chunk.items():
                ok, retryable, error = outcome.get(
                    record_id, (False, True, "HubSpot returned no result for this contact")
                )
                results.extend(
                    WriteResult(w.key, ok=ok, retryable=retryable, error=error)
                    for w in chunk_writes
                )
        return results

    def _inputs(self, chunk: dict[str, list[CrmWrite]]) -> list[dict[str, Any]]:
        inputs = []
        for record_id, same in chunk.items():
            d = same[-1].disposition  # rows of one lead render the same current state
            owner = (
                self._owners.owner_id(d.owner_slack_id, d.owner_email)
                if d.status == "accepted"
                else None
            )
            inputs.append(
                {"id": record_id, "properties": contact_properties(d, self._fields, owner)}
            )
        return inputs

    def _update(
        self, inputs: list[dict[str, Any]], *, retry_rest: bool
    ) -> dict[str, tuple[bool, bool, str | None]]:
        try:
            response = self._api.call(self._api.contacts.batch.update, {"inputs": inputs})
        except HubSpotApiError as exc:
            return self._refused(inputs, exc, retry_rest=retry_rest)
        outcome: dict[str, tuple[bool, bool, str | None]] = {
            str(r.id): (True, False, None) for r in response.results or []
        }
        for err in getattr(response, "errors", None) or []:
            text = error_text(err.category, err.message, err.errors or [])
            retryable = err.category not in PERMANENT_CATEGORIES
            for record_id in _context_ids(err.context):
                outcome[record_id] = (False, retryable, text)
        return outcome

    def _refused(
        self, inputs: list[dict[str, Any]], exc: HubSpotApiError, *, retry_rest: bool
    ) -> dict[str, tuple[bool, bool, str | None]]:
        text = error_text(
            exc.body.get("category"), exc.body.get("message"), exc.body.get("errors") or []
        )
        sent = [str(i["id"]) for i in inputs]
        named = [i for i in refused_ids(exc.body) if i in sent]
        if not named or len(named) == len(sent):
            # Refused as a whole (e.g. a property that does not exist): nothing was written.
            return {i: (False, False, text) for i in sent}
        outcome: dict[str, tuple[bool, bool, str | None]] = {i: (False, False, text) for i in named}
        rest = [i for i in inputs if str(i["id"]) not in named]
        if not retry_rest:
            unwritten = "not written: HubSpot refused the batch it was in"
            outcome.update({str(i["id"]): (False, True, unwritten) for i in rest})
            return outcome
        log.warning("HubSpot refused %d contact update(s); writing the rest again", len(named))
        outcome.update(self._update(rest, retry_rest=False))
        return outcome
