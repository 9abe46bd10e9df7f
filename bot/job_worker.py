"""``careerbot worker``: run procrastinate jobs (``bot.jobs``) until stopped.

A worker stops by itself when one of procrastinate's side tasks fails, for
example its heartbeat while the database is unreachable. This loop starts it
again after a pause that doubles up to ``RESTART_MAX_SECONDS``, so a database
outage pauses background work instead of ending the process. SIGINT or SIGTERM
stops the worker after its running jobs finish (at most
``SHUTDOWN_GRACE_SECONDS``); their rows that were not sent stay pending.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from bot import jobs
from bot.app import build_engine
from bot.config import Settings

logger = logging.getLogger(__name__)

RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
SHUTDOWN_GRACE_SECONDS = 30.0


def run(settings: Settings, *, concurrency: int = 4) -> int:
    """Run the worker loop in this process; return the exit code."""
    engine = build_engine(settings)
    jobs.apply_schema(engine.session_factory.kw["bind"])
    platforms = jobs.delivery_platforms(settings)
    minutes = settings.nudge_check_minutes
    logger.info("worker starting: %d job(s) at a time, delivering for %s, reminder rules checked %s",
                concurrency, ", ".join(platforms) or "no platform",
                f"on the cron schedule '{jobs.nudge_cron(minutes)}'" if minutes else "never (nudge_check_minutes is 0)")
    if minutes and not _divides_evenly(minutes):
        logger.warning("nudge_check_minutes %d does not divide an hour or a day evenly; rules are checked on "
                       "the cron schedule '%s' instead", minutes, jobs.nudge_cron(minutes))
    try:
        return asyncio.run(_work(engine, concurrency))
    finally:
        engine.session_factory.kw["bind"].dispose()


def _divides_evenly(minutes: int) -> bool:
    if minutes < 60:
        return 60 % minutes == 0
    return minutes % 60 == 0 and 24 % (minutes // 60) == 0


async def _work(engine, concurrency: int) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)

    runtime = jobs.WorkerRuntime(engine)
    delay = RESTART_FIRST_SECONDS
    try:
        while not stop.is_set():
            finished_cleanly = await _run_once(engine, runtime, concurrency, stop)
            if stop.is_set():
                break
            if finished_cleanly:
                delay = RESTART_FIRST_SECONDS
            logger.warning("job worker stopped unexpectedly; starting it again in %.0f s", delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, RESTART_MAX_SECONDS)
    finally:
        await runtime.aclose()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signal_number)
    logger.info("worker stopped")
    return 0


async def _run_once(engine, runtime: jobs.WorkerRuntime, concurrency: int, stop: asyncio.Event) -> bool:
    """Run one procrastinate worker until it stops or ``stop`` is set; False when it failed to run at all."""
    app = jobs.build_job_app(engine.settings)
    try:
        async with app.open_async():
            worker = asyncio.create_task(app.run_worker_async(
                concurrency=concurrency,
                name="careerbot",
                additional_context={"runtime": runtime},
                delete_jobs="successful",
                install_signal_handlers=False,
                update_heartbeat_interval=jobs.HEARTBEAT_SECONDS,
                stalled_worker_timeout=jobs.STALLED_AFTER_SECONDS,
                shutdown_graceful_timeout=SHUTDOWN_GRACE_SECONDS,
            ))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not worker.done():
                # procrastinate stops gracefully when cancelled: running jobs finish first.
                worker.cancel()
            try:
                await worker
            except asyncio.CancelledError:
                pass
    except Exception as exc:
        logger.error("job worker failed: %s: %s", type(exc).__name__, exc)
        return False
    return True
