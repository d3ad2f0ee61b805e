"""Dispositions → Lead updates through sObject Collections (PATCH, 200 a call, allOrNone=false)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from bot.core.crm import CrmWrite, LeadDisposition, WriteResult
from bot.core.playbook import CrmFieldMap
from integrations.salesforce import collections
from integrations.salesforce.owners import OwnerDirectory
from integrations.salesforce.session import SalesforceSession
from integrations.salesforce.soql import chunks, ident, is_record_id

log = logging.getLogger(__name__)

NOT_SALESFORCE = "not a Salesforce lead"


def lead_fields(d: LeadDisposition, field_map: CrmFieldMap, owner_id: str | None) -> dict[str, Any]:
    """The Lead fields a disposition sets: Status, reason / note / revisit date (null clears a
    stale value, so a replay writes the same absolute state), OwnerId on accept."""
    values: dict[str, Any] = {"Status": d.status_value}
    for role, value in (
        ("reason", d.reason_value),
        ("note", d.note),
        ("revisit_on", d.revisit_on.isoformat() if d.revisit_on else None),
    ):
        name = field_map.field(role)  # type: ignore[arg-type]
        if name:
            values[ident(name)] = value
    if d.status == "accepted" and owner_id:
        values["OwnerId"] = owner_id
    return values


def apply(
    session: SalesforceSession,
    owners: OwnerDirectory,
    field_map: CrmFieldMap,
    writes: Sequence[CrmWrite],
) -> list[WriteResult]:
    """Write each disposition to its Lead; one result per write (per-record errors included)."""
    results: list[WriteResult] = []
    keys_by_id: dict[str, list[str]] = {}
    latest: dict[str, LeadDisposition] = {}
    for write in writes:
        record_id = write.disposition.lead.record_id_in("salesforce")
        if record_id is None:
            results.append(WriteResult(write.key, ok=False, error=NOT_SALESFORCE))
        elif not is_record_id(record_id):
            results.append(
                WriteResult(
                    write.key, ok=False, error=f"{record_id!r} is not a Salesforce record id"
                )
            )
        else:
            # Two rows for one lead render the same current state: send the lead once.
            keys_by_id.setdefault(record_id, []).append(write.key)
            latest[record_id] = write.disposition
    accepted = [d for d in latest.values() if d.status == "accepted"]
    owners.prefetch(d.owner_email for d in accepted if d.owner_slack_id not in field_map.owners)
    for part in chunks(list(latest), collections.MAX_RECORDS):
        records = []
        for record_id in part:
            d = latest[record_id]
            owner_id = owners.user_id(field_map.owners, d.owner_slack_id, d.owner_email)
            if d.status == "accepted" and owner_id is None:
                log.warning(
                    "lead %s accepted by Slack user %s: no Salesforce user found for them, "
                    "written without an owner (map them under crm_fields.salesforce.owners)",
                    record_id,
                    d.owner_slack_id,
                )
            records.append(
                {
                    "attributes": {"type": "Lead"},
                    "id": record_id,
                    **lead_fields(d, field_map, owner_id),
                }
            )
        answers = collections.send(session, "PATCH", records)
        for record_id, answer in zip(part, answers, strict=True):
            for key in keys_by_id[record_id]:
                results.append(collections.result(key, answer))
    return results
