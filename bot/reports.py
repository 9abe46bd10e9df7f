"""Cohort reports for coordinators: figures, the chat text, and CSV.

:func:`build_report` reads the figures in a few aggregate queries: learners
per level and per progress state (see ``bot.progress``), the funnel from a
started plan to the macro-badge, stalled learners, pending reviews and the
median time to a review decision, nudges and the replies to them, and
opt-outs. Learners are those who consented; ``campus`` narrows every figure
to one campus or program, and then leaves out reviewer reminders, because
they belong to no campus.

A nudge counts as *opened by reply* when its learner wrote to the bot within
48 hours after it was delivered (``sent_at``, or ``available_at`` while the
outbox has no send time).
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, aliased

from bot.flows import Flows
from bot.models import Learner, Nudge, OutboxMessage, ReviewDecision, Submission
from bot.progress import DONE_LEVEL, PROGRESS_STATES, completed, current_level, has_badge, progress_state

REPLY_WINDOW = timedelta(hours=48)
STALLED_LISTED = 10


@dataclass(frozen=True)
class StalledLearner:
    learner_id: int
    name: str
    days: int
    level: int


@dataclass(frozen=True)
class NudgeFigures:
    """Nudges queued in the report's period, by delivery result and by origin."""

    queued: int = 0
    sent: int = 0
    failed: int = 0
    waiting: int = 0
    withdrawn: int = 0
    from_coordinators: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    sent_to_learners: int = 0
    replied: int = 0

    @property
    def reply_rate(self) -> float | None:
        return self.replied / self.sent_to_learners if self.sent_to_learners else None


@dataclass(frozen=True)
class Report:
    generated_at: datetime
    campus: str | None
    period_days: int
    learners: int
    levels: dict[int, int]
    states: dict[str, int]
    funnel: list[tuple[str, int]]
    stalled_days: int
    stalled: int
    stalled_learners: list[StalledLearner]
    pending_reviews: int
    oldest_pending_at: datetime | None
    decisions: int
    median_decision_hours: float | None
    nudges: NudgeFigures
    reminders_paused: int
    unreachable: int


def build_report(session: Session, flows: Flows, now: datetime, *, campus: str | None = None,
                 days: int = 30) -> Report:
    """Read every figure of the report at ``now``; nudges and decisions count over the last ``days`` days."""
    catalog = flows.catalog
    cohort = [Learner.consented_at.is_not(None)]
    if campus is not None:
        cohort.append(Learner.campus == campus)
    since = now - timedelta(days=days)

    learners = session.scalar(select(func.count()).select_from(Learner).where(*cohort)) or 0
    level = current_level().label("level")
    levels = {number: 0 for number in range(0, DONE_LEVEL + 1)}
    levels.update(dict(session.execute(select(level, func.count()).where(*cohort).group_by(level)).all()))
    state = progress_state(catalog).label("state")
    states = {name: 0 for name in PROGRESS_STATES}
    states.update(dict(session.execute(select(state, func.count()).where(*cohort).group_by(state)).all()))

    stalled_days = flows.nudges.stalled_after.days
    stalled_conditions = [*cohort, Learner.last_activity_at <= now - flows.nudges.stalled_after, ~completed(catalog)]
    stalled = session.scalar(select(func.count()).select_from(Learner).where(*stalled_conditions)) or 0
    stalled_rows = session.execute(
        select(Learner.id, Learner.name, Learner.last_activity_at, current_level())
        .where(*stalled_conditions)
        .order_by(Learner.last_activity_at, Learner.id)
        .limit(STALLED_LISTED)
    ).all()

    pending, oldest = session.execute(
        select(func.count(), func.min(Submission.submitted_at))
        .join(Learner, Learner.id == Submission.learner_id)
        .where(Submission.status == "pending", *cohort)
    ).one()
    waits = session.execute(
        select(Submission.submitted_at, ReviewDecision.decided_at)
        .join(ReviewDecision, ReviewDecision.submission_id == Submission.id)
        .join(Learner, Learner.id == Submission.learner_id)
        .where(ReviewDecision.decided_at >= since, Submission.submitted_at.is_not(None), *cohort)
    ).all()
    hours = [(decided - submitted).total_seconds() / 3600 for submitted, decided in waits]

    paused, unreachable = session.execute(
        select(func.count().filter(Learner.reminders_paused.is_(True)),
               func.count().filter(Learner.unreachable_since.is_not(None)))
        .where(*cohort)
    ).one()

    return Report(
        generated_at=now,
        campus=campus,
        period_days=days,
        learners=learners,
        levels=levels,
        states=states,
        funnel=_funnel(session, flows, cohort),
        stalled_days=stalled_days,
        stalled=stalled,
        stalled_learners=[
            StalledLearner(learner_id, name or "-", (now - last_activity).days, learner_level)
            for learner_id, name, last_activity, learner_level in stalled_rows
        ],
        pending_reviews=pending or 0,
        oldest_pending_at=oldest,
        decisions=len(hours),
        median_decision_hours=statistics.median(hours) if hours else None,
        nudges=_nudge_figures(session, since, campus),
        reminders_paused=paused or 0,
        unreachable=unreachable or 0,
    )


def _funnel(session: Session, flows: Flows, cohort: list[ColumnElement[bool]]) -> list[tuple[str, int]]:
    """Learners who reached each stage, from a started plan to the macro-badge."""
    catalog = flows.catalog
    submitted = select(Submission.id).where(Submission.learner_id == Learner.id,
                                            Submission.status != "draft").exists()
    stages: list[tuple[str, ColumnElement[bool]]] = [
        ("started", Learner.consented_at.is_not(None)),
        ("plan_completed", Learner.plan_completed_at.is_not(None)),
        ("first_submission", submitted),
    ]
    for level in sorted(catalog.levels, key=lambda entry: entry.number):
        stages.append((f"level_{level.number}", has_badge(level.badge.id)))
    stages.append(("macro_badge", has_badge(catalog.program.macro_badge.id)))
    counts = session.execute(
        select(*(func.count().filter(condition) for _, condition in stages)).select_from(Learner).where(*cohort)
    ).one()
    return [(name, count or 0) for (name, _), count in zip(stages, counts)]


def _nudge_figures(session: Session, since: datetime, campus: str | None) -> NudgeFigures:
    learner = aliased(Learner)
    query = (
        select(Nudge.source, Nudge.rule_id, Nudge.learner_id, Nudge.withdrawn_at, Nudge.available_at,
               Nudge.replied_at, OutboxMessage.status, OutboxMessage.sent_at)
        .outerjoin(OutboxMessage, OutboxMessage.id == Nudge.outbox_id)
        .where(Nudge.created_at >= since)
    )
    if campus is not None:
        query = query.join(learner, learner.id == Nudge.learner_id).where(learner.campus == campus)

    counts = {"queued": 0, "sent": 0, "failed": 0, "waiting": 0, "withdrawn": 0, "from_coordinators": 0,
              "sent_to_learners": 0, "replied": 0}
    by_rule: dict[str, int] = {}
    for row in session.execute(query):
        if row.withdrawn_at is not None:
            counts["withdrawn"] += 1
            continue
        counts["queued"] += 1
        if row.source == "rule":
            by_rule[row.rule_id] = by_rule.get(row.rule_id, 0) + 1
        else:
            counts["from_coordinators"] += 1
        status = row.status or "failed"
        counts[{"sent": "sent", "failed": "failed"}.get(status, "waiting")] += 1
        if status != "sent" or row.learner_id is None:
            continue
        counts["sent_to_learners"] += 1
        delivered = row.sent_at or row.available_at
        if row.replied_at is not None and delivered <= row.replied_at <= delivered + REPLY_WINDOW:
            counts["replied"] += 1
    return NudgeFigures(by_rule=dict(sorted(by_rule.items())), **counts)


# --- output ------------------------------------------------------------------------------


def format_hours(hours: float | None, texts) -> str:
    if hours is None:
        return texts("report_no_value")
    if hours < 48:
        return texts("report_hours", hours=f"{hours:.1f}")
    return texts("report_days", days=f"{hours / 24:.1f}")


def report_text(report: Report, flows: Flows) -> str:
    """Format the report as the chat reply of /report, one section per paragraph."""
    texts = flows.texts
    scope = report.campus or texts("report_all_campuses")
    header = texts("report_header", date=report.generated_at.date().isoformat(), scope=scope,
                   learners=report.learners)
    levels = [(level_label(number, flows), count) for number, count in sorted(report.levels.items())]
    states = [(texts(f"state_{name}"), count) for name, count in report.states.items()]
    funnel = [(funnel_label(name, flows), count) for name, count in report.funnel]

    sections = [
        header,
        _counts_section(texts, "report_levels_heading", levels),
        _counts_section(texts, "report_states_heading", states),
        _counts_section(texts, "report_funnel_heading", funnel),
        _stalled_section(report, flows),
        _reviews_section(report, texts),
        _nudges_section(report, texts),
        texts("report_optouts", paused=report.reminders_paused, unreachable=report.unreachable),
    ]
    return "\n\n".join(sections)


def _counts_section(texts, heading: str, counts: list[tuple[str, int]]) -> str:
    lines = [texts(heading)]
    lines += [texts("report_line", label=label, count=count) for label, count in counts]
    return "\n".join(lines)


def _stalled_section(report: Report, flows: Flows) -> str:
    texts = flows.texts
    lines = [texts("report_stalled", count=report.stalled, days=report.stalled_days)]
    for entry in report.stalled_learners:
        lines.append(texts("report_stalled_line", learner_id=entry.learner_id, name=entry.name, days=entry.days,
                           level=level_label(entry.level, flows)))
    return "\n".join(lines)


def _reviews_section(report: Report, texts) -> str:
    oldest = report.oldest_pending_at.date().isoformat() if report.oldest_pending_at else texts("report_no_value")
    return texts("report_reviews", pending=report.pending_reviews, oldest=oldest,
                 median=format_hours(report.median_decision_hours, texts), decisions=report.decisions,
                 days=report.period_days)


def _nudges_section(report: Report, texts) -> str:
    figures = report.nudges
    rate = f"{figures.reply_rate:.0%}" if figures.reply_rate is not None else texts("report_no_value")
    lines = [texts("report_nudges", days=report.period_days, queued=figures.queued, sent=figures.sent,
                   waiting=figures.waiting, failed=figures.failed, withdrawn=figures.withdrawn,
                   coordinators=figures.from_coordinators, replied=figures.replied, rate=rate)]
    lines += [texts("report_nudges_rule", rule=rule, count=count) for rule, count in figures.by_rule.items()]
    return "\n".join(lines)


def level_label(number: int, flows: Flows) -> str:
    texts = flows.texts
    if number == 0:
        return texts("report_level_planning")
    if number >= DONE_LEVEL:
        return texts("report_level_done")
    return texts("report_level", number=number, name=flows.catalog.level(number).name)


def funnel_label(stage: str, flows: Flows) -> str:
    texts = flows.texts
    if stage.startswith("level_"):
        number = int(stage.removeprefix("level_"))
        return texts("funnel_level", number=number, name=flows.catalog.level(number).name)
    return texts(f"funnel_{stage}")


def _level_metric(number: int) -> str:
    if number == 0:
        return "planning"
    if number >= DONE_LEVEL:
        return "done"
    return f"level_{number}"


def report_csv(report: Report) -> str:
    """Format the report as CSV with the columns section, metric and value, one row per figure."""
    rows: list[tuple[str, str, object]] = [
        ("report", "generated_at", report.generated_at.isoformat()),
        ("report", "campus", report.campus or "all"),
        ("report", "period_days", report.period_days),
        ("cohort", "learners", report.learners),
    ]
    rows += [("level", _level_metric(number), count) for number, count in sorted(report.levels.items())]
    rows += [("state", name, count) for name, count in report.states.items()]
    rows += [("funnel", name, count) for name, count in report.funnel]
    rows += [("stalled", "stalled_after_days", report.stalled_days), ("stalled", "learners", report.stalled)]
    rows += [("stalled_learner", f"{entry.learner_id}", entry.days) for entry in report.stalled_learners]
    median = report.median_decision_hours
    rows += [
        ("reviews", "pending", report.pending_reviews),
        ("reviews", "oldest_pending_at", report.oldest_pending_at.isoformat() if report.oldest_pending_at else ""),
        ("reviews", "decisions", report.decisions),
        ("reviews", "median_hours_to_decision", f"{median:.2f}" if median is not None else ""),
    ]
    figures = report.nudges
    rows += [
        ("nudges", "queued", figures.queued),
        ("nudges", "sent", figures.sent),
        ("nudges", "waiting", figures.waiting),
        ("nudges", "failed", figures.failed),
        ("nudges", "withdrawn", figures.withdrawn),
        ("nudges", "from_coordinators", figures.from_coordinators),
        ("nudges", "sent_to_learners", figures.sent_to_learners),
        ("nudges", "replied_within_48h", figures.replied),
        ("nudges", "reply_rate", f"{figures.reply_rate:.4f}" if figures.reply_rate is not None else ""),
    ]
    rows += [("nudges_by_rule", rule, count) for rule, count in figures.by_rule.items()]
    rows += [("opt_outs", "reminders_paused", report.reminders_paused),
             ("opt_outs", "unreachable", report.unreachable)]

    output = io.StringIO()
    writer = csv.writer(output, lineterminator="\n")
    writer.writerow(("section", "metric", "value"))
    writer.writerows(rows)
    return output.getvalue()
