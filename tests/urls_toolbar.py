"""The test site with ``/metrics`` and the debug toolbar's views (which import its models: only
where ``debug_toolbar`` is installed), and its static files, as ``runserver`` would serve them
(``insecure``: the test sites run with ``DEBUG`` off)."""

from __future__ import annotations

from django.contrib.staticfiles.views import serve
from django.urls import include, path, re_path

from tests.urls_extras import urlpatterns as extras

# Not debug_toolbar_urls(): it adds nothing unless DEBUG, which the tests leave off.
urlpatterns = [
    *extras,
    path("__debug__/", include("debug_toolbar.urls")),
    re_path(r"^static/(?P<path>.*)$", serve, {"insecure": True}),
]
