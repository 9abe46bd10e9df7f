"""Coordinator commands: one-to-one nudges, segment preview and confirm, rules, the log, and role checks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from bot.models import Nudge, NudgeBatch, OutboxMessage
from tests.bot.nudge_setup import (
    clock,  # noqa: F401 - a fixture
    deliver_all,
    learner_with_plan,
    nudges_of,
    only_rules,
    run,
    set_learner,
)
from tests.bot.scripted import Chat

UTC = timezone.utc
NOT_COORDINATOR = "Only program coordinators can use that command."


@pytest.fixture
def coordinator(engine, clock) -> Chat:
    return Chat(engine, "coordinator", display_name="Sam Lee")


@pytest.fixture
def cohort(engine, clock) -> dict[str, Chat]:
    """Ana and Chen at North Campus on Level 1, Bo at South Campus still writing the plan,
    Dee who paused reminders, Eve who blocked the bot; Chen has been silent for 20 days."""
    chats = {
        "ana": learner_with_plan(engine, "ana", name="Ana Silva"),
        "chen": learner_with_plan(engine, "chen", name="Chen Wu"),
        "dee": learner_with_plan(engine, "dee", name="Dee"),
        "eve": learner_with_plan(engine, "eve", name="Eve"),
    }
    bo = Chat(engine, "bo")
    bo.answer_until("interests", campus="South Campus", name="Bo")
    chats["bo"] = bo
    chats["dee"].send("/stop")
    set_learner(engine, "eve", unreachable_since=clock.now)
    set_learner(engine, "chen", last_activity_at=clock.now - timedelta(days=20))
    return chats


def batches(engine) -> list[NudgeBatch]:
    with engine.session_factory() as session:
        return list(session.scalars(select(NudgeBatch).order_by(NudgeBatch.id)))


def coordinator_outbox(engine) -> list[OutboxMessage]:
    with engine.session_factory() as session:
        return list(session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "coordinator")
                                    .order_by(OutboxMessage.id)))


# --- role checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["/nudge 1 Hello", "/nudge_segment all Hello", "/rules", "/pause_rule no-activity",
                                     "/resume_rule no-activity", "/nudge_log", "/report", "/report chart"])
def test_learner_cannot_use_coordinator_commands(engine, cohort, command):
    ana = cohort["ana"]

    ana.send(command)

    assert ana.texts()[0] == NOT_COORDINATOR
    assert ana.state() == "home"
    assert batches(engine) == []


def test_reviewer_cannot_nudge(engine, cohort):
    reviewer = Chat(engine, "reviewer2")

    reviewer.send("/nudge 1 Hello")

    assert reviewer.texts() != []
    assert coordinator_outbox(engine) == []


def test_learner_cannot_press_segment_button(engine, cohort, coordinator):
    preview = coordinator.send("/nudge_segment all Your Level 1 items are due on 20 March.")[0]
    ana = cohort["ana"]

    ana.press(preview.buttons[0].action)

    assert ana.texts()[0] == NOT_COORDINATOR
    assert batches(engine)[0].status == "preview"
    assert coordinator_outbox(engine) == []


def test_other_coordinator_cannot_confirm(engine, cohort, coordinator):
    engine.settings = engine.settings.model_copy(update={"coordinators": ("console:coordinator", "console:kim")})
    preview = coordinator.send("/nudge_segment all Your Level 1 items are due on 20 March.")[0]
    kim = Chat(engine, "kim")

    kim.press(preview.buttons[0].action)

    assert kim.texts() == ["This preview belongs to another coordinator, or it no longer exists."]
    assert batches(engine)[0].status == "preview"


@pytest.mark.parametrize("action", ["nb:", "nb:s", "nb:s:x", "nb:q:1", "nb:s:999"])
def test_malformed_segment_actions(engine, cohort, coordinator, action):
    coordinator.press(action)

    assert coordinator.texts()[0] in (engine.flows.texts("button_expired"), engine.flows.texts("segment_not_yours"))
    assert coordinator_outbox(engine) == []


# --- one learner --------------------------------------------------------------------------------------


def test_nudge_one_learner(engine, cohort, coordinator):
    ana_id = cohort["ana"].learner().id

    coordinator.send(f"/nudge {ana_id} Your resume review is on Thursday 5 March at 10:00; bring a printed copy.")

    assert coordinator.texts() == [f"Your message to Ana Silva (#{ana_id}) is queued and goes out in a moment."]
    [row] = coordinator_outbox(engine)
    assert (row.chat_id, row.learner_id, row.status) == ("ana", ana_id, "pending")
    assert row.payload["text"] == ("Message from Sam Lee, your program coordinator:\n\n"
                                   "Your resume review is on Thursday 5 March at 10:00; bring a printed copy.")
    [nudge] = nudges_of(engine, learner="ana")
    assert (nudge.source, nudge.sent_by, nudge.rule_id, nudge.outbox_id) == (
        "coordinator", "console:coordinator", None, row.id)


@pytest.mark.parametrize("reference", ["#{id}", "ana@example.edu", "ANA@example.edu", "console:ana"])
def test_nudge_finds_learner_by_reference(engine, cohort, coordinator, reference):
    ana_id = cohort["ana"].learner().id

    coordinator.send(f"/nudge {reference.format(id=ana_id)} Hello")

    assert len(nudges_of(engine, learner="ana")) == 1


def test_nudge_reaches_learner_who_paused_reminders(engine, cohort, coordinator):
    dee_id = cohort["dee"].learner().id

    coordinator.send(f"/nudge {dee_id} Your Level 1 plan is due on 20 March.")

    assert "messages from coordinators still reach them" in coordinator.texts()[0]
    [nudge] = nudges_of(engine, learner="dee")
    assert nudge.outbox_id in deliver_all(engine)


def test_nudge_to_blocked_learner_not_queued(engine, cohort, coordinator):
    eve_id = cohort["eve"].learner().id

    coordinator.send(f"/nudge {eve_id} Hello")

    assert coordinator.texts()[0].startswith(f"Eve (#{eve_id}) blocked the bot on 2026-03-02, so nothing was sent.")
    assert nudges_of(engine, learner="eve") == []


def test_nudge_waits_for_learner_quiet_hours(engine, clock, coordinator):
    kenji = learner_with_plan(engine, "kenji", name="Kenji", zone="Asia/Tokyo")
    clock.set(datetime(2026, 3, 2, 14, 30, tzinfo=UTC))  # 23:30 in Tokyo

    coordinator.send(f"/nudge {kenji.learner().id} Good luck tomorrow.")

    assert coordinator.texts()[0] == (f"It is 2026-03-02 23:30 JST for Kenji (#{kenji.learner().id}), in their quiet "
                                      "hours, so your message waits until 2026-03-03 08:00 JST.")
    [nudge] = nudges_of(engine, learner="kenji")
    assert nudge.available_at == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize("argument", ["", "12", "#1"])
def test_nudge_usage(engine, cohort, coordinator, argument):
    coordinator.send(f"/nudge {argument}")

    assert coordinator.texts()[0].startswith("Type /nudge, the learner's number")


def test_nudge_unknown_learner(engine, cohort, coordinator):
    coordinator.send("/nudge 999 Hello")

    assert coordinator.texts()[0].startswith("I found no learner 999.")


def test_nudge_text_too_long(engine, cohort, coordinator):
    coordinator.send("/nudge 1 " + "x" * 2001)

    assert coordinator.texts()[0] == "The message has 2001 characters; keep it to 2000."
    assert coordinator_outbox(engine) == []


# --- segments ---------------------------------------------------------------------------------------------


def test_segment_preview_then_confirm(engine, cohort, coordinator):
    ids = {name: chat.learner().id for name, chat in cohort.items()}

    [preview] = coordinator.send("/nudge_segment campus=north-campus Your Level 1 items are due on 20 March; "
                                 "type /submit to send one.")

    assert preview.text.startswith(f"This message goes to 2 learner(s) matching campus=north-campus: "
                                   f"Ana (#{ids['ana']}), Chen (#{ids['chen']}).\n"
                                   "Skipped: 1 who paused reminders, 1 who blocked the bot.")
    assert "Message from Sam Lee, your program coordinator:" in preview.text
    assert [button.label for button in preview.buttons] == ["Send to 2", "Cancel"]
    assert coordinator_outbox(engine) == []

    [sent] = coordinator.press(preview.buttons[0].action)

    assert sent.text.startswith("Queued for 2 learner(s) matching campus=north-campus.")
    rows = coordinator_outbox(engine)
    assert sorted(row.chat_id for row in rows) == ["ana", "chen"]
    assert all(row.payload["text"].endswith("type /submit to send one.") for row in rows)
    [batch] = batches(engine)
    assert (batch.status, batch.queued_count, batch.skipped_paused, batch.skipped_unreachable) == ("sent", 2, 1, 1)
    with engine.session_factory() as session:
        audit = session.scalars(select(Nudge).where(Nudge.batch_id == batch.id)).all()
    assert {(nudge.learner_id, nudge.outbox_id) for nudge in audit} == {(row.learner_id, row.id) for row in rows}
    assert {nudge.sent_by for nudge in audit} == {"console:coordinator"}


def test_segment_confirm_twice_sends_once(engine, cohort, coordinator):
    [preview] = coordinator.send("/nudge_segment all Your Level 1 items are due on 20 March.")
    coordinator.press(preview.buttons[0].action)

    coordinator.press(preview.buttons[0].action)

    assert coordinator.texts() == ["The message to all was already sent."]
    assert len(coordinator_outbox(engine)) == 3


def test_segment_cancel(engine, cohort, coordinator):
    [preview] = coordinator.send("/nudge_segment all Your Level 1 items are due on 20 March.")

    coordinator.press(preview.buttons[1].action)
    coordinator.press(preview.buttons[0].action)

    assert coordinator.texts() == ["The message to all was cancelled; type /nudge_segment again to send it."]
    assert coordinator_outbox(engine) == []
    assert batches(engine)[0].status == "cancelled"


def test_segment_preview_expires(engine, clock, cohort, coordinator):
    [preview] = coordinator.send("/nudge_segment all Your Level 1 items are due on 20 March.")
    clock.advance(hours=1, minutes=1)

    coordinator.press(preview.buttons[0].action)

    assert coordinator.texts()[0].startswith("This preview is older than 60 minutes, so nothing was sent.")
    assert coordinator_outbox(engine) == []


def test_segment_selected_again_at_confirm(engine, cohort, coordinator):
    [preview] = coordinator.send("/nudge_segment campus=north-campus Your items are due on 20 March.")
    cohort["chen"].send("/stop")

    [sent] = coordinator.press(preview.buttons[0].action)

    assert sent.text.startswith("Queued for 1 learner(s)")
    assert [row.chat_id for row in coordinator_outbox(engine)] == ["ana"]


@pytest.mark.parametrize(("segment", "expected"), [
    ("all", ["ana", "bo", "chen"]),
    ("level=1", ["ana", "chen"]),
    ("state=planning", ["bo"]),
    ("state=working", ["ana", "chen"]),
    ("stalled=14", ["chen"]),
    ("campus=south-campus", ["bo"]),
    ("level=1 stalled=14 campus=north-campus", ["chen"]),
])
def test_segment_filters(engine, cohort, coordinator, segment, expected):
    [preview] = coordinator.send(f"/nudge_segment {segment} Your next step is due on 20 March.")
    coordinator.press(preview.buttons[0].action)

    assert sorted(row.chat_id for row in coordinator_outbox(engine)) == expected


def test_segment_nobody_matches(engine, cohort, coordinator):
    coordinator.send("/nudge_segment state=completed Well done!")

    assert coordinator.texts() == ["No learner who can receive it matches state=completed. "
                                   "Skipped: 0 who paused reminders, 0 who blocked the bot."]
    assert batches(engine) == []


@pytest.mark.parametrize(("argument", "reply"), [
    ("", "Type /nudge_segment, one or more filters"),
    ("level=2", "Type /nudge_segment, one or more filters"),
    ("Hello everyone", "Type /nudge_segment, one or more filters"),
    ("level=7 Hello", "7 is not valid for level=; use 1, 2, 3."),
    ("state=lost Hello", "lost is not valid for state=; use planning, working, changes_requested, waiting_review, "
                         "completed."),
    ("stalled=0 Hello", "0 is not valid for stalled=; use a number of days from 1 to 3650."),
    ("level=\u00b2 Hello", "\u00b2 is not valid for level=; use 1, 2, 3."),
    ("stalled=\u00b2 Hello", "\u00b2 is not valid for stalled=; use a number of days from 1 to 3650."),
    ("stalled=" + "9" * 5000 + " Hello", "9999"),
    ("campus=moon Hello", "moon is not valid for campus=; use north-campus, "),
    ("colour=blue Hello", "colour= is not a filter; use level, state, stalled, campus, or all."),
    ("all level=1 Hello", "all selects every learner; leave out either all or the other filters."),
])
def test_segment_errors(engine, cohort, coordinator, argument, reply):
    coordinator.send(f"/nudge_segment {argument}")

    assert coordinator.texts()[0].startswith(reply)
    assert batches(engine) == []


@pytest.mark.parametrize(("argument", "expected"), [
    ("all All the best for Friday.", ["ana", "bo", "chen"]),
    ("level=1 All the best for Friday.", ["ana", "chen"]),
])
def test_segment_message_may_start_with_all(engine, cohort, coordinator, argument, expected):
    [preview] = coordinator.send(f"/nudge_segment {argument}")
    coordinator.press(preview.buttons[0].action)

    rows = coordinator_outbox(engine)
    assert sorted(row.chat_id for row in rows) == expected
    assert all(row.payload["text"].endswith(":\n\nAll the best for Friday.") for row in rows)


def test_segment_message_keeps_line_breaks(engine, cohort, coordinator):
    [preview] = coordinator.send("/nudge_segment campus=south-campus First line.\nSecond line.")
    coordinator.press(preview.buttons[0].action)

    [row] = coordinator_outbox(engine)
    assert row.payload["text"].endswith("First line.\nSecond line.")


# --- rules and the log ----------------------------------------------------------------------------------------


def test_rules_lists_each_rule(engine, cohort, coordinator):
    coordinator.send("/rules")

    text = coordinator.texts()[0]
    assert text.startswith("6 reminder rule(s), checked every 5 minutes, in priority order:")
    for rule in engine.flows.nudges.rules:
        assert f"\n\n{rule.id}: {rule.type} to {rule.audience}," in text
    assert "target-date-soon: target_date_soon to learner, within 3d, gap 3d, once per occasion. Active." in text
    assert "Not checked yet." in text


def test_rules_shows_last_run_and_due(engine, clock, cohort, coordinator):
    only_rules(engine, "no-activity")
    clock.advance(days=10)
    run(engine)

    coordinator.send("/rules")

    text = coordinator.texts()[0]
    assert "Last check 2026-03-12 11:00 EDT: 2 queued." in text
    assert "Nobody is due now; the next may be from 2026-03-22 11:00 EDT." in text


def test_rules_shows_due_now(engine, clock, cohort, coordinator):
    only_rules(engine, "no-activity")
    clock.advance(days=10)

    coordinator.send("/rules")

    assert "Next check 2026-03-12 11:00 EDT: 2 due now." in coordinator.texts()[0]


def test_pause_and_resume_rule(engine, clock, cohort, coordinator):
    coordinator.send("/pause_rule no-activity")
    assert coordinator.texts() == ["Rule no-activity is paused; it queues nothing until /resume_rule no-activity."]
    coordinator.send("/pause_rule no-activity")
    assert coordinator.texts() == ["Rule no-activity is already paused."]
    coordinator.send("/rules")
    assert "Paused by console:coordinator on 2026-03-02; /resume_rule turns it back on." in coordinator.texts()[0]

    coordinator.send("/resume_rule no-activity")

    assert coordinator.texts() == ["Rule no-activity is active again from its next check."]
    coordinator.send("/resume_rule no-activity")
    assert coordinator.texts() == ["Rule no-activity is already active."]


@pytest.mark.parametrize(("command", "reply"), [
    ("/pause_rule", "Type /pause_rule followed by a rule id: changes-requested, "),
    ("/resume_rule", "Type /resume_rule followed by a rule id: "),
    ("/pause_rule birthday", "There is no rule birthday; the rules are: changes-requested, "),
])
def test_rule_command_errors(engine, cohort, coordinator, command, reply):
    coordinator.send(command)

    assert coordinator.texts()[0].startswith(reply)


def test_nudge_log_shows_results(engine, clock, cohort, coordinator):
    only_rules(engine, "no-activity")
    ids = {name: chat.learner().id for name, chat in cohort.items()}
    coordinator.send(f"/nudge {ids['ana']} Hello Ana")
    coordinator.send(f"/nudge {ids['chen']} Hello Chen")
    deliver_all(engine)
    cohort["ana"].send("/pathway")
    [failed] = [row for row in coordinator_outbox(engine) if row.chat_id == "chen"]
    with engine.session_factory() as session, session.begin():
        row = session.get(OutboxMessage, failed.id)
        row.status, row.last_error = "failed", "403: Forbidden: bot was blocked by the user"
    clock.advance(days=10, hours=6)  # 21:00 in London: Ana's reminder waits for the morning
    run(engine)

    coordinator.send("/nudge_log")

    lines = coordinator.texts()[0].splitlines()
    assert lines[0] == "The latest 4 nudge(s), newest first (times in UTC):"
    assert lines[1] == f"2026-03-12 21:00 rule no-activity to Chen Wu (#{ids['chen']}): waiting, from 2026-03-13 08:00"
    assert lines[2] == f"2026-03-12 21:00 rule no-activity to Ana Silva (#{ids['ana']}): waiting, from 2026-03-13 08:00"
    assert lines[3] == (f"2026-03-02 15:00 console:coordinator to Chen Wu (#{ids['chen']}): failed "
                        "(403: Forbidden: bot was blocked by the user)")
    assert lines[4] == f"2026-03-02 15:00 console:coordinator to Ana Silva (#{ids['ana']}): delivered and answered"


def test_nudge_log_empty(engine, cohort, coordinator):
    coordinator.send("/nudge_log")

    assert coordinator.texts() == ["No nudges yet."]


def test_coordinator_help_lists_nudge_commands(engine, coordinator):
    coordinator.send("/help")

    assert "/nudge_segment FILTERS MESSAGE" in coordinator.joined()
    assert "/pause_rule ID" in coordinator.joined()
