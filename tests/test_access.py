"""Who may see what: roles from the playbook, the access rules, and masking contact details."""

from __future__ import annotations

import pytest

from bot.core import access
from bot.core.playbook import Playbook, PlaybookError, parse_playbook
from tests.conftest import TEST_PLAYBOOK

EXTRA = """
deal_support:
  marketers: [UMKT1]
access:
  reps: REPS
  managers: MANAGERS
  marketers: MARKETERS
  deals: DEALS
  contact_details: CONTACT
"""


def playbook(
    *,
    reps: str = "pool",
    managers: str = "pools",
    marketers: str = "all",
    deals: str = "everyone",
    contact: str = "[]",
    open_pool: bool = False,
) -> Playbook:
    text = TEST_PLAYBOOK.replace("MODE", "assign") + EXTRA
    for key, value in {
        "REPS": reps,
        "MANAGERS": managers,
        "MARKETERS": marketers,
        "DEALS": deals,
        "CONTACT": contact,
    }.items():
        text = text.replace(key, value)
    if open_pool:  # the emea pool also takes anyone in the channel
        text = text.replace("    emea:\n", "    emea:\n      open: true\n")
    return parse_playbook(text, "test")


def test_roles_come_from_pools_managers_and_marketers() -> None:
    pb = playbook()
    rep = access.viewer(pb, "UREP1")
    assert rep.roles == {"rep"}
    assert rep.member_of == {"sales"}
    assert rep.sees_pools == {"sales"}
    assert not rep.sees_all
    manager = access.viewer(pb, "UMGR2")
    assert manager.roles == {"manager"}
    assert manager.manages == {"emea"}
    assert manager.sees_pools == {"emea"}
    marketer = access.viewer(pb, "UMKT1")
    assert marketer.roles == {"marketer"}
    assert marketer.sees_all
    stranger = access.viewer(pb, "UOTHER")
    assert stranger.roles == frozenset()
    assert not stranger.sees_all
    assert not stranger.sees_pools


def test_reps_own_all_and_managers_all_widen_or_narrow_what_is_seen() -> None:
    assert access.viewer(playbook(reps="own"), "UREP1").sees_pools == frozenset()
    assert access.viewer(playbook(reps="all"), "UREP1").sees_all
    assert access.viewer(playbook(managers="all"), "UMGR2").sees_all
    assert not access.viewer(playbook(marketers="none"), "UMKT1").sees_all


def test_everyone_is_a_member_of_an_open_pool() -> None:
    stranger = access.viewer(playbook(open_pool=True), "UOTHER")
    assert stranger.member_of == {"emea"}
    assert stranger.sees_pools == {"emea"}
    assert stranger.roles == {"rep"}


def test_contact_details_follow_the_roles_listed() -> None:
    pb = playbook(contact="[manager]")
    assert access.viewer(pb, "UMGR1").contact_details
    assert not access.viewer(pb, "UREP1").contact_details
    assert not access.viewer(pb, "UMKT1").contact_details
    assert access.viewer(playbook(contact="[marketer, rep]"), "UMKT1").contact_details


def test_deal_lookups_follow_the_deals_rule() -> None:
    access.check_may_see_deals(playbook(), access.viewer(playbook(), "UOTHER"))
    sales_only = playbook(deals="sales")
    access.check_may_see_deals(sales_only, access.viewer(sales_only, "UMGR1"))
    with pytest.raises(access.LookupDenied, match="only reps and their managers"):
        access.check_may_see_deals(sales_only, access.viewer(sales_only, "UMKT1"))
    nobody = playbook(deals="nobody")
    with pytest.raises(access.LookupDenied, match="turned off"):
        access.check_may_see_deals(nobody, access.viewer(nobody, "UMGR1"))


def test_only_managers_see_another_reps_pipeline_and_only_in_their_pools() -> None:
    pb = playbook()
    access.check_may_see_rep(pb, access.viewer(pb, "UREP1"), "UREP1")
    access.check_may_see_rep(pb, access.viewer(pb, "UMGR1"), "UREP2")
    with pytest.raises(access.LookupDenied, match="Only managers"):
        access.check_may_see_rep(pb, access.viewer(pb, "UREP1"), "UREP2")
    with pytest.raises(access.LookupDenied, match="pools you manage"):
        access.check_may_see_rep(pb, access.viewer(pb, "UMGR2"), "UREP1")
    everyone = playbook(managers="all")
    access.check_may_see_rep(everyone, access.viewer(everyone, "UMGR2"), "UREP1")


def test_team_view_needs_a_pool_and_is_for_managers_when_reps_see_only_their_own() -> None:
    pb = playbook()
    access.check_may_see_team(pb, access.viewer(pb, "UREP1"))
    with pytest.raises(access.LookupDenied, match="not in any pool"):
        access.check_may_see_team(pb, access.viewer(pb, "UMKT1"))
    own = playbook(reps="own")
    with pytest.raises(access.LookupDenied, match="only their own"):
        access.check_may_see_team(own, access.viewer(own, "UREP1"))
    access.check_may_see_team(own, access.viewer(own, "UMGR1"))


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("write to ana.diaz+x@acme.example today", "write to [email hidden] today"),
        ("call +1 (555) 010-0100 after 3", "call [phone hidden] after 3"),
        ("call 030 1234 5678", "call [phone hidden]"),
        ("revisit 2026-12-01, budget 250,000", "revisit 2026-12-01, budget 250,000"),
        ("no contact here", "no contact here"),
    ],
)
def test_contact_details_are_masked_unless_allowed(text: str, masked: str) -> None:
    assert access.scrub_contacts(text, allowed=False) == masked
    assert access.scrub_contacts(text, allowed=True) == text


def test_the_access_section_refuses_unknown_values() -> None:
    with pytest.raises(PlaybookError, match=r"access\.marketers"):
        playbook(marketers="some")
