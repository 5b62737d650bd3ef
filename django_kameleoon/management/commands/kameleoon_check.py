"""``manage.py kameleoon_check``: configuration, reachability of the Data API and the counters,
on one screen; exits non-zero when something is wrong, so it can gate a deploy.

Reachability is what ``kameleoon_send_test_event`` does by default, reused: one POST of one
STATICDATA for the visitor ``kameleoon-test-event`` (it counts no goal), bounded by ``TIMEOUT``,
not retried, a redirect not followed. The counters are this process's (``stats()``): a server's
workers each keep their own, which the Prometheus recipe in the README gathers.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings as django_settings
from django.core.checks import ERROR, CheckMessage, run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from django_kameleoon.api import stats
from django_kameleoon.backends.client import Outcome
from django_kameleoon.conf import RULES, Settings, get_settings
from django_kameleoon.management.commands.kameleoon_send_test_event import probe_event, send_once

#: Settings whose values are shown masked, by name: none today, any such one added later.
SECRET_NAME_RE = re.compile(r"SECRET|TOKEN|PASSWORD|KEY", re.IGNORECASE)
MASK = "********"
#: Longer values are cut, so the configuration fits a screen.
VALUE_WIDTH = 100
CHECK_PREFIX = "django_kameleoon."


class Command(BaseCommand):
    help = "Report the Kameleoon configuration, whether the Data API answers, and the counters."
    # It reports the system checks itself, and must run when they fail.
    requires_system_checks = ()

    def handle(self, *args: Any, **options: Any) -> None:
        problems = self._configuration()
        problems += self._checks()
        problems += self._reachability()
        self._counters()
        if problems:
            raise CommandError(f"{problems} problem{'s' if problems > 1 else ''} found")
        self.stdout.write(self.style.SUCCESS("Kameleoon: everything checked is in order"))

    def _configuration(self) -> int:
        self.stdout.write(self.style.MIGRATE_HEADING("Configuration (effective KAMELEOON)"))
        try:
            values = asdict(get_settings())
        except ImproperlyConfigured:
            values = _raw_values()  # the system checks below say what is wrong
        width = max(map(len, values))
        for name, value in values.items():
            self.stdout.write(f"  {name:<{width}}  {shown(name, value)}")
        return 0

    def _checks(self) -> int:
        self.stdout.write(self.style.MIGRATE_HEADING("System checks"))
        messages = [m for m in run_checks() if (m.id or "").startswith(CHECK_PREFIX)]
        for message in messages:
            style = self.style.ERROR if message.level >= ERROR else self.style.WARNING
            self.stdout.write(style(f"  {_one_line(message)}"))
        if not messages:
            self.stdout.write("  no problem found")
        return sum(message.level >= ERROR for message in messages)

    def _reachability(self) -> int:
        self.stdout.write(self.style.MIGRATE_HEADING("Data API"))
        try:
            settings = get_settings()
        except ImproperlyConfigured:
            self.stdout.write(self.style.ERROR("  not tried: the configuration is invalid"))
            return 1
        event = probe_event()
        self.stdout.write(
            f"  POST {mask_url(settings.events_url)} (siteCode={settings.SITE_CODE}, "
            f"{settings.BODY_FORMAT}): one {event.event_type} for {event.visitor_code!r}, "
            f"within {settings.TIMEOUT:g} s"
        )
        answer = send_once(settings, event)
        if answer.outcome is Outcome.DELIVERED:
            self.stdout.write(self.style.SUCCESS(f"  reachable: {answer.reason}"))
            return 0
        hint = _hint(answer.reason)
        self.stdout.write(self.style.ERROR(f"  NOT reachable: {answer.reason}{hint}"))
        return 1

    def _counters(self) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING("Counters (this process, stats())"))
        for name, value in stats().items():
            self.stdout.write(f"  {name}: {counter_text(value)}")


def _raw_values() -> dict[str, Any]:
    """The defaults overlaid with what ``KAMELEOON`` sets, unchecked (it is invalid)."""
    raw = getattr(django_settings, "KAMELEOON", None)
    given = raw if isinstance(raw, dict) else {}
    defaults = Settings()
    return {name: given.get(name, getattr(defaults, name)) for name in RULES}


def shown(name: str, value: Any) -> str:
    """A setting's value for the screen: masked when its name says it is secret, URLs without
    their credentials."""
    if SECRET_NAME_RE.search(name) and value not in (None, ""):
        return MASK
    if isinstance(value, str) and "://" in value:
        value = mask_url(value)
    text = repr(value)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 3] + "..."


def mask_url(url: str) -> str:
    """``url`` with any password in it masked: ``https://user:********@host/path``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{MASK}@{netloc}"))


def counter_text(value: Any) -> str:
    """A counter, or counts by reason (``{"queue_full": 2}``) as ``queue_full=2``."""
    if isinstance(value, dict):
        return ", ".join(f"{key}={count}" for key, count in sorted(value.items())) or "none"
    return str(value)


def _one_line(message: CheckMessage) -> str:
    return f"{message.id}: {message.msg}" + (f" ({message.hint})" if message.hint else "")


def _hint(reason: str) -> str:
    if reason == "HTTP 403":
        return " (forbidden: check USER_AGENT and SITE_CODE)"
    return ""
