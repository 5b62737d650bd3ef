"""The test site with its optional integrations: the debug toolbar's views and ``/metrics``."""

from __future__ import annotations

from django.urls import include, path

from tests.urls import urlpatterns as site_urls

# Not debug_toolbar_urls(): it adds nothing unless DEBUG, which the tests leave off.
urlpatterns = [*site_urls, path("__debug__/", include("debug_toolbar.urls"))]
