"""Touches as completed task engagements on contacts, and deal notes as note engagements.

HubSpot's batch create has no idempotency key, so before creating revbot searches for what an
earlier attempt may already have written: a task's subject carries the touch's external id
(`Call (revbot-touch-17)`), searched with `hs_task_subject IN [...]`; a note carries its external
id in its body and is searched by its `hs_timestamp` on its deal. Only what is not found is created.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

from bot.core.crm import CrmTask, DealNote, WriteResult
from integrations.hubspot.client import HubSpotApi, HubSpotApiError
from integrations.hubspot.owners import OwnerDirectory
from integrations.hubspot.records import epoch_ms
from integrations.hubspot.search import MAX_FILTER_GROUPS, SearchBuilder
from integrations.hubspot.writeback import MAX_INPUTS, error_text

# HubSpot-defined association type ids (v4 associations).
TASK_TO_CONTACT = 204
NOTE_TO_DEAL = 214
TASK_TYPES = {"call": "CALL", "email": "EMAIL"}
MAX_SEARCH_PAGES = 5


def task_subject(task: CrmTask) -> str:
    """The subject of a touch's task; it carries the external id that makes retries harmless."""
    return f"{task.label} ({task.external_id})"


def note_body(note: DealNote) -> str:
    """A deal note's HTML body, ending with the external id that makes retries harmless."""
    return (
        f"<p><strong>{html.escape(note.title)}</strong></p>"
        f"<p>{html.escape(note.body)}</p>"
        f"<p>revbot ref {html.escape(note.external_id)}</p>"
    )


def _association(record_id: str, type_id: int) -> dict[str, Any]:
    return {
        "to": {"id": record_id},
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
    }


class Engagements:
    """Creates tasks and notes once each."""

    def __init__(self, api: HubSpotApi, owners: OwnerDirectory) -> None:
        self._api = api
        self._owners = owners
        self._search = SearchBuilder()

    def log_tasks(self, tasks: Sequence[CrmTask]) -> list[WriteResult]:
        """One completed task per touch, associated with the contact; none twice."""
        results: list[WriteResult] = []
        pending: list[tuple[CrmTask, str]] = []
        for task in tasks:
            contact = task.lead.record_id_in("hubspot")
            if contact and contact.isdigit():
                pending.append((task, contact))
            else:
                results.append(
                    WriteResult(task.key, ok=False, error="the lead has no HubSpot contact id")
                )
        for start in range(0, len(pending), MAX_INPUTS):
            results.extend(self._tasks(pending[start : start + MAX_INPUTS]))
        return results

    def _tasks(self, chunk: list[tuple[CrmTask, str]]) -> list[WriteResult]:
        subjects = [task_subject(t) for t, _ in chunk]
        groups = [[self._search.filter("hs_task_subject", "IN", values=subjects)]]
        found = {
            str(props.get("hs_task_subject"))
            for props in self._find(self._api.tasks, groups, ["hs_task_subject"])
        }
        todo = [(t, c) for t, c in chunk if task_subject(t) not in found]
        inputs = [
            {
                "properties": self._task_properties(task),
                "associations": [_association(contact, TASK_TO_CONTACT)],
            }
            for task, contact in todo
        ]
        created = self._create(self._api.tasks, inputs, lambda p: p.get("hs_task_subject"))
        return [self._result(t.key, task_subject(t), found, created) for t, _ in chunk]

    def _task_properties(self, task: CrmTask) -> dict[str, str]:
        props = {
            "hs_task_subject": task_subject(task),
            "hs_task_body": task.note or "",
            "hs_task_status": "COMPLETED",
            "hs_task_type": TASK_TYPES.get(task.kind, "TODO"),
            "hs_timestamp": str(epoch_ms(task.done_at)),
        }
        owner = self._owners.owner_id(task.owner_slack_id, task.owner_email)
        if owner:
            props["hubspot_owner_id"] = owner
        return props

    def add_deal_notes(self, notes: Sequence[DealNote]) -> list[WriteResult]:
        """One note per DealNote, associated with its deal; none twice."""
        results: list[WriteResult] = []
        valid = []
        for note in notes:
            if note.deal_id.isdigit():
                valid.append(note)
            else:
                results.append(
                    WriteResult(
                        note.key, ok=False, error=f"no HubSpot deal with id {note.deal_id!r}"
                    )
                )
        for start in range(0, len(valid), MAX_FILTER_GROUPS):
            results.extend(self._notes(valid[start : start + MAX_FILTER_GROUPS]))
        return results

    def _notes(self, chunk: list[DealNote]) -> list[WriteResult]:
        groups = [
            [
                self._search.filter("hs_timestamp", "EQ", str(epoch_ms(n.created_at))),
                self._search.filter("associations.deal", "EQ", n.deal_id),
            ]
            for n in chunk
        ]
        bodies = [
            str(p.get("hs_note_body") or "")
            for p in self._find(self._api.notes, groups, ["hs_note_body"])
        ]
        found = {n.external_id for n in chunk if any(_carries(b, n.external_id) for b in bodies)}
        inputs = [
            {
                "properties": self._note_properties(n),
                "associations": [_association(n.deal_id, NOTE_TO_DEAL)],
            }
            for n in chunk
            if n.external_id not in found
        ]
        externals = [n.external_id for n in chunk]
        created = self._create(
            self._api.notes,
            inputs,
            lambda p: next(
                (e for e in externals if _carries(str(p.get("hs_note_body") or ""), e)), None
            ),
        )
        return [self._result(n.key, n.external_id, found, created) for n in chunk]

    def _note_properties(self, note: DealNote) -> dict[str, str]:
        props = {"hs_note_body": note_body(note), "hs_timestamp": str(epoch_ms(note.created_at))}
        owner = self._owners.owner_id(None, note.author_email)
        if owner:
            props["hubspot_owner_id"] = owner
        return props

    def _find(
        self, apis: Any, groups: list[list[Any]], properties: list[str]
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(MAX_SEARCH_PAGES):
            body = self._search.body(groups, properties=properties, limit=200, after=after)
            page = self._api.call(apis.search.do_search, body, search=True)
            found.extend(r.properties or {} for r in page.results or [])
            after = page.paging.next.after if page.paging and page.paging.next else None
            if after is None:
                break
        return found

    def _create(
        self,
        apis: Any,
        inputs: list[dict[str, Any]],
        identify: Callable[[dict[str, Any]], str | None],
    ) -> dict[str, str | None]:
        """Create the inputs; identity -> None when created, or the error text when refused."""
        if not inputs:
            return {}
        try:
            response = self._api.call(apis.batch.create, {"inputs": inputs})
        except HubSpotApiError as exc:
            if len(inputs) > 1:
                # One bad input (e.g. an association to a deleted deal) makes HubSpot refuse the
                # whole batch: create each alone so only the bad one fails.
                refused: dict[str, str | None] = {}
                for one in inputs:
                    refused.update(self._create(apis, [one], identify))
                return refused
            text = error_text(
                exc.body.get("category"), exc.body.get("message"), exc.body.get("errors") or []
            )
            return {identify(inputs[0]["properties"]) or "*": text}
        created: dict[str, str | None] = {}
        for record in response.results or []:
            identity = identify(record.properties or {})
            if identity is not None:
                created[identity] = None
        return created

    @staticmethod
    def _result(
        key: str, identity: str, found: set[str], created: dict[str, str | None]
    ) -> WriteResult:
        if identity in found or (identity in created and created[identity] is None):
            return WriteResult(key, ok=True)
        refused = created.get(identity) or created.get("*")
        if refused:
            return WriteResult(key, ok=False, retryable=False, error=refused)
        return WriteResult(key, ok=False, retryable=True, error="HubSpot returned no result for it")


def _carries(body: str, external_id: str) -> bool:
    return f"revbot ref {html.escape(external_id)}" in body
