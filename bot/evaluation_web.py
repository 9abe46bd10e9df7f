"""The supervisor evaluation page at ``/evaluate/<token>``: GET shows the form, POST records the evaluation.

The page is plain HTML without JavaScript. Every word on it comes from
``flows/evaluation.yaml`` and the catalog's ``evaluation_rubric``, and Jinja2
escapes every value, so text a learner or supervisor typed shows as written.
A link that is unknown, expired, used or revoked gets a page that names only
that fact (status 404 or 410). A posted form is checked for its size, its
CSRF token and each field before one engine transaction stores the
submission and the messages to the learner and the reviewers.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Route

from bot import evaluation_form as form
from bot.engine import Engine
from bot.evaluation_requests import (
    LINK_PATH,
    LinkState,
    find_by_token,
    format_time,
    learner_name,
    record_evaluation,
)
from bot.events import InboundEvent

logger = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
STYLESHEET = (TEMPLATES_DIR / "evaluation.css").read_text(encoding="utf-8")
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

STATUS_PAGES = {
    LinkState.UNKNOWN: ("unknown_title", "unknown_body", 404),
    LinkState.EXPIRED: ("expired_title", "expired_body", 410),
    LinkState.USED: ("used_title", "used_body", 410),
    LinkState.REVOKED: ("revoked_title", "revoked_body", 410),
}


ALLOWED_METHODS = ("GET", "HEAD", "POST")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
"""The methods routed to the page, so that the ones it does not allow also get its headers with their 405."""

def _style_hash(stylesheet: str) -> str:
    digest = hashlib.sha256(stylesheet.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


SECURITY_HEADERS = {
    # The one inline stylesheet is allowed by its hash; nothing else loads, and forms post only here.
    "Content-Security-Policy": (
        f"default-src 'none'; style-src '{_style_hash(STYLESHEET)}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    # The link token is in the URL, so no other site may see it as a referrer.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Placement:
    """The learner's name and placement as the form shows them; the form shows nothing else of the learner."""

    request_id: int
    learner: str
    supervisor: str
    organization: str
    start: str
    end: str
    expires: str


class EvaluationPages:
    """The page's handlers for one engine; the form secret is read once, at start."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.secret = form.load_form_secret(engine.settings)
        self.environment = Environment(
            loader=FileSystemLoader(TEMPLATES_DIR), autoescape=True, undefined=StrictUndefined,
            trim_blocks=True, lstrip_blocks=True,
        )

    async def endpoint(self, request: Request) -> HTMLResponse:
        token = request.path_params["token"]
        if request.method not in ALLOWED_METHODS:
            # Handled here rather than by the router, so that this page has the security headers too.
            response = self.invalid_request_page(405)
            response.headers["Allow"] = ", ".join(ALLOWED_METHODS)
            return response
        if self.engine.flows.catalog.evaluation_rubric is None:
            return self.status_page(LinkState.UNKNOWN)  # this program's catalog has no supervisor evaluations
        if request.method == "POST":
            return await self.receive(request, token)
        return await run_in_threadpool(self.show, token)

    # --- GET -------------------------------------------------------------------------

    def show(self, token: str) -> HTMLResponse:
        state, placement = self._open(token)
        if placement is None:
            return self.status_page(state)
        return self.form_page(placement, token, {}, {})

    def _open(self, token: str) -> tuple[LinkState, Placement | None]:
        """Look the link up; the placement comes back only for a link that works."""
        now = self.engine.clock()
        with self.engine.session_factory() as session, session.begin():
            state, request = find_by_token(session, token, now)
            if request is None:
                return state, None
            placement = Placement(
                request_id=request.id,
                learner=learner_name(self.engine.flows, request.learner),
                supervisor=request.supervisor_name,
                organization=request.supervisor_organization,
                start=request.placement_start.isoformat(),
                end=request.placement_end.isoformat(),
                expires=format_time(request.expires_at),
            )
        return state, placement

    # --- POST ------------------------------------------------------------------------

    async def receive(self, request: Request, token: str) -> HTMLResponse:
        rubric = self.engine.flows.catalog.evaluation_rubric
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != FORM_CONTENT_TYPE:
            logger.warning("evaluation form rejected: content type %r", content_type[:60])
            return self.invalid_request_page(415)
        body = await _read_body(request, form.max_body_bytes(rubric))
        if body is None:
            logger.warning("evaluation form rejected: body over %d bytes", form.max_body_bytes(rubric))
            return self.invalid_request_page(413)
        try:
            fields = parse_qs(body.decode("ascii"), keep_blank_values=True, errors="strict",
                              max_num_fields=len(form.field_names(rubric)) + 10)
        except ValueError:  # not ASCII, invalid UTF-8 after decoding, or too many fields
            logger.warning("evaluation form rejected: body could not be parsed")
            return self.invalid_request_page(400)
        return await run_in_threadpool(self._receive_fields, token, fields)

    def _receive_fields(self, token: str, fields: dict[str, list[str]]) -> HTMLResponse:
        rubric = self.engine.flows.catalog.evaluation_rubric
        state, placement = self._open(token)
        if placement is None:
            return self.status_page(state)

        csrf_values = fields.get(form.CSRF_FIELD) or [""]
        csrf = form.check_csrf(self.secret, token, csrf_values[0], self.engine.clock())
        if csrf is form.CsrfCheck.INVALID or len(csrf_values) > 1:
            logger.warning("evaluation form for request %s rejected: CSRF token invalid", placement.request_id)
            return self.page("forbidden_title", "forbidden_body", 403)
        try:
            parsed = form.parse_answers(rubric, fields)
        except form.DuplicateField as exc:
            logger.warning("evaluation form for request %s rejected: field %s sent twice", placement.request_id, exc)
            return self.invalid_request_page(400)
        if csrf is form.CsrfCheck.STALE:
            notice = self.engine.flows.evaluation_texts("error_form_timed_out")
            return self.form_page(placement, token, parsed.values, parsed.errors, notice=notice, status_code=400)
        if parsed.errors:
            logger.info("evaluation form for request %s returned with %d field error(s)", placement.request_id,
                        len(parsed.errors))
            return self.form_page(placement, token, parsed.values, parsed.errors, status_code=422)

        event = InboundEvent(
            platform="web",
            user_id=f"supervisor-{placement.request_id}",
            chat_id="evaluation-form",
            update_id=f"evaluation:{placement.request_id}",
            display_name=placement.supervisor,
        )
        recorded, handled = self.engine.run(event, lambda turn: record_evaluation(turn, token, parsed.answers))
        if handled.duplicate:
            return self.status_page(LinkState.USED)
        if recorded is not LinkState.VALID:
            return self.status_page(recorded)
        return self.page("done_title", "done_body", 200)

    # --- rendering -------------------------------------------------------------------

    def _render(self, template: str, status_code: int, **context) -> HTMLResponse:
        texts = self.engine.flows.evaluation_texts
        program = self.engine.flows.catalog.program.name
        html = self.environment.get_template(template).render(
            t=texts, lang=texts("language"), css=STYLESHEET, footer=texts("footer", program=program), **context
        )
        return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)

    def page(self, title_key: str, body_key: str, status_code: int) -> HTMLResponse:
        texts = self.engine.flows.evaluation_texts
        return self._render("evaluation_status.html", status_code, heading=texts(title_key), body=texts(body_key))

    def status_page(self, state: LinkState) -> HTMLResponse:
        title_key, body_key, status_code = STATUS_PAGES[state]
        return self.page(title_key, body_key, status_code)

    def invalid_request_page(self, status_code: int) -> HTMLResponse:
        return self.page("invalid_request_title", "invalid_request_body", status_code)

    def form_page(self, placement: Placement, token: str, values: dict[str, str], errors: dict[str, form.FieldError],
                  *, notice: str | None = None, status_code: int = 200) -> HTMLResponse:
        texts = self.engine.flows.evaluation_texts
        rubric = self.engine.flows.catalog.evaluation_rubric
        messages = {name: texts(error.key, **error.values) for name, error in errors.items()}
        scale = [level.value for level in rubric.scale]
        return self._render(
            "evaluation_form.html",
            status_code,
            learner=placement.learner,
            supervisor=placement.supervisor,
            organization=placement.organization,
            program=self.engine.flows.catalog.program.name,
            start=placement.start,
            end=placement.end,
            expires=placement.expires,
            rubric=rubric,
            lowest=min(scale),
            highest=max(scale),
            values=values,
            errors=messages,
            error_links=[(_anchor(name, rubric), message) for name, message in messages.items()],
            notice=notice,
            action=token,  # relative, so the form also posts correctly behind a proxy that adds a path prefix
            csrf_field=form.CSRF_FIELD,
            csrf=form.csrf_token(self.secret, token, self.engine.clock()),
            comment_max=form.COMMENT_MAX_CHARS,
            overall_comment_max=form.OVERALL_COMMENT_MAX_CHARS,
            name_max=form.EVALUATOR_NAME_MAX_CHARS,
            title_max=form.EVALUATOR_TITLE_MAX_CHARS,
        )


def _anchor(name: str, rubric) -> str:
    """Return the id of the input an error summary link jumps to: the first option of a radio group."""
    if name.startswith("rating-"):
        return f"{name}-{rubric.scale[0].value}"
    if name == form.RECOMMENDATION:
        return f"recommendation-{rubric.recommendations[0].id}"
    return name


async def _read_body(request: Request, limit: int) -> bytes | None:
    """Read the request body, or return None as soon as it grows past ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class HideLinkTokens(logging.Filter):
    """Replace the token of every evaluation link in a log record's arguments with ``<token>``.

    uvicorn's access log writes each request's path, and a link's path is its token.
    """

    PATTERN = re.compile(re.escape(LINK_PATH) + r"[^/?#\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.PATTERN.sub(LINK_PATH + "<token>", value) if isinstance(value, str) else value
                for value in record.args
            )
        return True


def hide_tokens_in_access_log() -> None:
    """Add :class:`HideLinkTokens` to uvicorn's access logger, once per process."""
    access_logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(existing, HideLinkTokens) for existing in access_logger.filters):
        access_logger.addFilter(HideLinkTokens())


def web_routes(engine: Engine) -> list[BaseRoute]:
    """Return the evaluation page's route, for ``bot.web.create_app``."""
    pages = EvaluationPages(engine)
    hide_tokens_in_access_log()
    return [Route(LINK_PATH + "{token}", pages.endpoint, methods=list(HTTP_METHODS))]
