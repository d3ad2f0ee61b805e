"""`revbot check` for Salesforce: a real login, then describe Lead and Task and say what is missing."""

from __future__ import annotations

from typing import Any

from bot.core.crm import CrmError
from bot.core.playbook import CrmFieldMap
from integrations.salesforce.activities import EXTERNAL_ID_FIELD
from integrations.salesforce.session import SalesforceSession


def _fields(describe: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in describe.get("fields") or [] if isinstance(f, dict)}


def _picklist(field: dict[str, Any] | None) -> set[str]:
    if not field:
        return set()
    return {p["value"] for p in field.get("picklistValues") or [] if p.get("active", True)}


def lead_problems(describe: dict[str, Any], field_map: CrmFieldMap) -> list[str]:
    """What in the Lead object stops revbot reading MQLs or writing dispositions, in plain words."""
    problems = []
    if not describe.get("updateable", False):
        problems.append("the integration user cannot edit Leads (Lead is not updateable)")
    if not describe.get("queryable", True):
        problems.append("the integration user cannot read Leads (Lead is not queryable)")
    fields = _fields(describe)
    for role in ("reason", "note", "revisit_on"):
        name = field_map.field(role)
        if not name:
            continue
        if name not in fields:
            problems.append(
                f"Lead has no field {name} (crm_fields.salesforce.fields.{role}): create it or "
                "change the playbook"
            )
        elif not fields[name].get("updateable", False):
            problems.append(f"the integration user cannot edit Lead.{name}")
    criterion = field_map.mql
    if criterion is not None:
        for name in filter(None, (criterion.field, criterion.date_field)):
            if name not in fields:
                problems.append(
                    f"Lead has no field {name} (the MQL criterion in crm_fields.salesforce.mql)"
                )
        if (
            criterion.field == "Status"
            and isinstance(criterion.equals, str)
            and criterion.equals not in _picklist(fields.get("Status"))
        ):
            problems.append(
                f"the Lead Status picklist has no value {criterion.equals!r} (the MQL criterion)"
            )
    status = fields.get("Status")
    if status is None or not status.get("updateable", False):
        problems.append("the integration user cannot edit Lead.Status")
    else:
        allowed = _picklist(status)
        for state in ("accepted", "rejected", "recycled"):
            value = field_map.status_value(state)
            if value not in allowed:
                problems.append(
                    f"the Lead Status picklist has no value {value!r} "
                    f"(crm_fields.salesforce.status_values.{state})"
                )
    return problems


def task_problems(describe: dict[str, Any]) -> list[str]:
    """What stops revbot logging touches and notes as Tasks."""
    problems = []
    if not describe.get("createable", False):
        problems.append("the integration user cannot create Tasks")
    field = _fields(describe).get(EXTERNAL_ID_FIELD)
    if field is None or not field.get("externalId", False):
        problems.append(
            f"Activity has no external-id field {EXTERNAL_ID_FIELD} (Text(255), External ID, "
            "Unique): create it so touches and notes are never logged twice"
        )
    return problems


def check(session: SalesforceSession, field_map: CrmFieldMap) -> str:
    """Log in, read who revbot is and describe Lead and Task; raise CrmError listing what is wrong."""
    client = session.login()
    info = session.call(lambda sf: sf.oauth2("userinfo")) or {}
    lead = session.rest("GET", "sobjects/Lead/describe") or {}
    task = session.rest("GET", "sobjects/Task/describe") or {}
    problems = lead_problems(lead, field_map) + task_problems(task)
    if problems:
        raise CrmError("Salesforce: " + "; ".join(problems) + ".")
    return (
        f"Salesforce {session.instance_url} (org {info.get('organization_id', '?')}), "
        f"as {info.get('name', '?')} ({info.get('user_id', '?')}), API v{client.sf_version}, "
        f"{session.config.mode.replace('_', ' ')} login"
    )
