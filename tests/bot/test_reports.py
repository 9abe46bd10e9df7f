"""Cohort reports on a seeded cohort: the figures, the chat reply, CSV, the funnel chart and the CLI.

The cohort, seeded on 2 March 2026 at 15:00 UTC:

- Ana (North Campus): one submission waiting, one approved after 4 hours; Level 1.
- Bo (North Campus): changes requested after 10 hours; blocked the bot.
- Chen (South Campus): Level 1 approved with its badge; silent since 20 days before the seed.
- Dee (North Campus): still writing the plan; paused reminders.
- Eve (North Campus): every item approved and the macro-badge earned.
- Fay: opened the chat but never consented, so she is not in the cohort.

Eleven days later the no-activity rule nudges Ana and Chen, a coordinator writes
to Dee, all three are delivered, and Ana answers an hour later.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import update

from bot.cli import main as cli_main
from bot.models import Learner, Submission
from bot.reports import build_report, report_csv, report_text
from tests.bot.nudge_setup import (
    START,
    award,
    clock,  # noqa: F401 - a fixture
    deliver_all,
    learner_with_plan,
    only_rules,
    run,
    set_item,
    set_learner,
)
from tests.bot.scripted import Chat, approve, load_learner
from tests.bot.test_review import request_changes


def approve_everything(engine, user: str, levels: tuple[int, ...], at) -> None:
    """Approve the learner's items of ``levels`` (with a submission each) and award those level badges."""
    learner = load_learner(engine, user)
    with engine.session_factory() as session, session.begin():
        for item in learner.items:
            if item.level in levels:
                session.add(Submission(learner_id=learner.id, item_id=item.id, kind="reflection", status="approved",
                                       text="Done.", created_at=at, submitted_at=at))
    for item in learner.items:
        if item.level in levels:
            set_item(engine, item.id, status="approved", approved_at=at)
    catalog = engine.flows.catalog
    for number in levels:
        award(engine, user, catalog.level(number).badge.id, "level", at)


@pytest.fixture
def cohort(engine, clock):
    reviewer = Chat(engine, "reviewer", display_name="Rita")
    ana = learner_with_plan(engine, "ana", name="Ana")
    waiting_id = ana.submit_reflection("use-career-services")
    approved_id = ana.submit_reflection("explore-career-options")
    bo = learner_with_plan(engine, "bo", name="Bo")
    bo_submission = bo.submit_reflection("use-career-services")
    learner_with_plan(engine, "chen", name="Chen", campus="South Campus")
    dee = Chat(engine, "dee")
    dee.answer_until("interests", name="Dee")
    dee.send("/stop")
    learner_with_plan(engine, "eve", name="Eve")
    Chat(engine, "fay").send("hello")

    approve_everything(engine, "chen", (1,), START)
    approve_everything(engine, "eve", (1, 2, 3), START)
    award(engine, "eve", engine.flows.catalog.program.macro_badge.id, "macro", START)
    set_learner(engine, "chen", last_activity_at=START - timedelta(days=20))

    clock.advance(hours=4)
    approve(engine, approved_id)
    clock.advance(hours=6)
    request_changes(reviewer, bo_submission, [True, False, True], "Say which service you used.")
    set_learner(engine, "bo", unreachable_since=clock.now)

    only_rules(engine, "no-activity")
    clock.set(START + timedelta(days=11))
    run(engine)
    coordinator = Chat(engine, "coordinator", display_name="Sam")
    coordinator.send(f"/nudge {dee.learner().id} Your plan is due on 20 March; answer the next question to go on.")
    deliver_all(engine)
    clock.advance(hours=1)
    ana.send("/pathway")
    return {"waiting_id": waiting_id}


def report_of(engine, **options):
    with engine.session_factory() as session:
        return build_report(session, engine.flows, engine.clock(), **options)


def test_levels_and_states(engine, cohort):
    report = report_of(engine)

    assert report.learners == 5
    assert report.levels == {0: 1, 1: 2, 2: 1, 3: 0, 4: 1}
    assert report.states == {"planning": 1, "working": 1, "changes_requested": 1, "waiting_review": 1,
                             "completed": 1}


def test_funnel(engine, cohort):
    report = report_of(engine)

    assert report.funnel == [("started", 5), ("plan_completed", 4), ("first_submission", 4), ("level_1", 2),
                             ("level_2", 1), ("level_3", 1), ("macro_badge", 1)]


def test_stalled_learners(engine, cohort):
    report = report_of(engine)

    assert report.stalled_days == 14
    assert report.stalled == 1
    [chen] = report.stalled_learners
    assert (chen.name, chen.days, chen.level) == ("Chen", 31, 2)


def test_reviews_and_median_decision_time(engine, cohort):
    report = report_of(engine)

    assert report.pending_reviews == 1
    assert report.oldest_pending_at == START
    assert report.decisions == 2
    assert report.median_decision_hours == pytest.approx(7.0)


def test_nudge_figures(engine, cohort):
    figures = report_of(engine).nudges

    assert (figures.queued, figures.sent, figures.waiting, figures.failed, figures.withdrawn) == (3, 3, 0, 0, 0)
    assert figures.from_coordinators == 1
    assert figures.by_rule == {"no-activity": 2}
    assert (figures.sent_to_learners, figures.replied) == (3, 1)
    assert figures.reply_rate == pytest.approx(1 / 3)


def test_reply_after_48_hours_not_counted(engine, clock, cohort):
    with engine.session_factory() as session, session.begin():
        session.execute(update(Learner).where(Learner.platform_user_id == "chen").values(state="home"))
    clock.advance(hours=48)
    Chat(engine, "chen").send("/pathway")

    assert report_of(engine).nudges.replied == 1


def test_opt_outs(engine, cohort):
    report = report_of(engine)

    assert (report.reminders_paused, report.unreachable) == (1, 1)


def test_report_for_one_campus(engine, cohort):
    report = report_of(engine, campus="south-campus")

    assert report.learners == 1
    assert report.levels[2] == 1
    assert report.pending_reviews == 0
    assert report.nudges.by_rule == {"no-activity": 1}


def test_nudges_outside_period_not_counted(engine, clock, cohort):
    clock.advance(days=40)

    assert report_of(engine, days=30).nudges.queued == 0


def test_report_text(engine, cohort):
    text = report_text(report_of(engine), engine.flows)

    assert text.startswith("Cohort report of 2026-03-13 for all campuses and programs: 5 learner(s)")
    assert "- Level 1: Introduction and Foundation: 2" in text
    assert "- Changes requested by a reviewer: 1" in text
    assert "- Macro-badge: 1" in text
    assert "- #" in text
    assert "Chen: 31 days, Level 2: Training and Practice" in text
    assert "Median time to a decision: 7.0 hours (2 decision(s) in the last 30 days)" in text
    assert "Answered within 48 hours: 1 (33% of those delivered to learners)." in text
    assert "- rule no-activity: 2" in text
    assert "Opt-outs: 1 learner(s) paused reminders with /stop; 1 blocked the bot." in text


def test_report_csv(engine, cohort):
    rows = list(csv.reader(io.StringIO(report_csv(report_of(engine)))))

    assert rows[0] == ["section", "metric", "value"]
    values = {(section, metric): value for section, metric, value in rows[1:]}
    assert values[("cohort", "learners")] == "5"
    assert values[("level", "level_1")] == "2"
    assert values[("level", "done")] == "1"
    assert values[("state", "waiting_review")] == "1"
    assert values[("funnel", "macro_badge")] == "1"
    assert values[("stalled", "learners")] == "1"
    assert values[("reviews", "median_hours_to_decision")] == "7.00"
    assert values[("nudges", "replied_within_48h")] == "1"
    assert values[("nudges", "reply_rate")] == "0.3333"
    assert values[("nudges_by_rule", "no-activity")] == "2"
    assert values[("opt_outs", "reminders_paused")] == "1"


def test_report_command_replies_with_text(engine, cohort):
    coordinator = Chat(engine, "coordinator")

    coordinator.send("/report")

    assert coordinator.texts()[0] == report_text(report_of(engine), engine.flows)


def test_report_chart_is_png(engine, cohort):
    coordinator = Chat(engine, "coordinator")

    [message] = coordinator.send("/report chart")

    document = message.document
    assert (document.filename, document.content_type) == ("careerbot-funnel-20260313.png", "image/png")
    with Image.open(io.BytesIO(document.content)) as image:
        image.verify()
    with Image.open(io.BytesIO(document.content)) as image:
        assert image.format == "PNG"
        assert image.size[0] == 900
        assert image.size[1] > 300


def test_report_csv_command_sends_file(engine, cohort):
    coordinator = Chat(engine, "coordinator")

    [message] = coordinator.send("/report csv campus=north-campus days=7")

    assert message.document.filename == "careerbot-report-20260313.csv"
    content = message.document.content.decode()
    assert "report,campus,north-campus\n" in content
    assert "report,period_days,7\n" in content


@pytest.mark.parametrize("argument", ["pie", "campus=moon", "days=0", "days=x", "days=\u00b2", "days=" + "9" * 5000])
def test_report_command_usage(engine, cohort, argument):
    coordinator = Chat(engine, "coordinator")

    coordinator.send(f"/report {argument}")

    assert coordinator.texts()[0].startswith(f'I don\'t understand "{argument}".')


def test_report_cli_csv(engine, cohort, settings, capsys):
    expected = report_csv(report_of(engine)).splitlines()

    assert cli_main(["report", "--csv", "--data-dir", str(settings.data_dir)]) == 0

    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "section,metric,value"
    # The CLI reads the real clock, so only the figures that do not depend on time are compared.
    for line in ("cohort,learners,5", "funnel,macro_badge,1", "state,completed,1", "opt_outs,unreachable,1"):
        assert line in printed
        assert line in expected


def test_report_cli_chart_and_unknown_campus(engine, cohort, settings, tmp_path, capsys):
    chart = tmp_path / "funnel.png"

    assert cli_main(["report", "--chart", str(chart), "--data-dir", str(settings.data_dir)]) == 0
    assert cli_main(["report", "--campus", "moon", "--data-dir", str(settings.data_dir)]) == 2

    with Image.open(chart) as image:
        assert image.format == "PNG"
    assert "unknown campus 'moon'" in capsys.readouterr().err


def test_report_on_empty_database(engine, clock):
    report = report_of(engine)

    assert report.learners == 0
    assert report.median_decision_hours is None
    assert report.nudges.reply_rate is None
    assert "Median time to a decision: - (0 decision(s)" in report_text(report, engine.flows)
