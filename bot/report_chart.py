"""The funnel of a cohort report as a PNG bar chart, drawn with Pillow.

One horizontal bar per stage, from a started plan to the macro-badge, each
labelled with its count and its share of the learners who started. The
image is sized for a chat preview (about 900 pixels wide).
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

from bot.flows import Flows
from bot.reports import Report, funnel_label

WIDTH = 900
MARGIN = 24
TITLE_HEIGHT = 56
BAR_HEIGHT = 34
BAR_GAP = 14
LABEL_WIDTH = 300
BAR_COLOR = "#1d3f72"
EMPTY_COLOR = "#e3e8ef"
TEXT_COLOR = "#1b1f24"


def funnel_png(report: Report, flows: Flows) -> bytes:
    """Draw the report's funnel and return the PNG file's bytes."""
    texts = flows.texts
    stages = report.funnel
    height = MARGIN * 2 + TITLE_HEIGHT + len(stages) * (BAR_HEIGHT + BAR_GAP)
    image = Image.new("RGB", (WIDTH, height), "#ffffff")
    draw = ImageDraw.Draw(image)
    title_font = ImageFont.load_default(size=22)
    font = ImageFont.load_default(size=16)

    scope = report.campus or texts("report_all_campuses")
    title = texts("report_chart_title", date=report.generated_at.date().isoformat(), scope=scope)
    draw.text((MARGIN, MARGIN), title, fill=TEXT_COLOR, font=title_font)

    started = stages[0][1] if stages else 0
    bar_left = MARGIN + LABEL_WIDTH
    bar_space = WIDTH - bar_left - MARGIN - 120
    top = MARGIN + TITLE_HEIGHT
    for name, count in stages:
        middle = top + BAR_HEIGHT // 2
        draw.text((MARGIN, middle), _fit(funnel_label(name, flows), font, LABEL_WIDTH - 12), fill=TEXT_COLOR,
                  font=font, anchor="lm")
        draw.rectangle((bar_left, top, bar_left + bar_space, top + BAR_HEIGHT), fill=EMPTY_COLOR)
        share = count / started if started else 0.0
        if count:
            draw.rectangle((bar_left, top, bar_left + max(2, round(bar_space * min(share, 1.0))), top + BAR_HEIGHT),
                           fill=BAR_COLOR)
        figure = f"{count}  ({share:.0%})" if started else str(count)
        draw.text((bar_left + bar_space + 10, middle), figure, fill=TEXT_COLOR, font=font, anchor="lm")
        top += BAR_HEIGHT + BAR_GAP

    output = io.BytesIO()
    image.save(output, format="PNG")
    return output.getvalue()


def _fit(text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    """Shorten ``text`` with an ellipsis until it fits ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text.rstrip() + "..."
