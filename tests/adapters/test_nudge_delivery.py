"""Nudges through the real adapters: coordinator commands on Telegram and Slack, pacing, 429s and failures.

Pacing is checked against the times at which the emulators recorded each
call. The checks are lower bounds on the spacing of sends, so a slow machine
cannot make them fail; the rate-limited emulator answers 429 to any send
that breaks Telegram's limits, so "no 429" shows that the pacer kept to them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from adapters.telegram import PTB_TIMEDELTA, TelegramBot
from adapters.telegram_pacing import Pacer
from bot.app import build_engine
from bot.engine import Engine
from bot.models import Learner, Nudge, OutboxMessage
from bot.reports import build_report
from tests.adapters.rate_limited_telegram import RateLimitedTelegram
from tests.adapters.slack_emulator import SlackEmulator
from tests.adapters.slack_harness import COORDINATOR, LEARNER as SLACK_LEARNER, SlackHarness, running_slack
from tests.adapters.slack_harness import emulator  # noqa: F401 - a fixture
from tests.adapters.telegram_emulator import ApiCall, User
from tests.adapters.telegram_harness import REVIEWER, REVIEWER_GROUP, Harness, telegram_settings_for, wait_until

COORDINATOR_USER = REVIEWER
"""The harness's settings make this reviewer a coordinator too."""
LEARNERS = [User(400000000 + number, f"Learner{number}") for number in range(1, 13)]
SEGMENT_TEXT = "Your Level 1 items are due on 20 March; type /submit to send one."
TOLERANCE = 0.03
"""Seconds by which loopback jitter may bring two sends closer than the pacer spaced them."""


def seed_learners(engine: Engine, users: list[User]) -> None:
    now = datetime.now(timezone.utc)
    rows = [
        {"platform": "telegram", "platform_user_id": str(user.id), "chat_id": str(user.id), "state": "home",
         "name": user.first_name, "timezone": "Europe/London", "answers": {}, "context": {}, "consented_at": now,
         "plan_completed_at": now, "reminders_paused": False, "created_at": now, "last_activity_at": now}
        for user in users
    ]
    with engine.session_factory() as session, session.begin():
        session.execute(insert(Learner), rows)


def sends_to_learners(telegram: RateLimitedTelegram) -> list[ApiCall]:
    learner_ids = {user.id for user in LEARNERS}
    return [call for call in telegram.calls_of("sendMessage")
            if call.params.get("chat_id") in learner_ids and call.error is None]


def nudge_rows(engine: Engine) -> list[tuple[Nudge, OutboxMessage]]:
    with engine.session_factory() as session:
        return list(session.execute(
            select(Nudge, OutboxMessage).join(OutboxMessage, OutboxMessage.id == Nudge.outbox_id).order_by(Nudge.id)
        ).all())


@pytest.fixture
async def limited(monkeypatch) -> AsyncIterator[RateLimitedTelegram]:
    monkeypatch.setenv(PTB_TIMEDELTA, "true")
    async with RateLimitedTelegram(per_second=25, per_chat_interval=0.2, retry_after=1) as emulator:
        emulator.group(REVIEWER_GROUP)
        for user in LEARNERS + [COORDINATOR_USER]:
            emulator.add_chat(user.private_chat())
        yield emulator


@pytest.fixture
def engine(limited: RateLimitedTelegram, tmp_path: Path) -> Engine:
    # Quiet hours are off: these tests run on the real clock, at any hour.
    settings = telegram_settings_for(limited, tmp_path / "data", quiet_hours="00:00-00:00")
    built = build_engine(settings)
    seed_learners(built, LEARNERS)
    yield built
    built.session_factory.kw["bind"].dispose()


@asynccontextmanager
async def running(telegram: RateLimitedTelegram, engine: Engine, pacer: Pacer) -> AsyncIterator[Harness]:
    bot = TelegramBot(engine, pacer=pacer)
    harness = Harness(telegram, bot)
    async with bot.polling(poll_timeout=timedelta(seconds=1)):
        yield harness


def previews_to_coordinator(telegram: RateLimitedTelegram):
    return [message for message in telegram.messages_to(COORDINATOR_USER.id)
            if message.text and message.text.startswith("This message goes to")]


async def send_segment(harness: Harness, segment: str = "all") -> None:
    """The coordinator previews a segment message in Telegram and presses its Send button."""
    await harness.say(COORDINATOR_USER, f"/nudge_segment {segment} {SEGMENT_TEXT}")
    [preview] = await harness.telegram.wait_for(lambda: previews_to_coordinator(harness.telegram), timeout=10)
    send_button = next(data for label, data in preview.buttons if label.startswith("Send to"))
    await harness.press(COORDINATOR_USER, preview, send_button)


async def test_segment_message_paced_within_limits(limited, engine):
    pacer = Pacer(overall_per_second=20, private_per_second=4, private_burst=1, group_per_minute=None)
    async with running(limited, engine, pacer) as harness:
        for number in range(3):
            await harness.say(COORDINATOR_USER, f"/nudge telegram:{LEARNERS[0].id} Reminder {number}: bring your CV.")
        await send_segment(harness)
        await limited.wait_for(lambda: len(sends_to_learners(limited)) == len(LEARNERS) + 3, timeout=30)

    assert limited.rejected == []
    for user in LEARNERS:
        texts = limited.texts_to(user.id)
        assert texts[-1].startswith("Message from ")
        assert texts[-1].endswith(SEGMENT_TEXT)
    first_chat = [call.at for call in limited.calls_of("sendMessage", LEARNERS[0].id)]
    assert len(first_chat) == 4
    for earlier, later in zip(first_chat, first_chat[1:]):
        assert later - earlier >= 1 / 4
    every_send = sorted(call.at for call in limited.calls_of("sendMessage") if call.error is None)
    for start in every_send:
        assert sum(1 for moment in every_send if start <= moment < start + 1.0) <= 20


async def test_segment_message_delivered_and_audited(limited, engine):
    pacer = Pacer(overall_per_second=50, private_per_second=10, private_burst=1, group_per_minute=None)
    async with running(limited, engine, pacer) as harness:
        await send_segment(harness)
        await limited.wait_for(lambda: len(sends_to_learners(limited)) == len(LEARNERS), timeout=30)
        await wait_until(lambda: all(row.status == "sent" for _, row in nudge_rows(engine)))

    rows = nudge_rows(engine)
    assert len(rows) == len(LEARNERS)
    assert {nudge.sent_by for nudge, _ in rows} == {f"telegram:{COORDINATOR_USER.id}"}
    assert {row.platform_message_id is not None for _, row in rows} == {True}


async def test_rate_limit_waited_out_never_dropped(limited, engine):
    limited.per_chat_interval = 0.5
    async with running(limited, engine, Pacer.unlimited()) as harness:
        for number in range(3):
            await harness.say(COORDINATOR_USER, f"/nudge telegram:{LEARNERS[0].id} Reminder {number}")
        await limited.wait_for(lambda: len(limited.texts_to(LEARNERS[0].id)) == 3, timeout=30)
        await wait_until(lambda: all(row.status == "sent" for _, row in nudge_rows(engine)))

    texts = limited.texts_to(LEARNERS[0].id)
    assert [text.rsplit("\n", 1)[-1] for text in texts] == ["Reminder 0", "Reminder 1", "Reminder 2"]
    assert limited.rejected != []
    calls = limited.calls_of("sendMessage", LEARNERS[0].id)
    for index, call in enumerate(calls[:-1]):
        if call.error is not None and call.error["error_code"] == 429:
            assert calls[index + 1].at - call.at >= limited.retry_after - TOLERANCE
    attempts = [row.attempts for _, row in nudge_rows(engine)]
    assert max(attempts) >= 2


async def test_failed_sends_marked_and_reported(limited, engine):
    blocked, missing = LEARNERS[1], LEARNERS[2]
    limited.blocked.add(blocked.id)
    limited.fail("sendMessage", 400, "Bad Request: chat not found", chat_id=missing.id)
    pacer = Pacer(overall_per_second=50, private_per_second=10, private_burst=1, group_per_minute=None)
    async with running(limited, engine, pacer) as harness:
        await send_segment(harness)
        await limited.wait_for(lambda: len(sends_to_learners(limited)) == len(LEARNERS) - 2, timeout=30)
        await wait_until(lambda: all(row.status != "pending" for _, row in nudge_rows(engine)))

        results = {nudge.learner_id: (row.status, row.last_error) for nudge, row in nudge_rows(engine)}
        with engine.session_factory() as session:
            learner_ids = dict(session.execute(select(Learner.platform_user_id, Learner.id)).all())
            report = build_report(session, engine.flows, datetime.now(timezone.utc))
        assert results[learner_ids[str(blocked.id)]] == ("failed", "403: Forbidden: bot was blocked by the user")
        assert results[learner_ids[str(missing.id)]] == ("failed", "400: Chat not found")
        assert report.nudges.failed == 2
        assert report.unreachable == 1

        await harness.say(COORDINATOR_USER, f"/nudge_segment all {SEGMENT_TEXT}")
        previews = await limited.wait_for(lambda: previews_to_coordinator(limited)[1:], timeout=10)
        preview = previews[0]

    assert f"goes to {len(LEARNERS) - 1} learner(s)" in preview.text
    assert "Skipped: 0 who paused reminders, 1 who blocked the bot." in preview.text


def test_pacer_counts_send_when_overall_rate_delays_it():
    clock = [100.0]
    pacer = Pacer(overall_per_second=10, private_per_second=1, private_burst=1, group_per_minute=None,
                  clock=lambda: clock[0])

    first = pacer.reserve("1")
    others = [pacer.reserve(str(chat)) for chat in range(2, 17)]
    second = pacer.reserve("1")
    clock[0] += 1.7
    third = pacer.reserve("1")

    assert first == 0.0
    assert others[-1] == pytest.approx(1.5)
    # The overall rate holds the second send to chat 1 until 101.6, so the third may go at 102.6.
    assert second == pytest.approx(1.6)
    assert third == pytest.approx(0.9)


async def test_pacer_window_limits_burst_after_stall():
    clock = [100.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    pacer = Pacer(overall_per_second=5, private_per_second=None, group_per_minute=None, clock=lambda: clock[0],
                  sleep=sleep)
    reserved = [pacer.reserve(str(chat)) for chat in range(8)]
    clock[0] = 102.0  # the event loop stalled past every reserved slot
    released = []
    for _ in range(8):
        await pacer._wait_for_window()
        pacer._recent.append(clock[0])
        released.append(clock[0])

    assert reserved == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4])
    assert released == [102.0] * 5 + [103.0] * 3
    for start in released:
        assert sum(1 for moment in released if start <= moment < start + 1.0) <= 5


async def test_pacer_counts_slow_send_until_it_returns():
    clock = [100.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    pacer = Pacer(overall_per_second=2, private_per_second=1, private_burst=1, group_per_minute=None,
                  clock=lambda: clock[0], sleep=sleep)
    async with pacer.slot("1"):
        clock[0] += 0.7  # the call takes 0.7 s to return
    started = clock[0]
    await pacer.wait("1")

    # The chat's next send waits a full second from when the first one returned, not from when it left.
    assert clock[0] - started == pytest.approx(1.0)


# --- Slack ---------------------------------------------------------------------------------------------


@pytest.fixture
async def paced_slack(tmp_path: Path, emulator: SlackEmulator) -> AsyncIterator[SlackHarness]:  # noqa: F811
    async with running_slack(tmp_path / "data", emulator, slack_rate_limits=True,
                             quiet_hours="00:00-00:00") as harness:
        yield harness


async def test_slack_posts_paced_per_channel(paced_slack: SlackHarness):
    slack = paced_slack
    await slack.say(SLACK_LEARNER, "hello")
    channel = slack.dm(SLACK_LEARNER)
    before = len(slack.emulator.calls_to("chat.postMessage", channel=channel))

    for number in range(5):
        await slack.command(COORDINATOR, f"nudge slack:{SLACK_LEARNER} Reminder {number}: bring your CV.")

    posts = [call.at for call in slack.emulator.calls_to("chat.postMessage", channel=channel)]
    assert len(posts) == before + 5
    burst = 3
    for first in range(len(posts)):
        for second in range(first + 1, len(posts)):
            assert posts[second] - posts[first] >= (second - first - (burst - 1)) * 1.0 - TOLERANCE
    assert slack.texts(channel)[-1].endswith("Reminder 4: bring your CV.")
