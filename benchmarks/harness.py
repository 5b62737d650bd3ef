"""What every figure shares: the loopback-only guard, the local sink, and alternating rounds."""

from __future__ import annotations

import gc
import ipaddress
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Sink", "alternate", "dead_url", "guard_network", "interleave"]

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}

#: Every address the guard refused, for the report (it should stay empty).
blocked: list[str] = []


def _is_loopback(host: Any) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port): the local wildcard, used for binding
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]")
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def guard_network() -> None:
    """Refuse, in this process, every name lookup and connection that leaves the machine.

    The peers are pointed at the local sink, but a default left somewhere (a telemetry ping,
    a configuration refresh) must fail loudly here rather than reach the internet.
    """
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(host):
            blocked.append(repr(host))
            raise OSError(f"benchmark guard: no lookups of {host!r}, only the loopback")
        return real_getaddrinfo(host, *args, **kwargs)

    def check(address: Any) -> None:
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            blocked.append(repr(address))
            raise OSError(f"benchmark guard: no connection to {address!r}, only the loopback")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]


def dead_url() -> str:
    """A loopback URL where nothing listens: the API is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Sink:
    """The local sink (``benchmarks/sink.py``) in a child process, for the whole run."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.sink"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, dict[str, int]]:
        with urllib.request.urlopen(self.url + "/_stats", timeout=10) as answer:
            data: dict[str, dict[str, int]] = json.load(answer)
            return data

    def events(self, path: str) -> int:
        return self.stats()["events"].get(path, 0)

    def reset(self) -> None:
        request = urllib.request.Request(self.url + "/_reset", data=b"", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Series:
    """The rounds of one contestant: one number per round, lower is better."""

    name: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def over(self, base: Series) -> float:
        """The median of this series' rounds minus ``base``'s, round by round.

        Contestants that ran in the same round ran on the same machine state, so each round's
        difference cancels the drift from round to round, which a difference of the two
        medians keeps: a ~450 µs request's noise swung an ~80 µs figure by half between runs.
        """
        return statistics.median(
            mine - theirs for mine, theirs in zip(self.values, base.values, strict=True)
        )


def alternate(
    contestants: dict[str, Callable[[], float]],
    rounds: int,
    *,
    settle: Callable[[], object] = gc.collect,
) -> dict[str, Series]:
    """Run every contestant once per round, the order rotating each round; medians decide.

    Rotating the order means no contestant always runs first (cold) or right after another's
    background work. ``settle`` runs before each measurement (a garbage collection by default).
    """
    names = list(contestants)
    series = {name: Series(name) for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            settle()
            series[name].values.append(contestants[name]())
    return series


def interleave(
    contestants: dict[str, Callable[[list[Any]], float]],
    work: list[Any],
    rounds: int,
    *,
    chunk: int = 250,
    settle: Callable[[], object] = gc.collect,
) -> dict[str, Series]:
    """:func:`alternate` in short turns: each round's ``work`` is cut in chunks, and the
    contestants take turns chunk by chunk (the order rotating), each returning the seconds its
    chunk took; a round's value is a contestant's seconds per item of the whole ``work``.

    A machine whose speed swings from one second to the next (a shared host) moves a round of
    a few seconds by more than the cost being measured; in turns of a fraction of a second,
    every contestant sees the same swings, and the differences keep only what each one adds.
    """
    names = list(contestants)
    pieces = [work[start : start + chunk] for start in range(0, len(work), chunk)]
    series = {name: Series(name) for name in names}
    for index in range(rounds):
        spent = dict.fromkeys(names, 0.0)
        for number, piece in enumerate(pieces):
            shift = (index + number) % len(names)
            for name in names[shift:] + names[:shift]:
                settle()
                spent[name] += contestants[name](piece)
        for name in names:
            series[name].values.append(spent[name] / len(work))
    return series


def timed(run: Callable[[], Any]) -> float:
    """Seconds one call of ``run`` takes."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start
