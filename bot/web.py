"""careerbot's ASGI app: one Starlette application for every HTTP entry point.

Adapters and features contribute routes (the Telegram webhook, Slack's event
and interaction endpoints, badge verification, supervisor forms); the app adds
a health endpoint that checks the database. ``careerbot serve`` runs it under
uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from bot.engine import Engine

logger = logging.getLogger(__name__)

RouteProvider = Callable[[Engine], Sequence[BaseRoute]]
"""A function that returns the routes one feature serves for an engine."""


HEALTH_TIMEOUT_SECONDS = 10.0
"""Longest a health check waits for the database; the connect timeout setting usually ends it sooner."""


def _check_database(engine: Engine) -> None:
    with engine.session_factory() as session:
        session.execute(text("SELECT 1"))


def health_route(engine: Engine) -> Route:
    """Build ``GET /healthz``: 200 when the database answers, 503 when it does not.

    The query runs in a worker thread, so a database that does not answer
    never blocks the event loop. Only changes between healthy and unhealthy
    are logged, not every failed check.
    """
    healthy = True

    async def health(request: Request) -> JSONResponse:
        nonlocal healthy
        try:
            await asyncio.wait_for(asyncio.to_thread(_check_database, engine), HEALTH_TIMEOUT_SECONDS)
        except Exception as exc:  # any database failure makes the worker unhealthy
            if healthy:
                logger.error("health check failed, the database is unreachable: %s: %s", type(exc).__name__, exc)
            healthy = False
            return JSONResponse({"status": "unhealthy", "database": "unreachable"}, status_code=503)
        if not healthy:
            logger.info("health check passed again: the database is reachable")
        healthy = True
        return JSONResponse({"status": "ok", "database": "ok"})

    return Route("/healthz", health, methods=["GET"])


def create_app(engine: Engine, providers: Sequence[RouteProvider] = (), **starlette_options) -> Starlette:
    """Build the ASGI app with the health route and the routes of each provider."""
    routes: list[BaseRoute] = [health_route(engine)]
    for provider in providers:
        routes.extend(provider(engine))
    return Starlette(routes=routes, **starlette_options)
