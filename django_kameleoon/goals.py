"""``KAMELEOON["GOALS"]``: turn Django signals a site already sends into conversions.

``{"shop.signals.order_paid": 12}`` connects a receiver to ``shop.signals.order_paid`` that
records goal 12 for the signal's ``request`` (or, failing that, ``visitor_code``) keyword
argument, with its ``revenue`` keyword argument when there is one. The site's code does not
change: the mapping lives in settings, like ``LOGGING`` or ``CACHES``.

Receivers are connected in ``AppConfig.ready`` and reconnected when ``KAMELEOON`` changes
(``override_settings``), so a test can map goals like any other setting. A path that names no
signal is logged (``manage.py check`` reports it as ``E029``) and the others are connected: a
typo must not stop every worker of a site from booting, nor cost the goals mapped correctly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import Signal, receiver
from django.http import HttpRequest

from django_kameleoon.api import track_conversion
from django_kameleoon.conf import get_settings, report_misconfiguration, resolve_signal

__all__ = ["connect_goals", "disconnect_goals", "goal_receiver", "sync_goals"]

logger = logging.getLogger("django_kameleoon")

#: The (signal, dispatch_uid) pairs connected by :func:`connect_goals`, to undo them later.
_connected: list[tuple[Signal, str]] = []

Receiver = Callable[..., None]


def goal_receiver(goal_id: int) -> Receiver:
    """A signal receiver that records ``goal_id`` for the visitor the signal names.

    It never raises into the code that sent the signal (an order must not fail to be marked
    paid because of analytics): a signal without a visitor, or with a revenue that is not a
    number, is logged as an error and skipped.
    """

    def record_goal(sender: Any, **kwargs: Any) -> None:
        target = _target(kwargs)
        if target is None:
            logger.error(
                "Kameleoon: goal %d not recorded: the signal from %r has no 'request' or "
                "'visitor_code' keyword argument",
                goal_id,
                sender,
            )
            return
        try:
            track_conversion(target, goal_id, revenue=kwargs.get("revenue"))
        except (TypeError, ValueError) as exc:
            logger.error("Kameleoon: goal %d not recorded: %s", goal_id, type(exc).__name__)
            logger.debug("Kameleoon: goal error", exc_info=True)

    return record_goal


def _target(kwargs: Mapping[str, Any]) -> HttpRequest | str | None:
    """The request (so consent applies), else an explicit visitor code, else None.

    Django REST framework's ``Request`` wraps the ``HttpRequest`` as ``_request``;
    ``track_conversion`` takes either.
    """
    request = kwargs.get("request")
    if isinstance(getattr(request, "_request", request), HttpRequest):
        return request
    code = kwargs.get("visitor_code")
    return code if isinstance(code, str) else None


def connect_goals(goals: Mapping[str, int]) -> None:
    """Connect one receiver per mapped signal; log (and skip) a path that names no signal."""
    for path, goal_id in goals.items():
        try:
            signal = resolve_signal(path)
        except ImproperlyConfigured as exc:
            report_misconfiguration(f"KAMELEOON['GOALS'] {exc}: goal {goal_id} is not recorded")
            continue
        uid = f"django_kameleoon.goals:{path}"
        signal.connect(goal_receiver(goal_id), weak=False, dispatch_uid=uid)
        _connected.append((signal, uid))


def disconnect_goals() -> None:
    """Undo :func:`connect_goals`."""
    while _connected:
        signal, uid = _connected.pop()
        signal.disconnect(dispatch_uid=uid)


def sync_goals() -> None:
    """Connect receivers for the current settings, replacing those of earlier settings.

    Invalid ``KAMELEOON`` settings connect nothing: the system checks report them all, and the
    first event tracked logs them; failing here would stop the site from starting.
    """
    disconnect_goals()
    try:
        goals = get_settings().GOALS
    except ImproperlyConfigured:
        return
    connect_goals(goals)


@receiver(setting_changed)
def _reconnect_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "KAMELEOON":
        sync_goals()
