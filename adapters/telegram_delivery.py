"""Delivering the outbox to Telegram: one worker per chat, rows in outbox order.

A handler calls :meth:`OutboxDelivery.deliver` after the core committed an
event, with the chats it wrote to, and waits until its own rows are done, so
the replies go out before the next update is handled. A poller scans the whole
outbox every second (and when woken) for rows whose retry time has come, rows
another process wrote, and rows a crash left pending.

Within a chat, rows are sent one at a time in id order. When a row is
deferred (rate limit, network error, chat migration) or its learner blocked
the bot, the chat's later rows are released unsent. The outbox does not return
them again while the deferred row waits for its retry, so they cannot overtake
it. While a chat waits out a ``retry_after``, other chats go on.

NOTE: the outbox has no claim lock, so two processes that deliver the same
platform's outbox (several webhook workers) may both send a row. Run one
delivering process per platform until the outbox claims rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable

from sqlalchemy.orm import Session, sessionmaker

from adapters.telegram_convert import PLATFORM
from adapters.telegram_send import Sent, TelegramSender
from bot import outbox
from bot.events import OutboundMessage

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
SCAN_LIMIT = 200
UNEXPECTED_ERROR_RETRY_SECONDS = 30.0


class OutboxDelivery:
    """Queues of pending outbox rows per chat, each drained by its own task."""

    def __init__(self, sender: TelegramSender, factory: sessionmaker[Session], *,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self.sender = sender
        self.factory = factory
        self.poll_seconds = poll_seconds
        self._scan_lock = asyncio.Lock()
        self._queues: dict[str, deque[tuple[int, OutboundMessage]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._done: dict[int, asyncio.Future[str]] = {}
        self._held_until: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the poller; call from a running event loop."""
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="telegram-outbox-poller")

    async def close(self) -> None:
        """Stop the poller and the chat workers; rows not yet sent stay pending."""
        tasks = [task for task in (self._poller, *self._workers.values()) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._poller = None
        self._workers.clear()
        self._queues.clear()
        for future in self._done.values():
            future.cancel()
        self._done.clear()

    def wake(self) -> None:
        """Make the poller scan now instead of at its next tick."""
        self._wake.set()

    async def deliver(self, chat_ids: Iterable[str], outbox_ids: Iterable[int] = ()) -> None:
        """Queue the pending rows of ``chat_ids`` and wait until the rows ``outbox_ids`` are done."""
        for chat_id in dict.fromkeys(chat_ids):
            await self._scan(chat_id)
        waiting = [self._done[outbox_id] for outbox_id in outbox_ids if outbox_id in self._done]
        if waiting:
            await asyncio.wait(waiting)

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            self._wake.clear()
            try:
                await self._scan(None)
            except Exception:
                logger.exception("scanning the telegram outbox failed; trying again in %.0f s", self.poll_seconds)

    async def _scan(self, chat_id: str | None) -> None:
        """Queue pending rows (of one chat, or of all) that are not queued yet and whose chat is not held."""
        async with self._scan_lock:
            rows = await asyncio.to_thread(outbox.claim_pending, self.factory, PLATFORM, chat_id=chat_id,
                                           limit=SCAN_LIMIT, in_order=True)
            now = time.monotonic()
            loop = asyncio.get_running_loop()
            for outbox_id, message in rows:
                if outbox_id in self._done or self._held_until.get(message.chat_id, 0.0) > now:
                    continue
                self._done[outbox_id] = loop.create_future()
                self._queues.setdefault(message.chat_id, deque()).append((outbox_id, message))
                worker = self._workers.get(message.chat_id)
                if worker is None or worker.done():
                    self._workers[message.chat_id] = asyncio.create_task(
                        self._work(message.chat_id), name=f"telegram-chat-{message.chat_id}"
                    )

    async def _work(self, chat_id: str) -> None:
        queue = self._queues[chat_id]
        while queue:
            outbox_id, message = queue.popleft()
            result = await self._send(outbox_id, message)
            if result.status in ("deferred", "blocked"):
                await self._release(chat_id, outbox_id, result)
                return
            await self._finish(outbox_id, result.status)
        self._queues.pop(chat_id, None)

    async def _send(self, outbox_id: int, message: OutboundMessage) -> Sent:
        """Send one row; any failure defers it, so the chat's waiting handlers are always released."""
        try:
            return await self.sender.send(outbox_id, message)
        except Exception as exc:
            logger.exception("sending outbox %s to telegram:%s failed", outbox_id, message.chat_id)
            try:
                await asyncio.to_thread(outbox.mark_retry, self.factory, outbox_id, UNEXPECTED_ERROR_RETRY_SECONDS,
                                        f"{type(exc).__name__}: {exc}")
            except Exception:
                # NOTE: the row stays pending as it was, so it is sent again after the
                # hold, a second time if the failure came after Telegram had it.
                logger.exception("outbox %s could not be marked for a retry; it stays pending", outbox_id)
            return Sent("deferred", hold_seconds=UNEXPECTED_ERROR_RETRY_SECONDS)

    async def _finish(self, outbox_id: int, status: str) -> None:
        # Under the scan lock, so that no scan that read the row as pending
        # before it was marked can queue it again.
        async with self._scan_lock:
            future = self._done.pop(outbox_id, None)
        if future is not None and not future.done():
            future.set_result(status)

    async def _release(self, chat_id: str, outbox_id: int, result: Sent) -> None:
        """Leave this row and the chat's later rows pending, and hold the chat for ``result.hold_seconds``."""
        if result.hold_seconds:
            self._held_until[chat_id] = time.monotonic() + result.hold_seconds
        async with self._scan_lock:
            released = [outbox_id] + [queued_id for queued_id, _ in self._queues.pop(chat_id, ())]
            futures = [self._done.pop(queued_id, None) for queued_id in released]
        for future in futures:
            if future is not None and not future.done():
                future.set_result(result.status)
        if len(released) > 1:
            logger.info("telegram:%s: %d later messages wait behind outbox %s", chat_id, len(released) - 1,
                        outbox_id)
        if result.moved_to is not None or result.hold_seconds:
            self.wake()
