"""Coordinator commands for nudges: message one learner or a segment, and manage the reminder rules.

- ``/nudge LEARNER MESSAGE``: a message from the coordinator to one learner,
  marked as such. It reaches learners who paused reminders (/stop), because
  it is a person writing, not a reminder; it waits for the end of quiet hours.
- ``/nudge_segment FILTERS MESSAGE``: a preview (how many, the first names,
  who is skipped) with a button to send and one to cancel. Only the
  coordinator who made the preview may confirm it, within ``PREVIEW_VALID``.
- ``/rules``: each rule, whether it is paused, its last check, how many it
  would nudge now and when it fires next. ``/pause_rule ID`` and
  ``/resume_rule ID`` stop and restart one rule; the state is stored.
- ``/nudge_log``: the latest nudges with who caused them and what became of them.

The engine runs these only for configured coordinators, and each command and
button checks the role again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot import nudge_audit, nudges, segments
from bot.events import Button
from bot.models import Learner, NudgeBatch, NudgeRuleState
from bot.nudge_candidates import Context, candidates
from bot.nudge_forecast import earliest_due
from bot.nudge_rules import format_duration
from bot.nudge_scheduler import delivery_window, lock_rule_state
from bot.turn import Turn
from bot.validate import parse_number

logger = logging.getLogger(__name__)

ACTION_PREFIX = "nb:"
"""Buttons of a segment preview: ``nb:s:<batch id>`` sends it, ``nb:x:<batch id>`` cancels it."""
MAX_TEXT_CHARS = 2000
PREVIEW_VALID = timedelta(hours=1)
LOG_LINES = 15


def _is_coordinator(turn: Turn) -> bool:
    if turn.settings.is_coordinator(turn.event.user_key):
        return True
    logger.warning("nudge command rejected for %s: not a coordinator", turn.event.user_key)
    turn.reply(turn.t("not_coordinator"), ephemeral=turn.event.chat_type == "group")
    return False


def _coordinator_name(turn: Turn) -> str:
    return (turn.event.display_name or turn.event.user_id)[:200]


def _format_local(moment: datetime, zone) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def find_learner(session: Session, reference: str) -> Learner | None:
    """Find a learner by number (``12`` or ``#12``), email address, or ``platform:user_id``."""
    reference = reference.strip()
    number = parse_number(reference.removeprefix("#"))
    if number is not None:
        return session.get(Learner, number)
    if "@" in reference:
        return session.scalar(
            select(Learner).where(func.lower(Learner.email) == reference.casefold()).order_by(Learner.id).limit(1)
        )
    platform, separator, user_id = reference.partition(":")
    if separator:
        return session.scalar(select(Learner).where(Learner.platform == platform, Learner.platform_user_id == user_id))
    return None


def _label(learner: Learner) -> str:
    return f"{learner.name or learner.user_key} (#{learner.id})"


# --- one learner ----------------------------------------------------------------------


def cmd_nudge(turn: Turn, conversation, argument: str) -> bool:
    """/nudge LEARNER MESSAGE: queue a coordinator's message to one learner."""
    if not _is_coordinator(turn):
        return False
    parts = argument.split(maxsplit=1)
    if len(parts) < 2:
        turn.reply(turn.t("nudge_usage"))
        return False
    reference, text = parts[0], parts[1].strip()
    learner = find_learner(turn.session, reference)
    if learner is None:
        turn.reply(turn.t("nudge_learner_not_found", learner=reference))
        return False
    if len(text) > MAX_TEXT_CHARS:
        turn.reply(turn.t("nudge_text_too_long", length=len(text), maximum=MAX_TEXT_CHARS))
        return False
    if learner.unreachable_since is not None:
        turn.reply(turn.t("nudge_unreachable", learner=_label(learner),
                          date=learner.unreachable_since.date().isoformat()))
        return False

    window = delivery_window(turn.settings, turn.flows, turn.now)
    message = turn.t("nudge_from_coordinator", coordinator=_coordinator_name(turn), text=text)
    draft = nudges.Draft(platform=learner.platform, chat_id=learner.chat_id, learner_id=learner.id, text=message,
                         available_at=window.available_at(learner.timezone), subject="direct")
    nudges.queue(turn.session, [draft], kind=nudges.KIND_COORDINATOR, source=nudges.COORDINATOR,
                 sent_by=turn.event.user_key, now=turn.now)
    logger.info("coordinator %s nudged learner %s", turn.event.user_key, learner.id)

    zone = window.zone(learner.timezone)
    if draft.available_at > turn.now:
        reply = turn.t("nudge_queued_quiet", learner=_label(learner), local_time=_format_local(turn.now, zone),
                       time=_format_local(draft.available_at, zone))
    else:
        reply = turn.t("nudge_queued", learner=_label(learner))
    if learner.reminders_paused:
        reply += " " + turn.t("nudge_reminders_paused_note")
    turn.reply(reply)
    return False


# --- a segment ----------------------------------------------------------------------------


def cmd_nudge_segment(turn: Turn, conversation, argument: str) -> bool:
    """/nudge_segment FILTERS MESSAGE: preview who a message would reach, with buttons to send or cancel."""
    if not _is_coordinator(turn):
        return False
    catalog = turn.flows.catalog
    try:
        segment, text = segments.parse(argument, catalog)
    except segments.SegmentError as error:
        turn.reply(turn.t(error.key, **error.values))
        return False
    if not text:
        turn.reply(turn.t("segment_usage"))
        return False
    if len(text) > MAX_TEXT_CHARS:
        turn.reply(turn.t("nudge_text_too_long", length=len(text), maximum=MAX_TEXT_CHARS))
        return False

    preview = segments.preview(turn.session, segment, catalog, turn.now)
    skipped = _skipped_text(turn, preview)
    if preview.count == 0:
        turn.reply(turn.t("segment_empty", segment=segment.describe()) + " " + skipped)
        return False
    batch = NudgeBatch(created_by=turn.event.user_key, created_by_name=_coordinator_name(turn),
                       segment=segment.describe(), text=text, status="preview", preview_count=preview.count,
                       queued_count=0, skipped_paused=preview.skipped_paused,
                       skipped_unreachable=preview.skipped_unreachable, created_at=turn.now)
    turn.session.add(batch)
    turn.session.flush()

    more = preview.count - len(preview.names)
    names = ", ".join(preview.names) + (" " + turn.t("segment_more", count=more) if more > 0 else "")
    text_preview = turn.t("nudge_from_coordinator", coordinator=batch.created_by_name, text=text)
    buttons = (Button(turn.t("segment_button_send", count=preview.count), f"{ACTION_PREFIX}s:{batch.id}"),
               Button(turn.t("segment_button_cancel"), f"{ACTION_PREFIX}x:{batch.id}"))
    turn.reply(turn.t("segment_preview", count=preview.count, segment=batch.segment, names=names, skipped=skipped,
                      message=text_preview, minutes=int(PREVIEW_VALID.total_seconds() // 60)), buttons)
    return False


def _skipped_text(turn: Turn, preview: segments.Preview) -> str:
    return turn.t("segment_skipped", paused=preview.skipped_paused, unreachable=preview.skipped_unreachable)


def handle_action(turn: Turn, action: str) -> None:
    """Send or cancel a segment message when its preview's button is pressed."""
    parts = action.split(":")
    batch_id = parse_number(parts[2]) if len(parts) == 3 else None
    if batch_id is None or parts[1] not in ("s", "x"):
        turn.reply(turn.t("button_expired"), ephemeral=True)
        return
    if not _is_coordinator(turn):
        return
    batch = turn.session.scalar(select(NudgeBatch).where(NudgeBatch.id == batch_id).with_for_update())
    if batch is None or batch.created_by != turn.event.user_key:
        turn.reply(turn.t("segment_not_yours"), ephemeral=True)
        return
    if batch.status != "preview":
        turn.reply(turn.t(f"segment_already_{batch.status}", segment=batch.segment), ephemeral=True)
        return
    batch.decided_at = turn.now
    if parts[1] == "x":
        batch.status = "cancelled"
        turn.reply(turn.t("segment_cancelled", segment=batch.segment))
        return
    if turn.now - batch.created_at > PREVIEW_VALID:
        batch.status = "cancelled"
        turn.reply(turn.t("segment_expired", minutes=int(PREVIEW_VALID.total_seconds() // 60)))
        return
    _send_batch(turn, batch)


def _send_batch(turn: Turn, batch: NudgeBatch) -> None:
    catalog = turn.flows.catalog
    segment, _ = segments.parse(batch.segment, catalog)
    preview = segments.preview(turn.session, segment, catalog, turn.now)
    window = delivery_window(turn.settings, turn.flows, turn.now)
    text = turn.t("nudge_from_coordinator", coordinator=batch.created_by_name, text=batch.text)
    queued = segments.queue_message(turn.session, segment, catalog, text, window=window,
                                    sent_by=batch.created_by, batch_id=batch.id, now=turn.now)
    batch.status = "sent"
    batch.queued_count = queued
    batch.skipped_paused = preview.skipped_paused
    batch.skipped_unreachable = preview.skipped_unreachable
    logger.info("coordinator %s sent segment message %s (%s) to %d learners", batch.created_by, batch.id,
                batch.segment, queued)
    skipped = _skipped_text(turn, preview)
    turn.reply(turn.t("segment_sent", count=queued, segment=batch.segment, skipped=skipped))


# --- rules -------------------------------------------------------------------------------


def cmd_rules(turn: Turn, conversation, argument: str) -> bool:
    """/rules: list the reminder rules, their state, and when each fires next."""
    if not _is_coordinator(turn):
        return False
    rules = turn.flows.nudges.rules
    if not rules:
        turn.reply(turn.t("rules_empty"))
        return False
    interval = timedelta(minutes=turn.settings.nudge_check_minutes)
    window = delivery_window(turn.settings, turn.flows, turn.now)
    context = Context(turn.flows, turn.settings, turn.now, window)
    states = {state.rule_id: state for state in turn.session.scalars(select(NudgeRuleState))}
    zone = window.default_zone

    lines = [turn.t("rules_header", count=len(rules), minutes=turn.settings.nudge_check_minutes)]
    for rule in rules:
        state = states.get(rule.id)
        last_run = (turn.t("rules_last_run", time=_format_local(state.last_run_at, zone), count=state.last_queued)
                    if state is not None and state.last_run_at is not None else turn.t("rules_never_run"))
        if state is not None and state.paused:
            status = turn.t("rules_paused", by=state.changed_by or "-",
                            date=state.changed_at.date().isoformat() if state.changed_at else "-")
            next_run = ""
        else:
            status = turn.t("rules_active")
            next_run = _next_run(turn, context, rule, state, interval)
        threshold = f"{rule.kind.threshold} {format_duration(rule.threshold)}"
        lines.append(turn.t("rules_line", rule=rule.id, type=rule.type, audience=rule.audience, threshold=threshold,
                            gap=format_duration(rule.min_gap),
                            repeats=turn.t("rules_repeats") if rule.repeats else turn.t("rules_once"),
                            status=status, last_run=last_run, next_run=next_run))
    turn.reply("\n\n".join(lines))
    return False


def _next_run(turn: Turn, context: Context, rule, state: NudgeRuleState | None, interval: timedelta) -> str:
    zone = context.window.default_zone
    next_check = max(state.last_run_at + interval, turn.now) if state and state.last_run_at else turn.now
    due = [candidate for candidate in candidates(turn.session, rule, context)
           if not candidate.unreachable and not candidate.reminders_paused]
    if due:
        return turn.t("rules_next_due", count=len(due), time=_format_local(next_check, zone))
    estimate = earliest_due(turn.session, rule, context)
    if estimate is None:
        return turn.t("rules_next_none")
    return turn.t("rules_next_estimate", time=_format_local(max(estimate, next_check), zone))


def cmd_pause_rule(turn: Turn, conversation, argument: str) -> bool:
    """/pause_rule ID: stop a rule from queuing nudges until /resume_rule."""
    return _set_paused(turn, argument, paused=True)


def cmd_resume_rule(turn: Turn, conversation, argument: str) -> bool:
    """/resume_rule ID: let a paused rule queue nudges again from its next check."""
    return _set_paused(turn, argument, paused=False)


def _set_paused(turn: Turn, argument: str, *, paused: bool) -> bool:
    if not _is_coordinator(turn):
        return False
    command = "pause_rule" if paused else "resume_rule"
    rules = turn.flows.nudges.rules
    rule_id = argument.strip()
    if not rule_id:
        turn.reply(turn.t("rule_usage", command=command, rules=", ".join(rule.id for rule in rules) or "-"))
        return False
    if turn.flows.nudges.rule(rule_id) is None:
        turn.reply(turn.t("rule_unknown", rule=rule_id, rules=", ".join(rule.id for rule in rules) or "-"))
        return False

    state = lock_rule_state(turn.session, rule_id)
    if state.paused == paused:
        turn.reply(turn.t("rule_already_paused" if paused else "rule_already_active", rule=rule_id))
        return False
    state.paused = paused
    state.changed_by = turn.event.user_key
    state.changed_at = turn.now
    logger.info("nudge rule %s %s by %s", rule_id, "paused" if paused else "resumed", turn.event.user_key)
    turn.reply(turn.t("rule_paused" if paused else "rule_resumed", rule=rule_id))
    return False


# --- the audit trail -----------------------------------------------------------------------


def cmd_nudge_log(turn: Turn, conversation, argument: str) -> bool:
    """/nudge_log: the latest nudges, who caused each, to whom, and its delivery result."""
    if not _is_coordinator(turn):
        return False
    latest = list(nudge_audit.entries(turn.session, limit=LOG_LINES))
    if not latest:
        turn.reply(turn.t("nudge_log_empty"))
        return False
    lines = [turn.t("nudge_log_header", count=len(latest))]
    for entry in latest:
        nudge = entry.nudge
        if nudge.source == nudges.RULE:
            source = turn.t("nudge_source_rule", rule=nudge.rule_id)
        else:
            source = turn.t("nudge_source_coordinator", coordinator=nudge.sent_by)
        if nudge.learner_id is None:
            recipient = f"{nudge.platform}:{nudge.chat_id}"
        else:
            recipient = f"{entry.learner_name or '-'} (#{nudge.learner_id})"
        result = turn.t(f"nudge_result_{entry.result}", error=(entry.last_error or "-")[:120],
                        time=nudge.available_at.strftime("%Y-%m-%d %H:%M"))
        lines.append(turn.t("nudge_log_line", time=nudge.created_at.strftime("%Y-%m-%d %H:%M"), source=source,
                            recipient=recipient, result=result))
    turn.reply("\n".join(lines))
    return False
