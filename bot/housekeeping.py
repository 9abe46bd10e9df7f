"""Deleting old records of handled updates: :func:`prune_processed_updates` and :class:`PruneRunner`.

``Engine`` writes one ``processed_updates`` row per inbound update, and a
redelivered update whose row exists changes nothing. Telegram and Slack stop
redelivering an update after at most a day (see
``bot.config.MIN_PROCESSED_UPDATE_RETENTION_DAYS``), so rows older than
``processed_update_retention_days`` only take space, and are deleted. The
accepted trade-off: an update that arrives again after its row was deleted is
handled again.

Rows are deleted in transactions of at most ``PRUNE_BATCH_ROWS`` rows, so a
large backlog neither holds locks for long nor builds one huge transaction.
On PostgreSQL a batch skips the rows that another pruner has locked, so two
pruners that run at once share the rows instead of waiting for each other.

:func:`prune_orphan_files` deletes evidence files that no submission names.
An evidence file is written before the transaction that records it commits,
so a transaction that fails leaves its file behind.

With ``job_queue: procrastinate``, the daily jobs
``careerbot.prune_processed_updates`` and ``careerbot.prune_orphan_files``
(``bot.jobs``) prune. With ``in-process``, a :class:`PruneRunner` thread in
each ``careerbot run`` and ``serve`` process does. ``careerbot db prune`` runs
both on demand.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from bot.config import MIN_PROCESSED_UPDATE_RETENTION_DAYS
from bot.files import stored_files
from bot.models import ProcessedUpdate, Submission

if TYPE_CHECKING:
    from bot.engine import Engine

logger = logging.getLogger(__name__)

PRUNE_BATCH_ROWS = 5000
BATCH_PAUSE_SECONDS = 0.05
"""Pause between two batches. On SQLite a batch holds the single write lock, and the pause lets waiting
update handlers take it in between."""
PRUNE_INTERVAL = timedelta(days=1)
"""Time between two runs of :class:`PruneRunner`."""
ORPHAN_FILE_AGE = timedelta(days=1)
"""How long an evidence file must have been unchanged before it may count as an orphan.

A file is written seconds before its transaction commits, so a younger file
may still be about to be recorded."""
ORPHAN_CHECK_BATCH = 500
"""Digests looked up in one query."""


def prune_processed_updates(session_factory: sessionmaker[Session], *, retention_days: int, now: datetime,
                            batch_rows: int = PRUNE_BATCH_ROWS, pause_seconds: float = BATCH_PAUSE_SECONDS,
                            stop: threading.Event | None = None) -> int:
    """Delete the processed_updates rows handled more than ``retention_days`` before ``now``; return how many.

    Each batch of at most ``batch_rows`` rows is its own transaction. When
    ``stop`` is set, the function returns after the current batch.

    Raises:
        ValueError: ``retention_days`` is below ``MIN_PROCESSED_UPDATE_RETENTION_DAYS``, so a platform
            could still redeliver an update whose row would be deleted; or ``batch_rows`` is below 1.
    """
    if retention_days < MIN_PROCESSED_UPDATE_RETENTION_DAYS:
        raise ValueError(f"retention_days {retention_days} is too short, because a platform may still redeliver "
                         f"updates that recent. Use at least {MIN_PROCESSED_UPDATE_RETENTION_DAYS} days")
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
    cutoff = now - timedelta(days=retention_days)
    stop = stop or threading.Event()

    deleted = 0
    while True:
        with session_factory() as session, session.begin():
            batch = _delete_batch(session, cutoff, batch_rows)
        deleted += batch
        # A short batch means that no unlocked old row was left. Rows that another pruner locked are its to delete.
        if batch < batch_rows or stop.wait(pause_seconds):
            break

    cutoff_text = cutoff.isoformat(timespec="seconds")
    logger.info("pruned %d processed update(s) handled before %s (retention %d days)", deleted, cutoff_text,
                retention_days, extra={"deleted": deleted, "cutoff": cutoff_text, "retention_days": retention_days})
    return deleted


def _delete_batch(session: Session, cutoff: datetime, batch_rows: int) -> int:
    key = tuple_(ProcessedUpdate.platform, ProcessedUpdate.update_id)
    # SQLite has no row locks, so SQLAlchemy leaves out FOR UPDATE there. Its write lock serializes pruners.
    old_keys = (
        select(ProcessedUpdate.platform, ProcessedUpdate.update_id)
        .where(ProcessedUpdate.handled_at < cutoff)
        .limit(batch_rows)
        .with_for_update(skip_locked=True)
    )
    return session.execute(delete(ProcessedUpdate).where(key.in_(old_keys))).rowcount


def prune_orphan_files(session_factory: sessionmaker[Session], files_dir: Path, *, now: datetime,
                       min_age: timedelta = ORPHAN_FILE_AGE) -> int:
    """Delete the evidence files older than ``min_age`` that no submission names; return how many.

    Unfinished writes (``.incoming-`` files) older than ``min_age`` are deleted too.

    NOTE: a file uploaded again between the lookup and the delete is lost,
    because ``store_file`` keeps the existing copy. ``store_file`` touches that
    copy, so only a sweep that checked its age just before can miss the touch.
    """
    cutoff = (now - min_age).timestamp()
    deleted = 0
    candidates: list[tuple[str, Path]] = []

    def sweep(batch: list[tuple[str, Path]]) -> int:
        with session_factory() as session:
            named = set(session.scalars(
                select(Submission.file_sha256).where(Submission.file_sha256.in_([digest for digest, _ in batch]))
            ))
        removed = 0
        for digest, path in batch:
            if digest not in named and _older_than(path, cutoff):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    for digest, path in stored_files(files_dir):
        if not _older_than(path, cutoff):
            continue
        if digest is None:
            path.unlink(missing_ok=True)
            deleted += 1
            continue
        candidates.append((digest, path))
        if len(candidates) >= ORPHAN_CHECK_BATCH:
            deleted += sweep(candidates)
            candidates = []
    if candidates:
        deleted += sweep(candidates)

    logger.info("deleted %d evidence file(s) that no submission names, unchanged since %s", deleted,
                datetime.fromtimestamp(cutoff, timezone.utc).isoformat(timespec="seconds"),
                extra={"deleted": deleted})
    return deleted


def _older_than(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


class PruneRunner:
    """Runs :func:`prune_processed_updates` and :func:`prune_orphan_files` now and then every ``interval``
    in a daemon thread, until :meth:`stop`.

    A failed run is logged and the next one runs on schedule.
    """

    def __init__(self, engine: Engine, interval: timedelta = PRUNE_INTERVAL) -> None:
        self.engine = engine
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the prune runner is already running")
        if self.interval <= timedelta(0):
            raise ValueError(f"the interval between prune runs must be positive, not {self.interval}")
        self._thread = threading.Thread(target=self._loop, name="careerbot-prune", daemon=True)
        self._thread.start()
        logger.info("prune runner started: processed updates older than %d days deleted every %s",
                    self.engine.settings.processed_update_retention_days, self.interval)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
            logger.info("prune runner stopped")

    def _loop(self) -> None:
        while True:
            try:
                prune_processed_updates(self.engine.session_factory,
                                        retention_days=self.engine.settings.processed_update_retention_days,
                                        now=self.engine.clock(), stop=self._stop)
            except Exception:
                logger.exception("pruning processed updates failed; trying again in %s", self.interval)
            try:
                prune_orphan_files(self.engine.session_factory, self.engine.settings.files_dir,
                                   now=self.engine.clock())
            except Exception:
                logger.exception("deleting orphan evidence files failed; trying again in %s", self.interval)
            self.runs += 1
            if self._stop.wait(self.interval.total_seconds()):
                return
