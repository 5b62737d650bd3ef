"""The test site with its optional integrations: ``/metrics`` (Prometheus)."""

from __future__ import annotations

from django.urls import path

from django_kameleoon.contrib.prometheus import metrics_view
from tests.urls import urlpatterns as site_urls

urlpatterns = [*site_urls, path("metrics", metrics_view)]
