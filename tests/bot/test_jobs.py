"""procrastinate jobs on PostgreSQL: schema, queued deliveries, periodic runs, pruning and stalled jobs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, select, text

from bot import jobs
from bot.config import ConfigError, load_settings
from bot.engine import HandledEvent
from bot.events import OutboundMessage
from bot.models import ProcessedUpdate
from tests.conftest import make_event


@pytest.fixture
def job_settings(postgres_engine):
    return postgres_engine.settings.model_copy(update={"job_queue": "procrastinate", "telegram_token": "1:x"})


@pytest.fixture
def job_app(postgres_engine, job_settings):
    jobs.apply_schema(postgres_engine.session_factory.kw["bind"])
    return jobs.build_job_app(job_settings)


def job_rows(engine, task: str) -> list[tuple[str, dict]]:
    with engine.session_factory() as session:
        return [tuple(row) for row in session.execute(
            text("SELECT status::text, args FROM procrastinate_jobs WHERE task_name = :task ORDER BY id"),
            {"task": task})]


def handled_for(platform: str) -> HandledEvent:
    message = OutboundMessage(platform=platform, chat_id="42", text="hello")
    return HandledEvent(duplicate=False, outbox_ids=(1,), messages=(message,))


def test_apply_schema_once(postgres_engine):
    database = postgres_engine.session_factory.kw["bind"]

    assert jobs.apply_schema(database) is True
    assert jobs.apply_schema(database) is False


def test_delivery_queue_keeps_one_waiting_job(postgres_engine, job_app, job_settings):
    queue = jobs.DeliveryQueue(job_app, job_settings)
    try:
        for _ in range(3):
            queue(make_event(platform="telegram"), handled_for("telegram"))
        queue(make_event(), handled_for("console"))
    finally:
        queue.close()

    assert job_rows(postgres_engine, jobs.DELIVER_OUTBOX) == [("todo", {"platform": "telegram"})]


def test_delivery_queue_after_running_job(postgres_engine, job_app, job_settings):
    queue = jobs.DeliveryQueue(job_app, job_settings)
    try:
        queue.request("telegram")
        with postgres_engine.session_factory() as session, session.begin():
            session.execute(text("UPDATE procrastinate_jobs SET status = 'doing'"))
        queue.request("telegram")
    finally:
        queue.close()

    assert [status for status, _ in job_rows(postgres_engine, jobs.DELIVER_OUTBOX)] == ["doing", "todo"]


def test_engine_hook_queues_delivery(postgres_engine, job_app, job_settings):
    queue = jobs.DeliveryQueue(job_app, job_settings)
    postgres_engine.handled_hooks.append(queue)
    try:
        postgres_engine.handle(make_event("41", "hello", platform="telegram"))
    finally:
        queue.close()

    assert job_rows(postgres_engine, jobs.DELIVER_OUTBOX) == [("todo", {"platform": "telegram"})]


def test_periodic_tasks_registered(job_app, job_settings):
    periodic = {task.task.name: task.cron for task in job_app.periodic_registry.periodic_tasks.values()}

    assert periodic == {
        jobs.SWEEP_OUTBOX: f"* * * * * */{jobs.OUTBOX_SWEEP_SECONDS}",
        jobs.RETRY_STALLED_JOBS: f"* * * * * */{jobs.STALLED_CHECK_SECONDS}",
        jobs.CHECK_NUDGES: "*/5 * * * *",
        jobs.PRUNE_PROCESSED_UPDATES: "17 3 * * *",
        jobs.PRUNE_ORPHAN_FILES: "17 3 * * *",
    }


def test_nudges_not_scheduled_when_off(job_settings):
    app = jobs.build_job_app(job_settings.model_copy(update={"nudge_check_minutes": 0}))

    names = {task.task.name for task in app.periodic_registry.periodic_tasks.values()}
    assert jobs.CHECK_NUDGES not in names
    assert jobs.PRUNE_PROCESSED_UPDATES in names


async def test_prune_job_runs_in_worker(postgres_engine, job_app, job_settings):
    postgres_engine.settings = job_settings.model_copy(update={"processed_update_retention_days": 10})
    now = postgres_engine.clock()
    with postgres_engine.session_factory() as session, session.begin():
        session.execute(insert(ProcessedUpdate), [
            {"platform": "telegram", "update_id": "old", "handled_at": now - timedelta(days=11)},
            {"platform": "telegram", "update_id": "recent", "handled_at": now - timedelta(days=9)},
        ])

    async with job_app.open_async():
        await job_app.configure_task(jobs.PRUNE_PROCESSED_UPDATES).defer_async(timestamp=0)
        await job_app.run_worker_async(wait=False, install_signal_handlers=False, delete_jobs="never",
                                       additional_context={"runtime": jobs.WorkerRuntime(postgres_engine)})

    # The worker's periodic deferrer may add a run of its own when this test runs just after 03:17 UTC.
    assert ("succeeded", {"timestamp": 0}) in job_rows(postgres_engine, jobs.PRUNE_PROCESSED_UPDATES)
    with postgres_engine.session_factory() as session:
        assert session.scalars(select(ProcessedUpdate.update_id)).all() == ["recent"]


@pytest.mark.parametrize(("minutes", "cron"), [
    (1, "* * * * *"), (5, "*/5 * * * *"), (7, "*/6 * * * *"), (60, "0 * * * *"), (90, "0 * * * *"),
    (180, "0 */3 * * *"), (1440, "0 0 * * *"),
])
def test_nudge_cron(minutes, cron):
    assert jobs.nudge_cron(minutes) == cron


async def test_retry_stalled_jobs_requeues(postgres_engine, job_app):
    async with job_app.open_async():
        await job_app.configure_task(jobs.DELIVER_OUTBOX).defer_async(platform="telegram")
        worker_id = await job_app.job_manager.register_worker()
        job = await job_app.job_manager.fetch_job(queues=None, worker_id=worker_id)
        with postgres_engine.session_factory() as session, session.begin():
            session.execute(text("UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour'"))

        retried = await jobs.retry_stalled_jobs(_Context(job_app), timestamp=0)

    assert job is not None
    assert retried == 1
    assert [status for status, _ in job_rows(postgres_engine, jobs.DELIVER_OUTBOX)] == ["todo"]


async def test_sweep_queues_platforms_with_due_rows(postgres_engine, job_app, job_settings):
    postgres_engine.settings = job_settings
    postgres_engine.handle(make_event("43", "hello", platform="telegram"))

    async with job_app.open_async():
        queued = await jobs.sweep_outbox(_Context(job_app, jobs.WorkerRuntime(postgres_engine)), timestamp=0)

    assert queued == ["telegram"]
    assert job_rows(postgres_engine, jobs.DELIVER_OUTBOX) == [("todo", {"platform": "telegram"})]


def test_procrastinate_needs_postgres(tmp_path):
    with pytest.raises(ConfigError, match="needs a PostgreSQL database_url"):
        load_settings(environ={}, data_dir=tmp_path, job_queue="procrastinate")


class _Context:
    """The parts of a procrastinate JobContext that the tasks read."""

    def __init__(self, app, runtime=None) -> None:
        self.app = app
        self.additional_context = {"runtime": runtime}


def test_worker_command_needs_procrastinate(tmp_path, monkeypatch, capsys):
    from bot.cli import main

    monkeypatch.delenv("CAREERBOT_JOB_QUEUE", raising=False)

    assert main(["worker", "--data-dir", str(tmp_path)]) == 2
    assert "CAREERBOT_JOB_QUEUE=procrastinate" in capsys.readouterr().err


def test_db_upgrade_creates_job_tables(postgres_database, tmp_path, monkeypatch, capsys):
    from sqlalchemy import create_engine

    from bot.cli import main

    monkeypatch.setenv("CAREERBOT_JOB_QUEUE", "procrastinate")

    assert main(["db", "upgrade", "--database-url", postgres_database, "--data-dir", str(tmp_path)]) == 0
    database = create_engine(postgres_database)
    try:
        with database.connect() as connection:
            assert connection.scalar(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL"))
            assert connection.scalar(text("SELECT to_regclass('outbox') IS NOT NULL"))
    finally:
        database.dispose()
    assert "database is up to date" in capsys.readouterr().out


@pytest.mark.parametrize(("platform", "mode_setting", "mode"), [
    ("telegram", "CAREERBOT_TELEGRAM_MODE", "polling"),
    ("slack", "CAREERBOT_SLACK_MODE", "socket"),
])
def test_single_process_modes_need_in_process_queue(platform, mode_setting, mode, tmp_path, monkeypatch, capsys):
    from bot.cli import main

    monkeypatch.setenv("CAREERBOT_JOB_QUEUE", "procrastinate")
    monkeypatch.setenv("CAREERBOT_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/unused")
    monkeypatch.setenv(mode_setting, mode)

    assert main(["run", platform, "--data-dir", str(tmp_path)]) == 2
    assert "needs job_queue in-process" in capsys.readouterr().err
