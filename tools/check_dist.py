"""Build the sdist and the wheel, and check what a package index would receive.

- ``twine check --strict`` on both (the README renders, the metadata is complete);
- the wheel holds the package, its data and ``py.typed``, the LICENSE, and no tests;
- the sdist holds every file git tracks (so nothing a test reads is left out), and its tests
  run from it: the whole suite is collected and a few modules that read templates, data files,
  the README and the Makefile are run, with the package imported from the unpacked sdist.

Usage: ``python tools/check_dist.py`` (``make dist``); exits non-zero on the first failure.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEEL_MUST_HOLD = (
    "django_kameleoon/__init__.py",
    "django_kameleoon/py.typed",
    "django_kameleoon/data/isbot.json",
    "django_kameleoon/data/isbot-LICENSE",
)
#: Test modules run from the unpacked sdist: between them they read the templates, the
#: User-Agent corpus, the README, the Makefile and pyproject.toml.
SDIST_TESTS = ("tests/test_readme.py", "tests/test_templatetags.py", "tests/test_bots.py")


def run(*args: str | Path, cwd: Path = ROOT) -> None:
    print("$", " ".join(map(str, args)), flush=True)
    subprocess.run(args, cwd=cwd, check=True)


def check_wheel(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in WHEEL_MUST_HOLD if name not in names]
    assert not missing, f"the wheel lacks {missing}"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "no LICENSE in wheel"
    assert not any(n.startswith("tests/") for n in names), "the wheel ships tests/"
    print(f"wheel: {len(names)} files, LICENSE and py.typed included, no tests")


def tracked_files() -> set[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return {name for name in out.split("\0") if name and (ROOT / name).is_file()}


def check_sdist(sdist: Path, workdir: Path) -> None:
    with tarfile.open(sdist) as tar:
        tar.extractall(workdir, filter="data")
    (top,) = workdir.iterdir()
    shipped = {str(p.relative_to(top)) for p in top.rglob("*") if p.is_file()}
    if (ROOT / ".git").exists():
        missing = sorted(tracked_files() - shipped)
        assert not missing, f"the sdist lacks tracked files: {missing}"
    assert "LICENSE" in shipped, "no LICENSE in the sdist"
    print(f"sdist: {len(shipped)} files, every tracked file included")
    # The unpacked sdist comes first on sys.path (pytest's pythonpath = ["."]), so its own
    # copy of the package is the one imported; the -c line proves it.
    where = "import django_kameleoon as m, pathlib, sys; assert pathlib.Path(m.__file__)"
    run(sys.executable, "-c", f"{where}.is_relative_to({str(top)!r})", cwd=top)
    pytest = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider")
    run(*pytest, "-q", "--collect-only", cwd=top)
    run(*pytest, "-m", "not slow", *SDIST_TESTS, cwd=top)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="kameleoon-dist-") as tmp:
        outdir = Path(tmp) / "dist"
        run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", outdir)
        (wheel,) = outdir.glob("*.whl")
        (sdist,) = outdir.glob("*.tar.gz")
        run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist)
        check_wheel(wheel)
        unpacked = Path(tmp) / "sdist"
        unpacked.mkdir()
        check_sdist(sdist, unpacked)
    print("dist: OK")


if __name__ == "__main__":
    main()
