"""The 1EdTech Open Badges 2.0 validator on assertions that careerbot serves on loopback.

The validator (``openbadges`` 1.1.2 on PyPI) runs only on Python 3.7, so it
lives in a virtual environment of its own, and these tests skip unless
``CAREERBOT_OB_VALIDATOR_PYTHON`` names that environment's python.

The validator loads the Open Badges JSON-LD context from w3id.org. The test
serves a stored copy on loopback instead, and the runner script maps the
context URL to it. The copy, ``data/openbadges-v2-context.json``, is the
context that the validator package 1.1.2 ships in
``openbadges/verifier/openbadges_context.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path

import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.openbadges import BadgeUrls
from bot.verify_web import web_routes
from bot.web import create_app
from tests.bot.badge_setup import assertions_of, earn_item_badge, make_engine  # noqa: F401 (a fixture)
from tests.bot.scripted import Chat

VALIDATOR_ENV = "CAREERBOT_OB_VALIDATOR_PYTHON"
HERE = Path(__file__).parent
CONTEXT_FILE = HERE / "data" / "openbadges-v2-context.json"
RUNNER = HERE / "ob_validator_runner.py"
CONTEXT_PATH = "/test-context/openbadges-v2"
VALIDATOR_TIMEOUT_SECONDS = 120
EMAIL = "alice@example.org"


@pytest.fixture
def validator_python() -> str:
    configured = os.environ.get(VALIDATOR_ENV)
    if not configured:
        pytest.skip(f"the 1EdTech validator tests need {VALIDATOR_ENV}: the python of a Python 3.7 "
                    "virtual environment with 'openbadges==1.1.2' installed (see the README's testing section)")
    if not Path(configured).is_file():
        pytest.skip(f"{VALIDATOR_ENV}={configured} does not exist")
    return configured


def context_routes(engine) -> list[Route]:
    """Serve the stored Open Badges 2.0 context, as w3id.org would."""
    context = CONTEXT_FILE.read_bytes()

    def serve_context(request: Request) -> Response:
        return Response(context, media_type="application/ld+json")

    return [Route(CONTEXT_PATH, serve_context)]


async def validate(python: str, assertion_url: str, context_url: str) -> dict:
    environment = {name: value for name, value in os.environ.items() if "proxy" not in name.lower()}
    process = await asyncio.create_subprocess_exec(
        python, str(RUNNER), assertion_url, context_url, EMAIL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=environment,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), VALIDATOR_TIMEOUT_SECONDS)
    assert process.returncode == 0, stderr.decode(errors="replace")
    return json.loads(stdout)


async def run_validator(python: str, engine, listener: socket.socket, badge_url: str) -> dict:
    """Serve careerbot's badge routes on ``listener`` while the validator checks ``badge_url``."""
    port = listener.getsockname()[1]
    app = create_app(engine, [web_routes, context_routes])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        return await validate(python, badge_url, f"http://127.0.0.1:{port}{CONTEXT_PATH}")
    finally:
        server.should_exit = True
        await task


def messages(result: dict) -> str:
    return "\n".join(f"{entry.get('messageLevel')}: {entry.get('result')}" for entry in result["report"]["messages"])


@pytest.fixture
def listener() -> socket.socket:
    bound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    bound.bind(("127.0.0.1", 0))
    yield bound
    bound.close()


async def test_validator_accepts_hosted_assertion(validator_python, listener, make_engine):
    engine = make_engine(public_base_url=f"http://127.0.0.1:{listener.getsockname()[1]}")
    earn_item_badge(engine, email=EMAIL)
    [assertion] = assertions_of(engine)

    urls = BadgeUrls(engine.settings.public_base_url)

    result = await run_validator(validator_python, engine, listener, urls.assertion(assertion.uid))

    report = result["report"]
    assert report["valid"] is True, messages(result)
    assert report["errorCount"] == 0, messages(result)
    assert report["recipientProfile"] == {"email": EMAIL}
    assert report["warningCount"] == 0, messages(result)
    types = [node.get("type") for node in result["graph"]]
    for expected in ("Assertion", "BadgeClass", "Issuer"):
        assert expected in types


async def test_validator_accepts_baked_png(validator_python, listener, make_engine):
    engine = make_engine(public_base_url=f"http://127.0.0.1:{listener.getsockname()[1]}")
    earn_item_badge(engine, email=EMAIL)
    [assertion] = assertions_of(engine)
    urls = BadgeUrls(engine.settings.public_base_url)

    result = await run_validator(validator_python, engine, listener, urls.baked_image(assertion.uid, "png"))

    assert result["report"]["valid"] is True, messages(result)
    assert result["report"]["validationSubject"] == urls.assertion(assertion.uid)


async def test_validator_rejects_revoked_assertion(validator_python, listener, make_engine):
    engine = make_engine(public_base_url=f"http://127.0.0.1:{listener.getsockname()[1]}")
    earn_item_badge(engine, email=EMAIL)
    [assertion] = assertions_of(engine)
    Chat(engine, "coordinator").send(f"/revoke {assertion.uid} issued to the wrong learner")
    urls = BadgeUrls(engine.settings.public_base_url)

    result = await run_validator(validator_python, engine, listener, urls.assertion(assertion.uid))

    assert result["report"]["valid"] is False, messages(result)
