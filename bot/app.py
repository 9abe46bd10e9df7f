"""Assemble the core from settings: flows, database, migrations, engine."""

from __future__ import annotations

from bot import db
from bot.config import Settings
from bot.engine import Engine
from bot.flows import load_flows


def build_engine(settings: Settings, *, migrate: bool = True) -> Engine:
    """Load and validate the flows, open the database, apply migrations, build the engine.

    Raises:
        bot.flows.FlowsInvalid: the flows have errors.
    """
    flows = load_flows(settings.flows_dir)
    database = db.make_engine(settings.resolved_database_url, connect_timeout=settings.database_connect_timeout)
    if migrate:
        db.upgrade(database)
    return Engine(flows, settings, db.make_session_factory(database))
