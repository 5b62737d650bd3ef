"""``Collector``: a ``DataApiServer`` that prints each event and violation as it arrives."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol

from django_kameleoon.collector.format import format_duplicate, format_event, format_violation
from django_kameleoon.collector.tables import count_by_type, summarize_visitors, visitor_table
from django_kameleoon.testing import DataApiServer

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


class Stream(Protocol):
    """Where lines go: a file, ``sys.stdout``, or a management command's ``self.stdout``."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> None: ...


class Collector:
    """A ``DataApiServer`` that prints each event and violation, and can keep a JSONL file.

    Lines are written under one lock: events arrive on the server's handler threads, and two
    requests at once must not interleave half-lines.
    """

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        site_code: str | None = None,
        jsonl: Path | None = None,
        out: Stream | None = None,
        err: Stream | None = None,
    ) -> None:
        self.out: Stream = out or sys.stdout
        self.err: Stream = err or sys.stderr
        self.jsonl_path = jsonl
        self._jsonl: IO[str] | None = None
        self._lock = threading.Lock()
        self.server = DataApiServer(
            host=host,
            port=port,
            site_code=site_code,
            on_event=self._on_event,
            on_violation=self._on_violation,
            on_duplicate=self._on_duplicate,
        )

    @property
    def url(self) -> str:
        """What ``KAMELEOON["DATA_API_URL"]`` should be set to."""
        return self.server.url

    def start(self) -> Collector:
        """Open the JSONL file (appending), then bind and serve. OSError if the port is taken."""
        if self.jsonl_path is not None:
            self._jsonl = self.jsonl_path.open("a", encoding="utf-8")
        try:
            self.server.start()
        except BaseException:
            self._close_jsonl()
            raise
        return self

    def stop(self) -> None:
        self.server.stop()
        self._close_jsonl()

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def say(self, text: str, *, error: bool = False) -> None:
        """Write one line now (flushed: the collector is often read through a pipe)."""
        self._write_line(self.err if error else self.out, text)

    def _write_line(self, stream: Stream, text: str) -> None:
        with self._lock:
            stream.write(text + "\n")
            stream.flush()

    def _on_event(self, event: dict[str, Any]) -> None:
        self.say(format_event(event))
        if self._jsonl is not None:
            self._write_line(self._jsonl, json.dumps(event, ensure_ascii=False))

    def _on_duplicate(self, event: dict[str, Any]) -> None:
        self.say(format_duplicate(event))

    def _on_violation(self, text: str) -> None:
        self.say(format_violation(text), error=True)

    def _close_jsonl(self) -> None:
        with self._lock:
            if self._jsonl is not None:
                self._jsonl.close()
                self._jsonl = None

    def summary(self) -> list[str]:
        """What was received, for the end of a session: counts by type, visitors, violations."""
        events = self.server.events
        counts = count_by_type(events)
        by_type = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
        lines = [f"received {len(events)} event(s)" + (f": {by_type}" if by_type else "")]
        if events:
            lines += visitor_table(summarize_visitors(events).values())
        duplicates = len(self.server.duplicates)
        if duplicates:
            lines.append(
                f"{duplicates} duplicate(s): a nonce received before (a retry), "
                "which the API keeps once"
            )
        violations = self.server.violations
        if violations:
            lines.append(f"!! {len(violations)} violation(s) of the Data API's rules (see above)")
        else:
            lines.append("no violations")
        return lines
