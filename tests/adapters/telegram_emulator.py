"""A loopback emulation of the Telegram Bot API for tests and benchmarks.

:class:`TelegramEmulator` is an aiohttp server on 127.0.0.1 that responds to
the Bot API methods careerbot uses with the real envelopes (``{"ok": true,
"result": ...}``, or ``ok: false`` with ``error_code``, ``description`` and
``parameters``). Point python-telegram-bot at it with ``base_url`` and
``base_file_url``.

It keeps the state the bot can observe: the chats it has seen, the messages the
bot sent (with their keyboards, edits and documents), the files users sent,
pending updates for getUpdates (kept until a later offset confirms them, as
Telegram does), callback queries, the webhook and the command menu. It checks
what Telegram checks: HTML entities (an unescaped ``<`` or ``&`` is "can't
parse entities"), text and caption length after parsing, callback data of at
most 64 bytes, and "message is not modified" on an edit that changes nothing.
Blocked users answer 403, migrated groups 400 with ``migrate_to_chat_id``, and
:meth:`TelegramEmulator.fail` makes the next matching calls fail with any error.

Updates are built from the captured samples in ``telegram_payloads/`` and
either queued for getUpdates (:meth:`inject`) or POSTed to the bot's webhook
(:meth:`post_webhook`). Every call is recorded with its parameters and the
``time.perf_counter()`` at which it arrived.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

PAYLOADS = Path(__file__).parent / "telegram_payloads"

TOKEN = "7000000001:AAFakeFakeFakeFakeFakeFakeFakeFake00"
BOT_USER = {
    "id": 7000000001,
    "is_bot": True,
    "first_name": "Example Bot",
    "username": "example_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA_BYTES = 64
DOWNLOAD_LIMIT = 20 * 1024 * 1024

JSON_PARAMETERS = {"reply_markup", "commands", "entities", "caption_entities", "allowed_updates", "scope",
                   "reply_parameters", "link_preview_options"}
INTEGER_PARAMETERS = {"chat_id", "message_id", "offset", "limit", "timeout", "max_connections"}
NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message")
MESSAGE_TOO_LONG = json.loads((PAYLOADS / "telegram_error_400_message_too_long.json").read_text())["description"]
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query id is invalid"


class ApiError(Exception):
    """An error response of the Bot API."""

    def __init__(self, error_code: int, description: str, parameters: dict | None = None) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def envelope(self) -> dict:
        body = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# --- HTML parse mode -----------------------------------------------------------------------

_TAG = re.compile(r'<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+\s*=\s*"[^"]*")*)\s*>')
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")
_TAG_TYPES = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "code": "code", "pre": "pre",
    "a": "text_link", "tg-spoiler": "spoiler", "span": "spoiler", "blockquote": "blockquote",
}


def parse_html(source: str) -> tuple[str, list[dict]]:
    """Parse Telegram's HTML style into plain text and entities (UTF-16 offsets).

    Raises:
        ApiError: 400 "can't parse entities", the response Telegram gives for markup it rejects.
    """
    def reject(reason: str, index: int) -> ApiError:
        offset = len(source[:index].encode("utf-8"))
        return ApiError(400, f"Bad Request: can't parse entities: {reason} at byte offset {offset}")

    out: list[str] = []
    position = 0
    stack: list[tuple[str, int, dict[str, str]]] = []
    entities: list[dict] = []
    index = 0
    while index < len(source):
        char = source[index]
        if char == "<":
            match = _TAG.match(source, index)
            name = match.group(2).lower() if match else source[index + 1:index + 8].split(" ")[0]
            if match is None or name not in _TAG_TYPES:
                raise reject(f'Unsupported start tag "{name}"', index)
            if match.group(1):
                if not stack or stack[-1][0] != name:
                    raise reject(f'Unexpected end tag "{name}"', index)
                tag, start, attributes = stack.pop()
                if position > start:
                    entities.append(_entity(tag, start, position - start, attributes, "".join(out)))
            else:
                stack.append((name, position, dict(re.findall(r'([a-zA-Z-]+)\s*=\s*"([^"]*)"', match.group(3)))))
            index = match.end()
            continue
        if char == "&":
            match = _ENTITY.match(source, index)
            if match is None:
                raise reject("Character '&' is reserved and must be escaped as &amp;", index)
            piece = unescape(match.group(0))
            index = match.end()
        elif char == ">":
            raise reject("Character '>' is reserved and must be escaped as &gt;", index)
        else:
            piece = char
            index += 1
        out.append(piece)
        position += utf16_length(piece)
    if stack:
        raise reject(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"', len(source))
    return "".join(out), sorted(entities, key=lambda entity: entity["offset"])


def _entity(tag: str, offset: int, length: int, attributes: dict[str, str], text: str) -> dict:
    entity: dict[str, Any] = {"offset": offset, "length": length, "type": _TAG_TYPES[tag]}
    href = attributes.get("href", "")
    if tag == "a" and href.startswith("tg://user?id="):
        shown = text.encode("utf-16-le")[offset * 2:(offset + length) * 2].decode("utf-16-le")
        entity["type"] = "text_mention"
        entity["user"] = {"id": int(href.split("=", 1)[1]), "is_bot": False, "first_name": shown}
    elif tag == "a":
        entity["url"] = href
    return entity


# --- state -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    """A Telegram user who talks to the bot."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str = "en"

    def as_dict(self) -> dict:
        data: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        data["language_code"] = self.language_code
        return data

    def private_chat(self) -> dict:
        chat: dict[str, Any] = {"id": self.id, "first_name": self.first_name}
        if self.last_name:
            chat["last_name"] = self.last_name
        if self.username:
            chat["username"] = self.username
        chat["type"] = "private"
        return chat


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    at: float
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    error: dict | None = None


@dataclass
class SentMessage:
    """A message the bot sent, in its current state (after any edits)."""

    chat: dict
    message_id: int
    date: int
    text: str | None = None
    entities: list[dict] = field(default_factory=list)
    reply_markup: dict | None = None
    force_reply: dict | None = None
    caption: str | None = None
    document: dict | None = None
    document_bytes: bytes | None = None
    reply_to_message_id: int | None = None
    edits: list[str | None] = field(default_factory=list)

    @property
    def chat_id(self) -> int:
        return self.chat["id"]

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback data) of every button of the inline keyboard, row by row."""
        if not self.reply_markup:
            return []
        return [(button["text"], button.get("callback_data", "")) for row in self.reply_markup["inline_keyboard"]
                for button in row]

    def as_dict(self) -> dict:
        data: dict[str, Any] = {"message_id": self.message_id, "from": dict(BOT_USER), "chat": dict(self.chat),
                                "date": self.date}
        if self.text is not None:
            data["text"] = self.text
            if self.entities:
                data["entities"] = self.entities
        if self.document is not None:
            data["document"] = self.document
        if self.caption is not None:
            data["caption"] = self.caption
        if self.reply_markup is not None:
            data["reply_markup"] = self.reply_markup
        return data


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    size: int
    content: bytes | None
    path: str


@dataclass
class Failure:
    method: str
    error: ApiError
    chat_id: int | None
    remaining: int


@dataclass
class CallbackQueryState:
    id: str
    answered: bool = False
    expired: bool = False
    answer: dict | None = None


DEFAULT = object()


class TelegramEmulator:
    """The emulated Bot API server; use as ``async with TelegramEmulator() as telegram``."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.calls: list[ApiCall] = []

        self.chats: dict[int, dict] = {}
        self.sent: list[SentMessage] = []
        self._sent_by_chat: dict[int, list[SentMessage]] = {}
        self.messages: dict[tuple[int, int], SentMessage] = {}
        self.files: dict[str, StoredFile] = {}
        self.callback_queries: dict[str, CallbackQueryState] = {}
        self.blocked: set[int] = set()
        self.migrated: dict[int, int] = {}
        self.commands: list[dict] | None = None
        self.webhook: dict | None = None
        self.pending_updates: list[dict] = []
        self.failures: list[Failure] = []

        self._update_ids = itertools.count(100_000)
        self._message_ids: dict[int, itertools.count] = {}
        self._query_ids = itertools.count(666728699048485871)
        self._file_numbers = itertools.count(1)
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

        self._methods: dict[str, Callable[..., Any]] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "answercallbackquery": self._answer_callback_query,
            "senddocument": self._send_document,
            "sendphoto": self._send_photo,
            "getfile": self._get_file,
            "setmycommands": self._set_my_commands,
            "deletewebhook": self._delete_webhook,
            "setwebhook": self._set_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "deletemessage": self._delete_message,
            "sendchataction": lambda params, files: True,
            "close": lambda params, files: True,
            "logout": lambda params, files: True,
        }

    # --- server ------------------------------------------------------------------------------

    async def __aenter__(self) -> TelegramEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._handle_api)
        app.router.add_get("/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    def notify(self) -> None:
        """Wake everything that waits for a change (wait_for, long-polling getUpdates)."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until ``predicate()`` is true after some call or injected update; return its value.

        Raises:
            TimeoutError: it stayed false for ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._changed
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition still false after {timeout} s; last calls: "
                                   f"{[call.method for call in self.calls[-5:]]}")
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                pass

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, files = await self._read_params(request)
        call = ApiCall(method, params, time.perf_counter(), files)
        self.calls.append(call)
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            handler = self._methods.get(method.lower())
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            self._apply_failures(method, params)
            result = handler(params, files)
            if asyncio.iscoroutine(result):
                result = await result
        except ApiError as exc:
            call.error = exc.envelope()
            self.notify()
            return web.json_response(exc.envelope(), status=exc.error_code)
        self.notify()
        return web.json_response({"ok": True, "result": result})

    async def _read_params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
        raw: dict[str, Any] = {}
        files: dict[str, tuple[str, bytes]] = {}
        if request.content_type == "application/json":
            raw = await request.json()
        elif request.can_read_body:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = (value.filename, value.file.read())
                else:
                    raw[key] = value
        raw.update({key: value for key, value in request.query.items() if key not in raw})
        params: dict[str, Any] = {}
        for key, value in raw.items():
            if isinstance(value, str) and key in JSON_PARAMETERS:
                value = json.loads(value)
            elif isinstance(value, str) and key in INTEGER_PARAMETERS and re.fullmatch(r"-?\d+", value):
                value = int(value)
            elif isinstance(value, str) and value in ("true", "false") and key not in ("text", "caption"):
                value = value == "true"
            params[key] = value
        for key, (filename, _) in files.items():
            params.setdefault(key, f"attach://{filename}")
        return params, files

    async def _handle_file(self, request: web.Request) -> web.Response:
        self.calls.append(ApiCall("file", {"path": request.match_info["path"]}, time.perf_counter()))
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        for stored in self.files.values():
            if stored.path == request.match_info["path"] and stored.content is not None:
                return web.Response(body=stored.content)
        return web.Response(status=404)

    # --- making calls fail -------------------------------------------------------------------

    def fail(self, method: str, error_code: int, description: str, *, parameters: dict | None = None,
             chat_id: int | None = None, times: int = 1) -> None:
        """Fail the next ``times`` calls of ``method`` (to ``chat_id``, if given) with this error."""
        self.failures.append(Failure(method.lower(), ApiError(error_code, description, parameters), chat_id, times))

    def fail_with_retry_after(self, method: str, seconds: int, *, chat_id: int | None = None) -> None:
        """Fail the next call of ``method`` with a 429 shaped like the captured sample."""
        envelope = self.template("error_429_too_many_requests")
        envelope["description"] = envelope["description"].rsplit(" ", 1)[0] + f" {seconds}"
        envelope["parameters"]["retry_after"] = seconds
        self.fail(method, envelope["error_code"], envelope["description"], parameters=envelope["parameters"],
                  chat_id=chat_id)

    def _apply_failures(self, method: str, params: dict) -> None:
        for failure in self.failures:
            if failure.method != method.lower() or failure.remaining <= 0:
                continue
            if failure.chat_id is not None and params.get("chat_id") != failure.chat_id:
                continue
            failure.remaining -= 1
            raise failure.error

    # --- chats and messages ------------------------------------------------------------------

    def add_chat(self, chat: dict) -> dict:
        self.chats.setdefault(chat["id"], dict(chat))
        return self.chats[chat["id"]]

    def group(self, chat_id: int, title: str = "Reviewers", chat_type: str | None = None) -> dict:
        """Register a group (or a supergroup, for ids that start with -100) and return its chat object."""
        kind = chat_type or ("supergroup" if str(chat_id).startswith("-100") else "group")
        return self.add_chat({"id": chat_id, "title": title, "type": kind})

    def _next_message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    def _target_chat(self, chat_id: Any) -> dict:
        if chat_id in self.migrated:
            raise ApiError(400, "Bad Request: group chat was upgraded to a supergroup chat",
                           {"migrate_to_chat_id": self.migrated[chat_id]})
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        chat = self.chats.get(chat_id)
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        return chat

    def messages_to(self, chat_id: int) -> list[SentMessage]:
        return list(self._sent_by_chat.get(chat_id, ()))

    def texts_to(self, chat_id: int) -> list[str]:
        return [message.text if message.text is not None else (message.caption or "") for message in
                self.messages_to(chat_id)]

    def last_message(self, chat_id: int) -> SentMessage:
        return self.messages_to(chat_id)[-1]

    def failed_calls(self) -> list[ApiCall]:
        return [call for call in self.calls if call.error is not None]

    def calls_of(self, method: str, chat_id: int | None = None) -> list[ApiCall]:
        return [call for call in self.calls if call.method.lower() == method.lower()
                and (chat_id is None or call.params.get("chat_id") == chat_id)]

    @staticmethod
    def _parse(text: Any, parse_mode: Any, limit: int, what: str) -> tuple[str, list[dict]]:
        if not isinstance(text, str):
            raise ApiError(400, f"Bad Request: {what} text is empty")
        if parse_mode in (None, ""):
            plain, entities = text, []
        elif str(parse_mode).upper() == "HTML":
            plain, entities = parse_html(text)
        else:
            raise ApiError(400, f"Bad Request: the emulator supports only the HTML parse mode, not {parse_mode}")
        if not plain.strip():
            raise ApiError(400, f"Bad Request: {what} text is empty")
        if utf16_length(plain) > limit:
            raise ApiError(400, MESSAGE_TOO_LONG if what == "message"
                           else "Bad Request: message caption is too long")
        return plain, entities

    @staticmethod
    def _check_markup(markup: Any) -> tuple[dict | None, dict | None]:
        """Return (inline keyboard, force reply) of a reply_markup parameter."""
        if not markup:
            return None, None
        if "force_reply" in markup:
            return None, markup
        for row in markup.get("inline_keyboard", []):
            for button in row:
                if not button.get("text"):
                    raise ApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard")
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        return markup, None

    def _store(self, message: SentMessage) -> SentMessage:
        self.sent.append(message)
        self._sent_by_chat.setdefault(message.chat_id, []).append(message)
        self.messages[(message.chat_id, message.message_id)] = message
        return message

    def _reply_to(self, params: dict) -> int | None:
        reply = params.get("reply_parameters") or {}
        return reply.get("message_id") or params.get("reply_to_message_id")

    # --- methods -----------------------------------------------------------------------------

    def _get_me(self, params: dict, files: dict) -> dict:
        return dict(BOT_USER)

    async def _get_updates(self, params: dict, files: dict) -> list[dict]:
        if self.webhook is not None:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        offset = params.get("offset") or 0
        if offset > 0:
            self.pending_updates = [update for update in self.pending_updates if update["update_id"] >= offset]
        limit = params.get("limit") or 100
        timeout = float(params.get("timeout") or 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.pending_updates and loop.time() < deadline:
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), deadline - loop.time())
            except TimeoutError:
                break
        return copy.deepcopy(self.pending_updates[:limit])

    def _send_message(self, params: dict, files: dict) -> dict:
        chat = self._target_chat(params.get("chat_id"))
        text, entities = self._parse(params.get("text"), params.get("parse_mode"), MAX_TEXT, "message")
        keyboard, force_reply = self._check_markup(params.get("reply_markup"))
        message = SentMessage(chat=chat, message_id=self._next_message_id(chat["id"]), date=int(time.time()),
                              text=text, entities=entities, reply_markup=keyboard, force_reply=force_reply,
                              reply_to_message_id=self._reply_to(params))
        return self._store(message).as_dict()

    def _find_message(self, params: dict) -> SentMessage:
        self._target_chat(params.get("chat_id"))
        message = self.messages.get((params.get("chat_id"), params.get("message_id")))
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        return message

    def _edit_message_text(self, params: dict, files: dict) -> dict:
        message = self._find_message(params)
        if message.text is None:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        text, entities = self._parse(params.get("text"), params.get("parse_mode"), MAX_TEXT, "message")
        keyboard, _ = self._check_markup(params.get("reply_markup"))
        if text == message.text and entities == message.entities and keyboard == message.reply_markup:
            raise ApiError(400, NOT_MODIFIED)
        message.edits.append(message.text)
        message.text, message.entities, message.reply_markup = text, entities, keyboard
        return message.as_dict()

    def _edit_message_reply_markup(self, params: dict, files: dict) -> dict:
        message = self._find_message(params)
        keyboard, _ = self._check_markup(params.get("reply_markup"))
        if keyboard == message.reply_markup:
            raise ApiError(400, NOT_MODIFIED)
        message.edits.append(message.text)
        message.reply_markup = keyboard
        return message.as_dict()

    def _answer_callback_query(self, params: dict, files: dict) -> bool:
        query = self.callback_queries.get(str(params.get("callback_query_id")))
        if query is None or query.answered or query.expired:
            raise ApiError(400, QUERY_TOO_OLD)
        text = params.get("text")
        if text is not None and len(text) > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        query.answered = True
        query.answer = {"text": text, "show_alert": bool(params.get("show_alert"))}
        return True

    def _upload(self, params: dict, files: dict, field_name: str) -> tuple[str, bytes]:
        if field_name in files:
            return files[field_name]
        file_id = params.get(field_name)
        stored = self.files.get(file_id) if isinstance(file_id, str) else None
        if stored is None or stored.content is None:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        return file_id, stored.content

    def _caption(self, params: dict) -> tuple[str | None, list[dict]]:
        if params.get("caption") in (None, ""):
            return None, []
        return self._parse(params["caption"], params.get("parse_mode"), MAX_CAPTION, "caption")

    def _send_document(self, params: dict, files: dict) -> dict:
        chat = self._target_chat(params.get("chat_id"))
        filename, content = self._upload(params, files, "document")
        caption, _ = self._caption(params)
        keyboard, force_reply = self._check_markup(params.get("reply_markup"))
        stored = self.add_file(content, directory="documents")
        document = {"file_name": filename, "mime_type": "application/octet-stream", "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id, "file_size": len(content)}
        message = SentMessage(chat=chat, message_id=self._next_message_id(chat["id"]), date=int(time.time()),
                              caption=caption, document=document, document_bytes=content, reply_markup=keyboard,
                              force_reply=force_reply, reply_to_message_id=self._reply_to(params))
        return self._store(message).as_dict()

    def _send_photo(self, params: dict, files: dict) -> dict:
        chat = self._target_chat(params.get("chat_id"))
        _, content = self._upload(params, files, "photo")
        caption, _ = self._caption(params)
        stored = self.add_file(content, directory="photos")
        message = SentMessage(chat=chat, message_id=self._next_message_id(chat["id"]), date=int(time.time()),
                              caption=caption, document=None, document_bytes=content)
        data = self._store(message).as_dict()
        data["photo"] = [{"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                          "file_size": len(content), "width": 800, "height": 800}]
        return data

    def _get_file(self, params: dict, files: dict) -> dict:
        stored = self.files.get(str(params.get("file_id")))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if stored.size > DOWNLOAD_LIMIT:
            raise ApiError(400, "Bad Request: file is too big")
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "file_size": stored.size,
                "file_path": stored.path}

    def _set_my_commands(self, params: dict, files: dict) -> bool:
        commands = params.get("commands") or []
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", command.get("command", "")):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(command.get("description", "")) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands = commands
        return True

    def _delete_webhook(self, params: dict, files: dict) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self.pending_updates.clear()
        return True

    def _set_webhook(self, params: dict, files: dict) -> bool:
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if not params.get("url"):
            return self._delete_webhook(params, files)
        self.webhook = {"url": params["url"], "secret_token": secret,
                        "allowed_updates": params.get("allowed_updates")}
        return True

    def _get_webhook_info(self, params: dict, files: dict) -> dict:
        return {"url": self.webhook["url"] if self.webhook else "", "has_custom_certificate": False,
                "pending_update_count": len(self.pending_updates)}

    def _delete_message(self, params: dict, files: dict) -> bool:
        message = self.messages.pop((params.get("chat_id"), params.get("message_id")), None)
        if message is None:
            raise ApiError(400, "Bad Request: message to delete not found")
        self.sent.remove(message)
        self._sent_by_chat[message.chat_id].remove(message)
        return True

    # --- files users send ----------------------------------------------------------------------

    def add_file(self, content: bytes | None, *, size: int | None = None, directory: str = "documents",
                 extension: str = "bin") -> StoredFile:
        """Store a file as if a user had uploaded it; ``size`` without ``content`` stands for a huge file."""
        number = next(self._file_numbers)
        stored = StoredFile(
            file_id=f"BQACAgIAAxkBAAI{number:08d}FakeFileId",
            file_unique_id=f"AgAD{number:08d}",
            size=size if size is not None else len(content or b""),
            content=content,
            path=f"{directory}/file_{number}.{extension}",
        )
        self.files[stored.file_id] = stored
        return stored

    # --- updates -------------------------------------------------------------------------------

    @staticmethod
    def template(name: str) -> dict:
        """A captured sample from ``telegram_payloads/``, as a fresh dict."""
        return json.loads((PAYLOADS / f"telegram_{name}.json").read_text(encoding="utf-8"))

    def _stamp(self, update: dict) -> dict:
        """Give ``update`` a new update_id and learn the chats in it."""
        update["update_id"] = next(self._update_ids)
        for key in ("message", "edited_message", "channel_post", "my_chat_member"):
            if key in update:
                self.add_chat(update[key]["chat"])
        if "callback_query" in update and "message" in update["callback_query"]:
            self.add_chat(update["callback_query"]["message"]["chat"])
        return update

    def _user_message(self, user: User, chat: dict, text: str | None = None) -> dict:
        message: dict[str, Any] = {"message_id": self._next_message_id(chat["id"]), "from": user.as_dict(),
                                   "chat": dict(chat), "date": int(time.time())}
        if text is not None:
            message["text"] = text
            if text.startswith("/"):
                message["entities"] = [{"offset": 0, "length": utf16_length(text.split(" ", 1)[0]),
                                        "type": "bot_command"}]
        return message

    def text_update(self, user: User, text: str, *, chat: dict | None = None,
                    reply_to: SentMessage | None = None) -> dict:
        """A text (or a /command) from ``user`` in their private chat, or in ``chat``."""
        update = self.template("update_private_command_start")
        update["message"] = self._user_message(user, chat or user.private_chat(), text)
        if reply_to is not None:
            update["message"]["reply_to_message"] = reply_to.as_dict()
        return self._stamp(update)

    def press(self, user: User, message: SentMessage, data: str | None = None, *, label: str | None = None) -> dict:
        """A press by ``user`` on a button of ``message``, chosen by its data or its label."""
        if data is None:
            data = next(value for text, value in message.buttons if text == label)
        update = self.template("update_callback_query")
        query = update["callback_query"]
        query["id"] = str(next(self._query_ids))
        query["from"] = user.as_dict()
        query["message"] = message.as_dict()
        query["data"] = data
        self.callback_queries[query["id"]] = CallbackQueryState(query["id"])
        return self._stamp(update)

    def document_update(self, user: User, filename: str, content: bytes | None, *,
                        mime_type: str = "application/pdf", size: int | None = None) -> dict:
        """A document from ``user``; pass ``size`` without ``content`` for a file over the download limit."""
        stored = self.add_file(content, size=size, extension=filename.rsplit(".", 1)[-1])
        update = self.template("update_document_pdf")
        message = self._user_message(user, user.private_chat())
        message["document"] = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                               "file_name": filename, "mime_type": mime_type, "file_size": stored.size}
        update["message"] = message
        return self._stamp(update)

    def photo_update(self, user: User, content: bytes) -> dict:
        """A photo from ``user`` in the four sizes Telegram sends; the largest carries ``content``."""
        update = self.template("update_photo_with_caption")
        sizes = update["message"]["photo"]
        for size in sizes:
            stored = self.add_file(content if size is sizes[-1] else content[:64], directory="photos",
                                   extension="jpg")
            size["file_id"], size["file_unique_id"], size["file_size"] = (stored.file_id, stored.file_unique_id,
                                                                          stored.size)
        message = self._user_message(user, user.private_chat())
        message["photo"] = sizes
        update["message"] = message
        return self._stamp(update)

    def membership_update(self, user: User, *, blocked: bool) -> dict:
        """``user`` blocks (or unblocks) the bot: the my_chat_member update; sends to them then fail with 403."""
        update = self.template("update_my_chat_member_kicked")
        change = update["my_chat_member"]
        change["chat"] = user.private_chat()
        change["from"] = {key: value for key, value in user.as_dict().items() if key != "language_code"}
        change["date"] = int(time.time())
        bot = {key: BOT_USER[key] for key in ("id", "is_bot", "first_name", "username")}
        member = {"user": bot, "status": "member"}
        kicked = {"user": bot, "status": "kicked", "until_date": 0}
        change["old_chat_member"], change["new_chat_member"] = (member, kicked) if blocked else (kicked, member)
        if blocked:
            self.blocked.add(user.id)
        else:
            self.blocked.discard(user.id)
        return self._stamp(update)

    def migrate(self, old_chat_id: int, new_chat_id: int, by: User) -> tuple[dict, dict]:
        """Upgrade a group to a supergroup: sends to the old id fail from now on; returns both service updates."""
        old_chat = self.chats[old_chat_id]
        new_chat = self.group(new_chat_id, old_chat.get("title", "Reviewers"), "supergroup")
        self.migrated[old_chat_id] = new_chat_id
        to_update = self.template("update_group_migrate_to_chat_id")
        to_update["message"].update(chat=dict(old_chat), date=int(time.time()), migrate_to_chat_id=new_chat_id,
                                    message_id=self._next_message_id(old_chat_id))
        to_update["message"]["from"] = by.as_dict()
        from_update = self.template("update_supergroup_migrate_from_chat_id")
        from_update["message"].update(chat=dict(new_chat), sender_chat=dict(new_chat), date=int(time.time()),
                                      migrate_from_chat_id=old_chat_id, message_id=self._next_message_id(new_chat_id))
        return self._stamp(to_update), self._stamp(from_update)

    def edited_update(self, user: User, text: str) -> dict:
        update = self.template("update_edited_message")
        message = self._user_message(user, user.private_chat(), text)
        message["edit_date"] = message["date"]
        update["edited_message"] = message
        return self._stamp(update)

    def channel_post_update(self, chat_id: int, text: str) -> dict:
        """A post in a channel, which Telegram sends with ``sender_chat`` and no ``from``."""
        chat = self.group(chat_id, "Announcements", "channel")
        update = self.template("update_supergroup_text")
        message = update.pop("message")
        message.pop("from")
        message.update(chat=dict(chat), sender_chat=dict(chat), text=text, message_id=self._next_message_id(chat_id),
                       date=int(time.time()))
        update["channel_post"] = message
        return self._stamp(update)

    def raw(self, name: str) -> dict:
        """A captured sample unchanged except for a fresh update_id."""
        return self.raw_update(self.template(name))

    def raw_update(self, update: dict) -> dict:
        """A copy of ``update`` with a fresh update_id; the files it mentions become downloadable."""
        update = self._stamp(copy.deepcopy(update))
        message = update.get("message") or update.get("edited_message") or {}
        mentioned = [message[kind] for kind in ("document", "voice", "audio", "video") if kind in message]
        for entry in [*mentioned, *message.get("photo", [])]:
            size = entry.get("file_size", 1024)
            self.files.setdefault(entry["file_id"], StoredFile(
                file_id=entry["file_id"], file_unique_id=entry.get("file_unique_id", entry["file_id"][-8:]),
                size=size, content=b"\0" * size if size <= DOWNLOAD_LIMIT else None,
                path=f"captured/{entry['file_id'][-12:]}"))
        return update

    def inject(self, update: dict) -> int:
        """Queue ``update`` for getUpdates; return its update_id."""
        self.pending_updates.append(update)
        self.notify()
        return update["update_id"]

    async def post_webhook(self, update: dict, client: httpx.AsyncClient, *, secret: Any = DEFAULT) -> httpx.Response:
        """POST ``update`` to the URL the bot registered with setWebhook.

        ``secret`` defaults to the registered secret token; None sends no header.
        """
        assert self.webhook is not None, "the bot has not called setWebhook"
        token = self.webhook["secret_token"] if secret is DEFAULT else secret
        headers = {"X-Telegram-Bot-Api-Secret-Token": token} if token is not None else {}
        return await client.post(self.webhook["url"], json=update, headers=headers)

    def expire(self, update: dict) -> None:
        """Make the callback query of ``update`` too old to answer."""
        self.callback_queries[update["callback_query"]["id"]].expired = True

    def answer_of(self, update: dict) -> dict | None:
        """The answerCallbackQuery parameters the bot gave to the press in ``update``."""
        return self.callback_queries[update["callback_query"]["id"]].answer
