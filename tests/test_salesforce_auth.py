"""Salesforce auth against the fake org: the three login modes, one shared re-login on expiry,
session-only expiry, bad credentials, configuration errors, and no token in the logs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from bot.core.crm import CrmAuthError, CrmUnavailable
from integrations import CrmNotConfigured, build_crm
from integrations.salesforce import SalesforceCRM, config_from_settings
from tests.conftest import FrozenClock, team_playbook
from tests.fakes.salesforce_api import ACCESS_TOKEN, PASSWORD, FakeSalesforce
from tests.fakes.salesforce_support import salesforce_crm, salesforce_settings, seed_mql


@pytest.fixture
def fake() -> Iterator[FakeSalesforce]:
    """A running fake org."""
    with FakeSalesforce() as server:
        yield server


def _auth_headers(fake: FakeSalesforce) -> list[str]:
    return [r.headers.get("authorization", "") for r in fake.calls(path_contains="/services/data/")]


@pytest.mark.parametrize("mode", ["session", "password", "client_credentials"])
def test_each_auth_mode_reaches_the_org(
    fake: FakeSalesforce, clock: FrozenClock, mode: str
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock, mode)
    seed_mql(fake)

    described = crm.check()

    assert "org 00D5g000004Xyz1EAC" in described
    assert f"{mode.replace('_', ' ')} login" in described
    expected_logins = 0 if mode == "session" else 1
    assert fake.logins == expected_logins
    login_calls = fake.calls("POST", "/services/Soap/u/") + fake.calls("POST", "/oauth2/token")
    assert len(login_calls) == expected_logins
    tokens = set(_auth_headers(fake))
    assert len(tokens) == 1
    if mode == "session":
        assert tokens == {f"Bearer {ACCESS_TOKEN}"}
    else:
        assert tokens != {f"Bearer {ACCESS_TOKEN}"}


def test_password_login_sends_password_and_security_token_in_soap(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock, "password")
    crm.fetch_mqls([])
    crm.search_deals("acme")

    (login,) = fake.calls("POST", "/services/Soap/u/61.0")
    assert login.headers["soapaction"] == "login"
    assert f"<n1:password>{PASSWORD}{fake.security_token}</n1:password>".encode() in login.body


def test_wrong_password_is_an_auth_error_naming_the_settings(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    settings = salesforce_settings(fake, "password", SALESFORCE_PASSWORD="not-the-password")
    crm = SalesforceCRM(config_from_settings(settings), team_playbook(), clock)

    with pytest.raises(CrmAuthError, match="INVALID_LOGIN") as caught:
        crm.search_deals("acme")
    assert "SALESFORCE_" in str(caught.value)
    assert not fake.calls(path_contains="/services/data/")


def test_wrong_client_secret_is_an_auth_error(fake: FakeSalesforce, clock: FrozenClock) -> None:
    settings = salesforce_settings(fake, "client_credentials", SALESFORCE_CLIENT_SECRET="rotated")
    crm = SalesforceCRM(config_from_settings(settings), team_playbook(), clock)

    with pytest.raises(CrmAuthError, match="invalid_client"):
        crm.check()


def test_expired_session_is_renewed_once_for_all_threads(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock, "password")
    lead_ids = seed_mql(fake, 8)
    crm.fetch_mqls(lead_ids)  # first login
    assert fake.logins == 1
    fake.expire_sessions()

    barrier = threading.Barrier(8)
    found: list[int] = []
    errors: list[BaseException] = []

    def work(record_id: str) -> None:
        try:
            barrier.wait()
            found.append(len(crm.fetch_mqls([record_id])))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in lead_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

    assert errors == []
    assert found == [1] * 8
    assert fake.logins == 2  # the first login, and exactly one renewal
    assert len(fake.calls("POST", "/services/Soap/u/")) == 2


def test_expired_session_with_only_a_token_asks_for_a_new_token(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock, "session")
    fake.expire_sessions()

    with pytest.raises(CrmAuthError, match=r"set a new\s+SALESFORCE_ACCESS_TOKEN") as caught:
        crm.fetch_mqls(seed_mql(fake))
    assert not caught.value.retryable
    assert fake.logins == 0


def test_token_plus_credentials_start_with_the_token_and_log_in_on_expiry(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    settings = salesforce_settings(
        fake,
        "password",
        REVBOT_CRM="salesforce",
        SALESFORCE_INSTANCE_URL=fake.url,
        SALESFORCE_ACCESS_TOKEN=ACCESS_TOKEN,
    )
    crm = build_crm(settings, team_playbook(), engine=None, clock=clock)  # type: ignore[arg-type]
    lead = seed_mql(fake)
    assert len(crm.fetch_mqls(lead)) == 1
    assert fake.logins == 0
    fake.expire_sessions()

    assert len(crm.fetch_mqls(lead)) == 1
    assert fake.logins == 1


def test_server_errors_are_retryable_unavailability(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock, "session")
    fake.unavailable(1)

    with pytest.raises(CrmUnavailable) as caught:
        crm.search_deals("acme")
    assert caught.value.retryable
    assert crm.search_deals("acme") == []


def test_unreachable_org_is_unavailable(clock: FrozenClock) -> None:
    fake = FakeSalesforce().start()
    crm = salesforce_crm(fake, team_playbook(), clock, "password")
    fake.stop()

    with pytest.raises(CrmUnavailable, match="cannot reach Salesforce login"):
        crm.search_deals("acme")


@pytest.mark.parametrize(
    ("env", "needs"),
    [
        ({}, "SALESFORCE_INSTANCE_URL and SALESFORCE_ACCESS_TOKEN"),
        ({"SALESFORCE_USERNAME": "a@b.co"}, "SALESFORCE_PASSWORD"),
        (
            {"SALESFORCE_CLIENT_ID": "id", "SALESFORCE_CLIENT_SECRET": "secret"},
            "SALESFORCE_LOGIN_URL",
        ),
        ({"SALESFORCE_ACCESS_TOKEN": "tok"}, "SALESFORCE_INSTANCE_URL"),
        (
            {"SALESFORCE_INSTANCE_URL": "http://acme.example", "SALESFORCE_ACCESS_TOKEN": "tok"},
            "https://",
        ),
    ],
)
def test_incomplete_settings_say_what_to_set(env: dict[str, str], needs: str) -> None:
    from bot.core.settings import Settings

    settings = Settings(_env_file=None, REVBOT_CRM="salesforce", **env)  # type: ignore[call-arg]

    with pytest.raises(CrmNotConfigured, match="REVBOT_CRM=salesforce") as caught:
        build_crm(settings, team_playbook(), engine=None, clock=FrozenClock())  # type: ignore[arg-type]
    assert needs in str(caught.value)


def test_no_token_or_password_reaches_the_logs(
    fake: FakeSalesforce, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    crm = salesforce_crm(fake, team_playbook(), clock, "password")
    crm.fetch_mqls(seed_mql(fake))
    fake.expire_sessions()
    crm.fetch_mqls(seed_mql(fake))
    fake.rate_limit(1)
    with pytest.raises(Exception, match="REQUEST_LIMIT_EXCEEDED"):
        crm.fetch_mqls(seed_mql(fake))

    issued = [h.removeprefix("Bearer ") for h in _auth_headers(fake)]
    assert issued
    assert fake.logins == 2
    for secret in [*issued, PASSWORD, fake.security_token]:
        assert secret not in caplog.text
