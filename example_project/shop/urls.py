"""The shop's URLs: pages, a checkout, a JSON endpoint, Kameleoon's beacon and (in DEBUG)
static files."""

from __future__ import annotations

from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import URLPattern, URLResolver, include, path

from shop import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.home, name="home"),
    path("products/<slug:slug>/", views.product, name="product"),
    path("checkout/<slug:slug>/", views.checkout, name="checkout"),
    path("thanks/", views.thanks, name="thanks"),
    path("api/products/", views.api_products, name="api-products"),
    # The image {% kameleoon_beacon %} renders (KAMELEOON["PAGE_VIEWS"] = "auto").
    path("kameleoon/", include("django_kameleoon.urls")),
]

# runserver serves static files in DEBUG by itself; this does the same under gunicorn, so the
# demo can fetch the stylesheet. In production, use your web server or WhiteNoise.
urlpatterns += staticfiles_urlpatterns()
