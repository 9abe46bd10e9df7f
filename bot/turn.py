"""The context of handling one inbound event: session, flows, learner and replies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot.config import Settings
from bot.events import Button, Document, InboundEvent, OutboundMessage
from bot.flows import Flows
from bot.models import Learner
from bot.quiet_hours import zone_or_default

UTC_ZONE = ZoneInfo("UTC")


@dataclass
class Turn:
    """Everything one handler call needs; replies are collected and written to the outbox."""

    session: Session
    flows: Flows
    settings: Settings
    event: InboundEvent
    now: datetime
    learner: Learner | None = None
    messages: list[OutboundMessage] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    previous_state: str | None = None
    action_expired: bool = False
    """Set when the event's button press was for a step already done, so nothing was chosen."""

    def t(self, key: str, **values: object) -> str:
        return self.flows.texts(key, **values)

    def reply(self, text: str, buttons: tuple[Button, ...] | list[Button] = (), *,
              document: Document | None = None, ephemeral: bool = False, expect_reply: bool = False,
              verbatim: Sequence[str] = ()) -> None:
        """Answer in the chat the event came from.

        ``expect_reply`` marks a question that only this user should answer by
        typing; the message's ``extra`` then carries ``reply_from_user_id`` and
        ``reply_from_name``, so that a platform can tie the reply to them in a
        busy group (a Telegram ForceReply addressed to that user).
        ``verbatim`` lists the parts of ``text`` that a user wrote (see
        :func:`verbatim_extra`).
        """
        extra = verbatim_extra(verbatim)
        if expect_reply:
            extra |= {"reply_from_user_id": self.event.user_id,
                      "reply_from_name": self.event.display_name or self.event.user_id}
        self.messages.append(
            OutboundMessage(
                platform=self.event.platform,
                chat_id=self.event.chat_id,
                text=text,
                buttons=tuple(buttons),
                document=document,
                ephemeral_user=self.event.user_id if ephemeral else None,
                learner_id=self.learner.id if self.learner is not None else None,
                extra=extra,
            )
        )

    def send_to_learner(self, learner: Learner, text: str, buttons: tuple[Button, ...] = (), *,
                        kind: str = "notice", document: Document | None = None,
                        verbatim: Sequence[str] = ()) -> None:
        """Message a learner in their own chat, whoever caused it."""
        self.messages.append(
            OutboundMessage(
                platform=learner.platform,
                chat_id=learner.chat_id,
                text=text,
                buttons=buttons,
                learner_id=learner.id,
                kind=kind,
                document=document,
                extra=verbatim_extra(verbatim),
            )
        )

    def send(self, message: OutboundMessage) -> None:
        self.messages.append(message)

    def learner_today(self) -> date:
        """Today's date where the learner lives (UTC until they gave a time zone, or if tzdata lacks theirs)."""
        zone = self.learner.timezone if self.learner is not None else None
        return self.now.astimezone(zone_or_default(zone, UTC_ZONE)).date()


def verbatim_extra(verbatim: Sequence[str]) -> dict[str, list[str]]:
    """Return the ``extra`` entry that lists the user-written parts of a message's text.

    An adapter that rewrites the bot's own wording for its platform (Slack
    spells ``/submit`` as ``/careerbot submit``) leaves these parts as typed.
    """
    spans = [span for span in verbatim if span]
    return {"verbatim": spans} if spans else {}


def name_suffix(learner: Learner) -> str:
    """", Ana" for a learner called Ana, or nothing before they gave a name."""
    return f", {learner.name}" if learner.name else ""
