"""Checks on what learners type: text cleaning, choices, email, ratings, dates, time zones, links."""

from __future__ import annotations

from datetime import date

import pytest

from bot.flows import load_flows
from bot.questions import ChoiceSpec
from bot.validate import (
    InvalidInput,
    check_email,
    check_future_date,
    check_length,
    check_link,
    check_rating,
    check_timezone,
    clean_text,
    file_extension,
    match_choice,
)

TODAY = date(2026, 3, 15)
CHOICES = (ChoiceSpec(value="north", label="North Campus"), ChoiceSpec(value="south", label="South Campus"))


def rejected(check, *args) -> str:
    with pytest.raises(InvalidInput) as caught:
        check(*args)
    return caught.value.key


def test_clean_text_strips_control_characters():
    assert clean_text("\x00A\x07n\x1ba\u200b\u2066 ") == "Ana"


def test_clean_text_keeps_emoji_rtl_cjk():
    name = "👩🏽‍💻 سارة 王小明 ❤️"
    assert clean_text(name) == name


def test_clean_text_normalises_newlines_and_nfc():
    assert clean_text("e\u0301\r\nline\rnext") == "\u00e9\nline\nnext"


def test_check_length_limits():
    assert check_length("abc", 1, 3) == "abc"
    assert rejected(check_length, "", 1, 3) == "invalid_empty"
    assert rejected(check_length, "ab", 3, 10) == "invalid_too_short"
    assert rejected(check_length, "abcd", 1, 3) == "invalid_too_long"


def test_match_choice_value_label_number():
    assert match_choice("south", CHOICES).value == "south"
    assert match_choice("  north CAMPUS ", CHOICES).value == "north"
    assert match_choice("2", CHOICES).value == "south"


@pytest.mark.parametrize("text", ["3", "0", "west", "", "²", "1" * 5000, "٣"])
def test_match_choice_rejects_unknown(text):
    assert rejected(match_choice, text, CHOICES) == "invalid_choice"


def test_match_choice_accepts_other_decimal_digits():
    assert match_choice("٢", CHOICES).value == "south"


def test_check_email_lowercases_domain():
    assert check_email(" Ana.B@Example.EDU ") == "Ana.B@example.edu"


@pytest.mark.parametrize("text", ["ana", "ana@", "@example.edu", "ana@example", "a b@example.edu",
                                  "ana@@example.edu", "x" * 250 + "@example.edu"])
def test_check_email_rejects_invalid(text):
    assert rejected(check_email, text) == "invalid_email"


def test_check_rating_range():
    assert check_rating(" 4 ", 1, 5) == 4
    for text in ("0", "6", "3.5", "three", "", "-1", "²"):
        assert rejected(check_rating, text, 1, 5) == "invalid_rating"


@pytest.mark.parametrize("text, expected", [
    ("2027-05-31", date(2027, 5, 31)),
    ("31 May 2027", date(2027, 5, 31)),
    ("May 31, 2027", date(2027, 5, 31)),
    ("May 2027", date(2027, 5, 31)),
    ("feb 2028", date(2028, 2, 29)),
    ("December 2027", date(2027, 12, 31)),
])
def test_check_future_date_formats(text, expected):
    assert check_future_date(text, TODAY, 10) == expected


def test_check_future_date_rejects_past_and_today():
    assert rejected(check_future_date, "2020-01-01", TODAY, 10) == "invalid_date_past"
    assert rejected(check_future_date, TODAY.isoformat(), TODAY, 10) == "invalid_date_past"


@pytest.mark.parametrize("text", ["soon", "2027-13-01", "31/05/2027", "", "May"])
def test_check_future_date_rejects_unparseable(text):
    assert rejected(check_future_date, text, TODAY, 10) == "invalid_date"


@pytest.mark.parametrize("text", ["2040-01-01", "December 9999", "9999-12-31"])
def test_check_future_date_rejects_too_far(text):
    assert rejected(check_future_date, text, TODAY, 10) == "invalid_date_far"


@pytest.fixture(scope="module")
def timezone_question():
    return next(question for question in load_flows().questions if question.kind == "timezone")


def test_check_timezone_button_label_and_iana(timezone_question):
    assert check_timezone("Europe/London", timezone_question) == "Europe/London"
    assert check_timezone("new york", timezone_question) == "America/New_York"
    assert check_timezone("asia/TOKYO", timezone_question) == "Asia/Tokyo"
    assert check_timezone("america/argentina/buenos aires", timezone_question) == "America/Argentina/Buenos_Aires"


def test_check_timezone_rejects_unknown(timezone_question):
    assert rejected(check_timezone, "Mars/Olympus", timezone_question) == "invalid_timezone"
    assert rejected(check_timezone, "CEST+2", timezone_question) == "invalid_timezone"


@pytest.mark.parametrize("url", [
    "https://example.org/portfolio",
    "http://example.org",
    "https://sub.example.co.uk/a?b=c#d",
    "https://8.8.8.8/report.pdf",
    "https://例え.jp/ページ",
])
def test_check_link_accepts_public(url):
    assert check_link(f"  {url} ") == url


@pytest.mark.parametrize("url", [
    "javascript:alert(1)",
    "JAVASCRIPT:alert(1)",
    "file:///etc/passwd",
    "data:text/html,<script>alert(1)</script>",
    "ftp://example.org/file",
    "example.org/no-scheme",
])
def test_check_link_rejects_schemes(url):
    assert rejected(check_link, url) == "invalid_link_scheme"


@pytest.mark.parametrize("url", [
    "http://localhost",
    "http://LOCALHOST:8080/admin",
    "http://localhost./",
    "http://app.localhost/",
    "http://127.0.0.1",
    "http://127.0.0.1./",
    "http://127.1/",
    "http://10.0.0.1",
    "http://192.168.1.1",
    "http://172.16.0.1",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]",
    "http://[::ffff:127.0.0.1]/",
    "http://[fe80::1]/",
    "http://2130706433",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://0/",
    "http://224.0.0.1/",
])
def test_check_link_rejects_private_hosts(url):
    assert rejected(check_link, url) == "invalid_link_private"


@pytest.mark.parametrize("url", [
    "https://",
    "https://user:secret@example.org/",
    "https://intranet/",
    "https://exa mple.org/",
    "http://[::1",
    "https://[not-an-address]/",
])
def test_check_link_rejects_malformed(url):
    assert rejected(check_link, url) == "invalid_link"


def test_check_link_rejects_long():
    assert rejected(check_link, "https://example.org/" + "a" * 3000) == "invalid_link_long"


def test_file_extension_lowercase():
    assert file_extension("Report.Final.PDF") == "pdf"
    assert file_extension("README") == ""
