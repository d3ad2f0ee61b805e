"""/lead with hostile text: a clear refusal or a literal match, never an error or a wildcard."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.db import transaction
from bot.core.lookup import BadQuery, clean_query
from bot.core.models import Lead, MqlCycle
from tests.conftest import Live, make_services, start_live
from tests.fakes.slack_api import FakeSlack
from tests.test_lookup_commands import lookup_playbook, shown, slash

HOSTILE = [
    "'",
    '"',
    "\\",
    "%",
    "_",
    "%%",
    "a%b",
    "\\%",
    "' OR Id != null",
    "' OR '1'='1",
    '"; DROP TABLE leads; --',
    "O'Brien & Sons",
    "<@U0123> <!channel>",
    "*bold* _it_ ~x~ `code`",
    "Zoë Ünïcødé 😀 日本語",
    "İstanbul ß ﬁ",
    "x\x00y",
    "a\u202eb",
    "line\nbreak",
    "é" * 200,
    "a" * 201,
    "b" * 5000,
]
CONTROL = ("Control", "Plain Co")
_serial = itertools.count()


@pytest.fixture
def manager_live(engine: Any, database_url: str, fake_slack: FakeSlack) -> Iterator[Live]:
    services = make_services(engine, database_url, fake_slack, playbook=lookup_playbook())
    live, stop = start_live(services, fake_slack)
    with transaction(engine) as session:
        _store(session, first_name=CONTROL[0], company=CONTROL[1])
    yield live
    stop()


def _store(session: Any, *, first_name: str, company: str) -> None:
    n = next(_serial)
    now = datetime.now(UTC) + timedelta(seconds=n)  # newest first in /lead
    lead = Lead(
        origin="test",
        external_id=f"H-{n}",
        first_name=first_name,
        company=company,
        created_at=now,
        updated_at=now,
    )
    session.add(lead)
    session.flush()
    session.add(
        MqlCycle(
            lead_id=lead.id or 0,
            mql_at=now,
            received_at=now,
            tier="nurture",
            sla_due_at=now + timedelta(days=1),
            pool="sales",
            owner_slack_id="UREP1",
        )
    )


texts = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=250),
    st.text(st.sampled_from("%_\\'\"aZ é😀"), min_size=1, max_size=12),
    st.integers(190, 5200).map(lambda n: "%" * n),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=texts)
def test_hostile_lead_text_gets_a_clear_refusal_or_a_literal_match(
    manager_live: Live, text: str
) -> None:
    live = manager_live
    try:
        cleaned = clean_query(text, usage="usage")
    except BadQuery:
        cleaned = None
    marker = f"Hx{next(_serial)}"
    if cleaned is not None:
        with transaction(live.services.engine) as session:
            _store(session, first_name=marker, company=cleaned)
    response = slash(live, "/lead", "UMGR1", text)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["response_type"] == "ephemeral"
    answer = shown(body)
    if cleaned is None:
        assert any(
            hint in answer for hint in ("at most 200", "control characters", "Type `/lead`")
        ), answer
        return
    assert marker in answer, "the lead whose company is the text itself must be found"
    literal = cleaned.casefold()
    if cleaned.isascii() and not any(literal in part.casefold() for part in CONTROL):
        assert "Plain Co" not in answer, "a wildcard in the text matched an unrelated lead"
