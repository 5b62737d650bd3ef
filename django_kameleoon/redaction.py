"""Keep secrets and personal data out of the URLs we report.

Every URL an event carries (PAGE ``href``, ``referrerHref`` and ``canonicalHref``, whether the
middleware, ``{% kameleoon_page %}`` or ``track()`` set it) goes through :func:`redact_url`
before it is queued; ``api.outgoing_fields`` is the one place that calls it. The rules:

- A query parameter goes when its name looks like a credential or personal data. The name is
  percent-decoded first (``%74oken`` is ``token`` to the server that reads it). A word of
  ``REDACT_QUERY_PARAMS`` of five letters or more then matches anywhere in the name, separators
  left out (``access_token``, ``accesstoken``, ``credit-card-number``); a shorter word only as a
  whole word of the name, split at ``_``, ``-``, ``.``, digits and camelCase (``api_key`` and
  ``apiKey`` go; ``keyword``, ``monkey`` and ``compass`` stay), since short words hide inside
  ordinary ones.
- Whatever its name, a parameter goes when its value holds an e-mail address or a JSON Web
  Token; and ``code`` goes with ``state`` when both are present, the shape of an OAuth 2.0
  authorisation response, whose code is a credential until it is exchanged (alone, a ``code``
  is usually a promotion or product code, and stays).
- With ``KEEP_QUERY_PARAMS`` set, only the parameters it names stay, and the rules above still
  apply to them: the allow-list narrows what is sent, never widens it.
- ``REDACT_PATHS`` regexes are searched in the path; the groups of a match (the whole match,
  for a pattern without groups) become ``REDACTED``.
- Credentials in the authority (``https://user:pass@host/``) go, and a fragment made of
  parameters (``#access_token=...``, OAuth's implicit flow) is filtered like a query.

What stays is kept byte for byte, never decoded and encoded again: redaction cannot fail on a
URL it cannot parse, and never alters what it keeps. The middleware redacts two URLs per page
view, so a URL without ``?``, ``#`` or ``@`` costs only three substring tests, finding where its
path starts, and one search of that path.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

__all__ = ["DEFAULT_REDACTED_PATHS", "DEFAULT_REDACTED_WORDS", "PLACEHOLDER", "redact_url"]

DEFAULT_REDACTED_WORDS = (
    "token",
    "password",
    "passwd",
    "pwd",
    "pass",
    "secret",
    "key",
    "apikey",
    "auth",
    "credentials",
    "signature",
    "sig",
    "jwt",
    "otp",
    "session",
    "sessionid",
    "email",
    "mail",
    "phone",
    "ssn",
    "creditcard",
    "cardnumber",
    "cvv",
)

#: Django's password-reset links, wherever a URLconf mounts ``django.contrib.auth.urls``.
#: ``reset/<uidb64>/<token>/`` holds a credential that sets the account's password (the token:
#: a base-36 timestamp, a dash, 20 or more hex digits) and the account's id (uidb64, its primary
#: key in base64); ``reset/<uidb64>/set-password/``, where ``PasswordResetConfirmView``
#: redirects to keep the token out of the address bar, is the page a browser shows, and still
#: names the account. The token's shape is matched closely so that a site's own paths under a
#: ``reset`` segment (``reset/done/``, ``reset/my-post/comments/``) stay as they are.
DEFAULT_REDACTED_PATHS = (
    r"/reset/([\w-]+)/([0-9a-z]+-[0-9a-f]{20,})/",
    r"/reset/([\w-]+)/set-password/",
)

#: What a path secret is replaced with: plain text that reads as what it is in a report.
PLACEHOLDER = "REDACTED"

#: A URL as what comes before its query (origin and path), its query and its fragment; every
#: string matches, however malformed.
_parts = re.compile(
    r"(?P<head>[^?#]*)(?:\?(?P<query>[^#]*))?(?:#(?P<fragment>.*))?", re.DOTALL
).fullmatch

#: The words of a name: acronyms (``API`` in ``APIKey``), capitalised or lower-case words and
#: runs of digits (``userEmail``, ``password1``); anything else separates them.
_words_of = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+").findall
_SEPARATORS = re.compile(r"[\W_]+")

#: A value holding an e-mail address (something, ``@``, a dotted domain) or a JSON Web Token
#: (two base64url parts that both start with ``{"``). Written to stay linear on long values.
_SECRET_VALUE = re.compile(r"[^\s@]@[\w-]+(?:\.[\w-]+)+|eyJ[\w-]*\.eyJ[\w-]*\.")

#: A listed word this long matches inside a name too; a shorter one must be a word of its own.
_INFIX_LENGTH = 5
#: Percent-decoding rounds: a name encoded twice is a secret to a server that decodes twice.
_DECODE_ROUNDS = 3
#: Query parameters that, together, are an OAuth 2.0 authorisation response.
_OAUTH_RESPONSE = frozenset({"code", "state"})


def redact_url(
    url: str,
    words: frozenset[str],
    *,
    keep: frozenset[str] | None = None,
    paths: re.Pattern[str] | None = None,
) -> str:
    """``url`` without what the rules above take out; never raises.

    ``words`` are lower-case; ``keep``, when not None, holds the lower-case names of the only
    parameters that may stay; ``paths`` is searched in the path. ``Settings.url_redactor`` is
    this function with a site's settings.
    """
    if "?" in url or "#" in url or "@" in url:
        return _redact_parts(url, words, keep, paths)
    if paths is None:
        return url
    start = _path_start(url)
    path = url[start:]
    return url if paths.search(path) is None else url[:start] + paths.sub(_hide, path)


def _path_start(head: str) -> int:
    """Where the path of ``head`` (a URL without query or fragment) begins: after
    ``scheme://authority`` or ``//authority``, else at 0 (a relative URL). String searches
    rather than a regex, which would cost the middleware three times as much on every page.
    """
    slashes = head.find("//")
    if slashes < 0 or head.find("/") != slashes or (slashes and head[slashes - 1] != ":"):
        return 0
    end = head.find("/", slashes + 2)
    return len(head) if end < 0 else end


def _redact_parts(
    url: str, words: frozenset[str], keep: frozenset[str] | None, paths: re.Pattern[str] | None
) -> str:
    """:func:`redact_url` for a URL with a query, a fragment or an ``@``."""
    parts = _parts(url)
    assert parts is not None, "every string matches"
    head, query, fragment = parts.group("head", "query", "fragment")
    start = _path_start(head)
    given = origin, path, query, fragment = head[:start], head[start:], query, fragment
    at = origin.rfind("@")
    if at >= 0:
        origin = origin[: origin.find("//") + 2] + origin[at + 1 :]
    if paths is not None:
        path = paths.sub(_hide, path)
    if query:
        query = _filter_parameters(query, words, keep)
    if fragment and "=" in fragment:
        fragment = _filter_parameters(fragment, words, keep)
    if (origin, path, query, fragment) == given:
        return url
    return origin + path + (f"?{query}" if query else "") + (f"#{fragment}" if fragment else "")


def _hide(match: re.Match[str]) -> str:
    """The match with each of its groups that took part replaced by :data:`PLACEHOLDER`; the
    whole match when none did (a pattern without groups). An empty match hides nothing."""
    start, end = match.span()
    if start == end:
        return ""
    groups = sorted(match.span(i) for i in range(1, match.re.groups + 1))
    spans = [(s, e) for s, e in groups if s < e]
    if not spans:
        return PLACEHOLDER
    pieces, done = [], start
    for group_start, group_end in spans:
        if group_start >= done:  # a group nested in one already replaced is gone with it
            pieces += [match.string[done:group_start], PLACEHOLDER]
            done = group_end
    pieces.append(match.string[done:end])
    return "".join(pieces)


def _filter_parameters(params: str, words: frozenset[str], keep: frozenset[str] | None) -> str:
    """``name=value&...`` without the parameters the rules drop; the rest as they were."""
    pieces = params.split("&")
    names = [_decoded(piece.partition("=")[0]) for piece in pieces]
    lowered = [name.lower() for name in names]
    oauth = _OAUTH_RESPONSE.issubset(lowered)
    # The listed words found anywhere in the names, separators left out: usually none, and then
    # no name needs a closer look.
    everywhere = _SEPARATORS.sub("", "".join(lowered))
    listed = [word for word in words if word in everywhere]
    kept = [
        piece
        for piece, name, low in zip(pieces, names, lowered, strict=True)
        if not (
            (keep is not None and low not in keep)
            or (oauth and low in _OAUTH_RESPONSE)
            or (listed and _secret_name(name, listed))
            or _secret_value(piece.partition("=")[2])
        )
    ]
    return params if len(kept) == len(pieces) else "&".join(kept)


def _secret_name(name: str, listed: list[str]) -> bool:
    """Whether a (decoded) name holds one of the ``listed`` words: a long word anywhere in it,
    separators left out; a short word as one of its words, split at separators or camelCase
    (either, so that ``USER_PWd`` is not let through by its odd case)."""
    lowered = name.lower()
    if any(word in _SEPARATORS.sub("", lowered) for word in listed if len(word) >= _INFIX_LENGTH):
        return True
    short = {word for word in listed if len(word) < _INFIX_LENGTH}
    return bool(short) and not (
        short.isdisjoint(_SEPARATORS.split(lowered))
        and short.isdisjoint(map(str.lower, _words_of(name)))
    )


def _secret_value(value: str) -> bool:
    """Whether a value holds an e-mail address or a JSON Web Token, percent-encoded or not."""
    if "@" not in value and "%" not in value and "eyJ" not in value:
        return False  # the common case, without decoding
    return _SECRET_VALUE.search(_decoded(value)) is not None


def _decoded(text: str) -> str:
    """``text`` percent-decoded (``+`` as a space) until it stops changing, within bounds."""
    for _ in range(_DECODE_ROUNDS):
        if "%" not in text and "+" not in text:
            break
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    return text
