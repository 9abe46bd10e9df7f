"""Submitting evidence: choose an item, give the evidence, see it, confirm.

The evidence is saved as a draft submission as soon as it passes its checks,
so leaving the detour with /cancel, or a restart, keeps it; the learner sees
the draft again next time they pick the item. Confirming turns the draft into
a pending submission and posts it to the reviewers.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from bot import account, review_cards, supervisor
from bot.conversation import HOME, SUBMIT_CONFIRM, SUBMIT_INPUT, SUBMIT_ITEM, SUBMIT_KIND, Conversation
from bot.events import Attachment, Button
from bot.files import store_file
from bot.models import PathwayItem, Submission
from bot.pathway import ItemInfo, find_item_info, item_info
from bot.turn import Turn
from bot.validate import InvalidInput, check_length, check_link, clean_text, file_extension, match_choice
from bot.questions import ChoiceSpec

logger = logging.getLogger(__name__)

OPEN_STATUSES = ("open", "changes_requested")
EVALUATION_KIND = "evaluation"
"""Not a kind the learner sends: choosing it starts the supervisor details detour (bot.supervisor)."""


def eligible_items(turn: Turn) -> list[PathwayItem]:
    """Active items the learner can submit for now: not approved, not awaiting review, still in the catalog."""
    catalog = turn.flows.catalog
    return [
        item for item in turn.learner.items
        if item.active and item.status in OPEN_STATUSES and find_item_info(catalog, item.item_key) is not None
    ]


def find_draft(turn: Turn, item: PathwayItem) -> Submission | None:
    return turn.session.scalar(
        select(Submission).where(Submission.item_id == item.id, Submission.status == "draft")
    )


def current_item(turn: Turn) -> PathwayItem | None:
    item_id = turn.learner.context.get("submit_item_id")
    return next((item for item in turn.learner.items if item.id == item_id), None)


def item_gone(turn: Turn) -> bool:
    """True when the learner is past choosing an item, and that item is missing or no longer in the catalog."""
    if turn.learner.state not in (SUBMIT_KIND, SUBMIT_INPUT, SUBMIT_CONFIRM):
        return False
    item = current_item(turn)
    return item is None or find_item_info(turn.flows.catalog, item.item_key) is None


def _set_context(turn: Turn, **values: object) -> None:
    turn.learner.context = {**turn.learner.context, **values}


def _item_label(turn: Turn, item: PathwayItem) -> str:
    return turn.t("submit_item_label", level=item.level, title=item.title)


def _typed_item_choices(turn: Turn, items: list[PathwayItem]) -> tuple[ChoiceSpec, ...]:
    """Build a choice per listed item whose value is the item's number in the list.

    A typed number means a place in the list. Item ids are numbers too, so
    with ids as values, typing "3" could pick the item with id 3 instead.
    """
    return tuple(
        ChoiceSpec(value=str(number), label=_item_label(turn, item)[:60]) for number, item in enumerate(items, start=1)
    )


def start(turn: Turn, conversation: Conversation, argument: str) -> None:
    """/submit: list the items that take evidence now, or pick one named in the argument."""
    if not eligible_items(turn):
        turn.reply(turn.t("submit_nothing_open"))
        return
    conversation.fire(turn.learner, "submit")
    if argument:
        handle_item(turn, conversation, argument)
        return
    prompt_item(turn, conversation)


def prompt_item(turn: Turn, conversation: Conversation) -> None:
    items = eligible_items(turn)
    lines = [turn.t("submit_choose_item")]
    for number, item in enumerate(items, start=1):
        draft = turn.t("submit_has_draft") if find_draft(turn, item) is not None else ""
        lines.append(f"{number}. {_item_label(turn, item)}{draft}")
    buttons = [Button(_item_label(turn, item)[:60], f"{SUBMIT_ITEM}:{item.id}") for item in items]
    turn.reply("\n".join(lines), buttons)


def handle_item(turn: Turn, conversation: Conversation, text: str) -> None:
    """Take a typed choice of item: its number in the list or its label."""
    items = eligible_items(turn)
    try:
        chosen = match_choice(text, _typed_item_choices(turn, items))
    except InvalidInput as problem:
        turn.reply(turn.t(problem.key, **problem.values))
        prompt_item(turn, conversation)
        return
    select_item(turn, conversation, items[int(chosen.value) - 1])


def press_item(turn: Turn, conversation: Conversation, value: str) -> None:
    """Take an item button, whose value is the item's id; an item no longer listed makes it stale."""
    item = next((entry for entry in eligible_items(turn) if str(entry.id) == value), None)
    if item is None:
        logger.warning("item button %r of learner %s is for an item not open now", value, turn.learner.id)
        turn.action_expired = True
        turn.reply(turn.t("button_expired"))
        prompt_item(turn, conversation)
        return
    select_item(turn, conversation, item)


def select_item(turn: Turn, conversation: Conversation, item: PathwayItem) -> None:
    """Store the chosen item; show its rubric and ask for the evidence kind (or the draft)."""
    info = item_info(turn.flows.catalog, item.item_key)
    _set_context(turn, submit_item_id=item.id, submit_kind=None)
    turn.reply(describe_item(turn, item, info))

    draft = find_draft(turn, item)
    if draft is not None:
        _set_context(turn, submit_kind=draft.kind)
        conversation.fire(turn.learner, "review_draft")
        prompt_confirm(turn, conversation)
        return
    if len(_kind_choices(turn, info)) == 1:
        choose_kind(turn, conversation, info.evidence.kinds[0])
        return
    conversation.fire(turn.learner, "choose_kind")
    prompt_kind(turn, conversation)


def describe_item(turn: Turn, item: PathwayItem, info: ItemInfo) -> str:
    criteria = "\n".join(f"{number}. {criterion.text}" for number, criterion in enumerate(info.rubric, start=1))
    return turn.t(
        "item_details",
        title=info.title,
        level=info.level,
        description=info.description.strip(),
        criteria=criteria,
        target_date=item.target_date.isoformat() if item.target_date else "-",
    )


def _kind_choices(turn: Turn, info: ItemInfo) -> tuple[ChoiceSpec, ...]:
    """The item's evidence kinds, and a supervisor's web form where the catalog offers one."""
    kinds = list(info.evidence.kinds)
    if info.supervisor_evaluation:
        kinds.append(EVALUATION_KIND)
    return tuple(ChoiceSpec(value=kind, label=turn.t(f"kind_{kind}")) for kind in kinds)


def prompt_kind(turn: Turn, conversation: Conversation) -> None:
    info = item_info(turn.flows.catalog, current_item(turn).item_key)
    buttons = [Button(choice.label, f"{SUBMIT_KIND}:{choice.value}") for choice in _kind_choices(turn, info)]
    turn.reply(turn.t("submit_choose_kind"), buttons)


def handle_kind(turn: Turn, conversation: Conversation, text: str) -> None:
    info = item_info(turn.flows.catalog, current_item(turn).item_key)
    try:
        chosen = match_choice(text, _kind_choices(turn, info))
    except InvalidInput as problem:
        turn.reply(turn.t(problem.key, **problem.values))
        prompt_kind(turn, conversation)
        return
    choose_kind(turn, conversation, chosen.value)


def choose_kind(turn: Turn, conversation: Conversation, kind: str) -> None:
    """Store the evidence kind; a plan is drafted at once, other kinds are asked for."""
    if kind == EVALUATION_KIND:
        supervisor.start(turn, conversation, current_item(turn))
        return
    _set_context(turn, submit_kind=kind)
    if kind == "plan":
        item = current_item(turn)
        text = "\n".join(conversation.plan_lines(turn, turn.learner))
        save_draft(turn, item, kind="plan", text=text)
        conversation.fire(turn.learner, "review_draft")
        prompt_confirm(turn, conversation)
        return
    conversation.fire(turn.learner, "provide")
    prompt_input(turn, conversation)


def prompt_input(turn: Turn, conversation: Conversation) -> None:
    item = current_item(turn)
    info = item_info(turn.flows.catalog, item.item_key)
    kind = turn.learner.context.get("submit_kind")
    evidence = info.evidence
    if kind == "plan":
        # The plan is drafted from the answers, so there is nothing to type: /back from
        # its preview goes to the choice of kind, or of item when the plan is the only kind.
        if len(evidence.kinds) > 1:
            conversation.jump(turn.learner, SUBMIT_KIND)
            prompt_kind(turn, conversation)
        else:
            conversation.jump(turn.learner, SUBMIT_ITEM)
            prompt_item(turn, conversation)
        return
    if kind == "reflection":
        turn.reply(turn.t("submit_ask_reflection", minimum=evidence.reflection_min_chars,
                          maximum=evidence.reflection_max_chars))
    elif kind == "link":
        turn.reply(turn.t("submit_ask_link"))
    else:
        turn.reply(turn.t("submit_ask_file", types=", ".join(evidence.file_types),
                          max_mb=_megabytes(evidence.file_max_bytes)))


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f}" if size >= 1024 * 1024 else f"{size / (1024 * 1024):.2f}"


def handle_input(turn: Turn, conversation: Conversation, text: str | None, attachment: Attachment | None) -> None:
    """Check the evidence against the item's limits and save it as a draft; then show it."""
    item = current_item(turn)
    info = item_info(turn.flows.catalog, item.item_key)
    kind = turn.learner.context.get("submit_kind")
    try:
        if kind == "file":
            if attachment is None:
                raise InvalidInput("submit_expected_file")
            digest, size = _store_attachment(turn, info, attachment)
            save_draft(turn, item, kind="file", file_name=shown_file_name(attachment.filename),
                       file_type=attachment.content_type, file_size=size, file_sha256=digest)
        elif attachment is not None:
            raise InvalidInput("submit_unexpected_file", kind=turn.t(f"kind_{kind}"))
        elif kind == "link":
            save_draft(turn, item, kind="link", url=check_link(text or ""))
        else:
            limits = info.evidence
            body = check_length(text or "", limits.reflection_min_chars, limits.reflection_max_chars)
            save_draft(turn, item, kind="reflection", text=body)
    except InvalidInput as problem:
        logger.warning("evidence rejected: learner=%s item=%s reason=%s", turn.learner.id, item.item_key, problem.key)
        turn.reply(turn.t(problem.key, **problem.values))
        prompt_input(turn, conversation)
        return
    conversation.fire(turn.learner, "review_draft")
    prompt_confirm(turn, conversation)


def _store_attachment(turn: Turn, info: ItemInfo, attachment: Attachment) -> tuple[str, int]:
    limits = info.evidence
    if attachment.download_failed:
        raise InvalidInput("file_download_failed")
    extension = file_extension(shown_file_name(attachment.filename))
    if extension not in limits.file_types:
        raise InvalidInput("invalid_file_type", types=", ".join(limits.file_types), extension=extension or "-")
    if attachment.data is None or attachment.size > limits.file_max_bytes:
        raise InvalidInput("invalid_file_size", max_mb=_megabytes(limits.file_max_bytes))
    if len(attachment.data) > limits.file_max_bytes:
        raise InvalidInput("invalid_file_size", max_mb=_megabytes(limits.file_max_bytes))
    if not attachment.data:
        raise InvalidInput("invalid_file_empty")
    digest, _ = store_file(turn.settings.files_dir, attachment.data)
    return digest, len(attachment.data)


def shown_file_name(filename: str) -> str:
    """Clean a file name as typed text is cleaned, on one line, so that reviewers see it as sent."""
    return " ".join(clean_text(filename).split())[:255] or "file"


def save_draft(turn: Turn, item: PathwayItem, **fields: object) -> Submission:
    """Create or replace the item's draft with the given evidence fields."""
    draft = find_draft(turn, item)
    if draft is None:
        draft = Submission(learner_id=turn.learner.id, item_id=item.id, status="draft")
        turn.session.add(draft)
    for name in ("text", "url", "file_name", "file_type", "file_size", "file_sha256"):
        setattr(draft, name, fields.get(name))
    draft.kind = str(fields["kind"])
    turn.session.flush()
    return draft


def evidence_preview(turn: Turn, submission: Submission) -> str:
    if submission.kind == "file":
        return turn.t("evidence_file", name=submission.file_name, size_kb=max(1, (submission.file_size or 0) // 1024),
                      sha256=submission.file_sha256)
    if submission.kind == "link":
        return turn.t("evidence_link", url=submission.url)
    return submission.text or ""


def _confirm_choices(turn: Turn) -> tuple[ChoiceSpec, ...]:
    return (
        ChoiceSpec(value="send", label=turn.t("confirm_send")),
        ChoiceSpec(value="change", label=turn.t("confirm_change")),
        ChoiceSpec(value="later", label=turn.t("confirm_later")),
    )


def prompt_confirm(turn: Turn, conversation: Conversation) -> None:
    item = current_item(turn)
    draft = find_draft(turn, item)
    if draft is None:
        conversation.fire(turn.learner, "provide")
        prompt_input(turn, conversation)
        return
    buttons = [Button(choice.label, f"{SUBMIT_CONFIRM}:{choice.value}") for choice in _confirm_choices(turn)]
    preview = evidence_preview(turn, draft)
    turn.reply(
        turn.t("submit_confirm", title=item.title, kind=turn.t(f"kind_{draft.kind}"), evidence=preview),
        buttons,
        verbatim=[preview],
    )


def handle_confirm(turn: Turn, conversation: Conversation, text: str) -> None:
    try:
        chosen = match_choice(text, _confirm_choices(turn)).value
    except InvalidInput as problem:
        turn.reply(turn.t(problem.key, **problem.values))
        prompt_confirm(turn, conversation)
        return
    item = current_item(turn)
    if chosen == "later":
        leave(turn, conversation)
        turn.reply(turn.t("submit_draft_kept", title=item.title))
        return
    if chosen == "change":
        info = item_info(turn.flows.catalog, item.item_key)
        if len(_kind_choices(turn, info)) > 1:
            conversation.jump(turn.learner, SUBMIT_KIND)
            prompt_kind(turn, conversation)
        else:
            choose_kind(turn, conversation, info.evidence.kinds[0])
        return
    send(turn, conversation, item)


def send(turn: Turn, conversation: Conversation, item: PathwayItem) -> None:
    """Turn the draft into a pending submission and post it to the reviewers."""
    draft = find_draft(turn, item)
    draft.status = "pending"
    draft.submitted_at = turn.now
    item.status = "submitted"
    turn.session.flush()
    logger.info("submission %s sent: learner=%s item=%s kind=%s", draft.id, turn.learner.id, item.item_key, draft.kind)

    leave(turn, conversation)
    turn.reply(turn.t("submit_sent", title=item.title))
    account.home_prompt(turn, conversation)
    review_cards.post_card(turn, draft)


def leave(turn: Turn, conversation: Conversation) -> None:
    """Leave the submission detour for home, keeping any draft."""
    turn.learner.context = {
        key: value for key, value in turn.learner.context.items() if key not in ("submit_item_id", "submit_kind")
    }
    conversation.fire(turn.learner, "done")
    assert turn.learner.state == HOME


HANDLERS = {
    SUBMIT_ITEM: lambda turn, conversation, text, attachment: handle_item(turn, conversation, text or ""),
    SUBMIT_KIND: lambda turn, conversation, text, attachment: handle_kind(turn, conversation, text or ""),
    SUBMIT_INPUT: handle_input,
    SUBMIT_CONFIRM: lambda turn, conversation, text, attachment: handle_confirm(turn, conversation, text or ""),
}

BUTTON_HANDLERS = {SUBMIT_ITEM: press_item}
"""Steps whose buttons carry a value that typed text must not be mistaken for."""

PROMPTS = {
    SUBMIT_ITEM: prompt_item,
    SUBMIT_KIND: prompt_kind,
    SUBMIT_INPUT: prompt_input,
    SUBMIT_CONFIRM: prompt_confirm,
}
