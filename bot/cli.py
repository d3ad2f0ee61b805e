"""The `revbot` command line: the composition root of every process.

Each command imports what it uses, so gunicorn's arbiter (`revbot run`, `revbot web`) holds
little more than the settings and gunicorn: the HTTP app, Slack and the CRM SDKs, the models
and alembic load in a short-lived child that prepares the database, and in the workers.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

import click
from pydantic import ValidationError
from rich.console import Console

from bot import __version__
from bot.core.settings import Settings
from bot.logs import configure_logging

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from sqlalchemy import Engine

    from bot.core.csv_import import CsvRow
    from bot.core.playbook import Playbook
    from bot.runtime import Runtime
    from bot.services import Services

console = Console(stderr=True, highlight=False, soft_wrap=True)
Report = Callable[[bool | None, str, str], None]
T = TypeVar("T")

SLACK_HELP = """\
How to get them:
  1. Create the Slack app from app_manifest.yml: https://api.slack.com/apps -> Create New App
     -> From an app manifest, then install it to your workspace.
  2. OAuth & Permissions -> Bot User OAuth Token (xoxb-...) -> SLACK_BOT_TOKEN.
  3. Either Basic Information -> App-Level Tokens -> generate one with the connections:write
     scope -> SLACK_APP_TOKEN (Socket Mode: no public URL needed),
     or Basic Information -> Signing Secret -> SLACK_SIGNING_SECRET (HTTP mode on $PORT).
Put them in the environment or in a .env file in this folder, then run the command again.
`revbot check` tests the settings without starting anything."""


def _fail(message: str, code: int = 2) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}")
    sys.exit(code)


def load_settings() -> Settings:
    """Settings from the environment and .env, or a clean exit naming each bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        ]
        _fail("invalid settings:\n" + "\n".join(lines))


def _services(settings: Settings) -> Services:
    from bot.core.playbook import PlaybookError
    from bot.services import build_services
    from integrations import CrmNotConfigured

    try:
        return build_services(settings)
    except PlaybookError as exc:
        _fail(f"the playbook is invalid:\n{exc}")
    except CrmNotConfigured as exc:
        _fail(str(exc))


def _prepare_database(engine: Engine, settings: Settings) -> None:
    """SQLite is migrated on start; PostgreSQL must have been upgraded by `revbot db upgrade`."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.core import db

    try:
        if settings.is_sqlite:
            db.upgrade(engine)
        elif not db.is_current(engine):
            _fail(
                "the database schema is behind this version of revbot: run `revbot db upgrade` first."
            )
    except SQLAlchemyError as exc:
        _fail(
            f"cannot open the database {_safe_url(settings.database_url)}: {type(exc).__name__}: {exc.args[0] if exc.args else ''}"
        )


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as "(invalid URL)", never echoed with a password
        return "(invalid URL)"


def _require_slack(settings: Settings) -> None:
    missing = settings.missing_slack_settings()
    if missing:
        _fail(f"revbot cannot connect to Slack; missing: {', '.join(missing)}.\n\n{SLACK_HELP}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="revbot")
def cli() -> None:
    """revbot: MQL handoff, SLA chasing and deal support in Slack.

    Settings come from the environment or a .env file (see the README); the playbook from
    revbot.yml or REVBOT_PLAYBOOK (built-in defaults otherwise).
    """


def _serve(*, with_worker: bool, sandbox: bool = False) -> None:
    from bot.server import serve

    settings = load_settings()
    configure_logging(settings.log_level)
    if not sandbox:
        _require_slack(settings)
    # Checking the playbook and CRM and migrating load most of revbot: done once, in a child, so
    # gunicorn's arbiter stays small and its workers never migrate concurrently.
    settings = _in_child(_prepare_to_serve, settings, with_worker, sandbox)
    if sandbox:
        console.print(
            f"revbot sandbox: open http://127.0.0.1:{settings.port}/sandbox in your browser.\n"
            "It stands in for Slack with a sample team; to connect a real workspace, set the Slack "
            "variables (see `revbot check` and the README) and run `revbot run`."
        )
    else:
        slack = (
            "Socket Mode"
            if settings.slack_app_token
            else f"HTTP (POST /slack/events on port {settings.port})"
        )
        parts = "intake, health and worker" if with_worker else "intake and health"
        console.print(f"revbot {__version__}: Slack over {slack}; {parts} on port {settings.port}")

    def build() -> Runtime:
        from bot.runtime import build_runtime

        runtime = build_runtime(settings, sandbox=sandbox)
        runtime.start_background(worker=with_worker)
        return runtime

    # One process on SQLite (and whenever the worker runs in-process); more scale out on PostgreSQL.
    workers = 1 if with_worker or settings.is_sqlite else settings.web_concurrency
    serve(
        build,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level,
        access_log=settings.access_log,
    )


def _prepare_to_serve(settings: Settings, with_worker: bool, sandbox: bool) -> Settings:
    """The settings to serve with, once the playbook, CRM and database are ready (or a clean exit)."""
    if sandbox:
        from bot.sandbox.web import fresh_sandbox_database, sandbox_settings

        settings = sandbox_settings(settings, Path.cwd())
        fresh_sandbox_database(settings, Path.cwd())
    services = _services(settings)
    _prepare_database(services.engine, settings)
    services.engine.dispose()
    if with_worker and settings.is_sqlite:
        _check_single_worker(settings)
    return settings


def _in_child(task: Callable[..., T], *args: object) -> T:
    """`task(*args)` run in a forked child process; exits with the child's code if it failed.

    What the child imports and allocates goes away with it instead of staying in this process.
    """
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_send_result, args=(sender, task, *args), name="revbot-prepare")
    child.start()
    sender.close()
    try:
        results = [receiver.recv()]
    except EOFError:  # the child exited without a result; it has said why
        results = []
    finally:
        receiver.close()
    child.join()
    if child.exitcode != 0 or not results:
        sys.exit(child.exitcode if child.exitcode and child.exitcode > 0 else 1)
    return results[0]


def _send_result(sender: Connection, task: Callable[..., object], *args: object) -> None:
    sender.send(task(*args))
    sender.close()


def _check_single_worker(settings: Settings) -> None:
    """Refuse early, with a clear message, when a worker already runs on this SQLite file."""
    from bot.core.leadership import SecondWorkerError, SqliteWorkerLock

    lock = SqliteWorkerLock(settings.database_url)
    try:
        lock.acquire()
    except SecondWorkerError as exc:
        _fail(str(exc))
    lock.release()


@cli.command()
def run() -> None:
    """Run everything in one process: Slack, HTTP endpoints and the worker.

    Without Slack credentials it starts the sandbox instead (see `revbot sandbox`).
    """
    missing = load_settings().missing_slack_settings()
    if missing:
        console.print(
            f"No Slack credentials ({', '.join(missing)} unset): starting the sandbox workspace."
        )
    _serve(with_worker=True, sandbox=bool(missing))


@cli.command()
def sandbox() -> None:
    """Try revbot in the browser: a local stand-in Slack workspace with a sample team.

    Open http://127.0.0.1:$PORT/sandbox. Its messages live in memory and its database
    (revbot-sandbox.db unless DATABASE_URL is set) starts afresh each time.
    """
    _serve(with_worker=True, sandbox=True)


@cli.command()
def web() -> None:
    """Serve HTTP only (Slack endpoint, intake, health); scale out on PostgreSQL."""
    _serve(with_worker=False)


@cli.command()
def worker() -> None:
    """Run the background side: outbox delivery to Slack and the CRM, scheduled jobs."""
    from bot.core.leadership import SecondWorkerError
    from bot.runtime import build_runtime

    settings = load_settings()
    configure_logging(settings.log_level)
    if settings.slack_bot_token is None:
        _fail(f"the worker posts to Slack and needs SLACK_BOT_TOKEN.\n\n{SLACK_HELP}")
    services = _services(settings)
    _prepare_database(services.engine, settings)
    runtime = build_runtime(settings, services=services)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        runtime.start_background(worker=True)
    except SecondWorkerError as exc:
        _fail(str(exc))
    console.print("revbot worker running; Ctrl-C to stop")
    stopping.wait()
    runtime.stop()


@cli.group(name="db")
def db_group() -> None:
    """Database schema commands."""


@db_group.command()
def upgrade() -> None:
    """Apply every pending migration to DATABASE_URL."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.core import db

    settings = load_settings()
    engine = db.make_engine(settings.database_url)
    try:
        db.upgrade(engine)
    except SQLAlchemyError as exc:
        _fail(f"cannot migrate {_safe_url(settings.database_url)}: {type(exc).__name__}")
    console.print(
        f"database {_safe_url(settings.database_url)} is at revision {db.current_revision(engine)}"
    )


@cli.command(name="import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", help="Source name for rows without a `source` column (default: intake).")
def import_csv(csv_file: Path, source: str | None) -> None:
    """Load MQLs from a CSV file through the same path as the intake endpoint.

    The header names the intake keys (external_id, email, first_name, last_name, company,
    title, country, industry, employees, lead_source, campaign, score, signals, content,
    mql_at, source); lists use `;`. Bad rows are reported by row number and skipped. Exits 1
    when any row was invalid (the valid rows are still imported).
    """
    from bot.core.csv_import import read_rows

    settings = load_settings()
    services = _services(settings)
    _prepare_database(services.engine, settings)
    try:
        with csv_file.open(newline="", encoding="utf-8-sig") as stream:
            total = max(sum(1 for _ in stream) - 1, 0)
            stream.seek(0)
            counts, invalid = _import_rows(services, read_rows(stream, source=source), total)
    except (ValueError, UnicodeDecodeError) as exc:
        _fail(f"{csv_file}: {exc}")
    summary = ", ".join(f"{counts[k]} {k}" for k in ("created", "duplicate", "requalified"))
    console.print(f"Imported {csv_file.name}: {summary}, {len(invalid)} invalid.")
    if invalid:
        console.print("Invalid rows (skipped):")
        for line in invalid:
            console.print(f"  {line}")
        sys.exit(1)


IMPORT_BATCH = 200


def _import_rows(
    services: Services, rows: Iterable[CsvRow], total: int
) -> tuple[Counter[str], list[str]]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from bot.core import db
    from bot.core.intake import ingest

    counts: Counter[str] = Counter()
    invalid: list[str] = []
    batch: list[CsvRow] = []
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("import", total=total)

        def store() -> None:
            # One transaction a batch: a file of 100,000 leads is not 100,000 commits.
            with db.transaction(services.engine) as session:
                for row in batch:
                    assert row.lead is not None
                    result = ingest(
                        session, row.lead, playbook=services.playbook, now=services.clock()
                    )
                    counts[result.status] += 1
            progress.advance(task, len(batch))
            batch.clear()

        for row in rows:
            if row.lead is None:
                problems = "; ".join(f"{e.field}: {e.message}" for e in row.errors)
                invalid.append(f"row {row.line}: {problems}")
                progress.advance(task)
                continue
            batch.append(row)
            if len(batch) >= IMPORT_BATCH:
                store()
        if batch:
            store()
    return counts, invalid


@cli.command()
@click.option("--preview", is_flag=True, help="Write the Block Kit JSON and chart PNG locally.")
@click.option("--post", is_flag=True, help="Queue the digest for the worker to post now.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for --preview files.",
)
@click.option("--week", "iso_week", metavar="YYYY-Www", help="Default: the last complete week.")
def digest(preview: bool, post: bool, out: Path, iso_week: str | None) -> None:
    """Render the weekly scoreboard (--preview) or queue it for Slack now (--post).

    The worker posts it on its own on the playbook's digest.schedule; --post is for a
    missed or extra run (a week already queued is not posted again).
    """
    if preview == post:
        _fail(
            "say --preview to write the digest here (digest-YYYY-Www.json and .png), or --post to "
            "queue it for the worker; the worker also posts it on the playbook's digest.schedule."
        )
    from bot.core.metrics import last_complete_week, week_bounds
    from jobs import digest as digest_job

    settings = load_settings()
    services = _services(settings)
    try:
        week = (
            week_bounds(services.playbook, iso_week)
            if iso_week
            else last_complete_week(services.playbook, services.clock())
        )
    except ValueError as exc:
        _fail(f"--week: {exc}")
    _prepare_database(services.engine, settings)

    if post:
        queued = digest_job.queue(services, week, now=services.clock())
        where = ", ".join(digest_job.recipients(services.playbook))
        if queued:
            console.print(f"Queued the {week.label} digest for {where}; the worker posts it.")
        else:
            console.print(f"The {week.label} digest was already queued for {where}.")
        return
    rendered = digest_job.render(services, week, now=services.clock())
    try:
        out.mkdir(parents=True, exist_ok=True)
        blocks = out / f"digest-{week.label}.json"
        chart = out / rendered.filename
        blocks.write_text(json.dumps(rendered.message, indent=2, ensure_ascii=False) + "\n")
        chart.write_bytes(rendered.png)
    except OSError as exc:
        _fail(f"cannot write to {out}: {exc.strerror or exc}")
    click.echo(f"Wrote {blocks} (Block Kit) and {chart} (chart) for {week.label}.")


@cli.command()
def check() -> None:
    """Validate settings and playbook, then try the database, Slack and the CRM."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.core import db
    from bot.core.playbook import PlaybookError, load_playbook, resolve_playbook_path

    problems = 0

    def report(ok: bool | None, what: str, detail: str) -> None:
        nonlocal problems
        mark = {True: "[green]ok  [/]", False: "[red]FAIL[/]", None: "[yellow]warn[/]"}[ok]
        console.print(f"{mark} {what}: {detail}")
        problems += ok is False

    settings = load_settings()
    report(True, "settings", "read from the environment and .env")
    path = resolve_playbook_path(settings.playbook_path, Path.cwd())
    try:
        playbook = load_playbook(path)
        report(True, "playbook", str(path or "built-in defaults"))
    except PlaybookError as exc:
        report(False, "playbook", f"invalid\n{exc}")
        sys.exit(1)
    engine = db.make_engine(settings.database_url)
    try:
        db.ping(engine)
        current = db.is_current(engine)
        report(
            current or settings.is_sqlite,
            "database",
            f"{_safe_url(settings.database_url)} "
            + (
                "(migrations current)"
                if current
                else "(migrations pending: run `revbot db upgrade`)"
            ),
        )
    except SQLAlchemyError as exc:
        report(
            False,
            "database",
            f"cannot connect to {_safe_url(settings.database_url)}: {type(exc).__name__}",
        )
    _check_slack(settings, report)
    _check_crm(settings, playbook, engine, report)
    if settings.intake_token is None:
        report(
            None, "intake", "REVBOT_INTAKE_TOKEN is unset: POST /intake/leads refuses every request"
        )
    sys.exit(1 if problems else 0)


def _check_slack(settings: Settings, report: Report) -> None:
    missing = settings.missing_slack_settings()
    if missing:
        report(False, "slack", f"missing {', '.join(missing)}\n{SLACK_HELP}")
        return
    from slack_sdk.errors import SlackApiError

    from bot.services import slack_client

    client = slack_client(settings)
    assert client is not None
    try:
        auth = client.auth_test()
        mode = "Socket Mode" if settings.slack_app_token else "HTTP"
        report(True, "slack", f"connected to {auth.get('team')} as {auth.get('user')} ({mode})")
    except SlackApiError as exc:
        report(
            False, "slack", f"auth.test refused: {exc.response.get('error')}; check SLACK_BOT_TOKEN"
        )
    except OSError as exc:
        report(False, "slack", f"cannot reach {settings.slack_api_url}: {exc}")


def _check_crm(settings: Settings, playbook: Playbook, engine: Engine, report: Report) -> None:
    from bot.core.crm import CrmError
    from bot.services import utc_now
    from integrations import CrmNotConfigured, build_crm

    try:
        crm = build_crm(settings, playbook, engine, utc_now)
        report(True, "crm", crm.check())
    except (CrmNotConfigured, CrmError) as exc:
        report(False, "crm", str(exc))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="revbot")
