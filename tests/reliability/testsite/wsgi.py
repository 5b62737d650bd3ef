"""The WSGI application gunicorn serves."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from tests.reliability.testsite import drops

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.reliability.testsite.settings")

application = get_wsgi_application()
drops.connect()  # every drop on stderr, for benchmarks/scenarios.py
