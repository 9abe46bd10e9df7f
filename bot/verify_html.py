"""The human-readable pages of badge verification, as HTML strings.

Every value that comes from a learner, a reviewer, the catalog or the
configuration is passed through :func:`html.escape`, so a name such as
``<script>`` shows as text. Links are only written for http and https URLs.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.catalog import Catalog
from bot.texts import Texts

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; background: #f5f6f8; color: #1d2330; }
main { max-width: 42rem; margin: 2rem auto; background: #fff; padding: 2rem; border-radius: 8px; }
img.badge { display: block; margin: 0 auto 1rem; width: 200px; height: 200px; }
.status { padding: 0.6rem 1rem; border-radius: 6px; font-weight: 600; }
.status-valid { background: #e3f4e8; color: #1f5c3a; }
.status-expired { background: #fdf1d8; color: #7a5200; }
.status-revoked { background: #fbe3e3; color: #8a1f1f; }
.text { white-space: pre-line; }
dt { font-weight: 600; margin-top: 0.6rem; }
dd { margin-left: 0; }
footer { margin-top: 2rem; font-size: 0.9rem; }
"""

CONTENT_SECURITY_POLICY = "default-src 'none'; img-src 'self' https: http: data:; style-src 'unsafe-inline'"
"""No scripts at all; images from anywhere so that a configured logo can show."""

PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def _link(url: str, label: str) -> str:
    """An anchor for an http(s) URL; other schemes (javascript:, data:) are shown as text."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return _escape(label)
    return f'<a href="{_escape(url)}">{_escape(label)}</a>'


def _page(title: str, body: str, *, alternate: str | None = None) -> str:
    head_link = f'<link rel="alternate" type="application/ld+json" href="{_escape(alternate)}">' if alternate else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_escape(title)}</title>{head_link}<style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


@dataclass(frozen=True)
class EvidenceView:
    name: str
    narrative: str
    url: str | None = None


@dataclass(frozen=True)
class VerificationView:
    """What the verification page of one assertion shows."""

    status: str
    status_text: str
    badge_name: str
    badge_description: str
    badge_image_url: str
    criteria: str
    recipient: str
    issuer_name: str
    issuer_url: str
    issued_on: str
    expires_on: str | None
    evidence: tuple[EvidenceView, ...]
    assertion_url: str
    credential_url: str | None
    download_url: str | None


def render_verification_page(texts: Texts, view: VerificationView) -> str:
    """Render the page that tells a person whether a badge is genuine and what it stands for."""
    parts = [
        f'<p class="status status-{_escape(view.status)}">{_escape(view.status_text)}</p>',
        f'<img class="badge" src="{_escape(view.badge_image_url)}" alt="{_escape(view.badge_name)}">',
        f"<h1>{_escape(view.badge_name)}</h1>",
        f'<p class="text">{_escape(view.badge_description)}</p>',
        "<dl>",
        f"<dt>{_escape(texts('verify_recipient'))}</dt><dd>{_escape(view.recipient)}</dd>",
        f"<dt>{_escape(texts('verify_issuer'))}</dt><dd>{_link(view.issuer_url, view.issuer_name)}</dd>",
        f"<dt>{_escape(texts('verify_issued_on'))}</dt><dd>{_escape(view.issued_on)}</dd>",
    ]
    if view.expires_on is not None:
        parts.append(f"<dt>{_escape(texts('verify_expires'))}</dt><dd>{_escape(view.expires_on)}</dd>")
    parts.append("</dl>")
    parts.append(f"<h2>{_escape(texts('verify_criteria'))}</h2>")
    parts.append(f'<div class="text">{_escape(view.criteria)}</div>')

    if view.evidence:
        parts.append(f"<h2>{_escape(texts('verify_evidence'))}</h2>")
        for entry in view.evidence:
            title = _link(entry.url, entry.name) if entry.url else _escape(entry.name)
            parts.append(f"<h3>{title}</h3>")
            parts.append(f'<div class="text">{_escape(entry.narrative)}</div>')

    links = [_link(view.assertion_url, texts("verify_link_ob2"))]
    if view.credential_url:
        links.append(_link(view.credential_url, texts("verify_link_ob3")))
    if view.download_url:
        links.append(_link(view.download_url, texts("verify_link_download")))
    parts.append(f"<footer>{' · '.join(links)}</footer>")
    return _page(texts("verify_page_title", badge=view.badge_name), "\n".join(parts), alternate=view.assertion_url)


def render_not_found(texts: Texts) -> str:
    body = f"<h1>{_escape(texts('verify_not_found_title'))}</h1><p>{_escape(texts('verify_not_found'))}</p>"
    return _page(texts("verify_not_found_title"), body)


def render_withdrawn(texts: Texts, date: str, reason: str) -> str:
    """Render the page of a badge whose record is gone but whose revocation is kept; it shows no holder."""
    body = (f"<h1>{_escape(texts('verify_withdrawn_title'))}</h1>"
            f"<p>{_escape(texts('verify_withdrawn', date=date, reason=reason))}</p>")
    return _page(texts("verify_withdrawn_title"), body)


def render_framework_page(texts: Texts, catalog: Catalog) -> str:
    """Render the levels and 21st Century Skills that badge alignments point to (``#level-N``, ``#skill-ID``)."""
    program = catalog.program
    parts = [f"<h1>{_escape(program.name)}</h1>", f'<p class="text">{_escape(program.description)}</p>',
             f"<h2>{_escape(texts('ob_framework_levels', program=program.name))}</h2>"]
    for level in catalog.levels:
        anchor = f"level-{level.number}"
        name = texts("ob_alignment_level", number=level.number, name=level.name)
        parts.append(f'<h3 id="{_escape(anchor)}">{_escape(name)}</h3>')
        parts.append(f'<p class="text">{_escape(level.description)}</p>')
    parts.append(f"<h2>{_escape(texts('ob_framework_skills'))}</h2>")
    for skill in catalog.skills:
        parts.append(f'<h3 id="skill-{_escape(skill.id)}">{_escape(skill.name)}</h3>')
        parts.append(f'<p class="text">{_escape(skill.description)}</p>')
        items = "".join(f"<li>{_escape(criterion.text)}</li>" for criterion in skill.subcompetencies)
        parts.append(f"<ul>{items}</ul>")
    return _page(program.name, "\n".join(parts))
