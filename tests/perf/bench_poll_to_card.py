"""Benchmark: speed-to-lead on the polling path, a Salesforce MQL → its card posted.

    python -m tests.perf.bench_poll_to_card [--poll-every 30] [--seconds 120] [--rate 1] \\
        [--database-url postgresql://postgres@127.0.0.1:5432/test] [--json out.json]

revbot serves with its worker and the real Salesforce adapter, pointed at the local fake REST
API; the real scheduler runs the real poll job every `--poll-every` seconds (the playbook's
`crm_fields.salesforce.poll_every`). Leads become MQLs in the fake at `--rate` a second for
`--seconds`; each one's latency runs from the moment it was stored in the fake to the moment the
fake Slack received its card. As in `bench_speed_to_lead` the channel budget is raised far above
Slack's limit, to measure revbot's own time. Bar: every card within the poll interval + 2 s.
Not collected by pytest (run on demand).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.core import outbox
from bot.core.pacing import Budget, Pacer
from bot.core.playbook import parse_playbook
from tests.conftest import BOT_TOKEN, TEST_PLAYBOOK
from tests.fakes.salesforce_api import FakeSalesforce
from tests.fakes.salesforce_support import salesforce_crm
from tests.fakes.slack_api import FakeSlack
from tests.perf.harness import database, percentile, report, running_revbot

SLACK_MARGIN_SECONDS = 2.0
NAME = re.compile(r"Poll\d{5}")


def main(argv: list[str] | None = None) -> int:
    """Make MQLs in the fake Salesforce at a steady rate, then report poll → card latencies."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poll-every", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--database-url")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    playbook = parse_playbook(
        TEST_PLAYBOOK.replace("MODE", "claim")
        + f"crm_fields:\n  salesforce: {{poll_every: {args.poll_every}s}}\n",
        "bench playbook",
    )
    unpaced = Pacer(
        budget_for={
            "channel": Budget(rate=1000, burst=1000),
            "dm": Budget(rate=1000, burst=1000),
            outbox.REFRESH_LANE: Budget(rate=1000, burst=1000),
        }
    )
    made: dict[str, float] = {}
    with (
        database(args.database_url) as url,
        FakeSlack(bot_token=BOT_TOKEN) as slack,
        FakeSalesforce() as salesforce,
        running_revbot(
            url,
            slack,
            pacer=unpaced,
            playbook=playbook,
            crm=lambda _: salesforce_crm(salesforce, playbook, lambda: datetime.now(UTC)),
        ),
    ):
        total = int(args.rate * args.seconds)
        start = time.monotonic()
        for i in range(total):
            time.sleep(max(start + i / args.rate - time.monotonic(), 0))
            name = f"Poll{i:05d}"
            salesforce.seed("Lead", LastName=name, Company="Bench", Status="MQL")
            made[name] = time.monotonic()
        deadline = time.monotonic() + args.poll_every * 2 + 10
        posted: dict[str, float] = {}
        while time.monotonic() < deadline and len(posted) < total:
            time.sleep(0.5)
            posted = _card_times(slack)
        polls = len(salesforce.calls("GET", "/query"))
    latencies = [posted[name] - at for name, at in made.items() if name in posted]
    bar = args.poll_every + SLACK_MARGIN_SECONDS
    figures = {
        "database": "postgresql" if args.database_url else "sqlite",
        "poll interval (s)": args.poll_every,
        "MQLs made": total,
        "cards posted": len(latencies),
        "Salesforce queries": polls,
        "MQL → card p50 (s)": percentile(latencies, 50),
        "MQL → card p99 (s)": percentile(latencies, 99),
        "MQL → card max (s)": max(latencies, default=float("nan")),
        f"bar: max < interval + {SLACK_MARGIN_SECONDS:.0f} s": bool(latencies)
        and max(latencies) < bar
        and len(latencies) == total,
    }
    report("speed-to-lead, polling path (Salesforce)", figures, args.json)
    return 0


def _card_times(slack: FakeSlack) -> dict[str, float]:
    times: dict[str, float] = {}
    for call in slack.calls("chat.postMessage"):
        if call.params.get("channel") != "#revenue-pipeline":
            continue
        for name in NAME.findall(json.dumps(call.params.get("blocks", ""))):
            times.setdefault(name, call.at)
    return times


if __name__ == "__main__":
    raise SystemExit(main())
