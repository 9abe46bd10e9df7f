"""Measure a coordinator's segment message to a large cohort: queuing it, then sending it to Telegram.

1. Seeds a SQLite file with ``--learners`` Telegram learners (bulk inserts).
2. A coordinator sends ``/nudge_segment all ...`` and presses Send, through
   the real engine. The script prints how long the preview and the confirm
   took: the confirm selects the segment again and writes one outbox row and
   one audit row per learner in one transaction.
3. The real Telegram adapter delivers the outbox with its default pacing
   (30 messages per second overall) to the rate-limited Bot API emulator of
   the test suite, run in a process of its own on loopback. The emulator
   answers 429 to any send over 30 in one second (plus ``--allowance`` for
   loopback jitter) or sooner than 1 s after the last one to the same chat.
   After ``--sends`` messages the script prints the achieved rate, from the
   emulator's recorded arrival times, against the configured limit, and how
   many 429 answers there were.

Usage:
    python bench/nudge_bench.py
    python bench/nudge_bench.py --learners 10000 --sends 300
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
# The emulator lives with the tests, which are not an installed package.
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from adapters.telegram import PTB_TIMEDELTA, TelegramBot  # noqa: E402
from adapters.telegram_pacing import Pacer  # noqa: E402
from bot.app import build_engine  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.engine import Engine  # noqa: E402
from bot.events import InboundEvent  # noqa: E402
from bot.models import Learner, Nudge, OutboxMessage  # noqa: E402
from tests.adapters.telegram_emulator import TOKEN  # noqa: E402

FIRST_USER_ID = 500_000_000
OVERALL_LIMIT = 30.0
"""Telegram's bot FAQ: about 30 messages per second overall; the pacer's default."""
SEED_BATCH = 5000


def seed(engine: Engine, count: int) -> None:
    """Insert ``count`` Telegram learners who consented and finished their plan, in batches."""
    now = datetime.now(timezone.utc)
    for start in range(0, count, SEED_BATCH):
        rows = [
            {"platform": "telegram", "platform_user_id": str(FIRST_USER_ID + index),
             "chat_id": str(FIRST_USER_ID + index), "state": "home", "name": f"Learner {index}",
             "campus": "north-campus", "timezone": "Europe/London", "answers": {}, "context": {},
             "consented_at": now, "plan_completed_at": now, "reminders_paused": False, "created_at": now,
             "last_activity_at": now}
            for index in range(start, min(start + SEED_BATCH, count))
        ]
        with engine.session_factory() as session, session.begin():
            session.execute(insert(Learner), rows)


def coordinator_event(**fields) -> InboundEvent:
    return InboundEvent(platform="console", user_id="coordinator", chat_id="coordinator",
                        update_id=uuid.uuid4().hex, display_name="Sam", **fields)


def queue_segment(engine: Engine) -> dict[str, float]:
    """Preview and confirm a message to every learner through the engine; return the seconds each took."""
    started = time.perf_counter()
    handled = engine.handle(coordinator_event(text="/nudge_segment all Your Level 1 items are due on 20 March; "
                                                   "type /submit to send one."))
    preview_seconds = time.perf_counter() - started
    send_action = handled.messages[0].buttons[0].action

    started = time.perf_counter()
    engine.handle(coordinator_event(action=send_action))
    confirm_seconds = time.perf_counter() - started

    with engine.session_factory() as session:
        queued = session.scalar(select(func.count()).select_from(OutboxMessage)
                                .where(OutboxMessage.kind == "coordinator"))
        audited = session.scalar(select(func.count()).select_from(Nudge))
    return {"preview_s": preview_seconds, "confirm_s": confirm_seconds, "queued": queued, "audited": audited}


@contextmanager
def emulator_process(allowance: int) -> Iterator[str]:
    """Run the rate-limited Bot API emulator in a process of its own; yield its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.adapters.rate_limited_telegram", str(OVERALL_LIMIT), "1.0", str(allowance)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stdin.close()
        process.wait(timeout=10)


async def emulator_stats(base_url: str) -> dict:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{base_url}/bot{TOKEN}/careerbotStats")
    return response.json()["result"]


async def send(engine: Engine, base_url: str, sends: int, timeout: float) -> dict[str, float]:
    """Deliver with the adapter's default pacing until ``sends`` messages reached the emulator."""
    bot = TelegramBot(engine, pacer=Pacer())
    deadline = time.monotonic() + timeout
    async with bot.application:
        bot.delivery.start()
        bot.delivery.wake()
        try:
            while len((stats := await emulator_stats(base_url))["sent"]) < sends:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {len(stats['sent'])} of {sends} sends after {timeout:.0f} s")
                await asyncio.sleep(0.5)
        finally:
            await bot.delivery.close()
    times = sorted(stats["sent"])[:sends]
    rate = (len(times) - 1) / (times[-1] - times[0])
    return {"sent": len(times), "seconds": times[-1] - times[0], "rate": rate, "rejected": len(stats["rejected"])}


async def run(learners: int, sends: int, allowance: int) -> None:
    os.environ.setdefault(PTB_TIMEDELTA, "true")
    with tempfile.TemporaryDirectory(prefix="careerbot-nudge-bench-") as folder, \
            emulator_process(allowance) as base_url:
        settings = load_settings(
            environ={}, data_dir=Path(folder), telegram_token=TOKEN, telegram_base_url=f"{base_url}/bot",
            telegram_base_file_url=f"{base_url}/file/bot", quiet_hours="00:00-00:00",
            coordinators=("console:coordinator",),
        )
        engine = build_engine(settings)
        started = time.perf_counter()
        seed(engine, learners)
        print(f"seeded {learners:,} learners in {time.perf_counter() - started:.1f} s")

        queued = queue_segment(engine)
        print(f"segment preview (count and first names of {learners:,}): {queued['preview_s']:.3f} s")
        print(f"segment confirm (select and queue {queued['queued']:,} outbox rows, "
              f"{queued['audited']:,} audit rows): {queued['confirm_s']:.3f} s (target: at most 2 s)")

        result = await send(engine, base_url, sends, timeout=sends / OVERALL_LIMIT * 3 + 30)
        share = result["rate"] / OVERALL_LIMIT
        print(f"sent {result['sent']:,} messages in {result['seconds']:.2f} s: {result['rate']:.2f} msg/s, "
              f"{share:.1%} of the configured {OVERALL_LIMIT:.0f} msg/s (target: at least 95%)")
        print(f"429 answers from the emulator: {result['rejected']} (target: none)")
        engine.session_factory.kw["bind"].dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=100_000, help="learners in the segment (default: 100,000)")
    parser.add_argument("--sends", type=int, default=900,
                        help="messages to send before measuring the rate (default: 900, about 30 s)")
    parser.add_argument("--allowance", type=int, default=1,
                        help="sends over 30 in one second that the emulator tolerates for loopback jitter "
                             "(default: 1)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"Python {platform.python_version()}, SQLite, {os.cpu_count()} CPUs")
    asyncio.run(run(args.learners, args.sends, args.allowance))


if __name__ == "__main__":
    main()
