"""Slack user → Salesforce User id: the playbook's explicit mapping first, else a cached lookup by email."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from simple_salesforce import format_soql

from integrations.salesforce.session import SalesforceSession
from integrations.salesforce.soql import chunks

FOUND_TTL = timedelta(hours=1)
MISSING_TTL = timedelta(minutes=10)
LOOKUP_CHUNK = 100


class OwnerDirectory:
    """Finds the Salesforce User behind a rep; lookups by email are cached (misses for less long)."""

    def __init__(self, session: SalesforceSession, clock: Callable[[], datetime]) -> None:
        self._session = session
        self._clock = clock
        self._lock = threading.Lock()
        self._by_email: dict[str, tuple[str | None, datetime]] = {}

    def prefetch(self, emails: Iterable[str | None]) -> None:
        """Look up, in as few queries as possible, the emails not cached (or expired)."""
        now = self._clock()
        with self._lock:
            wanted = sorted(
                {
                    e.strip().lower()
                    for e in emails
                    if e and (e.strip().lower() not in self._by_email or self._expired(e, now))
                }
            )
        for part in chunks(wanted, LOOKUP_CHUNK):
            rows = self._session.query(
                format_soql(
                    "SELECT Id, Email FROM User WHERE IsActive = true AND Email IN {emails} "
                    "ORDER BY CreatedDate",
                    emails=part,
                )
            )
            found: dict[str, str] = {}
            for row in rows:
                found.setdefault(str(row.get("Email") or "").lower(), str(row["Id"]))
            with self._lock:
                for email in part:
                    user_id = found.get(email)
                    ttl = FOUND_TTL if user_id else MISSING_TTL
                    self._by_email[email] = (user_id, now + ttl)

    def user_id(
        self, owners: Mapping[str, str], slack_id: str | None, email: str | None
    ) -> str | None:
        """The rep's User id: `owners[slack_id]` when mapped, else the cached lookup of `email`."""
        if slack_id and slack_id in owners:
            return owners[slack_id]
        if not email:
            return None
        with self._lock:
            cached = self._by_email.get(email.strip().lower())
        return cached[0] if cached else None

    def _expired(self, email: str, now: datetime) -> bool:
        return self._by_email[email.strip().lower()][1] <= now
