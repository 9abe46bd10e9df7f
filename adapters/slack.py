"""The Slack adapter: a slack-bolt ``AsyncApp`` in front of the core.

Learners write to the bot in a direct message and see their pathway on the
app's Home tab. Reviewers get review cards in the reviewer channel and request
changes in a modal. Everyone reaches the core's commands with the
``/careerbot`` slash command (``/careerbot queue`` is ``/queue``).

Every event, button press, form and command is acknowledged at once; the
core (synchronous, one database transaction per event) runs afterwards in a
worker thread, and :class:`~adapters.slack_delivery.Delivery` sends the
replies from the outbox. Two modes share all of this:

- HTTP: :func:`web_routes` serves ``POST /slack/events`` in careerbot's ASGI
  app (``careerbot serve``) and checks each request's signature.
- Socket Mode: :func:`main` connects with the app-level token, for one
  process without a public URL.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Awaitable
from functools import partial
from typing import Any

import aiohttp
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters import slack_inbound as inbound
from adapters.slack_blocks import (
    BUTTON_ACTION_PREFIX,
    CHANGE_REQUEST_CALLBACK,
    FEEDBACK_BLOCK,
    change_request_view,
    choice_made_blocks,
    home_view,
    read_change_request,
)
from adapters.slack_delivery import Delivery
from adapters.slack_directory import BoundedCache, SlackDirectory
from adapters.slack_errors import error_code
from adapters.slack_signature import signature_problem
from adapters.slack_text import escape
from bot import home, review
from bot.config import Settings
from bot.engine import Engine, HandledEvent
from bot.events import InboundEvent
from bot.validate import clean_text

logger = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
DATABASE_ERRORS = (OperationalError, InterfaceError, SQLAlchemyTimeoutError)
"""Errors of an unavailable database (lost or refused connections, a full pool, a locked SQLite file).
Other database errors come from the data, and trying again would not help."""
DATABASE_RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 60.0, 60.0, 60.0, 60.0)
"""Seconds to wait before each new try of an event that failed on the database: about 5.8 minutes in all.

Slack does not redeliver an event it has an acknowledgement for, so the
adapter itself tries again. Each try is one transaction that claims the
event's id, so a try whose commit did land makes the next one a no-op."""


class SlackBot:
    """The bolt app, the Web API client and the delivery loop for one engine.

    Call :meth:`start` inside the running event loop before the first request
    (the HTTP route does it itself) and :meth:`aclose` when done.
    """

    def __init__(self, engine: Engine, *, verify_requests: bool = True, deliver: bool = True) -> None:
        self.engine = engine
        self.deliver = deliver
        """False when ``careerbot worker`` jobs send the outbox (``job_queue: procrastinate``)."""
        self.settings = engine.settings
        self.texts = engine.flows.texts
        self.verify_requests = verify_requests
        self.app: AsyncApp | None = None
        self.client: AsyncWebClient | None = None
        self._session: aiohttp.ClientSession | None = None
        self._handler: AsyncSlackRequestHandler | None = None
        self._start_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        self._closing = asyncio.Event()
        self._homes_running: set[str] = set()
        self._homes_dirty: set[str] = set()
        self._learner_users = BoundedCache()
        self.directory: SlackDirectory | None = None
        self.delivery: Delivery | None = None

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Create the HTTP session, the Web API client, the bolt app and the delivery loop, once."""
        async with self._start_lock:
            if self.app is not None:
                return
            self._session = aiohttp.ClientSession()
            self.client = AsyncWebClient(token=self.settings.slack_bot_token, base_url=self.settings.slack_base_url,
                                         session=self._session)
            self.directory = SlackDirectory(self.client)
            self.delivery = Delivery(self.engine, self.client, self.directory)
            app = AsyncApp(
                client=self.client,
                signing_secret=self.settings.slack_signing_secret or "",
                request_verification_enabled=self.verify_requests,
                raise_error_for_unhandled_request=False,
                logger=logging.getLogger("adapters.slack.bolt"),
            )
            self._register(app)
            self._handler = AsyncSlackRequestHandler(app)
            self.app = app
            if self.deliver:
                self.delivery.start()
                self.delivery.wake()
        logger.info("slack adapter started (API %s)", self.settings.slack_base_url)

    async def aclose(self) -> None:
        """Finish the work already acknowledged, then stop delivery and close the HTTP session.

        Events waiting to try the database again get one last try.
        """
        self._closing.set()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self.app is not None:
            await self.delivery.aclose()
        if self._session is not None:
            await self._session.close()
        logger.info("slack adapter stopped")

    def _spawn(self, work: Awaitable[None], description: str) -> None:
        """Run ``work`` after the acknowledgement, logging its failure."""
        async def guarded() -> None:
            try:
                await work
            except Exception:
                # NOTE: Slack has its acknowledgement already, so it won't redeliver this one.
                logger.exception("slack: %s failed", description)

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- listeners -------------------------------------------------------------------

    def _register(self, app: AsyncApp) -> None:
        app.use(self._log_retries)
        app.event("message")(self._on_message)
        app.event("app_home_opened")(self._on_home_opened)
        app.event(re.compile(".*"))(self._on_other_event)
        app.action(re.compile(f"^{re.escape(BUTTON_ACTION_PREFIX)}"))(self._on_button)
        app.view(CHANGE_REQUEST_CALLBACK)(self._on_change_request)
        app.command(re.compile("^/"))(self._on_command)

    async def _log_retries(self, body: dict, request, next) -> Any:
        retry = request.headers.get("x-slack-retry-num", [None])[0]
        if retry is not None:
            reason = request.headers.get("x-slack-retry-reason", ["-"])[0]
            logger.info("slack redelivery %s (%s) of %s; handled at most once", retry, reason,
                        body.get("event_id") or body.get("type"))
        return await next()

    async def _on_message(self, body: dict, event: dict, context) -> None:
        reason = inbound.message_ignore_reason(event, context.bot_user_id)
        if reason is not None:
            logger.debug("slack event %s ignored: %s", body.get("event_id"), reason)
            return
        self._spawn(self._handle_message(body), f"message {body.get('event_id')}")

    async def _on_home_opened(self, body: dict, event: dict) -> None:
        if event.get("tab") == "messages":
            self._spawn(self._handle_opened(body), f"app_home_opened {body.get('event_id')}")
        else:
            self._refresh_home(event["user"])

    async def _on_other_event(self, body: dict, event: dict) -> None:
        logger.debug("slack event %s of type %s ignored", body.get("event_id"), event.get("type"))

    async def _on_button(self, ack, body: dict, action: dict) -> None:
        await ack()
        submission_id = review.change_request_target(action.get("value") or "")
        if submission_id is not None:
            self._spawn(self._open_change_request(body, action, submission_id), "opening a change request")
        else:
            self._spawn(self._handle_button(body, action), f"button {action.get('value')!r}")

    async def _on_change_request(self, ack, body: dict, view: dict) -> None:
        try:
            form = read_change_request(view)
        except ValueError as exc:
            logger.warning("slack view %s rejected: %s", view.get("id"), exc)
            await ack()
            return
        if not clean_text(form.feedback):
            await ack(response_action="errors", errors={
                FEEDBACK_BLOCK: self.texts("review_form_feedback_invalid", maximum=review.FEEDBACK_MAX_CHARS)})
            return
        await ack()
        self._spawn(self._handle_form(body, form), f"change request form {view.get('id')}")

    async def _on_command(self, ack, command: dict) -> None:
        in_direct_message = command.get("channel_id") == self.directory.cached_direct_channel(command["user_id"])
        if in_direct_message:
            await ack()
        else:
            await ack(text=escape(self.texts("command_answered_in_chat")), response_type="ephemeral")
        self._spawn(self._handle_command(command), f"command {command.get('command')}")

    # --- work after the acknowledgement ----------------------------------------------

    async def _handle(self, event: InboundEvent) -> HandledEvent:
        handled = await self._handle_with_retries(event)
        if handled.duplicate:
            return handled
        self.delivery.wake()
        learner_ids = {message.learner_id for message in handled.messages
                       if message.learner_id is not None and message.platform == inbound.PLATFORM}
        user_ids = set(await self._learner_user_ids(event, learner_ids)) if learner_ids else set()
        if event.chat_type == "private":
            user_ids.add(event.user_id)
        for user_id in user_ids:
            self._refresh_home(user_id)
        return handled

    async def _handle_with_retries(self, event: InboundEvent) -> HandledEvent:
        """Run the core on ``event``, trying again with growing pauses while the database fails.

        NOTE: an event whose database stays down through every delay in
        ``DATABASE_RETRY_DELAYS``, or past the adapter's shutdown, is lost,
        because Slack already has its acknowledgement.
        """
        for delay in (*DATABASE_RETRY_DELAYS, None):
            try:
                return await asyncio.to_thread(self.engine.handle, event)
            except DATABASE_ERRORS as exc:
                if delay is None or self._closing.is_set():
                    logger.error("slack event %s from %s lost: the database failed on every try (%s)",
                                 event.update_id, event.user_key, type(exc).__name__)
                    raise
                logger.warning("slack event %s from %s failed on the database (%s); trying again in %.0f s",
                               event.update_id, event.user_key, type(exc).__name__, delay)
                try:
                    await asyncio.wait_for(self._closing.wait(), delay)
                except TimeoutError:
                    pass
        raise AssertionError("unreachable")

    async def _handle_message(self, body: dict) -> None:
        event = body["event"]
        attachment = None
        files = event.get("files") or []
        if files:
            if len(files) > 1:
                logger.warning("slack message %s shares %d files; only the first is taken as evidence",
                               body.get("event_id"), len(files))
            try:
                attachment = await self._download(files[0])
            except (inbound.DownloadFailed, SlackApiError) as exc:
                logger.warning("slack file from %s not downloaded: %s", event["user"], exc)
                attachment = inbound.failed_download(files[0])
        name = await self.directory.display_name(event["user"])
        await self._handle(inbound.message_event(body, display_name=name, attachment=attachment))

    async def _download(self, file: dict):
        if inbound.needs_file_info(file):
            file = (await self.client.files_info(file=file["id"]))["file"]
        return await inbound.download_file(self._session, self.settings.slack_bot_token, file,
                                           self.settings.slack_base_url)

    async def _handle_opened(self, body: dict) -> None:
        name = await self.directory.display_name(body["event"]["user"])
        await self._handle(inbound.opened_event(body, display_name=name))

    async def _handle_button(self, body: dict, action: dict) -> None:
        name = await self.directory.display_name(body["user"]["id"])
        event = inbound.action_event(body, action, display_name=name)
        handled = await self._handle(event)
        message = body.get("message")
        learner_choice = not (event.action or "").startswith(review.ACTION_PREFIX)
        ephemeral = (body.get("container") or {}).get("is_ephemeral", False)
        if handled.duplicate or not learner_choice or not message or ephemeral:
            return
        label = (action.get("text") or {}).get("text") or action.get("value") or ""
        blocks = choice_made_blocks(message.get("blocks") or [], None if handled.action_expired else label, self.texts)
        try:
            await self.client.chat_update(channel=event.chat_id, ts=message["ts"], blocks=blocks,
                                          text=message.get("text") or " ")
        except SlackApiError as exc:
            logger.warning("slack message %s:%s not updated after a choice: %s", event.chat_id, message["ts"],
                           error_code(exc))

    async def _open_change_request(self, body: dict, action: dict, submission_id: int) -> None:
        event = inbound.action_event(body, action, display_name=None)
        reader = partial(review.change_request_form, submission_id=submission_id)
        form, replies = await asyncio.to_thread(self.engine.read_only, event, reader)
        if form is None:
            for reply in replies:
                await self._send_now(reply)
            return
        view = change_request_view(form, event.chat_id, self.texts)
        await self.client.views_open(trigger_id=body["trigger_id"], view=view)

    async def _handle_form(self, body: dict, form) -> None:
        name = await self.directory.display_name(body["user"]["id"])
        await self._handle(inbound.form_event(body, form, display_name=name))

    async def _handle_command(self, command: dict) -> None:
        chat_id = await self.directory.direct_channel(command["user_id"])
        name = await self.directory.display_name(command["user_id"])
        await self._handle(inbound.command_event(command, chat_id, display_name=name))

    async def _send_now(self, message) -> None:
        """Send a reply the core made without writing it to the outbox (nothing was committed)."""
        try:
            await self.delivery.send(message)
        except Exception as exc:  # a refusal that could not be shown is logged, not retried
            logger.warning("slack reply to %s not sent: %s", message.chat_id, exc)

    # --- App Home --------------------------------------------------------------------

    async def _learner_user_ids(self, event: InboundEvent, learner_ids: set[int]) -> list[str]:
        """Return the Slack user ids of these learners; a learner's user id never changes, so it is cached."""
        unknown = {learner_id for learner_id in learner_ids if learner_id not in self._learner_users}
        if unknown:
            reader = partial(home.learner_user_ids, learner_ids=unknown)
            mapping, _ = await asyncio.to_thread(self.engine.read_only, event, reader)
            for learner_id, user_id in mapping.items():
                self._learner_users.remember(learner_id, user_id)
        return [self._learner_users[learner_id] for learner_id in learner_ids if learner_id in self._learner_users]

    def _refresh_home(self, user_id: str) -> None:
        """Publish the user's Home tab again; requests during a publish coalesce into one more."""
        if user_id in self._homes_running:
            self._homes_dirty.add(user_id)
            return
        self._homes_running.add(user_id)
        self._spawn(self._publish_homes(user_id), f"home of {user_id}")

    async def _publish_homes(self, user_id: str) -> None:
        try:
            while True:
                self._homes_dirty.discard(user_id)
                await self._publish_home(user_id)
                if user_id not in self._homes_dirty:
                    return
        finally:
            self._homes_running.discard(user_id)

    async def _publish_home(self, user_id: str) -> None:
        event = InboundEvent(platform=inbound.PLATFORM, user_id=user_id, chat_id="", update_id="home")
        summary, _ = await asyncio.to_thread(self.engine.read_only, event, home.learner_home)
        try:
            await self.client.views_publish(user_id=user_id, view=home_view(summary))
        except SlackApiError as exc:
            logger.warning("slack Home tab of %s not published: %s", user_id, error_code(exc))

    # --- HTTP mode ---------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [Route(EVENTS_PATH, self.http_endpoint, methods=["POST"])]

    async def http_endpoint(self, request: Request) -> Response:
        """Check the request's signature, then hand it to bolt; a forged or stale request gets 401."""
        body = await request.body()
        problem = signature_problem(self.settings.slack_signing_secret or "", request.headers, body)
        if problem is not None:
            client = request.client.host if request.client else "-"
            logger.warning("slack request from %s rejected with 401: %s", client, problem)
            return Response(status_code=401)
        await self.start()
        return await self._handler.handle(request)


def web_routes(engine: Engine) -> list[Route]:
    """Build the routes ``careerbot serve`` adds in HTTP mode: ``POST /slack/events``."""
    return SlackBot(engine, deliver=engine.settings.outbox_delivered_in_process).routes()


# --- running -------------------------------------------------------------------------


def missing_settings(settings: Settings) -> list[str]:
    """List the settings the configured mode needs and lacks, as environment variable names."""
    needed = {"slack_bot_token": settings.slack_bot_token}
    if settings.slack_mode == "socket":
        needed["slack_app_token"] = settings.slack_app_token
    else:
        needed["slack_signing_secret"] = settings.slack_signing_secret
    return [f"CAREERBOT_{name.upper()}" for name, value in needed.items() if not value]


def main(settings: Settings) -> int:
    """``careerbot run slack``: Socket Mode, or HTTP mode under ``careerbot serve``; return the exit code."""
    if settings.slack_mode not in ("socket", "http"):
        print(f"careerbot: slack_mode is {settings.slack_mode!r}; set CAREERBOT_SLACK_MODE to socket or http",
              file=sys.stderr)
        return 2
    missing = missing_settings(settings)
    if missing:
        print(f"careerbot: Slack {settings.slack_mode} mode needs {', '.join(missing)}; "
              "set them in the environment or the configuration file", file=sys.stderr)
        return 2
    if settings.slack_mode == "http":
        from bot.server import serve

        logger.info("slack HTTP mode: Slack must send events, interactions and commands to %s%s",
                    settings.public_base_url, EVENTS_PATH)
        return serve(settings)
    return asyncio.run(run_socket_mode(settings))


async def run_socket_mode(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    """Connect over Socket Mode and serve until ``stop`` is set (or the process is interrupted)."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.app import build_engine

    engine = build_engine(settings)
    bot = SlackBot(engine, verify_requests=False)
    await bot.start()
    handler = AsyncSocketModeHandler(bot.app, settings.slack_app_token)
    try:
        await handler.connect_async()
        logger.info("slack Socket Mode connected")
        await (stop or asyncio.Event()).wait()
    finally:
        await handler.close_async()
        await bot.aclose()
        engine.session_factory.kw["bind"].dispose()
    return 0
