"""A 100,000-row CSV with junk rows through `revbot import`: the good rows land once, every junk
row is reported by its line with the reason, and junk changes nothing."""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, func, select

from bot.core import db
from bot.core.models import Lead, MqlCycle, OutboxMessage
from tests.processes import revbot_env, run_cli

pytestmark = pytest.mark.slow

ROWS = 100_000
JUNK = [
    # (row fields, the column the report names)
    ({"email": "not-an-email"}, "email"),
    ({"email": "", "last_name": "", "company": ""}, "email or (last_name and company)"),
    ({"score": "ninety"}, "score"),
    ({"score": "250"}, "score"),
    ({"employees": "-3"}, "employees"),
    ({"mql_at": "yesterday"}, "mql_at"),
    ({"mql_at": "2026-11-20T10:00:00"}, "mql_at"),  # no timezone
    ({"company": "x" * 300}, "company"),
    ({"external_id": ""}, "external_id"),
]
HEADER = ["external_id", "email", "last_name", "company", "employees", "score", "mql_at"]


def _write(path: Path) -> tuple[int, dict[int, str]]:
    """The CSV file; returns how many good rows it holds and, for each junk line, its column."""
    pick = random.Random(20261122)
    junk_lines: dict[int, str] = {}
    good = 0
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=HEADER)
        writer.writeheader()
        for i in range(ROWS):
            row = {
                "external_id": f"BULK-{i:06d}",
                "email": f"bulk{i}@example.com",
                "last_name": "Ng",
                "company": "Bulk Co",
                "employees": str(pick.randint(1, 5000)),
                "score": str(pick.randint(0, 100)),
                "mql_at": "2026-11-20T10:00:00Z",
            }
            if pick.random() < 0.02:
                fields, column = pick.choice(JUNK)
                row.update(fields)
                junk_lines[i + 2] = column  # line 1 is the header
            else:
                good += 1
            writer.writerow(row)
    return good, junk_lines


def test_a_100000_row_file_with_junk_imports_the_good_rows_and_names_every_bad_one(
    tmp_path: Path,
) -> None:
    source = tmp_path / "leads.csv"
    good, junk_lines = _write(source)
    env = revbot_env(tmp_path)

    done = run_cli("import", str(source), env=env, cwd=tmp_path, timeout=1800)

    assert done.returncode == 1, done.stderr[-2000:]
    assert f"{good} created, 0 duplicate, 0 requalified, {len(junk_lines)} invalid" in done.stderr
    reported = {
        int(m.group(1)): m.group(2) for m in re.finditer(r"row (\d+): ([^\n]*)", done.stderr)
    }
    assert set(reported) == set(junk_lines)  # every junk row, by its line, and no good row
    for line, column in junk_lines.items():
        assert column in reported[line], (line, reported[line])
    engine: Any = db.make_engine(env["DATABASE_URL"])
    try:
        with Session(engine) as session:
            leads = session.exec(select(func.count()).select_from(Lead)).one()
            cycles = session.exec(select(func.count()).select_from(MqlCycle)).one()
            cards = session.exec(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.kind == "slack.card")
            ).one()
    finally:
        engine.dispose()
    assert (leads, cycles, cards) == (good, good, good)  # junk left no trace

    # Importing the start of the file again changes nothing: every good row is a duplicate.
    head = tmp_path / "head.csv"
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)[:2001]
    head.write_text("".join(lines), encoding="utf-8")
    again = run_cli("import", str(head), env=env, cwd=tmp_path, timeout=600)
    repeated = sum(1 for line in range(2, 2002) if line not in junk_lines)
    assert f"0 created, {repeated} duplicate" in again.stderr
