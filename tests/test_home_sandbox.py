"""The lookups and the App Home in the sandbox: a real `revbot sandbox` process driven through its page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.processes import RevbotProcess, revbot_env
from tests.test_sandbox import Page

pytestmark = pytest.mark.slow

REP = "U0SBREP1"


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    process = RevbotProcess(revbot_env(tmp_path), tmp_path)
    try:
        process.wait_ready()
        yield Page(process.url)
    finally:
        process.stop()


def _home(page: Page) -> dict[str, Any] | None:
    home: dict[str, Any] | None = page.state(REP, "home").get("home")
    return home if home and home.get("blocks") else None


def test_home_and_lookups_work_in_the_sandbox(page: Page) -> None:
    page.act(type="sample_mqls")
    assert page.act(type="home", user=REP)["ok"]
    home = wait_until(lambda: _home(page), what="the Home tab to be published")
    assert "Your leads" in str(home["blocks"])
    assert page.act(
        type="click", user=REP, action_id="home_away", value="away", view_id=home["id"]
    )["ok"]
    wait_until(lambda: "You're away" in str(_home(page)), what="the Home tab to show away")
    channel = page.state(REP)["channel"]
    for text, expected in (
        ("/pipeline", "pipeline"),
        ("/pipeline team", "Pool `americas`"),
        ("/lead zzzz-nobody", "No lead you can see"),
        ("/deal zzzz-nothing", "No deal in the CRM matches"),
    ):
        assert page.act(type="command", user=REP, channel=channel, text=text)["ok"], text
        wait_until(lambda e=expected: e in str(page.state(REP)["ephemerals"]), what=expected)
