"""Open Badges 2.0 documents: required fields, hashing, criteria, alignment, evidence, expiry."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

import pytest
import yaml

from bot import openbadges
from bot.catalog import Catalog
from bot.flows import FlowsInvalid, load_flows
from bot.openbadges import OB2_CONTEXT, BadgeUrls
from tests.bot.badge_setup import assertions_of, custom_flows, earn_item_badge, earn_level, make_engine  # noqa: F401
from tests.bot.scripted import Chat

HASH_PATTERN = re.compile(r"sha256\$[0-9a-f]{64}")

# Required properties of each Open Badges 2.0 class (IMS Global, Open Badges v2.0, "Data Model").
REQUIRED = {
    "Assertion": ("id", "type", "recipient", "badge", "verification", "issuedOn"),
    "BadgeClass": ("id", "type", "name", "description", "image", "criteria", "issuer"),
    "Issuer": ("id", "type", "name", "url", "email"),
    "IdentityObject": ("identity", "type", "hashed"),
    "VerificationObject": ("type",),
    "AlignmentObject": ("targetName", "targetUrl"),
}


def check_required(document: dict, class_name: str) -> None:
    for field in REQUIRED[class_name]:
        assert document.get(field) not in (None, ""), f"{class_name} lacks required {field!r}: {document}"


def check_timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, f"{value!r} has no time zone"
    return parsed


def check_badge_class(document: dict, urls: BadgeUrls) -> None:
    assert document["@context"] == OB2_CONTEXT
    assert document["type"] == "BadgeClass"
    check_required(document, "BadgeClass")
    assert document["issuer"] == urls.issuer()
    assert document["criteria"]["narrative"].strip()
    assert document["image"].startswith(urls.base + "/ob/badges/")
    for alignment in document.get("alignment", []):
        check_required(alignment, "AlignmentObject")
        assert alignment["targetUrl"].startswith(urls.framework())


def check_assertion(document: dict, urls: BadgeUrls) -> None:
    assert document["@context"] == OB2_CONTEXT
    assert document["type"] == "Assertion"
    check_required(document, "Assertion")
    check_required(document["recipient"], "IdentityObject")
    check_required(document["verification"], "VerificationObject")
    assert document["recipient"]["type"] == "email"
    assert document["recipient"]["hashed"] is True
    assert HASH_PATTERN.fullmatch(document["recipient"]["identity"])
    assert document["verification"]["type"] == "hosted"
    assert document["id"].startswith(urls.base + "/ob/assertions/")
    assert document["badge"].startswith(urls.base + "/ob/badges/")
    check_timestamp(document["issuedOn"])
    for evidence in document.get("evidence", []):
        assert evidence.get("narrative") or evidence.get("id")


def definitions(catalog: Catalog, texts) -> list[openbadges.BadgeDefinition]:
    keys = [badge.id for badge in catalog.all_badges()]
    keys += [openbadges.ITEM_PREFIX + item.id for level in catalog.levels for item in level.items
             if item.slot != "skill"]
    return [openbadges.badge_definition(catalog, texts, key) for key in keys]


# --- hashing ----------------------------------------------------------------------------


def test_hash_email_known_vector():
    assert openbadges.hash_email("alice@example.org", "s4lt-9f2c") == (
        "sha256$71c3f6b7e31a97a1831a4c5001694320c0561b182c1717e16e32bc54a75bbb71"
    )


def test_hash_email_lowercases_first():
    assert openbadges.hash_email("Alice@Example.ORG", "s4lt-9f2c") == openbadges.hash_email("alice@example.org",
                                                                                            "s4lt-9f2c")


def test_hash_email_depends_on_salt():
    assert openbadges.hash_email("alice@example.org", "a") != openbadges.hash_email("alice@example.org", "b")


@pytest.mark.parametrize("text", [
    "",
    "x",
    "../etc",
    "1b4e28ba-2fa1-41d2-883f-0016d3cca42",
    "1b4e28ba2fa141d2883f0016d3cca427",
    "1b4e28ba-2fa1-41d2-883f-0016d3cca427/x",
    "g" * 8 + "-2fa1-41d2-883f-0016d3cca427",
])
def test_parse_uid_rejects_malformed(text):
    assert openbadges.parse_uid(text) is None


def test_parse_uid_lowercases():
    assert openbadges.parse_uid("1B4E28BA-2FA1-41D2-883F-0016D3CCA427") == "1b4e28ba-2fa1-41d2-883f-0016d3cca427"


# --- issuer and badge classes ---------------------------------------------------------------


def test_issuer_profile_required_fields(settings):
    urls = BadgeUrls(settings.public_base_url)

    profile = openbadges.issuer_profile(settings, urls)

    assert profile["@context"] == OB2_CONTEXT
    assert profile["type"] == "Issuer"
    check_required(profile, "Issuer")
    assert profile["id"] == "http://127.0.0.1:8080/ob/issuer"
    assert profile["email"] == settings.issuer_email


def test_badge_classes_required_fields(engine):
    urls = BadgeUrls(engine.settings.public_base_url)
    catalog = engine.flows.catalog

    documents = [openbadges.badge_class_document(definition, urls)
                 for definition in definitions(catalog, engine.flows.texts)]

    assert len(documents) == len(catalog.all_badges()) + sum(
        1 for level in catalog.levels for item in level.items if item.slot != "skill")
    for document in documents:
        check_badge_class(document, urls)
    assert len({document["id"] for document in documents}) == len(documents)


def test_item_badge_criteria_from_rubric(engine):
    catalog = engine.flows.catalog
    item = catalog.levels[0].items[0]

    definition = openbadges.badge_definition(catalog, engine.flows.texts, "item:" + item.id)

    assert definition.kind == "item"
    assert definition.path == "items/" + item.id
    for number, criterion in enumerate(item.rubric, start=1):
        assert f"{number}. {criterion.text}" in definition.criteria
    assert [alignment.anchor for alignment in definition.alignments] == ["level-1"]


def test_skill_badge_aligned_to_skill(engine):
    catalog = engine.flows.catalog
    skill = catalog.skills[0]
    urls = BadgeUrls(engine.settings.public_base_url)

    definition = openbadges.badge_definition(catalog, engine.flows.texts, skill.badge.id)
    document = openbadges.badge_class_document(definition, urls)

    assert document["alignment"] == [{
        "targetName": skill.name,
        "targetUrl": urls.framework(f"skill-{skill.id}"),
        "targetDescription": skill.description,
        "targetFramework": "21st Century Skills",
        "targetCode": skill.id,
    }]
    for criterion in skill.subcompetencies:
        assert criterion.text in document["criteria"]["narrative"]


def test_level_badge_criteria_lists_items(engine):
    catalog = engine.flows.catalog
    level = catalog.level(3)

    definition = openbadges.badge_definition(catalog, engine.flows.texts, level.badge.id)

    for item in level.items:
        if item.slot != "skill":
            assert item.title in definition.criteria
    assert "one 21st Century Skill badge" in definition.criteria
    assert definition.alignments[0].anchor == "level-3"
    assert definition.alignments[0].code == level.id


def test_macro_criteria_names_stacked_badges(engine):
    catalog = engine.flows.catalog

    definition = openbadges.badge_definition(catalog, engine.flows.texts, catalog.program.macro_badge.id)

    for level in catalog.levels:
        assert f"- {level.badge.name}" in definition.criteria
    assert definition.alignments == ()


@pytest.mark.parametrize("key", ["nope", "item:nope", "item:", "items/x", ""])
def test_unknown_badge_key_has_no_definition(engine, key):
    assert openbadges.badge_definition(engine.flows.catalog, engine.flows.texts, key) is None


def test_skill_slot_item_has_no_item_badge(engine):
    catalog = engine.flows.catalog
    slot = next(item for level in catalog.levels for item in level.items if item.slot == "skill")

    assert openbadges.badge_definition(catalog, engine.flows.texts, "item:" + slot.id) is None


# --- assertions ---------------------------------------------------------------------------


def test_assertion_required_fields(engine):
    earn_item_badge(engine)
    urls = BadgeUrls(engine.settings.public_base_url)

    [assertion] = assertions_of(engine)
    document = openbadges.assertion_document(assertion, urls, files_public=False)

    check_assertion(document, urls)
    assert document["recipient"]["identity"] == openbadges.hash_email("ana@example.edu", assertion.salt)
    assert document["badge"] == urls.badge_class("items/use-career-services")
    assert document["image"] == urls.baked_image(assertion.uid, "png")
    assert "expires" not in document


def test_assertion_issued_on_is_award_time(engine):
    earn_item_badge(engine)

    [assertion] = assertions_of(engine)

    assert assertion.issued_on == assertion.award.awarded_at
    assert assertion.issued_on.tzinfo is not None


def test_assertion_salt_differs_per_assertion(engine):
    earn_item_badge(engine, "ana", email="same@example.edu")
    earn_item_badge(engine, "ben", email="same@example.edu")

    first, second = assertions_of(engine)

    assert first.salt != second.salt
    assert first.recipient_hash != second.recipient_hash
    assert first.uid != second.uid
    assert len(first.salt) == 32


def test_assertion_evidence_has_narrative_and_decision(engine):
    earn_item_badge(engine, reflection="My reflection <b>with markup</b>. " * 10)
    urls = BadgeUrls(engine.settings.public_base_url)

    [assertion] = assertions_of(engine)
    [evidence] = openbadges.assertion_document(assertion, urls, files_public=True)["evidence"]

    assert evidence["type"] == "Evidence"
    assert evidence["name"] == "Use career services"
    assert evidence["genre"] == "A written reflection"
    assert evidence["narrative"].startswith("My reflection <b>with markup</b>.")
    assert "Approved by a program reviewer on" in evidence["narrative"]
    assert "Names the career service used" in evidence["narrative"]
    assert "id" not in evidence


def test_assertion_expires_from_validity_days(tmp_path, make_engine):
    engine = make_engine(flows_dir=custom_flows(tmp_path, level_1_validity_days=365))
    chat = Chat(engine, "ana")
    chat.finish_plan()
    earn_level(engine, chat, 1)
    urls = BadgeUrls(engine.settings.public_base_url)

    level_assertion = next(row for row in assertions_of(engine) if row.award.kind == "level")
    item_assertion = next(row for row in assertions_of(engine) if row.award.kind == "item")
    document = openbadges.assertion_document(level_assertion, urls, files_public=False)

    assert level_assertion.expires_at == level_assertion.issued_on + timedelta(days=365)
    assert check_timestamp(document["expires"]) == level_assertion.expires_at.replace(microsecond=0)
    assert item_assertion.expires_at is None


def test_level_evidence_lists_level_submissions(engine):
    chat = Chat(engine, "ana")
    chat.finish_plan()
    earn_level(engine, chat, 1)
    level_items = [item for item in engine.flows.catalog.level(1).items]

    level_assertion = next(row for row in assertions_of(engine) if row.award.kind == "level")

    names = [entry["name"] for entry in level_assertion.evidence]
    assert sorted(names) == sorted(item.title for item in level_items)


def test_macro_evidence_points_at_level_assertions(engine):
    chat = Chat(engine, "ana")
    chat.finish_plan()
    for level in (1, 2, 3):
        earn_level(engine, chat, level)
    urls = BadgeUrls(engine.settings.public_base_url)

    rows = assertions_of(engine)
    macro = next(row for row in rows if row.award.kind == "macro")
    level_uids = [row.uid for row in rows if row.award.kind == "level"]
    document = openbadges.assertion_document(macro, urls, files_public=False)

    assert [entry["id"] for entry in document["evidence"]] == [urls.assertion(uid) for uid in level_uids]
    assert len(rows) == len({row.award_id for row in rows})


def test_issuing_logs_no_hash_salt_or_email(engine, caplog):
    caplog.set_level(logging.DEBUG)

    earn_item_badge(engine, email="secret.person@example.edu")

    [assertion] = assertions_of(engine)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert assertion.uid in logged
    assert assertion.salt not in logged
    assert assertion.recipient_hash.split("$")[1] not in logged
    assert "secret.person@example.edu" not in logged
    assert "PRIVATE KEY" not in logged


def test_revoked_document_has_reason(engine):
    earn_item_badge(engine)
    urls = BadgeUrls(engine.settings.public_base_url)
    [assertion] = assertions_of(engine)
    assertion.revocation_reason = "issued by mistake"

    document = openbadges.revoked_document(assertion, urls)

    assert document == {
        "@context": OB2_CONTEXT,
        "type": "Assertion",
        "id": urls.assertion(assertion.uid),
        "revoked": True,
        "revocationReason": "issued by mistake",
    }


# --- catalog badge images -------------------------------------------------------------------


def test_catalog_svg_image_used_for_badge_class(tmp_path):
    flows = load_flows(custom_flows(tmp_path, level_1_svg=True))
    urls = BadgeUrls("http://127.0.0.1:8080")

    definition = openbadges.badge_definition(flows.catalog, flows.texts, "introduction-and-foundation")

    assert definition.image == "badges/level-1.svg"
    assert definition.image_format == "svg"
    assert openbadges.badge_class_document(definition, urls)["image"].endswith("/image.svg")


def test_catalog_missing_image_rejected(tmp_path):
    folder = custom_flows(tmp_path, level_1_svg=True)
    (folder / "badges" / "level-1.svg").unlink()

    with pytest.raises(FlowsInvalid) as raised:
        load_flows(folder)

    assert "badge image 'badges/level-1.svg' not found" in str(raised.value)
    assert "catalog.yaml:" in str(raised.value)


@pytest.mark.parametrize("image", ["/etc/badge.png", "../outside.png", "badges/level-1.gif", "badges/../../x.svg"])
def test_catalog_image_outside_flows_rejected(tmp_path, image):
    folder = custom_flows(tmp_path)
    catalog_path = folder / "catalog.yaml"
    catalog = yaml.safe_load(catalog_path.read_text())
    catalog["levels"][0]["badge"]["image"] = image
    catalog_path.write_text(yaml.safe_dump(catalog, sort_keys=False))

    with pytest.raises(FlowsInvalid, match="must be a .png or .svg file inside the flows folder"):
        load_flows(folder)
