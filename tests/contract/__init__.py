"""The CRM contract: the same behaviour tests against `local`, Salesforce and HubSpot."""
