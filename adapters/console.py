"""The terminal adapter: chat with careerbot on standard input and output.

Each line typed (or piped) is one message. Choices are printed numbered; a
number picks that choice, and typing the choice's text works too. ``/attach
PATH`` sends a file as evidence, and ``/quit`` (or end of input) leaves. A
reviewer's session also prints what is posted to the terminal reviewer channel.
"""

from __future__ import annotations

import io
import mimetypes
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from bot import outbox
from bot.engine import Engine
from bot.events import Attachment, Button, InboundEvent, OutboundMessage
from bot.validate import parse_number

PLATFORM = "console"
DOWNLOAD_LIMIT = 20 * 1024 * 1024


class ConsoleChat:
    """One user's chat session in the terminal."""

    def __init__(self, engine: Engine, user_id: str, *, name: str | None = None,
                 stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
        self.engine = engine
        self.user_id = user_id
        self.name = name or user_id
        for stream in (stdin, stdout):
            # Bytes the terminal's encoding cannot read or show (a pasted file in
            # another encoding, an emoji on an ASCII terminal) become U+FFFD or "?"
            # instead of stopping the chat with a UnicodeError.
            if isinstance(stream, io.TextIOWrapper):
                stream.reconfigure(errors="replace")
        self.stdin = stdin
        self.stdout = stdout
        self.interactive = stdin.isatty()
        self.last_buttons: tuple[Button, ...] = ()
        self.reviewer_chat = engine.settings.reviewer_chat(PLATFORM)
        self.is_reviewer = engine.settings.is_reviewer(f"{PLATFORM}:{user_id}")

    def run(self) -> None:
        """Open the chat, then handle lines until /quit or end of input."""
        self.handle(self._event(opened=True))
        while True:
            if self.interactive:
                self.stdout.write("> ")
                self.stdout.flush()
            line = self.stdin.readline()
            if not line:
                break
            line = line.rstrip("\n")
            if line.strip() == "/quit":
                break
            self.handle(self.to_event(line))

    def to_event(self, line: str) -> InboundEvent:
        """Convert a typed line into an event: a button number, a file, or text."""
        stripped = line.strip()
        number = parse_number(stripped)
        if number is not None and 1 <= number <= len(self.last_buttons):
            return self._event(action=self.last_buttons[number - 1].action)
        command, _, argument = stripped.partition(" ")
        if command == "/attach":
            return self._attachment_event(argument.strip())
        return self._event(text=line)

    def _attachment_event(self, raw_path: str) -> InboundEvent:
        path = Path(raw_path).expanduser()
        if not raw_path or not path.is_file():
            self.stdout.write(f"(terminal) No file at {raw_path or '(empty path)'}; type /attach PATH with a real file.\n")
            return self._event(text="")
        size = path.stat().st_size
        data = path.read_bytes() if size <= DOWNLOAD_LIMIT else None
        content_type, _ = mimetypes.guess_type(path.name)
        return self._event(attachment=Attachment(filename=path.name, content_type=content_type, size=size, data=data))

    def _event(self, **fields) -> InboundEvent:
        return InboundEvent(
            platform=PLATFORM,
            user_id=self.user_id,
            chat_id=self.user_id,
            update_id=uuid.uuid4().hex,
            display_name=self.name,
            received_at=datetime.now(timezone.utc),
            **fields,
        )

    def handle(self, event: InboundEvent) -> None:
        self.engine.handle(event)
        self.deliver()

    def deliver(self) -> None:
        """Print the pending messages for this user (and the reviewer channel for reviewers)."""
        chats = [self.user_id]
        if self.is_reviewer and self.reviewer_chat:
            chats.append(self.reviewer_chat)
        factory = self.engine.session_factory
        for chat_id in chats:
            for outbox_id, message in outbox.claim_pending(factory, PLATFORM, chat_id=chat_id):
                if message.ephemeral_user not in (None, self.user_id):
                    continue
                self.print_message(message, channel=chat_id != self.user_id)
                outbox.mark_sent(factory, outbox_id, platform_message_id=str(outbox_id))

    def print_message(self, message: OutboundMessage, *, channel: bool = False) -> None:
        prefix = "[reviewer channel] " if channel else ""
        if message.edit_ref:
            prefix += "(updated) "
        self.stdout.write(f"\n{prefix}{message.text}\n")
        if message.document is not None:
            self.stdout.write(f"  [file] {self._save_document(message)}\n")
        if message.buttons:
            for number, button in enumerate(message.buttons, start=1):
                self.stdout.write(f"  {number}) {button.label}\n")
        # A number picks a button of the last message printed with buttons. A reply
        # without buttons in the user's own chat ends that choice.
        if message.buttons or not channel:
            self.last_buttons = message.buttons
        self.stdout.flush()

    def _save_document(self, message: OutboundMessage) -> str:
        document = message.document
        if document.path is not None:
            return f"{document.filename}: {document.path}"
        # NOTE: /forget does not delete these files. They are the learner's copy of a
        # document, as a download is on other platforms, but they sit in the data folder.
        target_dir = self.engine.settings.data_dir / "exports"
        target_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        target = target_dir / f"{self.user_id}-{stamp}-{document.filename}"
        target.write_bytes(document.content or b"")
        return f"{document.filename} saved to {target}"
