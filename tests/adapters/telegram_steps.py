"""Steps a learner and a reviewer take on Telegram, for tests that need a plan or a review card."""

from __future__ import annotations

from tests.adapters.telegram_emulator import SentMessage
from tests.adapters.telegram_harness import LEARNER, REVIEWER, REVIEWER_GROUP, Harness

NAME = "<3 Ana & Bo"
REFLECTION = (
    "Reflection with every MarkdownV2 special character: *_[]()~>#+-=|{}.! and HTML ones: <b>not bold</b> & co. "
    "I booked an appointment with a career adviser on 3 March and we went through my resume line by line. "
    "The two most useful points were to lead with results instead of duties, and to tailor the summary to "
    "each posting. Next I will rewrite my resume this week and book a mock interview for next month.\n\n"
    "Looking back over the year, I can name three skills I built: presenting to a client, planning a sprint "
    "with two classmates, and recovering when our first prototype failed its user test."
)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) + b"\xff\xd9"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
TEXT_ANSWERS = {
    "Question 2 ": NAME,
    "Question 3 ": "ana.bo@example.edu",
    "Question 18 ": "Public speaking, negotiation and data analysis",
    "Question 19 ": "2030-05-31",
}
GENERIC_ANSWER = "I enjoy building software with people and explaining ideas clearly; teamwork matters to me."
CHOICES = {"consent": "agree", "timezone": "Europe/London", "experience": "internship"}


def button_data(message: SentMessage, prefix: str) -> list[str]:
    return [data for _, data in message.buttons if data.startswith(prefix)]


async def answer_question(harness: Harness, user=LEARNER) -> SentMessage:
    """Answer the question in the last message to ``user``: press a button or type text."""
    question = harness.last_to(user)
    if question.buttons:
        state = question.buttons[0][1].rsplit(":", 1)[0].split(":")[0]
        if state.startswith("ratings."):
            choice = f"{state}:3"
        elif state in CHOICES:
            choice = f"{state}:{CHOICES[state]}"
        else:
            choice = question.buttons[0][1]
        await harness.press(user, question, choice)
    else:
        answer = next((text for prefix, text in TEXT_ANSWERS.items() if question.text.startswith(prefix)),
                      GENERIC_ANSWER)
        await harness.say(user, answer)
    return question


async def write_plan(harness: Harness, *, stop_after: int | None = None) -> int:
    """Answer questions until the pathway is ready (or ``stop_after`` answers); return the answers given."""
    answered = 0
    while not button_data(harness.last_to(LEARNER), "home:"):
        if stop_after is not None and answered == stop_after:
            break
        assert answered < 25, f"the plan did not finish: {harness.last_to(LEARNER).text}"
        await answer_question(harness)
        answered += 1
    return answered


async def submit_next_item(harness: Harness, wanted: list[str]) -> str | None:
    """Submit evidence for the first open item, of the first ``wanted`` kind the item takes.

    ``photo`` is a file sent as a photo. Returns the kind used, or None when no item is open.
    """
    telegram = harness.telegram
    await harness.say(LEARNER, "/submit")
    items = button_data(harness.last_to(LEARNER), "submit_item:")
    if not items:
        return None
    await harness.press(LEARNER, harness.last_to(LEARNER), items[0])

    prompt = harness.last_to(LEARNER)
    kinds = [data.split(":", 1)[1] for data in button_data(prompt, "submit_kind:")]
    kind = next((choice for choice in wanted if (choice == "photo" and "file" in kinds) or choice in kinds), None)
    if kinds:
        kind = kind or ("reflection" if "reflection" in kinds else kinds[0])
        await harness.press(LEARNER, prompt, f"submit_kind:{'file' if kind == 'photo' else kind}")
    if not button_data(harness.last_to(LEARNER), "submit_confirm:"):
        if kind == "photo":
            await harness.send(telegram.photo_update(LEARNER, JPEG))
        elif kind == "file":
            await harness.send(telegram.document_update(LEARNER, "evidence.pdf", PDF))
        elif kind == "link":
            await harness.say(LEARNER, "https://portfolio.example.edu/ana-bo/evidence")
        else:
            await harness.say(LEARNER, REFLECTION)
    await harness.press(LEARNER, harness.last_to(LEARNER), "submit_confirm:send")
    return kind or "single"


async def review_card(harness: Harness, *, approve: bool = True) -> SentMessage:
    """The reviewer decides on the newest card in the group: approve, or request changes with feedback."""
    card = next(message for message in reversed(harness.telegram.messages_to(REVIEWER_GROUP))
                if button_data(message, "rv:a:"))
    if approve:
        await harness.press(REVIEWER, card, button_data(card, "rv:a:")[0])
        return card
    await harness.press(REVIEWER, card, button_data(card, "rv:c:")[0])
    while button_data(harness.last_to(REVIEWER_GROUP), "rv:m:"):
        prompt = harness.last_to(REVIEWER_GROUP)
        await harness.press(REVIEWER, prompt, button_data(prompt, "rv:m:")[-1])
    feedback_prompt = harness.last_to(REVIEWER_GROUP)
    assert feedback_prompt.force_reply == {"force_reply": True, "selective": True}
    group = harness.telegram.chats[REVIEWER_GROUP]
    await harness.say(REVIEWER, "Name the adviser <and> the date & what you changed.", chat=group,
                      reply_to=feedback_prompt)
    return card


async def submitted_card(harness: Harness, kind: str = "reflection") -> SentMessage:
    """Take the learner from /start to a first submission; return its review card in the group."""
    await harness.say(LEARNER, "/start")
    await write_plan(harness)
    assert await submit_next_item(harness, [kind]) is not None
    return next(message for message in reversed(harness.telegram.sent) if button_data(message, "rv:a:"))
