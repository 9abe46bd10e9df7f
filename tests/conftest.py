"""Shared fixtures: a fresh SQLite database per test, the engine, and a network guard.

The guard makes every connection to a non-loopback address fail, so a test
that forgot to point an SDK at a loopback emulator cannot reach a real
platform. Tests that need PostgreSQL read ``CAREERBOT_TEST_POSTGRES_URL`` and
skip when it is not set.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bot import db
from bot.app import build_engine
from bot.config import Settings, load_settings
from bot.engine import Engine
from bot.events import InboundEvent

POSTGRES_ENV = "CAREERBOT_TEST_POSTGRES_URL"

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_create_connection = socket.create_connection


def _is_loopback(address) -> bool:
    if isinstance(address, (str, bytes)):
        return True  # a Unix socket path
    host = address[0]
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self, address):
    if not _is_loopback(address):
        raise ConnectionRefusedError(f"test network guard: connection to {address!r} is not on loopback")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if not _is_loopback(address):
        raise ConnectionRefusedError(f"test network guard: connection to {address!r} is not on loopback")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def loopback_only() -> Iterator[None]:
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    yield
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        environ={},
        data_dir=tmp_path / "data",
        reviewers=("console:reviewer", "console:reviewer2"),
        coordinators=("console:coordinator",),
    )


@pytest.fixture
def engine(settings: Settings) -> Engine:
    built = build_engine(settings)
    yield built
    built.session_factory.kw["bind"].dispose()


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (for example postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    return url


def make_event(user: str = "ana", text: str | None = None, *, platform: str = "console", chat_id: str | None = None,
               update_id: str | None = None, **fields) -> InboundEvent:
    """Build an inbound event as an adapter would."""
    return InboundEvent(
        platform=platform,
        user_id=user,
        chat_id=chat_id or user,
        update_id=update_id or uuid.uuid4().hex,
        text=text,
        received_at=datetime.now(timezone.utc),
        **fields,
    )


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """Create an empty PostgreSQL database for one test and drop it afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"careerbot_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(db.make_engine(postgres_url).url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_engine(postgres_database: str, tmp_path: Path) -> Iterator[Engine]:
    settings = load_settings(
        environ={},
        data_dir=tmp_path / "data",
        database_url=postgres_database,
        reviewers=("console:reviewer", "console:reviewer2"),
        coordinators=("console:coordinator",),
    )
    built = build_engine(settings)
    yield built
    built.session_factory.kw["bind"].dispose()
