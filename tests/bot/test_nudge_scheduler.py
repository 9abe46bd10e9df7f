"""Reminder rules firing on a controllable clock: each rule type, gaps, quiet hours, catch-up, opt-outs.

The clock starts on Monday 2 March 2026 at 15:00 UTC (daytime in London and
New York). Most tests keep one shipped rule, so that the numbers they check
come from that rule alone.
"""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from bot import outbox
from bot.app import build_engine
from bot.models import NudgeRuleState, OutboxMessage, Submission
from bot.nudge_scheduler import NudgeRunner, run_once
from tests.bot.nudge_setup import (
    Clock,
    award,
    clock,  # noqa: F401 - a fixture
    deliver_all,
    learner_with_plan,
    next_item,
    nudge_text,
    nudges_of,
    only_rules,
    outbox_row,
    rule_run,
    run,
    set_item,
    set_learner,
    set_target_dates,
)
from tests.bot.scripted import Chat, find_item
from tests.bot.test_review import request_changes

UTC = timezone.utc


@pytest.fixture
def ana(engine, clock) -> Chat:
    return learner_with_plan(engine, "ana")


# --- no activity ---------------------------------------------------------------------------


def test_no_activity_waits_for_threshold(engine, clock, ana):
    only_rules(engine, "no-activity")

    clock.advance(days=9, hours=23)
    assert run(engine).queued == 0
    clock.advance(hours=1)
    summary = run(engine)

    assert rule_run(summary, "no-activity").queued == 1
    [nudge] = nudges_of(engine, learner="ana")
    item = next_item(engine, "ana")
    text = nudge_text(engine, nudge)
    assert f'"{item.title}" (Level {item.level}), planned for {item.target_date.isoformat()}' in text
    assert "10 days since we last heard" in text
    assert nudge.source == "rule"
    assert nudge.subject == "activity"
    assert nudge.available_at == clock.now
    row = outbox_row(engine, nudge.outbox_id)
    assert (row.kind, row.chat_id, row.status) == ("nudge", "ana", "pending")


def test_no_activity_repeats_after_min_gap(engine, clock, ana):
    only_rules(engine, "no-activity")
    clock.advance(days=10)
    run(engine)

    clock.advance(days=9)
    assert run(engine).queued == 0
    clock.advance(days=1)
    assert run(engine).queued == 1

    assert len(nudges_of(engine, learner="ana")) == 2


def test_no_activity_once_per_spell_without_repeats(engine, clock, ana):
    only_rules(engine, "no-activity", repeats=False)
    clock.advance(days=10)
    run(engine)

    clock.advance(days=30)
    assert run(engine).queued == 0
    ana.send("/pathway")
    clock.advance(days=10)
    assert run(engine).queued == 1

    assert len(nudges_of(engine, learner="ana")) == 2


def test_no_activity_skips_learner_without_plan(engine, clock):
    Chat(engine, "bo").answer_until("interests")
    only_rules(engine, "no-activity")
    clock.advance(days=30)

    assert run(engine).queued == 0


def test_no_activity_skips_learner_waiting_for_review(engine, clock, ana):
    only_rules(engine, "no-activity")
    learner = ana.learner()
    for item in learner.items:
        set_item(engine, item.id, status="submitted")
    clock.advance(days=30)

    assert run(engine).queued == 0


# --- changes requested -----------------------------------------------------------------------


def test_changes_requested_until_resubmitted(engine, clock, ana):
    only_rules(engine, "changes-requested")
    submission_id = ana.submit_reflection("use-career-services")
    reviewer = Chat(engine, "reviewer", display_name="Rita")
    request_changes(reviewer, submission_id, [True, False, True], "Name the service you used.")
    requested_on = clock.now.date().isoformat()

    clock.advance(days=2, hours=23)
    assert run(engine).queued == 0
    clock.advance(hours=1)
    assert run(engine).queued == 1
    [nudge] = nudges_of(engine, learner="ana")
    item = find_item(engine, "ana", "use-career-services")
    assert nudge.subject == f"item:{item.id}"
    text = nudge_text(engine, nudge)
    assert f'changes to "{item.title}" on {requested_on}' in text
    assert f"by {item.target_date.isoformat()}" in text

    clock.advance(days=4)
    assert run(engine).queued == 1
    ana.submit_reflection("use-career-services")
    clock.advance(days=10)
    assert run(engine).queued == 0


# --- target dates -------------------------------------------------------------------------------


def test_target_date_soon_once_per_item(engine, clock, ana):
    only_rules(engine, "target-date-soon")
    item = set_target_dates(engine, "ana", date(2026, 3, 6))

    assert run(engine).queued == 0
    clock.advance(days=1)
    assert run(engine).queued == 1
    [nudge] = nudges_of(engine, learner="ana")
    assert nudge.subject == f"item:{item.id}"
    assert "is due on 2026-03-06, in 3 day(s)" in nudge_text(engine, nudge)

    clock.advance(days=2)
    assert run(engine).queued == 0


def test_target_date_soon_uses_local_today(engine, clock):
    only_rules(engine, "target-date-soon")
    learner_with_plan(engine, "kenji", zone="Asia/Tokyo")
    learner_with_plan(engine, "lena", zone="America/Los_Angeles")
    set_target_dates(engine, "kenji", date(2026, 3, 6))
    set_target_dates(engine, "lena", date(2026, 3, 6))
    # 2 March 16:00 UTC: already 3 March in Tokyo (3 days left), still 2 March in Los Angeles (4 days left).
    clock.set(datetime(2026, 3, 2, 16, 0, tzinfo=UTC))

    run(engine)

    assert len(nudges_of(engine, learner="kenji")) == 1
    assert nudges_of(engine, learner="lena") == []


def test_target_date_passed_from_day_after(engine, clock, ana):
    only_rules(engine, "target-date-passed")
    item = set_target_dates(engine, "ana", date(2026, 3, 2))

    assert run(engine).queued == 0
    clock.advance(days=1)
    assert run(engine).queued == 1
    [nudge] = nudges_of(engine, learner="ana")
    assert f'"{item.title}" (Level {item.level}) was 2026-03-02' in nudge_text(engine, nudge)

    clock.advance(days=6)
    assert run(engine).queued == 0
    clock.advance(days=1)
    assert run(engine).queued == 1


def test_approved_item_stops_target_date_nudges(engine, clock, ana):
    only_rules(engine, "target-date-passed")
    item = set_target_dates(engine, "ana", date(2026, 2, 20))
    set_item(engine, item.id, status="approved")

    assert run(engine).queued == 0


# --- next level -------------------------------------------------------------------------------------


def test_next_level_not_started(engine, clock, ana):
    only_rules(engine, "next-level")
    level_one = engine.flows.catalog.level(1)
    award(engine, "ana", level_one.badge.id, "level", clock.now)
    for item in ana.learner().items:
        if item.level == 1:
            set_item(engine, item.id, status="approved")

    clock.advance(days=6)
    assert run(engine).queued == 0
    clock.advance(days=1)
    assert run(engine).queued == 1
    [nudge] = nudges_of(engine, learner="ana")
    first_level_two = next_item(engine, "ana")
    assert first_level_two.level == 2
    assert nudge.subject == "level:2"
    assert f'Level 1, Ana! Level 2 starts with "{first_level_two.title}"' in nudge_text(engine, nudge)

    clock.advance(days=8)
    assert run(engine).queued == 0


def test_next_level_started_is_not_nudged(engine, clock, ana):
    only_rules(engine, "next-level")
    award(engine, "ana", engine.flows.catalog.level(1).badge.id, "level", clock.now)
    level_two = next(item for item in ana.learner().items if item.level == 2)
    with engine.session_factory() as session, session.begin():
        session.add(Submission(learner_id=level_two.learner_id, item_id=level_two.id, kind="reflection",
                               status="draft", text="A start.", created_at=clock.now))
    clock.advance(days=8)

    assert run(engine).queued == 0


# --- reviewers ---------------------------------------------------------------------------------------


def test_review_waiting_nudges_reviewer_chat(engine, clock, ana):
    only_rules(engine, "review-waiting")
    submission_id = ana.submit_reflection("use-career-services")
    clock.advance(hours=10)
    bo = learner_with_plan(engine, "bo")
    bo.submit_reflection("use-career-services")

    clock.advance(hours=37, minutes=59)
    assert run(engine).queued == 0
    clock.advance(minutes=2)
    assert run(engine).queued == 1

    [nudge] = nudges_of(engine, rule_id="review-waiting")
    assert (nudge.learner_id, nudge.platform, nudge.chat_id) == (None, "console", "reviewers")
    assert nudge.subject == f"submission:{submission_id}"
    text = nudge_text(engine, nudge)
    assert text.startswith("1 submission(s) have waited more than two days")
    assert f'/review {submission_id} ("' in text
    assert "waiting since 2026-03-02" in text
    assert outbox_row(engine, nudge.outbox_id).kind == "reviewer_nudge"

    clock.advance(hours=23)
    assert run(engine).queued == 0
    clock.advance(hours=2)
    assert run(engine).queued == 1
    assert "2 submission(s) have waited" in nudge_text(engine, nudges_of(engine, rule_id="review-waiting")[-1])


def test_decided_submission_stops_reviewer_nudge(engine, clock, ana):
    only_rules(engine, "review-waiting")
    submission_id = ana.submit_reflection("use-career-services")
    Chat(engine, "reviewer", display_name="Rita").press(f"rv:a:{submission_id}")
    clock.advance(days=5)

    assert run(engine).queued == 0


# --- quiet hours ---------------------------------------------------------------------------------------


def test_quiet_hours_in_two_zones(engine, clock):
    only_rules(engine, "no-activity")
    learner_with_plan(engine, "ana", zone="Europe/London")
    learner_with_plan(engine, "kenji", zone="Asia/Tokyo")
    clock.set(datetime(2026, 3, 13, 13, 0, tzinfo=UTC))  # 13:00 in London, 22:00 in Tokyo

    summary = run(engine)

    assert rule_run(summary, "no-activity").queued == 2
    assert rule_run(summary, "no-activity").deferred == 1
    [ana_nudge] = nudges_of(engine, learner="ana")
    [kenji_nudge] = nudges_of(engine, learner="kenji")
    assert ana_nudge.available_at == clock.now
    assert kenji_nudge.available_at == datetime(2026, 3, 13, 23, 0, tzinfo=UTC)
    due_now = [outbox_id for outbox_id, _ in outbox.claim_pending(engine.session_factory, "console", now=clock.now)]
    assert ana_nudge.outbox_id in due_now
    assert kenji_nudge.outbox_id not in due_now
    later = outbox.claim_pending(engine.session_factory, "console", now=kenji_nudge.available_at)
    assert kenji_nudge.outbox_id in [outbox_id for outbox_id, _ in later]


def test_quiet_hours_across_spring_forward(engine, clock):
    only_rules(engine, "no-activity")
    learner_with_plan(engine, "ana", zone="Europe/London")
    # Saturday 28 March 2026, 22:00 GMT; the clocks go forward at 01:00 UTC.
    clock.set(datetime(2026, 3, 28, 22, 0, tzinfo=UTC))

    run(engine)

    [nudge] = nudges_of(engine, learner="ana")
    assert nudge.available_at == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)  # 08:00 BST


def test_quiet_hours_across_fall_back(engine, clock):
    only_rules(engine, "no-activity")
    learner_with_plan(engine, "nia", zone="America/New_York")
    # Saturday 31 October 2026, 23:30 EDT; the clocks go back at 06:00 UTC.
    clock.set(datetime(2026, 11, 1, 3, 30, tzinfo=UTC))

    run(engine)

    [nudge] = nudges_of(engine, learner="nia")
    assert nudge.available_at == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)  # 08:00 EST


def test_learner_without_zone_uses_program_zone(engine, clock, ana):
    only_rules(engine, "no-activity")
    set_learner(engine, "ana", timezone=None)
    clock.set(datetime(2026, 3, 13, 3, 0, tzinfo=UTC))  # 23:00 in New York, the program's zone

    run(engine)

    [nudge] = nudges_of(engine, learner="ana")
    assert nudge.available_at == datetime(2026, 3, 13, 12, 0, tzinfo=UTC)  # 08:00 EDT


def test_learner_with_folder_zone_uses_program_zone(engine, clock, ana):
    # "America" is a folder of tzdata, not a zone: ZoneInfo raises IsADirectoryError for it.
    only_rules(engine, "no-activity")
    learner_with_plan(engine, "ben")
    set_learner(engine, "ana", timezone="America")
    clock.set(datetime(2026, 3, 13, 3, 0, tzinfo=UTC))  # 23:00 in New York, the program's zone

    summary = run(engine)

    assert rule_run(summary, "no-activity").queued == 2
    [nudge] = nudges_of(engine, learner="ana")
    assert nudge.available_at == datetime(2026, 3, 13, 12, 0, tzinfo=UTC)  # 08:00 EDT


def test_learner_message_withdraws_waiting_nudge(engine, clock):
    only_rules(engine, "no-activity")
    kenji = learner_with_plan(engine, "kenji", zone="Asia/Tokyo")
    clock.set(datetime(2026, 3, 13, 13, 0, tzinfo=UTC))
    run(engine)
    [nudge] = nudges_of(engine, learner="kenji")

    clock.advance(hours=1)
    kenji.send("/pathway")

    [withdrawn] = nudges_of(engine, learner="kenji")
    assert withdrawn.withdrawn_at == clock.now
    assert withdrawn.outbox_id is None
    with engine.session_factory() as session:
        kinds = session.scalars(select(OutboxMessage.kind).where(OutboxMessage.chat_id == "kenji")).all()
    assert "nudge" not in kinds
    clock.advance(days=1)
    assert run(engine).queued == 0


def test_reply_recorded_on_delivered_nudge(engine, clock, ana):
    only_rules(engine, "no-activity")
    clock.advance(days=10)
    run(engine)

    clock.advance(hours=3)
    ana.send("/pathway")
    clock.advance(hours=1)
    ana.send("/plan")

    [nudge] = nudges_of(engine, learner="ana")
    assert nudge.replied_at == clock.now - timedelta(hours=1)
    assert nudge.withdrawn_at is None


# --- catch-up, daily limit, opt-outs --------------------------------------------------------------------


def test_catch_up_after_downtime_without_burst(engine, clock):
    names = ["ana", "bo", "chen"]
    for name in names:
        learner = learner_with_plan(engine, name)
        set_target_dates(engine, name, date(2026, 3, 20))
        submission_id = learner.submit_reflection("explore-career-options")
        request_changes(Chat(engine, "reviewer", display_name="Rita"), submission_id, [True, False, True], "More.")
    # Sixty days without a check: every rule's condition has held for weeks.
    clock.advance(days=60)

    first = run(engine)

    assert first.queued == len(names)
    for name in names:
        [nudge] = nudges_of(engine, learner=name)
        assert nudge.rule_id == "changes-requested"
    assert run(engine).queued == 0
    clock.advance(hours=23)
    assert run(engine).queued == 0
    clock.advance(hours=1)
    second = run(engine)
    assert second.queued == len(names)
    assert {nudge.rule_id for nudge in nudges_of(engine)} == {"changes-requested", "target-date-passed"}


def test_stop_pauses_and_start_resumes(engine, clock, ana):
    only_rules(engine, "target-date-soon")
    set_target_dates(engine, "ana", date(2026, 3, 4))
    ana.send("/stop")

    summary = run(engine)

    assert rule_run(summary, "target-date-soon").skipped_paused == 1
    assert nudges_of(engine) == []
    ana.send("/start")
    assert run(engine).queued == 1


def test_blocked_learner_counted_never_queued(engine, clock, ana):
    only_rules(engine, "target-date-soon", repeats=True, min_gap=timedelta(hours=1))
    set_target_dates(engine, "ana", date(2026, 3, 4))
    set_learner(engine, "ana", unreachable_since=clock.now)

    for _ in range(3):
        summary = run(engine)
        assert rule_run(summary, "target-date-soon").skipped_unreachable == 1
        assert summary.queued == 0
        clock.advance(hours=2)

    assert nudges_of(engine) == []
    with engine.session_factory() as session:
        assert session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "nudge")).all() == []


def test_paused_rule_survives_restart(engine, clock, settings, ana):
    only_rules(engine, "target-date-soon")
    set_target_dates(engine, "ana", date(2026, 3, 4))
    Chat(engine, "coordinator").send("/pause_rule target-date-soon")

    restarted = build_engine(settings)
    restarted.clock = Clock(clock.now)
    only_rules(restarted, "target-date-soon")
    summary = run(restarted)

    assert rule_run(summary, "target-date-soon").paused
    assert summary.queued == 0
    Chat(restarted, "coordinator").send("/resume_rule target-date-soon")
    assert run(restarted).queued == 1
    restarted.session_factory.kw["bind"].dispose()


def test_queued_nudge_survives_restart(engine, clock, settings, ana):
    only_rules(engine, "no-activity")
    clock.advance(days=10)
    run(engine)

    restarted = build_engine(settings)
    pending = outbox.claim_pending(restarted.session_factory, "console", now=clock.now)

    [nudge] = nudges_of(engine, learner="ana")
    assert nudge.outbox_id in [outbox_id for outbox_id, _ in pending]
    restarted.session_factory.kw["bind"].dispose()


def test_rule_state_records_last_run(engine, clock, ana):
    only_rules(engine, "no-activity")
    clock.advance(days=10)

    run(engine)

    with engine.session_factory() as session:
        state = session.get(NudgeRuleState, "no-activity")
    assert (state.last_run_at, state.last_queued, state.paused) == (clock.now, 1, False)


def test_concurrent_runs_queue_once(engine, clock):
    only_rules(engine, "no-activity")
    for name in ("ana", "bo", "chen", "dee"):
        learner_with_plan(engine, name)
    clock.advance(days=10)
    barrier = threading.Barrier(3)
    results = []

    def check() -> None:
        barrier.wait()
        results.append(run_once(engine))

    threads = [threading.Thread(target=check) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(summary.queued for summary in results) == [0, 0, 4]
    assert len(nudges_of(engine)) == 4


def test_runner_thread_checks_at_start_and_stops(engine, clock, ana):
    only_rules(engine, "no-activity")
    clock.advance(days=10)
    runner = NudgeRunner(engine, interval=timedelta(hours=1))

    runner.start()
    try:
        waited = 0
        while not runner.runs and waited < 1000:
            threading.Event().wait(0.01)
            waited += 1
    finally:
        runner.stop()

    assert runner.runs == 1
    assert len(nudges_of(engine, learner="ana")) == 1


def test_runner_rejects_zero_interval(engine):
    with pytest.raises(ValueError, match="must be positive"):
        NudgeRunner(engine, interval=timedelta(0)).start()


def test_failing_rule_does_not_stop_others(engine, clock, ana, monkeypatch):
    only_rules(engine, "review-waiting", "no-activity")
    clock.advance(days=10)

    def broken(session, rule, context):
        raise RuntimeError("broken query")

    from bot import nudge_candidates

    monkeypatch.setitem(nudge_candidates.FINDERS, "review_waiting", broken)
    summary = run(engine)

    assert [entry.rule_id for entry in summary.rules] == ["no-activity"]
    assert summary.queued == 1


def test_nudges_run_once_cli(settings, capsys):
    from bot.cli import main as cli_main

    assert cli_main(["nudges", "run-once", "--data-dir", str(settings.data_dir)]) == 0

    output = capsys.readouterr().out.splitlines()
    assert output[0] == "changes-requested: 0 queued (0 after quiet hours); skipped 0 paused, 0 unreachable"
    assert len(output) == 6


def test_learner_message_releases_coordinator_message(engine, clock):
    kenji = learner_with_plan(engine, "kenji", zone="Asia/Tokyo")
    clock.set(datetime(2026, 3, 13, 13, 0, tzinfo=UTC))  # 22:00 in Tokyo
    Chat(engine, "coordinator").send(f"/nudge {kenji.learner().id} Your interview is at 09:00 tomorrow.")
    [waiting] = nudges_of(engine, learner="kenji")
    assert waiting.available_at == datetime(2026, 3, 13, 23, 0, tzinfo=UTC)

    clock.advance(minutes=30)
    kenji.send("/pathway")

    [released] = nudges_of(engine, learner="kenji")
    assert released.available_at == clock.now
    assert released.withdrawn_at is None
    assert outbox_row(engine, released.outbox_id).available_at == clock.now


def test_waiting_nudge_does_not_hold_back_replies(engine, clock):
    only_rules(engine, "no-activity")
    learner_with_plan(engine, "kenji", zone="Asia/Tokyo")
    deliver_all(engine)
    clock.set(datetime(2026, 3, 13, 13, 0, tzinfo=UTC))
    run(engine)
    [nudge] = nudges_of(engine, learner="kenji")
    with engine.session_factory() as session, session.begin():
        session.add(OutboxMessage(platform="console", chat_id="kenji", learner_id=nudge.learner_id, kind="notice",
                                  payload={"text": "A reviewer approved your work."}, status="pending", attempts=0,
                                  created_at=clock.now, available_at=clock.now))

    due = outbox.claim_pending(engine.session_factory, "console", chat_id="kenji", now=clock.now, in_order=True)

    assert [message.text for _, message in due] == ["A reviewer approved your work."]
