"""Benchmark: speed-to-lead, intake request → card posted, at a steady rate.

    python -m tests.perf.bench_speed_to_lead [--rate 10] [--seconds 60] \\
        [--database-url postgresql://postgres@127.0.0.1:5432/test] [--json out.json]

revbot serves HTTP with its worker, posting to a local fake Slack that answers at once. To
measure revbot's own time, the channel budget is raised far above Slack's one post a second
(the pacing and flood behaviour under Slack's real limit is `bench_flood`). Each lead's latency
runs from just before its intake request is sent to the moment the fake Slack received its
card. Not collected by pytest (run on demand).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import requests

from bot.core import outbox
from bot.core.pacing import Budget, Pacer
from tests.conftest import BOT_TOKEN, INTAKE_TOKEN
from tests.fakes.slack_api import FakeSlack
from tests.perf.harness import database, percentile, report, running_revbot

BAR_P99_SECONDS = 1.0


def main(argv: list[str] | None = None) -> int:
    """Send leads at `--rate` per second for `--seconds`, then report card latencies."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--database-url")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    unpaced = Pacer(
        budget_for={
            "channel": Budget(rate=1000, burst=1000),
            "dm": Budget(rate=1000, burst=1000),
            outbox.REFRESH_LANE: Budget(rate=1000, burst=1000),
        }
    )
    sent: dict[int, float] = {}
    intake_times: list[float] = []
    with database(args.database_url) as url, FakeSlack(bot_token=BOT_TOKEN) as fake:
        with running_revbot(url, fake, pacer=unpaced) as live:
            session = requests.Session()
            headers = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
            total = int(args.rate * args.seconds)
            start = time.monotonic()
            for i in range(total):
                time.sleep(max(start + i / args.rate - time.monotonic(), 0))
                body = {
                    "external_id": f"S-{i:06d}",
                    "email": f"lead{i}@example.com",
                    "score": 90 if i % 10 == 0 else 40,
                }
                before = time.monotonic()
                response = session.post(
                    f"{live.url}/intake/leads", json=body, headers=headers, timeout=10
                )
                intake_times.append(time.monotonic() - before)
                sent[int(response.json()["results"][0]["lead_id"])] = before
            deadline = time.monotonic() + 30
            posted: dict[int, float] = {}
            while time.monotonic() < deadline and len(posted) < total:
                posted = _card_times(fake)
                time.sleep(0.2)
        latencies = [posted[lead] - at for lead, at in sent.items() if lead in posted]
    figures = {
        "database": "postgresql" if args.database_url else "sqlite",
        "leads sent": total,
        "cards posted": len(latencies),
        "rate (leads/s)": args.rate,
        "intake → card p50 (s)": percentile(latencies, 50),
        "intake → card p99 (s)": percentile(latencies, 99),
        "intake → card max (s)": max(latencies) if latencies else float("nan"),
        "intake response p99 (s)": percentile(intake_times, 99),
        "bar: p99 < 1 s": percentile(latencies, 99) < BAR_P99_SECONDS and len(latencies) == total,
    }
    report("speed-to-lead", figures, args.json)
    return 0


def _card_times(fake: FakeSlack) -> dict[int, float]:
    times: dict[int, float] = {}
    for call in fake.calls("chat.postMessage"):
        metadata = call.params.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        if not metadata or call.params.get("channel") != "#revenue-pipeline":
            continue
        lead_id = int(metadata["event_payload"]["lead_id"])
        times.setdefault(lead_id, call.at)
    return times


if __name__ == "__main__":
    raise SystemExit(main())
