"""Async views: ``atrack_conversion()``/``atrack()``, and the sync functions called from them.

A ``CONSENT`` callable that queries the database raised ``SynchronousOnlyOperation`` when
``track_conversion()`` ran in an async view, under ASGI (``AsyncClient``) and under WSGI alike
(Django runs an async view in an event loop there too). The consent here is a real query
(``tests.consent.by_account``), in a real SQLite database; ``transaction=True`` so that the
rows the tests write are committed, as other threads (where the query runs) must see them.
The same under a real uvicorn: ``tests/reliability/test_async_views.py``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User

import django_kameleoon
from django_kameleoon import signals
from django_kameleoon.testing import DataApiServer
from tests.support import (
    COOKIE,
    Configure,
    asgi,
    async_browser,
    browser,
    browser_requests,
    delivered,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def consent_in_the_database(kameleoon: Configure) -> None:
    """Consent by database lookup; alice consented, bob did not (he has no active account)."""
    kameleoon(CONSENT="tests.consent.by_account")
    User.objects.create(username="alice")
    User.objects.create(username="bob", is_active=False)


def cookies(account: str) -> dict[str, str]:
    return {COOKIE: f"visitor-{account}", "account": account}


def through_asgi(path: str, account: str) -> Any:
    client = async_browser()
    client.cookies.load(cookies(account))
    return asgi(client, "post", path)


def through_wsgi(path: str, account: str) -> Any:
    client = browser()
    client.cookies.load(cookies(account))
    return client.post(path)


@pytest.mark.usefixtures("consent_in_the_database")
@pytest.mark.parametrize("handler", [through_asgi, through_wsgi], ids=["asgi", "wsgi"])
@pytest.mark.parametrize("path", ["/async/buy/", "/async/abuy/"], ids=["sync-call", "async-call"])
def test_an_async_view_with_a_database_consent(
    handler: Any, path: str, data_api: DataApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="django_kameleoon"):
        assert handler(path, "alice").status_code == 302
        assert handler(path, "bob").status_code == 302
    assert caplog.records == []
    events = delivered(data_api)
    assert {e["visitorCode"] for e in events} == {"visitor-alice"}
    expected = {"CONVERSION"} if path == "/async/buy/" else {"CONVERSION", "CUSTOMDATA"}
    assert {e["eventType"] for e in events} == expected


@pytest.mark.usefixtures("consent_in_the_database")
def test_the_async_twins_take_a_request_or_a_code(data_api: DataApiServer) -> None:
    request = browser_requests().post("/checkout/")
    request.COOKIES.update(cookies("alice"))
    converted = async_to_sync(django_kameleoon.atrack_conversion)
    tracked = async_to_sync(django_kameleoon.atrack)
    first = converted(request, 12, revenue=59.8, metadata={1: ["web"]}, key=7)
    assert first is not None and converted(request, 12, revenue=59.8, metadata={1: ["web"]}, key=7)
    assert tracked("visitor-x", "TARGETINGSEGMENT", id=4321) is not None
    assert converted("visitor-x", 3, negative=True) is not None
    events = delivered(data_api)
    assert [(e["visitorCode"], e["eventType"]) for e in events] == [
        ("visitor-alice", "CONVERSION"),
        ("visitor-x", "TARGETINGSEGMENT"),
        ("visitor-x", "CONVERSION"),
    ]
    assert events[0]["nonce"] == first.nonce and len(data_api.duplicates) == 1


@pytest.mark.usefixtures("consent_in_the_database")
def test_the_async_twins_refuse_wrong_arguments_at_the_call(data_api: DataApiServer) -> None:
    with pytest.raises(TypeError):
        async_to_sync(django_kameleoon.atrack_conversion)("visitor-x", "12")
    with pytest.raises(ValueError):
        async_to_sync(django_kameleoon.atrack)("visitor-x", "PAGEVIEW")
    with pytest.raises(TypeError):
        async_to_sync(django_kameleoon.atrack_conversion)("visitor-x", 12, key=[1])
    assert delivered(data_api) == []


@pytest.mark.usefixtures("consent_in_the_database")
@pytest.mark.parametrize("path", ["/async/buy/", "/async/abuy/"], ids=["sync-call", "async-call"])
def test_conversion_receivers_may_use_the_database_from_async_views(
    path: str, data_api: DataApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A site's receiver mirrors goals in its own tables; it runs where the ORM is allowed."""
    seen: list[int] = []

    def count_accounts(sender: Any, goal_id: int, **kwargs: Any) -> None:
        seen.append(User.objects.filter(is_active=True).count())

    signals.conversion.connect(count_accounts)
    try:
        with caplog.at_level(logging.ERROR, logger="django_kameleoon"):
            assert through_asgi(path, "alice").status_code == 302
    finally:
        signals.conversion.disconnect(count_accounts)
    assert caplog.records == []
    assert seen == [1]


def test_the_async_twins_are_exported_like_the_others() -> None:
    from django_kameleoon import api

    for name in ("atrack", "atrack_conversion"):
        assert name in django_kameleoon.__all__
        assert getattr(django_kameleoon, name) is getattr(api, name)
