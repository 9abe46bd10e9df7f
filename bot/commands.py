"""Slash commands: what each one does, and who may use it.

Learner commands work at any point of the conversation and leave the learner
where they were; after an informational command the current question (or next
step) is asked again, so the learner always knows what to type next.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot import account, assertions, evidence, nudge_commands, report_commands, review, review_cards, sharing
from bot import evaluation_commands, supervisor
from bot.conversation import DETOURS, EDIT_CHOOSE, HOME, Conversation
from bot.events import Button
from bot.turn import Turn, name_suffix
from bot.validate import parse_number

logger = logging.getLogger(__name__)

MAX_COMMAND_CHARS = 32


def parse_command(text: str) -> tuple[str, str] | None:
    """Split ``/name@botname argument`` into (name, argument); None when not a command."""
    if not text.startswith("/") or len(text) < 2:
        return None
    head, _, argument = text[1:].partition(" ")
    name = head.split("@", 1)[0].casefold()
    if not name or len(name) > MAX_COMMAND_CHARS or not all(char.isalnum() or char == "_" for char in name):
        return None
    return name, argument.strip()


def is_editing(turn: Turn) -> bool:
    return bool(turn.learner.context.get("editing"))


def in_detour(turn: Turn) -> bool:
    return turn.learner.state in DETOURS or is_editing(turn)


def leave_detour(turn: Turn, conversation: Conversation) -> None:
    """Return from a detour to where the learner came from, keeping drafts."""
    context = dict(turn.learner.context)
    for key in ("editing", "submit_item_id", "submit_kind"):
        context.pop(key, None)
    turn.learner.context = context
    target = turn.learner.return_state or HOME
    turn.learner.return_state = None
    if not conversation.known_state(target) or target in DETOURS:
        target = HOME if turn.learner.plan_completed_at else conversation.first_unanswered(turn.learner)
    conversation.jump(turn.learner, target)


# --- learner commands --------------------------------------------------------------


def cmd_help(turn: Turn, conversation: Conversation, argument: str) -> bool:
    text = turn.t("help")
    if turn.settings.is_reviewer(turn.event.user_key):
        text += "\n\n" + turn.t("help_reviewer")
    if turn.settings.is_coordinator(turn.event.user_key):
        text += "\n\n" + turn.t("help_coordinator")
    turn.reply(text)
    return True


def cmd_plan(turn: Turn, conversation: Conversation, argument: str) -> bool:
    lines = conversation.plan_lines(turn, turn.learner)
    turn.reply(turn.t("plan_header") + "\n\n" + "\n".join(lines) + "\n\n" + turn.t("plan_footer"))
    return True


def cmd_pathway(turn: Turn, conversation: Conversation, argument: str) -> bool:
    if turn.learner.plan_completed_at is None:
        answered = sum(1 for question in conversation.questions if question.state in turn.learner.answers)
        turn.reply(turn.t("pathway_not_ready", answered=answered, total=len(conversation.questions)))
        return True
    turn.reply(account.pathway_text(turn))
    return True


def cmd_badges(turn: Turn, conversation: Conversation, argument: str) -> bool:
    """/badges: list earned and missing badges, then each earned badge's sharing links."""
    assertions.issue_pending(turn, turn.learner, ask_for_email=False)
    turn.reply(account.badges_text(turn))
    links = sharing.links_text(turn, turn.learner)
    for part in sharing.split_message(links) if links else ():
        turn.reply(part)
    return True


def cmd_back(turn: Turn, conversation: Conversation, argument: str) -> bool:
    if is_editing(turn) or turn.learner.state in (EDIT_CHOOSE,) or turn.learner.state not in conversation.machine.states:
        return cmd_cancel(turn, conversation, argument)
    if not conversation.fire(turn.learner, "back"):
        turn.reply(turn.t("back_nothing"))
    return True


def cmd_skip(turn: Turn, conversation: Conversation, argument: str) -> bool:
    question = conversation.question(turn.learner.state)
    if question is None:
        turn.reply(turn.t("skip_nothing"))
        return True
    if not question.optional:
        turn.reply(turn.t("skip_required"))
        return True
    conversation.clear_answer(turn.learner, question)
    return after_answer(turn, conversation, "skip")


def cmd_cancel(turn: Turn, conversation: Conversation, argument: str) -> bool:
    if review.has_open_draft(turn) and review.cancel_draft(turn):
        return False
    if not in_detour(turn):
        turn.reply(turn.t("cancel_nothing"))
        return True
    leave_detour(turn, conversation)
    turn.reply(turn.t("cancel_done"))
    return True


def cmd_stop(turn: Turn, conversation: Conversation, argument: str) -> bool:
    turn.learner.reminders_paused = True
    turn.reply(turn.t("reminders_paused"))
    return True


def cmd_start(turn: Turn, conversation: Conversation, argument: str) -> bool:
    if argument:
        turn.learner.start_parameter = argument[:64]
    if turn.learner.reminders_paused:
        turn.learner.reminders_paused = False
        turn.reply(turn.t("reminders_resumed"))
    else:
        turn.reply(turn.t("welcome_back", name_suffix=name_suffix(turn.learner)))
    return True


def cmd_export(turn: Turn, conversation: Conversation, argument: str) -> bool:
    turn.reply(turn.t("export_ready"), document=account.export_document(turn, conversation))
    return True


def cmd_forget(turn: Turn, conversation: Conversation, argument: str) -> bool:
    account.start_forget(turn, conversation)
    return False


def _require_plan(turn: Turn) -> bool:
    if turn.learner.plan_completed_at is None:
        turn.reply(turn.t("finish_plan_first"))
        return False
    return True


def cmd_submit(turn: Turn, conversation: Conversation, argument: str) -> bool:
    if not _require_plan(turn):
        return True
    if in_detour(turn):
        leave_detour(turn, conversation)
    evidence.start(turn, conversation, argument)
    return turn.learner.state == HOME


def cmd_edit(turn: Turn, conversation: Conversation, argument: str) -> bool:
    if not _require_plan(turn):
        return True
    if in_detour(turn):
        leave_detour(turn, conversation)
    conversation.fire(turn.learner, "edit")
    if argument:
        choose_edit(turn, conversation, argument)
    else:
        prompt_edit(turn, conversation)
    return False


def editable_questions(conversation: Conversation):
    return [question for question in conversation.questions if question.kind != "consent"]


def prompt_edit(turn: Turn, conversation: Conversation) -> None:
    questions = editable_questions(conversation)
    lines = [turn.t("edit_choose")]
    for number, question in enumerate(questions, start=1):
        lines.append(f"{number}. {question.label}")
    buttons = [Button(question.label[:60], f"{EDIT_CHOOSE}:{question.state}") for question in questions]
    turn.reply("\n".join(lines), buttons)


def choose_edit(turn: Turn, conversation: Conversation, text: str) -> None:
    """Find the answer to change (by number, id or label) and ask that question again."""
    questions = editable_questions(conversation)
    wanted = text.strip().casefold()
    chosen = None
    number = parse_number(wanted)
    if number is not None and 1 <= number <= len(questions):
        chosen = questions[number - 1]
    for question in questions:
        if wanted in (question.state.casefold(), question.spec_id.casefold(), question.label.casefold()):
            chosen = question
    if chosen is None:
        turn.reply(turn.t("edit_unknown"))
        prompt_edit(turn, conversation)
        return
    turn.learner.context = {**turn.learner.context, "editing": True}
    turn.learner.return_state = HOME
    conversation.jump(turn.learner, chosen.state)
    conversation.ask(turn, chosen)


# --- reviewer and coordinator commands ---------------------------------------------


def cmd_queue(turn: Turn, conversation: Conversation | None, argument: str) -> bool:
    review_cards.show_queue(turn)
    return False


def cmd_review(turn: Turn, conversation: Conversation | None, argument: str) -> bool:
    review_cards.show_card(turn, argument)
    return False


def cmd_revoke(turn: Turn, conversation: Conversation | None, argument: str) -> bool:
    """/revoke <assertion id or URL> <reason>: revoke an issued badge (coordinators only)."""
    assertions.revoke(turn, argument)
    return False


Command = Callable[[Turn, Conversation, str], bool]

LEARNER_COMMANDS: dict[str, Command] = {
    "help": cmd_help,
    "plan": cmd_plan,
    "pathway": cmd_pathway,
    "badges": cmd_badges,
    "back": cmd_back,
    "skip": cmd_skip,
    "cancel": cmd_cancel,
    "stop": cmd_stop,
    "start": cmd_start,
    "export": cmd_export,
    "forget": cmd_forget,
    "submit": cmd_submit,
    "edit": cmd_edit,
    "share": sharing.cmd_share,
    "supervisor": supervisor.cmd_supervisor,
}
"""Learner commands. Each returns True when the current question or next step
should be asked again after its reply."""

REVIEWER_COMMANDS: dict[str, Command] = {"queue": cmd_queue, "review": cmd_review}
COORDINATOR_COMMANDS: dict[str, Command] = {"report": report_commands.cmd_report, "revoke": cmd_revoke}
COORDINATOR_COMMANDS.update({
    "nudge": nudge_commands.cmd_nudge,
    "nudge_segment": nudge_commands.cmd_nudge_segment,
    "nudge_log": nudge_commands.cmd_nudge_log,
    "rules": nudge_commands.cmd_rules,
    "pause_rule": nudge_commands.cmd_pause_rule,
    "resume_rule": nudge_commands.cmd_resume_rule,
})
COORDINATOR_COMMANDS.update({
    "evaluations": evaluation_commands.cmd_evaluations,
    "resend_evaluation": evaluation_commands.cmd_resend_evaluation,
    "revoke_evaluation": evaluation_commands.cmd_revoke_evaluation,
})

MENU = ("help", "plan", "pathway", "submit", "supervisor", "badges", "share", "edit", "back", "skip", "cancel",
        "stop", "start", "export", "forget")
"""Commands in the order a platform's command menu lists them; each has a
``command_<name>`` description in the messages."""


def after_answer(turn: Turn, conversation: Conversation, trigger: str) -> bool:
    """Advance after an answer or a skip; finish the plan or an edit when home is reached."""
    from bot.dialog import on_question_done

    return on_question_done(turn, conversation, trigger)
