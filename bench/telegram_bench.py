"""Measure careerbot's Telegram adapter against a minimal python-telegram-bot bot, in one run.

Both bots run in this process with long polling against the loopback Bot API
emulator of the test suite, one after the other, each with a fresh emulator:

- careerbot: the real adapter, engine and SQLite outbox. Each simulated user
  opens the chat with /start and answers the first plan questions (consent by
  button, name, email, campus and time zone by button, then typed plan answers).
- baseline: a bot written directly with PTB's ConversationHandler that asks
  three questions and thanks the user, with state in memory; each user runs it
  again after it ends, so that both bots handle the same number of updates.

Users act concurrently; each waits for the bot's next question before it
answers. The latency of an update runs from putting it in the emulator's
getUpdates queue to the arrival of that question at the emulator. careerbot's
send pacing is off, as the baseline has none, so the ratio shows the work
careerbot adds: the database transaction, the state machine, the outbox, and
editing the pressed keyboard.

Usage:
    python bench/telegram_bench.py
    python bench/telegram_bench.py --users 100 --updates 9
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

# The emulator lives with the tests, which are not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telegram import Update  # noqa: E402
from telegram.ext import (  # noqa: E402
    Application,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    filters,
)

from adapters.telegram import PTB_TIMEDELTA, TelegramBot  # noqa: E402
from adapters.telegram_pacing import Pacer  # noqa: E402
from bot.app import build_engine  # noqa: E402
from bot.config import load_settings  # noqa: E402
from tests.adapters.telegram_emulator import TOKEN, SentMessage, TelegramEmulator, User  # noqa: E402

POLL_TIMEOUT = timedelta(seconds=1)
FIRST_USER_ID = 100_000_000

Step = Callable[[TelegramEmulator, User], dict]
"""Builds the update a user sends at one step of a conversation."""


# --- the baseline bot -------------------------------------------------------------------------

ASK_NAME, ASK_GOAL, ASK_SKILL = range(3)
BASELINE_QUESTIONS = ("What is your name?", "What career goal are you working toward?",
                      "Which skill do you want to build first?")


async def baseline_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """Clear the answers and ask for the name."""
    context.user_data.clear()
    await update.message.reply_text(BASELINE_QUESTIONS[0])
    return ASK_NAME


async def baseline_name(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """Store the name and ask for the goal."""
    context.user_data["name"] = update.message.text
    await update.message.reply_text(BASELINE_QUESTIONS[1])
    return ASK_GOAL


async def baseline_goal(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """Store the goal and ask for the skill."""
    context.user_data["goal"] = update.message.text
    await update.message.reply_text(BASELINE_QUESTIONS[2])
    return ASK_SKILL


async def baseline_skill(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    """Store the skill and end the conversation with a thank-you."""
    context.user_data["skill"] = update.message.text
    await update.message.reply_text(f"Thank you, {context.user_data['name']}. Type /start to begin again.")
    return ConversationHandler.END


def build_baseline(telegram: TelegramEmulator) -> Application:
    application = (Application.builder().token(TOKEN).base_url(telegram.base_url)
                   .base_file_url(telegram.base_file_url).build())
    text = filters.TEXT & ~filters.COMMAND
    application.add_handler(ConversationHandler(
        entry_points=[CommandHandler("start", baseline_start)],
        states={ASK_NAME: [MessageHandler(text, baseline_name)], ASK_GOAL: [MessageHandler(text, baseline_goal)],
                ASK_SKILL: [MessageHandler(text, baseline_skill)]},
        fallbacks=[CommandHandler("start", baseline_start)],
    ))
    return application


def baseline_steps(count: int) -> list[tuple[Step, str]]:
    """Return the baseline conversation repeated to ``count`` updates, as (update, start of the expected reply)."""
    cycle: list[tuple[Step, str]] = [
        (lambda telegram, user: telegram.text_update(user, "/start"), BASELINE_QUESTIONS[0]),
        (lambda telegram, user: telegram.text_update(user, user.first_name), BASELINE_QUESTIONS[1]),
        (lambda telegram, user: telegram.text_update(user, "data analyst"), BASELINE_QUESTIONS[2]),
        (lambda telegram, user: telegram.text_update(user, "public speaking"), "Thank you"),
    ]
    return [cycle[index % len(cycle)] for index in range(count)]


# --- careerbot ----------------------------------------------------------------------------------


def press(data: str) -> Step:
    return lambda telegram, user: telegram.press(user, telegram.last_message(user.id), data)


def careerbot_steps(count: int) -> list[tuple[Step, str]]:
    """Return the first plan questions, as (update, start of the question the bot asks next)."""
    answers: list[Step] = [
        lambda telegram, user: telegram.text_update(user, "/start"),
        press("consent:agree"),
        lambda telegram, user: telegram.text_update(user, user.first_name),
        lambda telegram, user: telegram.text_update(user, f"{user.username}@example.edu"),
        lambda telegram, user: telegram.press(user, telegram.last_message(user.id),
                                              telegram.last_message(user.id).buttons[0][1]),
        press("timezone:Europe/London"),
        lambda telegram, user: telegram.text_update(user, "Data work that helps people decide well."),
        lambda telegram, user: telegram.text_update(user, "data analyst"),
        lambda telegram, user: telegram.text_update(user, "honesty, curiosity and fairness"),
    ]
    if count > len(answers):
        raise SystemExit(f"--updates {count} is too many: careerbot's part of the run has {len(answers)} "
                         f"steps, so pass --updates {len(answers)} or fewer")
    return [(answers[index], f"Question {index + 1} of ") for index in range(count)]


# --- driving users --------------------------------------------------------------------------------


def reply_arrival(telegram: TelegramEmulator, user: User, seen: int, expected: str) -> float | None:
    """When the first message after ``seen`` that starts with ``expected`` reached the emulator, if it has."""
    messages: list[SentMessage] = telegram.messages_to(user.id)[seen:]
    if not any((message.text or "").startswith(expected) for message in messages):
        return None
    calls = [call for call in telegram.calls_of("sendMessage", user.id)
             if call.error is None and str(call.params.get("text", "")).startswith(expected)]
    return calls[-1].at


async def run_user(telegram: TelegramEmulator, user: User, steps: list[tuple[Step, str]],
                   latencies: list[float]) -> None:
    for make_update, expected in steps:
        seen = len(telegram.messages_to(user.id))
        update = make_update(telegram, user)
        injected = time.perf_counter()
        telegram.inject(update)
        arrived = await telegram.wait_for(lambda: reply_arrival(telegram, user, seen, expected), timeout=60)
        latencies.append(arrived - injected)


async def drive(telegram: TelegramEmulator, steps: list[tuple[Step, str]], users: int) -> tuple[float, list[float]]:
    people = [User(FIRST_USER_ID + number, f"User{number}", username=f"user{number}") for number in range(users)]
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(run_user(telegram, person, steps, latencies) for person in people))
    return time.perf_counter() - started, latencies


async def measure(name: str, run: Callable[[TelegramEmulator], Awaitable[tuple[float, list[float]]]]) -> dict:
    async with TelegramEmulator() as telegram:
        elapsed, latencies = await run(telegram)
    ordered = sorted(latencies)
    return {
        "name": name,
        "updates": len(latencies),
        "per_second": len(latencies) / elapsed,
        "p50": statistics.median(ordered) * 1000,
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


async def run_careerbot(telegram: TelegramEmulator, users: int, updates: int) -> tuple[float, list[float]]:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = load_settings(environ={}, data_dir=Path(data_dir), telegram_token=TOKEN,
                                 telegram_base_url=telegram.base_url,
                                 telegram_base_file_url=telegram.base_file_url,
                                 reviewer_chats={"telegram": "-500000001"})
        engine = build_engine(settings)
        bot = TelegramBot(engine, pacer=Pacer.unlimited())
        async with bot.polling(poll_timeout=POLL_TIMEOUT):
            result = await drive(telegram, careerbot_steps(updates), users)
        engine.session_factory.kw["bind"].dispose()
    return result


async def run_baseline(telegram: TelegramEmulator, users: int, updates: int) -> tuple[float, list[float]]:
    application = build_baseline(telegram)
    async with application:
        await application.start()
        await application.updater.start_polling(timeout=POLL_TIMEOUT)
        try:
            return await drive(telegram, baseline_steps(updates), users)
        finally:
            await application.updater.stop()
            await application.stop()


async def main_async(users: int, updates: int) -> None:
    careerbot = await measure("careerbot adapter", lambda telegram: run_careerbot(telegram, users, updates))
    baseline = await measure("PTB ConversationHandler", lambda telegram: run_baseline(telegram, users, updates))

    print(f"python-telegram-bot long polling against the loopback emulator; {users} concurrent users, "
          f"{updates} updates each; Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}")
    print(f"{'bot':<26}{'updates':>8}{'updates/s':>11}{'p50 ms':>9}{'p99 ms':>9}")
    for row in (careerbot, baseline):
        print(f"{row['name']:<26}{row['updates']:>8}{row['per_second']:>11.1f}{row['p50']:>9.2f}{row['p99']:>9.2f}")
    print(f"ratio careerbot/baseline: throughput {careerbot['per_second'] / baseline['per_second']:.2f}, "
          f"p50 {careerbot['p50'] / baseline['p50']:.2f}, p99 {careerbot['p99'] / baseline['p99']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50, help="users acting at the same time (default: 50)")
    parser.add_argument("--updates", type=int, default=9, help="updates each user sends, at most 9 (default: 9)")
    args = parser.parse_args()
    os.environ.setdefault(PTB_TIMEDELTA, "true")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main_async(args.users, args.updates))


if __name__ == "__main__":
    main()
