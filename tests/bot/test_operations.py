"""Operations: the /metrics route, JSON log lines with the engine's fields, and /healthz with the database down."""

from __future__ import annotations

import json
import logging
import socket
import sys

import httpx
import pytest

from bot import db
from bot.engine import Engine
from bot.logs import JsonFormatter, make_formatter
from bot.metrics import web_routes as metrics_routes
from bot.web import create_app
from tests.conftest import make_event


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def client_for(engine: Engine) -> httpx.AsyncClient:
    app = create_app(engine, [metrics_routes])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://careerbot.test")


def sample(body: str, name: str, **labels: str) -> float | None:
    """Return the value of one sample of the text exposition, or None."""
    expected = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    prefix = f"{name}{{{expected}}} " if labels else f"{name} "
    for line in body.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return None


async def test_metrics_count_updates(engine):
    async with client_for(engine) as client:
        before = sample((await client.get("/metrics")).text, "careerbot_updates_handled_total",
                        platform="console", outcome="new") or 0.0
        event = make_event("ana", "hello")
        engine.handle(event)
        engine.handle(event)
        response = await client.get("/metrics")

    assert response.status_code == 200
    body = response.text
    assert sample(body, "careerbot_updates_handled_total", platform="console", outcome="new") == before + 1
    assert sample(body, "careerbot_updates_handled_total", platform="console", outcome="duplicate") >= 1
    assert sample(body, "careerbot_outbox_pending", platform="console") >= 1
    assert sample(body, "careerbot_database_up") == 1


def test_json_formatter_keeps_engine_fields(engine):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("bot.engine")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        engine.handle(make_event("ana", "hello", update_id="u-1"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)

    lines = [json.loads(JsonFormatter().format(record)) for record in records]
    handled = [line for line in lines if line.get("update_id") == "u-1" and "state_to" in line]
    assert len(handled) == 1
    assert handled[0]["learner_id"] is not None
    assert handled[0]["state_from"] == "consent"
    assert handled[0]["state_to"] == "consent"
    assert handled[0]["level"] == "INFO"
    assert handled[0]["message"].startswith("update console:u-1 handled")


def test_json_formatter_exception():
    try:
        raise ValueError("broken")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())

    line = json.loads(make_formatter("json").format(record))

    assert line["message"] == "failed here"
    assert "ValueError: broken" in line["exception"]


def test_text_formatter():
    record = logging.LogRecord("bot.x", logging.INFO, __file__, 1, "hello", None, None)

    assert make_formatter("text").format(record).endswith("INFO bot.x: hello")


@pytest.fixture
def unreachable_engine(engine):
    """An engine whose PostgreSQL URL points at a loopback port with no server listening."""
    database = db.make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{unused_port()}/careerbot", connect_timeout=1)
    broken = Engine(engine.flows, engine.settings, db.make_session_factory(database))
    yield broken
    database.dispose()


async def test_health_unreachable_database(unreachable_engine, engine):
    async with client_for(unreachable_engine) as client:
        down = await client.get("/healthz")
        metrics = await client.get("/metrics")
    async with client_for(engine) as client:
        up = await client.get("/healthz")

    assert down.status_code == 503
    assert down.json() == {"status": "unhealthy", "database": "unreachable"}
    assert sample(metrics.text, "careerbot_database_up") == 0
    assert up.status_code == 200
