"""The CRM protocol every adapter implements, and the value types that cross it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, Protocol

LeadStatus = Literal["open", "accepted", "rejected", "recycled"]


@dataclass(frozen=True)
class LeadRef:
    """How a lead is known to revbot and, when it came from one, to the CRM."""

    lead_id: int
    origin: str
    external_id: str
    crm_record_id: str | None = None

    def record_id_in(self, crm_name: str) -> str | None:
        """The lead's record id in `crm_name`: the stored CRM id, else its external id when the
        lead came from that CRM, else None (the CRM does not hold it)."""
        if self.crm_record_id:
            return self.crm_record_id
        return self.external_id if self.origin == crm_name else None


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


@dataclass(frozen=True)
class MqlPage:
    """MQLs a poll found after a watermark: intake-shaped lead dicts, and where the next poll starts.

    Each lead dict is what `validate_lead` accepts: `external_id` (the CRM record id), `source`
    (the CRM's name), `crm_record_id`, `mql_at` and whatever context the record holds.
    `more` is True when the CRM holds further pages after `watermark`.
    """

    leads: list[dict[str, Any]]
    watermark: str | None
    more: bool = False


@dataclass(frozen=True)
class LeadOutcome:
    """How far a lead got in the CRM after the handoff: SQL, opportunity, won or lost."""

    lead: LeadRef
    converted: bool
    converted_at: datetime | None = None
    lifecycle_stage: str | None = None
    opportunity_id: str | None = None
    opportunity_stage: str | None = None
    amount: float | None = None
    currency: str | None = None
    is_closed: bool = False
    is_won: bool = False
    opportunity_created_at: datetime | None = None
    closed_at: datetime | None = None


@dataclass(frozen=True)
class Deal:
    """An opportunity (Salesforce) or deal (HubSpot) as people read it: stage as a label, never an id."""

    id: str
    name: str
    stage: str | None = None
    amount: float | None = None
    currency: str | None = None
    close_date: date | None = None
    owner: str | None = None
    next_step: str | None = None
    account: str | None = None
    url: str | None = None
    is_closed: bool = False
    is_won: bool = False


@dataclass(frozen=True)
class DealNote:
    """A note written on a deal (e.g. a delivered deal-support asset); `external_id` is stable
    across retries so an adapter can avoid writing it twice."""

    key: str
    external_id: str
    deal_id: str
    title: str
    body: str
    author_email: str | None
    created_at: datetime


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

    def add_deal_notes(self, notes: Sequence[DealNote]) -> list[WriteResult]:
        """Write a batch of notes on deals; one result per note, in any order."""
        ...

    def poll_mqls(self, watermark: str | None, *, now: datetime) -> MqlPage:
        """MQLs changed after `watermark` (None: start from `now`), oldest first, one page."""
        ...

    def fetch_mqls(self, record_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The records among `record_ids` that are MQLs now, as intake-shaped lead dicts."""
        ...

    def fetch_outcomes(self, leads: Sequence[LeadRef]) -> list[LeadOutcome]:
        """Conversion and opportunity outcomes of these leads (only the ones the CRM knows)."""
        ...

    def search_deals(self, text: str, *, limit: int = 10) -> list[Deal]:
        """Open and recent deals whose name contains `text` (user text: only ever a value)."""
        ...

    def get_deal(self, deal_id: str) -> Deal | None:
        """One deal by id, or None when there is no such deal."""
        ...

    def record_url(self, lead: LeadRef) -> str | None:
        """A deep link to the lead's record, or None when the CRM has no web page for it."""
        ...

    def check(self) -> str:
        """Log in and describe the connection; raise CrmError when it fails."""
        ...
