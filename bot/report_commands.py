"""``/report``: the cohort report for coordinators, as text, as a funnel chart, or as CSV.

``/report`` replies with the figures; ``/report chart`` sends the funnel as a
PNG image and ``/report csv`` the figures as a CSV file. ``campus=ID``
narrows the report to one campus or program, and ``days=N`` sets the period
over which nudges and review decisions are counted (30 days by default).
"""

from __future__ import annotations

import logging

from bot.events import Document
from bot.report_chart import funnel_png
from bot.reports import build_report, report_csv, report_text
from bot.turn import Turn
from bot.validate import parse_number

logger = logging.getLogger(__name__)

DEFAULT_DAYS = 30
MAX_DAYS = 3650
FORMATS = ("text", "chart", "csv")


class ReportArgumentError(ValueError):
    pass


def parse_arguments(argument: str, campus_ids: list[str]) -> tuple[str, str | None, int]:
    """Read ``[chart|csv] [campus=ID] [days=N]`` into (format, campus, days).

    Raises:
        ReportArgumentError: a word is not one of these.
    """
    output, campus, days = "text", None, DEFAULT_DAYS
    for word in argument.split():
        name, separator, value = word.partition("=")
        if not separator and word.casefold() in FORMATS:
            output = word.casefold()
        elif name == "campus" and value in campus_ids:
            campus = value
        elif name == "days" and 1 <= (parse_number(value) or 0) <= MAX_DAYS:
            days = int(value)
        else:
            raise ReportArgumentError(word)
    return output, campus, days


def cmd_report(turn: Turn, conversation, argument: str) -> bool:
    """/report [chart|csv] [campus=ID] [days=N]: the cohort report (coordinators only)."""
    if not turn.settings.is_coordinator(turn.event.user_key):
        logger.warning("/report rejected for %s: not a coordinator", turn.event.user_key)
        turn.reply(turn.t("not_coordinator"))
        return False
    campus_ids = [option.id for option in turn.flows.catalog.campuses]
    try:
        output, campus, days = parse_arguments(argument, campus_ids)
    except ReportArgumentError as error:
        turn.reply(turn.t("report_usage", word=str(error), campuses=", ".join(campus_ids), maximum=MAX_DAYS))
        return False

    report = build_report(turn.session, turn.flows, turn.now, campus=campus, days=days)
    stamp = report.generated_at.strftime("%Y%m%d")
    if output == "chart":
        document = Document(filename=f"careerbot-funnel-{stamp}.png", content_type="image/png",
                            content=funnel_png(report, turn.flows))
        turn.reply(turn.t("report_chart_ready"), document=document)
    elif output == "csv":
        document = Document(filename=f"careerbot-report-{stamp}.csv", content_type="text/csv",
                            content=report_csv(report).encode("utf-8"))
        turn.reply(turn.t("report_csv_ready"), document=document)
    else:
        turn.reply(report_text(report, turn.flows))
    return False
