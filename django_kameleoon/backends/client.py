"""The HTTP client that talks to the Data API: one pooled session, our User-Agent, and answers
sorted into what the sender should do next (done, retry, drop, split).
"""

from __future__ import annotations

import email.utils
import enum
import re
import time
from dataclasses import dataclass

import requests

from django_kameleoon.backends.reporting import REDIRECT, REJECTED
from django_kameleoon.conf import Settings
from django_kameleoon.events import Event

__all__ = ["Answer", "DataApiClient", "Outcome", "parse_retry_after"]


class Outcome(enum.Enum):
    """What the sender does next with a batch."""

    DELIVERED = "delivered"
    RETRY = "retry"
    DROP = "drop"
    TOO_LARGE = "too large"


@dataclass(frozen=True)
class Answer:
    """What one POST came to, in the sender's terms."""

    outcome: Outcome
    reason: str
    retry_after: float | None = None
    #: The API is unreachable or says it is unavailable, rather than failing this request.
    outage: bool = False
    #: The request was sent but no answer came within the read timeout: the API is slow.
    slow: bool = False
    #: For ``DROP``: the reason code it is reported under (``reporting.REASONS``).
    code: str = REJECTED
    #: Seconds from sending to the answer (or to giving up on it).
    elapsed: float = 0.0


_RETRIED_STATUSES = frozenset({408, 425, 429})
_OUTAGE_STATUSES = frozenset({429, 502, 503, 504})


class DataApiClient:
    """Posts encoded events to ``/visit/events``; one per process (a session is not fork-safe)."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.events_url
        self.json = settings.BODY_FORMAT == "json"
        self.params = {"siteCode": settings.SITE_CODE, **({"json": "true"} if self.json else {})}
        self.timeout = settings.TIMEOUT
        self.session = requests.Session()
        self.session.headers.update(
            {
                "User-Agent": settings.USER_AGENT,
                "Content-Type": "application/json" if self.json else "text/plain; charset=utf-8",
            }
        )

    def encode(self, event: Event) -> bytes:
        """One event as it stands in a body of the configured format."""
        return (event.to_json() if self.json else event.to_query_line()).encode("utf-8")

    def body_size(self, sizes: int, count: int) -> int:
        """The size of a body holding ``count`` encoded events of ``sizes`` bytes in all."""
        return sizes + max(count - 1, 0) + (2 if self.json else 0)

    def post(
        self, encoded: list[bytes], timeout: float | None = None, read_timeout: float | None = None
    ) -> Answer:
        """Send one body; never raises for anything the network or the API can do.

        ``timeout`` caps the whole wait (a shutdown's deadline); ``read_timeout`` is how long to
        wait for the answer once the body is sent (default ``TIMEOUT``), which the sender
        grows for an API slower than ``TIMEOUT``. Redirects are never followed: ``requests``
        would re-send a 301/302 POST as a GET without the body, and a 2xx to that would count
        events as delivered that never were.
        """
        body = b"[" + b",".join(encoded) + b"]" if self.json else b"\n".join(encoded)
        connect = self.timeout if timeout is None else max(min(self.timeout, timeout), 0.001)
        read = self.timeout if read_timeout is None else read_timeout
        read = read if timeout is None else max(min(read, timeout), 0.001)
        started = time.monotonic()
        try:
            response = self.session.post(
                self.url,
                params=self.params,
                data=body,
                timeout=(connect, read),
                allow_redirects=False,
            )
        except requests.ConnectTimeout:
            return Answer(Outcome.RETRY, f"no connection within {connect:g} s", outage=True)
        except requests.ReadTimeout:
            elapsed = time.monotonic() - started
            return Answer(Outcome.RETRY, f"no answer within {read:g} s", slow=True, elapsed=elapsed)
        except requests.RequestException as exc:
            return Answer(Outcome.RETRY, f"connection failed: {type(exc).__name__}", outage=True)
        elapsed = time.monotonic() - started
        status = response.status_code
        response.close()
        if 200 <= status < 300:
            return Answer(Outcome.DELIVERED, f"HTTP {status}", elapsed=elapsed)
        if 300 <= status < 400:
            target = response.headers.get("Location", "no Location")
            reason = f"HTTP {status} redirect to {target}; fix DATA_API_URL ({self.url})"
            return Answer(Outcome.DROP, reason, code=REDIRECT, elapsed=elapsed)
        if status == 413:
            return Answer(Outcome.TOO_LARGE, "HTTP 413", elapsed=elapsed)
        if status >= 500 or status in _RETRIED_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            outage = status in _OUTAGE_STATUSES
            return Answer(Outcome.RETRY, f"HTTP {status}", retry_after, outage, elapsed=elapsed)
        return Answer(Outcome.DROP, f"HTTP {status}", elapsed=elapsed)

    def close(self) -> None:
        self.session.close()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), if it has any.

    Whatever a server sends, this returns a finite number of seconds or None: only ASCII
    digits count as seconds (``"²".isdigit()`` is true, and ``float("²")`` raises), and an
    absurd value is capped here (the backoff caps it again at ``RETRY_BACKOFF_MAX``).
    """
    if not value:
        return None
    value = value.strip()
    if _SECONDS_RE.fullmatch(value):
        # Compared as text first: int() refuses strings of over 4,300 digits.
        too_long = len(value.lstrip("0")) > len(str(int(_MAX_RETRY_AFTER)))
        return _MAX_RETRY_AFTER if too_long else min(float(value), _MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(when.timestamp() - time.time(), 0.0)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


_SECONDS_RE = re.compile(r"[0-9]+", re.ASCII)
_MAX_RETRY_AFTER = 1e9
