"""The weekly digest: the Block Kit message, the chart, the job through the outbox to the fake
Slack (files.getUploadURLExternal, the upload, files.completeUploadExternal), the sandbox's
upload methods, and `revbot digest`."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import request
from matplotlib import image
from slack_sdk import WebClient
from slack_sdk.models.blocks import Block
from sqlmodel import Session, select
from werkzeug.serving import make_server

from bot.core import db, outbox
from bot.core.metrics import RepRow, Scoreboard, TierSla, TrendPoint, WeekFigures, week_of
from bot.core.models import OutboxMessage
from bot.sandbox.web import create_api_app
from bot.sandbox.workspace import User, Workspace
from bot.services import Services
from bot.views.digest import build_digest, change, change_pts
from bot.views.digest_chart import render_trend_png
from jobs import digest as digest_job
from jobs import outbox as outbox_job
from tests.conftest import TEST_PLAYBOOK, FrozenClock, blocks_text, make_services, team_playbook
from tests.fakes.slack_api import FakeSlack
from tests.processes import revbot_env, run_cli
from tests.test_metrics import NOW, PLAYBOOK, W47, board, week47

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PIPELINE_ID = "C0PIPELINE"


def assert_valid_message(message: dict[str, Any]) -> None:
    """Slack's limits: text present, at most 50 blocks, each valid by slack_sdk's models."""
    assert message["text"].strip()
    assert len(message["text"]) <= 3000
    blocks = message["blocks"]
    assert 0 < len(blocks) <= 50
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None, raw
        block.validate_json()
    json.dumps(message)


@pytest.fixture
def filled(engine: Any) -> Any:
    """The W46/W47 example of test_metrics."""
    with Session(engine) as session:
        week47(session)
        session.commit()
    return engine


# -- the message ---------------------------------------------------------------------------------


def test_digest_shows_each_figure_with_its_change_and_the_alarms(filled: Any) -> None:
    message = build_digest(board(filled), PLAYBOOK)
    assert_valid_message(message)
    shown = blocks_text(message["blocks"])
    assert "Weekly scoreboard · 2026-W47" in shown
    assert "8 · ▲ 300%" in shown  # MQLs: 2 the week before
    assert "67% (target ≥ 90%) · ▲ 17 pts" in shown
    assert "33% (alarm above 30%) · ▼ 17 pts" in shown
    assert ":rotating_light: 33%" in shown
    assert "rejection 33% is above the 30% limit" in shown
    assert "acceptance 67% is below the 90% target" in shown
    assert "median 40m · p90 1h 42m" in shown  # 2400 s and 6120 s
    assert "71% of 7" in shown  # SLA compliance 5 of 7
    assert "33% (1 of 3)" in shown  # the hot tier
    assert "Not our ICP" in shown
    assert "Timing: revisit later" in shown
    assert "Webinar: 4 MQLs · ▲ 100% · 75% accepted" in shown
    assert "not available yet: connect Salesforce or HubSpot" in shown
    assert "Ana" in shown
    assert "Ben" in shown
    assert message["text"].startswith("Weekly scoreboard 2026-W47: 8 MQLs (▲ 300%), 67% accepted")


def test_per_rep_table_is_a_code_block(filled: Any) -> None:
    message = build_digest(board(filled), PLAYBOOK)
    [table] = [b for b in message["blocks"] if "```" in b.get("text", {}).get("text", "")]
    lines = table["text"]["text"].split("```")[1].splitlines()
    assert lines[0].split() == ["Rep", "Owned", "Acc", "Med", "TTA", "SLA", "Rej", "Rec"]
    assert lines[1].split() == ["Ana", "4", "3", "1h", "100%", "1", "1"]
    assert lines[2].split() == ["Ben", "3", "1", "20m", "33%", "1", "0"]


def test_an_empty_week_renders_no_data_without_errors(engine: Any) -> None:
    scoreboard = board(engine)
    message = build_digest(scoreboard, PLAYBOOK)
    assert_valid_message(message)
    shown = blocks_text(message["blocks"])
    assert "No MQLs arrived this week." in shown
    assert "no data" in shown
    assert ":rotating_light:" not in shown
    assert "No lead had an owner this week." in shown
    png = render_trend_png(scoreboard.trend)
    assert png.startswith(PNG_SIGNATURE)


def test_a_large_team_and_many_tiers_stay_within_block_kit_limits() -> None:
    week = week_of(PLAYBOOK, W47.monday)
    tiers = [TierSla(f"tier_{i}", f"Tier {i}", i, 20) for i in range(14)]
    reps = [RepRow(f"U{i:05d}", 90, 80, 5, 5, 70, 90, 1234.5) for i in range(40)]
    figures = WeekFigures(week, mqls=3600, responded=3000, accepted=2900, sla=tiers)
    scoreboard = Scoreboard(figures, replace(figures, week=W47), reps, [], PLAYBOOK.digest.targets)
    message = build_digest(scoreboard, PLAYBOOK)
    assert_valid_message(message)
    assert "…and 15 more reps" in blocks_text(message["blocks"])


@pytest.mark.parametrize(
    ("now", "before", "shown"),
    [
        (112, 100, "▲ 12%"),
        (97, 100, "▼ 3%"),
        (100, 100, "±0%"),
        (5, 0, "▲ from 0"),
        (0, 0, "±0%"),
        (5, None, "no data last week"),
        (None, 5, ""),
    ],
)
def test_change_of_counts_and_durations(now: Any, before: Any, shown: str) -> None:
    assert change(now, before) == shown


@pytest.mark.parametrize(
    ("now", "before", "shown"),
    [
        (0.92, 0.88, "▲ 4 pts"),
        (0.87, 0.88, "▼ 1 pt"),
        (0.5, 0.5, "±0 pts"),
        (0.5, None, "no data last week"),
    ],
)
def test_change_of_rates_in_points(now: float, before: Any, shown: str) -> None:
    assert change_pts(now, before) == shown


# -- the chart -----------------------------------------------------------------------------------


def test_trend_chart_is_a_png_of_the_last_weeks(filled: Any) -> None:
    trend = board(filled).trend
    png = render_trend_png(trend)
    assert png.startswith(PNG_SIGNATURE)
    pixels = image.imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (560, 800)
    assert render_trend_png(trend) == png  # no timestamps or versions inside


def test_trend_chart_with_no_weeks_of_data() -> None:
    weeks = [week_of(PLAYBOOK, W47.monday - timedelta(days=7 * k)) for k in range(8)]
    png = render_trend_png([TrendPoint(w, 0, None, None) for w in reversed(weeks)])
    assert image.imread(io.BytesIO(png), format="png").shape[:2] == (560, 800)


# -- the job, through the outbox to Slack --------------------------------------------------------


def _services(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock, **digest: Any
) -> Services:
    playbook = team_playbook()
    if digest:
        playbook = playbook.model_copy(update={"digest": playbook.digest.model_copy(update=digest)})
    return make_services(engine, database_url, fake, playbook=playbook, clock=clock)


def _rows(engine: Any) -> list[OutboxMessage]:
    with Session(engine) as session:
        rows = list(session.exec(select(OutboxMessage).where(OutboxMessage.kind == "slack.file")))
        for row in rows:
            session.expunge(row)
        return rows


@pytest.fixture
def delivered(
    filled: Any, database_url: str, fake_slack: FakeSlack, clock: FrozenClock
) -> tuple[Services, FakeSlack]:
    """The digest job run on Monday 2026-11-23 and the outbox delivered once."""
    services = _services(filled, database_url, fake_slack, clock)
    assert clock() == NOW + timedelta(hours=1)
    assert digest_job.run(services, now=clock()) == 1
    outbox_job.run(services, now=clock())
    return services, fake_slack


def test_job_posts_the_scoreboard_then_uploads_the_chart_the_current_way(
    delivered: tuple[Services, FakeSlack],
) -> None:
    services, fake = delivered
    [row] = _rows(services.engine)
    assert row.dedupe_key == "digest:2026-W47:#revenue-pipeline"
    assert row.state == outbox.DONE
    png = base64.b64decode(row.payload["png"])
    assert png.startswith(PNG_SIGNATURE)

    [post] = fake.calls("chat.postMessage")
    assert post.params["channel"] == PIPELINE_ID
    assert post.params["metadata"]["event_type"] == "revbot_digest"
    assert post.params["metadata"]["event_payload"] == {"week": "2026-W47"}
    assert_valid_message({"text": post.params["text"], "blocks": post.params["blocks"]})
    assert "Weekly scoreboard · 2026-W47" in blocks_text(post.params["blocks"])

    [ask] = fake.calls("files.getUploadURLExternal")
    assert ask.params["filename"] == "digest-2026-W47.png"
    assert int(ask.params["length"]) == len(png)
    [upload] = fake.calls("upload")
    assert upload.body == png
    [complete] = fake.calls("files.completeUploadExternal")
    assert complete.params["channel_id"] == PIPELINE_ID
    [shared] = complete.params["files"]
    assert shared["title"] == "Weekly scoreboard 2026-W47: last 8 weeks"
    assert fake.calls("files.upload") == []  # the retired method is never used

    methods = [r.method for r in fake.requests]
    assert methods.index("chat.postMessage") < methods.index("files.getUploadURLExternal")
    assert methods.index("upload") < methods.index("files.completeUploadExternal")

    scoreboard, chart = fake.messages("#revenue-pipeline")
    assert scoreboard["blocks"] == post.params["blocks"]
    [file] = chart["files"]
    assert (file["name"], file["mimetype"]) == ("digest-2026-W47.png", "image/png")
    served = requests.get(file["url_private"], timeout=5)
    assert served.headers["Content-Type"] == "image/png"
    assert served.content == png


def test_running_the_job_again_for_the_same_week_posts_nothing_more(
    delivered: tuple[Services, FakeSlack], clock: FrozenClock
) -> None:
    services, fake = delivered
    assert digest_job.run(services, now=clock.advance(hours=2)) == 0
    outbox_job.run(services, now=clock())
    assert len(fake.calls("chat.postMessage")) == 1
    assert len(fake.calls("files.completeUploadExternal")) == 1
    assert len(_rows(services.engine)) == 1


def test_two_runs_before_delivery_queue_one_row(
    filled: Any, database_url: str, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(filled, database_url, fake_slack, clock)
    assert digest_job.run(services, now=clock()) == 1
    assert digest_job.run(services, now=clock()) == 0
    outbox_job.run(services, now=clock())
    outbox_job.run(services, now=clock.advance(minutes=1))
    assert len(fake_slack.calls("chat.postMessage")) == 1
    assert len(fake_slack.calls("files.completeUploadExternal")) == 1


@pytest.mark.parametrize("failing", ["upload", "files.completeUploadExternal"])
def test_a_failed_upload_is_retried_without_posting_the_scoreboard_twice(
    filled: Any, database_url: str, fake_slack: FakeSlack, clock: FrozenClock, failing: str
) -> None:
    services = _services(filled, database_url, fake_slack, clock)
    digest_job.run(services, now=clock())
    fake_slack.fail_next(failing, status=500)
    outbox_job.run(services, now=clock())
    [row] = _rows(services.engine)
    assert row.state == outbox.PENDING
    assert "500" in (row.last_error or "")
    assert row.uncertain  # the next try checks the channel's history first

    outbox_job.run(services, now=clock.advance(minutes=5))
    [row] = _rows(services.engine)
    assert row.state == outbox.DONE
    assert len(fake_slack.calls("chat.postMessage")) == 1
    assert len(fake_slack.calls("files.getUploadURLExternal")) == 2
    scoreboard, chart = fake_slack.messages("#revenue-pipeline")
    assert scoreboard["metadata"]["event_type"] == "revbot_digest"
    assert chart["files"][0]["name"] == "digest-2026-W47.png"


def test_a_missing_channel_is_dead_lettered_with_an_alert(
    filled: Any, database_url: str, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(filled, database_url, fake_slack, clock, channel="#no-such-channel")
    digest_job.run(services, now=clock())
    outbox_job.run(services, now=clock())
    [row] = _rows(services.engine)
    assert row.state == outbox.DEAD
    assert "#no-such-channel" in (row.last_error or "")
    outbox_job.run(services, now=clock())
    assert fake_slack.calls("files.getUploadURLExternal") == []
    assert any("slack.file" in r.params["text"] for r in fake_slack.calls("chat.postMessage"))


def test_managers_get_the_digest_by_dm_when_the_playbook_says_so(
    filled: Any, database_url: str, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(
        filled, database_url, fake_slack, clock, dm_managers=True, channel="#revops-alerts"
    )
    assert digest_job.run(services, now=clock()) == 3
    outbox_job.run(services, now=clock())
    keys = sorted(r.dedupe_key for r in _rows(services.engine))
    assert keys == [
        "digest:2026-W47:#revops-alerts",
        "digest:2026-W47:UMGR1",
        "digest:2026-W47:UMGR2",
    ]
    assert all(r.state == outbox.DONE for r in _rows(services.engine))
    channels = sorted(
        r.params["channel_id"] for r in fake_slack.calls("files.completeUploadExternal")
    )
    assert channels == ["C0ALERTS", "DMGR1", "DMGR2"]
    assert sorted(r.params["users"] for r in fake_slack.calls("conversations.open")) == [
        "UMGR1",
        "UMGR2",
    ]


# -- the sandbox workspace -----------------------------------------------------------------------


def test_sandbox_workspace_takes_a_files_upload_v2_upload() -> None:
    """A real WebClient uploads to the workspace; the upload route is the one web.py adds."""
    apps: list[Any] = []
    server = make_server("127.0.0.1", 0, lambda env, start: apps[0](env, start), threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    ws = Workspace(
        bot_token="xoxb-s",
        users=[User("U0MGR1", "Maya", "manager")],
        channels={"revenue-pipeline": "C0PIPE"},
        upload_base=f"{base}/sandbox",
    )
    app = create_api_app(ws)

    @app.post("/sandbox/upload/<file_id>")
    def upload(file_id: str) -> Any:
        taken = ws.receive_upload(file_id, request.get_data())
        return ("OK", 200) if taken else ("no such upload", 404)

    apps.append(app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = WebClient(token="xoxb-s", base_url=f"{base}/api/")
        png = render_trend_png([])
        answer = client.files_upload_v2(
            channel="C0PIPE", file=png, filename="chart.png", title="Chart", initial_comment="Trend"
        )
    finally:
        server.shutdown()
    file = answer["file"]
    assert file["url_private"] == f"{base}/sandbox/files/{file['id']}"
    assert ws.file_bytes(file["id"]) == (png, "image/png")
    [shown] = ws.timeline("C0PIPE", "U0MGR1")["messages"]
    assert shown["text"] == "Trend"
    assert shown["files"][0]["name"] == "chart.png"


def test_sandbox_workspace_refuses_bad_uploads() -> None:
    ws = Workspace(bot_token="t", users=[], channels={"c": "C0C"})
    assert ws.call("files.getUploadURLExternal", {"filename": "a.png"}, "t")[1]["error"] == (
        "invalid_arguments"
    )
    started = ws.call("files.getUploadURLExternal", {"filename": "a.png", "length": "3"}, "t")[1]
    assert started["upload_url"] == f"http://127.0.0.1:3000/sandbox/upload/{started['file_id']}"
    complete = {"files": json.dumps([{"id": started["file_id"]}]), "channel_id": "C0C"}
    assert ws.call("files.completeUploadExternal", complete, "t")[1]["error"] == "file_not_found"
    assert ws.receive_upload(started["file_id"], b"abc")
    assert not ws.receive_upload(started["file_id"], b"abc")  # an upload URL is used once
    bad_channel = {**complete, "channel_id": "C0NOPE"}
    assert ws.call("files.completeUploadExternal", bad_channel, "t")[1]["error"] == (
        "channel_not_found"
    )
    assert ws.file_bytes(started["file_id"]) is None  # not shared yet
    assert ws.call("files.completeUploadExternal", complete, "t")[1]["ok"] is True
    assert ws.file_bytes(started["file_id"]) == (b"abc", "image/png")


# -- revbot digest -------------------------------------------------------------------------------


def _cli_env(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "revbot.yml"
    path.write_text(TEST_PLAYBOOK.replace("MODE", "claim"))
    env = revbot_env(tmp_path)
    engine = db.make_engine(env["DATABASE_URL"])
    db.upgrade(engine)
    with Session(engine) as session:
        week47(session)
        session.commit()
    engine.dispose()
    return env


def test_cli_preview_writes_the_block_kit_json_and_the_png(tmp_path: Path) -> None:
    env = _cli_env(tmp_path)
    out = tmp_path / "preview"
    result = run_cli(
        "digest", "--preview", "--out", str(out), "--week", "2026-W47", env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    blocks, chart = out / "digest-2026-W47.json", out / "digest-2026-W47.png"
    assert str(blocks) in result.stdout
    assert str(chart) in result.stdout
    message = json.loads(blocks.read_text())
    assert_valid_message(message)
    assert "8 · ▲ 300%" in blocks_text(message["blocks"])
    assert chart.read_bytes().startswith(PNG_SIGNATURE)


def test_cli_preview_defaults_to_the_last_complete_week(tmp_path: Path) -> None:
    result = run_cli("digest", "--preview", env=revbot_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in tmp_path.glob("digest-*"))
    assert len(written) == 2
    assert written[0].endswith(".json")
    assert written[1].endswith(".png")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preview", "--week", "2026-W99"], "--week: 2026 has no week 99"),
        (["--preview", "--week", "47"], "--week: '47' is not an ISO week; write it as YYYY-Www"),
        ([], "say --preview"),
        (["--preview", "--post"], "say --preview"),
    ],
)
def test_cli_refuses_bad_arguments_clearly(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_cli("digest", *args, env=revbot_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_cli_post_queues_the_week_once(tmp_path: Path) -> None:
    env = _cli_env(tmp_path)
    first = run_cli("digest", "--post", "--week", "2026-W47", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Queued the 2026-W47 digest for #revenue-pipeline" in first.stderr
    again = run_cli("digest", "--post", "--week", "2026-W47", env=env, cwd=tmp_path)
    assert "already queued" in again.stderr
    engine = db.make_engine(env["DATABASE_URL"])
    with Session(engine) as session:
        keys = session.exec(
            select(OutboxMessage.dedupe_key).where(OutboxMessage.kind == "slack.file")
        ).all()
    engine.dispose()
    assert keys == ["digest:2026-W47:#revenue-pipeline"]


def test_starting_revbot_does_not_load_matplotlib() -> None:
    # A worker pays for the chart library only when it renders a digest.
    code = "import sys, bot.cli, bot.worker; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
