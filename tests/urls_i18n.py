"""URLs of the test site under ``i18n_patterns``: every page behind a language prefix."""

from __future__ import annotations

from django.conf.urls.i18n import i18n_patterns
from django.urls import path

from tests import views

urlpatterns = i18n_patterns(
    path("admin/login/", views.plain),
    path("static/app.html", views.plain),
    path("page/", views.plain),
)
