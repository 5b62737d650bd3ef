"""``manage.py kameleoon_collector``: the local collector, from inside a Django project.

The same program as ``python -m django_kameleoon.collector`` (same options, same output); the
only thing Django adds is a default ``--site-code``: the project's own ``SITE_CODE``, so that a
site sending the wrong project ID shows up as a violation.
"""

from __future__ import annotations

from argparse import ArgumentParser, Namespace
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from django_kameleoon import collector


class Command(BaseCommand):
    help = "Run a strict local stand-in of Kameleoon's Data API and print each event it receives."
    # The collector is how one debugs a site, so a site with problems must still be able to run it.
    requires_system_checks = ()

    def add_arguments(self, parser: ArgumentParser) -> None:
        collector.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["site_code"] is None:
            options["site_code"] = _configured_site_code()
        namespace = Namespace(**{k: options[k] for k in ("host", "port", "site_code", "jsonl")})
        status = collector.run(namespace, out=self.stdout, err=self.stderr)
        if status:
            raise SystemExit(status)


def _configured_site_code() -> str | None:
    """``KAMELEOON["SITE_CODE"]`` when it is set to text, else None (accept any siteCode)."""
    value = (getattr(settings, "KAMELEOON", None) or {}).get("SITE_CODE")
    return value if isinstance(value, str) and value else None
