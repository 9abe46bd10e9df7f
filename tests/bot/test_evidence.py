"""Submitting evidence: reflections, links and files, the preview, drafts."""

from __future__ import annotations

import hashlib
import socket

import pytest
from sqlalchemy import select

from bot.app import build_engine
from bot.events import Attachment
from bot.files import file_path
from bot.models import Submission
from tests.bot.scripted import REFLECTION, Chat, find_item


@pytest.fixture
def chat(engine) -> Chat:
    chat = Chat(engine)
    chat.finish_plan()
    return chat


def start_item(chat: Chat, item_key: str, kind: str | None = None) -> None:
    item = find_item(chat.engine, chat.user, item_key)
    chat.send("/submit")
    chat.press(f"submit_item:{item.id}")
    if kind is not None:
        chat.press(f"submit_kind:{kind}")


def submissions(engine) -> list[Submission]:
    with engine.session_factory() as session:
        return session.scalars(select(Submission).order_by(Submission.id)).all()


def pdf(size: int = 2048, name: str = "confirmation.pdf", data: bytes | None = None) -> Attachment:
    content = data if data is not None else b"%PDF-1.4 " + b"x" * (size - 9)
    return Attachment(filename=name, content_type="application/pdf", size=len(content), data=content)


def test_submit_before_plan_refused(engine):
    chat = Chat(engine)
    chat.answer_until("values")

    chat.send("/submit")

    assert "finish your career action plan first" in chat.texts()[0]
    assert chat.state() == "values"


def test_submit_lists_items_and_shows_rubric(chat):
    chat.send("/submit")
    listing = chat.texts()[0]

    assert "1. Level 1: Use career services" in listing
    assert "10. Level 3: Write a final self-reflection" in listing
    assert chat.state() == "submit_item"

    chat.send("1")
    details = chat.texts()[0]
    assert "Reviewers check these criteria:" in details
    assert "1. Names the career service used" in details
    assert chat.state() == "submit_kind"
    assert [button.action for button in chat.last.messages[-1].buttons] == [
        "submit_kind:reflection", "submit_kind:file"]


def test_reflection_length_limits_from_catalog(chat):
    start_item(chat, "use-career-services", "reflection")

    chat.send("Too short.")
    assert chat.texts()[0] == "That is 10 characters; please write at least 200."
    assert chat.state() == "submit_input"

    chat.send("z" * 3001)
    assert chat.texts()[0] == "That is 3001 characters; please keep it to 3000 at most."
    assert chat.state() == "submit_input"
    assert submissions(chat.engine) == []


def test_reflection_preview_and_send(chat):
    start_item(chat, "use-career-services", "reflection")

    chat.send(REFLECTION)
    preview = chat.texts()[0]
    assert "Please check your evidence for Use career services (A written reflection)" in preview
    assert REFLECTION.strip()[:80] in preview
    assert [button.action for button in chat.last.messages[0].buttons] == [
        "submit_confirm:send", "submit_confirm:change", "submit_confirm:later"]
    assert submissions(chat.engine)[0].status == "draft"

    chat.press("submit_confirm:send")
    stored = submissions(chat.engine)[0]
    assert stored.status == "pending"
    assert stored.submitted_at is not None
    assert stored.text == REFLECTION.strip()
    assert find_item(chat.engine, "ana", "use-career-services").status == "submitted"
    assert "Sent!" in chat.texts()[0]
    card = next(message for message in chat.last.messages if message.kind == "review_card")
    assert card.chat_id == "reviewers"
    assert card.ref == f"submission:{stored.id}"


def test_send_shows_next_step(chat):
    start_item(chat, "use-career-services", "reflection")
    chat.send(REFLECTION)

    chat.press("submit_confirm:send")

    own = [message for message in chat.last.messages if message.chat_id == "ana"]
    assert own[0].text.startswith("Sent!")
    assert own[-1].text.startswith("Next step: Explore career options")
    assert [button.action for button in own[-1].buttons] == ["home:submit", "home:pathway"]


def test_send_last_item_says_waiting(chat):
    items = [item for item in chat.learner().items if item.active]
    for item in items[:-1]:
        chat.submit_reflection(item.item_key)

    chat.submit_reflection(items[-1].item_key)

    own = [message for message in chat.last.messages if message.chat_id == "ana"]
    assert own[-1].text == chat.engine.flows.texts("home_waiting")


def test_link_rejections_then_accepted(chat):
    start_item(chat, "explore-career-options", "link")
    bad = {
        "javascript:alert(1)": "Only web links",
        "file:///etc/passwd": "Only web links",
        "data:text/html,hi": "Only web links",
        "http://localhost/": "private or local address",
        "http://127.0.0.1/": "private or local address",
        "http://10.0.0.1/": "private or local address",
        "http://169.254.169.254/latest/": "private or local address",
        "http://[::1]/": "private or local address",
        "http://2130706433/": "private or local address",
        "not a link": "isn't a valid web link",
    }

    for url, reason in bad.items():
        chat.send(url)
        assert reason in chat.texts()[0], url
        assert chat.state() == "submit_input"

    chat.send("https://example.org/my-research")
    assert "Link: https://example.org/my-research" in chat.texts()[0]
    assert submissions(chat.engine)[0].url == "https://example.org/my-research"


def test_link_never_fetched(chat, monkeypatch):
    start_item(chat, "explore-career-options", "link")
    lookups: list = []
    real_getaddrinfo = socket.getaddrinfo

    def recording_getaddrinfo(*args, **kwargs):
        lookups.append(args[0])
        return real_getaddrinfo(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording_getaddrinfo)
    chat.send("https://example.org/report")
    chat.press("submit_confirm:send")

    assert lookups == []


def test_file_stored_with_digest_and_size(chat, settings):
    start_item(chat, "use-career-services", "file")
    attachment = pdf(4096)

    chat.send(attachment=attachment)

    digest = hashlib.sha256(attachment.data).hexdigest()
    stored = submissions(chat.engine)[0]
    assert stored.kind == "file"
    assert stored.file_sha256 == digest
    assert stored.file_size == 4096
    assert stored.file_name == "confirmation.pdf"
    assert file_path(settings.files_dir, digest).read_bytes() == attachment.data
    assert f"File confirmation.pdf (4 KB, SHA-256 {digest})" in chat.texts()[0]


def test_file_type_rejected(chat):
    start_item(chat, "use-career-services", "file")

    chat.send(attachment=Attachment(filename="setup.exe", content_type=None, size=10, data=b"MZ" * 5))

    assert chat.texts()[0] == "Files of type .exe are not accepted here. Allowed types: pdf, png, jpg, jpeg."
    assert chat.state() == "submit_input"
    assert submissions(chat.engine) == []


def test_file_too_large_rejected(chat, settings):
    start_item(chat, "use-career-services", "file")
    limit = 10 * 1024 * 1024

    chat.send(attachment=pdf(limit + 1))
    assert "The limit is 10 MB" in chat.texts()[0]

    chat.send(attachment=Attachment(filename="huge.pdf", content_type="application/pdf", size=50 * 1024 * 1024,
                                    data=None))
    assert "The limit is 10 MB" in chat.texts()[0]
    assert submissions(chat.engine) == []
    assert not settings.files_dir.exists() or not any(settings.files_dir.rglob("*"))


def test_file_at_limit_accepted(chat):
    start_item(chat, "use-career-services", "file")

    chat.send(attachment=pdf(10 * 1024 * 1024))

    assert chat.state() == "submit_confirm"


def test_empty_file_rejected(chat):
    start_item(chat, "use-career-services", "file")

    chat.send(attachment=pdf(data=b""))

    assert chat.texts()[0] == "That file is empty. Please send the file again."
    assert chat.state() == "submit_input"


@pytest.mark.parametrize("name, shown", [
    ("proof\nApproved by Rita.pdf", "proof Approved by Rita.pdf"),
    ("\x1b[31mred\x07.pdf", "[31mred.pdf"),
    ("invoice\u202efdp.pdf", "invoicefdp.pdf"),
    ("\u200b\u200b.pdf", ".pdf"),
])
def test_file_name_cleaned(chat, name, shown):
    start_item(chat, "use-career-services", "file")

    chat.send(attachment=pdf(name=name))

    [submission] = submissions(chat.engine)
    assert submission.file_name == shown
    assert f"File {shown} (" in chat.texts()[-1]


def test_failed_download_asks_again(chat):
    start_item(chat, "use-career-services", "file")

    chat.send(attachment=Attachment(filename="proof.pdf", content_type="application/pdf", size=2048, data=None,
                                    download_failed=True))

    assert chat.texts()[0] == chat.engine.flows.texts("file_download_failed")
    assert chat.texts()[-1].startswith("Send the file")
    assert chat.state() == "submit_input"
    assert submissions(chat.engine) == []


def test_text_when_file_expected(chat):
    start_item(chat, "use-career-services", "file")

    chat.send("here it is")

    assert "waiting for a file" in chat.texts()[0]
    assert chat.state() == "submit_input"


def test_file_when_text_expected(chat):
    start_item(chat, "use-career-services", "reflection")

    chat.send(attachment=pdf())

    assert "so I need text, not a file" in chat.texts()[0]
    assert chat.state() == "submit_input"


def test_plan_kind_drafts_collected_plan(chat):
    start_item(chat, "write-career-action-plan", "plan")

    assert chat.state() == "submit_confirm"
    draft = submissions(chat.engine)[0]
    assert draft.kind == "plan"
    assert "Target role or field: software developer" in draft.text
    assert "Self-rating: Critical Thinking: 2/5" in draft.text


def test_change_returns_to_kind(chat):
    start_item(chat, "use-career-services", "reflection")
    chat.send(REFLECTION)

    chat.press("submit_confirm:change")

    assert chat.state() == "submit_kind"
    chat.press("submit_kind:file")
    chat.send(attachment=pdf())
    drafts = submissions(chat.engine)
    assert len(drafts) == 1
    assert drafts[0].kind == "file"
    assert drafts[0].text is None


def test_back_from_confirm_asks_again(chat):
    start_item(chat, "use-career-services", "reflection")
    chat.send(REFLECTION)

    chat.send("/back")

    assert chat.state() == "submit_input"
    assert "Type your reflection" in chat.texts()[-1]


def test_back_from_plan_confirm_does_not_ask_file(chat):
    start_item(chat, "write-career-action-plan", "plan")

    chat.send("/back")

    assert "attachment" not in chat.joined()
    assert chat.state() in ("submit_kind", "submit_item")


def test_keep_as_draft_then_resume(chat):
    start_item(chat, "use-career-services", "reflection")
    chat.send(REFLECTION)

    chat.press("submit_confirm:later")

    assert chat.state() == "home"
    assert "Your draft for Use career services is saved" in chat.texts()[0]
    chat.send("/submit")
    assert "1. Level 1: Use career services (draft saved)" in chat.texts()[0]


def test_draft_survives_cancel_and_restart(chat, settings):
    start_item(chat, "use-career-services", "reflection")
    chat.send(REFLECTION)
    chat.send("/cancel")
    assert chat.texts()[0] == "Cancelled. Anything you drafted is kept."
    assert chat.state() == "home"
    chat.engine.session_factory.kw["bind"].dispose()

    restarted = build_engine(settings)
    try:
        again = Chat(restarted)
        item = find_item(restarted, "ana", "use-career-services")
        again.send("/submit")
        again.press(f"submit_item:{item.id}")

        assert again.state() == "submit_confirm"
        assert REFLECTION.strip()[:80] in again.texts()[-1]
        again.press("submit_confirm:send")
        assert [entry.status for entry in submissions(restarted)] == ["pending"]
    finally:
        restarted.session_factory.kw["bind"].dispose()


def test_cancel_mid_input_keeps_nothing_unsaved(chat):
    start_item(chat, "use-career-services", "reflection")

    chat.send("/cancel")

    assert chat.state() == "home"
    assert submissions(chat.engine) == []
    assert "Next step" in chat.texts()[-1]


def test_submit_by_argument(chat):
    chat.send("/submit 10")

    assert chat.state() == "submit_input"
    assert "Write a final self-reflection" in chat.texts()[0]
    assert "Type your reflection in one message (500 to 5000 characters)." in chat.texts()[-1]


def test_home_submit_button(chat):
    chat.press("home:submit")

    assert chat.state() == "submit_item"


def test_submitted_item_not_offered_again(chat):
    chat.submit_reflection("use-career-services")

    chat.send("/submit")

    assert "Use career services" not in chat.texts()[0]


def test_typed_number_picks_listed_item(chat):
    chat.submit_reflection("use-career-services")
    chat.send("/submit")
    listing = chat.texts()[0].splitlines()

    for number in (1, 2, 3):
        chat.send("/submit")
        chat.send(str(number))
        listed_title = listing[number].split(": ", 1)[1]
        assert chat.texts()[0].startswith(listed_title + " (Level"), number
        chat.send("/cancel")


def test_stale_item_button_not_read_as_number(chat):
    first = find_item(chat.engine, chat.user, "use-career-services")
    chat.submit_reflection("use-career-services")
    chat.send("/submit")

    chat.press(f"submit_item:{first.id}")

    assert chat.texts()[0] == chat.engine.flows.texts("button_expired")
    assert chat.state() == "submit_item"


def test_nothing_open_to_submit(chat, engine):
    for item in [item for item in chat.learner().items if item.active]:
        chat.submit_reflection(item.item_key)

    chat.send("/submit")

    assert "There is nothing to submit right now" in chat.texts()[0]
    assert chat.state() == "home"
    assert "with the reviewers" in chat.texts()[-1]


def test_home_free_text_explains(chat):
    chat.send("what now?")

    assert chat.texts()[0] == "I'm not asking a question right now, so I didn't save that. Type /help to see what you can do."
    assert "Next step" in chat.texts()[-1]
