"""REVBOT_ACCESS_LOG: a real `revbot web` logs each request with its duration, only when asked."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import INTAKE_TOKEN, lead_json, wait_until
from tests.fakes.slack_api import FakeSlack
from tests.processes import RevbotProcess, revbot_env

pytestmark = pytest.mark.slow

BODY_DELAY_SECONDS = 0.4
LINE = re.compile(
    r'"(?P<method>\S+) (?P<path>\S+)" (?P<status>\d{3}) \S+ (?P<us>\d+) "(?P<id>[^"]*)"$'
)


def _slow_body_post(url: str, path: str, body: bytes, request_id: str) -> tuple[bytes, float]:
    """POST whose body arrives `BODY_DELAY_SECONDS` after its headers; (status line, seconds)."""
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST {path}?secret=should-not-be-logged HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {INTAKE_TOKEN}\r\nContent-Type: application/json\r\n"
        f"X-Request-Id: {request_id}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        started = time.perf_counter()
        sock.sendall(head.encode())
        time.sleep(BODY_DELAY_SECONDS)
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        elapsed = time.perf_counter() - started
    return answer.split(b"\r\n", 1)[0], elapsed


def _lines(path: Path) -> list[re.Match[str]]:
    text = path.read_text() if path.exists() else ""
    return [m for m in (LINE.search(line) for line in text.splitlines()) if m]


def test_web_logs_each_request_with_its_duration_in_microseconds(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    log = tmp_path / "access.log"
    env = revbot_env(tmp_path, slack_url=fake_slack.url, REVBOT_ACCESS_LOG=str(log))
    process = RevbotProcess(env, tmp_path, "web")
    try:
        process.wait_ready(60)
        body = json.dumps(lead_json("ACC-1")).encode()
        status, elapsed = _slow_body_post(process.url, "/intake/leads", body, "probe-1")
        assert status.startswith(b"HTTP/1.1 202"), status
        requests.get(f"{process.url}/healthz", headers={"X-Request-Id": "probe-2"}, timeout=5)
        wait_until(lambda: len(_lines(log)) >= 2, timeout=10, what="two access log lines")
    finally:
        process.stop()
    by_id = {m["id"]: m for m in _lines(log)}
    intake, health = by_id["probe-1"], by_id["probe-2"]
    assert (intake["method"], intake["path"], intake["status"]) == ("POST", "/intake/leads", "202")
    # The body was read inside the request, so its wait is in the duration (in microseconds).
    assert BODY_DELAY_SECONDS * 1e6 <= int(intake["us"]) <= elapsed * 1e6
    assert (health["path"], health["status"]) == ("/healthz", "200")
    assert "should-not-be-logged" not in log.read_text()


def test_without_the_setting_no_request_is_logged(tmp_path: Path, fake_slack: FakeSlack) -> None:
    process = RevbotProcess(revbot_env(tmp_path, slack_url=fake_slack.url), tmp_path, "web")
    try:
        process.wait_ready(60)
        requests.get(f"{process.url}/healthz", headers={"X-Request-Id": "probe-3"}, timeout=5)
    finally:
        process.stop()
    assert "probe-3" not in process.log.read_text()
    assert "/healthz" not in process.log.read_text()
