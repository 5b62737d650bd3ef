"""Keep secrets out of the URLs we report: query parameters that look like credentials or
personal data (``?token=…``, ``?email=…``, ``?reset_password_key=…``) are dropped from PAGE
``href`` and ``referrerHref`` before they leave the site.

A parameter is dropped when one of the words of its name (split at ``_``, ``-``, ``.`` and
camelCase) is listed in ``REDACT_QUERY_PARAMS``; so ``api_key`` and ``userEmail`` go, while
``keyword`` stays.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["DEFAULT_REDACTED_WORDS", "redact_url"]

DEFAULT_REDACTED_WORDS = (
    "token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "key",
    "apikey",
    "auth",
    "credentials",
    "signature",
    "sig",
    "session",
    "sessionid",
    "email",
    "mail",
    "phone",
    "ssn",
)

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")


def _name_words(name: str) -> set[str]:
    return {word.lower() for word in _WORD_SPLIT.split(name) if word}


def redact_url(url: str, words: frozenset[str]) -> str:
    """``url`` without the query parameters whose names contain one of ``words``."""
    if "?" not in url or not words:
        return url
    query_start = url.index("?") + 1
    if not any(word in url[query_start:].lower() for word in words):
        return url  # the common case: nothing that could match, so no parsing at all
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(name, value) for name, value in pairs if not (_name_words(name) & words)]
    if len(kept) == len(pairs):
        return url
    return urlunsplit(parts._replace(query=urlencode(kept)))
