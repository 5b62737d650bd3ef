"""ASGI entry point (uvicorn, daphne, hypercorn): ``uvicorn shop.asgi:application``.

The middleware is async capable, so under ASGI it runs in the event loop with no thread hop.
``deliver_on_shutdown`` answers the ASGI lifespan protocol so that the queue is delivered at a
graceful shutdown: uvicorn ends its process by re-raising SIGTERM, which skips ``atexit``.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from django_kameleoon.lifecycle import deliver_on_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

application = deliver_on_shutdown(get_asgi_application())
