"""Issuing Open Badges assertions for badge awards, baking them, and revoking them.

An award (a :class:`BadgeAward` row) becomes a verifiable badge once it has a
:class:`BadgeAssertion`: a random public ``uid``, the learner's hashed email,
a snapshot of the evidence and a random index in the revocation status list
(``bot.status_list``). A learner without an email is asked for one; their awards wait, and
:func:`issue_pending` issues them when the email is stored. Each new assertion
is sent to the learner as a baked PNG.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from bot import baking, credentials, openbadges, status_list
from bot.config import Settings
from bot.events import Document
from bot.flows import Flows
from bot.models import BadgeAssertion, BadgeAward, Learner, PathwayItem, Submission
from bot.openbadges import BadgeDefinition, BadgeUrls
from bot.pathway import SKILL_PREFIX, item_info
from bot.turn import Turn

logger = logging.getLogger(__name__)

SALT_BYTES = 16
REVOCATION_REASON_MAX_CHARS = 500
_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def urls_for(settings: Settings) -> BadgeUrls:
    return BadgeUrls(settings.public_base_url)


# --- issuing --------------------------------------------------------------------------


def issue_pending(turn: Turn, learner: Learner, *, ask_for_email: bool = True) -> list[BadgeAssertion]:
    """Issue an assertion for every award of ``learner`` that has none, and send each as a baked PNG.

    Without an email address nothing is issued; with ``ask_for_email`` the
    learner is asked to add one, and the awards keep waiting.
    """
    turn.session.flush()
    waiting = sorted((award for award in learner.awards if award.assertion is None), key=lambda award: award.id)
    if not waiting:
        return []
    if not learner.email:
        logger.info("learner %s: %d badge(s) wait for an email address", learner.id, len(waiting))
        if ask_for_email:
            names = ", ".join(award.name for award in waiting)
            turn.send_to_learner(learner, turn.t("badge_email_needed", names=names))
        return []

    issued = [_issue(turn, learner, award) for award in waiting]
    urls = urls_for(turn.settings)
    for assertion in issued:
        status_index = status_list.ensure_index(turn.session, assertion.uid, turn.now)
        document = baked_png_document(turn.flows, turn.settings, assertion, learner, status_index=status_index)
        turn.send_to_learner(
            learner,
            turn.t("badge_issued", name=assertion.award.name, verify_url=urls.verify_page(assertion.uid)),
            kind="badge_issued",
            document=document,
        )
    return issued


def _issue(turn: Turn, learner: Learner, award: BadgeAward) -> BadgeAssertion:
    definition = openbadges.badge_definition(turn.flows.catalog, turn.flows.texts, award.badge_key)
    validity_days = definition.validity_days if definition is not None else None
    salt = secrets.token_hex(SALT_BYTES)
    assertion = BadgeAssertion(
        uid=str(uuid.uuid4()),
        award_id=award.id,
        learner_id=learner.id,
        badge_key=award.badge_key,
        recipient_hash=openbadges.hash_email(learner.email, salt),
        salt=salt,
        issued_on=award.awarded_at,
        expires_at=award.awarded_at + timedelta(days=validity_days) if validity_days else None,
        evidence=_evidence_snapshot(turn, learner, award),
        created_at=turn.now,
    )
    award.assertion = assertion
    turn.session.add(assertion)
    turn.session.flush()
    status_list.allocate(turn.session, assertion.uid, turn.now)
    logger.info("assertion %s issued: learner=%s badge=%s", assertion.uid, learner.id, award.badge_key)
    return assertion


def _evidence_snapshot(turn: Turn, learner: Learner, award: BadgeAward) -> list[dict]:
    """Describe what the award rests on: approved submissions, or the level badges for the macro-badge."""
    catalog = turn.flows.catalog
    if award.kind == "macro":
        return _level_badge_evidence(turn, learner)

    if award.kind == "item":
        item_keys = {award.badge_key.removeprefix(openbadges.ITEM_PREFIX)}
    elif award.kind == "skill":
        item_keys = {SKILL_PREFIX + skill.id for skill in catalog.skills if skill.badge.id == award.badge_key}
    else:
        level = next((level for level in catalog.levels if level.badge.id == award.badge_key), None)
        number = level.number if level is not None else None
        item_keys = {item.item_key for item in learner.items if item.active and item.level == number}
    items = [item for item in learner.items if item.item_key in item_keys and item.status == "approved"]
    if not items:
        return []

    submissions = turn.session.scalars(
        select(Submission)
        .where(Submission.item_id.in_([item.id for item in items]), Submission.status == "approved")
        .options(selectinload(Submission.decision), selectinload(Submission.item))
        .order_by(Submission.submitted_at, Submission.id)
    ).all()
    return [_submission_entry(turn, submission) for submission in submissions]


def _submission_entry(turn: Turn, submission: Submission) -> dict:
    item: PathwayItem = submission.item
    if submission.kind == "link":
        evidence_text = turn.t("ob_evidence_link", url=submission.url or "")
    elif submission.kind == "file":
        evidence_text = turn.t("ob_evidence_file", name=submission.file_name or "-")
    else:
        evidence_text = submission.text or ""

    decision = submission.decision
    met = decision.criteria if decision is not None else {}
    try:
        rubric = item_info(turn.flows.catalog, item.item_key).rubric
    except KeyError:
        rubric = ()
    criteria = "\n".join(f"- {criterion.text}" for criterion in rubric if met.get(criterion.id)) or "-"
    decided = decision.decided_at if decision is not None else submission.submitted_at or turn.now
    narrative = turn.t("ob_evidence_narrative", evidence=evidence_text, date=decided.date().isoformat(),
                       criteria=criteria)
    return {
        "submission_id": submission.id,
        "name": item.title,
        "genre": turn.t(f"kind_{submission.kind}"),
        "narrative": narrative,
        "has_file": submission.kind == "file" and bool(submission.file_sha256),
    }


def _level_badge_evidence(turn: Turn, learner: Learner) -> list[dict]:
    by_key = {award.badge_key: award for award in learner.awards}
    entries = []
    for level in turn.flows.catalog.levels:
        award = by_key.get(level.badge.id)
        if award is None:
            continue
        entry = {
            "name": award.name,
            "narrative": turn.t("ob_evidence_badge", name=award.name, date=award.awarded_at.date().isoformat()),
        }
        if award.assertion is not None:
            entry["assertion_uid"] = award.assertion.uid
        entries.append(entry)
    return entries


# --- revoking ---------------------------------------------------------------------------


def revoke(turn: Turn, argument: str) -> None:
    """/revoke <assertion id or URL> <reason>: mark the assertion revoked and tell the learner."""
    target, _, reason = argument.strip().partition(" ")
    reason = " ".join(reason.split())
    uid = openbadges.parse_uid(target.rstrip("/").rsplit("/", 1)[-1]) if target else None
    if uid is None or not reason:
        turn.reply(turn.t("revoke_usage"))
        return
    if len(reason) > REVOCATION_REASON_MAX_CHARS:
        turn.reply(turn.t("revoke_reason_too_long", maximum=REVOCATION_REASON_MAX_CHARS))
        return

    assertion = turn.session.scalar(
        select(BadgeAssertion).where(BadgeAssertion.uid == uid).options(selectinload(BadgeAssertion.award))
        .with_for_update()
    )
    if assertion is None:
        turn.reply(turn.t("revoke_not_found", uid=uid))
        return
    if assertion.revoked_at is not None:
        turn.reply(turn.t("revoke_already", uid=uid, date=assertion.revoked_at.date().isoformat(),
                          reason=assertion.revocation_reason or "-"))
        return

    assertion.revoked_at = turn.now
    assertion.revocation_reason = reason
    assertion.revoked_by = turn.event.user_key[:96]
    status_list.mark_revoked(turn.session, [uid], turn.now, reason)
    logger.info("assertion %s revoked by %s", uid, turn.event.user_key)
    turn.reply(turn.t("revoke_done", uid=uid, name=assertion.award.name))
    learner = turn.session.get(Learner, assertion.learner_id)
    if learner is not None:
        turn.send_to_learner(learner, turn.t("learner_badge_revoked", name=assertion.award.name, reason=reason))


# --- images -------------------------------------------------------------------------------


def badge_image(flows: Flows, definition: BadgeDefinition) -> tuple[bytes, str]:
    """Return the badge's image and its format ("png" or "svg"): the catalog's file, or a drawn default."""
    if definition.image is not None:
        path = flows.directory / definition.image
        try:
            return path.read_bytes(), definition.image_format
        except OSError as exc:
            logger.warning("badge %s: cannot read image %s (%s); using the default image",
                           definition.key, path, exc.strerror)
    return baking.default_badge_png(definition.name, definition.kind), "png"


def baked_png(flows: Flows, settings: Settings, assertion: BadgeAssertion, learner: Learner, *,
              status_index: int) -> bytes:
    """Return the badge's PNG with the 2.0 assertion and the signed 3.0 credential baked in.

    ``status_index`` is the assertion's bit in the revocation status list, which the credential names.
    """
    urls = urls_for(settings)
    definition = openbadges.badge_definition(flows.catalog, flows.texts, assertion.badge_key)
    files_public = learner.share_files_on_badges
    document = openbadges.assertion_document(assertion, urls, files_public=files_public)
    chunks = {baking.OB2_KEYWORD: json.dumps(document, ensure_ascii=False, separators=(",", ":"))}

    if definition is None:
        image = baking.default_badge_png(assertion.award.name, assertion.award.kind)
    else:
        image, image_format = badge_image(flows, definition)
        if image_format != "png":
            # NOTE: careerbot cannot rasterize SVG, so the PNG of an SVG badge shows the
            # drawn default image; the badge's own picture is in the baked SVG.
            image = baking.default_badge_png(definition.name, definition.kind)
        try:
            key = credentials.load_signing_key(settings)
        except credentials.SigningKeyError as exc:
            logger.error("assertion %s baked without its Open Badges 3.0 credential: %s", assertion.uid, exc)
        else:
            credential = credentials.credential_document(assertion, definition, settings, urls,
                                                         files_public=files_public, status_index=status_index)
            chunks[baking.OB3_KEYWORD] = credentials.sign_credential(credential, assertion, key, urls)
    return baking.bake_png(image, chunks)


def baked_svg(flows: Flows, settings: Settings, assertion: BadgeAssertion, learner: Learner) -> str | None:
    """Return the badge's SVG with the assertion baked in; None when the badge image is not an SVG."""
    definition = openbadges.badge_definition(flows.catalog, flows.texts, assertion.badge_key)
    if definition is None or definition.image_format != "svg":
        return None
    image, image_format = badge_image(flows, definition)
    if image_format != "svg":
        return None
    urls = urls_for(settings)
    document = openbadges.assertion_document(assertion, urls, files_public=learner.share_files_on_badges)
    assertion_json = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return baking.bake_svg(image.decode("utf-8"), assertion_json, urls.assertion(assertion.uid))


def baked_png_document(flows: Flows, settings: Settings, assertion: BadgeAssertion, learner: Learner, *,
                       status_index: int) -> Document:
    """Return the baked PNG as a document to send in chat."""
    return Document(filename=f"{safe_filename(assertion.award.name)}.png", content_type="image/png",
                    content=baked_png(flows, settings, assertion, learner, status_index=status_index))


def safe_filename(name: str) -> str:
    """A file name stem made from a badge name: letters, digits, dots and dashes only."""
    return _SAFE_FILENAME.sub("-", name).strip("-.").lower()[:60] or "badge"
