"""Route one learner event: a command, a button, a file or text, by conversation state."""

from __future__ import annotations

import logging

from sqlalchemy import bindparam, select

from bot import account, assertions, commands, evidence, supervisor
from bot.conversation import EDIT_CHOOSE, FORGET_CONFIRM, HOME, SUBMIT_INPUT, Conversation
from bot.models import Learner
from bot.nudges import record_reply
from bot.pathway import plan_pathway, rebuild_pathway
from bot.turn import Turn, name_suffix
from bot.validate import InvalidInput, clean_text

logger = logging.getLogger(__name__)


# Built once: the statement is the same for every event, only its parameters change.
_LEARNER_BY_USER = (
    select(Learner)
    .where(Learner.platform == bindparam("platform"), Learner.platform_user_id == bindparam("user_id"))
    .with_for_update()
)


def load_learner(turn: Turn, *, create: bool) -> tuple[Learner | None, bool]:
    """Load (and lock) the learner of this event; create them when ``create`` is set."""
    event = turn.event
    learner = turn.session.scalar(_LEARNER_BY_USER, {"platform": event.platform, "user_id": event.user_id})
    if learner is not None or not create:
        return learner, False
    learner = Learner(
        platform=event.platform,
        platform_user_id=event.user_id,
        chat_id=event.chat_id,
        state=turn.flows.questions[0].state,
        answers={},
        context={},
        created_at=turn.now,
        last_activity_at=turn.now,
        start_parameter=(event.start_parameter or None),
        items=[],
        awards=[],
    )
    turn.session.add(learner)
    turn.session.flush()
    logger.info("new learner %s (%s)", learner.id, event.user_key)
    return learner, True


def reprompt(turn: Turn, conversation: Conversation) -> None:
    """Ask the current question again, or say what to do next."""
    state = turn.learner.state
    question = conversation.question(state)
    if question is not None:
        conversation.ask(turn, question)
    elif state == HOME:
        account.home_prompt(turn, conversation)
    elif state in evidence.PROMPTS:
        evidence.PROMPTS[state](turn, conversation)
    elif state in supervisor.PROMPTS:
        supervisor.PROMPTS[state](turn, conversation)
    elif state == EDIT_CHOOSE:
        commands.prompt_edit(turn, conversation)
    elif state == FORGET_CONFIRM:
        account.prompt_forget(turn, conversation)


def handle(turn: Turn, conversation: Conversation) -> None:
    """Handle one event from a learner in a private chat."""
    event = turn.event
    learner, created = load_learner(turn, create=True)
    turn.learner = learner
    turn.previous_state = learner.state
    if learner.chat_id != event.chat_id:
        learner.chat_id = event.chat_id
    if learner.unreachable_since is not None:
        learner.unreachable_since = None
    learner.last_activity_at = turn.now
    if not created:
        record_reply(turn.session, learner.id, turn.now)

    question_removed = not conversation.known_state(learner.state)
    if question_removed:
        logger.warning("learner %s was in unknown state %r; the flows changed", learner.id, learner.state)
        _leave_removed_question(turn, conversation)
    if evidence.item_gone(turn):
        logger.warning("learner %s was in %s for an item the catalog no longer has", learner.id, learner.state)
        evidence.leave(turn, conversation)
        turn.reply(turn.t("submit_item_gone"))

    if created:
        turn.reply(turn.t("greeting"))
        reprompt(turn, conversation)
        return
    if event.opened:
        turn.reply(turn.t("welcome_back", name_suffix=name_suffix(learner)))
        reprompt(turn, conversation)
        return
    if question_removed and not _is_command(event):
        # The input answered a question the flows no longer ask; it must not become the next answer.
        turn.reply(turn.t("question_removed"))
        reprompt(turn, conversation)
        return

    if event.edited:
        logger.info("edited message from learner %s not applied", learner.id)
        turn.reply(turn.t("edit_ignored"))
        reprompt(turn, conversation)
        return
    if event.action is not None:
        _handle_action(turn, conversation, event.action)
        return
    if event.attachment is not None and not event.text:
        _handle_input(turn, conversation, None)
        return
    if event.text is None:
        turn.reply(turn.t("unsupported_message"))
        reprompt(turn, conversation)
        return
    if len(event.text) > turn.settings.max_message_chars:
        logger.warning("message of %d characters from learner %s rejected", len(event.text), learner.id)
        turn.reply(turn.t("message_too_long", maximum=turn.settings.max_message_chars))
        reprompt(turn, conversation)
        return

    text = clean_text(event.text)
    parsed = commands.parse_command(text)
    if parsed is not None:
        _handle_command(turn, conversation, *parsed)
        return
    _handle_input(turn, conversation, text)


def _leave_removed_question(turn: Turn, conversation: Conversation) -> None:
    """Move a learner off a question the flows no longer have: home, or the next question of an unfinished plan."""
    learner = turn.learner
    learner.context = {key: value for key, value in learner.context.items() if key != "editing"}
    learner.return_state = None
    conversation.jump(learner, HOME if learner.plan_completed_at else conversation.first_unanswered(learner))


def _is_command(event) -> bool:
    return event.text is not None and commands.parse_command(clean_text(event.text)) is not None


def _handle_command(turn: Turn, conversation: Conversation, name: str, argument: str) -> None:
    command = commands.LEARNER_COMMANDS.get(name)
    if command is None and name in commands.REVIEWER_COMMANDS and turn.settings.is_reviewer(turn.event.user_key):
        command = commands.REVIEWER_COMMANDS[name]
    if command is None and name in commands.COORDINATOR_COMMANDS:
        if turn.settings.is_coordinator(turn.event.user_key):
            command = commands.COORDINATOR_COMMANDS[name]
        else:
            logger.warning("coordinator command /%s rejected: %s is not a coordinator", name, turn.event.user_key)
            turn.reply(turn.t("not_coordinator"))
            reprompt(turn, conversation)
            return
    if command is None:
        logger.warning("unknown command /%s from %s", name, turn.event.user_key)
        turn.reply(turn.t("unknown_command", command=name))
        reprompt(turn, conversation)
        return
    consent_needed = turn.learner.consented_at is None and name in ("submit", "edit", "export", "share", "supervisor")
    if consent_needed:
        turn.reply(turn.t("consent_needed_first"))
        reprompt(turn, conversation)
        return
    if command(turn, conversation, argument) and turn.learner is not None:
        reprompt(turn, conversation)


def _handle_action(turn: Turn, conversation: Conversation, action: str) -> None:
    """A button press: ``<state>:<value>``; a press for another state is stale."""
    state, _, value = action.partition(":")
    if state == "home":
        name = {"submit": "submit", "pathway": "pathway"}.get(value)
        if name is not None and turn.learner.state == HOME:
            _handle_command(turn, conversation, name, "")
            return
    if state != turn.learner.state or not value:
        logger.warning("stale button %r pressed by learner %s in state %s", action, turn.learner.id, turn.learner.state)
        turn.action_expired = True
        turn.reply(turn.t("button_expired"))
        reprompt(turn, conversation)
        return
    press = evidence.BUTTON_HANDLERS.get(state)
    if press is not None:
        press(turn, conversation, value)
        return
    _handle_input(turn, conversation, clean_text(value))


def _handle_input(turn: Turn, conversation: Conversation, text: str | None) -> None:
    """Give typed text (or an attachment) to the step of the learner's current state."""
    state = turn.learner.state
    attachment = turn.event.attachment
    if attachment is not None and state != SUBMIT_INPUT:
        logger.warning("file from learner %s outside an evidence step ignored", turn.learner.id)
        turn.reply(turn.t("file_not_expected"))
        reprompt(turn, conversation)
        return
    if not text and attachment is None:
        turn.reply(turn.t("invalid_empty"))
        reprompt(turn, conversation)
        return

    question = conversation.question(state)
    if question is not None:
        answer_question(turn, conversation, question, text or "")
    elif state == HOME:
        turn.reply(turn.t("home_free_text"))
        account.home_prompt(turn, conversation)
    elif state in evidence.HANDLERS:
        evidence.HANDLERS[state](turn, conversation, text, attachment)
    elif state in supervisor.HANDLERS:
        supervisor.HANDLERS[state](turn, conversation, text, attachment)
    elif state == EDIT_CHOOSE:
        commands.choose_edit(turn, conversation, text or "")
    elif state == FORGET_CONFIRM:
        _handle_forget(turn, conversation, text)


def _handle_forget(turn: Turn, conversation: Conversation, text: str | None) -> None:
    if account.handle_forget(turn, conversation, text) == "kept":
        _leave_forget(turn, conversation)
        reprompt(turn, conversation)


def _leave_forget(turn: Turn, conversation: Conversation) -> None:
    """Go back to where /forget was typed; an answer that was being changed with /edit still is."""
    learner = turn.learner
    target = learner.return_state
    if learner.context.get("editing") and target is not None and conversation.question(target) is not None:
        learner.return_state = HOME
        conversation.jump(learner, target)
        return
    commands.leave_detour(turn, conversation)


def answer_question(turn: Turn, conversation: Conversation, question, text: str) -> None:
    """Check and store the answer, then move on (or explain what was wrong and ask again)."""
    try:
        value = conversation.parse_answer(turn, question, text)
    except InvalidInput as problem:
        logger.warning("answer rejected: learner=%s question=%s reason=%s", turn.learner.id, question.state, problem.key)
        turn.reply(turn.t(problem.key, **problem.values))
        conversation.ask(turn, question)
        return

    if question.kind == "consent":
        if value == "decline":
            turn.reply(turn.t("consent_declined"))
            conversation.ask(turn, question)
            return
        turn.learner.consented_at = turn.now
    conversation.store_answer(turn.learner, question, value)
    if question.profile_field == "email":
        # Badges awarded before the learner had an email address are issued now.
        assertions.issue_pending(turn, turn.learner)
    on_question_done(turn, conversation, "answer")


def on_question_done(turn: Turn, conversation: Conversation, trigger: str) -> bool:
    """Advance after an answer or skip; returns False because it sends its own prompt."""
    learner = turn.learner
    editing = bool(learner.context.get("editing"))
    edited = conversation.question(learner.state)
    conversation.fire(learner, trigger)

    if editing:
        learner.context = {key: value for key, value in learner.context.items() if key != "editing"}
        learner.return_state = None
        if learner.plan_completed_at is not None and edited is not None and edited.section == "plan":
            build_pathway(turn, conversation)
            turn.reply(turn.t("edit_saved_rebuilt"))
        else:
            turn.reply(turn.t("edit_saved"))
        reprompt(turn, conversation)
        return False

    if learner.state == HOME and learner.plan_completed_at is None:
        learner.plan_completed_at = turn.now
        build_pathway(turn, conversation)
        turn.reply(turn.t("pathway_ready", name_suffix=name_suffix(learner)))
        turn.reply(account.pathway_text(turn))
    reprompt(turn, conversation)
    return False


def build_pathway(turn: Turn, conversation: Conversation) -> None:
    planned = plan_pathway(
        turn.flows.catalog,
        turn.flows.texts,
        turn.learner.answers,
        turn.learner_today(),
        conversation.rating_prefix,
        conversation.max_rating,
    )
    rebuild_pathway(turn.session, turn.learner, planned)
    logger.info("pathway built for learner %s: %d items", turn.learner.id, len(planned))
