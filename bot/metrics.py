"""Prometheus counters for handled updates and outbox delivery, and the ``/metrics`` route.

The counters are incremented where the work happens (``bot.engine`` and
``bot.outbox``). Queue depth is not a counter: :class:`QueueDepthCollector`
reads it from the database at each scrape, so every worker reports the same
figures whichever of them Prometheus reaches.

Under ``careerbot serve --workers N`` each uvicorn worker is its own process.
When ``PROMETHEUS_MULTIPROC_DIR`` names a writable folder, prometheus_client
writes every process's counters there and the ``/metrics`` route adds them up
(``prometheus_client.multiprocess``). The variable must be set before the
processes start. ``careerbot serve`` sets it to a fresh folder when it starts
more than one worker and the variable is not set.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.models import OutboxMessage

logger = logging.getLogger(__name__)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PATH = "/metrics"

UPDATES_HANDLED = Counter(
    "careerbot_updates_handled", "Inbound updates handled, by platform and outcome (new or duplicate)",
    ["platform", "outcome"],
)
UPDATE_RETRIES = Counter(
    "careerbot_update_retries", "Attempts to handle an update again after a lost race or a database error",
    ["platform"],
)
UPDATE_FAILURES = Counter(
    "careerbot_update_failures", "Updates whose handling failed after every attempt (the platform may redeliver)",
    ["platform"],
)
MESSAGES_SENT = Counter("careerbot_messages_sent", "Outbox messages delivered to the platform", ["platform"])
MESSAGE_RETRIES = Counter("careerbot_message_retries", "Outbox messages put back to be sent again later",
                          ["platform"])
MESSAGE_FAILURES = Counter("careerbot_message_failures", "Outbox messages given up on", ["platform"])


class QueueDepthCollector(Collector):
    """Reads the pending outbox rows and the procrastinate jobs waiting or running, at each scrape.

    ``careerbot_database_up`` is 0 when the database could not be read; the
    other gauges are then left out of the scrape.
    """

    def __init__(self, session_factory) -> None:
        self.session_factory = session_factory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("careerbot_database_up", "1 when the last scrape could read the database")
        try:
            outbox_rows, job_rows = self._read()
        except SQLAlchemyError as exc:
            logger.warning("metrics: queue depth not read, the database failed: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        outbox = GaugeMetricFamily("careerbot_outbox_pending", "Outbox messages waiting to be sent, by platform",
                                   labels=["platform"])
        for platform, count in outbox_rows:
            outbox.add_metric([platform], count)
        yield outbox

        jobs = GaugeMetricFamily("careerbot_jobs", "procrastinate jobs by status (todo is the job queue depth)",
                                 labels=["status"])
        for status, count in job_rows:
            jobs.add_metric([status], count)
        yield jobs

    def _read(self) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        with self.session_factory() as session:
            outbox_rows = session.execute(
                select(OutboxMessage.platform, func.count())
                .where(OutboxMessage.status == "pending")
                .group_by(OutboxMessage.platform)
            ).all()
            job_rows: list[tuple[str, int]] = []
            if session.bind.dialect.name == "postgresql" and session.scalar(
                    text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")):
                job_rows = session.execute(text(
                    "SELECT status::text, count(*) FROM procrastinate_jobs "
                    "WHERE status IN ('todo', 'doing') GROUP BY status"
                )).all()
        return [tuple(row) for row in outbox_rows], [tuple(row) for row in job_rows]


def render(session_factory) -> bytes:
    """Return the text exposition of every counter (of all processes in multiprocess mode) and the queue depth."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROCESS_ENV):
        MultiProcessCollector(registry)
    else:
        registry = _SingleProcessRegistry(registry)
    registry.register(QueueDepthCollector(session_factory))
    return generate_latest(registry)


class _SingleProcessRegistry(CollectorRegistry):
    """The process's default registry plus the collectors registered here, for one scrape."""

    def __init__(self, extra: CollectorRegistry) -> None:
        super().__init__()
        self._extra = extra

    def register(self, collector: Collector) -> None:
        self._extra.register(collector)

    def collect(self):
        yield from REGISTRY.collect()
        yield from self._extra.collect()


def web_routes(engine) -> list[Route]:
    """Build ``GET /metrics`` for Prometheus (a ``bot.web.RouteProvider``)."""

    async def metrics(request: Request) -> Response:
        body = await asyncio.to_thread(render, engine.session_factory)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return [Route(METRICS_PATH, metrics, methods=["GET"])]
