"""Measure the core engine on a SQLite file: messages per second, latency, memory.

Simulated learners go through the whole career action plan (consent, profile,
plan questions and self-ratings) with typed answers, then ask for their
pathway, so each message runs the real state machine, validation, pathway
builder and outbox in one transaction, as in production. Before the run the
database is seeded with learners that already finished their plan, so that
the per-message cost can be compared between a small and a large table.

Usage:
    python bench/core_bench.py                 # 1,000 and 100,000 stored learners
    python bench/core_bench.py --stored 1000 --learners 200
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import resource
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert

from bot.app import build_engine
from bot.config import load_settings
from bot.events import InboundEvent
from bot.models import Learner

ANSWERS = [
    "I agree",
    "Bench Learner",
    "bench@example.org",
    "1",
    "Europe/London",
    "I like analysing data and explaining what it shows.",
    "data analyst",
    "honesty, curiosity",
    "spreadsheets from a part-time job",
    "3", "2", "4", "3", "5", "2", "3", "4",
    "public speaking",
    None,  # target date: filled in relative to today
    "internship",
    "/pathway",
]


def seed(engine, count: int) -> None:
    """Insert ``count`` learners who finished their plan, in batches."""
    now = datetime.now(timezone.utc)
    factory = engine.session_factory
    batch = 5000
    for start in range(0, count, batch):
        rows = [
            {
                "platform": "seed",
                "platform_user_id": f"seed-{index}",
                "chat_id": f"seed-{index}",
                "state": "home",
                "name": f"Seeded {index}",
                "campus": "north-campus",
                "timezone": "Europe/London",
                "answers": {"target_role": "nurse"},
                "context": {},
                "reminders_paused": False,
                "created_at": now,
                "last_activity_at": now,
                "plan_completed_at": now,
            }
            for index in range(start, min(start + batch, count))
        ]
        with factory() as session, session.begin():
            session.execute(insert(Learner), rows)


def run(stored: int, learners: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="careerbot-bench-") as folder:
        settings = load_settings(environ={}, data_dir=Path(folder))
        engine = build_engine(settings)
        seed(engine, stored)
        target_date = (datetime.now(timezone.utc) + timedelta(days=500)).date().isoformat()
        script = [answer if answer is not None else target_date for answer in ANSWERS]

        latencies: list[float] = []
        started = time.perf_counter()
        for number in range(learners):
            user = f"bench-{number}"
            for text in [None, *script]:
                event = InboundEvent(platform="console", user_id=user, chat_id=user, update_id=uuid.uuid4().hex,
                                     text=text, opened=text is None)
                before = time.perf_counter()
                engine.handle(event)
                latencies.append(time.perf_counter() - before)
        elapsed = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        engine.session_factory.kw["bind"].dispose()

    latencies.sort()
    return {
        "stored": stored,
        "messages": len(latencies),
        "per_second": len(latencies) / elapsed,
        "mean_ms": statistics.fmean(latencies) * 1000,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "peak_rss_mib": peak / (1024 * 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, nargs="+", default=[1000, 100_000],
                        help="learners stored before the run (one run per value)")
    parser.add_argument("--learners", type=int, default=300, help="simulated learners per run")
    args = parser.parse_args()

    results = [run(stored, args.learners) for stored in args.stored]
    print(f"{'stored':>8} {'messages':>9} {'msg/s':>8} {'mean ms':>8} {'p50 ms':>7} {'p99 ms':>7} {'peak RSS MiB':>13}")
    for result in results:
        print(f"{result['stored']:>8} {result['messages']:>9} {result['per_second']:>8.0f} {result['mean_ms']:>8.2f} "
              f"{result['p50_ms']:>7.2f} {result['p99_ms']:>7.2f} {result['peak_rss_mib']:>13.1f}")
    if len(results) > 1:
        ratio = results[-1]["mean_ms"] / results[0]["mean_ms"]
        print(f"mean cost per message with {results[-1]['stored']:,} stored / with {results[0]['stored']:,}: {ratio:.3f}")


if __name__ == "__main__":
    main()
