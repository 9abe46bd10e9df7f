"""PostgreSQL unreachable for a while: workers report unhealthy, refuse updates with 503, and recover.

A TCP proxy between the careerbot processes and PostgreSQL is cut and then
restored; the PostgreSQL server itself keeps running. Telegram sends a
refused update again, which the driver does until it is accepted.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import make_url

from tests.scale.cohort import (
    outcome_of,
    plan_texts,
    received_texts,
    sent_texts,
    serial_outcome,
    wait_until_delivered,
)
from tests.scale.tcp_proxy import TcpProxy

LEARNERS = range(4001, 4007)
BEFORE_OUTAGE = 8
OUTAGE_SECONDS = 3.0


async def test_database_outage_refuses_then_recovers(migrated_database, make_cluster, bot_api, database, driver_for,
                                                     http_client, tmp_path):
    url = make_url(migrated_database)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    cluster = make_cluster(url.set(port=proxy.port).render_as_string(hide_password=False))
    try:
        serves = [cluster.add_serve("serve-a"), cluster.add_serve("serve-b")]
        await asyncio.gather(*(cluster.start(process) for process in [*serves, cluster.add_worker("worker")]))
        driver = driver_for(cluster)
        updates = {user_id: [driver.message(user_id, text) for text in plan_texts(user_id)] for user_id in LEARNERS}

        for index in range(BEFORE_OUTAGE):
            await asyncio.gather(*(driver.deliver(updates[user_id][index]) for user_id in LEARNERS))
        await wait_until_delivered(database)

        await proxy.cut()
        for serve in serves:
            health = await http_client.get(f"http://127.0.0.1:{serve.port}/healthz")
            assert health.status_code == 503
        refused = [await driver.post(serves[user_id % 2], updates[user_id][BEFORE_OUTAGE]) for user_id in LEARNERS]
        assert set(refused) == {503}

        async def rest_of(user_id: int) -> None:
            for update in updates[user_id][BEFORE_OUTAGE:]:
                await driver.deliver(update)

        remaining = asyncio.gather(*(rest_of(user_id) for user_id in LEARNERS))
        await asyncio.sleep(OUTAGE_SECONDS)
        assert not remaining.done()
        await proxy.restore()
        await remaining

        for serve in serves:
            health = await http_client.get(f"http://127.0.0.1:{serve.port}/healthz")
            assert health.status_code == 200
        await wait_until_delivered(database)
    finally:
        # The workers unregister from the job queue as they stop, so they stop before the proxy does.
        await cluster.stop_all()
        await proxy.stop()

    serial = serial_outcome([update for user_id in LEARNERS for update in updates[user_id]], tmp_path / "serial")
    assert outcome_of(database) == serial
    assert received_texts(bot_api) == sent_texts(database)
    assert driver.rejected > len(LEARNERS)
