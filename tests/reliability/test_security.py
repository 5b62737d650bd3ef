"""Security review of what the library sets, renders, sends and logs.

- No visitor code from a request can inject into a header or a page: a cookie value that is not
  a plain code (CR/LF, quotes, markup, ``;``, spaces, non-ASCII, too long) is replaced, never
  echoed; the Set-Cookie header and ``{% kameleoon_visitor_code %}`` carry only ``[A-Za-z0-9_-]``.
- Secret-looking query parameters never leave the site in PAGE ``href`` or ``referrerHref``.
- Nothing that holds a visitor's data is logged at INFO or above, across a run full of faults.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from django.test import Client

import django_kameleoon
from django_kameleoon.backends import reset_backend
from django_kameleoon.testing import DataApiServer
from tests.support import CHROME, COOKIE, NEW_CODE, Configure

pytestmark = pytest.mark.slow

SAFE = re.compile(r"[A-Za-z0-9_-]+")

HOSTILE_CODES = [
    "abc\r\nSet-Cookie: admin=1",
    "abc\nLocation: https://evil.example/",
    'abc"def',
    "abc'def",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "abc def",
    "abc,def",
    "abc=def",
    "abc\\def",
    "abc%0d%0aSet-Cookie:x",
    "abc\x00def",
    "d\u00e9j\u00e0-vu",
    "\u202eevil",
    "a" * 101,
]


@pytest.mark.parametrize("raw", HOSTILE_CODES, ids=range(len(HOSTILE_CODES)))
def test_a_hostile_cookie_is_replaced_never_echoed(
    kameleoon: Configure, data_api: DataApiServer, raw: str
) -> None:
    # As a WSGI server hands it over: the header's UTF-8 bytes, decoded as Latin-1.
    header = f"{COOKIE}={raw}".encode().decode("latin-1")
    response = Client(HTTP_USER_AGENT=CHROME).get(
        "/page/", headers={"Cookie": header, "User-Agent": CHROME}
    )
    assert response.status_code == 200
    morsel = response.cookies[COOKIE]
    code = morsel.value
    assert NEW_CODE.fullmatch(code), f"Set-Cookie carries {code!r}"
    set_cookie = morsel.OutputString()
    assert set_cookie.startswith(f"{COOKIE}={code};")
    assert "\r" not in set_cookie and "\n" not in set_cookie
    body = response.content.decode()
    rendered = re.search(r'<p id="visitor">(.*?)</p>', body, re.S)
    assert rendered is not None and rendered.group(1) == code
    assert "<script" not in body and "onerror" not in body and "admin=1" not in body
    assert django_kameleoon.flush(5)
    assert {e["visitorCode"] for e in data_api.events} == {code}


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (f"{COOKIE}=abc", "abc"),
        (f"{COOKIE}=A-b_9", "A-b_9"),
        (f"{COOKIE}={'x' * 100}", "x" * 100),
        # ';' ends a cookie: what follows is another cookie, not part of the code.
        (f"{COOKIE}=abc;<script>alert(1)</script>", "abc"),
        (f"{COOKIE}=abc; {COOKIE}=<b>", "<b>"),  # the last one wins in Django: replaced
    ],
)
def test_a_valid_cookie_is_kept_and_rendered_as_is(
    kameleoon: Configure, data_api: DataApiServer, header: str, code: str
) -> None:
    response = Client(HTTP_USER_AGENT=CHROME).get("/page/", headers={"Cookie": header})
    body = response.content.decode()
    if SAFE.fullmatch(code):
        assert response.cookies[COOKIE].value == code, "renewed, never replaced"
        assert f'<p id="visitor">{code}</p>' in body
    else:
        assert NEW_CODE.fullmatch(response.cookies[COOKIE].value)
    assert "<script" not in body and "<b>" not in body


@pytest.mark.parametrize(
    ("path", "referrer", "href", "referrer_href"),
    [
        (
            "/plain/?q=shoes&token=t0k&password=pw&page=2",
            "https://other.example/?email=a%40b.c&ref=ad",
            "http://testserver/plain/?q=shoes&page=2",
            "https://other.example/?ref=ad",
        ),
        (
            "/plain/?api_key=k&userEmail=u&sessionid=s&reset_password_key=r&keyword=kw",
            "https://other.example/cb?access_token=x&sig=y&code_verifier=z",
            "http://testserver/plain/?keyword=kw",
            "https://other.example/cb?code_verifier=z",
        ),
        (
            "/plain/?AuthToken=a&Phone=1&q=x",
            "https://other.example/plain",
            "http://testserver/plain/?q=x",
            "https://other.example/plain",
        ),
    ],
)
def test_secret_query_parameters_never_leave_the_site(
    kameleoon: Configure,
    data_api: DataApiServer,
    path: str,
    referrer: str,
    href: str,
    referrer_href: str,
) -> None:
    Client(HTTP_USER_AGENT=CHROME).get(path, headers={"Referer": referrer, "User-Agent": CHROME})
    assert django_kameleoon.flush(5)
    (page,) = [e for e in data_api.events if e["eventType"] == "PAGE"]
    assert (page["href"], page["referrerHref"]) == (href, referrer_href)


def test_redact_query_params_can_be_replaced(kameleoon: Configure, data_api: DataApiServer) -> None:
    kameleoon(REDACT_QUERY_PARAMS=["coupon"])
    Client(HTTP_USER_AGENT=CHROME).get("/plain/?coupon=SAVE10&token=kept&q=x")
    assert django_kameleoon.flush(5)
    (page,) = [e for e in data_api.events if e["eventType"] == "PAGE"]
    assert page["href"] == "http://testserver/plain/?token=kept&q=x"


# -- the log ----------------------------------------------------------------------------------

#: Visitor data used in the run below; none of it may appear in a log record at INFO or above.
VISITOR = "SecretVisitor-7f3a"
USER_AGENT = CHROME + " SecretShell/9.9"
PATH_MARK = "secretpath"
QUERY_MARK = "secretquery"
REFERRER = "https://secretreferrer.example/page?from=secretfrom"
METADATA_MARK = "secretmetadata"
MARKS = [VISITOR, "SecretShell", PATH_MARK, QUERY_MARK, "secretreferrer", "secretfrom"]


def page_views(count: int, **extra: Any) -> None:
    client = Client(HTTP_USER_AGENT=CHROME)
    for i in range(count):
        response = client.get(
            f"/odd/{PATH_MARK}/{i}?q={QUERY_MARK}",
            headers={
                "Cookie": f"{COOKIE}={VISITOR}",
                "User-Agent": USER_AGENT,
                "Referer": REFERRER,
                **extra,
            },
        )
        assert response.status_code == 200


def test_nothing_holding_visitor_data_is_logged_at_info_or_above(
    kameleoon: Configure, data_api: DataApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    kameleoon(MAX_RETRIES=1, MAX_BATCH_EVENTS=10, MAX_QUEUE_SIZE=40, TIMEOUT=0.3)
    # Retries, a lost connection, a timeout, refusals and a 413 split.
    data_api.fail(503)
    data_api.drop()
    data_api.delay(1.0)
    data_api.fail(400, times=2)
    data_api.fail(413)
    page_views(15)
    for i in range(10):
        django_kameleoon.track_conversion(VISITOR, i + 1, metadata={1: [METADATA_MARK]})
    assert django_kameleoon.flush(10)
    # A template tag given a visitor's value it cannot use (?keys= is passed to key_page_indices).
    Client(HTTP_USER_AGENT=CHROME).get(
        f"/page/?keys={QUERY_MARK}", headers={"Cookie": f"{COOKIE}={VISITOR}"}
    )
    # A consent callable that raises: the middleware logs and sends the page unchanged.
    kameleoon(CONSENT="tests.consent.broken", MAX_QUEUE_SIZE=40, FLUSH_INTERVAL=60.0)
    page_views(2)
    # The API goes away: the queue overflows, then the process "exits" with events unsent.
    kameleoon(MAX_QUEUE_SIZE=40, FLUSH_INTERVAL=60.0, MAX_BATCH_EVENTS=1000)
    data_api.stop()
    page_views(30)
    reset_backend(0.5)
    data_api.reset()  # the 400-refused events were sent on purpose; nothing else is checked here

    ours = [
        r
        for r in caplog.records
        if r.name.startswith("django_kameleoon") and r.levelno >= logging.INFO
    ]
    messages = {r.getMessage() for r in ours}
    # The run did make the library talk: retries, drops, overflow, loss at exit, errors.
    for expected in ("retry", "refused", "(queue_full)", "dropped (closed)", "could not track"):
        assert any(expected in m for m in messages), (expected, messages)
    for record in ours:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        for mark in MARKS:
            assert mark not in text, f"{mark!r} logged at {record.levelname}: {text}"
