"""Log formats for the command line: readable text lines, or one JSON object per line.

With ``log_format: json`` each record becomes one line such as::

    {"time": "2026-11-02T10:15:04.120Z", "level": "INFO", "logger": "bot.engine",
     "message": "update telegram:981 handled: ...", "update_id": "981",
     "learner_id": 42, "state_from": "name", "state_to": "email", "process": 2817}

Fields that code passes with ``extra=`` (the engine passes the update id,
learner id and state change) become keys of their own, so a log pipeline can
filter on them without parsing the message.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
"""Attributes every LogRecord has; any other attribute came from ``extra=``."""


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON with its ``extra`` fields as keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def make_formatter(log_format: str) -> logging.Formatter:
    """Return the formatter for the ``log_format`` setting (``text`` or ``json``)."""
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter(TEXT_FORMAT)
