"""Django REST framework views of the test site: its Request wraps Django's HttpRequest."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

import django_kameleoon


class Checkout(APIView):
    """An API endpoint that records a purchase for the visitor behind the request."""

    authentication_classes = ()  # no session auth, hence no CSRF check
    permission_classes = ()

    def post(self, request: Request) -> Response:
        django_kameleoon.track_conversion(request, 42, revenue=19.99)
        return Response({"visitor": django_kameleoon.get_visitor_code(request)})
