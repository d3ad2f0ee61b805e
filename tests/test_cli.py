"""The `revbot` command line as a user runs it (a real subprocess each time)."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, func, select

from bot.core import db
from bot.core.models import Lead
from tests.fakes.slack_api import FakeSlack
from tests.processes import revbot_env, run_cli

CSV = """external_id,email,first_name,last_name,company,title,employees,score,signals,mql_at
C-1,ana@acme.example,Ana,Diaz,Acme,VP Ops,450,87,pricing_page;demo_request,2026-11-20T10:00:00Z
C-2,not-an-email,Bo,Lee,Beta,CTO,20,40,,
C-3,,,Kim,Gamma,Director,abc,,,
C-4,,,Ruiz,Delta,Manager,1200,,webinar,
C-1,ana@acme.example,Ana,Diaz,Acme,VP Ops,450,87,pricing_page;demo_request,2026-11-20T10:00:00Z
"""


def test_web_without_slack_credentials_says_what_is_missing(tmp_path: Path) -> None:
    result = run_cli("web", env=revbot_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN" in result.stderr
    assert "SLACK_SIGNING_SECRET" in result.stderr
    assert "SLACK_APP_TOKEN" in result.stderr
    assert "app_manifest.yml" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_web_with_only_an_app_token_still_needs_the_bot_token(tmp_path: Path) -> None:
    result = run_cli("web", env=revbot_env(tmp_path, SLACK_APP_TOKEN="xapp-1-test"), cwd=tmp_path)
    assert result.returncode == 2
    assert "missing: SLACK_BOT_TOKEN." in " ".join(result.stderr.split())
    assert "xapp-1-test" not in result.stderr


def test_invalid_settings_name_the_variable(tmp_path: Path) -> None:
    result = run_cli("web", env=revbot_env(tmp_path, PORT="eighty"), cwd=tmp_path)
    assert result.returncode == 2
    assert "PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_reports_playbook_errors_with_key_and_line(tmp_path: Path) -> None:
    (tmp_path / "revbot.yml").write_text(
        "tiers:\n  - {name: hot, min_score: 80, accept_within: 15m}\n  - name: rest\n    min_score: 0\n"
        "    accept_within: soon\nreasons:\n  reject: [{code: a, label: A}]\n  recycle: [{code: b, label: B}]\n"
        "routing:\n  pools: {sales: {open: true, colour: red}}\n"
    )
    result = run_cli("check", env=revbot_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    out = " ".join(result.stderr.split())
    assert "revbot.yml:5 tiers[1].accept_within" in out
    assert "revbot.yml:10 routing.pools.sales.colour: unknown key" in out


def test_run_refuses_to_start_on_an_invalid_playbook(tmp_path: Path, fake_slack: FakeSlack) -> None:
    (tmp_path / "revbot.yml").write_text(
        "tiers:\n  - {name: all, min_score: 0, accept_within: 1h}\nreasons:\n"
        "  reject: [{code: a, label: A}]\n  recycle: [{code: b, label: B}]\n"
        "routing:\n  default_pool: nowhere\n  pools: {sales: {open: true}}\n"
    )
    result = run_cli("run", env=revbot_env(tmp_path, slack_url=fake_slack.url), cwd=tmp_path)
    assert result.returncode == 2
    out = " ".join(result.stderr.split())
    assert "revbot.yml:7 routing.default_pool: no pool named 'nowhere'" in out
    assert "Traceback" not in out


def test_check_passes_against_a_working_slack(tmp_path: Path, fake_slack: FakeSlack) -> None:
    env = revbot_env(tmp_path, slack_url=fake_slack.url)
    assert run_cli("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    result = run_cli("check", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "connected to Sandbox" in result.stderr
    assert fake_slack.calls("auth.test")


def test_check_fails_on_a_bad_token_and_pending_migrations(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    env = revbot_env(
        tmp_path,
        slack_url=fake_slack.url,
        SLACK_BOT_TOKEN="xoxb-wrong",
        DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none",
    )
    result = run_cli("check", env=env, cwd=tmp_path)
    assert result.returncode == 1
    out = " ".join(result.stderr.split())
    assert "invalid_auth" in out
    assert "check SLACK_BOT_TOKEN" in out
    assert "cannot connect to postgresql+psycopg://nobody@127.0.0.1:1/none" in out
    assert "xoxb-wrong" not in out


def test_import_reports_bad_rows_by_number_and_imports_the_rest(tmp_path: Path) -> None:
    csv_path = tmp_path / "leads.csv"
    csv_path.write_text(CSV)
    env = revbot_env(tmp_path)
    result = run_cli("import", str(csv_path), env=env, cwd=tmp_path)
    out = " ".join(result.stderr.split())
    assert result.returncode == 1
    assert "2 created, 1 duplicate, 0 requalified, 2 invalid" in out
    assert "row 3: email: not an email address" in out
    assert "row 4: employees:" in out
    engine = db.make_engine(env["DATABASE_URL"])
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Lead)).one() == 2
    again = run_cli("import", str(csv_path), env=env, cwd=tmp_path)
    assert "0 created, 3 duplicate" in " ".join(again.stderr.split())


def test_import_refuses_a_file_without_external_id(tmp_path: Path) -> None:
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("email,name\nana@acme.example,Ana\n")
    result = run_cli("import", str(csv_path), env=revbot_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "external_id" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_and_help(tmp_path: Path) -> None:
    env = revbot_env(tmp_path)
    upgraded = run_cli("db", "upgrade", env=env, cwd=tmp_path)
    assert upgraded.returncode == 0
    assert (
        f"is at revision {db.head_revision(db.make_engine(env['DATABASE_URL']))}" in upgraded.stderr
    )
    helped = run_cli("--help", env=env, cwd=tmp_path)
    for command in ("run", "web", "worker", "db", "check", "import", "sandbox"):
        assert f"  {command} " in helped.stdout
