"""Every update delivered twice (and some a third time, late) across two serve workers changes nothing more."""

from __future__ import annotations

import asyncio

from tests.scale.cohort import (
    outcome_of,
    plan_texts,
    received_texts,
    sent_texts,
    serial_outcome,
    wait_until_delivered,
)

LEARNERS = range(1001, 1007)


async def test_redelivered_updates_change_nothing(migrated_database, make_cluster, bot_api, database, driver_for,
                                                  tmp_path):
    cluster = make_cluster(migrated_database)
    serves = [cluster.add_serve("serve-a"), cluster.add_serve("serve-b")]
    worker = cluster.add_worker("worker")
    await asyncio.gather(*(cluster.start(process) for process in [*serves, worker]))
    driver = driver_for(cluster)
    updates = {user_id: [driver.message(user_id, text) for text in plan_texts(user_id)] for user_id in LEARNERS}

    async def learner(user_id: int) -> None:
        late = []
        for update in updates[user_id]:
            first, second = driver.random.sample(serves, 2)
            await asyncio.gather(driver.deliver(update, prefer=first), driver.deliver(update, prefer=second))
            if driver.random.random() < 0.3:
                late.append(update)
        driver.random.shuffle(late)
        for update in late:
            await driver.deliver(update)

    await asyncio.gather(*(learner(user_id) for user_id in LEARNERS))
    await wait_until_delivered(database)

    serial = serial_outcome([update for user_id in LEARNERS for update in updates[user_id]], tmp_path / "serial")
    assert outcome_of(database) == serial
    sent = sent_texts(database)
    assert sum(sum(texts.values()) for texts in sent.values()) >= sum(len(texts) for texts in updates.values())
    assert received_texts(bot_api) == sent
    assert {call.tag for call in bot_api.messages()} == {worker.tag}
    assert driver.attempts > 2 * sum(len(user_updates) for user_updates in updates.values())
