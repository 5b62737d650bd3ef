"""URLs of the test site."""

from __future__ import annotations

from django.urls import include, path, re_path

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
    path("convert/<int:first>/<int:count>/", views.convert_many),
    path("api/stats.json", views.backend_stats),
    path("thanks/", views.thanks),
    path("orders/<int:order>/thanks/", views.order_thanks),
    path("async/page/", views.async_page),
    path("async/buy/", views.async_buy),
    path("async/abuy/", views.async_abuy),
    path("admin/login/", views.plain),
    path("static/app.html", views.plain),
    path("stamped/", views.stamped),
    path("page-fields/", views.only_page_fields),
    path("kameleoon/", include("django_kameleoon.urls")),
    path("beacon/page/", views.beacon_page),
    path("beacon/cached/", views.cached_beacon_page),
    path("beacon/shareable/", views.shareable_beacon_page),
    path("cached/page/", views.cached_page),
    path("cached/thanks/", views.cached_thanks),
    path("cached/stamped/", views.cached_stamped),
    path("cached/code.json", views.cached_code_json),
    path("public/", views.public_stamped),
    path("conditional/etag/", views.with_etag),
    path("conditional/last-modified/", views.with_last_modified),
    path("conditional/condition/", views.with_condition),
    path("attachment/", views.attachment),
    path("my/admin/", views.plain),
    path("burst/<int:count>/", views.burst),
    path("async/burst/<int:count>/", views.async_burst),
    re_path(r"^deep/", views.plain),
    re_path(r"^odd/", views.plain),
]
