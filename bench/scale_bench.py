"""Measure careerbot on PostgreSQL with 1 and 2 uvicorn workers, and with 1,000 and 1,000,000 stored learners.

Each run starts ``careerbot serve --workers N`` (Telegram webhook mode,
``job_queue: procrastinate``) and one ``careerbot worker`` that sends the
replies to a loopback Bot API stand-in. This process is the load generator:
simulated learners post Telegram updates with the webhook secret over
loopback, each learner waiting for the 200 of one update before it sends the
next (``--concurrency`` learners at once). Latency runs from sending a request
to its 200, which comes after the update and its replies are committed.

Parts:

1. Throughput: updates per second, p50 and p99 latency with 1 and then 2
   uvicorn workers, and the 2-worker/1-worker ratio.
2. Per-message cost: one request at a time to 1 uvicorn worker, with 1,000
   and with 1,000,000 learners stored (seeded with INSERT .. SELECT
   generate_series). Both databases and servers run side by side and the
   rounds alternate between them. Cost is the mean latency and the serve
   process's CPU time per update (user + system, from /proc).

The load generator, PostgreSQL, the job worker and the serve workers share
the machine's cores, so the ratio is what this machine gives, not what more
cores would. The throughput table shows how many cores each of them used
(CPU seconds per wall second; "postgres" counts every PostgreSQL process on
the machine, also those serving other clients).

Usage:
    python bench/scale_bench.py
    python bench/scale_bench.py --updates 1500 --concurrency 32 --big 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import db, jobs  # noqa: E402
from tests.bot.scripted import plan_answers  # noqa: E402
from tests.scale.bot_api import TOKEN, BotApi  # noqa: E402
from tests.scale.cluster import SECRET, free_port  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PLAN_STATES = ("consent", "name", "email", "campus", "timezone", "interests", "target_role", "values",
               "transferable_skills")


def learner_texts(user_id: int) -> list[str]:
    answers = plan_answers(name=f"Learner {user_id}", email=f"l{user_id}@example.edu")
    return ["/start", *(answers[state] for state in PLAN_STATES)]


class Server:
    """``careerbot serve`` and ``careerbot worker`` processes for one run."""

    def __init__(self, url: str, workers: int, bot_api: BotApi, directory: Path) -> None:
        self.url = url
        self.workers = workers
        self.port = free_port()
        self.bot_api = bot_api
        self.directory = directory
        self.processes: list[subprocess.Popen] = []

    def env(self, tag: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("CAREERBOT_")}
        env.update({
            "CAREERBOT_DATABASE_URL": self.url, "CAREERBOT_DATA_DIR": str(self.directory),
            "CAREERBOT_FORM_SECRET": "b" * 40, "CAREERBOT_JOB_QUEUE": "procrastinate",
            "CAREERBOT_TELEGRAM_TOKEN": TOKEN, "CAREERBOT_TELEGRAM_MODE": "webhook",
            "CAREERBOT_TELEGRAM_WEBHOOK_SECRET": SECRET, "CAREERBOT_TELEGRAM_RATE_LIMITS": "false",
            "CAREERBOT_TELEGRAM_BASE_URL": self.bot_api.base_url(tag),
            "CAREERBOT_TELEGRAM_BASE_FILE_URL": self.bot_api.base_file_url(tag),
            "CAREERBOT_NUDGE_CHECK_MINUTES": "0", "CAREERBOT_LOG_LEVEL": "WARNING",
            "CAREERBOT_LISTEN_PORT": str(self.port), "PTB_TIMEDELTA": "true",
        })
        return env

    async def start(self) -> None:
        log = open(self.directory / f"serve-{self.workers}.log", "ab")
        self.processes.append(subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--workers", str(self.workers)],
            env=self.env("serve"), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        self.processes.append(subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "worker"],
            env=self.env("worker"), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        log.close()
        async with httpx.AsyncClient(timeout=2.0) as client:
            for _ in range(600):
                try:
                    if (await client.get(f"http://127.0.0.1:{self.port}/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError("careerbot serve did not start; see " + str(self.directory))

    def serve_cpu_seconds(self) -> float:
        """User + system CPU time of the serve process and its uvicorn workers."""
        serve = self.processes[0]
        return cpu_seconds([serve.pid, *_children(serve.pid)])

    def worker_cpu_seconds(self) -> float:
        return cpu_seconds([self.processes[1].pid])

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` from /proc, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def postgres_pids() -> list[int]:
    """Every PostgreSQL server process on this machine, the benchmark's and any other client's."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "postgres":
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


async def drive(port: int, first_user: int, learners: int, updates: int, concurrency: int) -> list[float]:
    """Post ``updates`` updates from ``learners`` learners, ``concurrency`` at once; return latencies (s)."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for user_id in range(first_user, first_user + learners):
        queue.put_nowait(user_id)
    latencies: list[float] = []
    update_ids = iter(range(first_user * 100, first_user * 100 + 10 ** 7))
    url = f"http://127.0.0.1:{port}/telegram/webhook"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        async def learner() -> None:
            while len(latencies) < updates and not queue.empty():
                user_id = queue.get_nowait()
                for message_text in learner_texts(user_id):
                    if len(latencies) >= updates:
                        return
                    update = {"update_id": next(update_ids), "message": {
                        "message_id": 1, "date": int(time.time()), "text": message_text,
                        "chat": {"id": user_id, "type": "private", "first_name": "L"},
                        "from": {"id": user_id, "is_bot": False, "first_name": "L"}}}
                    started = time.perf_counter()
                    await post_update(client, url, update)
                    latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(learner() for _ in range(concurrency)))
    return latencies


COST_ROUNDS = 4
"""Rounds of the per-message cost runs, alternating between the two databases."""
TRANSPORT_ERRORS: list[str] = []
"""Requests sent again after a connection error, as Telegram would (a keep-alive connection the server closed)."""


async def post_update(client: httpx.AsyncClient, url: str, update: dict, attempts: int = 3) -> None:
    for attempt in range(1, attempts + 1):
        try:
            response = await client.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        except httpx.TransportError as exc:
            TRANSPORT_ERRORS.append(type(exc).__name__)
            if attempt == attempts:
                raise
            continue
        if response.status_code != 200:
            raise RuntimeError(f"update rejected with status {response.status_code}")
        return


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def seed_learners(url: str, count: int) -> float:
    """Store ``count`` learners who finished their plan; return the seconds it took."""
    started = time.perf_counter()
    engine = create_engine(make_url(url))
    with engine.begin() as connection:
        columns = connection.execute(text(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'learners' "
            "AND is_nullable = 'NO' AND column_default IS NULL AND column_name NOT IN "
            "('platform', 'platform_user_id', 'chat_id', 'state')"
        )).all()
        values = {"character varying": "'seed'", "text": "'seed'", "json": "'{}'::json", "jsonb": "'{}'::jsonb",
                  "boolean": "false", "integer": "0", "timestamp with time zone": "now()",
                  "timestamp without time zone": "now()"}
        names = ", ".join(name for name, _ in columns)
        selected = ", ".join(values[data_type] for _, data_type in columns)
        connection.execute(text(
            f"INSERT INTO learners (platform, platform_user_id, chat_id, state, {names}) "
            f"SELECT 'telegram', 's' || n, 's' || n, 'home', {selected} FROM generate_series(1, :count) AS n"
        ), {"count": count})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE learners"))
    engine.dispose()
    return time.perf_counter() - started


def create_database(base_url: str) -> str:
    name = f"careerbot_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(db.make_engine(base_url).url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    database = db.make_engine(url)
    db.upgrade(database)
    jobs.apply_schema(database)
    database.dispose()
    return url


def drop_database(base_url: str, url: str) -> None:
    admin = create_engine(db.make_engine(base_url).url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


async def throughput(args, bot_api: BotApi, directory: Path) -> dict[int, tuple[float, float, float]]:
    results = {}
    for workers in (1, 2):
        url = create_database(args.database_url)
        seed_learners(url, args.small)
        server = Server(url, workers, bot_api, directory)
        try:
            await server.start()
            await drive(server.port, 10_000, args.concurrency, args.concurrency * 2, args.concurrency)  # warm-up
            before = (server.serve_cpu_seconds(), server.worker_cpu_seconds(), cpu_seconds(postgres_pids()),
                      time.process_time())
            started = time.perf_counter()
            latencies = await drive(server.port, 100_000, args.updates, args.updates, args.concurrency)
            elapsed = time.perf_counter() - started
            after = (server.serve_cpu_seconds(), server.worker_cpu_seconds(), cpu_seconds(postgres_pids()),
                     time.process_time())
        finally:
            server.stop()
            drop_database(args.database_url, url)
        results[workers] = (len(latencies) / elapsed, percentile(latencies, 0.5), percentile(latencies, 0.99))
        cores = " | ".join(f"{(end - start) / elapsed:.2f}" for start, end in zip(before, after))
        print(f"| {workers} | {len(latencies)} | {results[workers][0]:.1f} | {results[workers][1] * 1000:.1f} | "
              f"{results[workers][2] * 1000:.1f} | {cores} |", flush=True)
    return results


async def cost(args, bot_api: BotApi, directory: Path) -> dict[int, tuple[float, float]]:
    """Run both stored sizes side by side, alternating rounds, so that drift in the machine's load hits both."""
    sizes = (args.small, args.big)
    urls, servers, seed_seconds = {}, {}, {}
    try:
        for stored in sizes:
            urls[stored] = create_database(args.database_url)
            seed_seconds[stored] = seed_learners(urls[stored], stored)
            servers[stored] = Server(urls[stored], 1, bot_api, directory)
            await servers[stored].start()
            await drive(servers[stored].port, 10_000, 5, 50, 1)  # warm-up
        latencies: dict[int, list[float]] = {stored: [] for stored in sizes}
        cpu = dict.fromkeys(sizes, 0.0)
        per_round = max(1, args.cost_updates // COST_ROUNDS)
        for round_number in range(COST_ROUNDS):
            for stored in sizes:
                server = servers[stored]
                before = server.serve_cpu_seconds()
                first_user = 200_000 + round_number * 10_000
                latencies[stored] += await drive(server.port, first_user, per_round, per_round, 1)
                cpu[stored] += server.serve_cpu_seconds() - before
    finally:
        for server in servers.values():
            server.stop()
        for url in urls.values():
            drop_database(args.database_url, url)

    results = {}
    for stored in sizes:
        values = latencies[stored]
        results[stored] = (statistics.fmean(values) * 1000, cpu[stored] / len(values) * 1000)
        print(f"| {stored:,} | {seed_seconds[stored]:.1f} | {len(values)} | {results[stored][0]:.2f} | "
              f"{percentile(values, 0.5) * 1000:.2f} | {percentile(values, 0.99) * 1000:.2f} | "
              f"{results[stored][1]:.2f} |", flush=True)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("CAREERBOT_TEST_POSTGRES_URL", DEFAULT_URL),
                        help="PostgreSQL server to create the benchmark databases on (default: %(default)s)")
    parser.add_argument("--updates", type=int, default=1500, help="updates per throughput run (default: 1500)")
    parser.add_argument("--concurrency", type=int, default=32, help="learners sending at once (default: 32)")
    parser.add_argument("--cost-updates", type=int, default=400,
                        help="updates per per-message cost run (default: 400)")
    parser.add_argument("--small", type=int, default=1_000, help="learners stored in the small run (default: 1000)")
    parser.add_argument("--big", type=int, default=1_000_000, help="learners stored in the big run (default: 1000000)")
    args = parser.parse_args()

    print(f"python {platform.python_version()}, {os.cpu_count()} CPU(s), {platform.machine()}")
    bot_api = BotApi()
    await bot_api.start()
    try:
        with tempfile.TemporaryDirectory(prefix="careerbot-bench-") as directory:
            print("\n| uvicorn workers | updates | updates/s | p50 ms | p99 ms | cores: serve | job worker | "
                  "postgres | load generator |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
            results = await throughput(args, bot_api, Path(directory))
            print(f"\n2-worker/1-worker throughput ratio: {results[2][0] / results[1][0]:.2f} (target >= 1.5)")
            print(f"requests sent again after a connection error: {len(TRANSPORT_ERRORS)}")

            print("\n| stored learners | seed s | updates | mean ms | p50 ms | p99 ms | serve CPU ms/update |\n"
                  "| --- | --- | --- | --- | --- | --- | --- |")
            costs = await cost(args, bot_api, Path(directory))
            small, big = costs[args.small], costs[args.big]
            print(f"\nper-message cost at {args.big:,} / at {args.small:,}: latency {big[0] / small[0]:.3f}, "
                  f"CPU {big[1] / small[1]:.3f} (target <= 1.10)")
    finally:
        await bot_api.stop()


if __name__ == "__main__":
    asyncio.run(main())
