"""The supervisor evaluation form: its fields, their limits, and the CSRF token that guards it.

Field names: ``rating-<criterion id>`` and ``comment-<criterion id>`` per
criterion of the catalog's ``evaluation_rubric``, then ``recommendation``,
``overall-comment``, ``evaluator-name``, ``evaluator-title``, ``consent`` and
``csrf-token``. :func:`parse_answers` checks a posted form against the rubric
and returns the answers, or an error per field that names a text key of
``flows/evaluation.yaml``.

The CSRF token is ``<issued unix time>.<HMAC-SHA256>`` over the link token's
hash and the issue time, keyed with a server secret, so a token works only
for the link whose page issued it and only for ``CSRF_MAX_AGE_SECONDS``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bot.catalog import EvaluationRubric
from bot.config import Settings
from bot.evaluation_requests import EvaluationAnswers, hash_token
from bot.validate import InvalidInput, check_length, clean_text, parse_number

logger = logging.getLogger(__name__)

COMMENT_MAX_CHARS = 1000
OVERALL_COMMENT_MAX_CHARS = 3000
EVALUATOR_NAME_MAX_CHARS = 200
EVALUATOR_TITLE_MAX_CHARS = 120
CONSENT_VALUE = "yes"
CSRF_FIELD = "csrf-token"
CSRF_MAX_AGE_SECONDS = 12 * 3600
CSRF_CLOCK_SKEW_SECONDS = 300
SECRET_FILE = "form-secret"
SECRET_BYTES = 32

RECOMMENDATION = "recommendation"
OVERALL_COMMENT = "overall-comment"
EVALUATOR_NAME = "evaluator-name"
EVALUATOR_TITLE = "evaluator-title"
CONSENT = "consent"


def rating_field(criterion_id: str) -> str:
    return f"rating-{criterion_id}"


def comment_field(criterion_id: str) -> str:
    return f"comment-{criterion_id}"


def field_names(rubric: EvaluationRubric) -> list[str]:
    names = [name for criterion in rubric.criteria
             for name in (rating_field(criterion.id), comment_field(criterion.id))]
    return names + [RECOMMENDATION, OVERALL_COMMENT, EVALUATOR_NAME, EVALUATOR_TITLE, CONSENT, CSRF_FIELD]


def max_body_bytes(rubric: EvaluationRubric) -> int:
    """The largest form body a full, valid answer can take.

    Each character may take 4 bytes of UTF-8, and form encoding writes each
    byte as ``%XX``; 4096 bytes cover the field names, ratings and token.
    """
    characters = (len(rubric.criteria) * COMMENT_MAX_CHARS + OVERALL_COMMENT_MAX_CHARS
                  + EVALUATOR_NAME_MAX_CHARS + EVALUATOR_TITLE_MAX_CHARS)
    return characters * 4 * 3 + 4096


@dataclass(frozen=True)
class FieldError:
    """Why one field was rejected: a text key of ``flows/evaluation.yaml`` and its placeholders."""

    key: str
    values: dict = field(default_factory=dict)


@dataclass
class ParsedForm:
    """The outcome of checking a posted form.

    ``values`` contains what the supervisor entered, cleaned, to fill the form in
    again when there are ``errors``; ``answers`` is set only when there are none.
    """

    values: dict[str, str]
    errors: dict[str, FieldError]
    answers: EvaluationAnswers | None = None


class DuplicateField(ValueError):
    """A field that takes one value arrived more than once; no page of careerbot sends that."""


def _single(form: Mapping[str, Sequence[str]], name: str) -> str:
    values = form.get(name) or []
    if len(values) > 1:
        raise DuplicateField(name)
    return values[0] if values else ""


def _text(value: str, maximum: int, *, required: bool, missing_key: str = "") -> tuple[str, FieldError | None]:
    text = clean_text(value)
    if not text and not required:
        return "", None
    try:
        return check_length(text, 1, maximum), None
    except InvalidInput as problem:
        if problem.key == "invalid_empty":
            return text, FieldError(missing_key)
        return text, FieldError("error_too_long", {"maximum": maximum, "length": len(text)})


def parse_answers(rubric: EvaluationRubric, form: Mapping[str, Sequence[str]]) -> ParsedForm:
    """Check a posted form (field name to the list of its values) against ``rubric``.

    Raises:
        DuplicateField: a field arrived twice.
    """
    values: dict[str, str] = {}
    errors: dict[str, FieldError] = {}
    scale = {level.value for level in rubric.scale}
    ratings: dict[str, int] = {}
    comments: dict[str, str] = {}

    for criterion in rubric.criteria:
        name = rating_field(criterion.id)
        raw = _single(form, name).strip()
        values[name] = raw[:8]
        number = parse_number(raw, max_digits=2)
        if not raw:
            errors[name] = FieldError("error_rating_missing", {"criterion": criterion.text})
        elif number is None or number not in scale:
            errors[name] = FieldError("error_rating_invalid", {"criterion": criterion.text})
        else:
            ratings[criterion.id] = number

        name = comment_field(criterion.id)
        values[name], problem = _text(_single(form, name), COMMENT_MAX_CHARS, required=False)
        if problem is not None:
            errors[name] = problem
        comments[criterion.id] = values[name]

    recommendation = _single(form, RECOMMENDATION).strip()
    values[RECOMMENDATION] = recommendation[:40]
    if not recommendation:
        errors[RECOMMENDATION] = FieldError("error_recommendation_missing")
    elif recommendation not in {entry.id for entry in rubric.recommendations}:
        errors[RECOMMENDATION] = FieldError("error_recommendation_invalid")

    for name, maximum, required in ((OVERALL_COMMENT, OVERALL_COMMENT_MAX_CHARS, False),
                                    (EVALUATOR_NAME, EVALUATOR_NAME_MAX_CHARS, True),
                                    (EVALUATOR_TITLE, EVALUATOR_TITLE_MAX_CHARS, False)):
        values[name], problem = _text(_single(form, name), maximum, required=required,
                                      missing_key="error_name_missing")
        if problem is not None:
            errors[name] = problem

    consent = _single(form, CONSENT)
    values[CONSENT] = CONSENT_VALUE if consent == CONSENT_VALUE else ""
    if consent != CONSENT_VALUE:
        errors[CONSENT] = FieldError("error_consent_missing")

    if errors:
        return ParsedForm(values, errors)
    answers = EvaluationAnswers(
        ratings=ratings,
        recommendation=recommendation,
        evaluator_name=values[EVALUATOR_NAME],
        evaluator_title=values[EVALUATOR_TITLE],
        comments=comments,
        overall_comment=values[OVERALL_COMMENT],
    )
    return ParsedForm(values, errors, answers)


# --- CSRF -------------------------------------------------------------------------


class CsrfCheck(enum.Enum):
    VALID = "valid"
    STALE = "stale"
    """Signed by this server for this link, but older than CSRF_MAX_AGE_SECONDS."""
    INVALID = "invalid"


def _signature(secret: bytes, link_token: str, issued: int) -> str:
    message = f"evaluation-form:{hash_token(link_token)}:{issued}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def csrf_token(secret: bytes, link_token: str, now: datetime) -> str:
    issued = int(now.timestamp())
    return f"{issued}.{_signature(secret, link_token, issued)}"


def check_csrf(secret: bytes, link_token: str, value: str, now: datetime) -> CsrfCheck:
    issued_text, _, signature = value.partition(".")
    issued = parse_number(issued_text, max_digits=12)
    if issued is None or not hmac.compare_digest(signature.encode(), _signature(secret, link_token, issued).encode()):
        return CsrfCheck.INVALID
    age = now.timestamp() - issued
    if age < -CSRF_CLOCK_SKEW_SECONDS:
        return CsrfCheck.INVALID
    if age > CSRF_MAX_AGE_SECONDS:
        return CsrfCheck.STALE
    return CsrfCheck.VALID


def load_form_secret(settings: Settings) -> bytes:
    """Return the secret that signs CSRF tokens: ``form_secret``, or one kept in the data folder.

    The file is created once, readable by its owner only. Workers that start
    together agree on one secret because the file appears atomically (a hard
    link that fails if another worker made it first).
    """
    if settings.form_secret:
        return settings.form_secret.encode()
    path = Path(settings.data_dir) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create_secret_file(path)
    secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
    if len(secret) < SECRET_BYTES:
        raise ValueError(f"{path} contains a secret shorter than {SECRET_BYTES} bytes; "
                         "delete the file and careerbot creates a new one")
    return secret


def _create_secret_file(path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(SECRET_BYTES) + "\n")
        try:
            os.link(temporary, path)
            logger.info("created a new form secret in %s", path)
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)
