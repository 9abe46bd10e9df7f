"""The Bot API emulator with Telegram's flood limits: sends beyond them are answered with 429.

:class:`RateLimitedTelegram` counts the messages and documents the bot sends
and answers ``429 Too Many Requests`` with ``retry_after`` when a send would
exceed ``per_second`` over any one-second window, or comes sooner than
``per_chat_interval`` after the last one to the same chat. Telegram does not
publish its exact algorithm; these two rules follow its bot FAQ ("about 30
messages per second", "no more than one message per second" in a chat).
Every 429 it answers is recorded in ``rejected``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque

from tests.adapters.telegram_emulator import ApiError, TelegramEmulator

SEND_METHODS = ("sendmessage", "senddocument", "sendphoto")


class RateLimitedTelegram(TelegramEmulator):
    def __init__(self, *, per_second: float, per_chat_interval: float, retry_after: int = 1,
                 allowance: int = 0) -> None:
        """``allowance`` sends over ``per_second`` are tolerated in a window, for the jitter of a loopback server."""
        super().__init__()
        self.per_second = per_second
        self.per_chat_interval = per_chat_interval
        self.retry_after = retry_after
        self.allowance = allowance
        self.rejected: list[tuple[float, object]] = []
        self._window: deque[float] = deque()
        self._last_to_chat: dict[object, float] = {}

    def _apply_failures(self, method: str, params: dict) -> None:
        super()._apply_failures(method, params)
        if method.lower() not in SEND_METHODS:
            return
        now = time.perf_counter()
        chat_id = params.get("chat_id")
        while self._window and now - self._window[0] >= 1.0:
            self._window.popleft()
        too_many = len(self._window) >= self.per_second + self.allowance
        last = self._last_to_chat.get(chat_id)
        too_soon = last is not None and now - last < self.per_chat_interval
        if too_many or too_soon:
            self.rejected.append((now, chat_id))
            raise ApiError(429, f"Too Many Requests: retry after {self.retry_after}",
                           {"retry_after": self.retry_after})
        self._window.append(now)
        self._last_to_chat[chat_id] = now

    def _stats(self, params: dict, files: dict) -> dict:
        """``careerbotStats``: the arrival times of the sends answered with success, and the 429s."""
        sends = [call.at for call in self.calls if call.method.lower() in SEND_METHODS and call.error is None]
        return {"sent": sends, "rejected": [at for at, _ in self.rejected]}


class OpenChatsTelegram(RateLimitedTelegram):
    """A rate-limited emulator that knows every private chat the bot writes to, for benchmarks."""

    def __init__(self, **limits) -> None:
        super().__init__(**limits)
        self._methods["careerbotstats"] = self._stats

    def _target_chat(self, chat_id):
        if isinstance(chat_id, int) and chat_id > 0 and chat_id not in self.chats:
            self.add_chat({"id": chat_id, "first_name": f"Learner {chat_id}", "type": "private"})
        return super()._target_chat(chat_id)


async def _serve(per_second: float, per_chat_interval: float, allowance: int) -> None:
    emulator = OpenChatsTelegram(per_second=per_second, per_chat_interval=per_chat_interval,
                                 allowance=allowance)
    await emulator.start()
    print(emulator.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await emulator.stop()


if __name__ == "__main__":
    # A process of its own, so that the bot's event loop cannot delay when sends are counted:
    # python -m tests.adapters.rate_limited_telegram PER_SECOND PER_CHAT_INTERVAL ALLOWANCE
    # prints the port, and serves until its standard input closes.
    asyncio.run(_serve(float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])))
