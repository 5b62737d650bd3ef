"""Query parameters that look like secrets never leave the site in a PAGE href."""

from __future__ import annotations

import pytest

from django_kameleoon.conf import load_settings
from django_kameleoon.redaction import redact_url

WORDS = load_settings({"SITE_CODE": "x"}).redacted_words


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://s.example/p", "https://s.example/p"),
        ("https://s.example/p?q=shoes&page=2", "https://s.example/p?q=shoes&page=2"),
        ("https://s.example/p?keyword=red&monkey=1", "https://s.example/p?keyword=red&monkey=1"),
        ("https://s.example/reset?token=abc&lang=fr", "https://s.example/reset?lang=fr"),
        ("https://s.example/p?api_key=1&x=2", "https://s.example/p?x=2"),
        ("https://s.example/p?userEmail=a%40b.c", "https://s.example/p"),
        ("https://s.example/p?PASSWORD=x&ok=1#frag", "https://s.example/p?ok=1#frag"),
        ("https://s.example/p?reset-password-key=x", "https://s.example/p"),
        ("https://s.example/p?access.token=x&sessionid=y&q=1", "https://s.example/p?q=1"),
    ],
)
def test_secret_looking_parameters_are_dropped(url: str, expected: str) -> None:
    assert redact_url(url, WORDS) == expected


def test_redaction_can_be_configured_or_turned_off() -> None:
    url = "https://s.example/p?token=1&promo=SUMMER"
    words = load_settings({"SITE_CODE": "x", "REDACT_QUERY_PARAMS": ["promo"]}).redacted_words
    assert redact_url(url, words) == "https://s.example/p?token=1"
    assert redact_url(url, frozenset()) == url
