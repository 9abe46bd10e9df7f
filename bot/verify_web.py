"""Hosted verification: the issuer, badge classes and assertions at their ``id`` URLs.

Routes (all GET, read-only):

- ``/ob/issuer``: the issuer profile; ``/ob/issuer/jwks`` and
  ``/ob/issuer/keys/<thumbprint>``: the public key of Open Badges 3.0 credentials
- ``/ob/badges/<badge id>`` and ``/ob/badges/items/<item id>``: badge classes,
  each with ``/image.png`` (or ``/image.svg``)
- ``/ob/framework``: the levels and skills that alignments point to
- ``/ob/status/revocation``: the revocation status list of the 3.0 credentials, a
  VC-JWT (W3C Bitstring Status List) that a verifier may cache for five minutes
- ``/ob/assertions/<uid>``: the assertion, HTTP 410 once revoked; under it
  ``/badge.png`` and ``/badge.svg`` (baked), ``/credential`` (the VC-JWT) and
  ``/evidence/<submission id>`` (a file, only if the learner allows it)
- ``/verify/<uid>``: the verification page for people

An unknown or malformed id answers 404.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot import assertions, credentials, openbadges, status_list
from bot.engine import Engine
from bot.files import file_path
from bot.models import BadgeAssertion, BadgeAward, CredentialStatus, Learner, Submission
from bot.verify_html import (
    PAGE_HEADERS,
    EvidenceView,
    VerificationView,
    render_framework_page,
    render_not_found,
    render_verification_page,
    render_withdrawn,
)

logger = logging.getLogger(__name__)

JSON_LD = "application/ld+json"
PUBLIC_HEADERS = {"Access-Control-Allow-Origin": "*", "X-Content-Type-Options": "nosniff"}
CLASS_CACHE = "public, max-age=300"
ASSERTION_CACHE = "no-cache"
STATUS_LIST_CACHE = f"public, max-age={status_list.TTL_SECONDS}"
SANDBOX_HEADERS = {"Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'",
                   "X-Content-Type-Options": "nosniff"}
"""For files a browser could run (SVG, evidence of any type): no scripts, no same-origin access."""


def _json_ld(document: dict[str, Any], *, status_code: int = 200, cache: str = CLASS_CACHE) -> JSONResponse:
    return JSONResponse(document, status_code=status_code, media_type=JSON_LD,
                        headers={**PUBLIC_HEADERS, "Cache-Control": cache})


def _not_found() -> JSONResponse:
    return JSONResponse({"error": "not found"}, status_code=404, headers=PUBLIC_HEADERS)


def _unavailable() -> JSONResponse:
    return JSONResponse({"error": "the issuer's signing key is not available"}, status_code=503,
                        headers=PUBLIC_HEADERS)


def _gone(document: dict[str, Any]) -> JSONResponse:
    return _json_ld(document, status_code=410, cache=ASSERTION_CACHE)


class BadgeViews:
    """The endpoints, bound to one engine's flows, settings and database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.flows = engine.flows
        self.settings = engine.settings
        self.urls = assertions.urls_for(engine.settings)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        # NOTE: on SQLite every transaction starts with BEGIN IMMEDIATE (bot/db.py), so
        # each verification request briefly takes the write lock and waits behind the bot's
        # own writes. PostgreSQL reads do not block.
        with self.engine.session_factory() as session, session.begin():
            yield session

    def _load(self, session: Session, raw_uid: str) -> tuple[BadgeAssertion, Learner] | None:
        uid = openbadges.parse_uid(raw_uid)
        if uid is None or uid != raw_uid:
            return None
        assertion = session.scalar(
            select(BadgeAssertion).where(BadgeAssertion.uid == uid)
            .options(selectinload(BadgeAssertion.award).selectinload(BadgeAward.learner))
        )
        if assertion is None:
            return None
        return assertion, assertion.award.learner

    @staticmethod
    def _withdrawn(session: Session, raw_uid: str) -> CredentialStatus | None:
        """Return the revoked status entry of a well-formed ``raw_uid`` that has no assertion any more."""
        uid = openbadges.parse_uid(raw_uid)
        if uid is None or uid != raw_uid:
            return None
        return status_list.withdrawn_entry(session, uid)

    def _definition(self, key: str) -> openbadges.BadgeDefinition | None:
        return openbadges.badge_definition(self.flows.catalog, self.flows.texts, key)

    # --- issuer ---------------------------------------------------------------------

    def issuer(self, request: Request) -> Response:
        return _json_ld(openbadges.issuer_profile(self.settings, self.urls))

    def _signing_key(self) -> credentials.SigningKey | None:
        try:
            return credentials.load_signing_key(self.settings)
        except credentials.SigningKeyError as exc:
            logger.error("cannot serve Open Badges 3.0 keys or credentials: %s", exc)
            return None

    def jwks(self, request: Request) -> Response:
        key = self._signing_key()
        if key is None:
            return _unavailable()
        return JSONResponse(credentials.jwks_document(key, self.urls), media_type="application/jwk-set+json",
                            headers={**PUBLIC_HEADERS, "Cache-Control": CLASS_CACHE})

    def key(self, request: Request) -> Response:
        key = self._signing_key()
        if key is None:
            return _unavailable()
        if request.path_params["key_id"] != key.thumbprint:
            return _not_found()
        return JSONResponse(key.published_jwk(self.urls), media_type="application/jwk+json",
                            headers={**PUBLIC_HEADERS, "Cache-Control": CLASS_CACHE})

    def revocation_list(self, request: Request) -> Response:
        key = self._signing_key()
        if key is None:
            return _unavailable()
        now = datetime.now(timezone.utc)
        with self._session() as session:
            document = status_list.status_list_credential(session, self.urls, now)
        token = credentials.sign_status_list(document, now, key, self.urls)
        return Response(token, media_type=credentials.JWT_MEDIA_TYPE,
                        headers={**PUBLIC_HEADERS, "Cache-Control": STATUS_LIST_CACHE})

    def framework(self, request: Request) -> Response:
        page = render_framework_page(self.flows.texts, self.flows.catalog)
        return HTMLResponse(page, headers=PAGE_HEADERS)

    # --- badge classes --------------------------------------------------------------

    def _class_definition(self, request: Request) -> openbadges.BadgeDefinition | None:
        if "item_id" in request.path_params:
            path = openbadges.ITEM_PATH + request.path_params["item_id"]
        else:
            path = request.path_params["badge_id"]
        return self._definition(openbadges.key_for_path(path))

    def badge_class(self, request: Request) -> Response:
        definition = self._class_definition(request)
        if definition is None:
            return _not_found()
        return _json_ld(openbadges.badge_class_document(definition, self.urls))

    def badge_image(self, request: Request, image_format: str) -> Response:
        definition = self._class_definition(request)
        if definition is None or definition.image_format != image_format:
            return _not_found()
        image, actual_format = assertions.badge_image(self.flows, definition)
        if actual_format != image_format:
            return _not_found()
        if image_format == "svg":
            return Response(image, media_type="image/svg+xml", headers={**SANDBOX_HEADERS, **PUBLIC_HEADERS,
                                                                          "Cache-Control": CLASS_CACHE})
        return Response(image, media_type="image/png", headers={**PUBLIC_HEADERS, "Cache-Control": CLASS_CACHE})

    # --- assertions -----------------------------------------------------------------

    def _serve_assertion(self, request: Request,
                         respond: Callable[[Session, BadgeAssertion, Learner], Response]) -> Response:
        """Respond for the assertion named in the path: 404 when unknown, 410 once revoked, else ``respond``.

        An assertion that /forget deleted also answers 410, because its entry in the status list remains.
        """
        with self._session() as session:
            loaded = self._load(session, request.path_params["uid"])
            if loaded is None:
                withdrawn = self._withdrawn(session, request.path_params["uid"])
                if withdrawn is not None:
                    return _gone(openbadges.revocation_document(withdrawn.assertion_uid,
                                                                withdrawn.revocation_reason, self.urls))
                return _not_found()
            assertion, learner = loaded
            if assertion.revoked_at is not None:
                return _gone(openbadges.revoked_document(assertion, self.urls))
            return respond(session, assertion, learner)

    def _status_index(self, session: Session, assertion: BadgeAssertion) -> int:
        # Assertions get their entry when issued, or from migration 0007 when older. An
        # assertion that still has none gets one here, so the request does not fail.
        return status_list.ensure_index(session, assertion.uid, datetime.now(timezone.utc))

    def assertion(self, request: Request) -> Response:
        def respond(session: Session, assertion: BadgeAssertion, learner: Learner) -> Response:
            document = openbadges.assertion_document(assertion, self.urls, files_public=learner.share_files_on_badges)
            return _json_ld(document, cache=ASSERTION_CACHE)

        return self._serve_assertion(request, respond)

    def baked_image(self, request: Request, image_format: str) -> Response:
        def respond(session: Session, assertion: BadgeAssertion, learner: Learner) -> Response:
            filename = assertions.safe_filename(assertion.award.name)
            headers = {**PUBLIC_HEADERS, "Cache-Control": ASSERTION_CACHE,
                       "Content-Disposition": f'attachment; filename="{filename}.{image_format}"'}
            if image_format == "svg":
                svg = assertions.baked_svg(self.flows, self.settings, assertion, learner)
                if svg is None:
                    return _not_found()
                return Response(svg, media_type="image/svg+xml", headers={**SANDBOX_HEADERS, **headers})
            png = assertions.baked_png(self.flows, self.settings, assertion, learner,
                                       status_index=self._status_index(session, assertion))
            return Response(png, media_type="image/png", headers=headers)

        return self._serve_assertion(request, respond)

    def credential(self, request: Request) -> Response:
        def respond(session: Session, assertion: BadgeAssertion, learner: Learner) -> Response:
            definition = self._definition(assertion.badge_key)
            if definition is None:
                logger.warning("assertion %s names badge %s, which the catalog no longer has",
                               assertion.uid, assertion.badge_key)
                return _not_found()
            key = self._signing_key()
            if key is None:
                return _unavailable()
            document = credentials.credential_document(assertion, definition, self.settings, self.urls,
                                                       files_public=learner.share_files_on_badges,
                                                       status_index=self._status_index(session, assertion))
            token = credentials.sign_credential(document, assertion, key, self.urls)
            return Response(token, media_type=credentials.JWT_MEDIA_TYPE,
                            headers={**PUBLIC_HEADERS, "Cache-Control": ASSERTION_CACHE})

        return self._serve_assertion(request, respond)

    def evidence_file(self, request: Request) -> Response:
        submission_id = request.path_params["submission_id"]
        with self._session() as session:
            loaded = self._load(session, request.path_params["uid"])
            if loaded is None:
                return _not_found()
            assertion, learner = loaded
            listed = any(entry.get("submission_id") == submission_id and entry.get("has_file")
                         for entry in assertion.evidence)
            if assertion.revoked_at is not None or not learner.share_files_on_badges or not listed:
                return _not_found()
            submission = session.get(Submission, submission_id)
            if submission is None or submission.learner_id != learner.id or not submission.file_sha256:
                return _not_found()
            path = file_path(self.settings.files_dir, submission.file_sha256)
            media_type = submission.file_type or "application/octet-stream"
            filename = submission.file_name or "evidence"
        if not path.is_file():
            logger.warning("evidence file of submission %s is missing from the file store", submission_id)
            return _not_found()
        return FileResponse(path, media_type=media_type, filename=filename, content_disposition_type="attachment",
                            headers={**SANDBOX_HEADERS, "Cache-Control": ASSERTION_CACHE})

    # --- the page for people ------------------------------------------------------------

    def verify_page(self, request: Request) -> Response:
        texts = self.flows.texts
        with self._session() as session:
            loaded = self._load(session, request.path_params["uid"])
            if loaded is None:
                withdrawn = self._withdrawn(session, request.path_params["uid"])
                if withdrawn is not None:
                    page = render_withdrawn(texts, withdrawn.revoked_at.date().isoformat(),
                                            withdrawn.revocation_reason or "-")
                    return HTMLResponse(page, status_code=410, headers=PAGE_HEADERS)
                return HTMLResponse(render_not_found(texts), status_code=404, headers=PAGE_HEADERS)
            assertion, learner = loaded
            view = self._verification_view(assertion, learner)
        return HTMLResponse(render_verification_page(texts, view), headers=PAGE_HEADERS)

    def _verification_view(self, assertion: BadgeAssertion, learner: Learner) -> VerificationView:
        texts = self.flows.texts
        award = assertion.award
        definition = self._definition(assertion.badge_key)
        revoked = assertion.revoked_at is not None
        now = datetime.now(timezone.utc)

        if revoked:
            status = "revoked"
            status_text = texts("verify_status_revoked", date=assertion.revoked_at.date().isoformat(),
                                reason=assertion.revocation_reason or "-")
        elif assertion.expires_at is not None and assertion.expires_at <= now:
            status = "expired"
            status_text = texts("verify_status_expired", date=assertion.expires_at.date().isoformat())
        else:
            status = "valid"
            status_text = texts("verify_status_valid")

        if learner.share_name_on_badges and learner.name:
            recipient = learner.name
        else:
            recipient = texts("verify_recipient_hidden")

        evidence: tuple[EvidenceView, ...] = ()
        if not revoked:
            documents = openbadges.evidence_documents(assertion, self.urls, files_public=learner.share_files_on_badges)
            evidence = tuple(EvidenceView(entry["name"], entry["narrative"], entry.get("id")) for entry in documents)

        if definition is not None:
            image_url = self.urls.badge_image(definition.path, definition.image_format)
            name, description, criteria = definition.name, definition.description, definition.criteria
        else:
            image_url = self.urls.baked_image(assertion.uid, "png")
            name, description, criteria = award.name, award.name, "-"
        return VerificationView(
            status=status,
            status_text=status_text,
            badge_name=name,
            badge_description=description,
            badge_image_url=image_url,
            criteria=criteria,
            recipient=recipient,
            issuer_name=self.settings.issuer_name,
            issuer_url=self.settings.issuer_url,
            issued_on=assertion.issued_on.date().isoformat(),
            expires_on=assertion.expires_at.date().isoformat() if assertion.expires_at is not None else None,
            evidence=evidence,
            assertion_url=self.urls.assertion(assertion.uid),
            credential_url=None if revoked or definition is None else self.urls.credential(assertion.uid),
            download_url=None if revoked else self.urls.baked_image(assertion.uid, "png"),
        )


def _with_format(view: Callable[[Request, str], Response], image_format: str) -> Callable[[Request], Response]:
    def endpoint(request: Request) -> Response:
        return view(request, image_format)

    endpoint.__name__ = f"{view.__name__}_{image_format}"
    return endpoint


def web_routes(engine: Engine) -> list[BaseRoute]:
    """The badge verification routes; ``careerbot serve`` always mounts them."""
    views = BadgeViews(engine)
    return [
        Route("/ob/issuer", views.issuer, methods=["GET"]),
        Route("/ob/issuer/jwks", views.jwks, methods=["GET"]),
        Route("/ob/issuer/keys/{key_id}", views.key, methods=["GET"]),
        Route("/ob/framework", views.framework, methods=["GET"]),
        Route("/ob/status/revocation", views.revocation_list, methods=["GET"]),
        Route("/ob/badges/items/{item_id}", views.badge_class, methods=["GET"]),
        Route("/ob/badges/items/{item_id}/image.png", _with_format(views.badge_image, "png"), methods=["GET"]),
        Route("/ob/badges/items/{item_id}/image.svg", _with_format(views.badge_image, "svg"), methods=["GET"]),
        Route("/ob/badges/{badge_id}", views.badge_class, methods=["GET"]),
        Route("/ob/badges/{badge_id}/image.png", _with_format(views.badge_image, "png"), methods=["GET"]),
        Route("/ob/badges/{badge_id}/image.svg", _with_format(views.badge_image, "svg"), methods=["GET"]),
        Route("/ob/assertions/{uid}", views.assertion, methods=["GET"]),
        Route("/ob/assertions/{uid}/badge.png", _with_format(views.baked_image, "png"), methods=["GET"]),
        Route("/ob/assertions/{uid}/badge.svg", _with_format(views.baked_image, "svg"), methods=["GET"]),
        Route("/ob/assertions/{uid}/credential", views.credential, methods=["GET"]),
        Route("/ob/assertions/{uid}/evidence/{submission_id:int}", views.evidence_file, methods=["GET"]),
        Route("/verify/{uid}", views.verify_page, methods=["GET"]),
    ]
