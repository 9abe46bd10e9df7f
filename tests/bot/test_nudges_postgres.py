"""Nudges and reports on PostgreSQL: the same queries as on SQLite, on the other dialect.

These tests need ``CAREERBOT_TEST_POSTGRES_URL`` and skip without it.
"""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest

from bot.models import Nudge, NudgeBatch
from bot.nudge_scheduler import run_once
from bot.reports import build_report, report_csv
from tests.bot.nudge_setup import (
    Clock,
    deliver_all,
    learner_with_plan,
    nudges_of,
    only_rules,
    rule_run,
    set_target_dates,
)
from tests.bot.scripted import Chat
from tests.bot.test_review import request_changes


@pytest.fixture
def pg(postgres_engine):
    postgres_engine.clock = Clock()
    return postgres_engine


def test_every_rule_type_runs(pg):
    ana = learner_with_plan(pg, "ana")
    bo = learner_with_plan(pg, "bo")
    set_target_dates(pg, "bo", date(2026, 3, 4))
    submission_id = ana.submit_reflection("use-career-services")
    request_changes(Chat(pg, "reviewer", display_name="Rita"), submission_id, [True, False, True], "More detail.")
    bo.submit_reflection("explore-career-options")
    pg.clock.advance(days=11)

    summary = run_once(pg)

    assert [run.rule_id for run in summary.rules] == [rule.id for rule in pg.flows.nudges.rules]
    assert rule_run(summary, "changes-requested").queued == 1
    assert rule_run(summary, "review-waiting").queued == 1
    assert summary.queued == 3
    assert run_once(pg).queued == 0


def test_concurrent_runs_queue_once(pg):
    only_rules(pg, "no-activity")
    for name in ("ana", "bo", "chen"):
        learner_with_plan(pg, name)
    pg.clock.advance(days=10)
    barrier = threading.Barrier(3)
    results = []

    def check() -> None:
        barrier.wait()
        results.append(run_once(pg))

    threads = [threading.Thread(target=check) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(summary.queued for summary in results) == [0, 0, 3]


def test_segment_confirm_and_report(pg):
    for name in ("ana", "bo", "chen"):
        learner_with_plan(pg, name)
    coordinator = Chat(pg, "coordinator", display_name="Sam")

    [preview] = coordinator.send("/nudge_segment level=1 Your Level 1 items are due on 20 March.")
    [sent] = coordinator.press(preview.buttons[0].action)
    deliver_all(pg)
    pg.clock.advance(hours=2)
    Chat(pg, "ana").send("/pathway")

    assert sent.text.startswith("Queued for 3 learner(s) matching level=1.")
    with pg.session_factory() as session:
        batch = session.query(NudgeBatch).one()
        audit = session.query(Nudge).filter(Nudge.batch_id == batch.id).all()
        report = build_report(session, pg.flows, pg.clock())
    assert len(audit) == 3
    assert report.nudges.from_coordinators == 3
    assert report.nudges.replied == 1
    assert report.levels[1] == 3
    assert "funnel,plan_completed,3" in report_csv(report)


def test_learner_message_withdraws_on_postgres(pg):
    only_rules(pg, "no-activity")
    kenji = learner_with_plan(pg, "kenji", zone="Asia/Tokyo")
    pg.clock.advance(days=10, hours=22)  # 22:00 in Tokyo
    run_once(pg)

    pg.clock.advance(minutes=5)
    kenji.send("/pathway")

    [nudge] = nudges_of(pg, learner="kenji")
    assert nudge.withdrawn_at == pg.clock()
    assert nudge.outbox_id is None
    assert pg.clock() - nudge.created_at == timedelta(minutes=5)
