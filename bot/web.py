"""careerbot's ASGI app: one Starlette application for every HTTP entry point.

Adapters and features contribute routes (the Telegram webhook, Slack's event
and interaction endpoints, badge verification, supervisor forms); the app adds
a health endpoint that checks the database. ``careerbot serve`` runs it under
uvicorn.
"""

from __future__ import annotations

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


def health_route(engine: Engine) -> Route:
    async def health(request: Request) -> JSONResponse:
        try:
            with engine.session_factory() as session:
                session.execute(text("SELECT 1"))
        except Exception as exc:  # any database failure makes the worker unhealthy
            logger.warning("health check failed: %s", type(exc).__name__)
            return JSONResponse({"status": "unhealthy", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    return Route("/healthz", health, methods=["GET"])


def create_app(engine: Engine, providers: Sequence[RouteProvider] = (), **starlette_options) -> Starlette:
    """Build the ASGI app with the health route and the routes of each provider."""
    routes: list[BaseRoute] = [health_route(engine)]
    for provider in providers:
        routes.extend(provider(engine))
    return Starlette(routes=routes, **starlette_options)
