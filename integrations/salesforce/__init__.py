"""Salesforce: MQL intake (polling, Outbound Messages), batched write-back, tasks, outcomes, deals."""

from integrations.salesforce.adapter import SalesforceCRM
from integrations.salesforce.config import SalesforceNotConfigured, config_from_settings

__all__ = ["SalesforceCRM", "SalesforceNotConfigured", "config_from_settings"]
