"""Pacing of Bot API sends so that the bot stays under Telegram's rate limits.

Telegram's bot FAQ gives the limits: about 30 messages per second overall,
one per second in a private chat (short bursts are allowed), and 20 per minute
in a group. Each limit is a bucket in the generic cell rate algorithm: a send
waits until every bucket it belongs to allows it, and each of those buckets
counts it at that time. Chats with a negative id are groups, supergroups or
channels.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

IDLE_BUCKETS_KEPT = 10_000
"""Chat buckets kept before idle ones (whose next slot has passed) are dropped."""


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
        delay = self.reserve(chat_id)
        if delay > 0:
            await self._sleep(delay)
