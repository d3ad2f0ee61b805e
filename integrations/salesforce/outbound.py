"""Salesforce Outbound Messages: read the SOAP notification safely, and write the ack or a fault."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body>'
    f'<notificationsResponse xmlns="{OUTBOUND}"><Ack>true</Ack></notificationsResponse>'
    "</soapenv:Body></soapenv:Envelope>"
)


class MalformedMessage(ValueError):
    """The body is not a Salesforce Outbound Message."""


@dataclass
class OutboundMessage:
    """One delivery: the sending org, and each notification's sObject as {field: text or None}."""

    organization_id: str
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def of_type(self, sobject: str) -> list[dict[str, Any]]:
        """The records of one sObject type (e.g. Lead)."""
        return [r for t, r in self.records if t == sobject]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(parent: Element, name: str) -> str | None:
    child = parent.find(f"{{{OUTBOUND}}}{name}")
    return child.text.strip() if child is not None and child.text else None


def _sobject(element: Element) -> tuple[str, dict[str, Any]]:
    declared = element.get(f"{{{XSI}}}type") or ""
    record: dict[str, Any] = {}
    for child in element:
        nil = child.get(f"{{{XSI}}}nil") == "true"
        record[_local(child.tag)] = None if nil else (child.text or "").strip()
    return declared.rsplit(":", 1)[-1], record


def parse(body: bytes) -> OutboundMessage:
    """Parse an Outbound Message envelope (no DTDs, no entities); MalformedMessage when it is not one."""
    try:
        root = ElementTree.fromstring(body, forbid_dtd=True)
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise MalformedMessage(f"the body is not well-formed XML ({type(exc).__name__})") from exc
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise MalformedMessage("the body is not a SOAP envelope")
    notifications = root.find(f"{{{SOAP_ENV}}}Body/{{{OUTBOUND}}}notifications")
    if notifications is None:
        raise MalformedMessage("the SOAP body holds no Outbound Message notifications")
    organization_id = _text(notifications, "OrganizationId")
    if not organization_id:
        raise MalformedMessage("the notifications carry no OrganizationId")
    message = OutboundMessage(organization_id)
    for notification in notifications.findall(f"{{{OUTBOUND}}}Notification"):
        sobject = notification.find(f"{{{OUTBOUND}}}sObject")
        if sobject is None:
            raise MalformedMessage("a Notification holds no sObject")
        sobject_type, record = _sobject(sobject)
        if not record.get("Id"):
            raise MalformedMessage("a notification's sObject has no Id")
        message.records.append((sobject_type, record))
    return message


def same_org(given: str, configured: str) -> bool:
    """Org ids match on their 15 case-sensitive characters (18-character ids add a checksum)."""
    return len(given) >= 15 and len(configured) >= 15 and given[:15] == configured[:15]


def fault(code: str, message: str) -> str:
    """A SOAP 1.1 fault envelope (`code` is Client or Server)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>soapenv:{code}</faultcode><faultstring>{escape(message)}</faultstring>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
