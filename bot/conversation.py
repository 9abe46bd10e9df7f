"""The learner's conversation: a ``transitions`` machine and the question steps.

One :class:`Conversation` is built per flows definition and shared by every
learner. A learner's place is the ``state`` column of their row. Handling an
event passes the row to the machine as its model for the length of one call,
so no machine object is kept per learner.

States are the questions of ``conversation.yaml`` in file order, then
``home`` (the pathway is ready) and the detours from home: submitting
evidence, changing an answer, deleting one's data.
"""

from __future__ import annotations

import logging
from datetime import date

from transitions import Machine, MachineError

from bot.events import Button
from bot.flows import Flows
from bot.models import Learner
from bot.questions import Question
from bot.turn import Turn
from bot.validate import (
    InvalidInput,
    check_email,
    check_future_date,
    check_length,
    check_rating,
    check_timezone,
    match_choice,
)

logger = logging.getLogger(__name__)

HOME = "home"
SUBMIT_ITEM = "submit_item"
SUBMIT_KIND = "submit_kind"
SUBMIT_INPUT = "submit_input"
SUBMIT_CONFIRM = "submit_confirm"
EDIT_CHOOSE = "edit_choose"
FORGET_CONFIRM = "forget_confirm"
SUPERVISOR_NAME = "supervisor_name"
SUPERVISOR_ORGANIZATION = "supervisor_organization"
SUPERVISOR_EMAIL = "supervisor_email"
PLACEMENT_START = "placement_start"
PLACEMENT_END = "placement_end"
SUPERVISOR_CONFIRM = "supervisor_confirm"
SUPERVISOR_STEPS = (SUPERVISOR_NAME, SUPERVISOR_ORGANIZATION, SUPERVISOR_EMAIL, PLACEMENT_START, PLACEMENT_END,
                    SUPERVISOR_CONFIRM)
"""The detour that collects a work supervisor's details for an evaluation link, in order."""
DETOURS = (SUBMIT_ITEM, SUBMIT_KIND, SUBMIT_INPUT, SUBMIT_CONFIRM, EDIT_CHOOSE, FORGET_CONFIRM, *SUPERVISOR_STEPS)


def _is_editing(event_data) -> bool:
    return bool(event_data.model.context.get("editing"))


class Conversation:
    """The state machine of one flows definition, and the steps that ask and store answers."""

    def __init__(self, flows: Flows) -> None:
        self.flows = flows
        self.questions: tuple[Question, ...] = flows.questions
        self.first_state = self.questions[0].state
        self.rating_prefix = next((q.spec_id for q in self.questions if q.skill_id), "ratings")
        self.max_rating = next((q.max_rating for q in self.questions if q.skill_id), 5)
        self.machine = self._build_machine()
        self._numbers = {question.state: number for number, question in enumerate(self.questions, start=1)}

    def _build_machine(self) -> Machine:
        question_states = [question.state for question in self.questions]
        machine = Machine(
            model=None,
            states=question_states + [HOME, *DETOURS],
            initial=self.first_state,
            send_event=True,
            auto_transitions=True,
            name="careerbot",
        )
        for index, question in enumerate(self.questions):
            following = question_states[index + 1] if index + 1 < len(question_states) else HOME
            machine.add_transition("answer", question.state, HOME, conditions=[_is_editing])
            machine.add_transition("answer", question.state, following)
            if question.optional:
                machine.add_transition("skip", question.state, HOME, conditions=[_is_editing])
                machine.add_transition("skip", question.state, following)
            if index > 0:
                machine.add_transition("back", question.state, question_states[index - 1], unless=[_is_editing])
        machine.add_transition("submit", HOME, SUBMIT_ITEM)
        machine.add_transition("edit", HOME, EDIT_CHOOSE)
        machine.add_transition("choose_kind", SUBMIT_ITEM, SUBMIT_KIND)
        machine.add_transition("provide", [SUBMIT_ITEM, SUBMIT_KIND, SUBMIT_CONFIRM], SUBMIT_INPUT)
        machine.add_transition("review_draft", [SUBMIT_ITEM, SUBMIT_KIND, SUBMIT_INPUT], SUBMIT_CONFIRM)
        machine.add_transition("back", SUBMIT_KIND, SUBMIT_ITEM)
        machine.add_transition("back", SUBMIT_INPUT, SUBMIT_ITEM)
        machine.add_transition("back", SUBMIT_CONFIRM, SUBMIT_INPUT)
        machine.add_transition("ask_supervisor", [HOME, SUBMIT_ITEM, SUBMIT_KIND, SUPERVISOR_CONFIRM], SUPERVISOR_NAME)
        machine.add_transition("review_supervisor", [HOME, SUBMIT_ITEM, SUBMIT_KIND], SUPERVISOR_CONFIRM)
        for earlier, later in zip(SUPERVISOR_STEPS, SUPERVISOR_STEPS[1:]):
            machine.add_transition("supervisor_next", earlier, later)
            machine.add_transition("back", later, earlier)
        machine.add_transition("done", [*DETOURS, HOME], HOME)
        return machine

    # --- moving between states -------------------------------------------------

    def fire(self, learner: Learner, trigger: str) -> bool:
        """Run ``trigger`` on the learner; return False when it is not allowed from their state."""
        event = self.machine.events.get(trigger)
        if event is None:
            raise ValueError(f"careerbot: unknown trigger {trigger!r}")
        try:
            return bool(event.trigger(learner))
        except MachineError:
            return False

    def jump(self, learner: Learner, state: str) -> None:
        """Move to ``state`` through the machine's ``to_<state>`` transition.

        A learner stored in a state that the flows no longer have is set to
        ``state`` directly, because the machine has no transition out of it.
        """
        if not self.known_state(learner.state):
            learner.state = state
            return
        self.fire(learner, f"to_{state}")

    def known_state(self, state: str) -> bool:
        return state in self.machine.states

    def question(self, state: str) -> Question | None:
        return self.flows.question(state)

    def first_unanswered(self, learner: Learner) -> str:
        for question in self.questions:
            if question.state not in learner.answers and not question.optional:
                return question.state
        return HOME

    # --- asking ----------------------------------------------------------------

    def ask(self, turn: Turn, question: Question) -> None:
        """Send the prompt of ``question`` with its choices as buttons."""
        lines = [turn.t("question_progress", number=self._numbers[question.state], total=len(self.questions))]
        lines.append(question.prompt.strip())
        if question.kind == "rating":
            lines.append(turn.t("rating_hint", minimum=question.min_rating, maximum=question.max_rating))
        if question.optional:
            lines.append(turn.t("optional_hint"))
        if turn.learner is not None:
            # Shown when editing, and after /back, so the learner can keep the answer they gave.
            current = turn.learner.answers.get(question.state)
            if current is not None:
                lines.append(turn.t("edit_current_answer", answer=self.format_answer(question, current)))
            if turn.learner.context.get("editing"):
                lines.append(turn.t("edit_cancel_hint"))
        turn.reply("\n\n".join(lines), self.buttons(question))

    def buttons(self, question: Question) -> list[Button]:
        if question.kind == "rating":
            values = range(question.min_rating, question.max_rating + 1)
            return [Button(str(value), f"{question.state}:{value}") for value in values]
        return [Button(choice.label, f"{question.state}:{choice.value}") for choice in question.choices]

    def format_answer(self, question: Question, value: object) -> str:
        if question.choices:
            for choice in question.choices:
                if choice.value == value:
                    return choice.label
        if question.kind == "rating":
            return f"{value}/{question.max_rating}"
        return str(value)

    # --- answering -------------------------------------------------------------

    def parse_answer(self, turn: Turn, question: Question, text: str) -> object:
        """Check an answer against its question; raise InvalidInput with the reason."""
        kind = question.kind
        if kind in ("choice", "consent"):
            return match_choice(text, question.choices).value
        if kind == "rating":
            return check_rating(text, question.min_rating, question.max_rating)
        if kind == "email":
            return check_email(text)
        if kind == "timezone":
            return check_timezone(text, question)
        if kind == "date":
            today = turn.learner_today()
            return check_future_date(text, today, question.max_years_ahead).isoformat()
        return check_length(text, question.min_length, question.max_length)

    def store_answer(self, learner: Learner, question: Question, value: object) -> None:
        learner.answers = {**learner.answers, question.state: value}
        if question.profile_field is not None:
            setattr(learner, question.profile_field, value)

    def clear_answer(self, learner: Learner, question: Question) -> None:
        learner.answers = {key: value for key, value in learner.answers.items() if key != question.state}
        if question.profile_field is not None:
            setattr(learner, question.profile_field, None)

    def plan_lines(self, turn: Turn, learner: Learner) -> list[str]:
        """The learner's answers, one ``label: answer`` line per question."""
        lines = []
        for question in self.questions:
            if question.kind == "consent":
                continue
            value = learner.answers.get(question.state)
            shown = self.format_answer(question, value) if value is not None else turn.t("plan_no_answer")
            lines.append(f"{question.label}: {shown}")
        return lines

    def target_date(self, learner: Learner) -> date | None:
        for question in self.questions:
            if question.kind == "date" and question.state in learner.answers:
                return date.fromisoformat(learner.answers[question.state])
        return None
