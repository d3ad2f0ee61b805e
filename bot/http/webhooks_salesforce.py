"""POST /webhooks/salesforce: Outbound Messages (SOAP) from the configured org, acked once stored."""

from __future__ import annotations

import logging

from flask import Request
from werkzeug.wsgi import get_input_stream

from bot.core.crm_intake import store_crm_leads
from bot.core.db import transaction
from bot.http.intake import MAX_BODY_BYTES
from bot.services import Services
from integrations.salesforce import outbound
from integrations.salesforce.leads import mql_criterion, to_intake
from integrations.salesforce.soql import meets

log = logging.getLogger(__name__)

Reply = tuple[str, int]


def handle_outbound_message(services: Services, request: Request) -> Reply:
    """Check the org, store each notified Lead that is an MQL, then ack (the SOAP `<Ack>true</Ack>`).

    Salesforce redelivers until it gets the ack, so nothing is acked before it is committed;
    a redelivery or an older message arriving late is a duplicate and changes nothing.
    """
    configured = services.settings.salesforce_org_id
    if not configured:
        return outbound.fault(
            "Client", "Outbound Messages are off: set SALESFORCE_ORG_ID to accept them."
        ), 403
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return outbound.fault("Client", f"The body is over {MAX_BODY_BYTES} bytes."), 413
    body = get_input_stream(request.environ, max_content_length=None).read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return outbound.fault("Client", f"The body is over {MAX_BODY_BYTES} bytes."), 413
    try:
        message = outbound.parse(body)
    except outbound.MalformedMessage as exc:
        return outbound.fault("Client", f"Not a Salesforce Outbound Message: {exc}."), 400
    if not outbound.same_org(message.organization_id, configured):
        log.warning("refused an Outbound Message from another Salesforce org")
        return outbound.fault(
            "Client", "This endpoint does not accept messages from that org."
        ), 403
    criterion = mql_criterion(services.playbook.field_map("salesforce"))
    leads = []
    for sobject_type, record in message.records:
        if sobject_type != "Lead":
            log.info(
                "ignored an Outbound Message notification about a %s", sobject_type or "record"
            )
        elif not meets(record, criterion):
            log.info("ignored Lead %s: it does not meet the MQL criterion", record["Id"])
        else:
            leads.append(to_intake(record, criterion))
    try:
        with transaction(services.engine) as session:
            summary = store_crm_leads(
                session, "salesforce", leads, playbook=services.playbook, now=services.clock()
            )
    except Exception:  # any store failure: refuse the ack so Salesforce delivers again
        log.exception("could not store an Outbound Message; Salesforce will retry it")
        return outbound.fault("Server", "The leads could not be stored; deliver again later."), 500
    if summary.counts["created"] or summary.counts["requalified"]:
        services.notify()
    return outbound.ACK, 200
