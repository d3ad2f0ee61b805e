"""Touches and deal notes as completed Tasks, upserted on an external-id field so retries never
create a second Task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.core.crm import CrmTask, DealNote, WriteResult
from integrations.salesforce import collections
from integrations.salesforce.owners import OwnerDirectory
from integrations.salesforce.session import SalesforceSession
from integrations.salesforce.soql import chunks, is_record_id

# A custom Text(255) field on Activity marked "External ID" and "Unique" (see the README).
EXTERNAL_ID_FIELD = "Revbot_External_Id__c"
SUBJECT_MAX = 255
DESCRIPTION_MAX = 32000


def _task(external_id: str, subject: str, description: str | None, day: str) -> dict[str, Any]:
    return {
        "attributes": {"type": "Task"},
        EXTERNAL_ID_FIELD: external_id,
        "Subject": subject[:SUBJECT_MAX],
        "Status": "Completed",
        "ActivityDate": day,
        "Description": description[:DESCRIPTION_MAX] if description else None,
    }


def touch_record(task: CrmTask, record_id: str, owner_id: str | None) -> dict[str, Any]:
    """A touch as a completed Task on the lead (WhoId), owned by the rep when known."""
    fields = _task(task.external_id, task.label, task.note, task.done_at.date().isoformat())
    fields["WhoId"] = record_id
    if owner_id:
        fields["OwnerId"] = owner_id
    return fields


def note_record(note: DealNote, owner_id: str | None) -> dict[str, Any]:
    """A deal note as a completed Task on the opportunity (WhatId)."""
    fields = _task(note.external_id, note.title, note.body, note.created_at.date().isoformat())
    fields["WhatId"] = note.deal_id
    if owner_id:
        fields["OwnerId"] = owner_id
    return fields


def upsert(
    session: SalesforceSession, keyed: list[tuple[str, dict[str, Any]]]
) -> list[WriteResult]:
    """Upsert Tasks on EXTERNAL_ID_FIELD, 200 a call; one result per key."""
    results: list[WriteResult] = []
    for part in chunks(keyed, collections.MAX_RECORDS):
        answers = collections.send(
            session, "PATCH", [record for _, record in part], path=f"Task/{EXTERNAL_ID_FIELD}"
        )
        results.extend(
            collections.result(key, answer) for (key, _), answer in zip(part, answers, strict=True)
        )
    return results


def log_tasks(
    session: SalesforceSession,
    owners: OwnerDirectory,
    owner_map: Mapping[str, str],
    tasks: Sequence[CrmTask],
) -> list[WriteResult]:
    """Write touches as completed Tasks on their leads."""
    results: list[WriteResult] = []
    keyed: list[tuple[str, dict[str, Any]]] = []
    owners.prefetch(t.owner_email for t in tasks if t.owner_slack_id not in owner_map)
    for task in tasks:
        record_id = task.lead.record_id_in("salesforce")
        if not is_record_id(record_id):
            results.append(WriteResult(task.key, ok=False, error="not a Salesforce lead"))
            continue
        assert record_id is not None
        owner_id = owners.user_id(owner_map, task.owner_slack_id, task.owner_email)
        keyed.append((task.key, touch_record(task, record_id, owner_id)))
    return results + upsert(session, keyed)


def add_deal_notes(
    session: SalesforceSession, owners: OwnerDirectory, notes: Sequence[DealNote]
) -> list[WriteResult]:
    """Write notes as completed Tasks on their opportunities."""
    results: list[WriteResult] = []
    keyed: list[tuple[str, dict[str, Any]]] = []
    owners.prefetch(n.author_email for n in notes)
    for note in notes:
        if not is_record_id(note.deal_id):
            results.append(
                WriteResult(note.key, ok=False, error=f"{note.deal_id!r} is not a Salesforce id")
            )
            continue
        owner_id = owners.user_id({}, None, note.author_email)
        keyed.append((note.key, note_record(note, owner_id)))
    return results + upsert(session, keyed)
