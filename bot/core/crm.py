"""The CRM protocol every adapter implements, and the value types that cross it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Protocol

LeadStatus = Literal["open", "accepted", "rejected", "recycled"]


@dataclass(frozen=True)
class LeadRef:
    """How a lead is known to revbot and, when it came from one, to the CRM."""

    lead_id: int
    origin: str
    external_id: str
    crm_record_id: str | None = None


@dataclass(frozen=True)
class LeadDisposition:
    """The absolute state of a lead's handoff, written as a whole so a replay changes nothing."""

    lead: LeadRef
    status: LeadStatus
    status_value: str
    owner_slack_id: str | None
    owner_email: str | None
    reason_code: str | None
    reason_value: str | None
    note: str | None
    revisit_on: date | None
    mql_at: datetime
    accepted_at: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True)
class CrmWrite:
    """One write in a batch; `key` ties the result back to its outbox row."""

    key: str
    disposition: LeadDisposition


@dataclass(frozen=True)
class CrmTask:
    """A touch a rep logged, written to the CRM as a completed task (engagement) on the lead.

    `key` ties the result back to its outbox row; `external_id` stays the same across retries so
    an adapter can upsert on it instead of creating the task twice.
    """

    key: str
    external_id: str
    lead: LeadRef
    kind: str
    label: str
    note: str | None
    owner_slack_id: str
    owner_email: str | None
    done_at: datetime


@dataclass(frozen=True)
class WriteResult:
    """What happened to one write: done, worth retrying, or refused for good (with the reason)."""

    key: str
    ok: bool
    retryable: bool = False
    error: str | None = None


class CrmError(Exception):
    """A CRM call failed as a whole; `retry_after` (seconds) when the vendor said when to retry."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CrmUnavailable(CrmError):
    """The CRM could not be reached or answered with a server error."""


class CrmRateLimited(CrmError):
    """The CRM's API budget is spent for now."""


class CrmAuthError(CrmError):
    """The CRM refused revbot's credentials; retrying will not help until they are fixed."""

    retryable = False


class CRM(Protocol):
    """What revbot needs from a CRM; adapters live in `integrations/` and are built by build_crm()."""

    name: str
    max_batch: int

    def apply(self, writes: Sequence[CrmWrite]) -> list[WriteResult]:
        """Write a batch of dispositions; one result per write, in any order."""
        ...

    def log_tasks(self, tasks: Sequence[CrmTask]) -> list[WriteResult]:
        """Write a batch of completed touch tasks; one result per task, in any order."""
        ...

    def record_url(self, lead: LeadRef) -> str | None:
        """A deep link to the lead's record, or None when the CRM has no web page for it."""
        ...

    def check(self) -> str:
        """Log in and describe the connection; raise CrmError when it fails."""
        ...
