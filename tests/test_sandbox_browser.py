"""The sandbox in a real browser (headless Chromium): the flows a person tries first."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.processes import RevbotProcess, revbot_env

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[str]:
    process = RevbotProcess(revbot_env(tmp_path), tmp_path, "sandbox")
    try:
        process.wait_ready()
        yield process.url
    finally:
        process.stop()


@pytest.fixture
def browser_page(sandbox: str) -> Iterator[Any]:
    if CHROMIUM is None:
        if os.environ.get("REVBOT_REQUIRE_BROWSER"):
            pytest.fail("REVBOT_REQUIRE_BROWSER is set but Chromium is not installed")
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{sandbox}/sandbox")
        yield page
        browser.close()
        assert errors == [], errors


def _owner_of(sandbox: str, card_ts: str) -> str:
    state = requests.get(f"{sandbox}/sandbox/state", params={"user": "U0SBMGR1"}, timeout=10).json()
    card = next(m for m in state["messages"] if m["ts"] == card_ts)
    return next(u for u in ("U0SBREP1", "U0SBREP2", "U0SBREP3") if f"<@{u}>" in str(card["blocks"]))


def _act_as(page: Any, user: str) -> None:
    page.select_option("#user-switcher", user)


def test_a_person_can_card_accept_reject_and_ask_for_help(
    browser_page: Any, sandbox: str, tmp_path: Path
) -> None:
    page = browser_page
    shots = tmp_path / "screenshots"
    shots.mkdir()
    page.wait_for_selector("#add-sample-mqls:not([hidden])")
    page.screenshot(path=str(shots / "1-empty.png"))

    page.click("#add-sample-mqls")
    accept_buttons = page.locator('.message [data-action-id="lead_accept"]')
    accept_buttons.nth(2).wait_for(timeout=15_000)
    page.screenshot(path=str(shots / "2-cards.png"))

    first = page.locator(".message", has=page.locator('[data-action-id="lead_accept"]')).first
    first_ts = first.get_attribute("data-ts")
    assert first_ts
    owner = _owner_of(sandbox, first_ts)
    _act_as(page, owner)
    card = page.locator(f'.message[data-ts="{first_ts}"]')
    card.locator('[data-action-id="lead_accept"]').click()
    card.get_by_text("Accepted").wait_for(timeout=10_000)
    assert card.locator('[data-action-id="lead_accept"]').count() == 0
    page.screenshot(path=str(shots / "3-accepted.png"))

    second = page.locator(".message", has=page.locator('[data-action-id="lead_accept"]')).first
    second_ts = second.get_attribute("data-ts")
    assert second_ts
    _act_as(page, _owner_of(sandbox, second_ts))
    second = page.locator(f'.message[data-ts="{second_ts}"]')
    second.locator('[data-action-id="lead_reject"]').click()
    modal = page.locator("#modal")
    modal.get_by_text("Reject lead").wait_for(timeout=10_000)
    page.click("#modal-submit")
    modal.get_by_text("Pick a reason for rejecting this lead.").wait_for(timeout=10_000)
    modal.get_by_text("Add one sentence of context for marketing.").wait_for()
    page.screenshot(path=str(shots / "4-reject-errors.png"))

    modal.locator('[data-block-id="reason"] select').select_option("not_icp")
    modal.locator('[data-block-id="note"] textarea').fill("Student project, no budget.")
    page.click("#modal-submit")
    modal.wait_for(state="hidden", timeout=10_000)
    second.get_by_text("Rejected").wait_for(timeout=10_000)
    second.get_by_text("Student project, no budget.").wait_for()
    page.screenshot(path=str(shots / "5-rejected.png"))

    page.fill("#composer", "/revbot help")
    page.press("#composer", "Enter")
    help_message = page.locator(".ephemeral").filter(has_text="Accept")
    help_message.first.wait_for(timeout=10_000)
    page.screenshot(path=str(shots / "6-help.png"))

    page.click("#post-digest")
    chart = page.locator(".message-file img").first
    chart.wait_for(timeout=20_000)
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 200", arg=chart.element_handle()
    )
    chart.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "7-digest.png"))
    for name in (
        "1-empty",
        "2-cards",
        "3-accepted",
        "4-reject-errors",
        "5-rejected",
        "6-help",
        "7-digest",
    ):
        assert (shots / f"{name}.png").stat().st_size > 10_000
