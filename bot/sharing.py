"""Sharing earned badges: the links /badges sends, LinkedIn's add-to-profile URL, /share.

Each issued badge gets three links: its verification page, LinkedIn's "add
certification" form filled in with the badge, and a download of the baked
PNG. The URLs are built as strings; careerbot fetches none of them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from urllib.parse import quote, urlencode

from bot.assertions import urls_for
from bot.models import BadgeAward, Learner
from bot.turn import Turn

logger = logging.getLogger(__name__)

LINKEDIN_ADD_URL = "https://www.linkedin.com/profile/add"
MESSAGE_MAX_CHARS = 3000
"""Maximum length of one /badges message, in characters, because Slack shows at most 3000 in a section."""

SHARE_FLAGS = {"name": "share_name_on_badges", "files": "share_files_on_badges"}
SWITCH_WORDS = {"on": True, "yes": True, "off": False, "no": False}


def linkedin_url(*, name: str, organization_name: str, organization_id: str | None, issued: datetime,
                 expires: datetime | None, cert_url: str, cert_id: str) -> str:
    """Return LinkedIn's add-to-profile URL for a certification, leaving out empty parameters.

    ``organization_id`` (a LinkedIn page id) replaces ``organization_name`` when given.
    """
    parameters: list[tuple[str, object]] = [("startTask", "CERTIFICATION_NAME"), ("name", name)]
    if organization_id:
        parameters.append(("organizationId", organization_id))
    else:
        parameters.append(("organizationName", organization_name))
    parameters += [("issueYear", issued.year), ("issueMonth", issued.month)]
    if expires is not None:
        parameters += [("expirationYear", expires.year), ("expirationMonth", expires.month)]
    parameters += [("certUrl", cert_url), ("certId", cert_id)]
    present = [(key, str(value)) for key, value in parameters if value not in (None, "")]
    return f"{LINKEDIN_ADD_URL}?{urlencode(present, quote_via=quote)}"


def award_lines(turn: Turn, award: BadgeAward) -> list[str]:
    """Lines under one earned badge in /badges: its links, why it is not issued yet, or its revocation."""
    assertion = award.assertion
    if assertion is None:
        return [turn.t("badge_waiting_email")] if not award.learner.email else []
    if assertion.revoked_at is not None:
        return [turn.t("badge_revoked_line", reason=assertion.revocation_reason or "-")]

    settings = turn.settings
    urls = urls_for(settings)
    linkedin = linkedin_url(
        name=award.name,
        organization_name=settings.issuer_name,
        organization_id=settings.issuer_linkedin_organization_id,
        issued=assertion.issued_on,
        expires=assertion.expires_at,
        cert_url=urls.verify_page(assertion.uid),
        cert_id=assertion.uid,
    )
    return [
        turn.t("badge_verify_line", url=urls.verify_page(assertion.uid)),
        turn.t("badge_linkedin_line", url=linkedin),
        turn.t("badge_download_line", url=urls.baked_image(assertion.uid, "png")),
    ]


def links_text(turn: Turn, learner: Learner) -> str | None:
    """Return the sharing links of every earned badge, macro-badge and levels first; None before the first badge."""
    catalog = turn.flows.catalog
    first = [catalog.program.macro_badge.id] + [level.badge.id for level in catalog.levels]
    awards = sorted(learner.awards, key=lambda award: (award.badge_key not in first, award.awarded_at, award.id))
    awards.sort(key=lambda award: first.index(award.badge_key) if award.badge_key in first else len(first))
    if not awards:
        return None
    lines = [turn.t("badge_links_header")]
    for award in awards:
        lines.append(turn.t("badge_links_entry", name=award.name))
        lines.extend(award_lines(turn, award))
    return "\n".join(lines)


def split_message(text: str, limit: int = MESSAGE_MAX_CHARS) -> list[str]:
    """Split ``text`` into messages of at most ``limit`` characters, between lines.

    A part ends before a line that starts a new entry ("- ...") or after a
    blank line where it can, so one badge's lines stay together. A single
    line longer than ``limit`` is cut.
    """
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                parts.append("\n".join(current))
                current, size = [], 0
            parts.append(line[:limit])
            line = line[limit:]
        while current and size + 1 + len(line) > limit:
            cut = _last_break(current)
            parts.append("\n".join(current[:cut]).rstrip("\n"))
            current = current[cut:]
            size = len("\n".join(current))
        size += (1 if current else 0) + len(line)
        current.append(line)
    if current:
        parts.append("\n".join(current))
    return [part for part in parts if part.strip()]


def _last_break(lines: list[str]) -> int:
    """Index where the lines may be cut: before the last entry or after the last blank line."""
    for index in range(len(lines) - 1, 0, -1):
        if lines[index].startswith("- ") or not lines[index - 1].strip():
            return index
    return len(lines)


# --- /share -------------------------------------------------------------------------


def cmd_share(turn: Turn, conversation, argument: str) -> bool:
    """/share [name|files on|off]: show or change what verification pages publish about the learner."""
    words = argument.casefold().split()
    learner = turn.learner
    if not words:
        turn.reply(turn.t("share_status", name=_switch_label(turn, learner.share_name_on_badges),
                          files=_switch_label(turn, learner.share_files_on_badges)))
        return True
    if len(words) != 2 or words[0] not in SHARE_FLAGS or words[1] not in SWITCH_WORDS:
        turn.reply(turn.t("share_usage"))
        return True

    choice, enabled = words[0], SWITCH_WORDS[words[1]]
    setattr(learner, SHARE_FLAGS[choice], enabled)
    logger.info("learner %s set share %s %s", learner.id, choice, "on" if enabled else "off")
    turn.reply(turn.t(f"share_{choice}_{'on' if enabled else 'off'}"))
    return True


def _switch_label(turn: Turn, enabled: bool) -> str:
    return turn.t("share_on") if enabled else turn.t("share_off")
