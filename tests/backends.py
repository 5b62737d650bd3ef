"""Backends of the test site for configuration mistakes (``KAMELEOON["BACKEND"]``)."""

from __future__ import annotations

from django_kameleoon.backends import BaseBackend
from django_kameleoon.conf import Settings


class Unbuildable(BaseBackend):
    """A backend that cannot start, as one whose broker or task queue is not set up."""

    def __init__(self, settings: Settings) -> None:
        raise RuntimeError("the broker is not configured")
