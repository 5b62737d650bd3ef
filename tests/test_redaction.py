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
from tests.support import CHROME, Configure, browser, browser_requests, delivered

WORDS = load_settings({"SITE_CODE": "x"}).redacted_words
R = PLACEHOLDER
#: A token of Django's password-reset links: a base-36 timestamp, a dash, 32 hex digits.
TOKEN = "c7c1zq-4f8ab9d1e2f3a4b5c6d7e8f9a0b1c2d3"


def redact(url: str, **settings: Any) -> str:
    """``url`` as the site with these ``KAMELEOON`` settings would report it."""
    return load_settings({"SITE_CODE": "x", **settings}).url_redactor(url)


# -- query parameters and fragments ------------------------------------------------------------


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


def left(query: str, **settings: Any) -> str:
    """What stays of ``query`` in a page's URL on a site with these ``KAMELEOON`` settings."""
    return redact(f"https://s.example/p?{query}", **settings).partition("?")[2]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Names the word list missed.
        pytest.param("accesstoken=A1&x=1", "x=1", id="accesstoken"),
        pytest.param("refreshtoken=A1", "", id="refreshtoken"),
        pytest.param("jwt=eyJ0.eyJ1.c2ln&x=1", "x=1", id="jwt"),
        pytest.param("pass=hunter2&x=1", "x=1", id="pass"),
        pytest.param("otp=123456", "", id="otp"),
        pytest.param("creditcard=4111111111111111", "", id="creditcard"),
        pytest.param("credit_card_number=4111", "", id="credit_card"),
        pytest.param("password1=a&password2=a&x=1", "x=1", id="password1"),
        pytest.param("APIKey=1&x=1", "x=1", id="acronym-camel"),
        pytest.param("USER_PWd=1&x=1", "x=1", id="odd-case"),
        pytest.param("user%5Bemail%5D=1&x=1", "x=1", id="bracketed"),
        # Short words match whole words only.
        pytest.param(
            "keyword=a&monkey=b&compass=c&bypass=d",
            "keyword=a&monkey=b&compass=c&bypass=d",
            id="short-words",
        ),
        # Names are percent-decoded before matching.
        pytest.param("%74oken=A1&x=1", "x=1", id="%74oken"),
        pytest.param("%54OKEN=A1", "", id="%54OKEN"),
        pytest.param("access%5Ftoken=A1", "", id="%5F"),
        pytest.param("%2574oken=A1", "", id="twice"),
        pytest.param("pass+word=A1", "", id="plus"),
        # Values that are e-mail addresses or tokens, whatever the name.
        pytest.param("q=jane.doe@example.com&page=2", "page=2", id="email"),
        pytest.param("q=jane.doe%40example.com", "", id="email-encoded"),
        pytest.param("to=Jane+%3Cjane%40mail.example.org%3E", "", id="email-named"),
        pytest.param("t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "", id="jwt-value"),
        pytest.param("q=%40handle&q=a@b", "q=%40handle&q=a@b", id="not-emails"),
        # An OAuth callback loses code and state together; a code alone is a promotion code.
        pytest.param("code=SplxlOBeZQQYbYS6WxSbIA&state=xyz&lang=fr", "lang=fr", id="oauth"),
        pytest.param("code=SUMMER10", "code=SUMMER10", id="promotion-code"),
    ],
)
def test_query_parameters_holding_secrets_are_dropped(query: str, expected: str) -> None:
    assert left(query) == expected


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
    """Names are compared decoded and ignoring case, as the deny-list compares them."""
    query = "q=shoes&utm_source=news&gclid=Cj0&Page=2&%71=boots"
    assert left(query, KEEP_QUERY_PARAMS=["q", "page"]) == "q=shoes&Page=2&%71=boots"


def test_keep_query_params_never_lets_a_secret_through() -> None:
    """The allow-list narrows what the deny-list and the value rules let through, no more."""
    query = "q=jane@example.com&token=A1&page=2"
    assert left(query, KEEP_QUERY_PARAMS=["q", "token", "page"]) == "page=2"
    # To send a parameter whose name has a listed word, take the word out of the deny-list.
    assert left(query, KEEP_QUERY_PARAMS=["token"], REDACT_QUERY_PARAMS=["email"]) == "token=A1"


def test_an_empty_keep_list_drops_every_query() -> None:
    assert (
        redact("https://s.example/s?q=shoes#top", KEEP_QUERY_PARAMS=[]) == "https://s.example/s#top"
    )


# -- paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            f"https://s.example/accounts/reset/MQ/{TOKEN}/",
            f"https://s.example/accounts/reset/{R}/{R}/",
            id="token",
        ),
        pytest.param(
            "https://s.example/reset/NDI/set-password/?next=/",
            f"https://s.example/reset/{R}/set-password/?next=/",
            id="set-password",
        ),
        pytest.param(f"/reset/MQ/{TOKEN}/", f"/reset/{R}/{R}/", id="relative"),
        pytest.param(f"//s.example/reset/MQ/{TOKEN}/", f"//s.example/reset/{R}/{R}/", id="//host"),
        pytest.param(f"/a//reset/MQ/{TOKEN}/", f"/a//reset/{R}/{R}/", id="a//path"),
        pytest.param(
            f"https://u:p@s.example/reset/MQ/{TOKEN}/",
            f"https://s.example/reset/{R}/{R}/",
            id="userinfo",
        ),
        pytest.param("https://s.example/reset/done/", "https://s.example/reset/done/", id="done"),
        pytest.param(
            "https://s.example/reset/my-post/a-b/",
            "https://s.example/reset/my-post/a-b/",
            id="slugs",
        ),
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
    reset = f"https://s.example/reset/MQ/{TOKEN}/"
    mine = [r"^/invite/([^/]+)/"]
    assert redact(reset, REDACT_PATHS=mine) == reset
    assert (
        redact(reset, REDACT_PATHS=[*DEFAULT_REDACTED_PATHS, *mine])
        == f"https://s.example/reset/{R}/{R}/"
    )
    assert redact(reset, REDACT_PATHS=[]) == reset


@pytest.mark.parametrize(("key", "check_id"), [("REDACT_PATHS", "E036"), ("EXCLUDE_PATHS", "E019")])
def test_path_patterns_that_cannot_be_combined_are_reported(key: str, check_id: str) -> None:
    """Patterns are searched as one alternation, so two groups of one name are a mistake."""
    problems = settings_problems({"SITE_CODE": "x", key: ["(?P<t>a)", "(?P<t>b)"]})
    assert [problem.check_id for problem in problems] == [check_id]


# -- every URL field, every way it is set: the middleware, the tag, track() --------------------


def the_page(data_api: DataApiServer) -> dict[str, Any]:
    (page,) = [event for event in delivered(data_api) if event["eventType"] == "PAGE"]
    return page


@pytest.mark.parametrize(
    ("overrides", "path", "referrer", "href", "referrer_href"),
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
            f"https://s.example/reset/MQ/{TOKEN}/",
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
    overrides: dict[str, Any],
    path: str,
    referrer: str,
    href: str,
    referrer_href: str,
) -> None:
    kameleoon(**overrides)
    browser().get(path, headers={"Referer": referrer})
    page = the_page(data_api)
    assert (page["href"], page["referrerHref"]) == (href, referrer_href)


@pytest.mark.usefixtures("kameleoon")
def test_the_page_tag_canonical_href_is_redacted(data_api: DataApiServer) -> None:
    """The view sets ``canonical_href`` to the request's own absolute URL, a common pattern."""
    browser().get("/self-canonical/?token=A1&q=1")
    assert the_page(data_api)["canonicalHref"] == "http://testserver/self-canonical/?q=1"


@pytest.mark.usefixtures("kameleoon")
@pytest.mark.parametrize("target", ["request", "visitor code"])
def test_track_page_redacts_every_url_field(data_api: DataApiServer, target: str) -> None:
    request = browser_requests().get("/", headers={"User-Agent": CHROME})
    django_kameleoon.track(
        request if target == "request" else "visitor-1",
        "PAGE",
        href=f"https://s.example/reset/MQ/{TOKEN}/?jwt=eyJ0&x=1",
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
RESET_HASH = st.from_regex(r"[0-9a-f]{20,40}", fullmatch=True)
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
    hex_digits = st.sampled_from(["%{:02X}", "%{:02x}"])
    return "".join(
        draw(hex_digits).format(ord(char)) if draw(st.booleans()) else char for char in text
    )


@st.composite
def urls_with_a_secret(draw: st.DrawFn) -> tuple[str, str]:
    """A URL with one secret in it, in any of the ways the rules cover, and that secret."""
    kind = draw(st.sampled_from(["name", "email", "oauth", "reset", "fragment"]))
    secret = draw(RESET_HASH if kind == "reset" else SECRET)
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


# -- the redactor's memory of answers ----------------------------------------------------------


def test_a_repeated_url_gets_the_same_answer_from_the_redactor() -> None:
    """Answers are remembered per URL: asked again, a URL is redacted exactly as the first time,
    under the settings' own rules, whether it is short enough to be remembered or not."""
    settings = load_settings({"SITE_CODE": "x", "REDACT_PATHS": [r"/orders/(\d+)/"]})
    long_query = "&".join(f"p{n}=v{n}" for n in range(120))
    urls = [
        "https://s.example/p?token=abc&lang=fr",
        f"https://s.example/orders/42/?{long_query}&token=abc",
        f"https://s.example/p?{long_query}&email=a%40b.example",
    ]
    assert len(urls[1]) > 512 and len(urls[2]) > 512  # over the remembered length
    words, redactor = settings.redacted_words, settings.url_redactor
    for url in urls:
        first, second = redactor(url), redactor(url)
        assert first == second
        assert "token" not in first and "a%40b" not in first and "/orders/42/" not in first
    assert redact_url(urls[0], words) == redactor(urls[0])


def test_the_redactor_memory_is_bounded() -> None:
    """Distinct URLs, short or long, cannot make the redactor keep more than about 1 MB."""
    import tracemalloc

    redactor = load_settings({"SITE_CODE": "x"}).url_redactor
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(3000):
            redactor(f"https://s.example/{n}/" + "a" * 480)  # remembered, up to the bound
            redactor(f"https://s.example/{n}/" + "b" * 4000)  # too long to be remembered
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 1,024 answers of ~500 characters, twice (the URL and its answer, the same string here).
    assert kept < 1_500_000, kept
