"""Process settings from the environment (and a `.env` file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CrmName = Literal["local", "salesforce", "hubspot"]
DEFAULT_SLACK_API_URL = "https://slack.com/api/"


class Settings(BaseSettings):
    """Everything revbot reads from its environment; see the README's settings table."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    slack_bot_token: SecretStr | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(DEFAULT_SLACK_API_URL, validation_alias="SLACK_API_URL")
    database_url: str = Field("sqlite:///revbot.db", validation_alias="DATABASE_URL")
    playbook_path: Path | None = Field(None, validation_alias="REVBOT_PLAYBOOK")
    crm: CrmName | None = Field(None, validation_alias="REVBOT_CRM")
    intake_token: SecretStr | None = Field(None, validation_alias="REVBOT_INTAKE_TOKEN")
    host: str = Field("0.0.0.0", validation_alias="REVBOT_HOST")  # noqa: S104  (a server's default)
    port: int = Field(3000, ge=1, le=65535, validation_alias="PORT")
    web_concurrency: int = Field(1, ge=1, le=64, validation_alias="WEB_CONCURRENCY")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias="REVBOT_LOG_LEVEL"
    )
    public_url: str | None = Field(None, validation_alias="REVBOT_PUBLIC_URL")
    access_log: str | None = Field(None, validation_alias="REVBOT_ACCESS_LOG")

    salesforce_instance_url: str | None = Field(None, validation_alias="SALESFORCE_INSTANCE_URL")
    salesforce_access_token: SecretStr | None = Field(
        None, validation_alias="SALESFORCE_ACCESS_TOKEN"
    )
    salesforce_username: str | None = Field(None, validation_alias="SALESFORCE_USERNAME")
    salesforce_password: SecretStr | None = Field(None, validation_alias="SALESFORCE_PASSWORD")
    salesforce_security_token: SecretStr | None = Field(
        None, validation_alias="SALESFORCE_SECURITY_TOKEN"
    )
    salesforce_domain: str = Field("login", validation_alias="SALESFORCE_DOMAIN")
    salesforce_login_url: str | None = Field(None, validation_alias="SALESFORCE_LOGIN_URL")
    salesforce_client_id: str | None = Field(None, validation_alias="SALESFORCE_CLIENT_ID")
    salesforce_client_secret: SecretStr | None = Field(
        None, validation_alias="SALESFORCE_CLIENT_SECRET"
    )
    salesforce_org_id: str | None = Field(None, validation_alias="SALESFORCE_ORG_ID")
    salesforce_api_version: str = Field("61.0", validation_alias="SALESFORCE_API_VERSION")
    salesforce_ca_bundle: Path | None = Field(None, validation_alias="SALESFORCE_CA_BUNDLE")

    hubspot_access_token: SecretStr | None = Field(None, validation_alias="HUBSPOT_ACCESS_TOKEN")
    hubspot_client_secret: SecretStr | None = Field(None, validation_alias="HUBSPOT_CLIENT_SECRET")
    hubspot_api_url: str = Field("https://api.hubapi.com", validation_alias="HUBSPOT_API_URL")
    hubspot_portal_id: str | None = Field(None, validation_alias="HUBSPOT_PORTAL_ID")

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, value: str) -> str:
        # Hosting platforms hand out postgres:// URLs; SQLAlchemy needs the driver named.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @property
    def is_sqlite(self) -> bool:
        """True when the store is the embedded SQLite database."""
        return self.database_url.startswith("sqlite")

    def missing_slack_settings(self) -> list[str]:
        """Names of the Slack variables still needed to connect (Socket Mode or HTTP)."""
        missing = [] if self.slack_bot_token else ["SLACK_BOT_TOKEN"]
        if not self.slack_app_token and not self.slack_signing_secret:
            missing.append("SLACK_SIGNING_SECRET")
        return missing
