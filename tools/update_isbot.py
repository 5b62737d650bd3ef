"""Refresh ``django_kameleoon/data/isbot.json`` from a release of isbot on the npm registry.

isbot (github.com/omrilotan/isbot, Unlicense) keeps the bot pattern list that
``django_kameleoon.bots`` uses. Run ``make isbot`` (or ``python tools/update_isbot.py 5.2.3``)
to vendor a newer release; it needs ``npm`` and ``node``, for maintainers only: users install
the package with the list inside it. Review the diff, then run ``tests/test_bots.py``: the
corpus figures in the README come from it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "django_kameleoon" / "data"


def fetch(version: str) -> tuple[str, list[str], str]:
    """The released version, its pattern list and its licence text, from ``npm pack``."""
    with tempfile.TemporaryDirectory() as tmp:
        packed = subprocess.run(
            ["npm", "pack", f"isbot@{version}", "--silent"],
            cwd=tmp,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[-1]
        with tarfile.open(Path(tmp) / packed) as tar:
            tar.extractall(tmp, filter="data")
        package = Path(tmp) / "package"
        script = "const m = require(process.argv[1]); console.log(JSON.stringify(m.list))"
        listed = subprocess.run(
            ["node", "-e", script, str(package)], check=True, capture_output=True, text=True
        ).stdout
        meta = json.loads((package / "package.json").read_text())
        return meta["version"], json.loads(listed), (package / "LICENSE").read_text()


def main(version: str = "latest") -> None:
    released, patterns, licence = fetch(version)
    document = {
        "source": "isbot",
        "version": released,
        "url": f"https://github.com/omrilotan/isbot/blob/v{released}/src/patterns.json",
        "licence": "Unlicense",
        "patterns": patterns,
    }
    (DATA / "isbot.json").write_text(json.dumps(document, indent=1) + "\n")
    (DATA / "isbot-LICENSE").write_text(licence)
    print(f"isbot {released}: {len(patterns)} patterns written to {DATA / 'isbot.json'}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
