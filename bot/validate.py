"""Checks on what learners type: answers to questions and evidence.

Each check returns the cleaned value or raises :class:`InvalidInput`, which
names a message key from ``flows/messages.yaml`` and the values to fill in, so
the learner reads what was wrong in the program's own words.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
import zoneinfo
from datetime import date, datetime, timedelta
from functools import lru_cache
from urllib.parse import urlsplit

from bot.questions import ChoiceSpec, Question


class InvalidInput(Exception):
    """An answer or evidence that does not pass a check; carries the message to show."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


_CONTROL = {"Cc", "Cf", "Cs", "Co", "Cn"}
_KEEP = {"\n", "\t", "\u200d", "\u200c", "\u200e", "\u200f", "\ufe0f"}
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,}$")
DATE_FORMATS = ("%Y-%m-%d", "%d %B %Y", "%B %d %Y", "%d %b %Y", "%b %d %Y", "%B %Y", "%b %Y")


def clean_text(raw: str) -> str:
    """Normalise to NFC, drop control and invisible format characters, trim.

    Joiners, direction marks and the emoji variation selector stay, because
    emoji sequences and right-to-left text need them.
    """
    text = unicodedata.normalize("NFC", raw).replace("\r\n", "\n").replace("\r", "\n")
    kept = [char for char in text if char in _KEEP or unicodedata.category(char) not in _CONTROL]
    return "".join(kept).strip()


def check_length(text: str, minimum: int, maximum: int) -> str:
    if not text:
        raise InvalidInput("invalid_empty")
    if len(text) < minimum:
        raise InvalidInput("invalid_too_short", minimum=minimum, length=len(text))
    if len(text) > maximum:
        raise InvalidInput("invalid_too_long", maximum=maximum, length=len(text))
    return text


def match_choice(text: str, choices: tuple[ChoiceSpec, ...]) -> ChoiceSpec:
    """Find the choice a learner typed: its value, its label, or its number in the list."""
    wanted = text.strip().casefold()
    for choice in choices:
        if wanted in (choice.value.casefold(), choice.label.casefold()):
            return choice
    number = parse_number(wanted)
    if number is not None and 1 <= number <= len(choices):
        return choices[number - 1]
    # Labels are joined with a slash, because a label may contain a comma ("No, not now").
    raise InvalidInput("invalid_choice", options=" / ".join(choice.label for choice in choices))


def parse_number(text: str, max_digits: int = 9) -> int | None:
    """Read a short whole number; None for anything else.

    ``str.isdigit`` also accepts characters such as "²" that ``int`` rejects,
    and ``int`` rejects strings of more than 4300 digits, so both are checked here.
    """
    stripped = text.strip()
    if not stripped.isdecimal() or len(stripped) > max_digits:
        return None
    return int(stripped)


def check_email(text: str) -> str:
    candidate = text.strip()
    if len(candidate) > 254 or not EMAIL_PATTERN.match(candidate):
        raise InvalidInput("invalid_email")
    local, _, domain = candidate.rpartition("@")
    return f"{local}@{domain.lower()}"


def check_rating(text: str, minimum: int, maximum: int) -> int:
    stripped = text.strip()
    if not re.fullmatch(r"[0-9]{1,2}", stripped) or not minimum <= int(stripped) <= maximum:
        raise InvalidInput("invalid_rating", minimum=minimum, maximum=maximum)
    return int(stripped)


def parse_date(text: str, *, month_end: bool = True) -> date:
    """Parse a date such as 2027-05-31, 31 May 2027 or May 2027.

    A month without a day is read as its last day, or as its first day when
    ``month_end`` is false (the start of a period).
    """
    candidate = re.sub(r"[,\s]+", " ", text.strip())
    for pattern in DATE_FORMATS:
        try:
            parsed = datetime.strptime(candidate, pattern).date()
        except ValueError:
            continue
        if "%d" not in pattern and month_end:
            parsed = _last_day_of_month(parsed)
        return parsed
    raise InvalidInput("invalid_date")


def check_future_date(text: str, today: date, max_years_ahead: int) -> date:
    """Parse a date such as 2027-05-31, 31 May 2027 or May 2027 (the last day of that month)."""
    parsed = parse_date(text)
    if parsed <= today:
        raise InvalidInput("invalid_date_past", today=today.isoformat())
    if parsed.year > today.year + max_years_ahead:
        raise InvalidInput("invalid_date_far", years=max_years_ahead)
    return parsed


def _last_day_of_month(day: date) -> date:
    if day.month == 12:
        return day.replace(day=31)  # also for 9999, where the next month is out of range
    return date(day.year, day.month + 1, 1) - timedelta(days=1)


@lru_cache(maxsize=1)
def _zones_by_folded_name() -> dict[str, str]:
    return {name.casefold(): name for name in zoneinfo.available_timezones()}


def check_timezone(text: str, question: Question) -> str:
    candidate = text.strip()
    try:
        return match_choice(candidate, question.choices).value
    except InvalidInput:
        pass
    zone = _zones_by_folded_name().get(candidate.replace(" ", "_").casefold())
    if zone is None:
        raise InvalidInput("invalid_timezone")
    return zone


def check_link(text: str) -> str:
    """Accept an http(s) URL to a public host; the bot never fetches it.

    Rejected: other schemes (``javascript:``, ``file:``, ``data:``), user
    names in the URL, ``localhost`` and literal addresses that are private,
    loopback, link-local, reserved or multicast.
    """
    candidate = text.strip()
    if len(candidate) > 2048:
        raise InvalidInput("invalid_link_long", maximum=2048)
    if any(char.isspace() for char in candidate):
        raise InvalidInput("invalid_link")
    try:
        parts = urlsplit(candidate)
        host = parts.hostname
    except ValueError:  # such as an unclosed "[" in an IPv6 address
        raise InvalidInput("invalid_link") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput("invalid_link_scheme")
    if not host or parts.username or parts.password:
        raise InvalidInput("invalid_link")
    host = host.rstrip(".")  # "localhost." and "127.0.0.1." name the same hosts as without the dot
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        raise InvalidInput("invalid_link_private")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = _numeric_ipv4(host)
        if address is None:
            if "." not in host:
                raise InvalidInput("invalid_link") from None
            return candidate
    if not address.is_global or address.is_multicast:
        raise InvalidInput("invalid_link_private")
    return candidate


def _numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Read hosts like ``2130706433`` or ``0x7f.1`` that browsers treat as IPv4 addresses."""
    if not re.fullmatch(r"[0-9a-fx.]+", host):
        return None
    try:
        parts = [_numeric_ipv4_part(part) for part in host.split(".")]
    except ValueError:
        return None
    if not parts or len(parts) > 4:
        return None
    value = 0
    for part in parts[:-1]:
        if not 0 <= part <= 255:
            return None
        value = value * 256 + part
    last_bits = 8 * (5 - len(parts))
    if not 0 <= parts[-1] < 2**last_bits:
        return None
    value = (value << last_bits) + parts[-1]
    return ipaddress.IPv4Address(value)


def _numeric_ipv4_part(part: str) -> int:
    """Read one part as inet_aton does: 0x hexadecimal, a leading 0 octal, else decimal."""
    if part.startswith("0x"):
        return int(part[2:], 16)
    if part.startswith("0") and len(part) > 1:
        return int(part[1:], 8)
    return int(part, 10)


def file_extension(filename: str) -> str:
    _, dot, extension = filename.rpartition(".")
    return extension.lower() if dot else ""
