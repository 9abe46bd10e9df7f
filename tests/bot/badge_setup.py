"""Earn badges through the real engine, and open the badge web routes with a test client.

The helpers drive the whole path a learner takes: plan, reflection,
reviewer approval. They return what tests need to inspect the Open Badges
that the approval issued.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from bot.app import build_engine
from bot.config import load_settings
from bot.engine import Engine
from bot.flows import default_flows_dir
from bot.models import BadgeAssertion, BadgeAward
from bot.verify_web import web_routes
from bot.web import create_app
from tests.bot.scripted import REFLECTION, Chat, active_items, approve

FIRST_ITEM = "use-career-services"

SVG_IMAGE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200" viewBox="0 0 200 200">'
    '<circle cx="100" cy="100" r="90" fill="#1d3f72"/></svg>\n'
)


def earn_item_badge(engine: Engine, user: str = "ana", item_key: str = FIRST_ITEM,
                    reflection: str = REFLECTION, **plan_overrides: str) -> Chat:
    """Finish the plan, submit a reflection for ``item_key`` and have a reviewer approve it."""
    chat = Chat(engine, user)
    chat.finish_plan(**plan_overrides)
    submission_id = chat.submit_reflection(item_key, reflection)
    approve(engine, submission_id)
    return chat


def earn_level(engine: Engine, chat: Chat, level: int) -> list:
    """Submit and approve every active item of ``level``; return the messages of the approvals."""
    messages = []
    for item in active_items(engine, chat.user):
        if item.level == level and item.status != "approved":
            submission_id = chat.submit_reflection(item.item_key)
            messages += approve(engine, submission_id)
    return messages


def assertions_of(engine: Engine) -> list[BadgeAssertion]:
    with engine.session_factory() as session:
        return list(session.scalars(
            select(BadgeAssertion).options(selectinload(BadgeAssertion.award)).order_by(BadgeAssertion.id)
        ))


def awards_of(engine: Engine) -> list[BadgeAward]:
    with engine.session_factory() as session:
        return list(session.scalars(select(BadgeAward).order_by(BadgeAward.id)))


def client_for(engine: Engine) -> httpx.AsyncClient:
    """An HTTP client that calls the badge routes in process; use it with ``async with``."""
    app = create_app(engine, [web_routes])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=engine.settings.public_base_url)


def custom_flows(tmp_path: Path, *, level_1_validity_days: int | None = None, level_1_svg: bool = False) -> Path:
    """Copy the shipped flows and change the Level 1 badge: a validity period, an SVG image."""
    target = tmp_path / "flows"
    shutil.copytree(default_flows_dir(), target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    catalog_path = target / "catalog.yaml"
    catalog = yaml.safe_load(catalog_path.read_text(encoding="utf-8"))
    badge = catalog["levels"][0]["badge"]
    if level_1_validity_days is not None:
        badge["validity_days"] = level_1_validity_days
    if level_1_svg:
        (target / "badges").mkdir()
        (target / "badges" / "level-1.svg").write_text(SVG_IMAGE, encoding="utf-8")
        badge["image"] = "badges/level-1.svg"
    catalog_path.write_text(yaml.safe_dump(catalog, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return target


@pytest.fixture
def make_engine(tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    """Build engines with extra settings (a flows folder, a base URL, a key file); dispose them after the test."""
    built: list[Engine] = []

    def make(**settings_values) -> Engine:
        settings = load_settings(
            environ={},
            data_dir=tmp_path / "data",
            reviewers=("console:reviewer", "console:reviewer2"),
            coordinators=("console:coordinator",),
            **settings_values,
        )
        built.append(build_engine(settings))
        return built[-1]

    yield make
    for engine in built:
        engine.session_factory.kw["bind"].dispose()
