"""Pacing of Bot API sends so that the bot stays under Telegram's rate limits.

Telegram's bot FAQ gives the limits: about 30 messages per second overall,
one per second in a private chat (short bursts are allowed), and 20 per minute
in a group. Each limit is a bucket in the generic cell rate algorithm: a send
waits until every bucket it belongs to allows it, and each of those buckets
counts it at that time. The overall rate is also kept in every one-second
window, so that a stalled event loop cannot release a burst. A send made in
:meth:`Pacer.slot` counts from when its call returned, which also absorbs
the delay between the pacer and Telegram. Chats with a negative id are
groups, supergroups or channels.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

IDLE_BUCKETS_KEPT = 10_000
"""Chat buckets kept before idle ones (whose next slot has passed) are dropped."""
WINDOW_SECONDS = 1.0
"""The window over which the overall rate is also counted, send by send."""
IN_FLIGHT_POLL_SECONDS = 0.01
"""How often a send waiting for room checks again while every send of the window is still in flight."""


@dataclass
class _Bucket:
    interval: float
    burst: int
    next_slot: float = 0.0

    def allowed_at(self, now: float) -> float:
        """Return the earliest time, ``now`` or later, at which this bucket allows a send."""
        return max(now, self.next_slot - (self.burst - 1) * self.interval)

    def take(self, at: float) -> None:
        """Count a send made at ``at``."""
        self.next_slot = max(self.next_slot, at) + self.interval

    def count_completion(self, at: float) -> None:
        """Count a send that :meth:`take` counted as completed at ``at``, as if it had been made then."""
        self.next_slot = max(self.next_slot, at + self.interval)


class Pacer:
    """Per-bot send pacing. A rate of None switches that limit off.

    Args:
        overall_per_second: sends per second over all chats.
        private_per_second: sends per second in one private chat.
        private_burst: sends a private chat may take at once before the rate applies.
            NOTE: Telegram does not publish how large a burst it tolerates; 3 is an estimate.
        group_per_minute: sends per minute in one group. Sends are spaced evenly,
            so no 60-second window contains more than this many.
    """

    def __init__(self, *, overall_per_second: float | None = 30.0, private_per_second: float | None = 1.0,
                 private_burst: int = 3, group_per_minute: float | None = 20.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._overall = _Bucket(1.0 / overall_per_second, 1) if overall_per_second else None
        self._overall_per_window = max(1, int(overall_per_second)) if overall_per_second else None
        self._recent: deque[float] = deque()
        self._in_flight = 0
        self._private_interval = 1.0 / private_per_second if private_per_second else None
        self._private_burst = private_burst
        self._group_interval = 60.0 / group_per_minute if group_per_minute else None
        self._chats: dict[str, _Bucket] = {}
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def unlimited(cls) -> Pacer:
        """Return a pacer that never waits, for tests and benchmarks against an emulator."""
        return cls(overall_per_second=None, private_per_second=None, group_per_minute=None)

    def _chat_bucket(self, chat_id: str) -> _Bucket | None:
        bucket = self._chats.get(chat_id)
        if bucket is not None:
            return bucket
        if chat_id.startswith("-"):
            if self._group_interval is None:
                return None
            bucket = _Bucket(self._group_interval, 1)
        else:
            if self._private_interval is None:
                return None
            bucket = _Bucket(self._private_interval, self._private_burst)
        self._chats[chat_id] = bucket
        return bucket

    def reserve(self, chat_id: str) -> float:
        """Reserve a send to ``chat_id`` and return the seconds to wait before making it."""
        now = self._clock()
        if len(self._chats) > IDLE_BUCKETS_KEPT:
            self._chats = {key: bucket for key, bucket in self._chats.items() if bucket.next_slot > now}
        buckets = [bucket for bucket in (self._overall, self._chat_bucket(chat_id)) if bucket is not None]
        # Every bucket counts the send at the time the slowest one allows, because
        # counting it earlier in a chat's bucket would let the chat's next send come too soon.
        send_at = max((bucket.allowed_at(now) for bucket in buckets), default=now)
        for bucket in buckets:
            bucket.take(send_at)
        return send_at - now

    async def wait(self, chat_id: str) -> None:
        """Sleep until a send to ``chat_id`` may go; the send counts from now."""
        await self._admit(chat_id)
        self._recent.append(self._clock())

    @asynccontextmanager
    async def slot(self, chat_id: str) -> AsyncIterator[None]:
        """Wait as :meth:`wait` does, then make the send inside the block.

        The send counts in the overall window, and in its chat's bucket, from
        when its call returned, not from when it left the pacer. So no delay on
        the way to Telegram can bring more sends than a rate allows into one
        second of Telegram's clock, or two sends to a chat closer together.
        """
        await self._admit(chat_id)
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            completed = self._clock()
            self._recent.append(completed)
            bucket = self._chats.get(chat_id)
            if bucket is not None:
                bucket.count_completion(completed)

    async def _admit(self, chat_id: str) -> None:
        delay = self.reserve(chat_id)
        if delay > 0:
            await self._sleep(delay)
        await self._wait_for_window()

    async def _wait_for_window(self) -> None:
        """Wait until the last second contains fewer sends than the overall rate, counting those in flight.

        The buckets space reservations evenly, but a stalled event loop wakes
        several reserved sends at once; without this check they would go out
        together on top of the sends the window already contains.
        """
        if self._overall_per_window is None:
            return
        while True:
            now = self._clock()
            while self._recent and now - self._recent[0] >= WINDOW_SECONDS:
                self._recent.popleft()
            if self._in_flight + len(self._recent) < self._overall_per_window:
                return
            if self._recent:
                await self._sleep(WINDOW_SECONDS - (now - self._recent[0]))
            else:
                await self._sleep(IN_FLIGHT_POLL_SECONDS)
