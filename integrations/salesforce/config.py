"""Which Salesforce to talk to and how to log in, read once from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bot.core.settings import Settings

AuthMode = Literal["password", "client_credentials", "session"]
DOMAINS = ("login", "test")


class SalesforceNotConfigured(Exception):
    """The settings do not say how to reach Salesforce; the message names what to set."""


@dataclass(frozen=True)
class SalesforceConfig:
    """How to reach one org: a login method (or only a session), the API version, TLS trust."""

    mode: AuthMode
    login_url: str | None
    instance_url: str | None
    access_token: str | None
    username: str | None
    password: str | None
    security_token: str
    client_id: str | None
    client_secret: str | None
    api_version: str
    ca_bundle: Path | None

    @property
    def can_log_in(self) -> bool:
        """True when revbot holds credentials to get a new session by itself."""
        return self.mode != "session"


MISSING = (
    "Salesforce is not configured: set SALESFORCE_INSTANCE_URL and SALESFORCE_ACCESS_TOKEN "
    "(a session), or SALESFORCE_USERNAME, SALESFORCE_PASSWORD and SALESFORCE_SECURITY_TOKEN "
    "(password login, with SALESFORCE_DOMAIN login or test), or SALESFORCE_CLIENT_ID and "
    "SALESFORCE_CLIENT_SECRET with SALESFORCE_LOGIN_URL set to your My Domain URL "
    "(OAuth client credentials)."
)


def _secret(value: object) -> str | None:
    getter = getattr(value, "get_secret_value", None)
    return getter() if getter is not None else None


def login_base_url(settings: Settings) -> str | None:
    """Where logins go: SALESFORCE_LOGIN_URL, else https://{SALESFORCE_DOMAIN}.salesforce.com."""
    if settings.salesforce_login_url:
        return settings.salesforce_login_url.rstrip("/")
    domain = settings.salesforce_domain.strip() or "login"
    return f"https://{domain}.salesforce.com"


def config_from_settings(settings: Settings) -> SalesforceConfig:
    """The org's connection settings; raises SalesforceNotConfigured naming what is missing."""
    token = _secret(settings.salesforce_access_token)
    password = _secret(settings.salesforce_password)
    secret = _secret(settings.salesforce_client_secret)
    instance = (
        settings.salesforce_instance_url.rstrip("/") if settings.salesforce_instance_url else None
    )
    mode: AuthMode
    if settings.salesforce_username and password is not None:
        mode = "password"
    elif settings.salesforce_client_id and secret:
        mode = "client_credentials"
        if not settings.salesforce_login_url and settings.salesforce_domain in DOMAINS:
            raise SalesforceNotConfigured(
                "OAuth client credentials need your org's My Domain: set SALESFORCE_LOGIN_URL "
                "(e.g. https://acme.my.salesforce.com) or SALESFORCE_DOMAIN (e.g. acme.my)."
            )
    elif instance and token:
        mode = "session"
    else:
        raise SalesforceNotConfigured(MISSING)
    if token and not instance:
        raise SalesforceNotConfigured(
            "SALESFORCE_ACCESS_TOKEN needs SALESFORCE_INSTANCE_URL (e.g. https://acme.my.salesforce.com)."
        )
    if instance and not instance.startswith("https://"):
        raise SalesforceNotConfigured("SALESFORCE_INSTANCE_URL must start with https://.")
    return SalesforceConfig(
        mode=mode,
        login_url=None if mode == "session" else login_base_url(settings),
        instance_url=instance,
        access_token=token,
        username=settings.salesforce_username,
        password=password,
        security_token=_secret(settings.salesforce_security_token) or "",
        client_id=settings.salesforce_client_id,
        client_secret=secret,
        api_version=settings.salesforce_api_version.removeprefix("v"),
        ca_bundle=settings.salesforce_ca_bundle,
    )
