"""Loading and validating a flows directory, and ``careerbot flows check``.

Each test copies the shipped flows to a temporary folder, breaks one thing,
and checks that the error names the file, the line and the entry to fix.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main as cli_main
from bot.flows import FlowsInvalid, default_flows_dir, load_flows

CAREERBOT = Path(sys.executable).with_name("careerbot")


@pytest.fixture
def flows_copy(tmp_path: Path) -> Path:
    target = tmp_path / "flows"
    shutil.copytree(default_flows_dir(), target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return target


def break_file(directory: Path, name: str, old: str, new: str) -> Path:
    path = directory / name
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= 1, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def line_containing(path: Path, fragment: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(f"{fragment!r} not in {path}")


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(FlowsInvalid) as caught:
        load_flows(directory)
    return [str(problem) for problem in caught.value.problems]


def only_problem(directory: Path) -> str:
    problems = problems_of(directory)
    assert len(problems) == 1, problems
    return problems[0]


def test_shipped_flows_load_cleanly():
    flows = load_flows()

    assert flows.warnings == ()
    assert len(flows.questions) == 20
    assert [question.state for question in flows.questions][:2] == ["consent", "name"]
    assert len(flows.catalog.skills) == 8


def test_invalid_yaml_names_line(flows_copy):
    path = break_file(flows_copy, "conversation.yaml", "  - id: values\n", "  - id: [values\n")

    problem = only_problem(flows_copy)

    assert problem.startswith(f"{path}:")
    assert "invalid YAML" in problem
    line = int(problem.split(":")[1])
    assert abs(line - line_containing(path, "id: [values")) <= 2


def test_duplicate_key_names_line(flows_copy):
    path = flows_copy / "messages.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "greeting: Hello again\n", encoding="utf-8")

    problem = only_problem(flows_copy)

    assert problem.startswith(f"{path}:{line_containing(path, 'greeting: Hello again')}:")
    assert "duplicate key 'greeting'" in problem


def test_unknown_field_names_question(flows_copy):
    path = break_file(flows_copy, "conversation.yaml", "    label: Name\n", "    label: Name\n    colour: blue\n")

    problem = only_problem(flows_copy)

    assert "question 'name'" in problem
    assert "unknown field 'colour'" in problem
    assert problem.startswith(f"{path}:{line_containing(path, 'colour: blue')}:")


def test_missing_message_key(flows_copy):
    path = flows_copy / "messages.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index("help_coordinator: |-")
    end = text.index("command_help:")
    path.write_text(text[:start] + text[end:], encoding="utf-8")

    problem = only_problem(flows_copy)

    assert problem.startswith(f"{path}:")
    assert "message 'help_coordinator'" in problem
    assert "missing" in problem


def test_unknown_placeholder_names_message_line(flows_copy):
    path = break_file(flows_copy, "messages.yaml", "Welcome back{name_suffix}!", "Welcome back{name_suffix} {nickname}!")

    problem = only_problem(flows_copy)

    assert problem.startswith(f"{path}:{line_containing(path, 'welcome_back:')}:")
    assert "message 'welcome_back'" in problem
    assert "nickname" in problem
    assert "{name_suffix}" in problem


def test_unknown_skill_in_role_weights(flows_copy):
    path = break_file(flows_copy, "catalog.yaml", "      collaboration: 4\n      creative-problem-solving: 5\n",
                      "      teamwork: 4\n      creative-problem-solving: 5\n")

    problem = only_problem(flows_copy)

    assert problem.startswith(f"{path}:{line_containing(path, 'teamwork: 4')}:")
    assert "role 'software-it'" in problem
    assert "unknown skill 'teamwork'" in problem


def test_item_without_rubric_names_item(flows_copy):
    path = flows_copy / "catalog.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index("        rubric:\n          - id: service-named")
    end = text.index("        weight: 1\n      - id: explore-career-options")
    path.write_text(text[:start] + text[end:], encoding="utf-8")

    problem = only_problem(flows_copy)

    assert problem.startswith(f"{path}:{line_containing(path, 'id: use-career-services')}:")
    assert "item 'use-career-services':" in problem
    assert "no 'rubric'" in problem


def test_missing_pathway_question(flows_copy):
    path = break_file(flows_copy, "conversation.yaml", "  - id: target_role\n", "  - id: goal_role\n")

    problem = only_problem(flows_copy)

    assert problem.startswith(f"{path}:")
    assert "missing question 'target_role'" in problem


def test_pathway_question_wrong_kind(flows_copy):
    path = break_file(flows_copy, "conversation.yaml", "    kind: date\n", "    kind: text\n")

    problem = only_problem(flows_copy)

    assert problem.startswith(f"{path}:{line_containing(path, 'id: target_date')}:")
    assert "question 'target_date'" in problem


def test_errors_in_several_files_all_listed(flows_copy):
    break_file(flows_copy, "conversation.yaml", "    label: Name\n", "    label: Name\n    colour: blue\n")
    break_file(flows_copy, "messages.yaml", "Welcome back{name_suffix}!", "Welcome back{nickname}!")

    problems = problems_of(flows_copy)

    assert len(problems) == 2
    assert any("conversation.yaml" in problem for problem in problems)
    assert any("messages.yaml" in problem for problem in problems)


def test_flows_check_cli_reports_ok(capsys):
    assert cli_main(["flows", "check", str(default_flows_dir())]) == 0
    assert "OK (20 questions, 8 skills" in capsys.readouterr().out


def test_flows_check_cli_lists_errors(flows_copy):
    path = break_file(flows_copy, "conversation.yaml", "    label: Name\n", "    label: Name\n    colour: blue\n")

    result = subprocess.run([str(CAREERBOT), "flows", "check", str(flows_copy)], capture_output=True, text=True,
                            timeout=60, check=False)

    assert result.returncode == 1
    assert f"{path}:{line_containing(path, 'colour: blue')}: question 'name': unknown field 'colour'" in result.stderr
    assert result.stdout == ""


def test_flows_check_cli_missing_directory(tmp_path, capsys):
    assert cli_main(["flows", "check", str(tmp_path / "nowhere")]) == 1
    assert "flows directory not found" in capsys.readouterr().err
