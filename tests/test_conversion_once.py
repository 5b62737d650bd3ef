"""A conversion counts once: an idempotency ``key``, and ``on_commit`` for rolled-back orders.

A thank-you page reloaded three times recorded three conversions. With ``key=order.pk`` the
event's nonce is derived from the visitor, the goal, ``negative`` and the key (keyed with the
site's ``SECRET_KEY``), so every copy is the same event to the Data API, which keeps the first
and drops the rest as duplicates (the strict stand-in counts them in ``duplicates``).

``on_commit=True`` queues the conversion when the database transaction commits: an order that
is rolled back records nothing. These tests use real transactions on the suite's SQLite
database (``transaction=True``: each test commits for real, then the tables are flushed).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import override_settings

import django_kameleoon
from django_kameleoon.testing import DataApiServer
from tests.support import COOKIE, Configure, browser, delivered

NONCE = re.compile(r"[0-9a-f]{16}")


@pytest.fixture(autouse=True)
def _tracked(kameleoon: Configure) -> None:
    """Every test here talks to the local Data API through the threaded backend."""


# -- the key --------------------------------------------------------------------------------------


def test_a_reloaded_thank_you_page_counts_once(data_api: DataApiServer) -> None:
    client = browser(headers={"Cookie": f"{COOKIE}=shopper-1"})
    for _ in range(3):
        assert client.get("/orders/5/thanks/").status_code == 200
    client.get("/orders/6/thanks/")  # another order: another conversion
    events = [e for e in delivered(data_api) if e["eventType"] == "CONVERSION"]
    assert [(e["goalId"], e["revenue"]) for e in events] == [(7, 5.5), (7, 5.5)]
    assert [d["nonce"] for d in data_api.duplicates] == [events[0]["nonce"]] * 2
    assert len([e for e in data_api.events if e["eventType"] == "PAGE"]) == 4, "each view counts"


def nonce(target: Any = "visitor-1", goal: int = 12, **kwargs: Any) -> str:
    event = django_kameleoon.track_conversion(target, goal, **kwargs)
    assert event is not None
    return event.nonce


def test_the_nonce_is_the_same_for_the_same_conversion(data_api: DataApiServer) -> None:
    first = nonce(key=5, revenue=59.8)
    assert NONCE.fullmatch(first)
    assert nonce(key=5, revenue=59.8) == first
    assert nonce(key="5", revenue=59.8) == first, "order.pk or str(order.pk): the same order"
    assert len(delivered(data_api)) == 1 and len(data_api.duplicates) == 2


def test_anything_else_is_another_conversion(data_api: DataApiServer) -> None:
    nonces = {
        nonce(key=5),
        nonce(key=6),
        nonce(goal=13, key=5),
        nonce("visitor-2", key=5),
        nonce(key=5, negative=True),  # a refund of order 5 is not order 5 again
        nonce(key=uuid.UUID(int=5)),
        nonce(),  # no key: a random nonce, as ever
        nonce(),
    }
    assert len(nonces) == 8
    assert len(delivered(data_api)) == 8 and data_api.duplicates == []


def test_the_nonce_is_keyed_with_the_sites_secret() -> None:
    """Without the secret nobody can work out the nonce of a visitor's next conversion and
    send it first, which would make Kameleoon drop the real one as a duplicate."""
    first = nonce(key=5)
    with override_settings(SECRET_KEY="another-site"):
        assert nonce(key=5) != first


def test_a_request_keys_by_its_visitor(data_api: DataApiServer) -> None:
    request = browser(headers={"Cookie": f"{COOKIE}=shopper-1"}).get("/plain/").wsgi_request
    assert nonce(request, key=5) == nonce("shopper-1", key=5)


@pytest.mark.parametrize(
    ("key", "error"),
    [([5], TypeError), (True, TypeError), (1.5, TypeError), (b"5", TypeError), ("", ValueError)],
)
def test_a_wrong_key_raises_at_the_call(key: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="key"):
        django_kameleoon.track_conversion("visitor-1", 12, key=key)
    assert django_kameleoon.stats()["queued"] == 0


# -- on_commit ----------------------------------------------------------------------------------


class Refused(Exception):
    """The payment provider said no: the order is rolled back."""


def place_order(name: str, goal: int, *, fail: bool = False) -> None:
    """What a checkout view does: save the order and record the conversion in one transaction."""
    with transaction.atomic():
        User.objects.create(username=name)  # stands in for the order
        convert(f"visitor-{name}", goal, fail=fail)


def convert(code: str, goal: int, *, fail: bool = False) -> None:
    """Record a conversion at the commit; then the payment fails, if ``fail``."""
    django_kameleoon.track_conversion(code, goal, on_commit=True)
    if fail:
        raise Refused


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_order_records_nothing(
    data_api: DataApiServer, conversions: list[dict[str, Any]]
) -> None:
    with pytest.raises(Refused):
        place_order("declined", 1, fail=True)
    place_order("paid", 2)
    assert not User.objects.filter(username="declined").exists()
    assert [e["goalId"] for e in delivered(data_api)] == [2]
    assert [c["goal_id"] for c in conversions] == [2], "receivers hear of committed ones only"


@pytest.mark.django_db(transaction=True)
def test_nothing_is_queued_before_the_commit(data_api: DataApiServer) -> None:
    with transaction.atomic():
        event = django_kameleoon.track_conversion("visitor-1", 3, revenue=9.5, on_commit=True)
        assert event is not None, "the event that the commit will queue"
        counters = django_kameleoon.stats()
        assert (counters["queued"], counters["sent"]) == (0, 0)
    [sent] = delivered(data_api)
    assert (sent["nonce"], sent["revenue"]) == (event.nonce, 9.5)


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_savepoint_drops_only_its_own(data_api: DataApiServer) -> None:
    with transaction.atomic():
        django_kameleoon.track_conversion("visitor-1", 1, on_commit=True)
        with pytest.raises(Refused), transaction.atomic():
            convert("visitor-1", 2, fail=True)
    assert [e["goalId"] for e in delivered(data_api)] == [1]


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_it_is_queued_at_once(data_api: DataApiServer) -> None:
    django_kameleoon.track_conversion("visitor-1", 4, on_commit=True)
    assert django_kameleoon.stats()["queued"] + django_kameleoon.stats()["sent"] == 1
    assert [e["goalId"] for e in delivered(data_api)] == [4]


@pytest.mark.parametrize("on_commit", ["default", 1, None])
def test_on_commit_takes_true_or_false(on_commit: Any) -> None:
    with pytest.raises(TypeError, match="on_commit"):
        django_kameleoon.track_conversion("visitor-1", 12, on_commit=on_commit)
