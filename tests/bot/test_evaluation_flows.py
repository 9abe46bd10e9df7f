"""Validating the supervisor evaluation parts of a flows directory: the rubric, the item flag, the page words."""

from __future__ import annotations

import re

import pytest

from bot.flows import EVALUATION_FILE, load_flows
from bot.texts import EVALUATION_FIELDS
from tests.bot.test_flows import break_file, flows_copy, line_containing, only_problem  # noqa: F401 (a fixture)


def remove_rubric(directory) -> None:
    path = directory / "catalog.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(re.sub(r"\nevaluation_rubric:\n(?:  .*\n|#.*\n|\n)*?(?=skills:)", "\n", text), encoding="utf-8")


def test_shipped_flows_have_evaluation_parts():
    flows = load_flows()

    rubric = flows.catalog.evaluation_rubric
    assert [level.value for level in rubric.scale] == [1, 2, 3, 4, 5]
    assert len(rubric.criteria) >= 5
    flagged = [item.id for level in flows.catalog.levels for item in level.items if item.supervisor_evaluation]
    assert flagged == ["complete-work-experience"]
    assert all(key in flows.evaluation_texts for key in EVALUATION_FIELDS)


def test_flag_without_rubric_names_item(flows_copy):
    remove_rubric(flows_copy)

    problem = only_problem(flows_copy)

    line = line_containing(flows_copy / "catalog.yaml", "supervisor_evaluation: true")
    assert f"catalog.yaml:{line}:" in problem
    assert "item 'complete-work-experience' asks for a supervisor evaluation" in problem


def test_catalog_without_flag_needs_no_rubric(flows_copy):
    remove_rubric(flows_copy)
    break_file(flows_copy, "catalog.yaml", "        supervisor_evaluation: true\n", "")

    flows = load_flows(flows_copy)

    assert flows.catalog.evaluation_rubric is None


def test_duplicate_scale_value(flows_copy):
    path = break_file(flows_copy, "catalog.yaml", "    - value: 2\n", "    - value: 1\n")

    problem = only_problem(flows_copy)

    assert "value 1 is used twice in scale" in problem
    assert f"catalog.yaml:{line_containing(path, 'label: Needs improvement') - 1}:" in problem


def test_duplicate_criterion_id(flows_copy):
    break_file(flows_copy, "catalog.yaml", "    - id: teamwork\n", "    - id: communication\n")

    assert "id 'communication' is used twice in criteria" in only_problem(flows_copy)


def test_scale_needs_two_levels(flows_copy):
    path = flows_copy / "catalog.yaml"
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"  scale:\n(?:    .*\n)+", "  scale:\n    - value: 1\n      label: Only\n", text, count=1)
    path.write_text(text, encoding="utf-8")

    assert "scale" in only_problem(flows_copy)


def test_missing_page_text(flows_copy):
    break_file(flows_copy, EVALUATION_FILE, "submit_button: Send the evaluation\n", "")

    problem = only_problem(flows_copy)

    assert "evaluation.yaml" in problem
    assert "message 'submit_button': missing" in problem


def test_unknown_page_placeholder(flows_copy):
    path = break_file(flows_copy, EVALUATION_FILE, "form_heading: \"Evaluate {learner}'s",
                      "form_heading: \"Evaluate {student}'s")

    problem = only_problem(flows_copy)

    assert f"evaluation.yaml:{line_containing(path, 'form_heading')}:" in problem
    assert "unknown placeholder(s) ['student']" in problem


def test_missing_evaluation_file(flows_copy):
    (flows_copy / EVALUATION_FILE).unlink()

    assert "evaluation.yaml" in only_problem(flows_copy)
