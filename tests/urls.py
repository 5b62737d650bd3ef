"""URLs of the test site."""

from __future__ import annotations

from django.urls import path, re_path

from tests import drf_views, views

urlpatterns = [
    path("drf/checkout/", drf_views.Checkout.as_view()),
    path("page/", views.page),
    path("long-title/", views.long_title),
    path("self-canonical/", views.self_canonical),
    path("plain/", views.plain),
    path("xhtml/", views.xhtml),
    path("streaming/", views.streaming),
    path("api/data.json", views.json_view),
    path("style.css", views.css_view),
    path("no-content/", views.no_content),
    path("redirect/", views.redirect_view),
    path("error/", views.server_error),
    path("code.json", views.code_in_json),
    path("buy/", views.buy),
    path("thanks/", views.thanks),
    path("async/page/", views.async_page),
    path("async/buy/", views.async_buy),
    path("admin/login/", views.plain),
    path("static/app.html", views.plain),
    re_path(r"^deep/", views.plain),
    re_path(r"^odd/", views.plain),
]
