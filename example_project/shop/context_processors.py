"""Template context shared by every page of the shop."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def shop(request: HttpRequest) -> dict[str, object]:
    """Whether to add Kameleoon's JavaScript tag (hybrid mode), and the goal ids.

    The tag is off by default: the demo must not reach the internet, and without it every
    event you see in the collector came from the server side.
    """
    return {"kameleoon_hybrid": settings.KAMELEOON_HYBRID, "goals": settings.SHOP_GOALS}
