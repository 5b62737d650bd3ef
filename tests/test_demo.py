"""``make demo`` and ``make serve``, end to end: real processes, real HTTP, the real collector.

Slow by the suite's standards (a few seconds each), but part of ``make test``: the demo is the
first thing a newcomer runs, and it is the only test that runs the example project under
gunicorn, stops it with SIGTERM and checks that what the workers held reached the collector.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)


def test_make_demo_runs_the_demo_script_and_make_serve_the_serve_script() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(
        r"^demo: \$\(STAMP\)\n\t\$\(BIN\)/python example_project/demo\.py$", makefile, re.M
    )
    assert re.search(
        r"^serve: \$\(STAMP\)\n\t\$\(BIN\)/python example_project/serve\.py", makefile, re.M
    )


@pytest.mark.slow
def test_the_demo_passes_within_two_minutes() -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "demo.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert elapsed < 120
    for kind in ("STATICDATA", "PAGE", "CONVERSION"):
        assert re.search(rf"^   {kind} +v=", output, re.M), f"no {kind} line:\n{output}"
    assert re.search(r"^   Googlebot +\w+ +2 page\(s\) served +bot: not tracked$", output, re.M)
    buyer = re.search(r"^   \w+ +Buyer +DESKTOP .* (\d+) +(\d+) +([\d.]+)$", output, re.M)
    assert buyer and buyer.groups() == ("3", "2", "59.80"), output
    assert "Violations of the Data API's rules\n   none" in output
    assert "OK: STATICDATA, PAGE and CONVERSION events arrived" in output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def wait_for_page(url: str, process: subprocess.Popen[str], deadline: float) -> requests.Response:
    """GET ``url`` as a browser until runserver answers (it starts after the collector)."""
    while True:
        try:
            return requests.get(url, headers={"User-Agent": CHROME}, timeout=5)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
        # runserver is not listening yet: wait a little, or for serve.py to die trying.
        try:
            process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"serve.py exited with status {process.returncode}")


@pytest.mark.slow
def test_make_serve_runs_the_shop_and_the_collector_until_ctrl_c(tmp_path: Path) -> None:
    port, collector_port = free_port(), free_port()
    env = {**os.environ, "SHOP_DATABASE": str(tmp_path / "db.sqlite3")}  # migrate writes it
    process = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLE / "serve.py"),
            f"--port={port}",
            f"--collector-port={collector_port}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job has
        env=env,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    assert process.stdout is not None
    threading.Thread(target=read_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        response = wait_for_page(
            f"http://127.0.0.1:{port}/products/mug/", process, time.monotonic() + 60
        )
        assert response.status_code == 200
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = []
    while (line := lines.get(timeout=5)) is not None:
        output.append(line)
    text = "\n".join(output)
    assert f"collector listening on http://127.0.0.1:{collector_port}" in text
    assert re.search(
        r'^PAGE +v=\w+  http://127\.0\.0\.1:\d+/products/mug/  "Stoneware mug"$', text, re.M
    ), text
    assert re.search(r"^STATICDATA v=\w+  Chrome 120 / Windows / DESKTOP$", text, re.M), text
    assert "received 2 event(s): PAGE 1, STATICDATA 1" in text
    assert "no violations" in text
