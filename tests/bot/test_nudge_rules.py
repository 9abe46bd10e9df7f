"""``flows/nudges.yaml``: the shipped rules load, and each mistake is reported with file, line and rule."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.flows import load_flows
from bot.nudge_rules import RULE_TYPES, format_duration, parse_duration
from tests.bot.test_flows import flows_copy, line_containing, only_problem, problems_of  # noqa: F401 - a fixture

RULE = """
  - id: soon
    type: target_date_soon
    audience: learner
    within: 3d
    min_gap: 3d
    repeats: false
    template: "Hi{name_suffix}, {next_step} is due on {due_date}."
"""


def write_rules(directory: Path, rules: str, header: str = "timezone: Europe/London\n") -> Path:
    path = directory / "nudges.yaml"
    path.write_text(header + "rules:" + rules, encoding="utf-8")
    return path


def test_shipped_rules_cover_every_type():
    nudges = load_flows().nudges

    assert {rule.type for rule in nudges.rules} == set(RULE_TYPES)
    assert nudges.timezone == "America/New_York"
    for rule in nudges.rules:
        assert "{next_step}" in rule.template, rule.id
        assert "{due_date}" in rule.template, rule.id


def test_flows_without_rules_file_have_no_rules(flows_copy):
    (flows_copy / "nudges.yaml").unlink()

    assert load_flows(flows_copy).nudges.rules == []


def test_valid_rule_loads(flows_copy):
    write_rules(flows_copy, RULE)

    rule = load_flows(flows_copy).nudges.rule("soon")

    assert rule.threshold == timedelta(days=3)
    assert rule.render(name_suffix=", Ana", next_step="X", due_date="2026-05-01") == "Hi, Ana, X is due on 2026-05-01."


def test_template_without_date_rejected(flows_copy):
    path = write_rules(flows_copy, RULE.replace(" is due on {due_date}", ""))

    problem = only_problem(flows_copy)

    assert problem.startswith(f"{path}:{line_containing(path, 'template:')}: rule 'soon':")
    assert "must name the concrete next step and its date; add {due_date}" in problem


def test_template_without_step_and_date_rejected(flows_copy):
    write_rules(flows_copy, RULE.replace("{next_step} is due on {due_date}", "keep going"))

    assert "add {due_date} and {next_step}" in only_problem(flows_copy)


def test_unknown_placeholder_names_allowed_ones(flows_copy):
    write_rules(flows_copy, RULE.replace("{name_suffix}", "{days_inactive}"))

    problem = only_problem(flows_copy)

    assert "unknown placeholder(s) ['days_inactive']" in problem
    assert "{days_left}" in problem


def test_broken_brace_reported(flows_copy):
    write_rules(flows_copy, RULE.replace("{due_date}.", "{due_date}. {"))

    assert "invalid placeholder" in only_problem(flows_copy)


def test_duplicate_rule_id_rejected(flows_copy):
    path = write_rules(flows_copy, RULE + RULE)

    problems = problems_of(flows_copy)

    assert problems == [f"{path}:{line_containing(path, 'id: soon') + 8}: rule 'soon': rule id 'soon' is used twice; "
                        "give each rule its own id"]


def test_wrong_audience_rejected(flows_copy):
    write_rules(flows_copy, RULE.replace("audience: learner", "audience: reviewers"))

    assert "write audience: learner" in only_problem(flows_copy)


def test_missing_threshold_rejected(flows_copy):
    write_rules(flows_copy, RULE.replace("    within: 3d\n", ""))

    assert "a target_date_soon rule needs 'within'" in only_problem(flows_copy)


def test_other_threshold_rejected(flows_copy):
    write_rules(flows_copy, RULE.replace("within: 3d", "within: 3d\n    after: 2d"))

    assert "takes 'within', not 'after'" in only_problem(flows_copy)


def test_hours_for_target_date_rejected(flows_copy):
    write_rules(flows_copy, RULE.replace("within: 3d", "within: 36h"))

    assert "target dates are whole days" in only_problem(flows_copy)


def test_passed_target_date_needs_a_day(flows_copy):
    rule = RULE.replace("target_date_soon", "target_date_passed").replace("within: 3d", "after: 0d")
    write_rules(flows_copy, rule.replace("is due on", "was due on"))

    assert "write at least 1d" in only_problem(flows_copy)


@pytest.mark.parametrize("value", ["3", "3 days", "-1d", "1w", "true"])
def test_invalid_duration_rejected(flows_copy, value):
    path = write_rules(flows_copy, RULE.replace("min_gap: 3d", f"min_gap: {value}"))

    problem = only_problem(flows_copy)

    assert problem.startswith(f"{path}:{line_containing(path, 'min_gap')}: rule 'soon':")
    assert "is not a duration; write a whole number of days or hours such as 7d or 48h" in problem


def test_short_gap_rejected(flows_copy):
    write_rules(flows_copy, RULE.replace("min_gap: 3d", "min_gap: 0h"))

    assert "min_gap must be at least 1h" in only_problem(flows_copy)


def test_unknown_type_rejected(flows_copy):
    write_rules(flows_copy, RULE.replace("type: target_date_soon", "type: birthday"))

    assert "rule 'soon'" in only_problem(flows_copy)


def test_unknown_field_rejected(flows_copy):
    write_rules(flows_copy, RULE.replace("repeats: false", "repeats: false\n    colour: blue"))

    assert "unknown field 'colour'" in only_problem(flows_copy)


def test_invalid_timezone_rejected(flows_copy):
    path = write_rules(flows_copy, RULE, header="timezone: Mars/Olympus\n")

    assert only_problem(flows_copy) == (f"{path}:1: 'Mars/Olympus' is not an IANA time zone name such as "
                                        "'America/New_York'")


def test_every_error_reported_at_once(flows_copy):
    broken = RULE.replace("audience: learner", "audience: reviewers").replace(" is due on {due_date}", "")
    write_rules(flows_copy, broken + RULE)

    problems = problems_of(flows_copy)

    assert len(problems) == 3, problems


def test_duration_round_trip():
    assert parse_duration("48h") == timedelta(hours=48)
    assert format_duration(parse_duration("48h")) == "2d"
    assert format_duration(parse_duration("36h")) == "36h"
