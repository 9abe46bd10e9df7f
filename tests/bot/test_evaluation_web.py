"""The supervisor evaluation page through HTTP: showing, checking and recording the form."""

from __future__ import annotations

import html
import logging
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
from markupsafe import escape
from sqlalchemy import select, update

from bot import evaluation_form as form
from bot.evaluation_requests import hash_token
from bot.evaluation_web import HideLinkTokens, web_routes
from bot.models import EvaluationRequest, PathwayItem
from bot.server import route_providers
from tests.bot.scripted import Chat, approve, find_item, plan_answers
from tests.bot.supervisor_steps import (
    ITEM_KEY,
    SUPERVISOR,
    client_for,
    csrf_of,
    evaluation_submissions,
    load_requests,
    open_form,
    outbox_texts,
    request_link,
    send_form,
    valid_form,
)

LEARNER_SECRETS = ("ana@example.edu", "software developer", "Europe/London", "Honesty, growth")
"""Plan answers of the scripted learner that no supervisor page may show."""


@pytest.fixture
def token(engine) -> str:
    return request_link(Chat(engine, "ana"))


def assert_no_learner_data(page: str) -> None:
    for secret in (*LEARNER_SECRETS, "Ana", SUPERVISOR["organization"], SUPERVISOR["start"]):
        assert secret not in page


def test_route_provider_always_on(settings):
    assert web_routes in route_providers(settings)


async def test_form_shows_placement_and_rubric(engine, token):
    rubric = engine.flows.catalog.evaluation_rubric
    async with client_for(engine) as client:
        response = await open_form(client, token)

    page = response.text
    assert response.status_code == 200
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert '<html lang="en">' in page
    assert "Ana" in page
    assert SUPERVISOR["organization"] in page
    assert f"{SUPERVISOR['start']} to {SUPERVISOR['end']}" in page
    for criterion in rubric.criteria:
        assert html.escape(criterion.text) in page
        assert f'<fieldset aria-describedby="criterion-{criterion.id}-description">' in page
        for level in rubric.scale:
            field_id = f"rating-{criterion.id}-{level.value}"
            assert f'id="{field_id}" name="rating-{criterion.id}" value="{level.value}"' in page
            assert f'<label for="{field_id}">{level.value} - {html.escape(level.label)}</label>' in page
        assert f'<label for="comment-{criterion.id}">' in page
    for recommendation in rubric.recommendations:
        assert html.escape(recommendation.label) in page
    assert page.count("<legend>") == len(rubric.criteria) + 1
    assert '<label for="consent">I supervised Ana at Acme Logistics.' in page
    assert 'name="csrf-token"' in page
    assert "<script" not in page


async def test_form_shows_no_other_learner_data(engine, token):
    async with client_for(engine) as client:
        page = (await open_form(client, token)).text

    for secret in LEARNER_SECRETS:
        assert secret not in page
    assert token in page  # only in the form's action
    assert hash_token(token) not in page


async def test_form_sends_security_headers(engine, token):
    async with client_for(engine) as client:
        response = await open_form(client, token)

    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "style-src 'sha256-" in policy
    assert "form-action 'self'" in policy
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_other_methods_get_405_with_headers(engine, token, method):
    from bot.evaluation_requests import LINK_PATH

    async with client_for(engine) as client:
        response = await client.request(method, LINK_PATH + token)

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "no-referrer"
    assert_no_learner_data(response.text)


async def test_valid_submission_becomes_evidence(engine, token):
    async with client_for(engine) as client:
        csrf = csrf_of((await open_form(client, token)).text)
        response = await send_form(client, token, valid_form(engine, csrf))

    assert response.status_code == 200
    assert "Thank you" in response.text
    assert_no_learner_data(response.text)
    [submission] = evaluation_submissions(engine)
    assert submission.status == "pending"
    assert "Quality of work: 4 of 5 (Exceeds expectations)" in submission.text
    assert "Comment: Careful and precise with every shipment report." in submission.text
    assert "Overall recommendation: I would recommend this person" in submission.text
    assert "Evaluator: Maria Lopez (Operations Manager), Acme Logistics" in submission.text
    assert "Average: 4.0 of 5" in submission.text
    assert find_item(engine, "ana", ITEM_KEY).status == "submitted"
    [request] = load_requests(engine)
    assert request.status == "completed"
    assert request.submission_id == submission.id
    assert request.response["ratings"]["quality-of-work"] == 4
    assert request.response["consent"] is True


async def test_valid_submission_tells_learner_and_reviewers(engine, token):
    async with client_for(engine) as client:
        csrf = csrf_of((await open_form(client, token)).text)
        await send_form(client, token, valid_form(engine, csrf))

    [submission] = evaluation_submissions(engine)
    learner_texts = outbox_texts(engine, "ana")
    assert any("Your supervisor Maria Lopez sent their evaluation" in text for text in learner_texts)
    [card] = [text for text in outbox_texts(engine, "reviewers") if f"Submission #{submission.id}" in text]
    assert "Supervisor evaluation sent through careerbot's web form" in card
    assert "Quality of work: 4 of 5" in card
    assert "Overall recommendation:" in card


async def test_reviewer_approves_evaluation(engine, token):
    async with client_for(engine) as client:
        csrf = csrf_of((await open_form(client, token)).text)
        await send_form(client, token, valid_form(engine, csrf))
    [submission] = evaluation_submissions(engine)

    approve(engine, submission.id)

    assert find_item(engine, "ana", ITEM_KEY).status == "approved"
    assert any("was approved" in text for text in outbox_texts(engine, "ana"))


async def test_reused_token_shows_used_page(engine, token):
    async with client_for(engine) as client:
        csrf = csrf_of((await open_form(client, token)).text)
        await send_form(client, token, valid_form(engine, csrf))

        again = await open_form(client, token)
        resent = await send_form(client, token, valid_form(engine, csrf))

    for response in (again, resent):
        assert response.status_code == 410
        assert "Evaluation already sent" in response.text
        assert_no_learner_data(response.text)
        assert "<form" not in response.text
    assert len(evaluation_submissions(engine)) == 1


@pytest.mark.parametrize("unknown", ["A" * 43, "short", "x" * 200, "%3Cscript%3E"])
async def test_unknown_token_shows_404(engine, token, unknown):
    async with client_for(engine) as client:
        shown = await open_form(client, unknown)
        sent = await send_form(client, unknown, valid_form(engine, "0.0"))

    for response in (shown, sent):
        assert response.status_code == 404
        assert "Link not found" in response.text
        assert_no_learner_data(response.text)
    assert evaluation_submissions(engine) == []


async def test_expired_token_shows_410(engine, token):
    async with client_for(engine) as client:
        csrf = csrf_of((await open_form(client, token)).text)
        with engine.session_factory() as session, session.begin():
            session.execute(update(EvaluationRequest).values(
                expires_at=datetime.now(timezone.utc) - timedelta(minutes=1)))

        shown = await open_form(client, token)
        sent = await send_form(client, token, valid_form(engine, csrf))

    for response in (shown, sent):
        assert response.status_code == 410
        assert "Link expired" in response.text
        assert_no_learner_data(response.text)
    assert evaluation_submissions(engine) == []


async def test_revoked_token_shows_410(engine):
    chat = Chat(engine, "ana")
    token = request_link(chat)
    async with client_for(engine) as client:
        csrf = csrf_of((await open_form(client, token)).text)
        chat.send("/supervisor revoke")

        shown = await open_form(client, token)
        sent = await send_form(client, token, valid_form(engine, csrf))

    for response in (shown, sent):
        assert response.status_code == 410
        assert "Link cancelled" in response.text
        assert_no_learner_data(response.text)
    assert evaluation_submissions(engine) == []


async def test_inactive_item_link_shows_410(engine, token):
    with engine.session_factory() as session, session.begin():
        session.execute(update(PathwayItem).where(PathwayItem.item_key == ITEM_KEY).values(active=False))

    async with client_for(engine) as client:
        response = await open_form(client, token)

    assert response.status_code == 410
    assert_no_learner_data(response.text)


@pytest.mark.parametrize("csrf", ["", "garbage", "1700000000.deadbeef", None])
async def test_csrf_failure_rejected(engine, token, csrf):
    async with client_for(engine) as client:
        response = await send_form(client, token, valid_form(engine, csrf))

    assert response.status_code == 403
    assert "not sent from this site" in response.text
    assert evaluation_submissions(engine) == []
    assert load_requests(engine)[0].status == "pending"


async def test_csrf_of_other_link_rejected(engine, token):
    other = request_link(Chat(engine, "ben"))
    async with client_for(engine) as client:
        other_csrf = csrf_of((await open_form(client, other)).text)
        response = await send_form(client, token, valid_form(engine, other_csrf))

    assert response.status_code == 403
    assert evaluation_submissions(engine) == []


async def test_stale_csrf_keeps_answers(engine, token):
    secret = form.load_form_secret(engine.settings)
    issued = datetime.now(timezone.utc) - timedelta(seconds=form.CSRF_MAX_AGE_SECONDS + 60)
    stale = form.csrf_token(secret, token, issued)
    async with client_for(engine) as client:
        response = await send_form(client, token, valid_form(engine, stale, **{"evaluator-name": "Maria L."}))

    assert response.status_code == 400
    assert "open for a long time, so nothing was sent" in response.text
    assert 'value="Maria L."' in response.text
    assert csrf_of(response.text) != stale
    assert evaluation_submissions(engine) == []


INVALID_FIELDS = [
    ("rating-quality-of-work", None, "Choose a rating for Quality of work."),
    ("rating-quality-of-work", "", "Choose a rating for Quality of work."),
    ("rating-teamwork", "6", "Choose one of the listed ratings for Teamwork."),
    ("rating-teamwork", "0", "Choose one of the listed ratings for Teamwork."),
    ("rating-teamwork", "four", "Choose one of the listed ratings for Teamwork."),
    ("comment-communication", "x" * 1001, "This has 1001 characters; please keep it to 1000."),
    ("recommendation", None, "Choose an overall recommendation."),
    ("recommendation", "hire-at-once", "Choose one of the listed recommendations."),
    ("overall-comment", "y" * 3001, "This has 3001 characters; please keep it to 3000."),
    ("evaluator-name", None, "Enter your name."),
    ("evaluator-name", "   ", "Enter your name."),
    ("evaluator-name", "n" * 201, "This has 201 characters; please keep it to 200."),
    ("evaluator-title", "t" * 121, "This has 121 characters; please keep it to 120."),
    ("consent", None, "Tick the box to confirm the statement."),
    ("consent", "no", "Tick the box to confirm the statement."),
]


@pytest.mark.parametrize(("field", "value", "message"), INVALID_FIELDS)
async def test_invalid_field_shown_next_to_it(engine, token, field, value, message):
    async with client_for(engine) as client:
        csrf = csrf_of((await open_form(client, token)).text)
        response = await send_form(client, token, valid_form(engine, csrf, **{field: value}))

    page = response.text
    assert response.status_code == 422
    error = f'<p class="error-message" id="{field}-error"><span class="visually-hidden">Error:</span> {message}</p>'
    assert error in page
    described = re.search(r'<(?:fieldset|input|textarea)[^>]*aria-describedby="[^"]*' + re.escape(f"{field}-error"), page)
    assert described is not None
    assert f">{message}</a></li>" in page
    assert page.count('class="error-message"') == 1
    assert "<title>Error: " in page
    assert evaluation_submissions(engine) == []
    assert load_requests(engine)[0].status == "pending"


async def test_invalid_form_keeps_other_answers(engine, token):
    async with client_for(engine) as client:
        csrf = csrf_of((await open_form(client, token)).text)
        response = await send_form(client, token, valid_form(engine, csrf, consent=None))

    page = response.text
    assert 'id="rating-quality-of-work-4" name="rating-quality-of-work" value="4" required checked' in page
    assert 'value="Maria Lopez"' in page
    assert ">Careful and precise with every shipment report.</textarea>" in page


async def test_corrected_form_is_accepted(engine, token):
    async with client_for(engine) as client:
        csrf = csrf_of((await open_form(client, token)).text)
        first = await send_form(client, token, valid_form(engine, csrf, recommendation=None))
        second = await send_form(client, token, valid_form(engine, csrf_of(first.text)))

    assert second.status_code == 200
    assert len(evaluation_submissions(engine)) == 1


HOSTILE = '<script>alert("x")</script><b onmouseover=alert(1)>&amp;'


async def test_html_in_every_text_field_is_escaped(engine):
    chat = Chat(engine, "ana")
    chat.finish_plan(name=HOSTILE)
    token = request_link(chat, plan_done=True, name=HOSTILE, organization=HOSTILE)
    fields = {f"comment-{criterion.id}": HOSTILE for criterion in engine.flows.catalog.evaluation_rubric.criteria}
    fields.update({"overall-comment": HOSTILE, "evaluator-name": HOSTILE, "evaluator-title": HOSTILE[:120]})
    async with client_for(engine) as client:
        shown = await open_form(client, token)
        returned = await send_form(client, token, valid_form(engine, csrf_of(shown.text), consent=None, **fields))

    for page in (shown.text, returned.text):
        assert "<script>" not in page
        assert "<b onmouseover" not in page
        assert str(escape(HOSTILE)) in page
    assert returned.text.count(str(escape(HOSTILE))) >= len(fields) + 3


async def test_wrong_content_type_rejected(engine, token):
    async with client_for(engine) as client:
        csrf = csrf_of((await open_form(client, token)).text)
        response = await client.post(f"/evaluate/{token}", files={"upload": ("a.txt", b"x")},
                                     data=valid_form(engine, csrf))

    assert response.status_code == 415
    assert evaluation_submissions(engine) == []


async def test_oversized_body_rejected(engine, token):
    limit = form.max_body_bytes(engine.flows.catalog.evaluation_rubric)
    async with client_for(engine) as client:
        csrf = csrf_of((await open_form(client, token)).text)
        response = await send_form(client, token, valid_form(engine, csrf, **{"overall-comment": "z" * limit}))

    assert response.status_code == 413
    assert evaluation_submissions(engine) == []


@pytest.mark.parametrize("extra", ["&recommendation=not-recommend", "&overall-comment=%FF%FE", "&x=1" * 40],
                         ids=["duplicate field", "invalid UTF-8", "too many fields"])
async def test_malformed_body_rejected(engine, token, extra):
    async with client_for(engine) as client:
        csrf = csrf_of((await open_form(client, token)).text)
        body = urlencode(valid_form(engine, csrf)) + extra
        response = await client.post(f"/evaluate/{token}", content=body,
                                     headers={"content-type": "application/x-www-form-urlencoded"})

    assert response.status_code == 400
    assert "The form could not be read" in response.text
    assert evaluation_submissions(engine) == []


async def test_token_stored_only_as_hash(engine, token):
    with engine.session_factory() as session:
        row = session.scalar(select(EvaluationRequest))
        values = [str(getattr(row, column.key)) for column in EvaluationRequest.__table__.columns]

    assert row.token_sha256 == hash_token(token)
    assert all(token not in value for value in values)


async def test_plan_answers_untouched_by_form(engine, token):
    async with client_for(engine) as client:
        csrf = csrf_of((await open_form(client, token)).text)
        await send_form(client, token, valid_form(engine, csrf))

    learner = Chat(engine, "ana").learner()
    assert learner.answers["target_role"] == plan_answers()["target_role"]


async def test_form_posts_to_its_own_link(engine, token):
    async with client_for(engine) as client:
        page = (await open_form(client, token)).text

    assert f'<form method="post" action="{token}" novalidate>' in page


async def test_evaluation_on_postgres(postgres_engine):
    token = request_link(Chat(postgres_engine, "ana"))
    async with client_for(postgres_engine) as client:
        csrf = csrf_of((await open_form(client, token)).text)
        sent = await send_form(client, token, valid_form(postgres_engine, csrf))
        again = await send_form(client, token, valid_form(postgres_engine, csrf))

    assert sent.status_code == 200
    assert again.status_code == 410
    [submission] = evaluation_submissions(postgres_engine)
    assert submission.status == "pending"
    assert load_requests(postgres_engine)[0].response["recommendation"] == "recommend"


def test_access_log_hides_token(engine, token):
    web_routes(engine)
    access_logger = logging.getLogger("uvicorn.access")
    record = access_logger.makeRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                                      ("127.0.0.1:5000", "GET", f"/evaluate/{token}?x=1", "1.1", 200), None)

    for log_filter in access_logger.filters:
        log_filter.filter(record)

    assert token not in record.getMessage()
    assert '"GET /evaluate/<token>?x=1 HTTP/1.1" 200' in record.getMessage()
    assert sum(isinstance(entry, HideLinkTokens) for entry in access_logger.filters) == 1


async def test_evaluation_after_approval_keeps_item_approved(engine, token):
    with engine.session_factory() as session, session.begin():
        session.execute(update(PathwayItem).where(PathwayItem.item_key == ITEM_KEY).values(status="approved"))

    async with client_for(engine) as client:
        csrf = csrf_of((await open_form(client, token)).text)
        response = await send_form(client, token, valid_form(engine, csrf))

    assert response.status_code == 200
    assert find_item(engine, "ana", ITEM_KEY).status == "approved"
    assert evaluation_submissions(engine)[0].status == "pending"


async def test_head_answers_like_get(engine, token):
    from bot.evaluation_requests import LINK_PATH

    async with client_for(engine) as client:
        response = await client.head(LINK_PATH + token)

    assert response.status_code == 200
    assert response.headers["referrer-policy"] == "no-referrer"
