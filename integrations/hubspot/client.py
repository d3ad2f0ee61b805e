"""The HubSpot SDK client as revbot uses it: one host, paced calls, vendor errors as CRM errors."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, TypeVar

import urllib3
from hubspot import HubSpot
from urllib3.util.retry import Retry

from bot.core.crm import CrmAuthError, CrmError, CrmRateLimited, CrmUnavailable
from integrations.hubspot.ratelimit import SlidingWindowLimiter

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
# Private apps get 100 requests per 10 s on the smallest plans; the search API 5 per second.
GENERAL_LIMIT = (100, 10.0)
SEARCH_LIMIT = (4, 1.0)
DEFAULT_RETRY_AFTER = 10.0
DAILY_RETRY_AFTER = 3600.0

T = TypeVar("T")


class HubSpotApiError(CrmError):
    """HubSpot refused one request (a 4xx other than auth and rate limits); `body` is its JSON."""

    retryable = False

    def __init__(self, message: str, *, status: int, body: dict[str, Any]) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class HubSpotApi:
    """hubspot-api-client pointed at `host`, with the API objects revbot calls built once.

    Every call goes through `call`: it waits for the rate limiters, sets a timeout, and turns
    the SDK's exceptions into revbot's CRM errors (the SDK does not retry: the outbox does).
    After a 429 every call is refused without reaching HubSpot until its Retry-After (or the
    limit's window) has passed, so a backlog of batches draws one 429, not one per batch.
    """

    def __init__(
        self,
        access_token: str,
        host: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.host = host.rstrip("/")
        self.client = HubSpot(access_token=access_token, host=self.host, retry=Retry(total=0))
        self.general_limiter = SlidingWindowLimiter(*GENERAL_LIMIT, clock=clock, sleep=sleep)
        self.search_limiter = SlidingWindowLimiter(*SEARCH_LIMIT, clock=clock, sleep=sleep)
        self._now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._pause_lock = threading.Lock()
        self._paused_until: datetime | None = None

    def use_clock(self, now: Callable[[], datetime]) -> None:
        """Measure rate-limit pauses on `now` (the clock the outbox schedules retries on)."""
        self._now = now

    @cached_property
    def contacts(self) -> Any:
        """Contacts: batch read/update and search."""
        return _Apis(self.client.crm.contacts)

    @cached_property
    def deals(self) -> Any:
        """Deals: basic read, batch read and search."""
        return _Apis(self.client.crm.deals)

    @cached_property
    def tasks(self) -> Any:
        """Task engagements: batch create and search."""
        return _Apis(self.client.crm.objects.tasks)

    @cached_property
    def notes(self) -> Any:
        """Note engagements: batch create and search."""
        return _Apis(self.client.crm.objects.notes)

    @cached_property
    def owners(self) -> Any:
        """The owners API."""
        return self.client.crm.owners.owners_api

    @cached_property
    def pipelines(self) -> Any:
        """The pipelines API."""
        return self.client.crm.pipelines.pipelines_api

    @cached_property
    def properties(self) -> Any:
        """The properties API."""
        return self.client.crm.properties.core_api

    @cached_property
    def associations(self) -> Any:
        """The v4 associations batch API."""
        return self.client.crm.associations.v4.batch_api

    def call(self, method: Callable[..., T], *args: Any, search: bool = False) -> T:
        """Call one SDK method, paced and with a timeout; raise a CrmError when it fails."""
        self._check_pause()
        self.general_limiter.acquire()
        if search:
            self.search_limiter.acquire()
        try:
            return method(*args, _request_timeout=REQUEST_TIMEOUT)
        except urllib3.exceptions.HTTPError as exc:
            raise CrmUnavailable(f"HubSpot could not be reached ({type(exc).__name__})") from exc
        except Exception as exc:
            status = getattr(exc, "status", None)
            if not isinstance(status, int):
                raise
            error = translate(status, _body(exc), _headers(exc))
            if isinstance(error, CrmRateLimited) and error.retry_after:
                with self._pause_lock:
                    self._paused_until = self._now() + timedelta(seconds=error.retry_after)
            raise error from exc

    def _check_pause(self) -> None:
        with self._pause_lock:
            until = self._paused_until
        left = (until - self._now()).total_seconds() if until is not None else 0.0
        if left > 0:
            raise CrmRateLimited(
                "HubSpot rate limit reached; calls are paused until its window passes",
                retry_after=left,
            )


class _Apis:
    """The basic, batch and search APIs of one CRM object type."""

    def __init__(self, discovery: Any) -> None:
        self.basic = discovery.basic_api
        self.batch = discovery.batch_api
        self.search = discovery.search_api


def _body(exc: Exception) -> dict[str, Any]:
    raw = getattr(exc, "body", None)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _headers(exc: Exception) -> dict[str, str]:
    headers = getattr(exc, "headers", None) or {}
    return {str(k).lower(): str(v) for k, v in dict(headers).items()}


def translate(status: int, body: dict[str, Any], headers: dict[str, str]) -> CrmError:
    """The CRM error for a failed HubSpot response (status 0: the SDK could not send it)."""
    message = str(body.get("message") or "").strip()
    if status == 401:
        return CrmAuthError(
            "HubSpot refused the access token (HTTP 401): check HUBSPOT_ACCESS_TOKEN"
            " is a valid private-app token."
        )
    if status == 403:
        scopes = missing_scopes(body)
        needs = f" it needs the scope(s) {', '.join(scopes)}" if scopes else ""
        return CrmAuthError(
            f"HubSpot denied access (HTTP 403):{needs or ' ' + (message or 'forbidden')}."
            " Add the scopes to the private app and update HUBSPOT_ACCESS_TOKEN."
        )
    if status == 429:
        return CrmRateLimited(
            f"HubSpot rate limit reached ({body.get('policyName') or 'unknown policy'})",
            retry_after=retry_after(body, headers),
        )
    if status == 0 or status >= 500:
        return CrmUnavailable(f"HubSpot answered HTTP {status}: {message or 'server error'}")
    return HubSpotApiError(
        f"HubSpot refused the request (HTTP {status}): {message or 'no message'}",
        status=status,
        body=body,
    )


def retry_after(body: dict[str, Any], headers: dict[str, str]) -> float:
    """Seconds to wait after a 429: `Retry-After`, else the rate-limit window, else the policy's."""
    value = _number(headers.get("retry-after"))
    if value is not None and value >= 0:
        return value
    if str(body.get("policyName", "")).upper() == "DAILY":
        return DAILY_RETRY_AFTER
    interval_ms = _number(headers.get("x-hubspot-ratelimit-interval-milliseconds"))
    if interval_ms is not None and interval_ms > 0:
        return interval_ms / 1000
    if str(body.get("policyName", "")).upper() == "SECONDLY":
        return 1.0
    return DEFAULT_RETRY_AFTER


def missing_scopes(body: dict[str, Any]) -> list[str]:
    """Scope names a 403 body says are required."""
    scopes: list[str] = []
    for error in body.get("errors") or []:
        context = error.get("context") if isinstance(error, dict) else None
        if not isinstance(context, dict):
            continue
        for key in ("requiredGranularScopes", "requiredScopes"):
            scopes.extend(str(s) for s in context.get(key) or [])
    return list(dict.fromkeys(scopes))


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


class HubSpotConfigError(CrmError):
    """revbot's HubSpot configuration cannot work (a property or setting is missing)."""

    retryable = False
