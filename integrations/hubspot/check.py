"""`revbot check` for HubSpot: an authenticated harmless read, and the properties revbot writes."""

from __future__ import annotations

from bot.core.playbook import CrmFieldMap, FieldRole
from integrations.hubspot.client import HubSpotApi, HubSpotConfigError
from integrations.hubspot.writeback import STATUS_PROPERTY

ROLES: tuple[FieldRole, ...] = ("reason", "note", "revisit_on")


def required_properties(fields: CrmFieldMap) -> list[str]:
    """Contact properties revbot reads or writes with this field map."""
    names = [STATUS_PROPERTY]
    names += [n for role in ROLES if (n := fields.field(role))]
    if fields.mql is not None:
        names += [fields.mql.field, *([fields.mql.date_field] if fields.mql.date_field else [])]
    return list(dict.fromkeys(names))


def check(api: HubSpotApi, fields: CrmFieldMap) -> str:
    """Read the contact property definitions; raise in plain words when one revbot needs is missing."""
    page = api.call(lambda **kw: api.properties.get_all("contacts", archived=False, **kw))
    existing = {p.name for p in page.results or []}
    needed = required_properties(fields)
    missing = [n for n in needed if n not in existing]
    if missing:
        plural = "properties" if len(missing) > 1 else "property"
        raise HubSpotConfigError(
            f"HubSpot contacts have no {plural} {', '.join(missing)}: create "
            f"{'them' if len(missing) > 1 else 'it'} in HubSpot (Settings > Properties > Contact"
            " properties) or change crm_fields.hubspot in the playbook."
        )
    return f"HubSpot at {api.host}: token accepted; contact properties found: {', '.join(needed)}"
