"""The HubSpot adapter: contacts as leads, batched write-back, engagements, deals, outcomes."""

from integrations.hubspot.crm import HubSpotCRM, build_hubspot

__all__ = ["HubSpotCRM", "build_hubspot"]
