"""Serve and job workers killed with SIGKILL at random points of a cohort run, and started again.

Nothing may be lost or done twice: every learner keeps one submission and one
badge, every reply is sent, and a reply is sent twice only by a worker killed
between Telegram accepting it and the outbox row being marked sent (the
window that at-least-once delivery leaves, since the Bot API has no
idempotency key).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.scale.cohort import (
    approve,
    awards_and_submissions,
    received_texts,
    run_journey,
    sent_texts,
    wait_until_delivered,
)

LEARNERS = range(3001, 3011)
MIN_KILLS = 8
MAX_KILLS = 16


async def test_killed_workers_lose_nothing(migrated_database, make_cluster, bot_api, database, driver_for):
    cluster = make_cluster(migrated_database)
    serves = [cluster.add_serve("serve-a"), cluster.add_serve("serve-b")]
    workers = [cluster.add_worker("worker-a"), cluster.add_worker("worker-b")]
    await asyncio.gather(*(cluster.start(process) for process in [*serves, *workers]))
    driver = driver_for(cluster)
    kills: Counter = Counter()
    done = asyncio.Event()

    async def chaos() -> None:
        """Kill serve and job workers in turn until the cohort is done and MIN_KILLS were made."""
        victims = [serves[0], workers[0], serves[1], workers[1]]
        while sum(kills.values()) < MAX_KILLS:
            if done.is_set() and sum(kills.values()) >= MIN_KILLS:
                return
            await asyncio.sleep(driver.random.uniform(0.2, 1.2))
            victim = victims[sum(kills.values()) % len(victims)]
            cluster.kill(victim)
            kills[victim.kind] += 1
            await cluster.start(victim)

    async def learner(user_id: int) -> None:
        submission_id = await run_journey(driver, database, user_id)
        await approve(driver, submission_id)

    chaos_task = asyncio.create_task(chaos())
    try:
        await asyncio.gather(*(learner(user_id) for user_id in LEARNERS))
    finally:
        done.set()
        await chaos_task
    await wait_until_delivered(database)

    assert kills["serve"] >= MIN_KILLS // 2 and kills["worker"] >= MIN_KILLS // 2
    print(f"kills: {dict(kills)}, deliveries: {driver.attempts}, rejected: {driver.rejected}")
    awards, submissions = awards_and_submissions(database)
    assert len(submissions) == len(LEARNERS)
    assert set(submissions.values()) == {1}
    assert len(awards) == len(LEARNERS)
    assert set(awards.values()) == {1}

    sent = sent_texts(database)
    received = received_texts(bot_api)
    for chat_id, texts in sent.items():
        for text, count in texts.items():
            copies = received.get(chat_id, Counter())[text]
            assert copies >= count, f"reply to {chat_id} lost: {text[:60]!r}"
            if copies > count:
                from_killed = [call for call in bot_api.messages(chat_id)
                               if call.text == text and call.tag in cluster.killed_tags]
                assert len(from_killed) >= copies - count, f"reply to {chat_id} sent twice by a live worker"
    assert set(received) == set(sent)
