"""The terminal adapter: chat with careerbot on standard input and output.

Each line typed (or piped) is one message. Choices are printed numbered; a
number picks that choice, and typing the choice's text works too. ``/attach
PATH`` sends a file as evidence, and ``/quit`` (or end of input) leaves. A
reviewer's session also prints what is posted to the terminal reviewer channel.
In an interactive session, messages that arrive while the user is idle (a
reviewer's decision made in another terminal) are printed every few seconds.
"""

from __future__ import annotations

import io
import logging
import mimetypes
import shutil
import sys
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

from sqlalchemy import select

from bot import outbox
from bot.engine import Engine
from bot.events import Attachment, Button, InboundEvent, OutboundMessage
from bot.models import Learner
from bot.validate import parse_number

logger = logging.getLogger(__name__)

PLATFORM = "console"
DOWNLOAD_LIMIT = 20 * 1024 * 1024
POLL_SECONDS = 2.0
"""How often an idle interactive session looks for new messages."""
TERMINAL_HELP = "(terminal) /attach PATH sends a file as evidence; /quit leaves the chat."


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
        self._delivering = threading.Lock()
        self._waiting_for_input = False

    def run(self, *, live: bool | None = None) -> None:
        """Open the chat, then handle lines until /quit or end of input.

        ``live`` (by default: when standard input is a terminal) prints new
        messages every ``POLL_SECONDS`` while the user has not typed.
        """
        self.handle(self._event(opened=True))
        stop = threading.Event()
        if self.interactive if live is None else live:
            threading.Thread(target=self._poll, args=(stop,), name="console-poll", daemon=True).start()
        try:
            self._read_lines()
        finally:
            stop.set()

    def _read_lines(self) -> None:
        while True:
            if self.interactive:
                self.stdout.write("> ")
                self.stdout.flush()
            self._waiting_for_input = True
            line = self.stdin.readline()
            self._waiting_for_input = False
            if not line:
                break
            line = line.rstrip("\n")
            if line.strip() == "/quit":
                break
            event = self.to_event(line)
            if event is not None:
                self.handle(event)
            if line.strip() == "/help":
                self.stdout.write(f"{TERMINAL_HELP}\n")
                self.stdout.flush()

    def _poll(self, stop: threading.Event) -> None:
        """Print messages that arrived while the user is idle, until ``stop`` is set."""
        while not stop.wait(POLL_SECONDS):
            if not self._waiting_for_input:
                continue
            try:
                printed = self.deliver()
            except Exception:
                logger.exception("console: looking for new messages for %s failed", self.user_id)
                continue
            if printed and self.interactive and self._waiting_for_input:
                self.stdout.write("> ")
                self.stdout.flush()

    def to_event(self, line: str) -> InboundEvent | None:
        """Convert a typed line into an event: a button number, a file, or text.

        Returns None for ``/attach`` without a readable file, after saying so.
        """
        stripped = line.strip()
        number = parse_number(stripped)
        if number is not None and 1 <= number <= len(self.last_buttons):
            return self._event(action=self.last_buttons[number - 1].action)
        command, _, argument = stripped.partition(" ")
        if command == "/attach":
            return self._attachment_event(argument.strip())
        return self._event(text=line)

    def _attachment_event(self, raw_path: str) -> InboundEvent | None:
        path = Path(raw_path).expanduser()
        if not raw_path or not path.is_file():
            self.stdout.write(f"(terminal) No file at {raw_path or '(empty path)'}; type /attach PATH with a real file.\n")
            return None
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
        known = self._is_learner()
        self.engine.handle(event)
        if known and not self._is_learner():
            self._delete_exports()
        self.deliver()

    def _is_learner(self) -> bool:
        with self.engine.session_factory() as session:
            return session.scalar(select(Learner.id).where(Learner.platform == PLATFORM,
                                                           Learner.platform_user_id == self.user_id)) is not None

    @property
    def exports_dir(self) -> Path:
        """The folder of this user's saved documents (a quoted user id keeps ids such as "a/b" apart)."""
        return self.engine.settings.data_dir / "exports" / quote(self.user_id, safe="")

    def _delete_exports(self) -> None:
        """Delete the documents saved for this user, after /forget deleted their data."""
        if self.exports_dir.is_dir():
            shutil.rmtree(self.exports_dir, ignore_errors=True)
            logger.info("console: saved documents of %s deleted after /forget", self.user_id)

    def deliver(self) -> int:
        """Print the pending messages for this user (and the reviewer channel for reviewers); return how many."""
        chats = [self.user_id]
        if self.is_reviewer and self.reviewer_chat:
            chats.append(self.reviewer_chat)
        factory = self.engine.session_factory
        printed = 0
        # The poller and the input loop both deliver, and claim_pending does not lock its rows.
        with self._delivering:
            for chat_id in chats:
                for outbox_id, message in outbox.claim_pending(factory, PLATFORM, chat_id=chat_id):
                    if message.ephemeral_user not in (None, self.user_id):
                        continue
                    self.print_message(message, channel=chat_id != self.user_id)
                    outbox.mark_sent(factory, outbox_id, platform_message_id=str(outbox_id))
                    printed += 1
        return printed

    def print_message(self, message: OutboundMessage, *, channel: bool = False) -> None:
        prefix = "[reviewer channel] " if channel else ""
        if message.edit_ref:
            prefix += "(updated) "
        self.stdout.write(f"\n{prefix}{message.text}\n")
        if message.document is not None:
            self.stdout.write(f"  [file] {self._save_document(message)}\n")
        if message.buttons and not lists_buttons(message.text, message.buttons):
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
        # The learner's copy of a document, as a download is on other platforms. It sits in
        # the data folder, so /forget deletes it too (see handle).
        target_dir = self.exports_dir
        target_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        target = target_dir / f"{stamp}-{document.filename}"
        target.write_bytes(document.content or b"")
        return f"{document.filename} saved to {target}"


def lists_buttons(text: str, buttons: tuple[Button, ...]) -> bool:
    """True when ``text`` ends with the buttons as a numbered list ("1. label"), so they need no second list.

    A button's label may be a shortened form of its line, so a line only has to start with the label.
    """
    lines = text.rstrip().splitlines()
    if len(lines) < len(buttons):
        return False
    tail = lines[len(lines) - len(buttons):]
    return all(line.startswith(f"{number}. {button.label}")
               for number, (line, button) in enumerate(zip(tail, buttons, strict=True), start=1))
