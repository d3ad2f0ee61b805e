"""The playbook: built-in defaults, validation errors that name the key and line, cross-checks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.core.playbook import (
    Playbook,
    PlaybookError,
    Problem,
    default_playbook_text,
    load_playbook,
    parse_playbook,
    resolve_playbook_path,
)
from tests.conftest import TEST_PLAYBOOK

BASE = TEST_PLAYBOOK.replace("MODE", "claim")


def line_of(text: str, needle: str) -> int:
    """The 1-based number of the only line of `text` containing `needle`."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) == 1, f"{needle!r} is on lines {hits}"
    return hits[0]


def edited(old: str, new: str, text: str = BASE) -> str:
    """The playbook with one piece of text replaced (which must be there exactly once)."""
    assert text.count(old) == 1, old
    return text.replace(old, new)


def problems_of(text: str, source: str = "revbot.yml") -> list[Problem]:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(text, source)
    assert caught.value.source == source
    return caught.value.problems


def only_problem(text: str) -> Problem:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


# --- the built-in playbook -------------------------------------------------------------------


def test_builtin_playbook_loads_in_claim_mode_with_the_standard_tiers() -> None:
    pb = load_playbook(None)
    assert isinstance(pb, Playbook)
    assert pb.routing.mode == "claim"
    assert [t.name for t in pb.tiers_by_rank] == ["hot", "warm", "nurture"]
    assert [t.min_score for t in pb.tiers_by_rank] == [80, 50, 0]
    assert pb.tier("hot").accept_within == timedelta(minutes=15)
    assert pb.tier("nurture").accept_within == timedelta(hours=8)
    assert {t.clock for t in pb.tiers} == {"business"}
    assert pb.timezone == "UTC"
    assert pb.routing.pools[pb.routing.default_pool].open is True


def test_builtin_playbook_has_reject_and_recycle_reasons() -> None:
    pb = parse_playbook(default_playbook_text(), "built-in playbook")
    reject = pb.reason("reject", "not_icp")
    assert reject is not None
    assert reject.crm == "Not ICP"
    assert pb.reason("recycle", "timing") is not None
    assert len(pb.reasons.reject) >= 2
    assert len(pb.reasons.recycle) >= 2


def test_builtin_playbook_scores_leads_without_a_score() -> None:
    pb = load_playbook(None)
    assert pb.scoring.intent.signals["demo_request"] > 0
    assert pb.scoring.fit.employees


def test_team_playbook_parses() -> None:
    pb = parse_playbook(BASE, "test")
    assert pb.timezone == "America/New_York"
    assert pb.channels.alerts_channel == "#revops-alerts"
    assert pb.routing.pools["sales"].member("UREP1").weight == 2  # type: ignore[union-attr]
    assert pb.routing.pools["sales"].member("UNOBODY") is None
    assert pb.routing.rules[0].when.country == ["DE", "FR"]


def test_alerts_channel_falls_back_to_the_pipeline_channel() -> None:
    pb = parse_playbook(edited('  alerts: "#revops-alerts"\n', ""))
    assert pb.channels.alerts is None
    assert pb.channels.alerts_channel == "#revenue-pipeline"


def test_a_single_rule_value_may_be_given_as_a_string() -> None:
    pb = parse_playbook(edited("country: [DE, FR]", "country: DE"))
    assert pb.routing.rules[0].when.country == ["DE"]


# --- parse errors name the key path and the line ---------------------------------------------


def test_unknown_nested_key_is_named_with_its_line() -> None:
    text = edited("      manager: UMGR1\n", "      manager: UMGR1\n      colour: red\n")
    problem = only_problem(text)
    assert problem.key == "routing.pools.sales.colour"
    assert "unknown key" in problem.message
    assert problem.line == line_of(text, "colour: red")


def test_unknown_key_inside_a_list_item_is_named_with_its_index() -> None:
    text = edited("{slack_id: UREP2, name: Ben,", "{slack_id: UREP2, nmae: Ben,")
    problem = only_problem(text)
    assert problem.key == "routing.pools.sales.members[1].nmae"
    assert problem.line == line_of(text, "nmae: Ben")


def test_wrong_type_is_named_with_its_line() -> None:
    text = edited("min_score: 50", "min_score: lots")
    problem = only_problem(text)
    assert problem.key == "tiers[1].min_score"
    assert "integer" in problem.message
    assert problem.line == line_of(text, "min_score: lots")


def test_bad_duration_is_named_with_its_line_and_the_value() -> None:
    text = edited("accept_within: 4h", "accept_within: 4x")
    problem = only_problem(text)
    assert problem.key == "tiers[1].accept_within"
    assert "'4x' is not a duration" in problem.message
    assert not problem.message.startswith("Value error")
    assert problem.line == line_of(text, "accept_within: 4x")


@pytest.mark.parametrize("value", ["999999999999w", ".inf"])
def test_an_absurdly_long_duration_is_a_playbook_problem(value: str) -> None:
    text = edited("accept_within: 4h", f"accept_within: {value}")
    problem = only_problem(text)
    assert problem.key == "tiers[1].accept_within"
    assert problem.line == line_of(text, f"accept_within: {value}")


def test_bad_timezone_is_named_with_its_line() -> None:
    text = edited("timezone: America/New_York", "timezone: Mars/Olympus")
    problem = only_problem(text)
    assert problem.key == "timezone"
    assert "unknown timezone 'Mars/Olympus'" in problem.message
    assert problem.line == line_of(text, "Mars/Olympus")


def test_missing_required_nested_key_points_at_its_parent_item() -> None:
    text = edited("{code: bad_contact, label: Bad contact data}", "{code: bad_contact}")
    problem = only_problem(text)
    assert problem.key == "reasons.reject[1].label"
    assert problem.message == "required key is missing"
    assert problem.line == line_of(text, "{code: bad_contact}")


def test_missing_required_top_level_key_is_reported_with_the_misspelt_one() -> None:
    text = edited("reasons:\n", "reasonz:\n")
    problems = {p.key: p for p in problems_of(text)}
    assert set(problems) == {"reasons", "reasonz"}
    assert problems["reasons"].message == "required key is missing"
    assert problems["reasonz"].line == line_of(text, "reasonz:")


def test_several_problems_are_all_reported() -> None:
    text = edited("weight: 2", "weight: 0", edited("name: hot", "name: Hot"))
    keys = {p.key for p in problems_of(text)}
    assert keys == {"tiers[0].name", "routing.pools.sales.members[0].weight"}


def test_invalid_slack_id_is_refused() -> None:
    text = edited("slack_id: UREP2", "slack_id: bob")
    problem = only_problem(text)
    assert problem.key == "routing.pools.sales.members[1].slack_id"
    assert problem.line == line_of(text, "slack_id: bob")


def test_yaml_syntax_error_reports_its_line() -> None:
    text = edited("timezone: America/New_York", "timezone: America/New_York: oops")
    problem = only_problem(text)
    assert problem.key == "(yaml)"
    assert problem.line == line_of(text, "oops")
    assert "mapping values are not allowed" in problem.message


def test_unclosed_bracket_reports_a_yaml_problem_with_a_line() -> None:
    problem = only_problem("tiers: [\n  {name: hot\n")
    assert problem.key == "(yaml)"
    assert problem.line is not None
    assert problem.line >= 2


@pytest.mark.parametrize("text", ["", "just some text", "- a\n- b\n"])
def test_a_playbook_that_is_not_a_mapping_is_refused(text: str) -> None:
    problem = only_problem(text)
    assert problem.key == "(top level)"
    assert "mapping" in problem.message


def test_error_text_has_source_line_key_and_message() -> None:
    text = edited("timezone: America/New_York", "timezone: Mars/Olympus")
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(text, "config/revbot.yml")
    line = line_of(text, "Mars/Olympus")
    assert str(caught.value) == (
        f"config/revbot.yml:{line} timezone: unknown timezone 'Mars/Olympus'; "
        "use an IANA name such as Europe/Berlin"
    )


def test_error_text_has_one_line_per_problem() -> None:
    text = edited("code: no_response", "code: timing")
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(text, "pb.yml")
    lines = str(caught.value).splitlines()
    assert lines == [p.render("pb.yml") for p in caught.value.problems]
    assert len(lines) == 2


def test_problem_render_without_a_line() -> None:
    assert (
        Problem("(file)", "cannot read it", None).render("x.yml") == "x.yml (file): cannot read it"
    )
    assert Problem("timezone", "bad", 4).render("x.yml") == "x.yml:4 timezone: bad"


# --- cross-checks ------------------------------------------------------------------------------


def test_rule_pointing_at_an_unknown_pool() -> None:
    text = edited("pool: emea}", "pool: apac}")
    problem = only_problem(text)
    assert problem.key == "routing.rules[0].pool"
    assert "'apac'" in problem.message
    assert problem.line == line_of(text, "pool: apac")


def test_unknown_default_pool() -> None:
    text = edited("default_pool: sales", "default_pool: nowhere")
    problem = only_problem(text)
    assert problem.key == "routing.default_pool"
    assert "'nowhere'" in problem.message
    assert problem.line == line_of(text, "default_pool: nowhere")


def test_unknown_backup_pool() -> None:
    text = edited("backup: sales", "backup: apac")
    problem = only_problem(text)
    assert problem.key == "routing.pools.emea.backup"
    assert "'apac'" in problem.message
    assert problem.line == line_of(text, "backup: apac")


def test_pool_cannot_back_itself_up() -> None:
    problem = only_problem(edited("backup: sales", "backup: emea"))
    assert problem.key == "routing.pools.emea.backup"
    assert "itself" in problem.message


def test_duplicate_reason_code_names_both_entries() -> None:
    text = edited("code: no_response", "code: timing")
    problems = problems_of(text)
    assert [p.key for p in problems] == ["reasons.recycle[0].code", "reasons.recycle[1].code"]
    assert all("'timing' is defined twice" in p.message for p in problems)
    assert [p.line for p in problems] == [
        line_of(text, "Timing: revisit later"),
        line_of(text, "No response"),
    ]


def test_the_same_code_may_be_both_a_reject_and_a_recycle_reason() -> None:
    pb = parse_playbook(edited("code: no_response", "code: not_icp"))
    assert pb.reason("reject", "not_icp") is not None
    assert pb.reason("recycle", "not_icp") is not None


def test_duplicate_tier_name() -> None:
    text = edited("name: warm", "name: hot")
    problems = problems_of(text)
    assert [p.key for p in problems] == ["tiers[0].name", "tiers[1].name"]
    assert all("'hot' is defined twice" in p.message for p in problems)


def test_lowest_tier_must_start_at_zero() -> None:
    text = edited("min_score: 0,", "min_score: 10,")
    problem = only_problem(text)
    assert problem.key == "tiers"
    assert "min_score: 0" in problem.message
    assert problem.line == line_of(text, "tiers:")


def test_pool_without_members_must_be_open() -> None:
    no_members = edited(
        "      members:\n        - {slack_id: UREP3, name: Chloe, capacity: 1}\n",
        "      members: []\n",
    )
    problem = only_problem(no_members)
    assert problem.key == "routing.pools.emea.members"
    assert "open: true" in problem.message
    assert problem.line == line_of(no_members, "members: []")

    pb = parse_playbook(edited("members: []", "open: true", no_members))
    assert pb.routing.pools["emea"].open is True


def test_duplicate_member_in_a_pool() -> None:
    text = edited("slack_id: UREP2", "slack_id: UREP1")
    problem = only_problem(text)
    assert problem.key == "routing.pools.sales.members[1].slack_id"
    assert problem.message == "listed twice"
    assert problem.line == line_of(text, "name: Ben")


def test_the_same_rep_may_sit_in_two_pools() -> None:
    pb = parse_playbook(edited("slack_id: UREP3", "slack_id: UREP1"))
    assert pb.routing.pools["emea"].member("UREP1") is not None


# --- lookups -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "tier"),
    [(100, "hot"), (80, "hot"), (79, "warm"), (50, "warm"), (49, "nurture"), (0, "nurture")],
)
def test_tier_for_boundaries(score: int, tier: str) -> None:
    assert parse_playbook(BASE).tier_for(score).name == tier


def test_tier_for_a_negative_score_is_the_lowest_tier() -> None:
    assert parse_playbook(BASE).tier_for(-5).name == "nurture"


def test_tier_for_does_not_depend_on_the_order_tiers_are_written_in() -> None:
    shuffled = edited(
        "  - {name: hot, min_score: 80, accept_within: 15m}\n",
        "",
    ).replace(
        "  - {name: nurture, min_score: 0, accept_within: 1d, clock: wall}\n",
        "  - {name: nurture, min_score: 0, accept_within: 1d, clock: wall}\n"
        "  - {name: hot, min_score: 80, accept_within: 15m}\n",
    )
    pb = parse_playbook(shuffled)
    assert [t.name for t in pb.tiers] == ["warm", "nurture", "hot"]
    assert pb.tier_for(85).name == "hot"
    assert pb.tier_for(60).name == "warm"
    assert pb.tier_for(10).name == "nurture"


def test_tier_by_name_falls_back_to_the_lowest_tier() -> None:
    pb = parse_playbook(BASE)
    assert pb.tier("warm").accept_within == timedelta(hours=4)
    assert pb.tier("renamed").name == "nurture"


def test_tier_display_label() -> None:
    pb = parse_playbook(edited("{name: hot,", "{name: hot, label: On fire,"))
    assert pb.tier("hot").display == "On fire"
    assert pb.tier("warm").display == "Warm"


def test_reason_lookup() -> None:
    pb = parse_playbook(BASE)
    not_icp = pb.reason("reject", "not_icp")
    assert not_icp is not None
    assert not_icp.label == "Not our ICP"
    assert not_icp.crm == "Not ICP"
    bad = pb.reason("reject", "bad_contact")
    assert bad is not None
    assert bad.crm == "Bad contact data"  # no crm_value: the label is written
    assert pb.reason("recycle", "timing").crm == "Timing"  # type: ignore[union-attr]
    assert pb.reason("recycle", "not_icp") is None
    assert pb.reason("reject", "timing") is None
    assert pb.reason("reject", "nonsense") is None


# --- files -------------------------------------------------------------------------------------


def test_load_playbook_from_a_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    with pytest.raises(PlaybookError) as caught:
        load_playbook(missing)
    assert caught.value.source == str(missing)
    [problem] = caught.value.problems
    assert problem.key == "(file)"
    assert "cannot read it" in problem.message
    assert str(missing) in str(caught.value)
    assert "(file)" in str(caught.value)


def test_load_playbook_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "team.yml"
    path.write_text(BASE, encoding="utf-8")
    pb = load_playbook(path)
    assert pb.timezone == "America/New_York"
    assert set(pb.routing.pools) == {"sales", "emea"}


def test_load_playbook_errors_name_the_file_path(tmp_path: Path) -> None:
    path = tmp_path / "team.yml"
    text = edited("default_pool: sales", "default_pool: nowhere")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    assert str(caught.value).startswith(f"{path}:{line_of(text, 'nowhere')} routing.default_pool:")


def test_resolve_playbook_path_prefers_the_configured_path(tmp_path: Path) -> None:
    (tmp_path / "revbot.yml").write_text(BASE, encoding="utf-8")
    configured = tmp_path / "elsewhere.yml"
    assert resolve_playbook_path(configured, tmp_path) == configured


def test_resolve_playbook_path_uses_revbot_yml_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "revbot.yml").write_text(BASE, encoding="utf-8")
    assert resolve_playbook_path(None, tmp_path) == tmp_path / "revbot.yml"


def test_resolve_playbook_path_is_none_without_a_file(tmp_path: Path) -> None:
    assert resolve_playbook_path(None, tmp_path) is None
    assert load_playbook(resolve_playbook_path(None, tmp_path)).routing.mode == "claim"
