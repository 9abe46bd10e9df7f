"""Random sequences of what users do, against the real engine, with the product's promises checked after each step.

Hypothesis drives two learners (one of them also a reviewer), a reviewer who
is not a learner, and the reviewer channel: text, commands, fresh and stale
buttons, malformed actions, files, redelivered updates and restarts. After
every step the checks say that the user got an answer that tells them what to
do next, that nothing crashed, that no state is unknown, that the reviewer
rules held and that drafts survived.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import func, select

from bot import commands, review
from bot.app import build_engine
from bot.config import load_settings
from bot.engine import Engine, HandledEvent
from bot.events import Attachment, InboundEvent, OutboundMessage
from bot.models import Learner, OutboxMessage, ReviewDecision, Submission
from bot.validate import clean_text
from tests.bot.scripted import REFLECTION, plan_answers

LEARNERS = ("ana", "bo")
REVIEWERS = ("ana", "rita")
"""Ana is a learner and a reviewer; Rita only reviews."""
REVIEWER_CHAT = "reviewers"

COMMANDS = ("/help", "/plan", "/pathway", "/badges", "/back", "/skip", "/cancel", "/stop", "/start", "/export",
            "/forget", "/submit", "/submit 1", "/submit 99", "/edit", "/edit 2", "/edit nothing", "/share",
            "/queue", "/review 1", "/review x", "/report", "/nope", "/", "/SUBMIT@careerbot", "/cancel@other")
ODD_TEXTS = ("", " ", "\x00", "\u200b", "\ud800", "²", "0", "1", "2", "3", "99", "-1", "yes", "no", "met",
             "not met", "send", "later", "change", "delete", "keep", "reflection", "link", "file", "plan",
             "https://example.org/evidence", "http://127.0.0.1/x", "<b>&amp;</b>", "<!channel> @here",
             "{name} {0} %s", "x" * 25000, REFLECTION)
MALFORMED_ACTIONS = ("", ":", "rv:", "rv:a:", "rv:a:999999999999999999999", "rv:m:1:99:1", "rv:m:1:1:2",
                     "rv:f:1:", "rv:f:1:0101", "rv:c:1", "rv:a:1", "submit_item:abc", "submit_item:1",
                     "home:", "home:submit", "consent:agree", "forget_confirm:delete", "nowhere:1", "é" * 40)
FILES = (
    Attachment("proof.pdf", "application/pdf", 14, b"%PDF-1.4 proof"),
    Attachment("virus.exe", None, 2, b"MZ"),
    Attachment("huge.pdf", "application/pdf", 10**9, None),
    Attachment("empty.pdf", "application/pdf", 0, b""),
    Attachment("lost.pdf", "application/pdf", 10, None, download_failed=True),
)
ANSWERS = plan_answers()
STAFF_COMMANDS = frozenset(commands.REVIEWER_COMMANDS) | frozenset(commands.COORDINATOR_COMMANDS)


class CareerbotMachine(RuleBasedStateMachine):
    """Users of one careerbot, with a restartable engine on a data folder of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.data_dir = Path(tempfile.mkdtemp(prefix="careerbot-fuzz-"))
        self.engine = self._build()
        self.buttons: dict[str, list[str]] = {}
        """Button actions each chat was sent, oldest first."""
        self.events: list[InboundEvent] = []
        self.drafts: dict[int, int] = {}
        """Draft submission id -> learner id, for every draft seen."""
        self.forgotten: set[int] = set()

    def _build(self) -> Engine:
        settings = load_settings(environ={}, data_dir=self.data_dir, reviewers=tuple(f"console:{user}" for user in
                                                                                      REVIEWERS),
                                 coordinators=("console:rita",), reviewer_chats={"console": REVIEWER_CHAT})
        return build_engine(settings)

    def teardown(self) -> None:
        self.engine.session_factory.kw["bind"].dispose()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # --- sending ------------------------------------------------------------------------

    def send(self, user: str, *, chat_id: str | None = None, **fields) -> HandledEvent:
        chat_id = chat_id or user
        event = InboundEvent(platform="console", user_id=user, chat_id=chat_id, update_id=uuid.uuid4().hex,
                             display_name=user.title(), received_at=datetime.now(timezone.utc),
                             chat_type="group" if chat_id == REVIEWER_CHAT else "private", **fields)
        learner_before = self.learner(user)
        handled = self.engine.handle(event)
        self.events.append(event)
        self.check_handled(event, handled, learner_before)
        return handled

    def check_handled(self, event: InboundEvent, handled: HandledEvent, learner_before: Learner | None) -> None:
        assert not handled.duplicate
        failure = self.engine.flows.texts("internal_error")
        assert all(message.text != failure for message in handled.messages), event
        for message in handled.messages:
            self.buttons.setdefault(message.chat_id, []).extend(button.action for button in message.buttons)
            assert "Traceback" not in message.text
            assert message.text.strip() or message.document is not None or message.edit_ref, message
        if learner_before is not None and self.learner(event.user_id) is None:
            self.forgotten.add(learner_before.id)
        if event.chat_type == "private":
            self.check_next_step(event, handled)

    def check_next_step(self, event: InboundEvent, handled: HandledEvent) -> None:
        """Check that the last message in the user's own chat shows what to do next."""
        own = [message for message in handled.messages if message.chat_id == event.chat_id]
        assert own, event
        last = own[-1]
        if last.ephemeral_user is not None:
            return  # a reviewer's refusal, shown on the pressed button where the platform can
        learner = self.learner(event.user_id)
        parsed = commands.parse_command(clean_text(event.text or ""))
        staff_command = parsed is not None and parsed[0] in STAFF_COMMANDS
        review_action = (event.action or "").startswith(review.ACTION_PREFIX)
        if learner is None or staff_command or review_action:
            return  # staff are not led through a flow, and a deleted learner starts over by writing
        guided = bool(last.buttons) or "/" in last.text or "?" in last.text or "type" in last.text.casefold()
        assert guided, (event, learner.state, last.text)

    def learner(self, user: str) -> Learner | None:
        with self.engine.session_factory() as session:
            return session.scalar(select(Learner).where(Learner.platform_user_id == user))

    # --- rules --------------------------------------------------------------------------

    @rule(user=st.sampled_from(LEARNERS + ("rita",)), text=st.sampled_from(COMMANDS + ODD_TEXTS))
    def type_text(self, user: str, text: str) -> None:
        self.send(user, text=text)

    @rule(user=st.sampled_from(LEARNERS), text=st.text(max_size=40))
    def type_anything(self, user: str, text: str) -> None:
        self.send(user, text=text)

    @rule(user=st.sampled_from(LEARNERS + ("rita",)), text=st.sampled_from(COMMANDS + ODD_TEXTS))
    def edit_message(self, user: str, text: str) -> None:
        before = self.learner(user)
        self.send(user, text=text, edited=True)
        after = self.learner(user)
        if before is not None:
            assert after is not None, "an edit deleted the learner"
            assert after.state == before.state, (text, before.state, after.state)
            assert after.answers == before.answers, text

    @rule(user=st.sampled_from(LEARNERS))
    def answer_question(self, user: str) -> None:
        learner = self.learner(user)
        state = learner.state if learner is not None else "consent"
        self.send(user, text=ANSWERS.get(state, REFLECTION if state == "submit_input" else "1"))

    @rule(user=st.sampled_from(LEARNERS))
    def finish_plan(self, user: str) -> None:
        if self.learner(user) is None:
            self.send(user, text="/start")
        for question in self.engine.flows.questions:
            learner = self.learner(user)
            if learner is None or learner.plan_completed_at is not None or learner.state != question.state:
                continue
            self.send(user, text=ANSWERS[question.state])

    @rule(user=st.sampled_from(LEARNERS), data=st.data())
    def press_button(self, user: str, data) -> None:
        sent = self.buttons.get(user, [])
        if not sent:
            return
        fresh = data.draw(st.booleans())
        choices = sent[-8:] if fresh else sent
        self.send(user, action=data.draw(st.sampled_from(choices)))

    @rule(user=st.sampled_from(LEARNERS + ("rita",)), action=st.sampled_from(MALFORMED_ACTIONS))
    def press_malformed(self, user: str, action: str) -> None:
        self.send(user, action=action)

    @rule(user=st.sampled_from(LEARNERS), attachment=st.sampled_from(FILES))
    def send_file(self, user: str, attachment: Attachment) -> None:
        self.send(user, attachment=attachment)

    @rule(user=st.sampled_from(LEARNERS))
    def open_chat(self, user: str) -> None:
        self.send(user, opened=True)

    @rule(user=st.sampled_from(LEARNERS))
    def submit_reflection(self, user: str) -> None:
        learner = self.learner(user)
        if learner is None or learner.plan_completed_at is None:
            return
        for text in ("/submit", "1", "reflection", REFLECTION, "send"):
            self.send(user, text=text)

    @rule(reviewer=st.sampled_from(REVIEWERS), data=st.data())
    def review_in_channel(self, reviewer: str, data) -> None:
        actions = [action for action in self.buttons.get(REVIEWER_CHAT, []) if action.startswith("rv:")]
        if not actions:
            return
        self.send(reviewer, chat_id=REVIEWER_CHAT, action=data.draw(st.sampled_from(actions)))

    @rule(reviewer=st.sampled_from(REVIEWERS), text=st.sampled_from(("yes", "no", "maybe", "", "\u200b",
                                                                      "Please add dates.", "/cancel", "/queue")))
    def type_in_channel(self, reviewer: str, text: str) -> None:
        self.send(reviewer, chat_id=REVIEWER_CHAT, text=text)

    @precondition(lambda self: self.events)
    @rule(data=st.data())
    def redeliver(self, data) -> None:
        event = data.draw(st.sampled_from(self.events))
        with self.engine.session_factory() as session:
            outbox_before = session.scalar(select(func.count()).select_from(OutboxMessage))
        state_before = getattr(self.learner(event.user_id), "state", None)

        handled = self.engine.handle(event)

        assert handled.duplicate
        assert handled.messages == ()
        with self.engine.session_factory() as session:
            assert session.scalar(select(func.count()).select_from(OutboxMessage)) == outbox_before
        assert getattr(self.learner(event.user_id), "state", None) == state_before

    @rule()
    def restart(self) -> None:
        self.engine.session_factory.kw["bind"].dispose()
        self.engine = self._build()

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def states_known(self) -> None:
        with self.engine.session_factory() as session:
            states = session.scalars(select(Learner.state)).all()
        assert all(self.engine.conversation.known_state(state) for state in states), states

    @invariant()
    def finished_plan_not_asked_again(self) -> None:
        """After the plan, a learner is on a question only while changing that answer with /edit."""
        with self.engine.session_factory() as session:
            for learner in session.scalars(select(Learner).where(Learner.plan_completed_at.is_not(None))):
                if self.engine.conversation.question(learner.state) is not None:
                    assert learner.context.get("editing"), (learner.state, learner.context)

    @invariant()
    def reviewer_rules_hold(self) -> None:
        with self.engine.session_factory() as session:
            decisions = session.scalars(select(ReviewDecision)).all()
            for decision in decisions:
                submission = session.get(Submission, decision.submission_id)
                assert decision.reviewer_key in self.engine.settings.reviewers
                assert decision.reviewer_key != submission.learner.user_key
                assert submission.status == decision.decision
                if decision.decision == "changes_requested":
                    assert clean_text(decision.feedback)

    @invariant()
    def drafts_survive(self) -> None:
        with self.engine.session_factory() as session:
            for submission_id, learner_id in session.execute(
                select(Submission.id, Submission.learner_id).where(Submission.status == "draft")
            ):
                self.drafts[submission_id] = learner_id
            kept = set(session.scalars(select(Submission.id)))
        for submission_id, learner_id in self.drafts.items():
            assert submission_id in kept or learner_id in self.forgotten, submission_id


FUZZ_EXAMPLES = int(os.environ.get("CAREERBOT_FUZZ_EXAMPLES", "10"))
"""Sequences tried per run; set CAREERBOT_FUZZ_EXAMPLES higher for a longer search (about 2 s each)."""

TestCareerbotMachine = CareerbotMachine.TestCase
# Shrinking is off: a failing sequence of engine calls takes minutes to shrink,
# and the failure report already lists every step with its arguments.
TestCareerbotMachine.settings = settings(
    max_examples=FUZZ_EXAMPLES, stateful_step_count=30, deadline=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
