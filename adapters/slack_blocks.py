"""Block Kit for careerbot's messages, review cards, the change-request modal and App Home.

Every builder here keeps to Slack's Block Kit limits. A text object holds at
most 3000 characters, a message at most 50 blocks and a modal or Home tab at
most 100 (https://docs.slack.dev/reference/block-kit/composition-objects/text-object,
https://docs.slack.dev/reference/views/modal-views). An actions block holds at
most 25 elements, and a button's text, value and action_id at most 75, 2000
and 255 characters. Text from the core is plain and is escaped here, so
nothing a user typed is sent as markup.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adapters.slack_text import SLASH_COMMAND, escape, shorten, slash_commands, split_sections
from bot.commands import COORDINATOR_COMMANDS, LEARNER_COMMANDS, REVIEWER_COMMANDS
from bot.events import Button
from bot.home import LearnerHome
from bot.review import FEEDBACK_MAX_CHARS, ChangeRequestForm
from bot.texts import Texts

logger = logging.getLogger(__name__)

MESSAGE_MAX_BLOCKS = 50
VIEW_MAX_BLOCKS = 100
ACTIONS_MAX_ELEMENTS = 25
BUTTON_TEXT_MAX_CHARS = 75
BUTTON_VALUE_MAX_CHARS = 2000
FALLBACK_MAX_CHARS = 3000
"""Maximum length of a message's top-level ``text``, which notifications show; the blocks carry the whole text."""
MODAL_TITLE_MAX_CHARS = 24
HEADER_MAX_CHARS = 150
OPTION_TEXT_MAX_CHARS = 75
INPUT_LABEL_MAX_CHARS = 2000
PRIVATE_METADATA_MAX_CHARS = 3000

CARD_EVIDENCE_MAX_CHARS = 6000
"""Maximum evidence length a review card shows (two full sections). Longer
evidence is cut in the card and posted whole as a reply in the card's thread."""

BUTTON_ACTION_PREFIX = "careerbot-"
CHANGE_REQUEST_CALLBACK = "careerbot-change-request"
FEEDBACK_BLOCK = "feedback"
FEEDBACK_ACTION = "text"
CRITERION_ACTION = "met"


@dataclass(frozen=True)
class RenderedMessage:
    """Blocks for one message, the notification text, and any text that did not fit (for a thread reply)."""

    blocks: list[dict[str, Any]]
    text: str
    overflow: str | None = None


def section(text: str) -> dict[str, Any]:
    """Build a section of plain text; ``verbatim`` stops Slack from turning names or @channel into mentions."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": escape(text), "verbatim": True}}


def _sections(text: str) -> list[dict[str, Any]]:
    return [section(piece) for piece in split_sections(text)]


def _button_blocks(buttons: tuple[Button, ...]) -> list[dict[str, Any]]:
    elements = []
    for index, button in enumerate(buttons):
        if len(button.action) > BUTTON_VALUE_MAX_CHARS:
            logger.error("button %r dropped: its action is %d characters, Slack allows %d",
                         button.label, len(button.action), BUTTON_VALUE_MAX_CHARS)
            continue
        elements.append({
            "type": "button",
            "text": {"type": "plain_text", "text": shorten(button.label, BUTTON_TEXT_MAX_CHARS) or "-", "emoji": True},
            "action_id": f"{BUTTON_ACTION_PREFIX}{index}",
            "value": button.action,
        })
    return [
        {"type": "actions", "elements": elements[start:start + ACTIONS_MAX_ELEMENTS]}
        for start in range(0, len(elements), ACTIONS_MAX_ELEMENTS)
    ]


CORE_COMMANDS = frozenset(LEARNER_COMMANDS) | frozenset(REVIEWER_COMMANDS) | frozenset(COORDINATOR_COMMANDS)


def slack_wording(text: str, verbatim: Sequence[str] = ()) -> str:
    """Spell the core's commands the Slack way in ``text``, except in the user-written ``verbatim`` parts."""
    return slash_commands(text, SLASH_COMMAND, CORE_COMMANDS, verbatim)


def render_message(text: str, buttons: tuple[Button, ...] = ()) -> RenderedMessage:
    """Lay out plain text as sections followed by its buttons, within 50 blocks.

    Text that needs more sections than fit is cut after the last section that
    fits, marked with an ellipsis, and the rest is returned as ``overflow`` for
    a thread reply. Callers apply :func:`slack_wording` first.
    """
    pieces = split_sections(text)
    actions = _button_blocks(buttons)
    room = MESSAGE_MAX_BLOCKS - len(actions)
    overflow = None
    if len(pieces) > room:
        kept = room - 1
        overflow = "\n".join(pieces[kept:])
        pieces = pieces[:kept]
    blocks = [section(piece) for piece in pieces]
    if overflow is not None:
        blocks.append({"type": "context", "elements": [{"type": "plain_text", "text": "…"}]})
    return RenderedMessage(blocks + actions, escape(shorten(text, FALLBACK_MAX_CHARS)) or " ", overflow)


def thread_messages(text: str) -> list[RenderedMessage]:
    """Split long plain text into as many messages of sections as it needs."""
    pieces = split_sections(text)
    return [
        RenderedMessage([section(piece) for piece in pieces[start:start + MESSAGE_MAX_BLOCKS]],
                        escape(shorten(pieces[start], FALLBACK_MAX_CHARS)))
        for start in range(0, len(pieces), MESSAGE_MAX_BLOCKS)
    ]


def shorten_card_evidence(text: str, evidence: str | None, texts: Texts) -> tuple[str, bool]:
    """Cut long evidence inside a review card's text; True when the card no longer shows all of it."""
    if not evidence or len(evidence) <= CARD_EVIDENCE_MAX_CHARS or evidence not in text:
        return text, False
    shown = shorten(evidence, CARD_EVIDENCE_MAX_CHARS)
    note = texts("evidence_truncated", total=len(evidence), shown=len(shown))
    return text.replace(evidence, f"{shown}\n{note}", 1), True


def choice_made_blocks(original_blocks: list[dict[str, Any]], label: str | None,
                       texts: Texts) -> list[dict[str, Any]]:
    """Remove the buttons from the pressed message's blocks and add a line saying what was chosen.

    Without a ``label`` (the press chose nothing) only the buttons go.
    """
    kept = [block for block in original_blocks if block.get("type") != "actions"]
    if label is None:
        return kept
    note = {"type": "context", "elements": [{"type": "mrkdwn", "text": escape(texts("button_chosen", choice=label)),
                                             "verbatim": True}]}
    return (kept + [note])[-MESSAGE_MAX_BLOCKS:]


# --- the change-request modal ---------------------------------------------------


def change_request_view(form: ChangeRequestForm, chat_id: str, texts: Texts) -> dict[str, Any]:
    """Build a modal with one required met / not met choice per criterion and a required feedback field."""
    metadata = json.dumps({"submission_id": form.submission_id, "chat_id": chat_id, "criteria": len(form.criteria)})
    assert len(metadata) <= PRIVATE_METADATA_MAX_CHARS
    options = [
        {"text": {"type": "plain_text", "text": shorten(texts("review_met"), OPTION_TEXT_MAX_CHARS)}, "value": "1"},
        {"text": {"type": "plain_text", "text": shorten(texts("review_not_met"), OPTION_TEXT_MAX_CHARS)}, "value": "0"},
    ]
    blocks = _sections(texts("review_form_intro", submission_id=form.submission_id, title=form.title))
    for number, criterion in enumerate(form.criteria, start=1):
        label = texts("review_form_criterion", number=number, criterion=criterion)
        blocks.append({
            "type": "input",
            "block_id": criterion_block_id(number),
            "label": {"type": "plain_text", "text": shorten(label, INPUT_LABEL_MAX_CHARS)},
            "element": {"type": "radio_buttons", "action_id": CRITERION_ACTION, "options": options},
        })
    blocks.append({
        "type": "input",
        "block_id": FEEDBACK_BLOCK,
        "label": {"type": "plain_text", "text": shorten(texts("review_form_feedback"), INPUT_LABEL_MAX_CHARS)},
        "element": {"type": "plain_text_input", "action_id": FEEDBACK_ACTION, "multiline": True,
                    "min_length": 1, "max_length": FEEDBACK_MAX_CHARS},
    })
    return {
        "type": "modal",
        "callback_id": CHANGE_REQUEST_CALLBACK,
        "title": {"type": "plain_text", "text": shorten(texts("review_request_changes"), MODAL_TITLE_MAX_CHARS)},
        "submit": {"type": "plain_text", "text": shorten(texts("review_form_submit"), MODAL_TITLE_MAX_CHARS)},
        "private_metadata": metadata,
        "blocks": blocks[:VIEW_MAX_BLOCKS],
    }


def criterion_block_id(number: int) -> str:
    return f"criterion-{number}"


@dataclass(frozen=True)
class SubmittedForm:
    """A reviewer's choices and feedback from the change-request modal."""

    submission_id: int
    chat_id: str
    criteria_met: tuple[bool, ...]
    feedback: str


def read_change_request(view: dict[str, Any]) -> SubmittedForm:
    """Read the reviewer's choices and feedback from a submitted change-request modal.

    Raises:
        ValueError: the view lacks a field the modal always has (not careerbot's modal).
    """
    try:
        metadata = json.loads(view["private_metadata"])
        values = view["state"]["values"]
        criteria_met = tuple(
            values[criterion_block_id(number)][CRITERION_ACTION]["selected_option"]["value"] == "1"
            for number in range(1, int(metadata["criteria"]) + 1)
        )
        feedback = values[FEEDBACK_BLOCK][FEEDBACK_ACTION].get("value") or ""
        return SubmittedForm(int(metadata["submission_id"]), str(metadata["chat_id"]), criteria_met, feedback)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a careerbot change-request form: {type(exc).__name__}: {exc}") from None


# --- App Home -------------------------------------------------------------------


def home_view(home: LearnerHome) -> dict[str, Any]:
    """Build the Home tab: title, intro, next step, each level with its items, the legend and badges."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": shorten(home.title, HEADER_MAX_CHARS)}}
    ]
    if home.intro:
        blocks.extend(_sections(home.intro))
    if home.next_step:
        blocks.extend(_sections(home.next_step))
    for level in home.levels:
        blocks.append({"type": "divider"})
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*{escape(shorten(level.heading, 2900))}*",
                                                   "verbatim": True}})
        blocks.extend(_sections("\n".join(level.lines)))
    if home.legend:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(home.legend),
                                                        "verbatim": True}]})
    if home.badges:
        blocks.append({"type": "divider"})
        blocks.extend(_sections(home.badges))
    if len(blocks) > VIEW_MAX_BLOCKS:
        logger.warning("home view for %s has %d blocks; only the first %d are shown",
                       home.user_id, len(blocks), VIEW_MAX_BLOCKS)
    return {"type": "home", "blocks": blocks[:VIEW_MAX_BLOCKS]}
