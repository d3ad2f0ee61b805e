"""One shared Salesforce session: login, a single-flight re-login on expiry, vendor errors → core errors."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from xml.sax.saxutils import escape

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceRefusedRequest,
)
from simple_salesforce.login import soap_login, token_login

from bot.core.crm import CrmAuthError, CrmError, CrmRateLimited, CrmUnavailable
from integrations.salesforce.config import SalesforceConfig

log = logging.getLogger(__name__)

T = TypeVar("T")
TIMEOUT_SECONDS = 20
RATE_LIMIT_PAUSE = timedelta(minutes=10)
SOAP_LOGIN = """<?xml version="1.0" encoding="utf-8" ?>
<env:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:urn="urn:partner.soap.sforce.com">
  <env:Header><urn:CallOptions><urn:client>revbot</urn:client></urn:CallOptions></env:Header>
  <env:Body>
    <n1:login xmlns:n1="urn:partner.soap.sforce.com">
      <n1:username>{username}</n1:username>
      <n1:password>{password}</n1:password>
    </n1:login>
  </env:Body>
</env:Envelope>"""


class SalesforceRequestRefused(CrmError):
    """Salesforce refused the request itself (bad field, bad query, missing object): retrying
    the same request will not help until the org or the playbook changes."""

    retryable = False


class _TimeoutSession(requests.Session):
    """A requests session that never waits forever (simple-salesforce's logins pass no timeout)
    and trusts SALESFORCE_CA_BUNDLE when set (ahead of REQUESTS_CA_BUNDLE in the environment)."""

    def __init__(self, ca_bundle: str | None) -> None:
        super().__init__()
        self._ca_bundle = ca_bundle

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", TIMEOUT_SECONDS)
        if self._ca_bundle is not None:
            kwargs.setdefault("verify", self._ca_bundle)
        return super().request(*args, **kwargs)


def error_items(exc: SalesforceError) -> list[dict[str, Any]]:
    """The `[{errorCode, message}]` list of a Salesforce REST error response (empty when absent)."""
    content = exc.content
    if isinstance(content, dict):
        content = [content]
    if isinstance(content, list):
        return [item for item in content if isinstance(item, dict)]
    return []


def _describe(exc: SalesforceError) -> str:
    items = error_items(exc)
    if not items:
        return f"HTTP {exc.status}"
    return "; ".join(
        f"{i.get('errorCode', 'ERROR')}: {i.get('message', '')}".strip() for i in items
    )


def _codes(exc: SalesforceError) -> set[str]:
    return {str(i.get("errorCode")) for i in error_items(exc)}


class SalesforceSession:
    """The org connection every adapter call shares (thread-safe).

    An expired session is renewed once, by whichever thread saw it first; threads that failed
    with the same generation wait for that login and retry with its session. A spent API budget
    (REQUEST_LIMIT_EXCEEDED) pauses every call for RATE_LIMIT_PAUSE.
    """

    def __init__(self, config: SalesforceConfig, clock: Callable[[], datetime]) -> None:
        self.config = config
        self._clock = clock
        self._http = _TimeoutSession(str(config.ca_bundle) if config.ca_bundle else None)
        self._lock = threading.Lock()
        self._client: Salesforce | None = None
        self._generation = 0
        self._paused_until: datetime | None = None
        self.logins = 0

    @property
    def instance_url(self) -> str | None:
        """The org's https URL, once known (configured, or learnt at login)."""
        if self._client is not None:
            return f"https://{self._client.sf_instance}"
        return self.config.instance_url

    def call(self, action: Callable[[Salesforce], T]) -> T:
        """Run one API call with the shared session, renewing an expired session once."""
        self._check_pause()
        client, generation = self._current()
        try:
            return self._translated(lambda: action(client))
        except _Expired:
            client = self._renew(generation)
            try:
                return self._translated(lambda: action(client))
            except _Expired as again:
                raise CrmAuthError(
                    "Salesforce refused the renewed session (INVALID_SESSION_ID): check the "
                    "integration user's access."
                ) from again

    def login(self) -> Salesforce:
        """Log in now (or take up the configured session) and return the client."""
        client, _ = self._current()
        return client

    def query(self, soql: str) -> list[dict[str, Any]]:
        """Every record a SOQL query returns (following nextRecordsUrl pages)."""

        def run(sf: Salesforce) -> list[dict[str, Any]]:
            result = sf.query(soql)
            records = list(result["records"])
            while not result.get("done", True):
                result = sf.query_more(result["nextRecordsUrl"], identifier_is_url=True)
                records.extend(result["records"])
            return records

        return self.call(run)

    def rest(self, method: str, path: str, body: Any = None) -> Any:
        """One REST call under /services/data/vXX.X/ with a JSON body; the parsed JSON answer."""
        return self.call(lambda sf: sf.restful(path, method=method, json=body))

    def pause_for_rate_limit(self) -> float:
        """Stop calling Salesforce for RATE_LIMIT_PAUSE; returns the seconds to wait."""
        with self._lock:
            self._paused_until = self._clock() + RATE_LIMIT_PAUSE
        log.warning("Salesforce API limit reached: pausing calls for %s", RATE_LIMIT_PAUSE)
        return RATE_LIMIT_PAUSE.total_seconds()

    def _check_pause(self) -> None:
        with self._lock:
            until = self._paused_until
        if until is None:
            return
        left = (until - self._clock()).total_seconds()
        if left > 0:
            raise CrmRateLimited(
                "Salesforce API limit reached (REQUEST_LIMIT_EXCEEDED); calls are paused",
                retry_after=left,
            )
        with self._lock:
            self._paused_until = None

    def _current(self) -> tuple[Salesforce, int]:
        with self._lock:
            if self._client is None:
                self._client = self._connect(first=True)
                self._generation += 1
            return self._client, self._generation

    def _renew(self, failed_generation: int) -> Salesforce:
        with self._lock:
            # Another thread may have logged in again since this one's call failed: reuse its session.
            if self._generation == failed_generation:
                self._client = self._connect(first=False)
                self._generation += 1
            assert self._client is not None
            return self._client

    def _connect(self, *, first: bool) -> Salesforce:
        config = self.config
        version = config.api_version
        if first and config.access_token and config.instance_url:
            return Salesforce(
                session_id=config.access_token,
                instance_url=config.instance_url,
                session=self._http,
                version=version,
            )
        if not config.can_log_in:
            raise CrmAuthError(
                "The Salesforce session expired or was revoked (INVALID_SESSION_ID): set a new "
                "SALESFORCE_ACCESS_TOKEN, or set SALESFORCE_USERNAME / SALESFORCE_PASSWORD / "
                "SALESFORCE_SECURITY_TOKEN (or client credentials) so revbot can log in by itself."
            )
        session_id, instance = self._log_in()
        self.logins += 1
        log.info("logged in to Salesforce (%s, %s)", config.mode, instance)
        return Salesforce(
            session_id=session_id, instance=instance, session=self._http, version=version
        )

    def _log_in(self) -> tuple[str, str]:
        config = self.config
        assert config.login_url is not None
        try:
            if config.mode == "password":
                body = SOAP_LOGIN.format(
                    username=escape(config.username or ""),
                    password=escape((config.password or "") + config.security_token),
                )
                return soap_login(
                    f"{config.login_url}/services/Soap/u/{config.api_version}",
                    body,
                    {"content-type": "text/xml", "charset": "UTF-8", "SOAPAction": "login"},
                    None,
                    self._http,
                )
            basic = f"{config.client_id}:{config.client_secret}".encode()
            token, instance = token_login(
                f"{config.login_url}/services/oauth2/token",
                {"grant_type": "client_credentials"},
                config.login_url,
                config.client_id or "",
                {"Authorization": "Basic " + base64.b64encode(basic).decode()},
                None,
                self._http,
            )
            return str(token), str(instance).rstrip("/")
        except SalesforceAuthenticationFailed as exc:
            if isinstance(exc.code, int) and exc.code >= 500:
                raise CrmUnavailable(f"Salesforce login is unavailable (HTTP {exc.code})") from exc
            raise CrmAuthError(
                f"Salesforce login failed ({exc.code}): {exc.auth_message}. Check the "
                "SALESFORCE_* credentials."
            ) from exc
        except requests.RequestException as exc:
            raise CrmUnavailable(f"cannot reach Salesforce login: {type(exc).__name__}") from exc

    def _translated(self, run: Callable[[], T]) -> T:
        try:
            return run()
        except SalesforceExpiredSession as exc:
            if "INVALID_SESSION_ID" in _codes(exc) or not error_items(exc):
                raise _Expired from exc
            raise CrmAuthError(f"Salesforce refused the credentials: {_describe(exc)}") from exc
        except SalesforceRefusedRequest as exc:
            if "REQUEST_LIMIT_EXCEEDED" in _codes(exc):
                wait = self.pause_for_rate_limit()
                raise CrmRateLimited(
                    f"Salesforce API limit reached: {_describe(exc)}", retry_after=wait
                ) from exc
            raise CrmAuthError(f"Salesforce refused the request: {_describe(exc)}") from exc
        except SalesforceError as exc:
            if exc.status >= 500 or exc.status == 429:
                raise CrmUnavailable(f"Salesforce is unavailable: {_describe(exc)}") from exc
            raise SalesforceRequestRefused(
                f"Salesforce refused the request: {_describe(exc)}"
            ) from exc
        except requests.RequestException as exc:
            raise CrmUnavailable(f"cannot reach Salesforce: {type(exc).__name__}") from exc
        except ValueError as exc:  # a non-JSON answer (a proxy's error page, a cut response)
            raise CrmUnavailable("Salesforce sent an unreadable answer") from exc


class _Expired(Exception):
    """The session behind a call expired (INVALID_SESSION_ID)."""
