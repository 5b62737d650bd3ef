"""The WSGI application with the README's Prometheus recipe: counters synced every 0.2 s."""

from __future__ import annotations

from django_kameleoon.contrib import prometheus
from tests.reliability.testsite.wsgi import application

__all__ = ["application"]

prometheus.start(interval=0.2)
