"""Open Badges 2.0 documents built from the catalog: issuer, badge classes, assertions.

Each document is JSON-LD in the Open Badges 2.0 vocabulary (context
``https://w3id.org/openbadges/v2``) and is hosted at its ``id`` URL, which
:class:`BadgeUrls` builds from ``public_base_url``. Assertions use hosted
verification: a verifier fetches the assertion from its ``id`` and follows
``badge`` and ``issuer`` from there.

The recipient's email is never published. An assertion carries
``sha256$`` + hex(SHA-256(lowercased email + salt)) with a random salt of its
own, so the same email gives unrelated hashes on two badges.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from bot.badges import ITEM_PREFIX
from bot.catalog import Catalog
from bot.config import Settings
from bot.models import BadgeAssertion
from bot.texts import Texts

OB2_CONTEXT = "https://w3id.org/openbadges/v2"
UID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ITEM_PATH = "items/"
"""Item badges live under ``/ob/badges/items/<item id>``, apart from catalog badge ids."""


def parse_uid(text: str) -> str | None:
    """Return ``text`` as a canonical assertion uid (a lowercase UUID), or None when it is not one."""
    candidate = text.strip().lower()
    return candidate if UID_PATTERN.fullmatch(candidate) else None


def hash_email(email: str, salt: str) -> str:
    """Return the Open Badges identity hash of ``email`` with ``salt``.

    >>> hash_email("Alice@Example.org", "s4lt-9f2c")[:15]
    'sha256$71c3f6b7'
    """
    digest = hashlib.sha256((email.strip().lower() + salt).encode("utf-8")).hexdigest()
    return "sha256$" + digest


def iso_timestamp(value: datetime) -> str:
    """Format a timezone-aware timestamp as ISO 8601 in UTC, such as ``2026-05-01T09:30:00Z``."""
    return value.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class BadgeUrls:
    """Every public URL of the badge web routes, under one base URL."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")

    def issuer(self) -> str:
        return f"{self.base}/ob/issuer"

    def jwks(self) -> str:
        return f"{self.base}/ob/issuer/jwks"

    def key(self, key_id: str) -> str:
        return f"{self.base}/ob/issuer/keys/{key_id}"

    def framework(self, anchor: str = "") -> str:
        return f"{self.base}/ob/framework" + (f"#{anchor}" if anchor else "")

    def badge_class(self, path: str) -> str:
        return f"{self.base}/ob/badges/{path}"

    def badge_image(self, path: str, image_format: str) -> str:
        return f"{self.base}/ob/badges/{path}/image.{image_format}"

    def assertion(self, uid: str) -> str:
        return f"{self.base}/ob/assertions/{uid}"

    def baked_image(self, uid: str, image_format: str) -> str:
        return f"{self.base}/ob/assertions/{uid}/badge.{image_format}"

    def credential(self, uid: str) -> str:
        return f"{self.base}/ob/assertions/{uid}/credential"

    def evidence_file(self, uid: str, submission_id: int) -> str:
        return f"{self.base}/ob/assertions/{uid}/evidence/{submission_id}"

    def verify_page(self, uid: str) -> str:
        return f"{self.base}/verify/{uid}"

    def revocation_list(self) -> str:
        return f"{self.base}/ob/status/revocation"


# --- badge definitions ----------------------------------------------------------------


@dataclass(frozen=True)
class Alignment:
    """Where a badge sits in a framework: a level of the program or a 21st Century Skill."""

    name: str
    anchor: str
    description: str
    framework: str
    code: str


@dataclass(frozen=True)
class BadgeDefinition:
    """A badge class as careerbot publishes it, whatever its kind.

    ``key`` is the award's ``badge_key``; ``path`` is its place under
    ``/ob/badges/``; ``image`` is the catalog's image file, relative to the
    flows folder, or None for the drawn default.
    """

    key: str
    kind: str
    path: str
    name: str
    description: str
    image: str | None
    validity_days: int | None
    criteria: str
    alignments: tuple[Alignment, ...]
    tags: tuple[str, ...]

    @property
    def image_format(self) -> str:
        return "svg" if self.image and self.image.lower().endswith(".svg") else "png"


def badge_path(key: str) -> str:
    """Return the URL path of a badge under ``/ob/badges/`` from its award key."""
    if key.startswith(ITEM_PREFIX):
        return ITEM_PATH + key[len(ITEM_PREFIX):]
    return key


def key_for_path(path: str) -> str:
    if path.startswith(ITEM_PATH):
        return ITEM_PREFIX + path[len(ITEM_PATH):]
    return path


def _numbered(texts: list[str]) -> str:
    return "\n".join(f"{number}. {text}" for number, text in enumerate(texts, start=1))


def _level_alignment(catalog: Catalog, texts: Texts, number: int) -> Alignment:
    level = catalog.level(number)
    return Alignment(
        name=texts("ob_alignment_level", number=level.number, name=level.name),
        anchor=f"level-{level.number}",
        description=level.description,
        framework=texts("ob_framework_levels", program=catalog.program.name),
        code=level.id,
    )


def badge_definition(catalog: Catalog, texts: Texts, key: str) -> BadgeDefinition | None:
    """Describe the badge with award key ``key``; None when the catalog has no such badge."""
    program = catalog.program.name
    if key.startswith(ITEM_PREFIX):
        return _item_definition(catalog, texts, key[len(ITEM_PREFIX):])

    for level in catalog.levels:
        if level.badge.id == key:
            lines = []
            for item in level.items:
                if item.slot == "skill":
                    lines.append(texts("ob_criteria_level_skill"))
                elif item.slot == "experience":
                    experience = next(option.name for option in catalog.experiences if option.id == item.experience)
                    lines.append(texts("ob_criteria_level_experience", title=item.title, experience=experience))
                else:
                    lines.append(texts("ob_criteria_level_item", title=item.title))
            criteria = texts("ob_criteria_level", number=level.number, name=level.name, items="\n".join(lines))
            return _definition(level.badge, "level", criteria, (_level_alignment(catalog, texts, level.number),),
                               (program, level.name))

    for skill in catalog.skills:
        if skill.badge.id == key:
            criteria = texts("ob_criteria_skill", skill=skill.name,
                             criteria=_numbered([criterion.text for criterion in skill.subcompetencies]))
            alignment = Alignment(
                name=skill.name,
                anchor=f"skill-{skill.id}",
                description=skill.description,
                framework=texts("ob_framework_skills"),
                code=skill.id,
            )
            return _definition(skill.badge, "skill", criteria, (alignment,), (program, skill.name))

    macro = catalog.program.macro_badge
    if macro.id == key:
        stacked = "\n".join(f"- {level.badge.name}" for level in catalog.levels)
        criteria = texts("ob_criteria_macro", program=program, badges=stacked)
        return _definition(macro, "macro", criteria, (), (program,))
    return None


def _definition(badge, kind: str, criteria: str, alignments: tuple[Alignment, ...],
                tags: tuple[str, ...]) -> BadgeDefinition:
    return BadgeDefinition(
        key=badge.id,
        kind=kind,
        path=badge_path(badge.id),
        name=badge.name,
        description=badge.description,
        image=badge.image,
        validity_days=badge.validity_days,
        criteria=criteria,
        alignments=alignments,
        tags=tags,
    )


def _item_definition(catalog: Catalog, texts: Texts, item_id: str) -> BadgeDefinition | None:
    for level in catalog.levels:
        for item in level.items:
            if item.id != item_id or item.slot == "skill":
                continue
            criteria = texts("ob_criteria_item", title=item.title,
                             criteria=_numbered([criterion.text for criterion in item.rubric]))
            return BadgeDefinition(
                key=ITEM_PREFIX + item.id,
                kind="item",
                path=badge_path(ITEM_PREFIX + item.id),
                name=item.title,
                description=item.description,
                image=None,
                validity_days=None,
                criteria=criteria,
                alignments=(_level_alignment(catalog, texts, level.number),),
                tags=(catalog.program.name, level.name),
            )
    return None


# --- JSON-LD documents ----------------------------------------------------------------


def issuer_profile(settings: Settings, urls: BadgeUrls) -> dict[str, Any]:
    """The issuing organization as an Open Badges 2.0 ``Issuer`` profile."""
    profile: dict[str, Any] = {
        "@context": OB2_CONTEXT,
        "type": "Issuer",
        "id": urls.issuer(),
        "name": settings.issuer_name,
        "url": settings.issuer_url,
        "email": settings.issuer_email,
    }
    if settings.issuer_image:
        profile["image"] = settings.issuer_image
    return profile


def alignment_documents(definition: BadgeDefinition, urls: BadgeUrls) -> list[dict[str, str]]:
    return [
        {
            "targetName": alignment.name,
            "targetUrl": urls.framework(alignment.anchor),
            "targetDescription": alignment.description,
            "targetFramework": alignment.framework,
            "targetCode": alignment.code,
        }
        for alignment in definition.alignments
    ]


def badge_class_document(definition: BadgeDefinition, urls: BadgeUrls) -> dict[str, Any]:
    """The badge as an Open Badges 2.0 ``BadgeClass``."""
    document: dict[str, Any] = {
        "@context": OB2_CONTEXT,
        "type": "BadgeClass",
        "id": urls.badge_class(definition.path),
        "name": definition.name,
        "description": definition.description,
        "image": urls.badge_image(definition.path, definition.image_format),
        "criteria": {"narrative": definition.criteria},
        "issuer": urls.issuer(),
        "tags": list(definition.tags),
    }
    alignments = alignment_documents(definition, urls)
    if alignments:
        document["alignment"] = alignments
    return document


def evidence_documents(assertion: BadgeAssertion, urls: BadgeUrls, *, files_public: bool) -> list[dict[str, Any]]:
    """Turn the assertion's evidence snapshot into Open Badges ``Evidence`` objects.

    A file submission gets a URL (``id``) only while the learner allows
    publishing their files; otherwise only its narrative is published.
    """
    documents = []
    for entry in assertion.evidence:
        document: dict[str, Any] = {"type": "Evidence", "name": entry["name"], "narrative": entry["narrative"]}
        if entry.get("genre"):
            document["genre"] = entry["genre"]
        if entry.get("assertion_uid"):
            document["id"] = urls.assertion(entry["assertion_uid"])
        elif files_public and entry.get("has_file") and entry.get("submission_id") is not None:
            document["id"] = urls.evidence_file(assertion.uid, entry["submission_id"])
        documents.append(document)
    return documents


def assertion_document(assertion: BadgeAssertion, urls: BadgeUrls, *, files_public: bool) -> dict[str, Any]:
    """The award as a hosted Open Badges 2.0 ``Assertion`` (for an assertion not revoked)."""
    document: dict[str, Any] = {
        "@context": OB2_CONTEXT,
        "type": "Assertion",
        "id": urls.assertion(assertion.uid),
        "recipient": {
            "type": "email",
            "hashed": True,
            "salt": assertion.salt,
            "identity": assertion.recipient_hash,
        },
        "badge": urls.badge_class(badge_path(assertion.badge_key)),
        "verification": {"type": "hosted"},
        "issuedOn": iso_timestamp(assertion.issued_on),
        "image": urls.baked_image(assertion.uid, "png"),
    }
    evidence = evidence_documents(assertion, urls, files_public=files_public)
    if evidence:
        document["evidence"] = evidence
    if assertion.expires_at is not None:
        document["expires"] = iso_timestamp(assertion.expires_at)
    return document


def revoked_document(assertion: BadgeAssertion, urls: BadgeUrls) -> dict[str, Any]:
    """What a revoked assertion's URL returns (with HTTP 410): its id, ``revoked`` and the reason."""
    return revocation_document(assertion.uid, assertion.revocation_reason, urls)


def revocation_document(uid: str, reason: str | None, urls: BadgeUrls) -> dict[str, Any]:
    """Build the 410 body for the assertion ``uid``, also for one whose record /forget deleted."""
    return {
        "@context": OB2_CONTEXT,
        "type": "Assertion",
        "id": urls.assertion(uid),
        "revoked": True,
        "revocationReason": reason or "",
    }
