"""``make demo`` and ``make serve``, end to end: real processes, real HTTP, the real collector.

Slow by the suite's standards (a few seconds each), but part of ``make test``: the demo is the
first thing a newcomer runs, and it is the only test that runs the example project under
gunicorn, stops it with SIGTERM and checks that what the workers held reached the collector.
Each test runs the command ``make`` itself would run for its target, with this interpreter.
"""

from __future__ import annotations

import html
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support import CHROME, ROOT, free_port, run_python, spawn, wait_until_answering


def make_python_args(target: str, **variables: object) -> list[str]:
    """The arguments ``make target`` gives the virtualenv's Python (``make --dry-run``, its
    virtualenv taken as installed), for this interpreter to run instead."""
    venv = Path(sys.prefix)
    # Run under `make test`, it would be a sub-make: it must not inherit the outer one's flags.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    dry_run = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "--dry-run",
            f"--old-file={venv / '.installed'}",
            target,
            f"VENV={venv}",
            *(f"{name}={value}" for name, value in variables.items()),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    (command,) = dry_run.splitlines()
    python, *args = shlex.split(command)
    assert python == f"{venv}/bin/python", command
    return args


@pytest.mark.slow
def test_make_demo_passes_within_two_minutes() -> None:
    result = run_python(*make_python_args("demo"), timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for kind in ("STATICDATA", "PAGE", "CONVERSION"):
        assert re.search(rf"^   {kind} +v=", output, re.M), f"no {kind} line:\n{output}"
    assert re.search(r"^   Googlebot +\w+ +2 page\(s\) served +bot: not tracked$", output, re.M)
    buyer = re.search(r"^   \w+ +Buyer +DESKTOP .* (\d+) +(\d+) +([\d.]+)$", output, re.M)
    assert buyer and buyer.groups() == ("3", "2", "59.80"), output
    # Product pages come from Django's cache on later loads, each counted once (its beacon).
    assert "== Served from Django's cache, and counted by the beacon" in output
    for who in ("Returning visitor", "Buyer"):
        assert re.search(rf"^   {who} +1$", output, re.M), output
    assert "Violations of the Data API's rules\n   none" in output
    assert "OK: STATICDATA, PAGE and CONVERSION events arrived" in output


@pytest.mark.slow
def test_make_serve_runs_the_shop_and_the_collector_until_ctrl_c(tmp_path: Path) -> None:
    port, collector_port = free_port(), free_port()
    args = make_python_args("serve", PORT=port, COLLECTOR_PORT=collector_port)
    env = {"SHOP_DATABASE": str(tmp_path / "db.sqlite3")}  # migrate writes it
    with spawn([sys.executable, *args], tmp_path / "serve.log", env=env) as process:
        # runserver starts after the collector: a browser's GET, until the shop answers.
        page = f"http://127.0.0.1:{port}/products/mug/"
        shown = wait_until_answering(
            process, page, timeout=60, headers={"User-Agent": CHROME}, request_timeout=5
        )
        # The product page is counted by its beacon, which a browser loads next.
        src = re.search(r'<img src="([^"]+)"[^>]* data-kameleoon-beacon', shown.text)
        assert src, shown.text
        image = requests.get(
            f"http://127.0.0.1:{port}{html.unescape(src.group(1))}",
            headers={"User-Agent": CHROME, "Referer": page},
            timeout=5,
        )
        assert image.headers["Content-Type"] == "image/gif"
        # Ctrl-C reaches the whole foreground group (spawn gives it a group of its own).
        process.stop(signal.SIGINT, timeout=30, group=True)
    text = process.output()
    assert process.popen.returncode == 0, text
    assert f"collector listening on http://127.0.0.1:{collector_port}" in text
    assert re.search(
        r'^PAGE +v=\w+  http://127\.0\.0\.1:\d+/products/mug/  "Stoneware mug"$', text, re.M
    ), text
    assert re.search(r"^STATICDATA v=\w+  CHROME 120 / WINDOWS / DESKTOP$", text, re.M), text
    assert "received 2 event(s): PAGE 1, STATICDATA 1" in text
    assert "no violations" in text
