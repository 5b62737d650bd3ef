"""``manage.py kameleoon_send_test_event``: check a deployment can reach the Data API.

Sends one event synchronously, straight through the HTTP client (not the configured backend,
which may queue it or keep it in memory), and prints Kameleoon's answer. Exits non-zero when
the event was not delivered, so it can gate a deploy script.

By default the event is a STATICDATA for the visitor ``kameleoon-test-event``, which counts no
goal; ``--goal N`` sends a CONVERSION for goal N instead, to see it arrive in Kameleoon.
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from django_kameleoon.backends.client import Answer, DataApiClient, Outcome
from django_kameleoon.conf import Settings, get_settings
from django_kameleoon.events import Event, make_event

DEFAULT_VISITOR_CODE = "kameleoon-test-event"


class Command(BaseCommand):
    help = "Send one test event to the Kameleoon Data API and report its answer."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--visitor-code",
            default=DEFAULT_VISITOR_CODE,
            help=f"the visitor code to send it for (default {DEFAULT_VISITOR_CODE!r})",
        )
        parser.add_argument(
            "--goal",
            type=int,
            default=None,
            help="send a CONVERSION for this goal id instead of a STATICDATA event",
        )
        parser.add_argument("--revenue", type=float, default=None, help="the conversion's revenue")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["revenue"] is not None and options["goal"] is None:
            raise CommandError("--revenue needs --goal: only a conversion has a revenue")
        settings = self._settings()
        event = self._event(options["visitor_code"], options["goal"], options["revenue"])
        self.stdout.write(
            f"Sending a {event.event_type} event for visitor {event.visitor_code!r} to "
            f"{settings.events_url} (siteCode={settings.SITE_CODE}, {settings.BODY_FORMAT})"
        )
        answer = send_once(settings, event)
        if answer.outcome is not Outcome.DELIVERED:
            raise CommandError(f"Not delivered: {answer.reason} ({answer.outcome.value})")
        self.stdout.write(self.style.SUCCESS(f"Delivered: {answer.reason}"))

    def _settings(self) -> Settings:
        try:
            return get_settings()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc

    def _event(self, visitor_code: str, goal: int | None, revenue: float | None) -> Event:
        try:
            if goal is None:
                return probe_event(visitor_code)
            return make_event(visitor_code, "CONVERSION", {"goalId": goal, "revenue": revenue})
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from exc


def probe_event(visitor_code: str = DEFAULT_VISITOR_CODE) -> Event:
    """The default test event: a STATICDATA, which counts no goal (``kameleoon_check`` too)."""
    return make_event(visitor_code, "STATICDATA", {"deviceType": "DESKTOP"})


def send_once(settings: Settings, event: Event) -> Answer:
    """One POST, no retries: a deployment check should report the first answer as it is."""
    client = DataApiClient(settings)
    try:
        return client.post([client.encode(event)])
    finally:
        client.close()
