"""Measure what verifiable badges cost: issuing inside the review, and serving verification.

Issuing runs in the reviewer's approval transaction: the assertion row, the
evidence snapshot, a baked PNG with a signed Open Badges 3.0 credential, and
the chat message that carries it. The script times approvals that issue a
badge against approvals for learners without an email address, whose badge
waits, so the difference is the cost of issuing.

Then it times the verification routes in process (httpx over ASGI, no
sockets): the assertion JSON, the page for people, the baked PNG, the
VC-JWT and the signed revocation status list, one request at a time.

Usage:
    python bench/badges_bench.py                  # 40 learners, 200 requests per route
    python bench/badges_bench.py --learners 100 --requests 500
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import select

# The learners are driven with the test suite's chat helpers, which live in the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app import build_engine
from bot.config import load_settings
from bot.models import BadgeAssertion
from bot.openbadges import BadgeUrls
from bot.verify_web import web_routes
from bot.web import create_app
from tests.bot.scripted import Chat, plan_answers  # noqa: E402

ITEM = "use-career-services"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(name: str, values_ms: list[float]) -> str:
    return (f"| {name} | {len(values_ms)} | {statistics.mean(values_ms):.2f} | "
            f"{percentile(values_ms, 0.5):.2f} | {percentile(values_ms, 0.99):.2f} |")


def prepare(engine, user: str, *, with_email: bool) -> int:
    """Finish the plan and submit the first item; return the submission id awaiting approval."""
    chat = Chat(engine, user)
    answers = plan_answers()
    chat.send("hello")
    for question in engine.flows.questions:
        skip = question.state == "email" and not with_email
        chat.send("/skip" if skip else answers[question.state])
    return chat.submit_reflection(ITEM)


def time_approvals(engine, submission_ids: list[int]) -> list[float]:
    reviewer = Chat(engine, "reviewer", display_name="Reviewer")
    durations = []
    for submission_id in submission_ids:
        started = time.perf_counter()
        reviewer.press(f"rv:a:{submission_id}")
        durations.append((time.perf_counter() - started) * 1000)
    return durations


async def time_routes(engine, uids: list[str], requests: int) -> dict[str, list[float]]:
    urls = BadgeUrls(engine.settings.public_base_url)
    routes = {
        "GET assertion (JSON-LD)": urls.assertion,
        "GET verification page": urls.verify_page,
        "GET baked PNG": lambda uid: urls.baked_image(uid, "png"),
        "GET credential (VC-JWT)": urls.credential,
        "GET revocation status list (VC-JWT)": lambda uid: urls.revocation_list(),
    }
    app = create_app(engine, [web_routes])
    results: dict[str, list[float]] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=urls.base) as client:
        for name, url_of in routes.items():
            durations = []
            for index in range(requests):
                started = time.perf_counter()
                response = await client.get(url_of(uids[index % len(uids)]))
                durations.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
            results[name] = durations
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=40, help="learners per group (with and without email)")
    parser.add_argument("--requests", type=int, default=200, help="requests per verification route")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(environ={}, data_dir=Path(folder) / "data")
        engine = build_engine(settings)
        issuing = [prepare(engine, f"with-{index}", with_email=True) for index in range(arguments.learners)]
        waiting = [prepare(engine, f"without-{index}", with_email=False) for index in range(arguments.learners)]

        # One approval first, so that the issuer key is created before the timing starts.
        time_approvals(engine, issuing[:1])
        with_email = time_approvals(engine, issuing[1:])
        without_email = time_approvals(engine, waiting)

        with engine.session_factory() as session:
            uids = list(session.scalars(select(BadgeAssertion.uid)))
        routes = asyncio.run(time_routes(engine, uids, arguments.requests))
        engine.session_factory.kw["bind"].dispose()

    print("| step | count | mean ms | p50 ms | p99 ms |")
    print("| --- | --- | --- | --- | --- |")
    print(summary("approval that issues a badge", with_email))
    print(summary("approval, badge waits for an email", without_email))
    for name, durations in routes.items():
        print(summary(name, durations))
    added = statistics.mean(with_email) - statistics.mean(without_email)
    print(f"\nIssuing adds {added:.1f} ms to the mean approval ({len(uids)} assertions issued).")


if __name__ == "__main__":
    main()
