"""Real server processes for the reliability tests: start on a socket we bound, wait until they
answer, stop with a signal and a deadline, and never leave one behind.

The listening socket is bound here (port 0, so the kernel picks a free port) and handed to the
server as an inherited file descriptor: no port race, and connections made before the server is
ready wait in the socket's backlog rather than failing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
SITE_SETTINGS = "tests.reliability.testsite.settings"

#: A desktop browser, which the middleware tracks (python-requests' own UA is not used).
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)


def site_environment(kameleoon: dict[str, Any]) -> dict[str, str]:
    """The environment of a process running the test site with these ``KAMELEOON`` overrides."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": SITE_SETTINGS,
        "KAMELEOON_TEST_SETTINGS": json.dumps(kameleoon),
        "PYTHONUNBUFFERED": "1",
    }


@dataclass
class Process:
    """A server (or worker) process and its combined output, kept in a file."""

    popen: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, *, timeout: float) -> float:
        """Send ``sig`` and wait for the process to exit; return how long that took.

        Fails the test (after killing the whole process group) if it outlives ``timeout``.
        """
        started = time.monotonic()
        self.popen.send_signal(sig)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(self.popen)
            raise AssertionError(
                f"the process did not exit within {timeout} s of signal {sig}:\n{self.output()}"
            ) from None
        return time.monotonic() - started


def kill_group(popen: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group we started (the server and its workers) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGKILL)
    popen.wait(10)


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def spawn(
    argv: list[str], env: dict[str, str], log: Path, *, pass_fds: tuple[int, ...] = ()
) -> Iterator[Process]:
    """Run ``argv`` in its own process group; whatever happens, nothing of it outlives the block."""
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
            start_new_session=True,
        )
    try:
        yield Process(popen, log)
    finally:
        if popen.poll() is None:
            kill_group(popen)
        else:  # the master is gone; make sure no orphaned worker of its group is left
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)


@contextlib.contextmanager
def serve(
    argv: Callable[[int], list[str]],
    kameleoon: dict[str, Any],
    log: Path,
    *,
    ready_path: str = "/api/data.json",
    timeout: float = 30.0,
) -> Iterator[Process]:
    """Start a server on a fresh socket (``argv(fd)`` builds its command) and wait until it answers.

    ``ready_path`` must be a page the middleware does not track, so that polling sends nothing.
    """
    with listening_socket() as sock:
        fd = sock.fileno()
        port = sock.getsockname()[1]
        with spawn(argv(fd), site_environment(kameleoon), log, pass_fds=(fd,)) as process:
            sock.close()  # the server holds its own copy; ours would keep the port alive
            process.url = f"http://127.0.0.1:{port}"
            wait_until_answering(process, ready_path, timeout)
            yield process


def wait_until_answering(process: Process, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.popen.poll() is not None:
            raise AssertionError(f"the server exited at start-up:\n{process.output()}")
        try:
            if requests.get(process.url + path, timeout=1.0).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the server did not answer within {timeout} s:\n{process.output()}"
            )
        time.sleep(0.05)


def python_module(module: str, *args: str) -> list[str]:
    """``python -m module args``, with this interpreter, so any virtualenv (CI's too) works."""
    return [sys.executable, "-m", module, *args]
