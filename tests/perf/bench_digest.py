"""Benchmark: the weekly digest over N leads (one MQL cycle each) spread over 10 weeks.

    python -m tests.perf.bench_digest --database-url sqlite:///bench-digest.db --leads 1000000
    python -m tests.perf.bench_digest --database-url postgresql://postgres@127.0.0.1:5432/test \\
        --leads 1000000

Loads the rows in bulk (executemany on SQLite, COPY on PostgreSQL, into its own schema
`revbot_bench`), then times `weekly_scoreboard` for the last complete week and the whole digest
(scoreboard + Block Kit + chart PNG), and prints the figures. `--reuse` skips loading when the
database already holds that many leads. Not collected by pytest (run on demand).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlmodel import Session

from bot.core import db
from bot.core.metrics import last_complete_week, weekly_scoreboard
from bot.core.playbook import Playbook, parse_playbook
from bot.core.settings import Settings
from bot.views.digest import build_digest
from bot.views.digest_chart import render_trend_png

SCHEMA = "revbot_bench"
WEEKS = 10
BATCH = 50_000
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # Monday 09:00 in New York
REPS = [f"UREP{i:03d}" for i in range(1, 25)]
SOURCES = ["Webinar", "Paid Search", "Content", "Events", "Partner", "Organic", "Outbound", None]
REJECT = ["not_icp", "bad_contact", "competitor"]
RECYCLE = ["timing", "no_response"]
TIERS = [("hot", 15 * 60, 0.2), ("warm", 4 * 3600, 0.5), ("nurture", 24 * 3600, 0.3)]

PLAYBOOK = f"""
timezone: America/New_York
channels: {{digest: "#revenue-digest"}}
digest: {{targets: {{weekly_mqls: 100000}}}}
tiers:
  - {{name: hot, min_score: 80, accept_within: 15m, clock: wall}}
  - {{name: warm, min_score: 50, accept_within: 4h, clock: wall}}
  - {{name: nurture, min_score: 0, accept_within: 1d, clock: wall}}
reasons:
  reject: [{{code: not_icp, label: Not ICP}}, {{code: bad_contact, label: Bad contact}},
           {{code: competitor, label: Competitor}}]
  recycle: [{{code: timing, label: Timing}}, {{code: no_response, label: No response}}]
routing:
  pools:
    sales:
      members: [{", ".join(f"{{slack_id: {r}}}" for r in REPS)}]
"""

LEAD_COLUMNS = (
    "id, origin, external_id, company, last_name, lead_source, signals, content, extra, "
    "created_at, updated_at"
)
CYCLE_COLUMNS = (
    "id, lead_id, seq, mql_at, received_at, score, score_reasons, tier, sla_due_at, pool, "
    "owner_slack_id, state, accepted_by, accepted_at, closed_by, closed_at, reason_code, "
    "reassignments, first_touch_at, version, lead_source"
)
EVENT_COLUMNS = "cycle_id, kind, step, owner_slack_id, created_at"


def _rows(n: int, seed: int = 7) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...], list[Any]]]:
    """(lead, cycle, events) per lead, timestamps as aware datetimes."""
    rng = random.Random(seed)
    end = NOW - timedelta(hours=NOW.hour)  # Monday 00:00 UTC, near the week's end
    span = WEEKS * 7 * 86400
    for i in range(1, n + 1):
        # Intake stores leads as they arrive, so ids follow received_at (with jitter in a slot).
        received = end - timedelta(seconds=span * (1 - (i - rng.random()) / n))
        name, sla, _ = rng.choices(TIERS, weights=[t[2] for t in TIERS])[0]
        owner = rng.choice(REPS)
        due = received + timedelta(seconds=sla)
        roll = rng.random()
        accepted_at = closed_at = touch = reason = None
        state = "open"
        if roll < 0.88:
            first = received + timedelta(seconds=rng.lognormvariate(6.5, 1.4))
            if roll < 0.70:
                state, accepted_at = "accepted", first
                if rng.random() < 0.6:
                    touch = first + timedelta(seconds=rng.lognormvariate(8, 1))
            elif roll < 0.80:
                state, closed_at, reason = "rejected", first, rng.choice(REJECT)
            else:
                state, accepted_at = "recycled", first
                closed_at, reason = first + timedelta(days=2), rng.choice(RECYCLE)
        source = rng.choice(SOURCES)
        lead = (
            i,
            "bench",
            f"B-{i}",
            f"Company {i % 5000}",
            f"Lead{i}",
            source,
            "[]",
            "[]",
            "{}",
            received,
            received,
        )
        cycle = (
            i,
            i,
            1,
            received,
            received,
            rng.randint(0, 100),
            "[]",
            name,
            due,
            "sales",
            owner,
            state,
            owner if accepted_at else None,
            accepted_at,
            owner if closed_at else None,
            closed_at,
            reason,
            0,
            touch,
            1,
            source,
        )
        events = []
        if rng.random() < 0.15:
            events.append((i, "nudge", 0, owner, due - timedelta(seconds=sla / 3)))
        if rng.random() < 0.05:
            events.append((i, "escalate", 0, owner, due))
        yield lead, cycle, events


def _sqlite_value(value: Any) -> Any:
    # The format SQLAlchemy's DateTime stores on SQLite (naive UTC text).
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _copy_value(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _batches(n: int) -> Iterator[tuple[list[Any], list[Any], list[Any]]]:
    leads: list[Any] = []
    cycles: list[Any] = []
    events: list[Any] = []
    for lead, cycle, evs in _rows(n):
        leads.append(lead)
        cycles.append(cycle)
        events.extend(evs)
        if len(leads) >= BATCH:
            yield leads, cycles, events
            leads, cycles, events = [], [], []
    if leads:
        yield leads, cycles, events


def _load_sqlite(engine: Engine, n: int) -> None:
    raw = engine.raw_connection()
    try:
        conn: Any = raw.driver_connection
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        for leads, cycles, events in _batches(n):
            for table, columns, rows in (
                ("leads", LEAD_COLUMNS, leads),
                ("mql_cycles", CYCLE_COLUMNS, cycles),
                ("sla_events", EVENT_COLUMNS, events),
            ):
                marks = ", ".join("?" for _ in columns.split(","))
                conn.executemany(
                    f"INSERT INTO {table} ({columns}) VALUES ({marks})",  # noqa: S608  (fixed names)
                    [tuple(_sqlite_value(v) for v in row) for row in rows],
                )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        raw.close()


def _load_postgres(engine: Engine, n: int) -> None:
    raw = engine.raw_connection()
    try:
        conn: Any = raw.driver_connection
        with conn.cursor() as cur:
            for leads, cycles, events in _batches(n):
                for table, columns, rows in (
                    ("leads", LEAD_COLUMNS, leads),
                    ("mql_cycles", CYCLE_COLUMNS, cycles),
                    ("sla_events", EVENT_COLUMNS, events),
                ):
                    buffer = io.StringIO()
                    for row in rows:
                        buffer.write("\t".join(_copy_value(v) for v in row) + "\n")
                    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                        copy.write(buffer.getvalue())
            for table in ("leads", "mql_cycles", "sla_events"):
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                    f"(SELECT max(id) FROM {table}))"
                )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    finally:
        raw.close()


def _engine(url: str, *, fresh: bool) -> Engine:
    url = Settings(_env_file=None, DATABASE_URL=url).database_url  # type: ignore[call-arg]
    if url.startswith("postgresql"):
        admin = create_engine(url)
        with admin.begin() as conn:
            if fresh:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        admin.dispose()
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{SCHEMA}"
    return db.make_engine(url)


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM leads")).scalar_one())


def _time(fn: Any, repeat: int) -> tuple[list[float], list[float], Any]:
    """Wall-clock and this process's CPU seconds of each of `repeat` calls, and the last result."""
    times, cpu, result = [], [], None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return times, cpu, result


def _summary(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values)}


def main(argv: list[str] | None = None) -> int:
    """Load the data (unless reused) and print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="sqlite:///bench-digest.db")
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="keep data already loaded")
    args = parser.parse_args(argv)

    playbook: Playbook = parse_playbook(PLAYBOOK, "bench playbook")
    engine = _engine(args.database_url, fresh=not args.reuse)
    if engine.dialect.name == "sqlite" and not args.reuse:
        path = engine.url.database
        engine.dispose()
        if path:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path + suffix)
        engine = db.make_engine(args.database_url)
    db.upgrade(engine)
    if _count(engine) != args.leads:
        if args.reuse and _count(engine):
            print("--reuse: the database holds a different number of leads", file=sys.stderr)
            return 2
        start = time.perf_counter()
        (_load_postgres if engine.dialect.name == "postgresql" else _load_sqlite)(
            engine, args.leads
        )
        print(f"loaded {args.leads:,} leads in {time.perf_counter() - start:.1f}s")

    week = last_complete_week(playbook, NOW)

    def scoreboard() -> Any:
        with Session(engine) as session:
            return weekly_scoreboard(session, playbook, week, now=NOW)

    def digest() -> Any:
        board = scoreboard()
        return build_digest(board, playbook), render_trend_png(board.trend)

    render_trend_png(scoreboard().trend)  # warm-up: imports and font cache
    load_before = os.getloadavg()[0]
    sb_times, sb_cpu, board = _time(scoreboard, args.repeat)
    all_times, all_cpu, (message, png) = _time(digest, args.repeat)
    print(
        json.dumps(
            {
                "backend": engine.dialect.name,
                "leads": args.leads,
                "week": week.label,
                "week_mqls": board.current.mqls,
                "scoreboard_s": _summary(sb_times),
                "digest_with_chart_s": _summary(all_times),
                # SQLite runs in this process, so its CPU time is the query work without
                # the waiting a busy machine adds; PostgreSQL's work is in the server.
                "scoreboard_cpu_s": _summary(sb_cpu),
                "digest_with_chart_cpu_s": _summary(all_cpu),
                "load_1min": {"before": load_before, "after": os.getloadavg()[0]},
                "blocks": len(message["blocks"]),
                "png_bytes": len(png),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
