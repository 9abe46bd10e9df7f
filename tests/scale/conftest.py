"""Fixtures for the fault tests: a migrated PostgreSQL database, the Bot API stand-in, and process clusters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from bot import db, jobs
from tests.scale.bot_api import BotApi
from tests.scale.cluster import Cluster, Database, WebhookDriver


@pytest.fixture
def migrated_database(postgres_database: str) -> str:
    """A fresh PostgreSQL database with careerbot's migrations and procrastinate's tables."""
    database = db.make_engine(postgres_database)
    try:
        db.upgrade(database)
        jobs.apply_schema(database)
    finally:
        database.dispose()
    return postgres_database


@pytest.fixture
async def bot_api() -> AsyncIterator[BotApi]:
    api = BotApi()
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def make_cluster(tmp_path: Path, bot_api: BotApi) -> AsyncIterator[Callable[[str], Cluster]]:
    clusters: list[Cluster] = []

    def make(database_url: str) -> Cluster:
        cluster = Cluster(database_url, tmp_path / f"cluster{len(clusters)}", bot_api)
        cluster.directory.mkdir(parents=True)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        await cluster.stop_all()


@pytest.fixture
def database(migrated_database: str):
    reader = Database(migrated_database)
    yield reader
    reader.dispose()


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=2.0)) as client:
        yield client


@pytest.fixture
def driver_for(http_client: httpx.AsyncClient) -> Callable[[Cluster], WebhookDriver]:
    return lambda cluster: WebhookDriver(cluster, http_client)
