"""Two serve workers handle the same learners' messages, interleaved: each learner ends as if served serially."""

from __future__ import annotations

import asyncio

from tests.scale.cohort import outcome_of, plan_texts, serial_outcome, wait_until_delivered

LEARNERS = range(2001, 2009)
BURST = 3
"""Messages of one learner in flight at once, each to a different worker, to race for the learner's row lock."""


async def test_interleaved_learners_match_serial(migrated_database, make_cluster, database, driver_for, tmp_path):
    cluster = make_cluster(migrated_database)
    serves = [cluster.add_serve("serve-a"), cluster.add_serve("serve-b")]
    await asyncio.gather(*(cluster.start(process) for process in [*serves, cluster.add_worker("worker")]))
    driver = driver_for(cluster)
    updates = {user_id: [driver.message(user_id, text) for text in plan_texts(user_id)] for user_id in LEARNERS}
    commands = {user_id: [driver.message(user_id, text) for text in ("/help", "/progress", "/badges")]
                for user_id in LEARNERS}

    async def learner(user_id: int) -> None:
        for index, update in enumerate(updates[user_id]):
            await driver.deliver(update, prefer=serves[(index + user_id) % 2])
        # Commands that do not move the learner, sent at once to both workers.
        await asyncio.gather(*(driver.deliver(update, prefer=serves[index % 2])
                               for index, update in enumerate(commands[user_id][:BURST])))

    await asyncio.gather(*(learner(user_id) for user_id in LEARNERS))
    await wait_until_delivered(database)

    serial = serial_outcome([update for user_id in LEARNERS for update in updates[user_id] + commands[user_id]],
                            tmp_path / "serial")
    outcome = outcome_of(database)
    assert set(outcome) == {str(user_id) for user_id in LEARNERS}
    for user_id in LEARNERS:
        assert outcome[str(user_id)] == serial[str(user_id)], f"learner {user_id}"
    assert {state for state, *_ in outcome.values()} == {"home"}
