"""Issuing badges in chat: the email-later flow, the baked image, /badges links, /share, /forget."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import delete

from bot import baking, openbadges, sharing
from bot.models import BadgeAssertion
from bot.openbadges import BadgeUrls
from tests.bot.badge_setup import (  # noqa: F401 (make_engine is a fixture)
    assertions_of,
    awards_of,
    client_for,
    earn_item_badge,
    earn_level,
    make_engine,
)
from tests.bot.scripted import Chat, approve, plan_answers

EMAIL_NEEDED = "To issue Use career services as a verifiable badge, I need your email address"


def finish_plan_without_email(chat: Chat) -> None:
    answers = plan_answers()
    chat.send("hello")
    for question in chat.engine.flows.questions:
        chat.send("/skip" if question.state == "email" else answers[question.state])
    assert chat.state() == "home", chat.joined()
    assert chat.learner().email is None


def badge_messages(messages) -> list:
    return [message for message in messages if message.kind == "badge_issued"]


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# --- email later ----------------------------------------------------------------------------


def test_award_without_email_waits(engine):
    chat = Chat(engine, "ana")
    finish_plan_without_email(chat)

    messages = approve(engine, chat.submit_reflection("use-career-services"))

    assert [award.badge_key for award in awards_of(engine)] == ["item:use-career-services"]
    assert assertions_of(engine) == []
    assert any(message.text.startswith(EMAIL_NEEDED) for message in messages)
    assert badge_messages(messages) == []


def test_email_added_later_issues_waiting_badges(engine):
    chat = Chat(engine, "ana")
    finish_plan_without_email(chat)
    approve(engine, chat.submit_reflection("use-career-services"))
    approve(engine, chat.submit_reflection("explore-career-options"))

    chat.send("/edit email")
    messages = chat.send("Ana@Example.edu")

    issued = assertions_of(engine)
    assert [row.badge_key for row in issued] == ["item:use-career-services", "item:explore-career-options"]
    for row in issued:
        assert row.recipient_hash == openbadges.hash_email("ana@example.edu", row.salt)
    sent = badge_messages(messages)
    assert [message.document.filename for message in sent] == ["use-career-services.png",
                                                                 "explore-career-options.png"]
    assert "Saved." in chat.texts()


def test_badges_shows_waiting_line_until_email(engine):
    chat = Chat(engine, "ana")
    finish_plan_without_email(chat)
    approve(engine, chat.submit_reflection("use-career-services"))

    chat.send("/badges")

    assert "- Use career services\n    Not issued yet: type /edit email to add your email address." in chat.joined()
    assert "Verify:" not in chat.joined()


def test_issued_message_carries_baked_png(engine):
    chat = Chat(engine, "ana")
    chat.finish_plan()

    messages = approve(engine, chat.submit_reflection("use-career-services"))

    [message] = badge_messages(messages)
    [assertion] = assertions_of(engine)
    urls = BadgeUrls(engine.settings.public_base_url)
    assert message.chat_id == chat.chat_id
    assert urls.verify_page(assertion.uid) in message.text
    assert message.document.content_type == "image/png"
    baked = json.loads(baking.unbake_png(message.document.content))
    assert baked["id"] == urls.assertion(assertion.uid)
    assert baked["recipient"]["identity"] == assertion.recipient_hash


def test_badges_command_issues_badge_missing_assertion(engine):
    earn_item_badge(engine)
    with engine.session_factory() as session, session.begin():
        session.execute(delete(BadgeAssertion))

    messages = Chat(engine, "ana").send("/badges")

    assert len(badge_messages(messages)) == 1
    assert len(assertions_of(engine)) == 1


# --- /badges links ------------------------------------------------------------------------------


def test_badges_lists_share_links(engine):
    chat = earn_item_badge(engine)
    [assertion] = assertions_of(engine)
    urls = BadgeUrls(engine.settings.public_base_url)

    chat.send("/badges")

    links = chat.texts()[1]
    assert links.startswith("Share your badges")
    assert f"    Verify: {urls.verify_page(assertion.uid)}" in links
    assert f"    Download: {urls.baked_image(assertion.uid, 'png')}" in links
    linkedin = next(line for line in links.splitlines() if "Add to LinkedIn:" in line).split(": ", 1)[1]
    assert linkedin.startswith("https://www.linkedin.com/profile/add?")
    issued = assertion.issued_on
    assert query(linkedin) == {
        "startTask": ["CERTIFICATION_NAME"],
        "name": ["Use career services"],
        "organizationName": [engine.settings.issuer_name],
        "issueYear": [str(issued.year)],
        "issueMonth": [str(issued.month)],
        "certUrl": [urls.verify_page(assertion.uid)],
        "certId": [assertion.uid],
    }


def test_badges_without_awards_sends_no_links(engine):
    chat = Chat(engine, "ana")
    chat.finish_plan()

    chat.send("/badges")

    assert "Share your badges" not in chat.joined()


def test_badges_messages_stay_under_limit(engine):
    chat = Chat(engine, "ana")
    chat.finish_plan()
    for level in (1, 2, 3):
        earn_level(engine, chat, level)
    urls = BadgeUrls(engine.settings.public_base_url)

    chat.send("/badges")

    texts = chat.texts()
    assert all(len(text) <= sharing.MESSAGE_MAX_CHARS for text in texts)
    joined = "\n".join(texts)
    for row in assertions_of(engine):
        assert urls.verify_page(row.uid) in joined
    first_links = next(text for text in texts if text.startswith("Share your badges"))
    assert first_links.splitlines()[1] == "- Career Prepared"


def test_linkedin_url_with_expiry_and_organization_id():
    url = sharing.linkedin_url(
        name="Skill & Badge",
        organization_name="Ignored University",
        organization_id="1337",
        issued=datetime(2026, 3, 9, tzinfo=timezone.utc),
        expires=datetime(2028, 11, 1, tzinfo=timezone.utc),
        cert_url="https://badges.example.edu/verify/abc",
        cert_id="abc",
    )

    assert query(url) == {
        "startTask": ["CERTIFICATION_NAME"],
        "name": ["Skill & Badge"],
        "organizationId": ["1337"],
        "issueYear": ["2026"],
        "issueMonth": ["3"],
        "expirationYear": ["2028"],
        "expirationMonth": ["11"],
        "certUrl": ["https://badges.example.edu/verify/abc"],
        "certId": ["abc"],
    }
    assert "name=Skill%20%26%20Badge&" in url


def test_linkedin_url_leaves_out_empty_parameters():
    url = sharing.linkedin_url(name="Badge", organization_name="", organization_id=None,
                               issued=datetime(2026, 1, 1, tzinfo=timezone.utc), expires=None,
                               cert_url="", cert_id="")

    assert set(query(url)) == {"startTask", "name", "issueYear", "issueMonth"}


def test_linkedin_organization_id_setting(make_engine):
    engine = make_engine(issuer_linkedin_organization_id="424242")
    chat = earn_item_badge(engine)

    chat.send("/badges")

    linkedin = next(line for line in chat.texts()[1].splitlines() if "Add to LinkedIn:" in line)
    parameters = query(linkedin.split(": ", 1)[1])
    assert parameters["organizationId"] == ["424242"]
    assert "organizationName" not in parameters


def test_split_message_keeps_entries_together():
    entries = [f"- Badge {number}\n    Verify: https://example.edu/{'x' * 80}" for number in range(30)]
    text = "Share your badges:\n" + "\n".join(entries)

    parts = sharing.split_message(text, 500)

    assert all(len(part) <= 500 for part in parts)
    assert "\n".join(parts) == text
    assert all(part.startswith(("Share", "- Badge")) for part in parts)


def test_split_message_cuts_overlong_line():
    parts = sharing.split_message("a" * 25, 10)

    assert parts == ["a" * 10, "a" * 10, "a" * 5]


# --- /share and /forget -------------------------------------------------------------------------


def test_share_shows_and_changes_choices(engine):
    chat = Chat(engine, "ana")
    chat.finish_plan()

    chat.send("/share")
    status = chat.texts()[0]
    chat.send("/share name on")
    chat.send("/share files yes")
    learner = chat.learner()
    chat.send("/share maybe")

    assert "- your name: no" in status
    assert "- links to the files you submitted as evidence: no" in status
    assert learner.share_name_on_badges is True
    assert learner.share_files_on_badges is True
    assert chat.texts()[0].startswith("Type /share name on")


def test_share_needs_consent(engine):
    chat = Chat(engine, "ana")
    chat.send("hello")

    chat.send("/share name on")

    assert chat.learner().share_name_on_badges is False


async def test_forget_removes_assertions(engine):
    chat = earn_item_badge(engine)
    [assertion] = assertions_of(engine)

    chat.send("/forget")
    chat.press("forget_confirm:delete")

    assert assertions_of(engine) == []
    async with client_for(engine) as client:
        response = await client.get(BadgeUrls(engine.settings.public_base_url).assertion(assertion.uid))
    assert response.status_code == 410
    assert response.json()["revoked"] is True
    assert response.json()["revocationReason"] == "withdrawn by the learner"
    assert "recipient" not in response.json()
