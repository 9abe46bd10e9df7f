"""``careerbot serve``: the web app under uvicorn, with the routes the configuration enables."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from bot import evaluation_web, metrics, verify_web
from bot.app import build_engine
from bot.config import Settings, load_settings
from bot.web import RouteProvider, create_app

logger = logging.getLogger(__name__)


def route_providers(settings: Settings) -> list[RouteProvider]:
    """Pick the route providers for the configured platforms and features."""
    providers: list[RouteProvider] = [verify_web.web_routes, evaluation_web.web_routes, metrics.web_routes]
    # Each feature module adds itself here as it is built: the Telegram webhook
    # (adapters.telegram.web_routes) and Slack HTTP mode (adapters.slack.web_routes).
    # Badge verification and the supervisor evaluation form are always on.
    if settings.telegram_token and settings.telegram_mode == "webhook":
        from adapters.telegram import web_routes as telegram_routes

        providers.append(telegram_routes)
    if settings.slack_bot_token and settings.slack_signing_secret and settings.slack_mode == "http":
        from adapters.slack import web_routes as slack_routes

        providers.append(slack_routes)
    return providers


def build_app(settings: Settings | None = None) -> Starlette:
    """Build the ASGI app from settings (from the environment when not given)."""
    settings = settings or load_settings()
    engine = build_engine(settings)
    if settings.outbox_delivered_in_process:
        return create_app(engine, route_providers(settings))

    # job_queue: procrastinate. careerbot worker processes send the replies;
    # this process queues a delivery job after each update that wrote some.
    from bot import jobs

    jobs.apply_schema(engine.session_factory.kw["bind"])
    delivery_queue = jobs.DeliveryQueue(jobs.build_job_app(settings), settings)
    engine.handled_hooks.append(delivery_queue)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        delivery_queue.close()

    return create_app(engine, route_providers(settings), lifespan=lifespan)


def serve(settings: Settings, *, workers: int = 1) -> int:
    import uvicorn

    logger.info("serving on %s:%d with %d worker(s)", settings.listen_host, settings.listen_port, workers)
    if workers > 1:
        # Each worker process builds its own app from the environment.
        uvicorn.run("bot.server:build_app", factory=True, host=settings.listen_host, port=settings.listen_port,
                    workers=workers)
    else:
        uvicorn.run(build_app(settings), host=settings.listen_host, port=settings.listen_port)
    return 0
