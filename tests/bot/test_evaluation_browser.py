"""The supervisor evaluation form in a real browser: headless Chromium fills it in and sends it.

The page is served by uvicorn on 127.0.0.1 and Chromium shows it at a phone's
width (412 CSS pixels, through the DevTools device metrics override). The page
has no script, and its Content-Security-Policy forbids any, so it works as it
would with JavaScript turned off. (Turning JavaScript off in Chromium as well
stops chromedriver from seeing the form's navigation at that width.) The
screenshots go to the folder in ``CAREERBOT_TEST_ARTIFACTS`` (or the test's
temporary folder). The tests use the system's Chromium and chromedriver
(Debian packages ``chromium`` and ``chromium-driver``) and skip without them.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from bot.evaluation_requests import LINK_PATH
from bot.server import route_providers
from bot.web import create_app
from tests.bot.scripted import Chat, find_item
from tests.bot.supervisor_steps import ITEM_KEY, evaluation_submissions, request_link

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PHONE = {"width": 412, "height": 915}
STARTUP_TIMEOUT_SECONDS = 10
# A form post can start its navigation after chromedriver's click returns, so
# the tests wait for what the next page shows rather than reading it at once.
PAGE_TIMEOUT_SECONDS = 30

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason=f"browser tests need {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)",
)


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = os.environ.get("CAREERBOT_TEST_ARTIFACTS")
    path = Path(folder) / "evaluation-form" if folder else tmp_path
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def live_server(engine) -> Iterator[str]:
    """Serve careerbot's web app with uvicorn on a free loopback port, in a thread."""
    app = create_app(engine, route_providers(engine.settings))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(STARTUP_TIMEOUT_SECONDS)
    listener.close()


@pytest.fixture
def browser(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run",
                     "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {**PHONE, "deviceScaleFactor": 2, "mobile": True})
    yield driver
    driver.quit()


def save_full_page(driver, path: Path) -> None:
    """Save a screenshot of the whole page, not only the visible part (Chrome DevTools Protocol)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png",
        "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
    })
    path.write_bytes(base64.b64decode(shot["data"]))


def evaluate(driver, expression: str):
    return driver.execute_cdp_cmd("Runtime.evaluate", {"expression": expression})["result"]["value"]


def wait_for(driver, condition):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, PAGE_TIMEOUT_SECONDS).until(condition)


def click_label(driver, field_id: str) -> None:
    """Choose an option by its label, as a person does; this fails when the label is not tied to it."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f'label[for="{field_id}"]').click()


def test_browser_fills_and_sends_form(engine, live_server, browser, artifacts):
    from selenium.webdriver.common.by import By

    token = request_link(Chat(engine, "ana"))
    rubric = engine.flows.catalog.evaluation_rubric
    browser.get(live_server + LINK_PATH + token)
    assert browser.title == "Work placement evaluation for Ana - Career Prepared"
    assert evaluate(browser, "window.innerWidth") == PHONE["width"]
    assert evaluate(browser, "document.documentElement.scrollWidth") == PHONE["width"]
    assert evaluate(browser, "document.scripts.length") == 0

    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    summary = wait_for(browser, lambda driver: driver.find_element(By.CSS_SELECTOR, ".error-summary"))
    assert "Choose a rating for Quality of work." in summary.text
    assert browser.title.startswith("Error: ")
    save_full_page(browser, artifacts / "evaluation-form-errors.png")

    for criterion in rubric.criteria:
        click_label(browser, f"rating-{criterion.id}-4")
    browser.find_element(By.ID, f"comment-{rubric.criteria[0].id}").send_keys("Accurate <b>and</b> careful.")
    click_label(browser, f"recommendation-{rubric.recommendations[0].id}")
    browser.find_element(By.ID, "evaluator-name").send_keys("Maria Lopez")
    browser.find_element(By.ID, "evaluator-title").send_keys("Operations Manager")
    click_label(browser, "consent")
    assert browser.find_element(By.ID, "consent").is_selected()
    save_full_page(browser, artifacts / "evaluation-form-filled.png")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    wait_for(browser, lambda driver: driver.title.startswith("Thank you"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Thank you"
    save_full_page(browser, artifacts / "evaluation-form-sent.png")
    [submission] = evaluation_submissions(engine)
    assert "Comment: Accurate <b>and</b> careful." in submission.text
    assert find_item(engine, "ana", ITEM_KEY).status == "submitted"
    for name in ("evaluation-form-errors.png", "evaluation-form-filled.png", "evaluation-form-sent.png"):
        assert (artifacts / name).read_bytes().startswith(b"\x89PNG")


def test_browser_used_link_shows_page(engine, live_server, browser, artifacts):
    from selenium.webdriver.common.by import By

    token = request_link(Chat(engine, "ana"))
    Chat(engine, "ana").send("/supervisor revoke")

    browser.get(live_server + LINK_PATH + token)

    assert browser.find_element(By.TAG_NAME, "h1").text == "Link cancelled"
    assert "Ana" not in browser.page_source
    save_full_page(browser, artifacts / "evaluation-link-cancelled.png")
