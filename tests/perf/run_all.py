"""Run every benchmark, print one table (benchmark, figure, value, bar, met?) and write one JSON.

    python -m tests.perf.run_all [--quick] [--database-url postgresql://…] \\
        [--digest-leads 1000000] [--only ack,memory] [--out perf-results.json]

Each benchmark runs as its own subprocess (one at a time), so one's threads and memory never
weigh on the next. `--quick` runs reduced sizes: a smoke check that every benchmark still runs,
whose figures are not the design's bars (those hold at the full sizes only). `--database-url`
(PostgreSQL) is passed to the benchmarks that take one, and adds a PostgreSQL run of the digest
(SQLite's always runs); without it everything runs on temporary SQLite files. The 1-minute load
average before and after each benchmark is recorded beside its figures: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Row = tuple[str, Any, str, bool | None]  # figure, value, bar, met (None: no bar)
Extract = Callable[[dict[str, Any], str], list[Row]]


@dataclass
class Benchmark:
    """One benchmark module: its arguments at full and quick size and how to read its figures."""

    name: str
    module: str
    full: list[str]
    quick: list[str]
    extract: Extract
    json_out: bool = True
    takes_database: bool = True
    timeout: float = 1800.0
    extra: list[str] = field(default_factory=list)


def _get(figures: dict[str, Any], key: str) -> Any:
    return figures.get(key, float("nan"))


def _speed(figures: dict[str, Any], _: str) -> list[Row]:
    p99 = _get(figures, "intake → card p99 (s)")
    return [
        ("intake → card p50 (s)", _get(figures, "intake → card p50 (s)"), "", None),
        ("intake → card p99 (s)", p99, "< 1 s", figures.get("bar: p99 < 1 s")),
        (
            "cards / leads",
            f"{figures.get('cards posted')}/{figures.get('leads sent')}",
            "all",
            None,
        ),
    ]


def _poll(figures: dict[str, Any], _: str) -> list[Row]:
    interval = figures.get("poll interval (s)")
    met = next((v for k, v in figures.items() if k.startswith("bar:")), None)
    return [
        ("MQL → card p50 (s)", _get(figures, "MQL → card p50 (s)"), "", None),
        ("MQL → card max (s)", _get(figures, "MQL → card max (s)"), f"< {interval} + 2 s", met),
    ]


def _ack(figures: dict[str, Any], _: str) -> list[Row]:
    return [
        ("server ack p50 (ms)", _get(figures, "server ack all p50 (ms)"), "", None),
        (
            "server ack p99 (ms)",
            _get(figures, "server ack all p99 (ms)"),
            "< 100 ms",
            figures.get("bar: server p99 < 100 ms"),
        ),
        ("server ack max (ms)", _get(figures, "server ack all max (ms)"), "", None),
        (
            "server ack p99 w/o #deal-support submissions (ms)",
            _get(figures, "server ack without #deal-support p99 (ms)"),
            "< 100 ms",
            _get(figures, "server ack without #deal-support p99 (ms)") < 100,
        ),
        ("client ack p99 (ms)", _get(figures, "client ack all p99 (ms)"), "", None),
        (
            "requests past 3 s",
            figures.get("past 3 s (client)"),
            "0",
            figures.get("bar: zero past 3 s"),
        ),
        (
            "click p99 baseline → with 20 lookups (ms)",
            f"{_get(figures, 'baseline click server p99 (ms)'):.1f} → "
            f"{_get(figures, 'click server with lookups p99 (ms)'):.1f}",
            "not delayed (< 100 ms)",
            figures.get("bar: lookups do not delay a click"),
        ),
        ("total req/s achieved", _get(figures, "total req/s achieved"), "≥ 50", None),
    ]


def _flood(figures: dict[str, Any], _: str) -> list[Row]:
    def below(key: str, limit: float) -> bool | None:
        value = figures.get(key)
        return None if value is None else value < limit

    return [
        (
            "all stored, s after last request",
            figures.get("all stored, s after last request"),
            "≤ 10 s",
            below("all stored, s after last request", 10.0),
        ),
        (
            "detection → summary posted (s)",
            figures.get("detection → summary posted (s)"),
            "≤ 5 s",
            below("detection → summary posted (s)", 5.0),
        ),
        (
            "hot lead → owner DM max (s)",
            figures.get("hot lead → owner DM max (s)"),
            "≤ 30 s",
            below("hot lead → owner DM max (s)", 30.0),
        ),
        ("429s provoked", figures.get("429s provoked"), "0", figures.get("429s provoked") == 0),
        (
            "leads neither carded nor listed",
            figures.get("leads neither carded nor listed"),
            "0",
            figures.get("leads neither carded nor listed") == 0,
        ),
        (
            "channel budget used while backlogged",
            figures.get("channel budget used while backlogged"),
            "≥ 0.95",
            (figures.get("channel budget used while backlogged") or 0) >= 0.95,
        ),
    ]


def _click(figures: dict[str, Any], _: str) -> list[Row]:
    rows: list[Row] = []
    for crm in ("salesforce", "hubspot"):
        if f"{crm}: click → CRM p95 (s)" not in figures:
            continue
        rows += [
            (f"{crm}: click → CRM p50 (s)", _get(figures, f"{crm}: click → CRM p50 (s)"), "", None),
            (
                f"{crm}: click → CRM p95 (s)",
                _get(figures, f"{crm}: click → CRM p95 (s)"),
                "< 2 s",
                figures.get(f"{crm}: bar p95 < 2 s"),
            ),
            (
                f"{crm}: batches under load ≥ 95% of {figures.get(f'{crm}: vendor max batch')}",
                f"{_get(figures, f'{crm}: load batches ≥ 95% full (share)'):.0%} "
                f"(mean size {_get(figures, f'{crm}: load batch size mean'):.0f})",
                "≥ 95% of batches",
                figures.get(f"{crm}: bar batches ≥ 95% full"),
            ),
            (
                f"{crm}: load click → CRM p95 (s)",
                _get(figures, f"{crm}: load click → CRM p95 (s)"),
                "",
                None,
            ),
        ]
    return rows


def _writeback(vendor: str, limit: int) -> Extract:
    def extract(_: dict[str, Any], stdout: str) -> list[Row]:
        calls = re.search(rf"{vendor} calls: (\d+)", stdout)
        seconds = re.search(
            r"(?:delivered in \d+ outbox rounds, |write-back time: )([\d.]+) s", stdout
        )
        size = re.search(r"--dispositions (\d+)", stdout)
        n = int(size.group(1)) if size else 0
        count = int(calls.group(1)) if calls else None
        applies = n == 10_000
        return [
            (
                f"{vendor} calls for {n:,} dispositions",
                count,
                f"≤ {limit} (at 10,000)",
                (count is not None and count <= limit) if applies else None,
            ),
            ("write-back time (s)", float(seconds.group(1)) if seconds else None, "", None),
        ]

    return extract


def _digest(limit: float) -> Extract:
    def extract(_: dict[str, Any], stdout: str) -> list[Row]:
        start = stdout.find("{")
        if start < 0:
            return [("digest", "no output", "", False)]
        data = json.loads(stdout[start:])
        median = data["digest_with_chart_s"]["median"]
        full = data["leads"] >= 1_000_000
        return [
            (
                f"scoreboard median, {data['leads']:,} leads (s)",
                data["scoreboard_s"]["median"],
                "",
                None,
            ),
            (
                "digest with chart, median (s)",
                median,
                f"< {limit:.0f} s (at 1,000,000)",
                median < limit if full else None,
            ),
        ]

    return extract


def _lookup(_: dict[str, Any], stdout: str) -> list[Row]:
    rows: list[Row] = []
    pattern = r"^(/.+?)\s+n=(\d+)\s+p50=\s*([\d.]+) ms\s+p95=\s*([\d.]+) ms"
    for line in stdout.splitlines():
        match = re.match(pattern, line)
        if match:
            rows.append((f"{match.group(1).strip()} p95 (ms)", float(match.group(4)), "", None))
    return rows


def _memory(figures: dict[str, Any], _: str) -> list[Row]:
    return [
        (
            "idle RSS, process tree (MB)",
            _get(figures, "idle RSS peak, tree sum (MB)"),
            "< 150 MB",
            None,
        ),
        (
            "busy RSS, process tree (MB)",
            _get(figures, "busy RSS peak, tree sum (MB)"),
            "< 150 MB",
            figures.get("bar: < 150 MB (RSS, tree sum)"),
        ),
        (
            "busy RSS, largest process (MB)",
            max(
                (v for k, v in figures.items() if k.startswith("busy RSS peak, ") and "pid" in k),
                default=float("nan"),
            ),
            "< 150 MB",
            figures.get("bar: < 150 MB (RSS, largest process)"),
        ),
        (
            "busy PSS, process tree (MB)",
            _get(figures, "busy PSS peak, tree sum (MB)"),
            "< 150 MB",
            figures.get("bar: < 150 MB (PSS, tree sum)"),
        ),
    ]


def benchmarks(args: argparse.Namespace, folder: Path) -> list[Benchmark]:
    """Every benchmark with its full and quick arguments."""
    digest_leads = args.digest_leads or 1_000_000
    quick_digest = args.digest_leads or 20_000
    found = [
        Benchmark("speed-to-lead (intake)", "bench_speed_to_lead", [], ["--seconds", "10"], _speed),
        Benchmark(
            "speed-to-lead (Salesforce poll)",
            "bench_poll_to_card",
            [],
            ["--poll-every", "5", "--seconds", "15"],
            _poll,
        ),
        Benchmark(
            "ack under a 2 s CRM",
            "bench_ack",
            [],
            ["--seconds", "10", "--baseline-seconds", "3"],
            _ack,
        ),
        Benchmark(
            "webinar flood", "bench_flood", [], ["--leads", "500", "--seconds", "10"], _flood
        ),
        Benchmark(
            "click → CRM write",
            "bench_click_to_crm",
            [],
            ["--clicks", "30", "--load-seconds", "5"],
            _click,
        ),
        Benchmark(
            "Salesforce write-back",
            "bench_salesforce_writeback",
            ["--dispositions", "10000"],
            ["--dispositions", "1000"],
            _writeback("Salesforce", 55),
            json_out=False,
            takes_database=False,  # it builds its engine from the URL as given: SQLite only
        ),
        Benchmark(
            "HubSpot write-back",
            "bench_hubspot_writeback",
            ["--dispositions", "10000"],
            ["--dispositions", "1000"],
            _writeback("HubSpot", 105),
            json_out=False,
            takes_database=False,
        ),
        Benchmark(
            "digest (SQLite)",
            "bench_digest",
            ["--leads", str(digest_leads)],
            ["--leads", str(quick_digest), "--repeat", "2"],
            _digest(5.0),
            json_out=False,
            takes_database=False,
            extra=["--database-url", f"sqlite:///{folder / 'digest.db'}"],
        ),
    ]
    if args.database_url:
        found.append(
            Benchmark(
                "digest (PostgreSQL)",
                "bench_digest",
                ["--leads", str(digest_leads)],
                ["--leads", str(quick_digest), "--repeat", "2"],
                _digest(2.0),
                json_out=False,
                takes_database=False,
                extra=["--database-url", args.database_url],
            )
        )
    found += [
        Benchmark(
            "lookups (CRM 300 ms)",
            "bench_lookup",
            [],
            ["--requests", "20"],
            _lookup,
            json_out=False,
            takes_database=False,
        ),
        Benchmark(
            "memory of revbot run",
            "bench_memory",
            [],
            ["--idle-seconds", "5", "--busy-seconds", "10"],
            _memory,
        ),
    ]
    return found


def run(bench: Benchmark, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Run one benchmark in a subprocess; its figures, rows, output tail, time and load."""
    command = [sys.executable, "-m", f"tests.perf.{bench.module}"]
    command += bench.quick if args.quick else bench.full
    command += bench.extra
    if bench.takes_database and args.database_url:
        command += ["--database-url", args.database_url]
    out = folder / f"{bench.module}.json"
    out.unlink(missing_ok=True)
    if bench.json_out:
        command += ["--json", str(out)]
    shown = " ".join(["python", *command[1:]]).replace(str(folder), "$TMP")
    print(f"running {bench.name}: {shown}", flush=True)
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=bench.timeout, check=False
        )
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as timeout:
        code, stdout, stderr = -1, _text(timeout.stdout), f"timed out after {bench.timeout} s"
    figures = json.loads(out.read_text()) if bench.json_out and out.exists() else {}
    try:
        rows = bench.extract(figures, stdout) if code == 0 else []
    except (KeyError, ValueError, TypeError) as error:
        rows, stderr = [], f"{stderr}\ncould not read the figures: {error!r}"
    if code != 0:
        rows = [("run", f"failed (exit {code})", "", False)]
    return {
        "benchmark": bench.name,
        "command": shown,
        "exit code": code,
        "seconds": round(time.monotonic() - started, 1),
        "load 1-min before": round(load_before, 2),
        "load 1-min after": round(os.getloadavg()[0], 2),
        "rows": [{"figure": f, "value": v, "bar": b, "met": m} for f, v, b, m in rows],
        "figures": figures,
        "stdout tail": stdout.splitlines()[-40:],
        "stderr tail": stderr.splitlines()[-20:] if code != 0 else [],
    }


def _text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""


def machine(database_url: str | None) -> dict[str, Any]:
    """What the figures were measured on."""
    memory = next(
        (line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
         if line.startswith("MemTotal:")),
        "0",
    )  # fmt: skip
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu model": model,
        "memory (GiB)": round(int(memory) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "system": platform.platform(),
    }
    if database_url:
        from sqlalchemy import create_engine, text

        engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.connect() as conn:
            info["postgresql"] = conn.execute(text("SHOW server_version")).scalar_one()
        engine.dispose()
    return info


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return "—" if value is None else str(value)


def print_table(results: list[dict[str, Any]]) -> None:
    """One line per figure: benchmark, figure, value, bar, met?, load before → after."""
    header = ("benchmark", "figure", "value", "bar", "met?", "load")
    lines = [header]
    for result in results:
        load = f"{result['load 1-min before']:.2f}→{result['load 1-min after']:.2f}"
        for row in result["rows"]:
            met = {True: "yes", False: "NO", None: "—"}[row["met"]]
            lines.append(
                (result["benchmark"], row["figure"], _shown(row["value"]), row["bar"], met, load)
            )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    print()
    for n, line in enumerate(lines):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks in turn; print the table and write the JSON file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes: a smoke check")
    parser.add_argument("--database-url", help="PostgreSQL URL (default: temporary SQLite)")
    parser.add_argument("--digest-leads", type=int, help="digest size (default 1,000,000)")
    parser.add_argument("--only", help="comma-separated module names, e.g. bench_ack,bench_memory")
    parser.add_argument("--out", type=Path, default=Path("perf-results.json"))
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="revbot-perf-") as tmp:
        folder = Path(tmp)
        chosen = benchmarks(args, folder)
        if args.only:
            wanted = {name.strip() for name in args.only.split(",")}
            chosen = [b for b in chosen if b.module in wanted]
        for bench in chosen:
            results.append(run(bench, args, folder))
            print_table(results[-1:])
    print_table(results)
    document = {
        "measured at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(args.database_url),
        "results": results,
    }
    args.out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"\nwrote {args.out}")
    return 1 if any(r["exit code"] != 0 for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
