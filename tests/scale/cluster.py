"""Real careerbot processes on loopback for the fault tests: serve workers, job workers and a webhook driver.

:class:`Cluster` starts ``careerbot serve`` (one uvicorn worker each, on its
own port) and ``careerbot worker`` processes against one PostgreSQL database,
configured for Telegram webhooks and ``job_queue: procrastinate``. Each
process sends its Bot API calls under its own tag, so the test can tell which
process (and which run of it, after a restart) sent a message. Processes can
be killed with SIGKILL and started again.

:class:`WebhookDriver` posts Telegram updates to the webhook as Telegram
would: with the secret token, and again (to any serve worker that is up)
after a connection error, a time-out or a 5xx response, until one responds 200.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

from bot.models import Learner, PathwayItem, Submission
from tests.scale.bot_api import TOKEN, BotApi

SECRET = "fault-test-secret"
REVIEWER_ID = 9000
STARTUP_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Process:
    """One careerbot process; ``runs`` counts its starts, and each run has its own Bot API tag."""

    name: str
    kind: str
    port: int | None = None
    runs: int = 0
    popen: subprocess.Popen | None = None
    killed_tags: list[str] = field(default_factory=list)

    @property
    def tag(self) -> str:
        return f"{self.name}-run{self.runs}"

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


class Cluster:
    """Starts, kills and restarts careerbot processes that share ``database_url``."""

    def __init__(self, database_url: str, directory: Path, bot_api: BotApi, *, extra_env: dict | None = None) -> None:
        self.database_url = database_url
        self.directory = directory
        self.bot_api = bot_api
        self.extra_env = extra_env or {}
        self.processes: list[Process] = []
        self.killed_tags: set[str] = set()

    def env(self, process: Process) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("CAREERBOT_")}
        env.update({
            "CAREERBOT_DATABASE_URL": self.database_url,
            "CAREERBOT_DATA_DIR": str(self.directory / "data"),
            "CAREERBOT_FORM_SECRET": "f" * 40,
            "CAREERBOT_JOB_QUEUE": "procrastinate",
            "CAREERBOT_TELEGRAM_TOKEN": TOKEN,
            "CAREERBOT_TELEGRAM_MODE": "webhook",
            "CAREERBOT_TELEGRAM_WEBHOOK_SECRET": SECRET,
            "CAREERBOT_TELEGRAM_BASE_URL": self.bot_api.base_url(process.tag),
            "CAREERBOT_TELEGRAM_BASE_FILE_URL": self.bot_api.base_file_url(process.tag),
            "CAREERBOT_TELEGRAM_RATE_LIMITS": "false",
            "CAREERBOT_REVIEWERS": f"telegram:{REVIEWER_ID}",
            "CAREERBOT_REVIEWER_CHATS": f"telegram={REVIEWER_ID}",
            "CAREERBOT_COORDINATORS": "telegram:9001",
            "CAREERBOT_NUDGE_CHECK_MINUTES": "0",
            "CAREERBOT_DATABASE_CONNECT_TIMEOUT": "2",
            "CAREERBOT_LOG_FORMAT": "json",
            "PTB_TIMEDELTA": "true",
        })
        env.update(self.extra_env)
        if process.port is not None:
            env["CAREERBOT_LISTEN_PORT"] = str(process.port)
        return env

    def add_serve(self, name: str) -> Process:
        process = Process(name, "serve", port=free_port())
        self.processes.append(process)
        return process

    def add_worker(self, name: str) -> Process:
        process = Process(name, "worker")
        self.processes.append(process)
        return process

    @property
    def serves(self) -> list[Process]:
        return [process for process in self.processes if process.kind == "serve"]

    def launch(self, process: Process) -> None:
        process.runs += 1
        command = [sys.executable, "-m", "bot.cli", process.kind]
        if process.kind == "serve":
            command += ["--workers", "1"]
        log = open(self.directory / f"{process.tag}.log", "wb")
        process.popen = subprocess.Popen(command, env=self.env(process), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        log.close()

    async def start(self, process: Process) -> None:
        self.launch(process)
        if process.kind == "serve":
            await self.wait_ready(process)

    async def wait_ready(self, process: Process) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not process.alive:
                    raise RuntimeError(f"{process.tag} exited with {process.popen.returncode}; "
                                       f"see {self.directory / (process.tag + '.log')}")
                try:
                    response = await client.get(f"http://127.0.0.1:{process.port}/healthz")
                    if response.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{process.tag} did not answer /healthz within {STARTUP_SECONDS:.0f} s")

    def kill(self, process: Process) -> None:
        """Kill the process with SIGKILL, as an out-of-memory killer or a lost host would."""
        if process.alive:
            process.popen.send_signal(signal.SIGKILL)
            process.popen.wait()
            self.killed_tags.add(process.tag)

    async def stop_all(self) -> None:
        for process in self.processes:
            if process.alive:
                process.popen.send_signal(signal.SIGTERM)
        for process in self.processes:
            if process.popen is not None:
                try:
                    await asyncio.to_thread(process.popen.wait, 20)
                except subprocess.TimeoutExpired:
                    process.popen.kill()
                    process.popen.wait()

    def log_text(self) -> str:
        return "\n".join(path.read_text(errors="replace")[-3000:] for path in sorted(self.directory.glob("*.log")))


class WebhookDriver:
    """Builds Telegram updates and posts them to the serve workers until one is accepted."""

    def __init__(self, cluster: Cluster, client: httpx.AsyncClient, *, seed: int = 7) -> None:
        self.cluster = cluster
        self.client = client
        self.random = random.Random(seed)
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self.attempts = 0
        self.rejected = 0
        """Deliveries that got a 5xx response, a connection error or a time-out."""

    def message(self, user_id: int, text: str) -> dict:
        return {"update_id": next(self._update_ids), "message": {
            "message_id": next(self._message_ids), "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": f"Learner {user_id}"},
            "from": {"id": user_id, "is_bot": False, "first_name": f"Learner {user_id}"},
            "text": text,
        }}

    def press(self, user_id: int, data: str) -> dict:
        update_id = next(self._update_ids)
        return {"update_id": update_id, "callback_query": {
            "id": f"query-{update_id}", "chat_instance": f"chat-{user_id}", "data": data,
            "from": {"id": user_id, "is_bot": False, "first_name": f"Learner {user_id}"},
            "message": {"message_id": next(self._message_ids), "date": int(time.time()),
                        "chat": {"id": user_id, "type": "private", "first_name": f"Learner {user_id}"},
                        "from": {"id": 7000000001, "is_bot": True, "first_name": "Career Bot"},
                        "text": "Choose one"},
        }}

    async def post(self, process: Process, update: dict) -> int | None:
        """Post once; return the status code, or None when the request did not complete."""
        self.attempts += 1
        try:
            response = await self.client.post(f"http://127.0.0.1:{process.port}/telegram/webhook", json=update,
                                              headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        except httpx.TransportError:
            self.rejected += 1
            return None
        if response.status_code >= 500:
            self.rejected += 1
        return response.status_code

    async def deliver(self, update: dict, *, prefer: Process | None = None, timeout: float = 120.0) -> None:
        """Post ``update`` until a serve worker accepts it, as Telegram redelivers."""
        deadline = time.monotonic() + timeout
        target = prefer
        while time.monotonic() < deadline:
            live = [process for process in self.cluster.serves if process.alive]
            if target is None or not target.alive:
                target = self.random.choice(live) if live else None
            if target is not None:
                status = await self.post(target, update)
                if status == 200:
                    return
                if status is not None and status < 500:
                    raise AssertionError(f"update {update['update_id']} rejected with {status}")
            target = None
            await asyncio.sleep(0.2)
        raise TimeoutError(f"update {update['update_id']} was not accepted within {timeout:.0f} s")


class Database:
    """Direct reads of the test database (not through the proxy)."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(make_url(url), pool_size=2)

    def state(self, user_id: int) -> str | None:
        with self.engine.connect() as connection:
            return connection.scalar(select(Learner.state).where(Learner.platform == "telegram",
                                                                 Learner.platform_user_id == str(user_id)))

    def item_id(self, user_id: int, item_key: str) -> int:
        with self.engine.connect() as connection:
            return connection.scalar(
                select(PathwayItem.id).join(Learner, Learner.id == PathwayItem.learner_id)
                .where(Learner.platform_user_id == str(user_id), PathwayItem.item_key == item_key)
            )

    def submission_id(self, user_id: int) -> int | None:
        with self.engine.connect() as connection:
            return connection.scalar(
                select(Submission.id).join(Learner, Learner.id == Submission.learner_id)
                .where(Learner.platform_user_id == str(user_id), Submission.status != "draft")
                .order_by(Submission.id.desc()).limit(1)
            )

    def dispose(self) -> None:
        self.engine.dispose()
