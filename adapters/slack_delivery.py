"""Delivering the outbox's Slack messages: posts, edits, ephemeral replies and files.

One :class:`Delivery` runs per process. A pass claims the due messages,
sends each chat's messages in order (chats in parallel) and marks every row
as soon as its call returns. When Slack rejects a message with a rate limit
or with an error that waiting can fix, the message is put back with a delay.
The rest of its chat's messages stay pending and are not claimed until it has
gone, so a chat receives its messages in order.

NOTE: ``outbox.claim_pending`` does not lock the rows it returns, so two
processes delivering for the same database could send a message twice; run
one delivering process per database.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from pathlib import Path

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_blocks import (
    RenderedMessage,
    render_message,
    shorten_card_evidence,
    slack_wording,
    thread_messages,
)
from adapters.slack_directory import SlackDirectory
from adapters.slack_errors import (
    CHANNEL_ERRORS,
    EDIT_GONE_ERRORS,
    TRANSIENT_ERRORS,
    USER_GONE_ERRORS,
    error_code,
    is_rate_limited,
    retry_after,
)
from adapters.slack_inbound import PLATFORM
from adapters.slack_text import escape
from adapters.telegram_pacing import Pacer
from bot import outbox
from bot.engine import Engine
from bot.events import OutboundMessage

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
"""How often a pass runs without being woken, to send messages whose retry delay has passed."""
CLAIM_BATCH = 200
BACKOFF_FIRST_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 900.0
PARALLEL_CHATS = 16
SIDE_CALL_ATTEMPTS = 3
CHANNEL_POSTS_PER_SECOND = 1.0
CHANNEL_BURST = 3
"""Slack allows chat.postMessage about once per second per channel, with short bursts above that (Web API
rate limits, "special" tier). NOTE: Slack does not publish the burst it tolerates; 3 is an estimate."""
REVIEWER_KINDS = ("review_card", "card_update")
"""Outbox kinds that always go to a reviewer chat, whichever chat id it has now."""


class Outcome(enum.Enum):
    """Result of delivering one outbox row."""

    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"


class _Deferred(Exception):
    """The message should wait ``delay`` seconds; ``keep_queued`` when waiting is the only fix."""

    def __init__(self, delay: float, reason: str, *, keep_queued: bool) -> None:
        super().__init__(reason)
        self.delay = delay
        self.keep_queued = keep_queued


class Delivery:
    """Sends pending outbox rows for Slack until stopped; call :meth:`wake` after writing new ones."""

    def __init__(self, engine: Engine, client: AsyncWebClient, directory: SlackDirectory) -> None:
        self.engine = engine
        self.client = client
        self.directory = directory
        self.factory = engine.session_factory
        self.settings = engine.settings
        self.texts = engine.flows.texts
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._next_retry = float("inf")
        self._backoff: dict[str, float] = {}
        self._alerted_chats: set[str] = set()
        self._alerts: set[asyncio.Task] = set()
        self._parallel = asyncio.Semaphore(PARALLEL_CHATS)
        self.busy = False
        """True while a pass is sending."""
        self.backoff_first_seconds = BACKOFF_FIRST_SECONDS
        self.backoff_max_seconds = BACKOFF_MAX_SECONDS
        if self.settings.slack_rate_limits:
            # Slack channel ids never start with "-", so each channel gets the pacer's per-chat bucket.
            self.pacer = Pacer(overall_per_second=None, private_per_second=CHANNEL_POSTS_PER_SECOND,
                               private_burst=CHANNEL_BURST, group_per_minute=None)
        else:
            self.pacer = Pacer.unlimited()

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="careerbot-slack-delivery")

    def wake(self) -> None:
        self._wake.set()

    async def aclose(self) -> None:
        """Stop the delivery loop; alerts already being sent to coordinators finish first."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._alerts:
            await asyncio.gather(*self._alerts, return_exceptions=True)

    async def _run(self) -> None:
        logger.info("slack delivery started")
        while True:
            timeout = min(POLL_SECONDS, max(self._next_retry - time.monotonic(), 0.0))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            self._wake.clear()
            self._next_retry = float("inf")
            self.busy = True
            try:
                await self.deliver_pending()
            except Exception:
                logger.exception("slack delivery pass failed; the next pass retries")
            finally:
                self.busy = False

    # --- a pass ----------------------------------------------------------------------

    async def deliver_pending(self) -> int:
        """Send every message that is due, oldest first within each chat; return how many were sent."""
        total = 0
        while True:
            rows = await asyncio.to_thread(outbox.claim_pending, self.factory, PLATFORM, limit=CLAIM_BATCH,
                                           in_order=True)
            by_chat: dict[str, list[tuple[int, OutboundMessage]]] = {}
            for outbox_id, message in rows:
                by_chat.setdefault(message.chat_id, []).append((outbox_id, message))
            counts = await asyncio.gather(*(self._deliver_chat(chat_id, items) for chat_id, items in by_chat.items()))
            total += sum(counts)
            if len(rows) < CLAIM_BATCH or sum(counts) == 0:
                return total

    async def _deliver_chat(self, chat_id: str, items: list[tuple[int, OutboundMessage]]) -> int:
        """Send one chat's messages in order, stopping at the first one that has to wait."""
        sent = 0
        async with self._parallel:
            for outbox_id, message in items:
                outcome = await self._deliver_one(outbox_id, message)
                if outcome is Outcome.DEFERRED:
                    break
                if outcome is Outcome.SENT:
                    sent += 1
        return sent

    async def _deliver_one(self, outbox_id: int, message: OutboundMessage) -> Outcome:
        chat_id = message.chat_id
        await self.pacer.wait(chat_id)
        try:
            platform_message_id = await self.send(message)
        except _Deferred as deferred:
            await self._defer(outbox_id, deferred.delay, str(deferred), keep_queued=deferred.keep_queued)
            return Outcome.DEFERRED
        except SlackApiError as exc:
            await self._give_up(outbox_id, message, exc)
            return Outcome.FAILED
        except (aiohttp.ClientError, TimeoutError, SlackRequestError) as exc:
            await self._defer(outbox_id, self._next_backoff(chat_id), f"{type(exc).__name__}: {exc}")
            return Outcome.DEFERRED

        await asyncio.to_thread(outbox.mark_sent, self.factory, outbox_id, platform_message_id)
        self._backoff.pop(chat_id, None)
        if chat_id in self._alerted_chats:
            self._alerted_chats.discard(chat_id)
            logger.info("slack chat %s is reachable again; queued messages are being sent", chat_id)
        logger.info("slack message sent: outbox=%s chat=%s kind=%s", outbox_id, chat_id, message.kind)
        return Outcome.SENT

    async def _give_up(self, outbox_id: int, message: OutboundMessage, exc: SlackApiError) -> None:
        error = error_code(exc)
        unreachable = error in USER_GONE_ERRORS or error in CHANNEL_ERRORS
        await asyncio.to_thread(outbox.mark_failed, self.factory, outbox_id, f"slack: {error}", unreachable=unreachable)

    async def _defer(self, outbox_id: int, delay: float, error: str, *, keep_queued: bool = False) -> None:
        """Put the row back for ``delay`` seconds and wake the loop when it is due."""
        await asyncio.to_thread(outbox.mark_retry, self.factory, outbox_id, delay, error, keep_queued=keep_queued)
        self._next_retry = min(self._next_retry, time.monotonic() + delay)

    def _next_backoff(self, chat_id: str) -> float:
        delay = min(self._backoff.get(chat_id, self.backoff_first_seconds / 2) * 2, self.backoff_max_seconds)
        self._backoff[chat_id] = delay
        return delay

    # --- sending one message ------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> str | None:
        """Send one message; return "channel:ts" of the posted message, or None when there is none.

        Raises:
            _Deferred: the message should be sent again later.
            SlackApiError: Slack rejected the message for good.
        """
        try:
            if message.ephemeral_user:
                await self._post_ephemeral(message)
                return None
            if message.edit_ref:
                return await self._edit(message)
            return await self._post(message)
        except SlackApiError as exc:
            raise self._classify(message, exc) from None

    def _classify(self, message: OutboundMessage, exc: SlackApiError) -> Exception:
        error = error_code(exc)
        chat_id = message.chat_id
        if is_rate_limited(exc):
            delay = retry_after(exc)
            logger.warning("slack rate limit on %s for chat %s; waiting %.0f s", exc.response.api_url, chat_id, delay)
            return _Deferred(delay, f"slack: rate limited for {delay:.0f} s", keep_queued=True)
        if error in CHANNEL_ERRORS and self._for_reviewers(message):
            delay = self._next_backoff(chat_id)
            logger.error("cannot post to the slack reviewer channel %s: %s. Invite the bot to the channel or fix "
                         "reviewer_chats; submissions stay queued and are retried in %.0f s", chat_id, error, delay)
            self._alert_coordinators(chat_id, error)
            return _Deferred(delay, f"slack: {error}", keep_queued=True)
        if error in TRANSIENT_ERRORS or exc.response.status_code >= 500:
            delay = self._next_backoff(chat_id)
            logger.error("slack rejected a message to %s with %s; retrying in %.0f s", chat_id, error, delay)
            return _Deferred(delay, f"slack: {error}", keep_queued=False)
        logger.error("slack rejected a message to %s: %s", chat_id, error)
        return exc

    def _for_reviewers(self, message: OutboundMessage) -> bool:
        return message.kind in REVIEWER_KINDS or message.chat_id == self.settings.reviewer_chat(PLATFORM)

    async def _post(self, message: OutboundMessage) -> str | None:
        text, truncated_evidence = shorten_card_evidence(_wording(message), message.extra.get("evidence"), self.texts)
        document = await self._read_document(message)
        if document is not None and not message.buttons and message.ref is None:
            await self.client.files_upload_v2(channel=message.chat_id, file=document[1], filename=document[0],
                                              title=document[0], initial_comment=escape(text) or None)
            return None

        rendered = render_message(text, message.buttons)
        response = await self.client.chat_postMessage(channel=message.chat_id, text=rendered.text,
                                                      blocks=rendered.blocks, unfurl_links=False, unfurl_media=False)
        channel, ts = response["channel"], response["ts"]
        thread_text = rendered.overflow
        if truncated_evidence:
            heading = self.texts("evidence_full_text", submission_id=message.extra.get("submission_id", "-"))
            thread_text = heading + "\n\n" + message.extra["evidence"]
        if thread_text:
            await self._post_thread(channel, ts, thread_messages(thread_text))
        if document is not None:
            await self._side_call(self.client.files_upload_v2, channel=channel, thread_ts=ts, file=document[1],
                                  filename=document[0], title=document[0])
        return f"{channel}:{ts}"

    async def _post_thread(self, channel: str, thread_ts: str, parts: list[RenderedMessage]) -> None:
        for part in parts:
            await self._side_call(self.client.chat_postMessage, channel=channel, thread_ts=thread_ts,
                                  text=part.text, blocks=part.blocks, unfurl_links=False, unfurl_media=False)

    async def _side_call(self, method, **arguments) -> None:
        """Make a call that belongs to an already posted message, waiting out rate limits.

        NOTE: the message's row is marked sent by then, so a part that still
        fails (a thread reply, an attached file) is logged and not retried later.
        """
        for attempt in range(1, SIDE_CALL_ATTEMPTS + 1):
            try:
                await method(**arguments)
                return
            except SlackApiError as exc:
                if not is_rate_limited(exc) or attempt == SIDE_CALL_ATTEMPTS:
                    logger.error("slack %s in channel %s failed: %s", method.__name__, arguments.get("channel"),
                                 error_code(exc))
                    return
                await asyncio.sleep(retry_after(exc))
            except (aiohttp.ClientError, TimeoutError, SlackRequestError) as exc:
                logger.error("slack %s in channel %s failed: %s", method.__name__, arguments.get("channel"), exc)
                return

    async def _read_document(self, message: OutboundMessage) -> tuple[str, bytes] | None:
        document = message.document
        if document is None:
            return None
        if document.content is not None:
            return document.filename, document.content
        if document.path is None:
            return None
        try:
            data = await asyncio.to_thread(Path(document.path).read_bytes)
        except OSError as exc:
            logger.error("file %s for chat %s can't be read (%s); the message goes without it",
                         document.filename, message.chat_id, exc.strerror)
            return None
        return document.filename, data

    async def _post_ephemeral(self, message: OutboundMessage) -> None:
        rendered = render_message(_wording(message), message.buttons)
        await self.client.chat_postEphemeral(channel=message.chat_id, user=message.ephemeral_user,
                                             text=rendered.text, blocks=rendered.blocks)

    async def _edit(self, message: OutboundMessage) -> str | None:
        """Replace the text and buttons of the message that carries ``edit_ref``; post anew when it is gone."""
        found = await asyncio.to_thread(outbox.message_id_for_ref, self.factory, PLATFORM, message.edit_ref)
        if found is None:
            logger.info("no sent slack message carries %s; posting the update as a new message", message.edit_ref)
            return await self._post(message)
        channel, _, ts = found[1].rpartition(":")
        channel = channel or found[0]
        text, _ = shorten_card_evidence(_wording(message), message.extra.get("evidence"), self.texts)
        rendered = render_message(text, message.buttons)
        try:
            await self.client.chat_update(channel=channel, ts=ts, text=rendered.text, blocks=rendered.blocks)
        except SlackApiError as exc:
            if error_code(exc) not in EDIT_GONE_ERRORS:
                raise
            logger.warning("slack message %s:%s can't be edited (%s); posting the update as a new message",
                           channel, ts, error_code(exc))
            return await self._post(message)
        return f"{channel}:{ts}"

    # --- telling coordinators ------------------------------------------------------------

    def _alert_coordinators(self, chat_id: str, error: str) -> None:
        """Tell the Slack coordinators once per outage that the reviewer channel can't be reached."""
        if chat_id in self._alerted_chats:
            return
        self._alerted_chats.add(chat_id)
        text = self.texts("reviewer_chat_unreachable", chat=chat_id, error=error)
        for user_key in self.settings.coordinators:
            platform, _, user_id = user_key.partition(":")
            if platform == PLATFORM:
                task = asyncio.get_running_loop().create_task(self._tell(user_id, text))
                self._alerts.add(task)
                task.add_done_callback(self._alerts.discard)

    async def _tell(self, user_id: str, text: str) -> None:
        rendered = render_message(slack_wording(text))
        try:
            channel = await self.directory.direct_channel(user_id)
            await self.client.chat_postMessage(channel=channel, text=rendered.text, blocks=rendered.blocks)
        except SlackApiError as exc:
            logger.error("could not tell coordinator %s about the reviewer channel: %s", user_id, error_code(exc))


def _wording(message: OutboundMessage) -> str:
    """Return the message's text with the core's commands spelled the Slack way, except in what users wrote."""
    return slack_wording(message.text, message.extra.get("verbatim", ()))
