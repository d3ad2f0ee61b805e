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
    """One data row: the file line it starts on and either a valid lead or its field errors."""

    line: int
    lead: LeadIn | None
    errors: list[FieldError]


def _coerce(row: dict[str, str], extras: list[str]) -> dict[str, Any] | None:
    """Typed intake data from one row; None when it has more (non-blank) values than columns."""
    if any(v.strip() for v in extras):
        return None  # a trailing comma is harmless; real extra values mean a misaligned row
    data: dict[str, Any] = {}
    for name, raw in row.items():
        value = raw.strip()
        if not value:
            continue
        if name in LIST_COLUMNS:
            data[name] = [v for v in LIST_SEPARATOR.split(value) if v]
        elif name in INT_COLUMNS and re.fullmatch(r"-?\d+", value):
            data[name] = int(value)
        else:
            data[name] = value
    return data


def read_rows(stream: IO[str], *, source: str | None = None) -> Iterator[CsvRow]:
    """Validate each row of a CSV export; `source` fills rows that have no `source` column value."""
    reader = csv.reader(stream)
    columns = [c.strip() for c in next(reader, [])]
    if "external_id" not in columns:
        raise ValueError("the CSV needs a header row with at least an `external_id` column")
    while True:
        # Rows are numbered by the line they start on (a quoted value may span several lines).
        line = reader.line_num + 1
        values = next(reader, None)
        if values is None:
            return
        if not any(v.strip() for v in values):
            continue
        data = _coerce(dict(zip(columns, values, strict=False)), values[len(columns) :])
        if data is None:
            yield CsvRow(line, None, [FieldError("(row)", "more values than header columns")])
            continue
        if source and "source" not in data:
            data["source"] = source
        checked = validate_lead(data)
        if isinstance(checked, LeadIn):
            yield CsvRow(line, checked, [])
        else:
            yield CsvRow(line, None, checked)
