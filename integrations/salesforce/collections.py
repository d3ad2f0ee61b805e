"""sObject Collections calls (200 records a call, allOrNone=false) and their per-record results."""

from __future__ import annotations

from typing import Any

from bot.core.crm import CrmRateLimited, CrmUnavailable, WriteResult
from integrations.salesforce.session import SalesforceSession

MAX_RECORDS = 200
RETRYABLE = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"})


def send(
    session: SalesforceSession, method: str, records: list[dict[str, Any]], path: str = ""
) -> list[dict[str, Any]]:
    """PATCH/POST up to 200 records to `composite/sobjects[/path]`; one result per record, in order.

    A record refused for REQUEST_LIMIT_EXCEEDED means the org's budget is spent: the whole call
    counts as rate limited (the records that did land are written again later, harmlessly).
    """
    assert len(records) <= MAX_RECORDS
    answer = session.rest(
        method,
        "composite/sobjects" + (f"/{path}" if path else ""),
        {"allOrNone": False, "records": records},
    )
    if not isinstance(answer, list) or len(answer) != len(records):
        raise CrmUnavailable("Salesforce answered a collection call without one result per record")
    limited = [r for r in answer if "REQUEST_LIMIT_EXCEEDED" in _codes(r)]
    if limited:
        wait = session.pause_for_rate_limit()
        raise CrmRateLimited(
            "Salesforce API limit reached (REQUEST_LIMIT_EXCEEDED)", retry_after=wait
        )
    return answer


def result(key: str, answer: dict[str, Any]) -> WriteResult:
    """A record's collection result as a WriteResult; lock contention is retried, the rest is final."""
    if answer.get("success"):
        return WriteResult(key, ok=True)
    errors = [e for e in answer.get("errors") or [] if isinstance(e, dict)]
    retryable = bool(errors) and all(e.get("statusCode") in RETRYABLE for e in errors)
    return WriteResult(key, ok=False, retryable=retryable, error=error_text(errors))


def error_text(errors: list[dict[str, Any]]) -> str:
    """`CODE: message (fields: A, B)` for each error Salesforce gave."""
    if not errors:
        return "Salesforce refused the record without saying why"
    parts = []
    for e in errors:
        text = f"{e.get('statusCode', 'ERROR')}: {e.get('message', '')}".strip()
        fields = [str(f) for f in e.get("fields") or []]
        parts.append(text + (f" (fields: {', '.join(fields)})" if fields else ""))
    return "; ".join(parts)


def _codes(answer: Any) -> set[str]:
    if not isinstance(answer, dict):
        return set()
    return {str(e.get("statusCode")) for e in answer.get("errors") or [] if isinstance(e, dict)}
