"""Quiet hours: parsing, and when a message due at night may go out, in several zones and across DST."""

from __future__ import annotations

from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.config import ConfigError, load_settings
from bot.quiet_hours import QuietHours, parse_span, zone_or_default

UTC = timezone.utc
NIGHT = QuietHours.parse("21:00-08:00")
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_parse_span_reads_times():
    assert parse_span("21:00-08:00") == (time(21, 0), time(8, 0))
    assert parse_span(" 07:30-09:15 ") == (time(7, 30), time(9, 15))


@pytest.mark.parametrize("text", ["21-8", "9pm-8am", "24:00-08:00", "21:00 08:00", "21:60-08:00", ""])
def test_parse_span_rejects_invalid(text):
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        parse_span(text)


def test_settings_reject_invalid_quiet_hours():
    with pytest.raises(ConfigError, match="quiet_hours"):
        load_settings(environ={"CAREERBOT_QUIET_HOURS": "late"})


def test_contains_across_midnight():
    assert NIGHT.contains(time(21, 0))
    assert NIGHT.contains(time(23, 59))
    assert NIGHT.contains(time(0, 0))
    assert NIGHT.contains(time(7, 59))
    assert not NIGHT.contains(time(8, 0))
    assert not NIGHT.contains(time(20, 59))


def test_contains_within_one_day():
    lunch = QuietHours.parse("12:00-13:00")

    assert lunch.contains(time(12, 30))
    assert not lunch.contains(time(13, 0))
    assert not lunch.contains(time(11, 59))


def test_equal_times_disable_quiet_hours():
    none = QuietHours.parse("08:00-08:00")
    due = utc(2026, 1, 15, 3, 0)

    assert not none.enabled
    assert none.deliver_at(due, LONDON) == due


def test_daytime_due_goes_at_once():
    due = utc(2026, 1, 15, 12, 0)  # 12:00 in London, 07:00 in New York, 21:00 in Tokyo

    assert NIGHT.deliver_at(due, LONDON) == due


def test_evening_waits_for_next_morning_in_two_zones():
    due = utc(2026, 1, 15, 12, 0)

    # 07:00 in New York: the end of the night is one hour away.
    assert NIGHT.deliver_at(due, NEW_YORK) == utc(2026, 1, 15, 13, 0)
    # 21:00 in Tokyo (UTC+9, no DST): 08:00 the next day is 23:00 UTC today.
    assert NIGHT.deliver_at(due, TOKYO) == utc(2026, 1, 15, 23, 0)


def test_after_midnight_waits_the_same_morning():
    due = utc(2026, 1, 15, 2, 30)  # 02:30 in London

    assert NIGHT.deliver_at(due, LONDON) == utc(2026, 1, 15, 8, 0)


def test_spring_forward_night_ends_at_local_eight():
    # Europe/London moves from GMT to BST at 01:00 UTC on 29 March 2026.
    due = utc(2026, 3, 28, 22, 0)  # 22:00 GMT on Saturday

    delivered = NIGHT.deliver_at(due, LONDON)

    assert delivered == utc(2026, 3, 29, 7, 0)
    assert delivered.astimezone(LONDON).time() == time(8, 0)


def test_fall_back_night_ends_at_local_eight():
    # America/New_York moves from EDT to EST at 06:00 UTC on 1 November 2026.
    due = utc(2026, 11, 1, 2, 0)  # 22:00 EDT on Saturday 31 October

    delivered = NIGHT.deliver_at(due, NEW_YORK)

    assert delivered == utc(2026, 11, 1, 13, 0)
    assert delivered.astimezone(NEW_YORK).time() == time(8, 0)


def test_end_inside_spring_gap_resolves_after_gap():
    # London skips 01:00-02:00 local on 29 March 2026; quiet hours that end at 01:30 end at 02:30 BST.
    short_night = QuietHours.parse("23:00-01:30")
    due = utc(2026, 3, 28, 23, 30)

    delivered = short_night.deliver_at(due, LONDON)

    assert delivered == utc(2026, 3, 29, 1, 30)
    assert delivered.astimezone(LONDON).time() == time(2, 30)


@pytest.mark.parametrize(("zone", "due", "end"), [
    # London repeats 01:00-02:00 local on 25 October 2026: first BST (UTC+1), then GMT.
    (LONDON, utc(2026, 10, 25, 0, 15), utc(2026, 10, 25, 0, 30)),  # 01:15 BST waits for the first 01:30
    (LONDON, utc(2026, 10, 25, 1, 15), utc(2026, 10, 25, 1, 30)),  # 01:15 GMT waits for the second 01:30
    # New York repeats 01:00-02:00 local on 1 November 2026: first EDT (UTC-4), then EST.
    (NEW_YORK, utc(2026, 11, 1, 6, 0), utc(2026, 11, 1, 6, 30)),  # 01:00 EST
])
def test_end_inside_fall_back_overlap_never_before_due(zone, due, end):
    short_night = QuietHours.parse("23:00-01:30")

    delivered = short_night.deliver_at(due, zone)

    assert delivered == end
    assert delivered >= due
    assert delivered.astimezone(zone).time() == time(1, 30)


def test_zone_or_default_falls_back():
    assert zone_or_default(None, TOKYO) is TOKYO
    assert zone_or_default("Not/AZone", TOKYO) is TOKYO
    assert zone_or_default("America", TOKYO) is TOKYO
    assert zone_or_default("x" * 300, TOKYO) is TOKYO
    assert zone_or_default("Europe/London", TOKYO) == LONDON
