"""gunicorn's arbiter stays small: the app, the SDKs and the models load only where they are used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.fakes.slack_api import FakeSlack
from tests.processes import RevbotProcess, revbot_env, run_cli

# What `revbot run` and `revbot web` need only in the workers gunicorn forks, or while migrating.
APP_MODULES = (
    "alembic",
    "bot.core.models",
    "bot.sandbox.web",
    "bot.services",
    "flask",
    "hubspot",
    "jobs.digest",
    "matplotlib",
    "simple_salesforce",
    "slack_bolt",
    "slack_sdk",
    "sqlalchemy",
    "sqlmodel",
)


def _loaded_after(code: str) -> set[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout))


def test_the_arbiter_imports_none_of_the_app() -> None:
    # bot.cli and bot.server are all gunicorn's arbiter imports before it forks its workers.
    loaded = _loaded_after("import bot.cli, bot.server")
    assert "gunicorn" in loaded
    assert sorted(m for m in APP_MODULES if m in loaded) == []


def _mapped_files(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def _children(pid: int) -> list[int]:
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux's /proc")
def test_revbot_run_migrates_once_in_a_child_and_keeps_the_arbiter_free_of_the_app(
    tmp_path: Path, fake_slack: FakeSlack, database_url: str
) -> None:
    env = revbot_env(tmp_path, slack_url=fake_slack.url, database_url=database_url)
    if not database_url.startswith("sqlite"):  # PostgreSQL is upgraded by hand, never on start
        assert run_cli("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    revbot = RevbotProcess(env, tmp_path, "run")
    try:
        revbot.wait_log("worker started", timeout=60)
        assert requests.get(f"{revbot.url}/readyz", timeout=30).status_code == 200
        arbiter = revbot.proc.pid
        (worker,) = _children(arbiter)
        # SQLAlchemy's compiled extensions: loaded by whatever touches the database.
        assert "/sqlalchemy/" in _mapped_files(worker)
        assert "/sqlalchemy/" not in _mapped_files(arbiter)
    finally:
        revbot.stop()
    log = revbot.log.read_text()
    if database_url.startswith("sqlite"):  # migrated once, before gunicorn starts serving
        assert log.count("Running upgrade  -> 0001") == 1, log
        assert log.index("Running upgrade  -> 0001") < log.index("Listening at"), log
    else:
        assert "Running upgrade" not in log, log
