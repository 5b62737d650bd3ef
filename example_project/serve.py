"""``make serve``: the example shop and the local collector, for a person with a browser.

The collector runs in this process, in the background, printing each event the shop sends;
``manage.py runserver`` runs in the foreground. Ctrl-C reaches both (they share the terminal):
runserver exits and delivers what it still holds, then the collector prints its summary.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from django_kameleoon.collector import DEFAULT_PORT, Collector

HERE = Path(__file__).resolve().parent
SITE_CODE = "demoshop01"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000, help="the shop's port (default 8000)")
    parser.add_argument(
        "--collector-port",
        type=int,
        default=DEFAULT_PORT,
        help=f"the collector's port (default {DEFAULT_PORT})",
    )
    return parser.parse_args()


def manage(*args: str, data_api_url: str) -> subprocess.Popen[bytes]:
    """``manage.py`` of the example project, pointed at the collector through its settings."""
    env = {
        "DJANGO_SETTINGS_MODULE": "shop.settings",  # even if the shell exports another project's
        "KAMELEOON_DATA_API_URL": data_api_url,
        "KAMELEOON_SITE_CODE": SITE_CODE,
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", *args], cwd=HERE, env={**os.environ, **env}
    )


def main() -> int:
    options = parse_args()
    collector = Collector(port=options.collector_port, site_code=SITE_CODE)
    try:
        collector.start()
    except OSError as exc:
        print(f"cannot start the collector on port {options.collector_port}: {exc}")
        print("is `make serve` already running? try: make serve COLLECTOR_PORT=8766")
        return 2
    try:
        print(f"collector listening on {collector.url}; its lines follow as events arrive")
        # Quiet and quick; keeps runserver from warning about unapplied migrations.
        if manage("migrate", "--noinput", "-v", "0", data_api_url=collector.url).wait():
            return 1
        print(f"the shop: http://127.0.0.1:{options.port}/   (Ctrl-C stops both)", flush=True)
        server = manage("runserver", f"127.0.0.1:{options.port}", data_api_url=collector.url)
        try:
            server.wait()
        except KeyboardInterrupt:
            server.wait()  # it got the same Ctrl-C: let it deliver what it holds and exit
    finally:
        collector.stop()
    for line in collector.summary():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
