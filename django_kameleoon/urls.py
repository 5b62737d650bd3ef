"""The app's URLs: ``path("kameleoon/", include("django_kameleoon.urls"))`` mounts the beacon
that ``{% kameleoon_beacon %}`` renders (``PAGE_VIEWS`` ``"beacon"`` or ``"auto"``)."""

from __future__ import annotations

from django.urls import path

from django_kameleoon import views

app_name = "django_kameleoon"

urlpatterns = [path("b.gif", views.beacon, name="beacon")]
