"""Platform-neutral inbound events and outbound messages.

Adapters convert a platform update into an :class:`InboundEvent` and deliver
each :class:`OutboundMessage` the core produces. Neither type knows about
Telegram, Slack or the terminal beyond the ``platform`` name.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

ChatType = Literal["private", "group"]


@dataclass(frozen=True)
class Attachment:
    """A file a user sent. ``data`` is None when the adapter did not download
    it: because ``size`` is over the platform's download limit, or because the
    download failed (``download_failed``), and the user should send it again."""

    filename: str
    content_type: str | None
    size: int
    data: bytes | None
    download_failed: bool = False


@dataclass(frozen=True)
class InboundEvent:
    """One thing a user did: a message, a button press, or opening the chat.

    ``update_id`` is the platform's id for this delivery (Telegram update_id,
    Slack event_id or action id); the core handles each (platform, update_id)
    once, so a redelivered update changes nothing.
    """

    platform: str
    user_id: str
    chat_id: str
    update_id: str
    text: str | None = None
    action: str | None = None
    attachment: Attachment | None = None
    chat_type: ChatType = "private"
    display_name: str | None = None
    opened: bool = False
    start_parameter: str | None = None
    received_at: datetime | None = None
    edited: bool = False
    """True when the user changed a message sent earlier; ``text`` is the new text, which the core does not apply."""

    @property
    def user_key(self) -> str:
        return f"{self.platform}:{self.user_id}"


@dataclass(frozen=True)
class Button:
    label: str
    action: str


@dataclass(frozen=True)
class Document:
    """A file to send: either stored evidence (``path``) or generated ``content``."""

    filename: str
    content_type: str
    path: str | None = None
    content: bytes | None = None


@dataclass(frozen=True)
class OutboundMessage:
    """A message for one chat, as the core wants it delivered.

    ``text`` is plain text: adapters escape it for their markup. ``ref`` names a
    message that may be edited later (a review card carries
    ``submission:<id>``); a message with ``edit_ref`` replaces the text and
    buttons of the sent message with that ref. ``ephemeral_user`` asks the
    adapter to show the message to that user only where the platform can
    (a callback answer on Telegram, an ephemeral message on Slack).
    """

    platform: str
    chat_id: str
    text: str
    buttons: tuple[Button, ...] = ()
    ref: str | None = None
    edit_ref: str | None = None
    document: Document | None = None
    ephemeral_user: str | None = None
    learner_id: int | None = None
    kind: str = "reply"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"text": self.text}
        if self.buttons:
            payload["buttons"] = [[button.label, button.action] for button in self.buttons]
        if self.ephemeral_user:
            payload["ephemeral_user"] = self.ephemeral_user
        if self.document is not None:
            payload["document"] = {
                "filename": self.document.filename,
                "content_type": self.document.content_type,
                "path": self.document.path,
                "content": base64.b64encode(self.document.content).decode() if self.document.content else None,
            }
        if self.extra:
            payload["extra"] = self.extra
        return payload

    @classmethod
    def from_row(cls, platform: str, chat_id: str, payload: dict[str, Any], *, ref=None, edit_ref=None,
                 learner_id=None, kind="reply") -> OutboundMessage:
        document = None
        if payload.get("document"):
            raw = payload["document"]
            document = Document(
                filename=raw["filename"],
                content_type=raw["content_type"],
                path=raw.get("path"),
                content=base64.b64decode(raw["content"]) if raw.get("content") else None,
            )
        return cls(
            platform=platform,
            chat_id=chat_id,
            text=payload.get("text", ""),
            buttons=tuple(Button(label, action) for label, action in payload.get("buttons", [])),
            ref=ref,
            edit_ref=edit_ref,
            document=document,
            ephemeral_user=payload.get("ephemeral_user"),
            learner_id=learner_id,
            kind=kind,
            extra=payload.get("extra", {}),
        )
