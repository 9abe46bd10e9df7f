"""A loopback emulation of the Slack Web API, files and Socket Mode, for tests and benchmarks.

It implements the methods careerbot calls, with the response shapes of
Slack's method reference pages, and checks the bot token and Block Kit limits
as Slack does (``invalid_auth``, ``invalid_blocks``). It records every call
with its parameters and time. A test can make it return an error, or a 429
with ``Retry-After``, for a given call. Shared files are served at
``url_private`` to requests that carry the bot token; other requests get a
sign-in page, as from Slack. ``apps.connections.open`` returns a WebSocket URL
on this server where a test pushes Socket Mode envelopes.

The emulator runs in the caller's event loop::

    emulator = SlackEmulator(bot_token="xoxb-1")
    await emulator.start()
    client = AsyncWebClient(token="xoxb-1", base_url=emulator.api_url)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

TEAM_ID = "T0000000001"
BOT_USER_ID = "U0000000002"
BOT_ID = "B0000000002"
APP_ID = "A0000000001"

SECTION_MAX = 3000
MESSAGE_MAX_BLOCKS = 50
VIEW_MAX_BLOCKS = 100


@dataclass
class Call:
    """One request to the Web API: the method, its parameters and when it arrived (``time.monotonic()``)."""

    method: str
    params: dict[str, Any]
    at: float


@dataclass
class Fault:
    method: str
    error: str
    status: int = 200
    times: int = 1
    retry_after: int | None = None
    when: Callable[[dict[str, Any]], bool] | None = None


@dataclass
class SharedFile:
    meta: dict[str, Any]
    data: bytes


@dataclass
class SocketSession:
    websocket: web.WebSocketResponse
    acks: list[dict[str, Any]] = field(default_factory=list)


class SlackEmulator:
    """The emulated workspace: one bot, its token, users, channels, messages, views and files."""

    def __init__(self, *, bot_token: str, app_token: str | None = None) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.calls: list[Call] = []
        self.posts: dict[str, list[Call]] = {}
        """``chat.postMessage`` calls by channel, in order, including those that got an error."""
        self.faults: list[Fault] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.views: dict[str, dict[str, Any]] = {}
        self.homes: dict[str, dict[str, Any]] = {}
        self.files: dict[str, SharedFile] = {}
        self.uploads: dict[str, bytes] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.direct_channels: dict[str, str] = {}
        self.socket_acks: list[dict[str, Any]] = []
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_connected = asyncio.Event()
        self._changed = asyncio.Condition()
        self._counter = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle and addresses -----------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_get("/files-pri/{key}/{name}", self._download)
        app.router.add_get("/files-pri/{key}/download/{name}", self._download)
        app.router.add_post("/upload/v1/{file_id}", self._upload)
        app.router.add_get("/link/", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for websocket in list(self._sockets):
            await websocket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    # --- what tests arrange ------------------------------------------------------------

    def fail(self, method: str, error: str, *, status: int = 200, times: int = 1, retry_after: int | None = None,
             when: Callable[[dict[str, Any]], bool] | None = None) -> None:
        """Return ``error`` for the next ``times`` calls of ``method`` (that match ``when``)."""
        self.faults.append(Fault(method, error, status, times, retry_after, when))

    def rate_limit(self, method: str, *, retry_after: int = 1, times: int = 1,
                   when: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self.fail(method, "ratelimited", status=429, times=times, retry_after=retry_after, when=when)

    def add_user(self, user_id: str, name: str, *, real_name: str | None = None, is_bot: bool = False) -> None:
        self.users[user_id] = _user(user_id, name, real_name or name.title(), is_bot)

    def add_file(self, name: str, data: bytes, mimetype: str, *, size: int | None = None,
                 user: str = "U0000000001") -> dict[str, Any]:
        """Store a shared file and return its file object as a ``file_share`` event carries it."""
        file_id = f"F{next(self._counter):010d}"
        key = f"{TEAM_ID}-{file_id}"
        meta = {
            "id": file_id, "created": int(time.time()), "timestamp": int(time.time()), "name": name, "title": name,
            "mimetype": mimetype, "filetype": name.rsplit(".", 1)[-1], "pretty_type": name.rsplit(".", 1)[-1].upper(),
            "user": user, "user_team": TEAM_ID, "editable": False, "size": len(data) if size is None else size,
            "mode": "hosted", "is_external": False, "external_type": "", "is_public": False,
            "public_url_shared": False, "display_as_bot": False, "username": "",
            "url_private": f"{self.base_url}/files-pri/{key}/{name}",
            "url_private_download": f"{self.base_url}/files-pri/{key}/download/{name}",
            "permalink": f"https://example-workspace.slack.com/files/{user}/{file_id}/{name}",
            "permalink_public": f"https://slack-files.com/{key}-0000000000",
            "has_rich_preview": False, "file_access": "visible",
        }
        self.files[file_id] = SharedFile(meta, data)
        return dict(meta)

    def direct_channel_of(self, user_id: str) -> str:
        """The bot's DM channel with ``user_id`` (created on first use), as conversations.open returns it."""
        if user_id not in self.direct_channels:
            self.direct_channels[user_id] = f"D{next(self._counter):010d}"
        return self.direct_channels[user_id]

    # --- what tests inspect ------------------------------------------------------------

    def calls_to(self, method: str, **matching: Any) -> list[Call]:
        return [call for call in self.calls
                if call.method == method and all(call.params.get(key) == value for key, value in matching.items())]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until ``predicate()`` returns something truthy (checked after every call); return it."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
            except TimeoutError:
                raise AssertionError(f"emulator: condition not met in {timeout} s; calls: "
                                     f"{[call.method for call in self.calls[-30:]]}") from None
            return predicate()

    async def wait_for_calls(self, method: str, count: int = 1, timeout: float = 10.0, **matching: Any) -> list[Call]:
        return await self.wait_for(lambda: (found := self.calls_to(method, **matching)) and len(found) >= count
                                   and found, timeout)

    # --- Socket Mode -------------------------------------------------------------------

    async def send_envelope(self, envelope: dict[str, Any], timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._socket_connected.wait(), timeout)
        await self._sockets[-1].send_str(json.dumps(envelope))

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        websocket = web.WebSocketResponse()
        await websocket.prepare(request)
        self._sockets.append(websocket)
        await websocket.send_str(json.dumps({
            "type": "hello", "num_connections": 1,
            "debug_info": {"host": "applink-emulator", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": APP_ID},
        }))
        self._socket_connected.set()
        async for message in websocket:
            if message.type == WSMsgType.TEXT:
                self.socket_acks.append(json.loads(message.data))
                await self._notify()
        self._sockets.remove(websocket)
        return websocket

    # --- the Web API -------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _read_params(request)
        call = Call(method, params, time.monotonic())
        self.calls.append(call)
        if method == "chat.postMessage":
            self.posts.setdefault(str(params.get("channel")), []).append(call)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ") or params.get("token")
        response = self._answer(method, params, token)
        await self._notify()
        return response

    def _answer(self, method: str, params: dict[str, Any], token: str | None) -> web.Response:
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            return _error("invalid_auth")
        for fault in self.faults:
            if fault.method == method and fault.times > 0 and (fault.when is None or fault.when(params)):
                fault.times -= 1
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                return _error(fault.error, status=fault.status, headers=headers)
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return _error("unknown_method")
        return web.json_response(handler(params))

    async def _notify(self) -> None:
        """Wake the waiters of :meth:`wait_for` to check their condition again."""
        async with self._changed:
            self._changed.notify_all()

    def _ts(self) -> str:
        return f"{int(time.time())}.{next(self._counter):06d}"

    def _auth_test(self, params: dict) -> dict:
        return {"ok": True, "url": "https://example-workspace.slack.com/", "team": "Example Workspace",
                "user": "careerbot", "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID,
                "is_enterprise_install": False}

    def _bot_message(self, params: dict, ts: str) -> dict:
        message = {"bot_id": BOT_ID, "type": "message", "text": params.get("text", ""), "user": BOT_USER_ID,
                   "ts": ts, "app_id": APP_ID, "team": TEAM_ID,
                   "bot_profile": {"id": BOT_ID, "app_id": APP_ID, "name": "careerbot", "team_id": TEAM_ID}}
        if params.get("blocks") is not None:
            message["blocks"] = params["blocks"]
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        return message

    def _chat_postMessage(self, params: dict) -> dict:
        problem = _message_problem(params)
        if problem:
            return {"ok": False, "error": problem}
        ts = self._ts()
        message = self._bot_message(params, ts)
        self.messages[(params["channel"], ts)] = message
        return {"ok": True, "channel": params["channel"], "ts": ts, "message": message}

    def _chat_update(self, params: dict) -> dict:
        key = (params.get("channel"), params.get("ts"))
        if key not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        problem = _message_problem(params)
        if problem:
            return {"ok": False, "error": problem}
        message = self._bot_message(params, params["ts"])
        message["edited"] = {"user": BOT_USER_ID, "ts": self._ts()}
        self.messages[key] = message
        return {"ok": True, "channel": params["channel"], "ts": params["ts"], "text": params.get("text", ""),
                "message": message}

    def _chat_postEphemeral(self, params: dict) -> dict:
        if not params.get("user"):
            return {"ok": False, "error": "user_not_found"}
        problem = _message_problem(params)
        if problem:
            return {"ok": False, "error": problem}
        return {"ok": True, "message_ts": self._ts()}

    def _views_open(self, params: dict) -> dict:
        if not params.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        problem = _view_problem(params.get("view"))
        if problem:
            return {"ok": False, "error": problem}
        view = self._stored_view(params["view"])
        self.views[view["id"]] = view
        return {"ok": True, "view": view}

    def _views_publish(self, params: dict) -> dict:
        problem = _view_problem(params.get("view"))
        if problem:
            return {"ok": False, "error": problem}
        view = self._stored_view(params["view"])
        self.homes[params["user_id"]] = view
        return {"ok": True, "view": view}

    def _stored_view(self, view: dict) -> dict:
        view_id = f"V{next(self._counter):010d}"
        return {"id": view_id, "team_id": TEAM_ID, "state": {"values": {}}, "hash": f"{int(time.time())}.abc{view_id}",
                "clear_on_close": False, "notify_on_close": False, "root_view_id": view_id, "previous_view_id": None,
                "app_id": APP_ID, "external_id": "", "app_installed_team_id": TEAM_ID, "bot_id": BOT_ID,
                "private_metadata": "", "callback_id": "", **view}

    def _conversations_open(self, params: dict) -> dict:
        users = str(params.get("users") or "")
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        return {"ok": True, "no_op": True, "already_open": True, "channel": {"id": self.direct_channel_of(users)}}

    def _users_info(self, params: dict) -> dict:
        user_id = params.get("user", "")
        user = self.users.get(user_id) or _user(user_id, user_id.lower(), f"User {user_id}", False)
        return {"ok": True, "user": user}

    def _files_info(self, params: dict) -> dict:
        shared = self.files.get(params.get("file", ""))
        if shared is None:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "file": dict(shared.meta), "comments": [], "response_metadata": {"next_cursor": ""}}

    def _files_getUploadURLExternal(self, params: dict) -> dict:
        file_id = f"F{next(self._counter):010d}"
        self.uploads[file_id] = b""
        return {"ok": True, "upload_url": f"{self.base_url}/upload/v1/{file_id}", "file_id": file_id}

    def _files_completeUploadExternal(self, params: dict) -> dict:
        files = params.get("files")
        if isinstance(files, str):
            files = json.loads(files)
        result = []
        for entry in files or []:
            if entry["id"] not in self.uploads:
                return {"ok": False, "error": "file_not_found"}
            result.append({"id": entry["id"], "title": entry.get("title") or "", "name": entry.get("title") or "",
                           "size": len(self.uploads[entry["id"]])})
        return {"ok": True, "files": result}

    def _apps_connections_open(self, params: dict) -> dict:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket=emulator-{next(self._counter)}"}

    # --- files -------------------------------------------------------------------------

    async def _download(self, request: web.Request) -> web.Response:
        self.calls.append(Call("file.download", {"path": request.path}, time.monotonic()))
        await self._notify()
        file_id = request.match_info["key"].rsplit("-", 1)[-1]
        shared = self.files.get(file_id)
        if shared is None:
            return web.Response(status=404, text="not found")
        if request.headers.get("Authorization") != f"Bearer {self.bot_token}":
            return web.Response(text="<html><body>Sign in to Example Workspace</body></html>",
                                content_type="text/html")
        return web.Response(body=shared.data, content_type=shared.meta["mimetype"])

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if file_id not in self.uploads:
            return web.Response(status=404, text="not found")
        self.uploads[file_id] = await request.read()
        self.calls.append(Call("file.upload", {"file_id": file_id, "size": len(self.uploads[file_id])},
                               time.monotonic()))
        await self._notify()
        return web.Response(text=f"OK - {len(self.uploads[file_id])}")


# --- helpers -----------------------------------------------------------------------------


def _user(user_id: str, name: str, real_name: str, is_bot: bool) -> dict[str, Any]:
    return {
        "id": user_id, "team_id": TEAM_ID, "name": name, "deleted": False, "real_name": real_name,
        "tz": "America/New_York", "tz_label": "Eastern Standard Time", "tz_offset": -18000,
        "profile": {"real_name": real_name, "display_name": real_name, "real_name_normalized": real_name,
                    "display_name_normalized": real_name, "team": TEAM_ID},
        "is_admin": False, "is_owner": False, "is_bot": is_bot, "is_app_user": False, "updated": 1700000000,
    }


async def _read_params(request: web.Request) -> dict[str, Any]:
    # The SDK sends some methods' arguments in the query string, others as a form or JSON body.
    params: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.content_type == "application/json":
        params.update(await request.json())
    elif request.method == "POST":
        params.update(await request.post())
    for key in ("blocks", "view", "files", "attachments"):
        if isinstance(params.get(key), str):
            try:
                params[key] = json.loads(params[key])
            except json.JSONDecodeError:
                pass
    return params


def _error(error: str, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"ok": False, "error": error}, status=status, headers=headers)


def _message_problem(params: dict) -> str | None:
    if not params.get("channel"):
        return "channel_not_found"
    blocks = params.get("blocks")
    if not params.get("text") and not blocks:
        return "no_text"
    if blocks is not None and _blocks_problem(blocks, MESSAGE_MAX_BLOCKS):
        return "invalid_blocks"
    return None


def _view_problem(view: Any) -> str | None:
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        return "invalid_arguments"
    if view["type"] == "modal":
        for key in ("title", "submit", "close"):
            if key in view and len(view[key]["text"]) > 24:
                return "invalid_arguments"
        if len(view.get("private_metadata", "")) > 3000:
            return "invalid_arguments"
    if _blocks_problem(view.get("blocks") or [], VIEW_MAX_BLOCKS):
        return "invalid_blocks"
    return None


def _blocks_problem(blocks: list, max_blocks: int) -> str | None:
    """Slack's Block Kit limits, as the API enforces them; None when the blocks are valid."""
    if not isinstance(blocks, list) or len(blocks) > max_blocks:
        return f"more than {max_blocks} blocks"
    action_ids: set[str] = set()
    for block in blocks:
        kind = block.get("type")
        if kind == "section":
            text = (block.get("text") or {}).get("text", "")
            if not text or len(text) > SECTION_MAX:
                return f"section text of {len(text)} characters"
        elif kind == "header":
            if len(block["text"]["text"]) > 150:
                return "header too long"
        elif kind == "context":
            if not 1 <= len(block.get("elements") or []) <= 10:
                return "context elements"
            if any(len(element.get("text", "")) > SECTION_MAX for element in block["elements"]):
                return "context text too long"
        elif kind == "actions":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 25:
                return "actions elements"
            for element in elements:
                if len(element["text"]["text"]) > 75 or len(element.get("value", "")) > 2000:
                    return "button text or value too long"
                if len(element["action_id"]) > 255 or element["action_id"] in action_ids:
                    return "action_id too long or repeated"
                action_ids.add(element["action_id"])
        elif kind == "input":
            if len(block["label"]["text"]) > 2000:
                return "input label too long"
            for option in block["element"].get("options", []):
                if len(option["text"]["text"]) > 75:
                    return "option text too long"
        elif kind != "divider":
            return f"unknown block type {kind}"
    return None
