"""Hosted verification routes: JSON-LD at each id, the page for people, revocation, baked downloads."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from bot import baking
from bot.events import Attachment
from bot.models import BadgeAssertion, utcnow
from bot.openbadges import BadgeUrls
from bot.server import route_providers
from bot.verify_web import web_routes
from tests.bot.badge_setup import (
    assertions_of,
    client_for,
    custom_flows,
    earn_item_badge,
    earn_level,
    make_engine,  # noqa: F401
)
from tests.bot.scripted import Chat, approve, find_item, latest_submission
from tests.bot.test_openbadges import check_assertion, check_badge_class, check_required

HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_REFLECTION = 'I used the <img src=x onerror="alert(2)"> career centre & "workshops". ' * 5


def urls_of(engine) -> BadgeUrls:
    return BadgeUrls(engine.settings.public_base_url)


def only_assertion(engine) -> BadgeAssertion:
    [assertion] = assertions_of(engine)
    return assertion


def submit_file(chat: Chat, item_key: str, data: bytes, name: str = "confirmation.pdf") -> int:
    item = find_item(chat.engine, chat.user, item_key)
    chat.send("/submit")
    chat.press(f"submit_item:{item.id}")
    chat.press("submit_kind:file")
    chat.send(attachment=Attachment(filename=name, content_type="application/pdf", size=len(data), data=data))
    chat.press("submit_confirm:send")
    return latest_submission(chat.engine, item.id).id


# --- issuer and badge classes ----------------------------------------------------------------


async def test_issuer_served_as_json_ld(engine):
    async with client_for(engine) as client:
        response = await client.get("/ob/issuer")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/ld+json")
    assert response.headers["access-control-allow-origin"] == "*"
    document = response.json()
    check_required(document, "Issuer")
    assert document["id"] == str(response.url)


@pytest.mark.parametrize("path", [
    "/ob/badges/career-prepared",
    "/ob/badges/introduction-and-foundation",
    "/ob/badges/skill-collaboration",
    "/ob/badges/items/use-career-services",
])
async def test_badge_class_served_at_its_id(engine, path):
    async with client_for(engine) as client:
        response = await client.get(path)
        document = response.json()
        image = await client.get(document["image"])

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/ld+json")
    check_badge_class(document, urls_of(engine))
    assert document["id"] == str(response.url)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(baking.PNG_SIGNATURE)


async def test_framework_page_has_alignment_anchors(engine):
    async with client_for(engine) as client:
        response = await client.get("/ob/framework")

    assert response.status_code == 200
    assert 'id="level-1"' in response.text
    assert 'id="skill-collaboration"' in response.text
    assert "Agrees on goals" in response.text


def test_server_mounts_badge_routes(settings):
    assert web_routes in route_providers(settings)


# --- assertions -------------------------------------------------------------------------------


async def test_assertion_served_at_its_id(engine):
    earn_item_badge(engine)
    assertion = only_assertion(engine)
    urls = urls_of(engine)

    async with client_for(engine) as client:
        response = await client.get(urls.assertion(assertion.uid))
        document = response.json()
        badge = await client.get(document["badge"])
        issuer = await client.get(badge.json()["issuer"])

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/ld+json")
    assert response.headers["cache-control"] == "no-cache"
    check_assertion(document, urls)
    assert document["id"] == str(response.url)
    assert badge.status_code == 200
    assert issuer.status_code == 200
    assert issuer.json()["type"] == "Issuer"


async def test_unknown_and_malformed_ids_answer_404(engine):
    earn_item_badge(engine)
    uid = only_assertion(engine).uid
    unknown = str(uuid.uuid4())
    paths = [
        f"/ob/assertions/{unknown}",
        "/ob/assertions/not-a-uuid",
        f"/ob/assertions/{uid.upper()}",
        f"/ob/assertions/{uid}x",
        "/ob/assertions/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "/ob/assertions/" + "a" * 5000,
        f"/ob/assertions/{unknown}/badge.png",
        f"/ob/assertions/{uid}/badge.svg",
        f"/ob/assertions/{unknown}/credential",
        f"/ob/assertions/{uid}/evidence/1",
        f"/ob/assertions/{uid}/evidence/99999999999999999999",
        f"/verify/{unknown}",
        "/verify/%00",
        "/ob/badges/nope",
        "/ob/badges/items/nope",
        "/ob/badges/nope/image.png",
        "/ob/badges/career-prepared/image.svg",
        "/ob/issuer/keys/not-the-key",
    ]

    async with client_for(engine) as client:
        statuses = {path: (await client.get(path)).status_code for path in paths}

    assert statuses == {path: 404 for path in paths}


async def test_unknown_verification_page_is_html(engine):
    async with client_for(engine) as client:
        response = await client.get(f"/verify/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Badge not found" in response.text


async def test_baked_png_download_carries_served_assertion(engine):
    earn_item_badge(engine)
    assertion = only_assertion(engine)
    urls = urls_of(engine)

    async with client_for(engine) as client:
        served = (await client.get(urls.assertion(assertion.uid))).json()
        download = await client.get(urls.baked_image(assertion.uid, "png"))

    assert download.status_code == 200
    assert download.headers["content-type"] == "image/png"
    assert download.headers["content-disposition"] == 'attachment; filename="use-career-services.png"'
    assert json.loads(baking.unbake_png(download.content)) == served
    assert baking.unbake_png(download.content, baking.OB3_KEYWORD).count(".") == 2


async def test_svg_badge_has_baked_svg_variant(tmp_path, make_engine):
    engine = make_engine(flows_dir=custom_flows(tmp_path, level_1_svg=True))
    chat = Chat(engine, "ana")
    chat.finish_plan()
    earn_level(engine, chat, 1)
    level = next(row for row in assertions_of(engine) if row.award.kind == "level")
    urls = urls_of(engine)

    async with client_for(engine) as client:
        badge_class = (await client.get(urls.badge_class("introduction-and-foundation"))).json()
        image = await client.get(badge_class["image"])
        served = (await client.get(urls.assertion(level.uid))).json()
        svg = await client.get(urls.baked_image(level.uid, "svg"))
        png = await client.get(urls.baked_image(level.uid, "png"))

    assert badge_class["image"].endswith("/image.svg")
    assert image.headers["content-type"].startswith("image/svg+xml")
    assert "sandbox" in image.headers["content-security-policy"]
    assert svg.status_code == 200
    assert json.loads(baking.unbake_svg(svg.text)) == served
    assert json.loads(baking.unbake_png(png.content)) == served


async def test_expired_badge_page_says_expired(engine):
    earn_item_badge(engine)
    assertion = only_assertion(engine)
    with engine.session_factory() as session, session.begin():
        session.execute(update(BadgeAssertion).values(expires_at=utcnow() - timedelta(days=1)))

    async with client_for(engine) as client:
        page = await client.get(urls_of(engine).verify_page(assertion.uid))
        document = (await client.get(urls_of(engine).assertion(assertion.uid))).json()

    assert 'class="status status-expired"' in page.text
    assert "This badge expired on" in page.text
    assert "expires" in document


# --- revocation ---------------------------------------------------------------------------------


async def test_revoked_assertion_answers_410(engine):
    chat = earn_item_badge(engine)
    assertion = only_assertion(engine)
    urls = urls_of(engine)

    coordinator = Chat(engine, "coordinator")
    coordinator.send(f"/revoke {urls.verify_page(assertion.uid)} issued by <mistake>")

    async with client_for(engine) as client:
        response = await client.get(urls.assertion(assertion.uid))
        download = await client.get(urls.baked_image(assertion.uid, "png"))
        credential = await client.get(urls.credential(assertion.uid))
        page = await client.get(urls.verify_page(assertion.uid))

    assert f"Badge {assertion.uid} (Use career services) is revoked" in coordinator.texts()[0]
    assert response.status_code == 410
    assert response.json() == {
        "@context": "https://w3id.org/openbadges/v2",
        "type": "Assertion",
        "id": urls.assertion(assertion.uid),
        "revoked": True,
        "revocationReason": "issued by <mistake>",
    }
    assert download.status_code == 410
    assert credential.status_code == 410
    assert page.status_code == 200
    assert 'class="status status-revoked"' in page.text
    assert 'class="status status-valid"' not in page.text
    assert "issued by &lt;mistake&gt;" in page.text
    assert urls.baked_image(assertion.uid, "png") not in page.text
    learner_notice = [message.text for message in coordinator.last.messages if message.chat_id == chat.chat_id]
    assert learner_notice == ["Your badge Use career services was revoked by the program: issued by <mistake>\n"
                              "Its verification page now shows it as revoked."]


def test_revoke_refused_for_learner(engine):
    chat = earn_item_badge(engine)
    uid = only_assertion(engine).uid

    chat.send(f"/revoke {uid} because I can")

    assert chat.texts()[0] == "Only program coordinators can use that command."
    assert only_assertion(engine).revoked_at is None


@pytest.mark.parametrize("argument, expected", [
    ("", "Type /revoke, the badge's id"),
    ("1b4e28ba-2fa1-41d2-883f-0016d3cca427", "Type /revoke, the badge's id"),
    ("not-an-id some reason", "Type /revoke, the badge's id"),
    ("1b4e28ba-2fa1-41d2-883f-0016d3cca427 some reason",
     "No issued badge has the id 1b4e28ba-2fa1-41d2-883f-0016d3cca427."),
    ("1b4e28ba-2fa1-41d2-883f-0016d3cca427 " + "x" * 501, "The reason can be at most 500 characters long."),
])
def test_revoke_rejects_bad_input(engine, argument, expected):
    coordinator = Chat(engine, "coordinator")

    coordinator.send(f"/revoke {argument}".strip())

    assert coordinator.texts()[0].startswith(expected)


def test_revoke_twice_reports_first(engine):
    earn_item_badge(engine)
    uid = only_assertion(engine).uid
    coordinator = Chat(engine, "coordinator")
    coordinator.send(f"/revoke {uid} first reason")

    coordinator.send(f"/revoke {uid} second reason")

    assert coordinator.texts()[0].startswith(f"Badge {uid} was already revoked on")
    assert coordinator.texts()[0].endswith(": first reason")
    assert only_assertion(engine).revocation_reason == "first reason"


# --- the verification page --------------------------------------------------------------------


async def test_verification_page_escapes_learner_text(engine):
    chat = earn_item_badge(engine, reflection=HOSTILE_REFLECTION, name=HOSTILE_NAME)
    chat.send("/share name on")
    assertion = only_assertion(engine)

    async with client_for(engine) as client:
        page = await client.get(urls_of(engine).verify_page(assertion.uid))

    assert page.status_code == 200
    assert "<script" not in page.text
    assert "<img src=x" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in page.text
    assert "career centre &amp; &quot;workshops&quot;" in page.text
    assert "script-src" not in page.headers["content-security-policy"]
    assert page.headers["content-security-policy"].startswith("default-src 'none'")


async def test_verification_page_hides_name_by_default(engine):
    earn_item_badge(engine, name="Ana Example")
    assertion = only_assertion(engine)

    async with client_for(engine) as client:
        page = await client.get(urls_of(engine).verify_page(assertion.uid))

    assert "Ana Example" not in page.text
    assert "The holder chose not to show their name." in page.text


async def test_verification_page_shows_badge_facts(engine):
    earn_item_badge(engine, name="Ana Example")
    Chat(engine, "ana").send("/share name on")
    assertion = only_assertion(engine)
    urls = urls_of(engine)

    async with client_for(engine) as client:
        page = await client.get(urls.verify_page(assertion.uid))

    text = page.text
    assert page.headers["content-type"].startswith("text/html")
    assert 'class="status status-valid"' in text
    assert "<h1>Use career services</h1>" in text
    assert "Ana Example" in text
    assert engine.settings.issuer_name in text
    assert f'href="{engine.settings.issuer_url}"' in text
    assert assertion.issued_on.date().isoformat() in text
    assert "Names the career service used" in text
    assert urls.badge_image("items/use-career-services", "png") in text
    assert urls.assertion(assertion.uid) in text
    assert urls.credential(assertion.uid) in text
    assert urls.baked_image(assertion.uid, "png") in text


# --- evidence files ---------------------------------------------------------------------------


async def test_evidence_file_published_only_after_opt_in(engine):
    chat = Chat(engine, "ana")
    chat.finish_plan()
    data = b"%PDF-1.4 confirmation of my appointment"
    submission_id = submit_file(chat, "use-career-services", data)
    approve(engine, submission_id)
    assertion = only_assertion(engine)
    urls = urls_of(engine)
    file_url = urls.evidence_file(assertion.uid, submission_id)

    async with client_for(engine) as client:
        before = await client.get(file_url)
        document_before = (await client.get(urls.assertion(assertion.uid))).json()
        chat.send("/share files on")
        after = await client.get(file_url)
        document_after = (await client.get(urls.assertion(assertion.uid))).json()
        chat.send("/share files off")
        withdrawn = await client.get(file_url)

    assert before.status_code == 404
    assert "id" not in document_before["evidence"][0]
    assert document_before["evidence"][0]["narrative"].startswith("File: confirmation.pdf")
    assert after.status_code == 200
    assert after.content == data
    assert after.headers["content-disposition"].startswith("attachment;")
    assert "sandbox" in after.headers["content-security-policy"]
    assert document_after["evidence"][0]["id"] == file_url
    assert withdrawn.status_code == 404


# --- PostgreSQL -----------------------------------------------------------------------------------


async def test_issue_serve_revoke_on_postgres(postgres_engine):
    earn_item_badge(postgres_engine)
    assertion = only_assertion(postgres_engine)
    urls = urls_of(postgres_engine)

    async with client_for(postgres_engine) as client:
        served = await client.get(urls.assertion(assertion.uid))
        Chat(postgres_engine, "coordinator").send(f"/revoke {assertion.uid} duplicate award")
        revoked = await client.get(urls.assertion(assertion.uid))

    assert served.status_code == 200
    check_assertion(served.json(), urls)
    assert revoked.status_code == 410
    assert revoked.json()["revocationReason"] == "duplicate award"
