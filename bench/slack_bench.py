"""Measure careerbot's Slack adapter end to end: signed HTTP events in, replies out at the Web API.

careerbot's ASGI app runs under uvicorn on 127.0.0.1 with the real bolt app,
engine and SQLite outbox, and the bot calls the Slack Web API emulator of the
test suite. Simulated learners act concurrently. Each sends a
signed ``message`` event to ``POST /slack/events`` (first "hello", then typed
answers to the first plan questions) and waits for the bot's next question
before it answers, as a person would.

Two figures per event:

- reply: from just before the HTTP request is sent to the emulator's receipt
  of the first ``chat.postMessage`` that carries the bot's reply;
- ack: the HTTP round trip, that is how long Slack would wait for the
  acknowledgement.

The bot also publishes each learner's Home tab after every event; those calls
are made but not timed.

Usage:
    python bench/slack_bench.py
    python bench/slack_bench.py --learners 100 --messages 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# The emulator lives with the tests, which are not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

from adapters.slack import SlackBot  # noqa: E402
from bot.app import build_engine  # noqa: E402
from bot.web import create_app  # noqa: E402
from tests.adapters import slack_payloads as payloads  # noqa: E402
from tests.adapters.slack_emulator import SlackEmulator  # noqa: E402
from tests.adapters.slack_harness import BOT_TOKEN, SIGNING_SECRET, serve_app, slack_settings  # noqa: E402

ANSWERS = ("hello", "I agree", "Ana", "ana@example.edu", "North Campus", "America/New_York",
           "I enjoy building software that helps people learn.", "software developer",
           "Honesty, growth and a team that shares what it knows.",
           "Teamwork from group projects, time management from a part-time job.")
"""Messages each learner types, in order; each gets one reply, except "hello" (the greeting and a question)."""
REPLY_TIMEOUT_SECONDS = 60.0


@dataclass
class Figures:
    reply_ms: list[float] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def learner(number: int, messages: int, emulator: SlackEmulator, http: aiohttp.ClientSession,
                  url: str, figures: Figures) -> None:
    """Send ``messages`` events as one learner, each after the bot's reply to the one before."""
    user = f"UL{number:09d}"
    channel = emulator.direct_channel_of(user)
    replies_expected = 0
    for index, text in enumerate(ANSWERS[:messages]):
        replies_expected += 2 if index == 0 else 1
        body = json.dumps(payloads.event_callback(payloads.direct_message(user, channel, text))).encode()
        headers = {"Content-Type": "application/json", **payloads.sign(body, SIGNING_SECRET)}
        posts = emulator.posts.setdefault(channel, [])
        replies_before = len(posts)

        started = time.monotonic()
        async with http.post(url, data=body, headers=headers) as response:
            await response.read()
        figures.ack_ms.append((time.monotonic() - started) * 1000)
        if response.status != 200:
            raise RuntimeError(f"event from {user} failed: HTTP {response.status}")

        await emulator.wait_for(lambda: len(posts) >= replies_expected, REPLY_TIMEOUT_SECONDS)
        first_reply = posts[replies_before]
        figures.reply_ms.append((first_reply.at - started) * 1000)


async def run(learners: int, messages: int, data_dir: Path) -> None:
    emulator = SlackEmulator(bot_token=BOT_TOKEN)
    await emulator.start()
    engine = build_engine(slack_settings(data_dir, emulator))
    bot = SlackBot(engine)
    await bot.start()
    server, serving, port = await serve_app(create_app(engine, [lambda _engine: bot.routes()]))
    figures = Figures()
    url = f"http://127.0.0.1:{port}/slack/events"

    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=learners)) as http:
            started = time.monotonic()
            await asyncio.gather(*(learner(number, messages, emulator, http, url, figures)
                                   for number in range(1, learners + 1)))
            elapsed = time.monotonic() - started
    finally:
        server.should_exit = True
        await serving
        await bot.aclose()
        engine.session_factory.kw["bind"].dispose()
        await emulator.stop()

    events = len(figures.reply_ms)
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, SQLite (WAL) in {data_dir}")
    print(f"learners: {learners}, events per learner: {messages}, events: {events}, wall time: {elapsed:.2f} s")
    print(f"events per second: {events / elapsed:.1f}")
    print("| figure | mean ms | p50 ms | p99 ms | max ms |")
    print("| --- | --- | --- | --- | --- |")
    for name, values in (("event to first reply (chat.postMessage)", figures.reply_ms),
                         ("acknowledgement (HTTP round trip)", figures.ack_ms)):
        print(f"| {name} | {statistics.fmean(values):.2f} | {percentile(values, 0.50):.2f} | "
              f"{percentile(values, 0.99):.2f} | {max(values):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=50, help="learners acting at the same time (default: 50)")
    parser.add_argument("--messages", type=int, default=8, choices=range(1, len(ANSWERS) + 1), metavar="N",
                        help=f"events each learner sends, 1 to {len(ANSWERS)} (default: 8)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="careerbot-slack-bench-") as directory:
        asyncio.run(run(args.learners, args.messages, Path(directory)))


if __name__ == "__main__":
    main()
