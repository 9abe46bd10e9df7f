"""The ``careerbot`` command line: chat in the terminal, check flows, migrate the database."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from bot.config import ENV_PREFIX, MIN_PROCESSED_UPDATE_RETENTION_DAYS, ConfigError, Settings, load_settings
from bot.flows import FlowsInvalid, load_flows

logger = logging.getLogger("careerbot")


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help=f"YAML configuration file (also {ENV_PREFIX}CONFIG); environment variables override it")
    parser.add_argument("--data-dir", metavar="DIR", type=Path,
                        help=f"{Settings.model_fields['data_dir'].description} (default: ./careerbot-data)")
    parser.add_argument("--database-url", metavar="URL", help=Settings.model_fields["database_url"].description)
    parser.add_argument("--flows-dir", metavar="DIR", type=Path, help=Settings.model_fields["flows_dir"].description)
    parser.add_argument("--log-level", metavar="LEVEL", help=Settings.model_fields["log_level"].description)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="careerbot",
        description="A chat bot for a career action plan and a stacked-badge micro-credential.",
        epilog=f"Every option can also be set as an environment variable {ENV_PREFIX}<NAME> "
               f"(for example {ENV_PREFIX}DATABASE_URL) or in the --config file.",
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")

    chat = subcommands.add_parser("chat", help="chat with the bot in this terminal (SQLite, no tokens needed)",
                                  description="Chat as one user; each line is a message. "
                                              "Numbers pick a listed choice, /attach PATH sends a file, "
                                              "/quit leaves. Works with piped input too.")
    chat.add_argument("--user", default=os.environ.get("USER") or "learner",
                      help="the user id to chat as; the reviewer id from the configuration "
                           "(default 'reviewer') reviews submissions (default: $USER)")
    chat.add_argument("--name", help="display name shown to reviewers (default: the user id)")
    _add_common_options(chat)

    run = subcommands.add_parser("run", help="run the bot on a chat platform",
                                 description="Run the bot on Telegram or Slack with the configured tokens. "
                                             "The platform mode (polling/webhook, socket/http) comes from "
                                             "the configuration.")
    run.add_argument("platform", choices=("telegram", "slack"), help="which platform to connect to")
    _add_common_options(run)

    serve = subcommands.add_parser("serve", help="serve the web app (webhooks, Slack HTTP events, badges) with uvicorn")
    serve.add_argument("--workers", type=int, default=1, help="number of uvicorn worker processes (default: 1)")
    _add_common_options(serve)

    worker = subcommands.add_parser(
        "worker", help="run background jobs on PostgreSQL: outbox delivery, reminder checks (job_queue: procrastinate)",
        description="Run procrastinate jobs: send the outbox of each configured platform, check the reminder "
                    "rules every nudge_check_minutes, and queue again the jobs of workers that died. Run one or "
                    "more beside careerbot serve; each periodic job runs in one worker only.")
    worker.add_argument("--concurrency", type=int, default=4, metavar="N",
                        help="jobs this process runs at the same time (default: 4)")
    _add_common_options(worker)

    flows = subcommands.add_parser("flows", help="work with flow files")
    flow_commands = flows.add_subparsers(dest="flows_command", metavar="ACTION", required=True)
    check = flow_commands.add_parser("check", help="validate a flows directory without starting the bot")
    check.add_argument("directory", nargs="?", type=Path, help="flows directory (default: the configured one)")
    _add_common_options(check)

    report = subcommands.add_parser("report", help="print the cohort report (text or CSV)",
                                    description="Print the cohort report: learners per level and state, the funnel "
                                                "from a started plan to the macro-badge, stalled learners, reviews, "
                                                "nudges and opt-outs.")
    report.add_argument("--csv", action="store_true", help="print CSV (columns: section, metric, value) instead of text")
    report.add_argument("--chart", metavar="FILE", type=Path, help="also write the funnel as a PNG image to FILE")
    report.add_argument("--campus", metavar="ID", help="only learners of this campus or program (an id of the catalog)")
    report.add_argument("--days", type=int, default=30, metavar="N",
                        help="days over which nudges and review decisions are counted (default: 30)")
    _add_common_options(report)

    nudges = subcommands.add_parser("nudges", help="reminder rules and the nudge audit trail")
    nudge_commands = nudges.add_subparsers(dest="nudges_command", metavar="ACTION", required=True)
    run_once = nudge_commands.add_parser("run-once", help="check every reminder rule once and queue what is due "
                                                          "(for cron or a job system)")
    _add_common_options(run_once)
    log = nudge_commands.add_parser("log", help="print the nudge audit trail as CSV, newest first")
    log.add_argument("--days", type=int, metavar="N", help="only nudges of the last N days (default: all)")
    _add_common_options(log)

    database = subcommands.add_parser("db", help="database maintenance")
    db_commands = database.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = db_commands.add_parser("upgrade", help="apply the database migrations, and create procrastinate's "
                                                     "job tables when job_queue is procrastinate (also done on "
                                                     "every start)")
    _add_common_options(upgrade)
    from bot.housekeeping import PRUNE_BATCH_ROWS

    retention = Settings.model_fields["processed_update_retention_days"]
    prune = db_commands.add_parser(
        "prune", help="delete the records of inbound updates handled more than processed_update_retention_days ago",
        description="Delete the processed_updates rows (the records that make a redelivered update change "
                    "nothing) of updates handled more than processed_update_retention_days ago: "
                    f"{retention.default} days by default, at least {MIN_PROCESSED_UPDATE_RETENTION_DAYS}, set with "
                    f"{ENV_PREFIX}PROCESSED_UPDATE_RETENTION_DAYS. Each transaction deletes at most "
                    f"{PRUNE_BATCH_ROWS} rows. A redelivery of a deleted update would be handled again. careerbot "
                    "run and serve (job_queue in-process) and careerbot worker (procrastinate) do this once a day; "
                    "run this command from cron when only careerbot chat or nudges run-once use the database. "
                    "It also deletes evidence files that no submission names and that have not changed for a day "
                    "(left behind by a transaction that failed).")
    _add_common_options(prune)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        config_file=args.config,
        data_dir=args.data_dir,
        database_url=args.database_url,
        flows_dir=args.flows_dir,
        log_level=args.log_level,
    )


def _configure_logging(settings: Settings, *, to_file: bool) -> None:
    from bot.logs import make_formatter

    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    if to_file:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(settings.data_dir / "careerbot.log", encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(settings.log_format))
    logging.basicConfig(level=level, handlers=[handler])
    # transitions logs every state entry at INFO; the engine already logs one line per update.
    logging.getLogger("transitions").setLevel(max(level, logging.WARNING))


def _run_chat(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.console import ConsoleChat
    from bot.app import build_engine

    _configure_logging(settings, to_file=True)
    engine = build_engine(settings)
    if sys.stdin.isatty():
        print(f"careerbot: chatting as {args.user!r}; data in {settings.data_dir}. "
              "Type /help for commands, /quit to leave.")
    ConsoleChat(engine, args.user, name=args.name).run()
    return 0


def _run_flows_check(args: argparse.Namespace, settings: Settings) -> int:
    directory = args.directory or settings.flows_dir
    flows = load_flows(directory)
    for warning in flows.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{flows.directory}: OK ({len(flows.questions)} questions, {len(flows.catalog.skills)} skills, "
          f"{sum(len(level.items) for level in flows.catalog.levels)} items)")
    return 0


def _run_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from bot import db

    _configure_logging(settings, to_file=False)
    database = db.make_engine(settings.resolved_database_url, connect_timeout=settings.database_connect_timeout)
    try:
        db.upgrade(database)
        if settings.job_queue == "procrastinate":
            from bot import jobs

            jobs.apply_schema(database)
    finally:
        database.dispose()
    print("database is up to date")
    return 0


def _run_db_prune(args: argparse.Namespace, settings: Settings) -> int:
    from bot import db
    from bot.housekeeping import prune_orphan_files, prune_processed_updates
    from bot.models import utcnow

    _configure_logging(settings, to_file=False)
    days = settings.processed_update_retention_days
    database = db.make_engine(settings.resolved_database_url, connect_timeout=settings.database_connect_timeout)
    try:
        db.upgrade(database)
        factory = db.make_session_factory(database)
        deleted = prune_processed_updates(factory, retention_days=days, now=utcnow())
        orphans = prune_orphan_files(factory, settings.files_dir, now=utcnow())
    finally:
        database.dispose()
    print(f"deleted {deleted} processed update record(s) older than {days} days")
    print(f"deleted {orphans} evidence file(s) that no submission names")
    return 0


def _run_platform(args: argparse.Namespace, settings: Settings) -> int:
    _configure_logging(settings, to_file=False)
    mode = settings.telegram_mode if args.platform == "telegram" else settings.slack_mode
    if not settings.outbox_delivered_in_process:
        if mode in ("polling", "socket"):
            print(f"careerbot: {args.platform} {mode} mode runs as one process that sends its own replies, so it "
                  "needs job_queue in-process; with procrastinate, use webhook or http mode with careerbot serve "
                  "and careerbot worker", file=sys.stderr)
            return 2
        # careerbot worker checks the reminder rules and prunes as periodic jobs.
        return _start_platform(args.platform, settings)
    with _background_work(settings):
        return _start_platform(args.platform, settings)


def _start_platform(platform: str, settings: Settings) -> int:
    if platform == "telegram":
        from adapters.telegram import main as run_telegram

        return run_telegram(settings)
    from adapters.slack import main as run_slack

    return run_slack(settings)


def _run_serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Set before prometheus_client is imported here or in the workers, so
        # that /metrics adds up the counters of every worker process.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="careerbot-metrics-")
    from bot.server import serve

    _configure_logging(settings, to_file=False)
    if not settings.outbox_delivered_in_process:
        # careerbot worker checks the reminder rules and prunes as periodic jobs.
        return serve(settings, workers=args.workers)
    with _background_work(settings):
        return serve(settings, workers=args.workers)


def _run_worker(args: argparse.Namespace, settings: Settings) -> int:
    _configure_logging(settings, to_file=False)
    if settings.job_queue != "procrastinate":
        print("careerbot: careerbot worker runs jobs on PostgreSQL; set CAREERBOT_JOB_QUEUE=procrastinate and "
              "a PostgreSQL CAREERBOT_DATABASE_URL (with job_queue in-process, run and serve do the work)",
              file=sys.stderr)
        return 2
    if args.concurrency < 1:
        print("careerbot: --concurrency must be at least 1", file=sys.stderr)
        return 2
    from bot import job_worker

    return job_worker.run(settings, concurrency=args.concurrency)


@contextmanager
def _background_work(settings: Settings) -> Iterator[None]:
    """Run background threads while the block runs: the reminder checks and the daily prune of processed updates.

    The reminder rules are not checked when nudge_check_minutes is 0. Pruning
    runs in any case, because that setting is about reminders only.
    """
    from bot.app import build_engine
    from bot.housekeeping import PruneRunner
    from bot.nudge_scheduler import NudgeRunner

    engine = build_engine(settings)
    runners: list[NudgeRunner | PruneRunner] = [PruneRunner(engine)]
    if settings.nudge_check_minutes == 0:
        logger.info("nudge_check_minutes is 0: reminder rules are not checked by this process")
    else:
        runners.append(NudgeRunner(engine))
    try:
        for runner in runners:
            runner.start()
        yield
    finally:
        for runner in runners:
            runner.stop()
        engine.session_factory.kw["bind"].dispose()


def _run_report(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import build_engine
    from bot.report_chart import funnel_png
    from bot.reports import build_report, report_csv, report_text

    engine = build_engine(settings)
    campus_ids = [option.id for option in engine.flows.catalog.campuses]
    if args.campus is not None and args.campus not in campus_ids:
        print(f"careerbot: unknown campus {args.campus!r}; use one of {', '.join(campus_ids)}", file=sys.stderr)
        return 2
    if args.days < 1:
        print("careerbot: --days must be at least 1", file=sys.stderr)
        return 2
    with engine.session_factory() as session:
        report = build_report(session, engine.flows, engine.clock(), campus=args.campus, days=args.days)
    print(report_csv(report) if args.csv else report_text(report, engine.flows), end="" if args.csv else "\n")
    if args.chart is not None:
        args.chart.write_bytes(funnel_png(report, engine.flows))
        print(f"funnel chart written to {args.chart}", file=sys.stderr)
    return 0


def _run_nudges(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import build_engine
    from bot.nudge_audit import audit_csv
    from bot.nudge_scheduler import run_once

    engine = build_engine(settings)
    if args.nudges_command == "run-once":
        _configure_logging(settings, to_file=False)
        summary = run_once(engine)
        for run in summary.rules:
            state = "paused" if run.paused else f"{run.queued} queued ({run.deferred} after quiet hours)"
            print(f"{run.rule_id}: {state}; skipped {run.skipped_paused} paused, {run.skipped_unreachable} unreachable")
        return 0
    since = engine.clock() - timedelta(days=args.days) if args.days else None
    with engine.session_factory() as session:
        print(audit_csv(session, since=since), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        settings = _settings(args)
        if args.command == "chat":
            return _run_chat(args, settings)
        if args.command == "flows":
            return _run_flows_check(args, settings)
        if args.command == "run":
            return _run_platform(args, settings)
        if args.command == "serve":
            return _run_serve(args, settings)
        if args.command == "worker":
            return _run_worker(args, settings)
        if args.command == "report":
            return _run_report(args, settings)
        if args.command == "nudges":
            return _run_nudges(args, settings)
        if args.db_command == "prune":
            return _run_db_prune(args, settings)
        return _run_db_upgrade(args, settings)
    except ConfigError as exc:
        print(f"careerbot: {exc}", file=sys.stderr)
        return 2
    except FlowsInvalid as exc:
        print(f"careerbot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
