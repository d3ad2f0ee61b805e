"""POST /intake/leads: one lead or a batch, bearer-token protected, idempotent on (source, external_id)."""

from __future__ import annotations

import hmac
import json
from typing import Any

from flask import Request
from werkzeug.wsgi import get_input_stream

from bot.core.db import transaction
from bot.core.intake import FieldError, LeadIn, ingest, validate_lead
from bot.services import Services

MAX_BODY_BYTES = 1024 * 1024
MAX_BATCH = 1000

Reply = tuple[dict[str, Any], int]


def _error(status: int, code: str, message: str, **extra: Any) -> Reply:
    return {"error": code, "message": message, **extra}, status


def _errors_json(errors: list[FieldError]) -> list[dict[str, str]]:
    return [{"field": e.field, "message": e.message} for e in errors]


def authorized(services: Services, header: str | None) -> bool:
    """True when the request carries the configured intake bearer token."""
    expected = services.settings.intake_token
    if expected is None or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(
        header[len("Bearer ") :].encode(), expected.get_secret_value().encode()
    )


def handle_intake(services: Services, request: Request) -> Reply:
    """Validate and store the posted lead(s); a result per lead, errors per field."""
    if services.settings.intake_token is None:
        return _error(
            401, "intake_disabled", "Intake is off: set REVBOT_INTAKE_TOKEN to enable it."
        )
    if not authorized(services, request.headers.get("Authorization")):
        return _error(401, "unauthorized", "Send `Authorization: Bearer <REVBOT_INTAKE_TOKEN>`.")
    too_large = _error(
        413, "too_large", f"The body is over {MAX_BODY_BYTES} bytes; split the batch."
    )
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return too_large
    # Read one byte past the limit from the raw input: a chunked body declares no length, and
    # Flask's own limit would silently cut it at the limit instead of refusing it.
    body = get_input_stream(request.environ, max_content_length=None).read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return too_large
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _error(400, "invalid_json", "The body is not valid JSON.")
    if isinstance(data, dict) and "leads" in data:
        return _batch(services, data["leads"])
    checked = validate_lead(data)
    if not isinstance(checked, LeadIn):
        return _error(
            400, "invalid_lead", "The lead has invalid fields.", errors=_errors_json(checked)
        )
    return {"results": [_store(services, checked)]}, 202


def _batch(services: Services, items: Any) -> Reply:
    if not isinstance(items, list) or not items:
        return _error(400, "invalid_batch", "`leads` must be a non-empty list of lead objects.")
    if len(items) > MAX_BATCH:
        return _error(413, "too_many", f"At most {MAX_BATCH} leads per request; split the batch.")
    results: list[dict[str, Any]] = []
    invalid = 0
    for index, item in enumerate(items):
        checked = validate_lead(item)
        if isinstance(checked, LeadIn):
            results.append(_store(services, checked))
            continue
        invalid += 1
        external_id = item.get("external_id") if isinstance(item, dict) else None
        results.append(
            {
                "index": index,
                "external_id": external_id,
                "status": "invalid",
                "errors": _errors_json(checked),
            }
        )
    if invalid == len(items):
        return _error(400, "invalid_lead", "No lead in the batch is valid.", results=results)
    return {"results": results}, 207 if invalid else 202


def _store(services: Services, lead_in: LeadIn) -> dict[str, Any]:
    with transaction(services.engine) as session:
        result = ingest(session, lead_in, playbook=services.playbook, now=services.clock())
    if result.status != "duplicate":
        services.notify()
    return {"external_id": result.external_id, "lead_id": result.lead_id, "status": result.status}
