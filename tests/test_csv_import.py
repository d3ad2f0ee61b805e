"""Reading MQLs from CSV: header check, type coercion, list columns, and per-row errors with lines."""

from __future__ import annotations

import io

import pytest

from bot.core.csv_import import CsvRow, read_rows

HEADER = "external_id,email,first_name,last_name,company,title,employees,score,signals,content\n"


def read(text: str, *, source: str | None = None) -> list[CsvRow]:
    return list(read_rows(io.StringIO(text, newline=""), source=source))


def errors(row: CsvRow) -> dict[str, str]:
    return {e.field: e.message for e in row.errors}


# --- header ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "\n", "email,company\na@b.example,Acme\n", "externalid,email\nL1,a@b.example\n"],
)
def test_a_header_with_external_id_is_required(text: str) -> None:
    with pytest.raises(ValueError, match="external_id"):
        read(text)


def test_header_names_may_carry_spaces() -> None:
    [row] = read(" external_id , email \nL-1,a@b.example\n")
    assert row.lead is not None
    assert (row.lead.external_id, row.lead.email) == ("L-1", "a@b.example")


def test_a_header_without_rows_yields_nothing() -> None:
    assert read(HEADER) == []


# --- good rows -------------------------------------------------------------------------------


def test_good_rows_are_parsed_into_leads() -> None:
    text = HEADER + (
        "L-1,ana@acme.example,Ana,Diaz,Acme Health,VP Operations,450,87,"
        "pricing_page;demo_request,ROI calculator|Buyer guide\n"
    )
    [row] = read(text)
    assert row.line == 2
    assert row.errors == []
    lead = row.lead
    assert lead is not None
    assert lead.external_id == "L-1"
    assert lead.employees == 450
    assert lead.score == 87
    assert lead.signals == ["pricing_page", "demo_request"]
    assert lead.content == ["ROI calculator", "Buyer guide"]
    assert lead.source == "intake"


def test_list_columns_split_on_semicolons_or_pipes_and_drop_blanks() -> None:
    [row] = read("external_id,email,signals\nL-1,a@b.example, webinar ; ;pricing_page| |demo| \n")
    assert row.lead is not None
    assert row.lead.signals == ["webinar", "pricing_page", "demo"]


def test_blank_cells_are_left_out() -> None:
    [row] = read(HEADER + "L-1,a@b.example,,, ,  ,,,,\n")
    lead = row.lead
    assert lead is not None
    assert (lead.first_name, lead.company, lead.title, lead.employees, lead.score) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert lead.signals == []


def test_unknown_columns_are_kept_as_extra_context() -> None:
    [row] = read("external_id,email,segment,utm_medium\nL-1,a@b.example,Enterprise,cpc\n")
    assert row.lead is not None
    assert row.lead.extra_context == {"segment": "Enterprise", "utm_medium": "cpc"}


def test_source_default_fills_rows_without_one() -> None:
    text = "external_id,email,source\nL-1,a@b.example,\nL-2,b@b.example,webinar-list\n"
    first, second = read(text, source="csv-import")
    assert first.lead is not None
    assert second.lead is not None
    assert first.lead.source == "csv-import"
    assert second.lead.source == "webinar-list"


def test_source_default_without_a_source_column() -> None:
    [row] = read("external_id,email\nL-1,a@b.example\n", source="trade-show")
    assert row.lead is not None
    assert row.lead.source == "trade-show"


def test_mql_at_column_is_parsed() -> None:
    [row] = read("external_id,email,mql_at\nL-1,a@b.example,2026-11-22T14:03:00Z\n")
    assert row.lead is not None
    assert row.lead.mql_at is not None
    assert row.lead.mql_at.isoformat() == "2026-11-22T14:03:00+00:00"


def test_fewer_values_than_columns_is_fine() -> None:
    [row] = read(HEADER + "L-1,a@b.example\n")
    assert row.lead is not None
    assert row.lead.email == "a@b.example"


# --- bad rows ----------------------------------------------------------------------------------


def test_bad_rows_are_reported_with_their_line_and_good_rows_still_read() -> None:
    text = HEADER + (
        "L-1,a@b.example,,,,,10,,,\n"  # line 2
        "L-2,not-an-email,,,,,,,,\n"  # line 3
        "L-3,c@b.example,,,,,abc,,,\n"  # line 4
        ",d@b.example,,,,,,,,\n"  # line 5
        "L-5,,,Diaz,,,,,,\n"  # line 6
        "L-6,f@b.example,,,,,,150,,\n"  # line 7
        "L-7,g@b.example,,,,,-3,,,\n"  # line 8
    )
    rows = read(text)
    assert [r.line for r in rows] == [2, 3, 4, 5, 6, 7, 8]
    assert rows[0].lead is not None
    assert all(r.lead is None for r in rows[1:])
    assert errors(rows[1]) == {"email": "not an email address"}
    assert set(errors(rows[2])) == {"employees"}
    assert errors(rows[3]) == {"external_id": "required"}
    assert set(errors(rows[4])) == {"email or (last_name and company)"}
    assert set(errors(rows[5])) == {"score"}
    assert set(errors(rows[6])) == {"employees"}


def test_blank_lines_do_not_shift_line_numbers() -> None:
    rows = read("external_id,email\n\nL-1,bad\n\n\nL-2,also-bad\n")
    assert [r.line for r in rows] == [3, 6]


def test_a_quoted_field_with_a_newline_reports_the_line_where_the_row_starts() -> None:
    text = (
        "external_id,email,title\n"  # line 1
        'L-1,a@b.example,"VP\nSales"\n'  # lines 2-3
        'L-2,bad,"Head of\nMarketing\nOps"\n'  # lines 4-6
        "L-3,also-bad,CTO\n"  # line 7
    )
    first, second, third = read(text)
    assert first.lead is not None
    assert first.lead.title == "VP\nSales"
    assert first.line == 2
    assert second.lead is None
    assert second.line == 4
    assert third.line == 7


def test_a_trailing_comma_is_not_an_extra_value() -> None:
    (row,) = read("external_id,email\nL-1,a@b.example,\n")
    assert row.lead is not None
    assert row.lead.email == "a@b.example"


def test_more_values_than_header_columns_is_an_error() -> None:
    text = "external_id,email\nL-1,a@b.example,surprise\nL-2,b@b.example\n"
    bad, good = read(text)
    assert bad.line == 2
    assert bad.lead is None
    assert errors(bad) == {"(row)": "more values than header columns"}
    assert good.lead is not None
