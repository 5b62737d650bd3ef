"""What the server received and recorded, and the faults a test scripts into its answers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from django_kameleoon.testing.rules import BodyFormat


class Headers(Mapping[str, str]):
    """Request headers with case-insensitive lookup, as HTTP defines them.

    Iterating gives the names as sent; a header sent twice is joined with ", ".
    """

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            key = name.lower()
            if key in self._items:
                name, value = self._items[key][0], f"{self._items[key][1]}, {value}"
            self._items[key] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self._items.values())!r})"


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the server saw it, and how it answered.

    ``status`` is None when the server answered nothing (a ``drop()`` fault, or stopped
    mid-request). ``fault`` names the scripted fault applied, if any. ``at`` is
    ``time.monotonic()`` when the request's headers arrived, for measuring retry backoff.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    body: bytes = field(repr=False)
    body_size: int
    body_format: BodyFormat
    event_count: int
    status: int | None
    at: float
    fault: str | None = None


@dataclass(frozen=True)
class Fault:
    """One scripted fault, applied to one POST: see ``DataApiServer.fail``, ``delay``, ``drop``."""

    kind: Literal["fail", "delay", "drop"]
    status: int = 0
    seconds: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    accept: bool = False  # drop only: process the events, then lose the answer
