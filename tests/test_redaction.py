"""Secrets and personal data never leave the site in a reported URL.

First the rules, on ``redact_url`` with the settings' own policy; then the three ways a URL
reaches the Data API (the middleware's ``href`` and ``referrerHref``, ``{% kameleoon_page
canonical_href=... %}``, ``track(..., "PAGE", ...)``), through the real middleware and the strict
local Data API; last, property tests over arbitrary URLs.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

import pytest
from django.test import Client, RequestFactory
from hypothesis import given
from hypothesis import strategies as st

import django_kameleoon
from django_kameleoon.conf import load_settings, settings_problems
from django_kameleoon.redaction import (
    DEFAULT_REDACTED_PATHS,
    DEFAULT_REDACTED_WORDS,
    PLACEHOLDER,
    redact_url,
)
from django_kameleoon.testing import DataApiServer
from tests.support import CHROME, Configure, delivered

WORDS = load_settings({"SITE_CODE": "x"}).redacted_words
R = PLACEHOLDER


def redact(url: str, **settings: Any) -> str:
    """``url`` as the site with these ``KAMELEOON`` settings would report it."""
    return load_settings({"SITE_CODE": "x", **settings}).url_redactor(url)


# -- query parameters, by name -----------------------------------------------------------------


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
    assert redact(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "https://s.example/cb?accesstoken=A1&x=1", "https://s.example/cb?x=1", id="accesstoken"
        ),
        pytest.param(
            "https://s.example/cb?refreshtoken=A1", "https://s.example/cb", id="refreshtoken"
        ),
        pytest.param(
            "https://s.example/cb?jwt=eyJ0.eyJ1.c2ln&x=1", "https://s.example/cb?x=1", id="jwt"
        ),
        pytest.param(
            "https://s.example/login?pass=hunter2&x=1", "https://s.example/login?x=1", id="pass"
        ),
        pytest.param("https://s.example/2fa?otp=123456", "https://s.example/2fa", id="otp"),
        pytest.param(
            "https://s.example/pay?creditcard=4111111111111111",
            "https://s.example/pay",
            id="creditcard",
        ),
        pytest.param(
            "https://s.example/pay?credit_card_number=4111",
            "https://s.example/pay",
            id="credit_card",
        ),
        pytest.param(
            "https://s.example/p?password1=a&password2=a&x=1",
            "https://s.example/p?x=1",
            id="password1",
        ),
        pytest.param(
            "https://s.example/p?APIKey=1&x=1", "https://s.example/p?x=1", id="acronym-camel"
        ),
        pytest.param(
            "https://s.example/p?user%5Bemail%5D=1&x=1", "https://s.example/p?x=1", id="bracketed"
        ),
    ],
)
def test_names_the_word_list_missed_are_dropped(url: str, expected: str) -> None:
    assert redact(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("https://s.example/p?%74oken=A1&x=1", "https://s.example/p?x=1", id="%74oken"),
        pytest.param("https://s.example/p?%54OKEN=A1", "https://s.example/p", id="%54OKEN"),
        pytest.param("https://s.example/p?access%5Ftoken=A1", "https://s.example/p", id="%5F"),
        pytest.param("https://s.example/p?%2574oken=A1", "https://s.example/p", id="twice"),
        pytest.param("https://s.example/p?pass+word=A1", "https://s.example/p", id="plus"),
    ],
)
def test_names_are_percent_decoded_before_matching(url: str, expected: str) -> None:
    assert redact(url) == expected


def test_short_words_match_whole_words_only() -> None:
    """``key`` in ``keyword``, ``pass`` in ``compass``, ``mail`` in ``mailbox`` stay."""
    url = "https://s.example/p?keyword=a&monkey=b&compass=c&bypass=d&mailbox=e"
    assert redact(url) == url


# -- query parameters, by value ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "https://s.example/s?q=jane.doe@example.com&page=2",
            "https://s.example/s?page=2",
            id="plain",
        ),
        pytest.param(
            "https://s.example/s?q=jane.doe%40example.com", "https://s.example/s", id="encoded"
        ),
        pytest.param(
            "https://s.example/s?to=Jane+%3Cjane%40mail.example.org%3E",
            "https://s.example/s",
            id="named",
        ),
        pytest.param(
            "https://s.example/s?t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
            "https://s.example/s",
            id="jwt-value",
        ),
        pytest.param(
            "https://s.example/s?q=%40handle&q=a@b",
            "https://s.example/s?q=%40handle&q=a@b",
            id="not-emails",
        ),
    ],
)
def test_values_that_are_emails_or_tokens_are_dropped_whatever_the_name(
    url: str, expected: str
) -> None:
    assert redact(url) == expected


def test_an_oauth_callback_loses_code_and_state_together() -> None:
    url = "https://s.example/oauth/cb?code=SplxlOBeZQQYbYS6WxSbIA&state=xyz&lang=fr"
    assert redact(url) == "https://s.example/oauth/cb?lang=fr"
    # Alone, a ``code`` is a promotion or a product code: it stays.
    assert redact("https://s.example/cart?code=SUMMER10") == "https://s.example/cart?code=SUMMER10"


def test_a_fragment_of_parameters_is_filtered_like_a_query() -> None:
    """OAuth's implicit flow returns ``#access_token=...``; a plain anchor stays."""
    url = "https://s.example/cb#access_token=A1&token_type=bearer&expires_in=3600"
    assert redact(url) == "https://s.example/cb#expires_in=3600"
    assert redact("https://s.example/p?x=1#reviews") == "https://s.example/p?x=1#reviews"


def test_credentials_in_the_authority_are_removed() -> None:
    assert redact("https://jane:hunter2@s.example/p") == "https://s.example/p"


def test_kept_parameters_are_kept_byte_for_byte() -> None:
    """Nothing kept is re-encoded: what the site sent is what Kameleoon gets, minus secrets."""
    url = "https://s.example/p?q=a%20b+c&e=%C3%A9&empty=&flag&token=1&x=%ZZ"
    assert redact(url) == "https://s.example/p?q=a%20b+c&e=%C3%A9&empty=&flag&x=%ZZ"


def test_redaction_can_be_configured_or_turned_off() -> None:
    url = "https://s.example/p?token=1&promo=SUMMER"
    words = load_settings({"SITE_CODE": "x", "REDACT_QUERY_PARAMS": ["promo"]}).redacted_words
    assert redact_url(url, words) == "https://s.example/p?token=1"
    assert redact_url(url, frozenset()) == url


# -- KEEP_QUERY_PARAMS -------------------------------------------------------------------------


def test_keep_query_params_keeps_only_the_parameters_it_names() -> None:
    url = "https://s.example/s?q=shoes&utm_source=news&gclid=Cj0&Page=2&%71=boots"
    assert (
        redact(url, KEEP_QUERY_PARAMS=["q", "page"])
        == "https://s.example/s?q=shoes&Page=2&%71=boots"
    )


def test_keep_query_params_never_lets_a_secret_through() -> None:
    """The allow-list narrows what the deny-list and the value rules let through, no more."""
    url = "https://s.example/s?q=jane@example.com&token=A1&page=2"
    assert redact(url, KEEP_QUERY_PARAMS=["q", "token", "page"]) == "https://s.example/s?page=2"
    # To send a parameter whose name has a listed word, take the word out of the deny-list.
    kept = redact(url, KEEP_QUERY_PARAMS=["token"], REDACT_QUERY_PARAMS=["email"])
    assert kept == "https://s.example/s?token=A1"


def test_an_empty_keep_list_drops_every_query() -> None:
    assert (
        redact("https://s.example/s?q=shoes#top", KEEP_QUERY_PARAMS=[]) == "https://s.example/s#top"
    )


# -- paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "https://s.example/accounts/reset/MQ/c7c1zq-4f8ab9d1e2f3a4b5c6d7e8f9a0b1c2d3/",
            f"https://s.example/accounts/reset/{R}/{R}/",
            id="token",
        ),
        pytest.param(
            "https://s.example/reset/NDI/set-password/?next=/",
            f"https://s.example/reset/{R}/{R}/?next=/",
            id="set-password",
        ),
        pytest.param("/reset/MQ/c7c1zq-4f8ab9d1/", f"/reset/{R}/{R}/", id="relative"),
        pytest.param("https://s.example/reset/done/", "https://s.example/reset/done/", id="done"),
        pytest.param("https://s.example/blog/reset/", "https://s.example/blog/reset/", id="other"),
    ],
)
def test_djangos_password_reset_links_are_redacted_by_default(url: str, expected: str) -> None:
    assert redact(url) == expected


def test_a_sites_own_path_patterns_replace_their_groups() -> None:
    invite = r"^/invite/([^/]+)/"
    url = "https://s.example/invite/9f8e7d6c5b4a/accept/"
    assert redact(url, REDACT_PATHS=[invite]) == f"https://s.example/invite/{R}/accept/"
    # Patterns are searched in the path only, so ``^`` is the path's start, not the URL's.
    assert redact("https://s.example/a/invite/x/", REDACT_PATHS=[invite]) == (
        "https://s.example/a/invite/x/"
    )


def test_a_path_pattern_without_groups_replaces_the_whole_match() -> None:
    url = "https://s.example/u/0123456789abcdef0123456789abcdef/edit/"
    assert redact(url, REDACT_PATHS=[r"[0-9a-f]{32}"]) == f"https://s.example/u/{R}/edit/"


def test_redact_paths_replaces_the_default_which_can_be_kept() -> None:
    reset = "https://s.example/reset/MQ/c7c1zq-4f8ab9d1/"
    mine = [r"^/invite/([^/]+)/"]
    assert redact(reset, REDACT_PATHS=mine) == reset
    assert (
        redact(reset, REDACT_PATHS=[*DEFAULT_REDACTED_PATHS, *mine])
        == f"https://s.example/reset/{R}/{R}/"
    )
    assert redact(reset, REDACT_PATHS=[]) == reset


def test_path_patterns_that_cannot_be_combined_are_reported() -> None:
    """Patterns are searched as one alternation, so two groups of one name are a mistake."""
    problems = settings_problems({"SITE_CODE": "x", "REDACT_PATHS": ["(?P<t>a)", "(?P<t>b)"]})
    assert [problem.check_id for problem in problems] == ["E036"]


# -- every URL field, every way it is set: the middleware, the tag, track() --------------------


def the_page(data_api: DataApiServer) -> dict[str, Any]:
    (page,) = [event for event in delivered(data_api) if event["eventType"] == "PAGE"]
    return page


@pytest.mark.parametrize(
    ("settings", "path", "referrer", "href", "referrer_href"),
    [
        pytest.param(
            {},
            "/plain/?accessToken=A1&%74oken=A2&q=jane.doe%40example.com&page=2",
            "https://idp.example/cb?code=C0DE&state=S1&lang=fr",
            "http://testserver/plain/?page=2",
            "https://idp.example/cb?lang=fr",
            id="query",
        ),
        pytest.param(
            {"REDACT_PATHS": [*DEFAULT_REDACTED_PATHS, r"^/odd/invite/([^/]+)/"]},
            "/odd/invite/INV1T3/",
            "https://s.example/reset/MQ/ab-12/",
            f"http://testserver/odd/invite/{R}/",
            f"https://s.example/reset/{R}/{R}/",
            id="paths",
        ),
        pytest.param(
            {"KEEP_QUERY_PARAMS": ["q"]},
            "/plain/?q=teapot&utm_source=news&gclid=Cj0",
            "https://search.example/?q=cast+iron&ei=XYZ",
            "http://testserver/plain/?q=teapot",
            "https://search.example/?q=cast+iron",
            id="keep",
        ),
    ],
)
def test_the_middleware_redacts_href_and_referrer(
    kameleoon: Configure,
    data_api: DataApiServer,
    settings: dict[str, Any],
    path: str,
    referrer: str,
    href: str,
    referrer_href: str,
) -> None:
    kameleoon(**settings)
    Client().get(path, headers={"Referer": referrer})
    page = the_page(data_api)
    assert (page["href"], page["referrerHref"]) == (href, referrer_href)


@pytest.mark.usefixtures("kameleoon")
def test_the_page_tag_canonical_href_is_redacted(data_api: DataApiServer) -> None:
    """The view sets ``canonical_href`` to the request's own absolute URL, a common pattern."""
    Client().get("/self-canonical/?token=A1&q=1")
    assert the_page(data_api)["canonicalHref"] == "http://testserver/self-canonical/?q=1"


@pytest.mark.usefixtures("kameleoon")
@pytest.mark.parametrize("target", ["request", "visitor code"])
def test_track_page_redacts_every_url_field(data_api: DataApiServer, target: str) -> None:
    request = RequestFactory().get("/", headers={"User-Agent": CHROME})
    django_kameleoon.track(
        request if target == "request" else "visitor-1",
        "PAGE",
        href="https://s.example/reset/MQ/c7c1zq-4f8ab9d1/?jwt=eyJ0&x=1",
        referrerHref="https://mail.example/?email=jane%40example.com&folder=inbox",
        canonicalHref="https://s.example/p?otp=123456",
        title="t",
    )
    page = the_page(data_api)
    assert page["href"] == f"https://s.example/reset/{R}/{R}/?x=1"
    assert page["referrerHref"] == "https://mail.example/?folder=inbox"
    assert page["canonicalHref"] == "https://s.example/p"


@pytest.mark.usefixtures("kameleoon")
def test_track_still_rejects_a_url_that_is_not_text() -> None:
    with pytest.raises(TypeError, match=r"PAGE\.href must be a str"):
        django_kameleoon.track("visitor-1", "PAGE", href=b"https://s.example/?token=1")


# -- properties --------------------------------------------------------------------------------


@given(st.text())
def test_redaction_never_raises_and_returns_text(url: str) -> None:
    assert isinstance(redact(url), str)
    assert isinstance(redact(url, KEEP_QUERY_PARAMS=["q"], REDACT_PATHS=[r"^/(\w+)/"]), str)


URL_CHARS = st.sampled_from("aZ09/?#&=%+@.:;-_~ é\x00\udcff")


@given(st.text(URL_CHARS, max_size=60))
def test_redaction_never_raises_on_url_punctuation(url: str) -> None:
    result = redact("https://s.example/" + url)
    assert redact(result) == result, "redaction is idempotent"


#: Each secret is a marker that nothing else in a generated URL can contain.
SECRET = st.from_regex(r"S3CR3T[0-9]{1,6}", fullmatch=True)
BENIGN = st.lists(
    st.tuples(
        st.sampled_from(["q", "page", "sort", "lang", "utm_source", "ref", "color", "size"]),
        st.text("abcdefghijklmnopqrstuvwxyz0123456789", max_size=8),
    ),
    max_size=4,
)
PREFIXES = ["", "user", "new", "x", "old", "access", "api"]


@st.composite
def secret_names(draw: st.DrawFn) -> str:
    """A parameter name holding a listed word, written the ways sites write names."""
    word = draw(st.sampled_from(DEFAULT_REDACTED_WORDS))
    prefix = draw(st.sampled_from(PREFIXES))
    styles = ["snake", "kebab", "dotted", "camel", "upper", "bracket"]
    if len(word) >= 5:
        styles.append("compound")
    style = draw(st.sampled_from(styles))
    name = {
        "snake": f"{prefix}_{word}",
        "kebab": f"{prefix}-{word}",
        "dotted": f"{prefix}.{word}",
        "camel": prefix + word.capitalize(),
        "upper": f"{prefix}_{word}".upper(),
        "bracket": f"{prefix}[{word}]",
        "compound": prefix + word,
    }[style]
    return draw(percent_encoded(name.strip("_-.") or word))


@st.composite
def percent_encoded(draw: st.DrawFn, text: str) -> str:
    """``text`` with any of its characters percent-encoded, in upper or lower case hex."""
    chars = []
    for char in text:
        encoded = f"%{ord(char):02X}" if draw(st.booleans()) else char
        chars.append(encoded.lower() if draw(st.booleans()) else encoded)
    return "".join(chars)


@st.composite
def urls_with_a_secret(draw: st.DrawFn) -> tuple[str, str]:
    """A URL with one secret in it, in any of the ways the rules cover, and that secret."""
    secret = draw(SECRET)
    kind = draw(st.sampled_from(["name", "email", "oauth", "reset", "fragment"]))
    at = draw(st.sampled_from(["@", "%40"]))
    secret_pairs = {
        "name": [f"{draw(secret_names())}={secret}"],
        "email": [f"{draw(st.sampled_from(['q', 'to', 'x']))}={secret}{at}mail.example.org"],
        "oauth": [f"code={secret}", "state=s"],
    }.get(kind, [])
    pairs = [f"{name}={value}" for name, value in draw(BENIGN)]
    for pair in secret_pairs:
        pairs.insert(draw(st.integers(0, len(pairs))), pair)
    query = "&".join(pairs)
    if kind == "reset":
        return f"https://s.example/accounts/reset/MQ/c7c1zq-{secret}/?{query}", secret
    if kind == "fragment":
        return f"https://s.example/p/#access_token={secret}&{query}", secret
    return f"https://s.example/p/?{query}", secret


@given(urls_with_a_secret())
def test_no_listed_secret_gets_through(case: tuple[str, str]) -> None:
    url, secret = case
    for settings in ({}, {"KEEP_QUERY_PARAMS": ["q", "code", "to", "x"]}):
        result = redact(url, **settings)
        assert secret not in unquote_plus(unquote_plus(result)), (url, result)
