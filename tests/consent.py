"""CONSENT callables for the tests (``KAMELEOON["CONSENT"]`` takes a dotted path)."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest
from django.utils.asyncio import async_unsafe


def deny(request: HttpRequest) -> bool:
    return False


def allow(request: HttpRequest) -> bool:
    return True


def by_cookie(request: HttpRequest) -> bool:
    """Consent as a cookie banner would record it."""
    return request.COOKIES.get("consent") == "yes"


def broken(request: HttpRequest) -> bool:
    raise RuntimeError("the consent store is down")


@async_unsafe
def like_the_orm(request: HttpRequest) -> bool:
    """Refuses to run in an event loop, as the ORM (``request.user``, sessions) does."""
    return True


def by_account(request: HttpRequest) -> bool:
    """Consent kept in the database, as a site's consent records are: the ``account`` cookie
    names an active user. A real query, so Django refuses it inside an event loop."""
    account = request.COOKIES.get("account", "")
    return User.objects.filter(username=account, is_active=True).exists()
