"""The evaluation form's checks and its CSRF token, without HTTP."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta, timezone

import pytest

from bot import evaluation_form as form
from bot.config import load_settings
from bot.flows import load_flows

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=timezone.utc)
LINK = "A" * 43
SECRET = b"k" * 32


@pytest.fixture(scope="module")
def rubric():
    return load_flows().catalog.evaluation_rubric


def answers(rubric, **overrides):
    fields = {form.rating_field(criterion.id): ["3"] for criterion in rubric.criteria}
    fields.update({"recommendation": [rubric.recommendations[1].id], "evaluator-name": ["  Maria\u200b Lopez "],
                   "consent": ["yes"]})
    fields.update({name: value if isinstance(value, list) else [value] for name, value in overrides.items()})
    return fields


def test_parse_answers_valid(rubric):
    parsed = form.parse_answers(rubric, answers(rubric, **{"comment-teamwork": "Great\r\nteam player"}))

    assert parsed.errors == {}
    assert parsed.answers.ratings == {criterion.id: 3 for criterion in rubric.criteria}
    assert parsed.answers.recommendation == rubric.recommendations[1].id
    assert parsed.answers.evaluator_name == "Maria Lopez"
    assert parsed.answers.comments["teamwork"] == "Great\nteam player"
    assert parsed.answers.to_json()["comments"] == {"teamwork": "Great\nteam player"}


def test_parse_answers_collects_every_error(rubric):
    parsed = form.parse_answers(rubric, {})

    expected = {form.rating_field(criterion.id) for criterion in rubric.criteria}
    expected |= {"recommendation", "evaluator-name", "consent"}
    assert set(parsed.errors) == expected
    assert parsed.answers is None


def test_parse_answers_rejects_duplicate_field(rubric):
    with pytest.raises(form.DuplicateField):
        form.parse_answers(rubric, answers(rubric, recommendation=["recommend", "not-recommend"]))


def test_parse_answers_limit_counts_characters(rubric):
    at_limit = "é" * form.COMMENT_MAX_CHARS

    parsed = form.parse_answers(rubric, answers(rubric, **{"comment-teamwork": at_limit}))

    assert parsed.errors == {}


def test_max_body_fits_largest_valid_form(rubric):
    from urllib.parse import urlencode

    fields = {name: values[0] for name, values in answers(rubric).items()}
    fields.update({form.comment_field(criterion.id): "😀" * form.COMMENT_MAX_CHARS for criterion in rubric.criteria})
    fields.update({"overall-comment": "😀" * form.OVERALL_COMMENT_MAX_CHARS,
                   "evaluator-name": "😀" * form.EVALUATOR_NAME_MAX_CHARS,
                   "evaluator-title": "😀" * form.EVALUATOR_TITLE_MAX_CHARS,
                   "csrf-token": "1" * 12 + "." + "f" * 64})

    assert len(urlencode(fields).encode()) <= form.max_body_bytes(rubric)


def test_csrf_valid_for_its_link():
    token = form.csrf_token(SECRET, LINK, NOW)

    assert form.check_csrf(SECRET, LINK, token, NOW + timedelta(hours=1)) is form.CsrfCheck.VALID


@pytest.mark.parametrize(("link", "secret", "value"), [
    ("B" * 43, SECRET, None),
    (LINK, b"o" * 32, None),
    (LINK, SECRET, ""),
    (LINK, SECRET, "12345"),
    (LINK, SECRET, "x.y"),
    (LINK, SECRET, "9" * 40 + ".00"),
])
def test_csrf_invalid(link, secret, value):
    value = form.csrf_token(SECRET, LINK, NOW) if value is None else value

    assert form.check_csrf(secret, link, value, NOW) is form.CsrfCheck.INVALID


def test_csrf_from_future_invalid():
    token = form.csrf_token(SECRET, LINK, NOW + timedelta(hours=1))

    assert form.check_csrf(SECRET, LINK, token, NOW) is form.CsrfCheck.INVALID


def test_csrf_old_is_stale():
    token = form.csrf_token(SECRET, LINK, NOW)

    later = NOW + timedelta(seconds=form.CSRF_MAX_AGE_SECONDS + 1)
    assert form.check_csrf(SECRET, LINK, token, later) is form.CsrfCheck.STALE


def test_form_secret_file_created_once(tmp_path):
    settings = load_settings(environ={}, data_dir=tmp_path / "data")

    first = form.load_form_secret(settings)
    second = form.load_form_secret(settings)

    path = tmp_path / "data" / form.SECRET_FILE
    assert first == second
    assert len(first) == form.SECRET_BYTES
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [entry.name for entry in path.parent.iterdir()] == [form.SECRET_FILE]


def test_form_secret_from_settings(tmp_path):
    settings = load_settings(environ={}, data_dir=tmp_path / "data", form_secret="z" * 40)

    assert form.load_form_secret(settings) == b"z" * 40
    assert not (tmp_path / "data" / form.SECRET_FILE).exists()


def test_form_secret_too_short_rejected(tmp_path):
    from bot.config import ConfigError

    with pytest.raises(ConfigError, match="form_secret"):
        load_settings(environ={}, data_dir=tmp_path / "data", form_secret="short")
