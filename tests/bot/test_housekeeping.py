"""Pruning processed_updates: old rows go, recent rows stay, in batches, on SQLite and PostgreSQL.

The PostgreSQL cases run when CAREERBOT_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, func, insert, select

from bot import db
from bot.app import build_engine
from bot.cli import _background_work
from bot.cli import main as cli_main
from bot.housekeeping import PruneRunner, prune_processed_updates
from bot.models import ProcessedUpdate, utcnow
from tests.bot.nudge_setup import Clock
from tests.conftest import make_event

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
RETENTION = timedelta(days=30)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request):
    return request.getfixturevalue("engine" if request.param == "sqlite" else "postgres_engine")


def add_updates(session_factory, ages: list[timedelta], *, now: datetime = NOW, prefix: str = "u") -> None:
    rows = [{"platform": "telegram", "update_id": f"{prefix}{index}", "handled_at": now - age}
            for index, age in enumerate(ages)]
    with session_factory() as session, session.begin():
        session.execute(insert(ProcessedUpdate), rows)


def stored_ids(session_factory) -> set[str]:
    with session_factory() as session:
        return set(session.scalars(select(ProcessedUpdate.update_id)))


def row_count(session_factory) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(ProcessedUpdate))


def prune(engine, **options) -> int:
    options.setdefault("retention_days", 30)
    options.setdefault("now", NOW)
    options.setdefault("pause_seconds", 0)
    return prune_processed_updates(engine.session_factory, **options)


def wait_until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


# --- the core function ---------------------------------------------------------------


def test_prune_deletes_old_keeps_recent(any_engine):
    add_updates(any_engine.session_factory, [timedelta(days=31), timedelta(days=400), timedelta(days=29),
                                             timedelta(hours=1)])

    deleted = prune(any_engine)

    assert deleted == 2
    assert stored_ids(any_engine.session_factory) == {"u2", "u3"}


def test_prune_keeps_rows_at_cutoff(any_engine):
    second = timedelta(seconds=1)
    add_updates(any_engine.session_factory, [RETENTION - second, RETENTION, RETENTION + second])

    deleted = prune(any_engine)

    assert deleted == 1
    assert stored_ids(any_engine.session_factory) == {"u0", "u1"}


@pytest.mark.parametrize(("old_rows", "expected_batches"), [(12, 3), (10, 3), (4, 1)])
def test_prune_batches_in_transactions(any_engine, old_rows, expected_batches):
    add_updates(any_engine.session_factory, [timedelta(days=31 + index) for index in range(old_rows)])
    add_updates(any_engine.session_factory, [timedelta(days=1)] * 3, prefix="recent")
    database = any_engine.session_factory.kw["bind"]
    deletes: list[str] = []
    commits: list[bool] = []

    def count_delete(connection, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append(statement)

    def count_commit(connection) -> None:
        commits.append(True)

    event.listen(database, "before_cursor_execute", count_delete)
    event.listen(database, "commit", count_commit)
    try:
        deleted = prune(any_engine, batch_rows=5)
    finally:
        event.remove(database, "before_cursor_execute", count_delete)
        event.remove(database, "commit", count_commit)

    assert deleted == old_rows
    assert len(deletes) == expected_batches
    assert len(commits) == expected_batches
    assert stored_ids(any_engine.session_factory) == {"recent0", "recent1", "recent2"}


def test_prune_rejects_short_retention(any_engine):
    add_updates(any_engine.session_factory, [timedelta(days=1, hours=12)])

    with pytest.raises(ValueError, match="at least 2 days"):
        prune(any_engine, retention_days=1)

    assert stored_ids(any_engine.session_factory) == {"u0"}


def test_prune_rejects_empty_batch(engine):
    with pytest.raises(ValueError, match="batch_rows must be at least 1"):
        prune(engine, batch_rows=0)


def test_prune_logs_count_and_cutoff(engine, caplog):
    add_updates(engine.session_factory, [timedelta(days=31), timedelta(days=32), timedelta(days=1)])

    with caplog.at_level(logging.INFO, logger="bot.housekeeping"):
        prune(engine, batch_rows=1)

    records = [record for record in caplog.records if record.name == "bot.housekeeping"]
    assert len(records) == 1
    assert records[0].levelno == logging.INFO
    assert "pruned 2 processed update(s)" in records[0].getMessage()
    assert "2026-11-01T12:00:00+00:00" in records[0].getMessage()
    assert records[0].deleted == 2


def test_concurrent_pruners_delete_each_row_once(any_engine):
    add_updates(any_engine.session_factory, [timedelta(days=31 + index) for index in range(40)])
    barrier = threading.Barrier(2)
    results: list[int] = []

    def run() -> None:
        barrier.wait()
        results.append(prune(any_engine, batch_rows=3))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(results) == 40
    assert row_count(any_engine.session_factory) == 0


# --- redeliveries ----------------------------------------------------------------------


def test_redelivery_after_prune_handled_again(any_engine):
    clock = Clock(NOW)
    any_engine.clock = clock
    update = make_event("ana", "/start", update_id="981")

    assert any_engine.handle(update).duplicate is False
    clock.advance(days=2)
    assert prune(any_engine, now=clock()) == 0
    assert any_engine.handle(update).duplicate is True

    clock.advance(days=29)
    assert prune(any_engine, now=clock()) == 1
    redelivered = any_engine.handle(update)

    # The accepted trade-off of the retention: once its row is gone, the update counts as new.
    assert redelivered.duplicate is False
    assert redelivered.messages
    assert any_engine.handle(update).duplicate is True


# --- running it in the background --------------------------------------------------------


def test_runner_prunes_at_start_and_stops(engine):
    engine.clock = Clock(NOW)
    add_updates(engine.session_factory, [timedelta(days=31), timedelta(days=1)])
    runner = PruneRunner(engine, interval=timedelta(hours=1))

    runner.start()
    try:
        assert wait_until(lambda: runner.runs >= 1)
    finally:
        runner.stop()

    assert runner.runs == 1
    assert stored_ids(engine.session_factory) == {"u1"}


def test_runner_rejects_zero_interval(engine):
    with pytest.raises(ValueError, match="must be positive"):
        PruneRunner(engine, interval=timedelta(0)).start()


def test_run_process_prunes_without_nudges(settings, caplog):
    seeded = build_engine(settings)
    add_updates(seeded.session_factory, [timedelta(days=31), timedelta(days=1)], now=utcnow())
    seeded.session_factory.kw["bind"].dispose()

    with caplog.at_level(logging.INFO), _background_work(settings.model_copy(update={"nudge_check_minutes": 0})):
        pruned = wait_until(lambda: row_count(seeded.session_factory) == 1)

    assert pruned
    assert stored_ids(seeded.session_factory) == {"u1"}
    assert "reminder rules are not checked" in caplog.text
    assert "prune runner started" in caplog.text
    seeded.session_factory.kw["bind"].dispose()


# --- careerbot db prune ----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def cli_database(request, tmp_path) -> tuple[str, list[str]]:
    """A migrated database, and the command line options that select it."""
    if request.param == "sqlite":
        data_dir = tmp_path / "data"
        return f"sqlite:///{data_dir / 'careerbot.sqlite3'}", ["--data-dir", str(data_dir)]
    url = request.getfixturevalue("postgres_database")
    return url, ["--database-url", url, "--data-dir", str(tmp_path / "data")]


def test_db_prune_prints_count(cli_database, monkeypatch, capsys):
    url, options = cli_database
    monkeypatch.setenv("CAREERBOT_PROCESSED_UPDATE_RETENTION_DAYS", "10")
    monkeypatch.delenv("CAREERBOT_DATABASE_URL", raising=False)
    database = db.make_engine(url)
    db.upgrade(database)
    factory = db.make_session_factory(database)
    add_updates(factory, [timedelta(days=11), timedelta(days=12), timedelta(days=9)], now=utcnow())

    try:
        assert cli_main(["db", "prune", *options]) == 0
        assert stored_ids(factory) == {"u2"}
    finally:
        database.dispose()
    assert capsys.readouterr().out == ("deleted 2 processed update record(s) older than 10 days\n"
                                       "deleted 0 evidence file(s) that no submission names\n")


def test_db_prune_rejects_short_retention(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CAREERBOT_PROCESSED_UPDATE_RETENTION_DAYS", "1")

    assert cli_main(["db", "prune", "--data-dir", str(tmp_path / "data")]) == 2

    assert "processed_update_retention_days" in capsys.readouterr().err
