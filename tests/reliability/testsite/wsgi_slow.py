"""The test site's WSGI app, plus ``/slow/``: a request that takes a while, for stopping a
server in the middle of one. It says on stderr when it starts, so a test can wait for that.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from tests.reliability.testsite.wsgi import application as site

SLOW_SECONDS = 1.5
STARTED = "slow request started"


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") != "/slow/":
        return site(environ, start_response)
    print(STARTED, file=sys.stderr, flush=True)
    time.sleep(SLOW_SECONDS)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"done"]
