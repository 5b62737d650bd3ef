"""The wheel, installed as a user would, works end to end (``make smoke``).

Builds the wheel, installs it (and gunicorn) in a fresh venv, runs ``django-admin
startproject``, adds the README's settings (the app, the middleware after
``SecurityMiddleware``, a ``SITE_CODE``) and a home page, runs ``manage.py check``, then serves
the site under gunicorn beside the local collector (``python -m django_kameleoon.collector``):
one page view from a browser must reach the collector as STATICDATA + PAGE. Standard library
only; exits non-zero, with the processes' output, when anything is wrong.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE_CODE = "abcdef1234"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
SETTINGS = """
# django-kameleoon, as the README's "Installing into your own site" says.
INSTALLED_APPS += ["django_kameleoon"]
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "django_kameleoon.middleware.KameleoonMiddleware",
)
KAMELEOON = {{"SITE_CODE": "{site_code}", "DATA_API_URL": "http://127.0.0.1:{port}"}}
"""
HOME = """
from django.http import HttpResponse


def home(request):
    return HttpResponse("<!doctype html><title>Smoke</title><p>Hi</p>")


urlpatterns += [path("", home)]
"""


def run(*args: str | Path, cwd: Path = ROOT) -> None:
    print("$", " ".join(map(str, args)), flush=True)
    subprocess.run(args, cwd=cwd, check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"smoke: FAILED: no {what} within {timeout:.0f} s")
        time.sleep(0.1)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def make_site(tmp: Path, collector_port: int) -> Path:
    """A fresh venv with the wheel installed, and a startproject site configured for it."""
    run(sys.executable, "-m", "build", "--wheel", "--outdir", tmp / "dist")
    (wheel,) = (tmp / "dist").glob("*.whl")
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, "gunicorn")
    run(venv / "bin" / "django-admin", "startproject", "mysite", tmp)
    with (tmp / "mysite" / "settings.py").open("a") as settings:
        settings.write(SETTINGS.format(site_code=SITE_CODE, port=collector_port))
    with (tmp / "mysite" / "urls.py").open("a") as urls:
        urls.write(HOME)
    run(venv / "bin" / "python", "manage.py", "check", "--fail-level", "WARNING", cwd=tmp)
    return venv


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="kameleoon-smoke-") as name:
        tmp = Path(name)
        collector_port, site_port = free_port(), free_port()
        venv = make_site(tmp, collector_port)
        python, events = venv / "bin" / "python", tmp / "events.jsonl"
        collector_log, site_log = (tmp / "collector.log").open("w+"), (tmp / "site.log").open("w+")
        collector = subprocess.Popen(
            [python, "-m", "django_kameleoon.collector", "--port", str(collector_port),
             "--site-code", SITE_CODE, "--jsonl", events],
            cwd=tmp, stdout=collector_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        site = subprocess.Popen(
            [venv / "bin" / "gunicorn", "--bind", f"127.0.0.1:{site_port}", "mysite.wsgi"],
            cwd=tmp, stdout=site_log, stderr=subprocess.STDOUT,
            env={**os.environ, "HOME": str(tmp)},  # gunicorn 25's control socket goes there
        )  # fmt: skip
        try:
            wait_until(lambda: listening(collector_port), "collector")
            wait_until(lambda: listening(site_port), "site")
            page = urllib.request.Request(
                f"http://127.0.0.1:{site_port}/", headers={"User-Agent": CHROME}
            )
            with urllib.request.urlopen(page, timeout=10) as response:
                assert response.status == 200, response.status
            site.send_signal(signal.SIGTERM)  # a graceful stop delivers the queue
            site.wait(60)

            def arrived() -> set[str]:
                lines = events.read_text().splitlines() if events.exists() else []
                return {json.loads(line)["eventType"] for line in lines}

            wait_until(lambda: {"STATICDATA", "PAGE"} <= arrived(), "STATICDATA + PAGE")
            print(f"smoke: the collector received {sorted(arrived())}")
        finally:
            violations = "VIOLATION" in Path(collector_log.name).read_text()
            for process in (site, collector):
                if process.poll() is None:
                    process.send_signal(signal.SIGINT)
                    process.wait(30)
            for log in (site_log, collector_log):
                log.seek(0)
                print(f"--- {os.path.basename(log.name)}\n{log.read()}", end="")
                log.close()
    if violations:
        raise SystemExit("smoke: FAILED: the collector saw violations of the Data API's rules")
    print("smoke: OK")


if __name__ == "__main__":
    main()
