"""POST /webhooks/hubspot: signature v3 checked, MQL events queued for the worker, answered fast."""

from __future__ import annotations

import hmac
import json
import logging
from datetime import datetime
from typing import Any

from flask import Request
from hubspot.utils.signature import Signature

from bot.core.crm_intake import enqueue_record_check
from bot.core.db import transaction
from bot.core.playbook import MqlCriterion
from bot.services import Services
from integrations.hubspot.records import criterion_value

log = logging.getLogger(__name__)

MAX_AGE_MS = 5 * 60 * 1000
MAX_EVENTS = 1000
SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
# HubSpot signs the URI with these characters decoded (its v3 signature documentation).
_URI_DECODE = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}

Reply = tuple[dict[str, Any], int]


def _error(status: int, code: str, message: str) -> Reply:
    return {"error": code, "message": message}, status


def signed_uri(services: Services, request: Request) -> str:
    """The URI HubSpot signed: REVBOT_PUBLIC_URL + path (+ query) when set, else the request URL."""
    public = services.settings.public_url
    if public:
        query = request.query_string.decode("latin-1")
        uri = public.rstrip("/") + request.path + (f"?{query}" if query else "")
    else:
        uri = request.url
    for encoded, char in _URI_DECODE.items():
        uri = uri.replace(encoded, char).replace(encoded.lower(), char)
    return uri


def verify(services: Services, request: Request, body: bytes, *, now: datetime) -> str | None:
    """None when the request carries a fresh, valid v3 signature; else why it does not."""
    secret = services.settings.hubspot_client_secret
    if secret is None:
        return "HubSpot webhooks are off: set HUBSPOT_CLIENT_SECRET to accept them."
    signature = request.headers.get(SIGNATURE_HEADER)
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    if not signature or not timestamp or not timestamp.isdigit():
        return f"Send {SIGNATURE_HEADER} and {TIMESTAMP_HEADER}."
    age = now.timestamp() * 1000 - int(timestamp)
    if not -MAX_AGE_MS <= age <= MAX_AGE_MS:
        return "The request timestamp is more than 5 minutes away from now."
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "The body is not UTF-8."
    expected = Signature.get_signature(
        secret.get_secret_value(),
        text,
        "v3",
        http_uri=signed_uri(services, request),
        http_method=request.method,
        timestamp=timestamp,
    )
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return "The signature does not match."
    return None


def mql_event(event: dict[str, Any], mql: MqlCriterion) -> bool:
    """True when a contact event may make the contact an MQL (revbot then reads the contact)."""
    kind = event.get("subscriptionType")
    if kind == "contact.creation":
        return True
    if kind != "contact.propertyChange":
        return False
    name, value = event.get("propertyName"), event.get("propertyValue")
    if name == mql.date_field:
        return value not in (None, "")
    if name != mql.field:
        return False
    expected = criterion_value(mql)
    return value not in (None, "") if expected is None else str(value) == expected


def _parse(body: bytes) -> list[dict[str, Any]] | str:
    try:
        events = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "The body is not valid JSON."
    if not isinstance(events, list) or not events:
        return "The body must be a non-empty JSON array of events."
    if len(events) > MAX_EVENTS:
        return f"At most {MAX_EVENTS} events per request."
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            return f"Event {index} is not an object."
        if not isinstance(event.get("subscriptionType"), str):
            return f"Event {index} has no subscriptionType."
        if event["subscriptionType"].startswith("contact."):
            for key in ("eventId", "objectId"):
                value = event.get(key)
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int | str)
                    or not str(value).isdigit()
                ):
                    return f"Event {index} has no numeric {key}."
    return events


def handle_hubspot_webhook(services: Services, request: Request) -> Reply:
    """Check the signature, queue a record check per MQL event in one transaction, answer."""
    body = request.get_data(cache=False)
    now = services.clock()
    refused = verify(services, request, body, now=now)
    if refused is not None:
        log.warning("HubSpot webhook refused: %s", refused)
        return _error(401, "unauthorized", refused)
    events = _parse(body)
    if isinstance(events, str):
        return _error(400, "invalid_body", events)
    mql = services.playbook.field_map("hubspot").mql
    wanted = []
    for event in events:
        if mql is not None and mql_event(event, mql):
            wanted.append(event)
        else:
            log.info(
                "ignored HubSpot event %s (%s %s)",
                event.get("eventId"),
                event.get("subscriptionType"),
                event.get("propertyName") or "",
            )
    queued = 0
    if wanted:
        with transaction(services.engine) as session:
            for event in wanted:
                queued += enqueue_record_check(
                    session,
                    "hubspot",
                    str(event["objectId"]),
                    event_key=str(event["eventId"]),
                    now=now,
                )
        services.notify()
    return {"received": len(events), "queued": queued}, 200
