"""Checking the reminder rules and queuing what is due: :func:`run_once` and :class:`NudgeRunner`.

:func:`run_once` checks every rule of ``flows/nudges.yaml`` once, at the
engine's clock. Each rule runs in its own transaction, which first locks the
rule's row in ``nudge_rule_states``: two processes that check at the same
time take turns, and the second finds the nudges the first queued. Because a rule
looks at the state of the learners now, not at the checks it missed, a bot
that was down for a week catches up with at most one nudge per learner per
rule, never one per missed check; the daily limit of ``nudges.yaml`` keeps a
learner whom several rules match to that many nudges a day.

Learners who paused reminders (/stop) or blocked the bot are skipped and
counted; a paused rule queues nothing.

:class:`NudgeRunner` calls :func:`run_once` every ``nudge_check_minutes`` in
a background thread of a single-process bot (``careerbot run``). A job
system can call :func:`run_once` on its own schedule instead, as
``careerbot nudges run-once`` does.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from bot import nudges
from bot.config import Settings
from bot.flows import Flows
from bot.models import NudgeRuleState
from bot.nudge_candidates import Candidate, Context, candidates
from bot.nudge_rules import NudgeRule
from bot.quiet_hours import QuietHours

if TYPE_CHECKING:
    from bot.engine import Engine

logger = logging.getLogger(__name__)


@dataclass
class RuleRun:
    """The outcome of one check of one rule."""

    rule_id: str
    paused: bool = False
    queued: int = 0
    deferred: int = 0
    """Of the queued nudges, those waiting for the end of quiet hours."""
    skipped_paused: int = 0
    """Learners the rule applies to who paused reminders with /stop."""
    skipped_unreachable: int = 0
    """Learners the rule applies to who blocked the bot."""


@dataclass
class RunSummary:
    at: datetime
    rules: list[RuleRun] = field(default_factory=list)

    @property
    def queued(self) -> int:
        return sum(run.queued for run in self.rules)


def delivery_window(settings: Settings, flows: Flows, now: datetime) -> nudges.DeliveryWindow:
    """Build the delivery window at ``now`` from the quiet hours setting and the program's time zone."""
    return nudges.DeliveryWindow(QuietHours.parse(settings.quiet_hours), ZoneInfo(flows.nudges.timezone), now)


def run_once(engine: Engine, now: datetime | None = None) -> RunSummary:
    """Check every rule once and queue the nudges that are due; return what each rule did."""
    now = now or engine.clock()
    summary = RunSummary(at=now)
    context = Context(engine.flows, engine.settings, now, delivery_window(engine.settings, engine.flows, now))
    for rule in engine.flows.nudges.rules:
        try:
            with engine.session_factory() as session, session.begin():
                run = _run_rule(session, rule, context)
        except Exception:
            logger.exception("checking nudge rule %s failed; the other rules go on", rule.id)
            continue
        summary.rules.append(run)
        logger.info("nudge rule %s: %s queued (%d after quiet hours), skipped %d paused, %d unreachable",
                    rule.id, "paused, none" if run.paused else run.queued, run.deferred, run.skipped_paused,
                    run.skipped_unreachable)
    return summary


def lock_rule_state(session: Session, rule_id: str) -> NudgeRuleState:
    """Load the rule's state row, creating it if needed, locked until the transaction ends."""
    dialect = session.bind.dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        dialect_insert = None
    if dialect_insert is not None:
        session.execute(dialect_insert(NudgeRuleState).values(rule_id=rule_id, paused=False, last_queued=0)
                        .on_conflict_do_nothing())
    elif session.get(NudgeRuleState, rule_id) is None:
        session.execute(insert(NudgeRuleState).values(rule_id=rule_id, paused=False, last_queued=0))
    return session.scalars(
        select(NudgeRuleState).where(NudgeRuleState.rule_id == rule_id).with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _run_rule(session: Session, rule: NudgeRule, context: Context) -> RuleRun:
    state = lock_rule_state(session, rule.id)
    run = RuleRun(rule.id, paused=state.paused)
    if state.paused:
        return run

    drafts = []
    for candidate in candidates(session, rule, context):
        if candidate.unreachable:
            run.skipped_unreachable += 1
        elif candidate.reminders_paused:
            run.skipped_paused += 1
        else:
            drafts.append(_draft(rule, candidate, context))

    kind = nudges.KIND_REVIEWER_REMINDER if rule.audience == "reviewers" else nudges.KIND_REMINDER
    nudges.queue(session, drafts, kind=kind, source=nudges.RULE, rule_id=rule.id, now=context.now)
    run.queued = len(drafts)
    run.deferred = sum(1 for draft in drafts if draft.available_at > context.now)
    state.last_run_at = context.now
    state.last_queued = run.queued
    return run


def _draft(rule: NudgeRule, candidate: Candidate, context: Context) -> nudges.Draft:
    return nudges.Draft(
        platform=candidate.platform,
        chat_id=candidate.chat_id,
        learner_id=candidate.learner_id,
        text=rule.render(**candidate.values),
        available_at=context.window.available_at(candidate.zone_name),
        subject=candidate.subject,
    )


class NudgeRunner:
    """Runs :func:`run_once` now and then every ``interval`` in a daemon thread, until :meth:`stop`.

    A failed check is logged and the next one runs on schedule.
    """

    def __init__(self, engine: Engine, interval: timedelta | None = None) -> None:
        self.engine = engine
        self.interval = interval if interval is not None else timedelta(minutes=engine.settings.nudge_check_minutes)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the nudge runner is already running")
        if self.interval <= timedelta(0):
            raise ValueError(f"the interval between rule checks must be positive, not {self.interval}")
        if not self.engine.flows.nudges.rules:
            logger.info("no nudge rules in the flows; the nudge runner does not start")
            return
        self._thread = threading.Thread(target=self._loop, name="careerbot-nudges", daemon=True)
        self._thread.start()
        logger.info("nudge runner started: %d rule(s), checked every %s", len(self.engine.flows.nudges.rules),
                    self.interval)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
            logger.info("nudge runner stopped")

    def _loop(self) -> None:
        while True:
            try:
                run_once(self.engine)
            except Exception:
                logger.exception("checking the nudge rules failed; trying again in %s", self.interval)
            self.runs += 1
            if self._stop.wait(self.interval.total_seconds()):
                return
