"""Quiet hours: the local night in which no reminder is delivered.

A span such as ``21:00-08:00`` is wall-clock time in the recipient's time
zone and may cross midnight. :meth:`QuietHours.deliver_at` returns when a
message due at some instant may go out: that instant, or the end of the quiet
span as the recipient's clock shows it. The end is computed as a local wall
time and converted to UTC. So it stays at 08:00 local on the nights when
daylight saving time starts or ends (a plain "plus N hours" would be off by
one hour on those nights).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SPAN_PATTERN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


def parse_span(text: str) -> tuple[time, time]:
    """Parse ``HH:MM-HH:MM`` into (start, end).

    Raises:
        ValueError: the text is not two 24-hour times joined by a dash.
    """
    match = SPAN_PATTERN.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a time span such as 21:00-08:00 (24-hour HH:MM-HH:MM)")
    start_hour, start_minute, end_hour, end_minute = (int(part) for part in match.groups())
    return time(start_hour, start_minute), time(end_hour, end_minute)


def zone_or_default(name: str | None, default: ZoneInfo) -> ZoneInfo:
    """Return the IANA zone ``name``, or ``default`` when it is empty or unknown."""
    if not name:
        return default
    try:
        return ZoneInfo(name)
    # OSError: a name such as "America" is a folder of tzdata, and a very long name cannot be opened.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return default


@dataclass(frozen=True)
class QuietHours:
    """A daily quiet span in local time; equal start and end means no quiet hours."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        return cls(*parse_span(text))

    @property
    def enabled(self) -> bool:
        return self.start != self.end

    def contains(self, local: time) -> bool:
        """Return True when the local wall time ``local`` falls in the quiet span (start included, end excluded)."""
        if not self.enabled:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def deliver_at(self, due: datetime, zone: ZoneInfo) -> datetime:
        """Return the UTC instant at which a message due at ``due`` may be delivered in ``zone``."""
        local = due.astimezone(zone)
        if not self.contains(local.time()):
            return due.astimezone(timezone.utc)

        end_day: date = local.date()
        if self.start > self.end and local.time() >= self.start:
            end_day += timedelta(days=1)
        # A wall time that a spring-forward gap skips (say 02:30) resolves to the
        # instant after the gap, which is still the end of the quiet span.
        end = datetime.combine(end_day, self.end, tzinfo=zone).astimezone(timezone.utc)
        if end < due:
            # The clocks went back and the end time comes twice (01:30 in London on
            # the last Sunday of October): a message due in the second pass waits
            # for the second 01:30, because the first one has passed.
            end = datetime.combine(end_day, self.end, tzinfo=zone).replace(fold=1).astimezone(timezone.utc)
        return end
