"""Backends carry events from the public functions to the Data API (or a test's outbox).

One backend object per process, built from ``KAMELEOON['BACKEND']`` on first use, and built
again when the settings change (tests switch servers and backends with ``override_settings``)
or once it was closed (``lifecycle.deliver_pending`` closes it when a worker stops).
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from django_kameleoon.backends.base import BaseBackend
from django_kameleoon.backends.reporting import CLOSED
from django_kameleoon.conf import Settings, get_settings

__all__ = ["BaseBackend", "get_backend", "reset_backend"]

_backend: BaseBackend | None = None
_lock = threading.Lock()


def get_backend() -> BaseBackend:
    """This process's backend, built from the settings on first use.

    Raises ``ImproperlyConfigured`` when the settings are invalid or the backend cannot be made
    (a broker not set up, say): a configuration mistake, which callers log rather than raise.
    """
    global _backend
    backend = _backend
    if backend is None or backend.closed:
        with _lock:
            if _backend is None or _backend.closed:
                _backend = _build(get_settings())
            backend = _backend
    return backend


def _build(settings: Settings) -> BaseBackend:
    try:
        backend: BaseBackend = import_string(settings.BACKEND)(settings)
    except ImproperlyConfigured:
        raise
    except Exception as exc:
        raise ImproperlyConfigured(
            f"KAMELEOON['BACKEND'] {settings.BACKEND!r} could not be made: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return backend


#: The most seconds a settings change spends delivering the replaced backend's queue.
SETTINGS_CHANGE_TIMEOUT = 1.0


def reset_backend(timeout: float | None = 0.0, *, reason: str = CLOSED) -> None:
    """Close the current backend (delivering what it can within ``timeout``) and forget it.

    ``timeout=None`` allows the backend its ``SHUTDOWN_TIMEOUT``, as at exit. What it could
    not deliver is reported as dropped for ``reason``.
    """
    global _backend
    with _lock:
        backend, _backend = _backend, None
    if backend is not None:
        backend.close(timeout, reason=reason)


@receiver(setting_changed)
def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    """New settings, new backend: the old one first delivers its queue, briefly (a second at
    most, within its ``SHUTDOWN_TIMEOUT``), to its own API."""
    if setting == "KAMELEOON":
        backend = _backend
        limit = 0.0 if backend is None else backend.settings.SHUTDOWN_TIMEOUT
        reset_backend(min(limit, SETTINGS_CHANGE_TIMEOUT))
