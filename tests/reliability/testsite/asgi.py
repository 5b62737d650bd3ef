"""The ASGI application uvicorn serves: Django's async handler, so middleware runs async.

Wrapped as the docs tell uvicorn users to: uvicorn ends its processes by re-raising SIGTERM,
so ``atexit`` never runs there; the lifespan shutdown event is where the queue is delivered.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from django_kameleoon.lifecycle import deliver_on_shutdown
from tests.reliability.testsite import drops

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.reliability.testsite.settings")

application = deliver_on_shutdown(get_asgi_application())
drops.connect()  # every drop on stderr, for benchmarks/scenarios.py
