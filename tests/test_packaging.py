"""The package's metadata says what CI tests: one supported matrix in tox.ini, the README's
table, the classifiers and the Django floor; the pinned user-agents is the one installed; the
Rust resolver is required only where it has wheels."""

from __future__ import annotations

import configparser
import re
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (pytest depends on tomli there)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def tox_cells() -> set[tuple[str, str]]:
    """(Django, Python) of every cell of tox.ini, from names like ``py312-django60-full``."""
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    cells = set()
    for name in tox["tox"]["env_list"].split():
        match = re.match(r"py3(\d+)-django(\d)(\d+)", name)
        assert match, f"a tox cell named {name!r} says no Python or Django"
        python, major, minor = match.groups()
        cells.add((f"{major}.{minor}", f"3.{python}"))
    return cells


def readme_cells() -> set[tuple[str, str]]:
    section = README.split("## Supported versions", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d\.\d)(?: \(LTS\))? \| ([\d., ]+) \|$", section, re.M)
    return {(django, python) for django, pythons in rows for python in pythons.split(", ")}


def classified(prefix: str) -> set[str]:
    return {c.removeprefix(prefix) for c in PROJECT["classifiers"] if c.startswith(prefix)}


def dependency(name: str) -> list[Requirement]:
    found = [Requirement(d) for d in PROJECT["dependencies"]]
    return [r for r in found if canonicalize_name(r.name) == name]


def test_the_readme_table_is_the_tox_matrix() -> None:
    assert readme_cells() == tox_cells()
    assert len(tox_cells()) == 8


def test_the_classifiers_name_every_tested_django_and_python() -> None:
    djangos = {django for django, _ in tox_cells()}
    pythons = {python for _, python in tox_cells()}
    assert classified("Framework :: Django :: ") == djangos
    assert classified("Programming Language :: Python :: ") == pythons | {"3", "3 :: Only"}
    assert "Typing :: Typed" in PROJECT["classifiers"]
    assert PROJECT["requires-python"] == f">={min(pythons, key=lambda v: int(v.split('.')[1]))}"


def test_the_django_floor_is_the_oldest_tested_django() -> None:
    (django,) = dependency("django")
    assert str(django.specifier) == f">={min(d for d, _ in tox_cells())}"


def test_user_agents_is_pinned_to_the_installed_release() -> None:
    (pin,) = dependency("user-agents")
    assert str(pin.specifier) == f"=={version('user-agents')}"


@pytest.mark.parametrize(
    ("environment", "rust"),
    [
        ({"sys_platform": "linux", "platform_machine": "x86_64"}, True),
        ({"sys_platform": "linux", "platform_machine": "aarch64"}, True),
        ({"sys_platform": "darwin", "platform_machine": "arm64"}, True),
        ({"sys_platform": "darwin", "platform_machine": "x86_64"}, True),
        ({"sys_platform": "win32", "platform_machine": "AMD64"}, True),
        ({"sys_platform": "win32", "platform_machine": "x86"}, False),
        ({"sys_platform": "linux", "platform_machine": "i686"}, False),
        ({"sys_platform": "linux", "platform_machine": "armv7l"}, False),
        ({"sys_platform": "linux", "platform_machine": "ppc64le"}, False),
        ({"sys_platform": "linux", "platform_machine": "s390x"}, False),
        ({"sys_platform": "freebsd14", "platform_machine": "amd64"}, False),
        (
            {
                "sys_platform": "linux",
                "platform_machine": "x86_64",
                "platform_python_implementation": "PyPy",
            },
            False,
        ),
    ],
)
def test_the_rust_resolver_is_required_only_where_it_has_wheels(
    environment: dict[str, Any], rust: bool
) -> None:
    """ua-parser-rs publishes abi3 CPython wheels for exactly these platforms (checked on PyPI
    for 0.1.5); on the others pip would need a Rust toolchain to build it."""
    plain, regex = sorted(dependency("ua-parser"), key=lambda r: bool(r.extras))
    assert plain.marker is None and not plain.extras
    assert regex.extras == {"regex"} and regex.marker is not None
    given = {"platform_python_implementation": "CPython", **environment}
    assert regex.marker.evaluate(given) is rust
