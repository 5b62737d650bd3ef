"""Django REST framework: its Request wraps Django's, and the public functions take it too."""

from __future__ import annotations

import pytest
from django.test import Client

import django_kameleoon
from django_kameleoon.testing import DataApiServer
from tests.support import CHROME, COOKIE, Configure

CODE = "returning_visitor-1"


@pytest.fixture
def client(kameleoon: Configure) -> Client:
    client = Client(HTTP_USER_AGENT=CHROME)
    client.cookies[COOKIE] = CODE
    return client


def test_a_conversion_from_an_api_view_is_the_visitors(
    client: Client, data_api: DataApiServer
) -> None:
    response = client.post("/drf/checkout/", content_type="application/json", data={})
    assert response.status_code == 200
    assert response.json() == {"visitor": CODE}
    assert django_kameleoon.flush(5)
    [event] = data_api.events  # JSON answer to a POST: a conversion, and no PAGE
    assert (event["eventType"], event["visitorCode"], event["goalId"]) == ("CONVERSION", CODE, 42)
    assert event["revenue"] == 19.99


def test_a_new_visitor_of_an_api_view_gets_the_cookie_of_its_conversion(
    kameleoon: Configure, data_api: DataApiServer
) -> None:
    response = Client(HTTP_USER_AGENT=CHROME).post(
        "/drf/checkout/", content_type="application/json", data={}
    )
    code = response.json()["visitor"]
    assert response.cookies[COOKIE].value == code
    assert django_kameleoon.flush(5)
    assert [e["visitorCode"] for e in data_api.events] == [code]
