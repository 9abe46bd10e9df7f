"""Reviewers: approving, requesting changes with per-criterion results, and who may decide."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from bot import outbox
from bot.models import OutboxMessage, ReviewDecision, ReviewDraft, Submission
from tests.bot.scripted import Chat, approve, find_item


@pytest.fixture
def ana(engine) -> Chat:
    chat = Chat(engine)
    chat.finish_plan()
    return chat


@pytest.fixture
def submission_id(ana) -> int:
    return ana.submit_reflection("use-career-services")


@pytest.fixture
def reviewer(engine) -> Chat:
    return Chat(engine, "reviewer", display_name="Rita")


def decisions(engine) -> list[ReviewDecision]:
    with engine.session_factory() as session:
        return session.scalars(select(ReviewDecision).order_by(ReviewDecision.id)).all()


def submission(engine, submission_id: int) -> Submission:
    with engine.session_factory() as session:
        return session.get(Submission, submission_id)


def request_changes(reviewer: Chat, submission_id: int, results: list[bool], feedback: str) -> None:
    reviewer.press(f"rv:c:{submission_id}")
    for number, met in enumerate(results, start=1):
        reviewer.press(f"rv:m:{submission_id}:{number}:{int(met)}")
    reviewer.send(feedback)


def test_card_shows_rubric_and_buttons(ana, submission_id):
    card = next(message for message in ana.last.messages if message.kind == "review_card")

    assert f"Submission #{submission_id} from Ana" in card.text
    assert "Level 1: Use career services" in card.text
    assert "1. Names the career service used" in card.text
    assert "Earlier decisions on this item:\n(none)" in card.text
    assert [button.action for button in card.buttons] == [f"rv:a:{submission_id}", f"rv:c:{submission_id}"]


def test_approve_stores_decision(engine, ana, submission_id, reviewer):
    messages = reviewer.press(f"rv:a:{submission_id}")

    [decision] = decisions(engine)
    assert decision.decision == "approved"
    assert decision.reviewer_key == "console:reviewer"
    assert decision.reviewer_name == "Rita"
    assert decision.decided_at is not None
    assert decision.criteria == {"service-named": True, "advice-summarized": True, "next-step-stated": True}
    assert decision.feedback == ""
    assert submission(engine, submission_id).status == "approved"
    assert find_item(engine, "ana", "use-career-services").status == "approved"
    to_learner = [message.text for message in messages if message.chat_id == "ana"]
    assert "Good news: your evidence for Use career services was approved." in to_learner
    update = next(message for message in messages if message.edit_ref == f"submission:{submission_id}")
    assert update.chat_id == "reviewers"
    assert "Approved by Rita at" in update.text
    assert update.buttons == ()


def test_request_changes_with_criteria_and_feedback(engine, ana, submission_id, reviewer):
    reviewer.press(f"rv:c:{submission_id}")
    first = reviewer.last.messages[0]
    assert "criterion 1 of 3" in first.text
    assert [button.action for button in first.buttons] == [f"rv:m:{submission_id}:1:1", f"rv:m:{submission_id}:1:0"]

    reviewer.press(f"rv:m:{submission_id}:1:1")
    reviewer.press(f"rv:m:{submission_id}:2:0")
    reviewer.press(f"rv:m:{submission_id}:3:1")
    assert "write your feedback for submission" in reviewer.texts()[0]
    assert decisions(engine) == []

    messages = reviewer.send("Please name two concrete pieces of advice.")

    [decision] = decisions(engine)
    assert decision.decision == "changes_requested"
    assert decision.criteria == {"service-named": True, "advice-summarized": False, "next-step-stated": True}
    assert decision.feedback == "Please name two concrete pieces of advice."
    assert find_item(engine, "ana", "use-career-services").status == "changes_requested"
    notice = next(message.text for message in messages if message.chat_id == "ana")
    assert "A reviewer asked for changes to Use career services" in notice
    assert "Please name two concrete pieces of advice." in notice
    assert "- Summarizes at least two specific points of advice or information from the session.: Not met" in notice
    assert "- States at least one concrete next step that the learner will take as a result.: Met" in notice


def test_criteria_answered_by_typing(engine, ana, submission_id, reviewer):
    reviewer.press(f"rv:c:{submission_id}")

    reviewer.send("maybe")
    assert reviewer.texts()[0] == "Please answer met or not met."
    assert "criterion 1 of 3" in reviewer.texts()[1]
    reviewer.send("met")
    reviewer.send("not met")
    reviewer.send("yes")
    reviewer.send("Add the date of the workshop.")

    [decision] = decisions(engine)
    assert decision.criteria == {"service-named": True, "advice-summarized": False, "next-step-stated": True}


@pytest.mark.parametrize("blank", ["", "   ", "\u200b\x00"])
def test_feedback_required(engine, ana, submission_id, reviewer, blank):
    request_changes(reviewer, submission_id, [True, False, True], blank)

    assert decisions(engine) == []
    assert "Feedback is required" in reviewer.joined()
    reviewer.send("Now with feedback.")
    assert decisions(engine)[0].feedback == "Now with feedback."


def test_feedback_control_characters_stripped(engine, ana, submission_id, reviewer):
    request_changes(reviewer, submission_id, [True, False, True], "Add\x00 dates\x07.")

    assert decisions(engine)[0].feedback == "Add dates."


@pytest.mark.parametrize("blank", ["", "   ", "\u200b\x00", "\u2060\ufeff"])
def test_form_feedback_required(engine, ana, submission_id, reviewer, blank):
    reviewer.send(blank, action=f"rv:f:{submission_id}:101")

    assert decisions(engine) == []
    assert "Feedback is required" in reviewer.joined()


def test_form_feedback_control_characters_stripped(engine, ana, submission_id, reviewer):
    reviewer.send("Add\x00 dates\x07.", action=f"rv:f:{submission_id}:101")

    assert decisions(engine)[0].feedback == "Add dates."


def test_learner_sees_feedback_and_resubmits(engine, ana, submission_id, reviewer):
    request_changes(reviewer, submission_id, [True, False, True], "Name two pieces of advice.")

    ana.send("/pathway")
    assert "[!] Use career services - changes requested" in ana.texts()[0]
    assert "the reviewer asked for changes to Use career services" in ana.texts()[-1]
    second_id = ana.submit_reflection("use-career-services")

    card = next(message for message in ana.last.messages if message.kind == "review_card")
    assert second_id != submission_id
    assert "Earlier decisions on this item:\n- Changes requested by Rita on" in card.text
    assert "Name two pieces of advice." in card.text

    reviewer.press(f"rv:a:{second_id}")
    with engine.session_factory() as session:
        statuses = session.scalars(select(Submission.status).order_by(Submission.id)).all()
    assert statuses == ["changes_requested", "approved"]
    assert [decision.decision for decision in decisions(engine)] == ["changes_requested", "approved"]
    assert find_item(engine, "ana", "use-career-services").status == "approved"


def test_own_submission_refused(engine):
    reviewer = Chat(engine, "reviewer")
    reviewer.send("/start")
    reviewer.finish_plan()
    own_id = reviewer.submit_reflection("use-career-services")

    messages = reviewer.press(f"rv:a:{own_id}")

    assert [message.text for message in messages] == ["You can't review your own submission."]
    assert decisions(engine) == []
    reviewer.press(f"rv:c:{own_id}")
    assert reviewer.texts() == ["You can't review your own submission."]


def test_non_reviewer_refused(engine, ana, submission_id):
    bo = Chat(engine, "bo")

    for action in (f"rv:a:{submission_id}", f"rv:c:{submission_id}", f"rv:m:{submission_id}:1:1"):
        messages = bo.press(action)
        assert [message.text for message in messages] == ["Only configured reviewers can decide on submissions."]
    ana.press(f"rv:a:{submission_id}")
    assert ana.texts() == ["Only configured reviewers can decide on submissions."]
    assert decisions(engine) == []


def test_first_reviewer_wins(engine, ana, submission_id, reviewer):
    second = Chat(engine, "reviewer2", display_name="Sam")
    reviewer.press(f"rv:a:{submission_id}")

    messages = second.press(f"rv:c:{submission_id}")

    [decision] = decisions(engine)
    assert decision.reviewer_key == "console:reviewer"
    stamp = decision.decided_at.strftime("%Y-%m-%d %H:%M UTC")
    assert [message.text for message in messages] == [
        f"Submission #{submission_id} was already decided: Approved by Rita at {stamp}."]
    assert messages[0].ephemeral_user == "reviewer2"


def test_first_wins_over_open_change_request(engine, ana, submission_id, reviewer):
    second = Chat(engine, "reviewer2", display_name="Sam")
    second.press(f"rv:c:{submission_id}")
    second.press(f"rv:m:{submission_id}:1:0")
    reviewer.press(f"rv:a:{submission_id}")

    second.press(f"rv:m:{submission_id}:2:0")
    assert "was already decided: Approved by Rita" in second.texts()[0]
    second.send("my feedback")

    assert "was already decided: Approved by Rita" in second.texts()[0]
    assert [decision.decision for decision in decisions(engine)] == ["approved"]
    with engine.session_factory() as session:
        assert session.scalars(select(ReviewDraft)).all() == []


def test_button_pressed_twice(engine, ana, submission_id, reviewer):
    reviewer.press(f"rv:a:{submission_id}")

    messages = reviewer.press(f"rv:a:{submission_id}")

    assert len(decisions(engine)) == 1
    assert "was already decided" in messages[0].text
    assert not any(message.chat_id == "ana" for message in messages)


def test_redelivered_press_is_duplicate(engine, ana, submission_id):
    from tests.conftest import make_event

    event = make_event("reviewer", action=f"rv:a:{submission_id}", update_id="press-1")
    engine.handle(event)

    assert engine.handle(event).duplicate
    assert len(decisions(engine)) == 1


def test_criterion_button_without_request_is_stale(engine, ana, submission_id, reviewer):
    messages = reviewer.press(f"rv:m:{submission_id}:1:1")

    assert messages[0].text == "That button belongs to a question that was already answered."
    assert decisions(engine) == []


@pytest.mark.parametrize("action", ["rv:", "rv:a", "rv:a:x", "rv:z:1", "rv:m:1:9:1", "rv:m:1:1:7", "rv:a:²",
                                    "rv:a:99999999999999999999999"])
def test_malformed_review_actions(engine, ana, submission_id, reviewer, action):
    reviewer.press(f"rv:c:{submission_id}") if action.startswith("rv:m") else None

    messages = reviewer.press(action)

    assert messages
    assert decisions(engine) == []


def test_cancel_change_request(engine, ana, submission_id, reviewer):
    reviewer.press(f"rv:c:{submission_id}")

    reviewer.send("/cancel")

    assert reviewer.texts() == [f"Change request for submission #{submission_id} cancelled; nothing was sent."]
    reviewer.send("hello")
    assert decisions(engine) == []
    assert "You are set up as a reviewer" in reviewer.texts()[0]


def test_queue_and_review_commands(engine, ana, submission_id, reviewer):
    reviewer.send("/queue")
    assert "1 submission(s) waiting for review" in reviewer.texts()[0]
    assert f"#{submission_id} Ana: Use career services" in reviewer.texts()[0]

    reviewer.send(f"/review {submission_id}")
    shown = reviewer.last.messages[0]
    assert f"Submission #{submission_id} from Ana" in shown.text
    assert [button.action for button in shown.buttons] == [f"rv:a:{submission_id}", f"rv:c:{submission_id}"]

    reviewer.press(f"rv:a:{submission_id}")
    reviewer.send(f"/review {submission_id}")
    assert "Approved by Rita at" in reviewer.texts()[0]
    assert reviewer.last.messages[0].buttons == ()


def test_sent_review_view_keeps_no_evidence(engine, ana, submission_id, reviewer):
    reviewer.send(f"/review {submission_id}")
    [outbox_id] = reviewer.last.outbox_ids
    evidence = submission(engine, submission_id).text
    assert reviewer.last.messages[0].extra["verbatim"] == [evidence]

    outbox.mark_sent(engine.session_factory, outbox_id, platform_message_id="m-1")

    with engine.session_factory() as session:
        stored = session.get(OutboxMessage, outbox_id).payload
    assert evidence not in json.dumps(stored, ensure_ascii=False)


def test_review_unknown_submission(engine, ana, submission_id, reviewer):
    messages = reviewer.send("/review 999")

    assert messages[0].text.startswith("There is no submission #999 to review.")
    assert "/queue" in messages[0].text


@pytest.mark.parametrize("argument", ["", "abc", "²", "99999999999999999999999"])
def test_review_without_number_explains(engine, ana, submission_id, reviewer, argument):
    messages = reviewer.send(f"/review {argument}".strip())

    assert messages[0].text == engine.flows.texts("review_usage")


def test_review_draft_not_visible(engine, ana, reviewer):
    item = find_item(engine, "ana", "use-career-services")
    ana.send("/submit")
    ana.press(f"submit_item:{item.id}")
    ana.press("submit_kind:reflection")
    ana.send("x" * 300)
    with engine.session_factory() as session:
        draft_id = session.scalar(select(Submission.id))

    reviewer.send(f"/review {draft_id}")
    assert "There is no submission" in reviewer.texts()[0]
    reviewer.press(f"rv:a:{draft_id}")
    assert "There is no submission" in reviewer.texts()[0]


def test_group_text_without_request_ignored(engine, ana, submission_id):
    group = Chat(engine, "reviewer", chat_id="-100reviewers", chat_type="group")

    assert group.send("looks good to me") == []


def test_group_change_request_tied_to_reviewer(engine, ana, submission_id):
    rita = Chat(engine, "reviewer", chat_id="-100reviewers", chat_type="group", display_name="Rita")
    sam = Chat(engine, "reviewer2", chat_id="-100reviewers", chat_type="group", display_name="Sam")
    rita.press(f"rv:c:{submission_id}")

    assert sam.send("chatting about lunch") == []
    for number in (1, 2, 3):
        rita.press(f"rv:m:{submission_id}:{number}:0")
    sam.send("still chatting")
    rita.send("Please rewrite it with dates.")

    [decision] = decisions(engine)
    assert decision.reviewer_key == "console:reviewer"
    assert decision.feedback == "Please rewrite it with dates."


def test_file_card_carries_document(engine, ana, reviewer, settings):
    from bot.events import Attachment

    item = find_item(engine, "ana", "use-career-services")
    ana.send("/submit")
    ana.press(f"submit_item:{item.id}")
    ana.press("submit_kind:file")
    ana.send(attachment=Attachment(filename="slides.pdf", content_type="application/pdf", size=5, data=b"%PDF1"))
    ana.press("submit_confirm:send")

    card = next(message for message in ana.last.messages if message.kind == "review_card")
    assert card.document.filename == "slides.pdf"
    assert card.document.path.startswith(str(settings.files_dir))


def test_approve_helper_by_other_reviewer(engine, ana, submission_id):
    approve(engine, submission_id, "reviewer2")

    assert decisions(engine)[0].reviewer_name == "Reviewer2"
