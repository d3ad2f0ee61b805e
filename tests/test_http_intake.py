"""POST /intake/leads over real HTTP: auth, validation, limits, batches, idempotency, speed-to-lead."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from sqlalchemy import func
from sqlmodel import Session, select

from bot.core.models import Lead, MqlCycle, OutboxMessage
from bot.http.app import create_web_app
from tests.conftest import INTAKE_TOKEN, Live, lead_json, make_services, make_settings

MIB = 1024 * 1024


def _counts(live: Live) -> tuple[int, int, int]:
    with Session(live.services.engine) as session:
        return tuple(  # type: ignore[return-value]
            session.exec(select(func.count()).select_from(model)).one()
            for model in (Lead, MqlCycle, OutboxMessage)
        )


def _post_raw(
    live: Live, data: Any, *, content_type: str = "application/json", token: str = INTAKE_TOKEN
) -> requests.Response:
    return requests.post(
        f"{live.url}/intake/leads",
        data=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
        timeout=10,
    )


def _field_errors(response: requests.Response) -> dict[str, str]:
    body = response.json()
    return {e["field"]: e["message"] for e in body["errors"]}


# -- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": f"Bearer {INTAKE_TOKEN}x"},
        {"Authorization": INTAKE_TOKEN},
        {"Authorization": f"Basic {INTAKE_TOKEN}"},
        {"Authorization": "Bearer "},
    ],
    ids=["none", "wrong", "longer", "no-scheme", "basic", "empty"],
)
def test_requests_without_the_intake_token_are_refused(live: Live, headers: dict[str, str]) -> None:
    before = _counts(live)
    response = requests.post(
        f"{live.url}/intake/leads", json=lead_json(), headers=headers, timeout=10
    )
    assert response.status_code == 401
    assert response.json()["error"]
    assert _counts(live) == before
    assert live.fake.calls("chat.postMessage") == []


def test_intake_refuses_everything_when_no_token_is_configured(
    engine: Any, database_url: str
) -> None:
    services = make_services(engine, database_url, None)
    services.settings = make_settings(database_url, None, REVBOT_INTAKE_TOKEN=None)
    client = create_web_app(services, None).test_client()
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
        response = client.post("/intake/leads", json=lead_json(), headers=headers)
        assert response.status_code == 401
        assert "REVBOT_INTAKE_TOKEN" in response.get_json()["message"]
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Lead)).one() == 0


# -- bad bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b'{"external_id": "L-1"', b"\xff\xfe{}", b"{'external_id': 'L-1'}"],
    ids=["empty", "text", "truncated", "not-utf8", "single-quotes"],
)
def test_a_body_that_is_not_json_is_a_400(live: Live, body: bytes) -> None:
    before = _counts(live)
    response = _post_raw(live, body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"
    assert _counts(live) == before


@pytest.mark.parametrize(
    "body",
    [[lead_json()], 17, "L-1001", None, True],
    ids=["array", "number", "string", "null", "bool"],
)
def test_json_that_is_not_an_object_is_a_400(live: Live, body: Any) -> None:
    before = _counts(live)
    response = _post_raw(live, json.dumps(body))
    assert response.status_code == 400
    assert response.json()["error"]
    assert _counts(live) == before


def test_missing_required_fields_are_reported_field_by_field(live: Live) -> None:
    before = _counts(live)
    response = live.intake({"first_name": "Ana", "company": "Acme Health"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_lead"
    errors = _field_errors(response)
    assert "required" in errors.get("external_id", ""), errors
    identity = [f for f in errors if "email" in f]
    assert identity, f"the missing email / last name is not reported: {errors}"
    assert "last_name" in identity[0]
    assert "company" in identity[0]
    assert _counts(live) == before


def test_a_lead_with_neither_email_nor_last_name_and_company_is_a_400(live: Live) -> None:
    before = _counts(live)
    response = live.intake({"external_id": "L-1", "first_name": "Ana", "company": "Acme"})
    assert response.status_code == 400
    [(field, message)] = _field_errors(response).items()
    assert "email" in field
    assert "last_name" in field
    assert "company" in field
    assert message
    assert _counts(live) == before


def test_a_last_name_and_company_identify_a_lead_without_an_email(live: Live) -> None:
    response = live.intake(lead_json(email=None, phone=None))
    assert response.status_code == 202
    assert response.json()["results"][0]["status"] == "created"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"employees": "many"}, "employees"),
        ({"score": "87"}, "score"),
        ({"score": 250}, "score"),
        ({"signals": "pricing_page"}, "signals"),
        ({"mql_at": "yesterday"}, "mql_at"),
        ({"mql_at": "2026-11-22T14:03:00"}, "mql_at"),
        ({"email": "not-an-email"}, "email"),
        ({"external_id": ["L-1"]}, "external_id"),
        ({"company": {"name": "Acme"}}, "company"),
    ],
    ids=[
        "employees-text",
        "score-text",
        "score-range",
        "signals-not-list",
        "mql_at-text",
        "mql_at-naive",
        "email",
        "external_id-list",
        "company-object",
    ],
)
def test_wrong_types_are_a_400_naming_the_field(
    live: Live, overrides: dict[str, Any], field: str
) -> None:
    before = _counts(live)
    response = live.intake(lead_json(**overrides))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_lead"
    fields = _field_errors(response)
    assert any(f == field or f.startswith(f"{field}.") for f in fields), fields
    assert _counts(live) == before


def test_a_body_over_one_mib_is_a_413_and_stores_nothing(live: Live) -> None:
    before = _counts(live)
    big = lead_json(notes="x" * (MIB + 10))
    response = live.intake(big)
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert _counts(live) == before


@pytest.mark.parametrize(
    "payload",
    [
        json.dumps(lead_json(notes="x" * (MIB + 10))).encode(),
        json.dumps(lead_json("L-PADDED")).encode() + b" " * (2 * MIB),
    ],
    ids=["long-field", "valid-lead-padded-with-whitespace"],
)
def test_a_chunked_body_over_one_mib_is_a_413_and_stores_nothing(
    live: Live, payload: bytes
) -> None:
    before = _counts(live)
    chunks = (payload[i : i + 65536] for i in range(0, len(payload), 65536))
    response = _post_raw(live, chunks)  # a generator body is sent chunked, without Content-Length
    assert response.status_code == 413
    assert _counts(live) == before


# -- batches ---------------------------------------------------------------------------------


def test_a_batch_with_some_invalid_leads_is_a_207_with_a_result_per_lead(live: Live) -> None:
    before = _counts(live)
    response = live.intake(
        {
            "leads": [
                lead_json("L-1", email="one@acme.example"),
                {"external_id": "L-2", "first_name": "No identity"},
                lead_json("L-3", email="three@acme.example"),
                "not an object",
                lead_json("L-5", score="hot"),
            ]
        }
    )
    assert response.status_code == 207
    results = response.json()["results"]
    assert len(results) == 5
    assert [r["status"] for r in results] == ["created", "invalid", "created", "invalid", "invalid"]
    for index in (1, 3, 4):
        assert results[index]["index"] == index
        assert results[index]["errors"], results[index]
    assert results[1]["external_id"] == "L-2"
    assert any(e["field"] == "score" for e in results[4]["errors"])
    created = {results[0]["lead_id"], results[2]["lead_id"]}
    with Session(live.services.engine) as session:
        stored = session.exec(select(Lead)).all()
        assert {lead.id for lead in stored} >= created
        assert {lead.external_id for lead in stored} - {"L-1", "L-3"} == set()
    assert _counts(live)[0] == before[0] + 2


def test_a_batch_where_every_lead_is_invalid_is_a_400(live: Live) -> None:
    before = _counts(live)
    response = live.intake({"leads": [{"external_id": "L-1"}, {"email": "a@acme.example"}]})
    assert response.status_code == 400
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["invalid", "invalid"]
    assert [r["index"] for r in results] == [0, 1]
    assert _counts(live) == before


@pytest.mark.parametrize(
    "leads",
    [{"external_id": "L-1"}, "L-1", 3, None, []],
    ids=["object", "string", "number", "null", "empty"],
)
def test_leads_must_be_a_non_empty_list(live: Live, leads: Any) -> None:
    before = _counts(live)
    response = live.intake({"leads": leads})
    assert response.status_code == 400
    assert response.json()["error"]
    assert _counts(live) == before


def test_more_than_1000_leads_in_one_request_is_a_413(live: Live) -> None:
    before = _counts(live)
    leads = [{"external_id": f"L-{i}", "email": f"l{i}@acme.example"} for i in range(1001)]
    response = live.intake({"leads": leads})
    assert response.status_code == 413
    assert _counts(live) == before


def test_exactly_1000_leads_are_accepted(live: Live) -> None:
    leads = [{"external_id": f"L-{i}", "email": f"l{i}@acme.example"} for i in range(1000)]
    response = requests.post(
        f"{live.url}/intake/leads",
        json={"leads": leads},
        headers={"Authorization": f"Bearer {INTAKE_TOKEN}"},
        timeout=60,
    )
    assert response.status_code == 202
    assert len(response.json()["results"]) == 1000
    assert _counts(live)[0] == 1000


# -- storing ---------------------------------------------------------------------------------


def test_the_same_lead_twice_is_created_then_a_duplicate(live: Live) -> None:
    first = live.intake(lead_json())
    second = live.intake(lead_json())
    assert (first.status_code, second.status_code) == (202, 202)
    a, b = first.json()["results"][0], second.json()["results"][0]
    assert (a["status"], b["status"]) == ("created", "duplicate")
    assert a["external_id"] == b["external_id"] == "L-1001"
    assert a["lead_id"] == b["lead_id"]
    with Session(live.services.engine) as session:
        assert session.exec(select(func.count()).select_from(Lead)).one() == 1
        assert session.exec(select(func.count()).select_from(MqlCycle)).one() == 1


def test_the_same_external_id_from_another_source_is_another_lead(live: Live) -> None:
    a = live.intake(lead_json(source="hubspot-form")).json()["results"][0]
    b = live.intake(lead_json(source="webinar-platform")).json()["results"][0]
    assert (a["status"], b["status"]) == ("created", "created")
    assert a["lead_id"] != b["lead_id"]


def test_unknown_keys_are_accepted_and_kept_as_extra_context(live: Live) -> None:
    response = live.intake(
        lead_json(utm_medium="paid-social", intent_topics=["SOC 2", "HIPAA"], seats=40)
    )
    assert response.status_code == 202
    lead_id = response.json()["results"][0]["lead_id"]
    with Session(live.services.engine) as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None
        assert lead.extra == {
            "utm_medium": "paid-social",
            "intent_topics": ["SOC 2", "HIPAA"],
            "seats": 40,
        }
        assert (lead.company, lead.employees, lead.email) == (
            "Acme Health",
            450,
            "ana@acme.example",
        )


def test_a_valid_lead_reaches_slack_within_one_second(live: Live) -> None:
    response = live.intake(lead_json())
    assert response.status_code == 202
    [card] = live.fake.wait_for("chat.postMessage", timeout=1.0)
    assert card.params["channel"] == "#revenue-pipeline"
    cycle_id = card.params["metadata"]["event_payload"]["cycle_id"]
    with Session(live.services.engine) as session:
        cycle = session.get(MqlCycle, cycle_id)
        assert cycle is not None
        assert cycle.lead_id == response.json()["results"][0]["lead_id"]


def _bad_requests() -> list[tuple[str, dict[str, Any]]]:
    """A spread of refused requests: (description, keyword arguments for requests.post)."""
    auth = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
    return [
        ("no token", {"json": lead_json()}),
        ("bad json", {"data": b"{", "headers": {**auth, "Content-Type": "application/json"}}),
        ("no identity", {"json": {"external_id": "L-9"}, "headers": auth}),
        ("all invalid batch", {"json": {"leads": [{"external_id": "L-9"}]}, "headers": auth}),
        ("oversized", {"json": lead_json(pad="y" * (MIB + 1)), "headers": auth}),
        (
            "too many",
            {"json": {"leads": [lead_json(f"L-{i}") for i in range(1001)]}, "headers": auth},
        ),
    ]


def test_no_refused_request_changes_the_database(live: Live) -> None:
    live.intake(lead_json("L-EXISTING"))
    live.fake.wait_for("chat.postMessage")
    before = _counts(live)
    for what, kwargs in _bad_requests():
        response = requests.post(f"{live.url}/intake/leads", timeout=10, **kwargs)
        assert 400 <= response.status_code < 500, what
        assert _counts(live) == before, what
    assert len(live.fake.calls("chat.postMessage")) == 1
