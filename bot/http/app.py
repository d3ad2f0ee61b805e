"""The WSGI app: /slack/events (Bolt), /intake/leads, /healthz and /readyz."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from slack_bolt import App
from slack_bolt.adapter.flask import SlackRequestHandler
from werkzeug.exceptions import RequestEntityTooLarge

from bot.core.db import is_current, ping
from bot.http.intake import MAX_BODY_BYTES, handle_intake
from bot.services import Services

log = logging.getLogger(__name__)


def create_web_app(services: Services, bolt_app: App | None) -> Flask:
    """The HTTP app; `/slack/events` is served only when Slack requests can be signature-checked."""
    web = Flask("revbot")
    # Intake enforces its own limit (chunked bodies included); this one guards the Slack endpoint.
    web.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    if bolt_app is not None and services.settings.slack_signing_secret is not None:
        slack_handler = SlackRequestHandler(bolt_app)

        @web.post("/slack/events")
        def slack_events() -> Any:
            try:
                return slack_handler.handle(request)
            except ValueError:  # Bolt parses the body before checking it: `payload=` not JSON
                refused = {"error": "invalid_body", "message": "The body is not a Slack request."}
                return jsonify(refused), 400

    @web.post("/intake/leads")
    def intake_leads() -> Any:
        body, status = handle_intake(services, request)
        return jsonify(body), status

    # The vendor SDKs load on a webhook's first delivery: a process whose CRM is another one
    # (or none) never pays their memory.
    @web.post("/webhooks/salesforce")
    def webhooks_salesforce() -> Any:
        from bot.http.webhooks_salesforce import handle_outbound_message

        body, status = handle_outbound_message(services, request)
        return Response(body, status=status, content_type="text/xml; charset=utf-8")

    @web.post("/webhooks/hubspot")
    def hubspot_webhook() -> Any:
        from bot.http.webhooks_hubspot import handle_hubspot_webhook

        body, status = handle_hubspot_webhook(services, request)
        return jsonify(body), status

    @web.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok")

    @web.get("/readyz")
    def readyz() -> Any:
        try:
            ping(services.engine)
            current = is_current(services.engine)
        except Exception as exc:  # any driver error means "not ready", and says so
            log.warning("readiness check failed: %s", type(exc).__name__)
            return jsonify(status="unavailable", database="unreachable"), 503
        if not current:
            return jsonify(
                status="unavailable", database="ok", migrations="pending: run `revbot db upgrade`"
            ), 503
        return jsonify(status="ok", database="ok", migrations="current")

    @web.errorhandler(RequestEntityTooLarge)
    def too_large(_: RequestEntityTooLarge) -> Any:
        return jsonify(error="too_large", message=f"The body is over {MAX_BODY_BYTES} bytes."), 413

    return web
