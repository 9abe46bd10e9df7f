"""Background work as procrastinate jobs on PostgreSQL (``job_queue: procrastinate``).

With several stateless workers, background work runs as jobs of
procrastinate, a job queue kept in PostgreSQL tables, in ``careerbot worker``
processes (``bot.job_worker``). The tasks:

``careerbot.deliver_outbox(platform)``
    Sends every due outbox row of one platform through that platform's
    adapter (``DRAINS``). Serve workers queue it after each update that wrote
    replies (:class:`DeliveryQueue`), with a queueing lock so that at most one
    waits per platform. While it runs it holds a PostgreSQL advisory lock for
    its platform, so one worker at a time sends a platform's messages: the
    adapter's rate limiter paces all of them, a chat's rows go out in order and
    no row is sent by two workers at once. The lock belongs to a database
    session, so it is released the moment a killed worker's connection drops.
``careerbot.sweep_outbox`` (every ``OUTBOX_SWEEP_SECONDS``)
    Queues ``deliver_outbox`` for each platform with due rows: rows whose
    retry time has come, reminders queued by ``check_nudges``, and rows of a
    serve worker that died between its commit and queueing the job.
``careerbot.check_nudges`` (every ``nudge_check_minutes``)
    Checks the reminder rules (``bot.nudge_scheduler.run_once``).
``careerbot.retry_stalled_jobs`` (every ``STALLED_CHECK_SECONDS``)
    Puts back in the queue the jobs of a worker that stopped sending
    heartbeats (killed or frozen), so they run again elsewhere.
``careerbot.prune_processed_updates`` (daily, ``PRUNE_CRON``)
    Deletes the records of handled updates older than
    ``processed_update_retention_days`` (``bot.housekeeping``).
``careerbot.prune_orphan_files`` (daily, ``PRUNE_CRON``)
    Deletes the evidence files that no submission names (``bot.housekeeping``).

procrastinate's periodic deferrer inserts each periodic run with a unique
(task, timestamp) key, so each run is done by exactly one worker however many
workers are up. A failed job is retried with exponential backoff
(``RETRY``). Outbox rows keep their own retry times (``bot.outbox``).

With ``job_queue: in-process`` none of this runs: each ``careerbot run`` or
``serve`` process delivers its own outbox through the adapter's delivery loop
(the same send functions that ``deliver_outbox`` calls) and checks the
reminder rules in a thread (``bot.nudge_scheduler.NudgeRunner``, which calls
the same ``run_once``), and prunes processed updates and orphan files in
another (``bot.housekeeping.PruneRunner``).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import procrastinate
import psycopg
from procrastinate import exceptions as job_errors
from procrastinate.jobs import Status
from procrastinate.schema import SchemaManager
from sqlalchemy import Engine as DatabaseEngine
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot import housekeeping
from bot.config import Settings
from bot.engine import Engine, HandledEvent
from bot.events import InboundEvent

logger = logging.getLogger(__name__)

DELIVER_OUTBOX = "careerbot.deliver_outbox"
SWEEP_OUTBOX = "careerbot.sweep_outbox"
CHECK_NUDGES = "careerbot.check_nudges"
RETRY_STALLED_JOBS = "careerbot.retry_stalled_jobs"
PRUNE_PROCESSED_UPDATES = "careerbot.prune_processed_updates"
PRUNE_ORPHAN_FILES = "careerbot.prune_orphan_files"

OUTBOX_SWEEP_SECONDS = 10
STALLED_CHECK_SECONDS = 15
PRUNE_CRON = "17 3 * * *"
"""Once a day at 03:17 UTC (procrastinate reads cron expressions in UTC). A run that no worker starts
within 10 minutes of its time is skipped, and the next day's run deletes those rows too."""
HEARTBEAT_SECONDS = 5.0
"""How often a worker records that it is alive."""
STALLED_AFTER_SECONDS = 20.0
"""A worker without a heartbeat for this long is taken for dead and its running jobs are queued again."""
DELIVERY_LOCK_WAIT = "120s"
"""Maximum time a delivery job waits for the running job of its platform before it fails and is retried."""
ADVISORY_LOCK_CLASS = 0x6362
"""First key of careerbot's PostgreSQL advisory locks; the second is a hash of the platform."""

RETRY = procrastinate.RetryStrategy(max_attempts=8, exponential_wait=2)
"""2, 4, 8 ... 256 seconds between attempts: about 8.5 minutes in all."""

DRAINS = {
    "telegram": "adapters.outbox_drains:TelegramDrain",
    "slack": "adapters.outbox_drains:SlackDrain",
}
"""Per platform, the class that sends its due outbox rows (imported when first needed)."""


class Drain(Protocol):
    """Sends one platform's due outbox rows; one instance per worker process."""

    async def drain(self) -> int:
        """Send every due row and return how many were sent."""

    async def aclose(self) -> None:
        """Close the platform client."""


def delivery_platforms(settings: Settings) -> list[str]:
    """Return the platforms whose outbox the workers deliver: those with a configured token."""
    platforms = []
    if settings.telegram_token:
        platforms.append("telegram")
    if settings.slack_bot_token:
        platforms.append("slack")
    return platforms


def conninfo(database_url: str) -> str:
    """Turn a SQLAlchemy PostgreSQL URL into a libpq connection string for psycopg."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def nudge_cron(minutes: int) -> str:
    """Return a cron expression that fires every ``minutes`` minutes.

    Cron counts minutes within each hour, so a value that does not divide 60
    (or, from 60 on, whole hours that do not divide 24) is rounded down to one
    that does, and the worker logs the interval it uses.
    """
    if minutes < 60:
        step = max(divisor for divisor in range(1, minutes + 1) if 60 % divisor == 0)
        return "* * * * *" if step == 1 else f"*/{step} * * * *"
    hours = minutes // 60
    step = max(divisor for divisor in range(1, min(hours, 24) + 1) if 24 % divisor == 0)
    if step == 24:
        return "0 0 * * *"
    return "0 * * * *" if step == 1 else f"0 */{step} * * *"


def delivery_lock_key(platform: str) -> str:
    return f"careerbot-deliver-{platform}"


def build_job_app(settings: Settings) -> procrastinate.App:
    """Create the procrastinate app for ``settings`` with careerbot's tasks and periodic runs."""
    connector = procrastinate.PsycopgConnector(
        conninfo=conninfo(settings.resolved_database_url),
        kwargs={"connect_timeout": settings.database_connect_timeout},
        min_size=1,
        max_size=4,
    )
    app = procrastinate.App(connector=connector)
    app.task(name=DELIVER_OUTBOX, pass_context=True, retry=RETRY)(deliver_outbox)
    sweep = app.task(name=SWEEP_OUTBOX, pass_context=True, queueing_lock=SWEEP_OUTBOX)(sweep_outbox)
    app.periodic(cron=f"* * * * * */{OUTBOX_SWEEP_SECONDS}")(sweep)
    stalled = app.task(name=RETRY_STALLED_JOBS, pass_context=True, queueing_lock=RETRY_STALLED_JOBS)(
        retry_stalled_jobs)
    app.periodic(cron=f"* * * * * */{STALLED_CHECK_SECONDS}")(stalled)
    prune = app.task(name=PRUNE_PROCESSED_UPDATES, pass_context=True, retry=RETRY,
                     queueing_lock=PRUNE_PROCESSED_UPDATES)(prune_processed_updates)
    app.periodic(cron=PRUNE_CRON)(prune)
    orphans = app.task(name=PRUNE_ORPHAN_FILES, pass_context=True, retry=RETRY,
                       queueing_lock=PRUNE_ORPHAN_FILES)(prune_orphan_files)
    app.periodic(cron=PRUNE_CRON)(orphans)
    if settings.nudge_check_minutes > 0:
        nudges = app.task(name=CHECK_NUDGES, pass_context=True, retry=RETRY, queueing_lock=CHECK_NUDGES)(
            check_nudges)
        app.periodic(cron=nudge_cron(settings.nudge_check_minutes))(nudges)
    return app


def apply_schema(database: DatabaseEngine) -> bool:
    """Create procrastinate's tables and functions unless they exist; return True when created.

    An advisory lock makes concurrent starts wait for the first one.

    NOTE: only a missing schema is created. After upgrading the procrastinate
    package, apply its migrations for the new version (``procrastinate schema
    --help`` and the migrations folder in its package) before starting workers.
    """
    with database.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key_class, 0)"), {"key_class": ADVISORY_LOCK_CLASS})
        if connection.scalar(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")):
            return False
        # psycopg sends a query without parameters as it is, so the schema's "%" signs stay intact.
        with connection.connection.driver_connection.cursor() as cursor:
            cursor.execute(SchemaManager.get_schema())
    logger.info("database: procrastinate's job tables created")
    return True


# --- queuing deliveries -------------------------------------------------------------


class DeliveryQueue:
    """Queues ``deliver_outbox`` jobs; a serve worker calls it after each handled update (an Engine hook).

    A job is queued only when none waits for the platform: one that waits
    claims rows only when it starts, so it also sends the rows just written.
    """

    def __init__(self, app: procrastinate.App, settings: Settings) -> None:
        self.app = app
        self.platforms = frozenset(delivery_platforms(settings))
        self._open_lock = threading.Lock()
        self._opened = False

    def __call__(self, event: InboundEvent, handled: HandledEvent) -> None:
        for platform in sorted({message.platform for message in handled.messages}):
            self.request(platform)

    def request(self, platform: str) -> None:
        """Queue a delivery for ``platform`` unless one is already waiting (synchronous)."""
        if platform not in self.platforms:
            return
        self._open()
        if _delivery_waiting(self.app.connector.get_sync_connector().execute_query_one, platform):
            return
        try:
            self.app.configure_task(DELIVER_OUTBOX, queueing_lock=delivery_lock_key(platform)).defer(platform=platform)
        except job_errors.AlreadyEnqueued:
            pass

    def _open(self) -> None:
        with self._open_lock:
            if not self._opened:
                self.app.open()
                self._opened = True

    def close(self) -> None:
        with self._open_lock:
            if self._opened:
                self.app.close()
                self._opened = False


_WAITING_QUERY = ("SELECT EXISTS (SELECT 1 FROM procrastinate_jobs "
                  "WHERE queueing_lock = %(lock)s AND status = 'todo') AS waiting")


def _delivery_waiting(execute_query_one, platform: str) -> bool:
    return bool(execute_query_one(query=_WAITING_QUERY, lock=delivery_lock_key(platform))["waiting"])


async def queue_delivery(app: procrastinate.App, platform: str) -> bool:
    """Queue ``deliver_outbox`` for ``platform`` unless one waits; return True when a job was queued."""
    row = await app.connector.execute_query_one_async(query=_WAITING_QUERY, lock=delivery_lock_key(platform))
    if row["waiting"]:
        return False
    try:
        await app.configure_task(DELIVER_OUTBOX, queueing_lock=delivery_lock_key(platform)).defer_async(
            platform=platform)
    except job_errors.AlreadyEnqueued:
        return False
    return True


# --- the worker side ------------------------------------------------------------------


@dataclass
class WorkerRuntime:
    """State shared by the tasks of one ``careerbot worker`` process: the engine and one drain per platform."""

    engine: Engine
    drains: dict[str, Drain] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return self.engine.settings

    def drain_for(self, platform: str) -> Drain:
        drain = self.drains.get(platform)
        if drain is None:
            module_name, _, class_name = DRAINS[platform].partition(":")
            drain_class = getattr(importlib.import_module(module_name), class_name)
            drain = self.drains[platform] = drain_class(self.engine)
        return drain

    async def aclose(self) -> None:
        for platform, drain in list(self.drains.items()):
            try:
                await drain.aclose()
            except Exception:
                logger.exception("closing the %s outbox drain failed", platform)
        self.drains.clear()


def _runtime(context: procrastinate.JobContext) -> WorkerRuntime:
    return context.additional_context["runtime"]


async def deliver_outbox(context: procrastinate.JobContext, platform: str) -> int:
    """Send the due outbox rows of ``platform`` while holding the platform's advisory lock."""
    runtime = _runtime(context)
    if platform not in DRAINS or platform not in delivery_platforms(runtime.settings):
        logger.warning("delivery job for %r ignored: no adapter is configured for it", platform)
        return 0

    drain = runtime.drain_for(platform)
    connection = await psycopg.AsyncConnection.connect(
        conninfo(runtime.settings.resolved_database_url), autocommit=True,
        connect_timeout=runtime.settings.database_connect_timeout,
    )
    try:
        await connection.execute(f"SET lock_timeout = '{DELIVERY_LOCK_WAIT}'")
        await connection.execute("SELECT pg_advisory_lock(%s, %s)", (ADVISORY_LOCK_CLASS, _platform_key(platform)))
        sent = await drain.drain()
    finally:
        # Closing the session releases the advisory lock.
        await connection.close()
    if sent:
        logger.info("delivery job for %s sent %d message(s)", platform, sent,
                    extra={"platform": platform, "sent": sent, "job_id": context.job.id})
    return sent


def _platform_key(platform: str) -> int:
    return zlib.crc32(platform.encode()) & 0x7FFFFFFF


async def sweep_outbox(context: procrastinate.JobContext, timestamp: int) -> list[str]:
    """Queue a delivery for each configured platform that has due outbox rows; return those platforms."""
    runtime = _runtime(context)
    due = await asyncio.to_thread(_platforms_with_due_rows, runtime.engine)
    queued = []
    for platform in due:
        if platform in DRAINS and platform in delivery_platforms(runtime.settings):
            if await queue_delivery(context.app, platform):
                queued.append(platform)
    return queued


def _platforms_with_due_rows(engine: Engine) -> list[str]:
    with engine.session_factory() as session:
        rows = session.execute(text(
            "SELECT DISTINCT platform FROM outbox WHERE status = 'pending' AND available_at <= :now"
        ), {"now": engine.clock()}).scalars().all()
    return sorted(rows)


async def check_nudges(context: procrastinate.JobContext, timestamp: int) -> int:
    """Check every reminder rule once, then queue the delivery of what it queued; return how many."""
    from bot.nudge_scheduler import run_once

    runtime = _runtime(context)
    summary = await asyncio.to_thread(run_once, runtime.engine)
    if summary.queued:
        for platform in delivery_platforms(runtime.settings):
            await queue_delivery(context.app, platform)
    return summary.queued


async def prune_processed_updates(context: procrastinate.JobContext, timestamp: int) -> int:
    """Delete the records of handled updates older than the retention; return how many."""
    engine = _runtime(context).engine
    return await asyncio.to_thread(housekeeping.prune_processed_updates, engine.session_factory,
                                   retention_days=engine.settings.processed_update_retention_days,
                                   now=engine.clock())


async def prune_orphan_files(context: procrastinate.JobContext, timestamp: int) -> int:
    """Delete the evidence files that no submission names; return how many."""
    engine = _runtime(context).engine
    return await asyncio.to_thread(housekeeping.prune_orphan_files, engine.session_factory,
                                   engine.settings.files_dir, now=engine.clock())


async def retry_stalled_jobs(context: procrastinate.JobContext, timestamp: int) -> int:
    """Queue again the running jobs of workers without a recent heartbeat; return how many."""
    manager = context.app.job_manager
    stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER_SECONDS)
    retried = 0
    for job in stalled:
        try:
            await manager.retry_job(job)
        except job_errors.UniqueViolation:
            # A job with the same queueing lock already waits and does the same work.
            await manager.finish_job(job, status=Status.FAILED, delete_job=False)
            logger.warning("stalled job %s (%s) closed as failed: the same job already waits in the queue",
                           job.id, job.task_name, extra=_job_extra(job))
            continue
        retried += 1
        logger.warning("stalled job %s (%s) of a worker without heartbeat queued again", job.id, job.task_name,
                       extra=_job_extra(job))
    return retried


def _job_extra(job) -> dict[str, Any]:
    return {"job_id": job.id, "task": job.task_name, "attempts": job.attempts}
