"""Benchmark: a webinar flood under Slack's real per-channel limit.

    python -m tests.perf.bench_flood [--leads 5000] [--seconds 60] [--hot 0.1] \\
        [--database-url postgresql://postgres@127.0.0.1:5432/test] [--json out.json]

`--leads` MQLs are posted to intake in batches spread over `--seconds` while the fake Slack
enforces one message a second per channel (burst 3) and answers 429 + Retry-After beyond it.
Measured: when every lead is stored (after the last request), the time from flood detection
(the summary's outbox row) to the summary in the channel, each hot lead's time to its owner's
DM, 429s provoked, leads neither carded nor listed, and the share of the channel's budget used
while a backlog existed. Not collected by pytest (run on demand).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from sqlmodel import Session, col, func, select

from bot.core import outbox
from bot.core.models import MqlCycle, OutboxMessage
from tests.conftest import BOT_TOKEN, INTAKE_TOKEN
from tests.fakes.slack_api import FakeSlack
from tests.perf.harness import database, percentile, report, running_revbot

BATCHES_PER_SECOND = 2
PIPELINE = "#revenue-pipeline"


def main(argv: list[str] | None = None) -> int:
    """Flood intake, wait for the channel to drain, report against the design's bars."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--hot", type=float, default=0.1)
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--database-url")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    hot = random.Random(7)
    sent_at: dict[str, float] = {}
    with (
        database(args.database_url) as url,
        FakeSlack(bot_token=BOT_TOKEN, rate_limit=True, burst=3, per_second=1.0) as fake,
        running_revbot(url, fake) as live,
    ):
        mono_to_wall = time.time() - time.monotonic()
        http = requests.Session()
        headers = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
        batches = max(int(args.seconds * BATCHES_PER_SECOND), 1)
        size = -(-args.leads // batches)
        start = time.monotonic()
        for b in range(batches):
            time.sleep(max(start + b / BATCHES_PER_SECOND - time.monotonic(), 0))
            leads = []
            for i in range(b * size, min((b + 1) * size, args.leads)):
                is_hot = hot.random() < args.hot
                leads.append(
                    {
                        "external_id": f"F-{i:06d}",
                        "email": f"flood{i}@example.com",
                        "last_name": f"Flood{i:06d}",
                        "company": "Webinar Co",
                        "score": 95 if is_hot else 30,
                    }
                )
                sent_at[f"Flood{i:06d}"] = time.monotonic()
            if leads:
                http.post(
                    f"{live.url}/intake/leads", json={"leads": leads}, headers=headers, timeout=60
                ).raise_for_status()
        last_request = time.monotonic()
        engine = live.services.engine
        stored_after = _wait(lambda: _stored(engine) >= args.leads, 60) - last_request
        drained = _wait(lambda: _drained(engine), args.drain_timeout)
        figures = _figures(fake, engine, sent_at, mono_to_wall)
    figures = {
        "database": "postgresql" if args.database_url else "sqlite",
        "leads": args.leads,
        "over (s)": args.seconds,
        "all stored, s after last request": stored_after,
        "channel drained, s after last request": drained - last_request,
        **figures,
    }
    report("webinar flood", figures, args.json)
    return 0


def _wait(done: Any, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up after {timeout} s")
        time.sleep(0.1)
    return time.monotonic()


def _stored(engine: Any) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(MqlCycle)).one())


def _drained(engine: Any) -> bool:
    with Session(engine) as session:
        waiting = session.exec(
            select(func.count())
            .select_from(OutboxMessage)
            .where(col(OutboxMessage.state).in_((outbox.PENDING, outbox.IN_FLIGHT)))
            .where(col(OutboxMessage.kind).like("slack.%"))
        ).one()
    return int(waiting) == 0


def _figures(
    fake: FakeSlack, engine: Any, sent_at: dict[str, float], mono_to_wall: float
) -> dict[str, Any]:
    posts = fake.calls("chat.postMessage")
    # Cards go to "#revenue-pipeline", thread pages to the channel's id: everything not a DM.
    channel_posts = [p for p in posts if not str(p.params.get("channel", "")).startswith("U")]
    listed: set[str] = set()
    for post in channel_posts:
        listed.update(re.findall(r"Flood\d{6}", json.dumps(post.params.get("blocks", ""))))
    missing = set(sent_at) - listed
    with Session(engine) as session:
        summaries = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == outbox.SLACK_FLOOD)
        ).all()
    summary_post = next(
        (p for p in channel_posts if "listed in the thread" in str(p.params.get("text"))), None
    )
    detection = (
        min(s.created_at for s in summaries).timestamp() - mono_to_wall if summaries else None
    )
    summary_delay = (
        summary_post.at - detection if summary_post is not None and detection is not None else None
    )
    dms = [p for p in posts if str(p.params.get("channel", "")).startswith("U")]
    dm_delays = []
    for dm in dms:
        names = re.findall(r"Flood\d{6}", json.dumps(dm.params.get("blocks", "")))
        if names:
            dm_delays.append(dm.at - sent_at[names[0]])
    if channel_posts:
        span = channel_posts[-1].at - channel_posts[0].at
        budget = 3 + span * 1.0  # the burst, then one a second
        budget_used = len(channel_posts) / budget
    else:
        budget_used = 0.0
    return {
        "flood summaries": len(summaries),
        "detection → summary posted (s)": summary_delay,
        "hot DMs": len(dm_delays),
        "hot lead → owner DM p99 (s)": percentile(dm_delays, 99),
        "hot lead → owner DM max (s)": max(dm_delays) if dm_delays else None,
        "channel posts": len(channel_posts),
        "429s provoked": fake.rate_limited_count,
        "leads neither carded nor listed": len(missing),
        "channel budget used while backlogged": budget_used,
        "measured at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


if __name__ == "__main__":
    raise SystemExit(main())
