"""Reading MQLs from a CSV file: one lead per row, columns named like the intake JSON keys."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from bot.core.intake import FieldError, LeadIn, validate_lead

LIST_COLUMNS = ("signals", "content")
INT_COLUMNS = ("employees", "score")
LIST_SEPARATOR = re.compile(r"\s*[;|]\s*")


@dataclass(frozen=True)
class CsvRow:
    """One data row: its line number in the file and either a valid lead or its field errors."""

    line: int
    lead: LeadIn | None
    errors: list[FieldError]


def _coerce(row: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, raw in row.items():
        if key is None:
            data["(extra columns)"] = raw
            continue
        value = raw.strip() if isinstance(raw, str) else raw
        if value in ("", None):
            continue
        name = key.strip()
        if name in LIST_COLUMNS:
            data[name] = [v for v in LIST_SEPARATOR.split(value) if v]
        elif name in INT_COLUMNS and re.fullmatch(r"-?\d+", value):
            data[name] = int(value)
        else:
            data[name] = value
    return data


def read_rows(stream: IO[str], *, source: str | None = None) -> Iterator[CsvRow]:
    """Validate each row of a CSV export; `source` fills rows that have no `source` column value."""
    reader = csv.DictReader(stream)
    if not reader.fieldnames or "external_id" not in [f.strip() for f in reader.fieldnames]:
        raise ValueError("the CSV needs a header row with at least an `external_id` column")
    for row in reader:
        data = _coerce(row)
        if "(extra columns)" in data:
            yield CsvRow(
                reader.line_num, None, [FieldError("(row)", "more values than header columns")]
            )
            continue
        if source and "source" not in data:
            data["source"] = source
        checked = validate_lead(data)
        if isinstance(checked, LeadIn):
            yield CsvRow(reader.line_num, checked, [])
        else:
            yield CsvRow(reader.line_num, None, checked)
