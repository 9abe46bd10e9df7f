"""A small loopback Bot API server that records what each careerbot process sent.

Every process gets its own base URL, ``http://127.0.0.1:PORT/<tag>/bot``, so
each recorded call names the process (the tag) that made it. The server
answers the methods careerbot calls in webhook mode with the envelopes
python-telegram-bot expects (``{"ok": true, "result": ...}``) and keeps no
other state: it stands in for Telegram where the fault tests count replies.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass
from html import unescape
from typing import Any

from aiohttp import web

TOKEN = "7000000001:AAFakeFakeFakeFakeFakeFakeFakeFake00"
BOT_USER = {"id": 7000000001, "is_bot": True, "first_name": "Career Bot", "username": "career_bot",
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}
PATH = re.compile(r"^/(?P<tag>[^/]+)/bot(?P<token>[^/]+)/(?P<method>\w+)$")
MESSAGE_METHODS = ("sendMessage", "editMessageText", "sendDocument")
"""Calls that carry one outbox row's text (a document carries it as its caption)."""


@dataclass(frozen=True)
class Call:
    """One Bot API request: which process made it, the method, the chat and the plain text."""

    tag: str
    method: str
    chat_id: str
    text: str
    at: float


class BotApi:
    """Records every call with its process tag; start with :meth:`start`, stop with :meth:`stop`."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._message_ids = itertools.count(1000)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def base_url(self, tag: str) -> str:
        return f"http://127.0.0.1:{self.port}/{tag}/bot"

    def base_file_url(self, tag: str) -> str:
        return f"http://127.0.0.1:{self.port}/{tag}/file/bot"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def messages(self, chat_id: str | None = None) -> list[Call]:
        return [call for call in self.calls
                if call.method in MESSAGE_METHODS and (chat_id is None or call.chat_id == chat_id)]

    async def _handle(self, request: web.Request) -> web.Response:
        match = PATH.match(request.path)
        if match is None or match["token"] != TOKEN:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        parameters = await _parameters(request)
        method = match["method"]
        chat_id = str(parameters.get("chat_id", ""))
        text = unescape(str(parameters.get("text") or parameters.get("caption") or ""))
        self.calls.append(Call(match["tag"], method, chat_id, text, time.perf_counter()))
        return web.json_response({"ok": True, "result": self._result(method, chat_id, parameters)})

    def _result(self, method: str, chat_id: str, parameters: dict[str, Any]) -> Any:
        if method == "getMe":
            return BOT_USER
        if method in ("sendMessage", "editMessageText", "editMessageReplyMarkup", "sendDocument"):
            message_id = parameters.get("message_id") or next(self._message_ids)
            return {"message_id": int(message_id), "date": int(time.time()), "from": BOT_USER,
                    "chat": {"id": int(chat_id or 0), "type": "private", "first_name": "Learner"},
                    "text": str(parameters.get("text", ""))}
        return True


async def _parameters(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        return await request.json()
    form = await request.post()
    parameters: dict[str, Any] = {}
    for key, value in form.items():
        if isinstance(value, str) and value[:1] in "[{":
            try:
                value = json.loads(value)
            except ValueError:
                pass
        parameters[key] = value
    return parameters
