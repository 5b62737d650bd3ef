"""Every snippet and command in README.md works as written.

Python blocks are executed, one test each, with Django configured by ``tests.settings`` and the
app pointed at the real local Data API (the ``kameleoon`` fixture); the only name a block gets
for free is ``request``, a ``RequestFactory`` request from a desktop Chrome. After a block runs:

- functions it defines that take just ``request`` (views, consent callables) are called with it
  (async views through ``async_to_sync``);
- ``test_*`` functions are called, and ``TestCase`` classes are run;
- ``KAMELEOON`` dicts are validated, ``MIDDLEWARE`` passes the app's checks, the signals named
  in ``GOALS`` record conversions and ``CONSENT`` paths resolve (the block's namespace stands in
  for the modules it says it is, like ``shop/signals.py``); ``SILENCED_SYSTEM_CHECKS`` names
  only ids the app reports;
- every event type a top-level ``track*()`` call sends must arrive at the local API, and the
  fixture fails the test if the API saw any broken rule;
- ``print(...)  # text`` lines must print ``text``.

Template blocks are rendered with the engine in debug mode (so a broken tag raises), and shell
commands are checked against the Makefile and the argument parsers of the commands they run.
"""

from __future__ import annotations

import inspect
import re
import shlex
import sys
import types
import unittest
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction
from django.core.management import get_commands, load_command_class
from django.dispatch import Signal
from django.template import Context, Engine
from django.test import RequestFactory, override_settings
from django.utils.module_loading import import_string

import django_kameleoon
from django_kameleoon import collector, signals
from django_kameleoon.checks import check_middleware
from django_kameleoon.conf import RULES, Settings, get_settings, load_settings
from django_kameleoon.events import EVENT_TYPES
from django_kameleoon.testing import DataApiServer
from django_kameleoon.visitor import request_state
from tests.support import SITE_CODE, Configure, every_check_id

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)


def blocks(language: str) -> list[Any]:
    """The README's fenced blocks in ``language``, as pytest params named by line number."""
    found = []
    for match in FENCE.finditer(README):
        if match.group(1) == language:
            line = README.count("\n", 0, match.start()) + 2
            found.append(pytest.param(line, match.group(2), id=f"README.md:{line}"))
    return found


def make_request() -> Any:
    return RequestFactory().get(
        "/products/teapot/", HTTP_USER_AGENT=CHROME, HTTP_ACCEPT_LANGUAGE="fr-FR,fr;q=0.9"
    )


def test_the_readme_has_snippets_of_every_kind() -> None:
    assert len(blocks("python")) >= 10
    assert blocks("django") and blocks("console")
    assert "make demo" in README and "make test" in README


# --------------------------------------------------------------------------------------------
# Python blocks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "code"), blocks("python"))
def test_python_snippet(
    line: int,
    code: str,
    kameleoon: Configure,
    data_api: DataApiServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = make_request()
    namespace: dict[str, Any] = {"__name__": f"readme_{line}", "request": request}
    with disconnected_afterwards(namespace):
        exec(compile(code, f"README.md:{line}", "exec"), namespace)
        defined = defined_here(namespace, f"README.md:{line}")
        call_views(defined, request)
        run_tests(defined, namespace)
        check_settings(namespace, data_api, monkeypatch)
    assert django_kameleoon.flush(timeout=5)
    check_events_arrived(code, data_api)
    check_prints(code, capsys.readouterr().out)


def defined_here(namespace: dict[str, Any], filename: str) -> dict[str, Any]:
    """The functions and classes the block itself defined (not those it imported)."""
    return {
        name: value
        for name, value in namespace.items()
        if (inspect.isfunction(value) and value.__code__.co_filename == filename)
        or (inspect.isclass(value) and value.__module__ == namespace["__name__"])
    }


@contextmanager
def disconnected_afterwards(namespace: dict[str, Any]) -> Iterator[None]:
    """Receivers a block connects with ``@receiver`` must not outlive its test."""
    try:
        yield
    finally:
        for value in list(namespace.values()):
            if inspect.isfunction(value):
                for signal in (
                    signals.conversion,
                    signals.events_delivered,
                    signals.events_dropped,
                ):
                    signal.disconnect(value)


def call_views(defined: dict[str, Any], request: Any) -> None:
    for function in defined.values():
        if inspect.isfunction(function) and _parameters(function) == ["request"]:
            async_to_sync(function)(request) if iscoroutinefunction(function) else function(request)


def run_tests(defined: dict[str, Any], namespace: dict[str, Any]) -> None:
    for name, value in defined.items():
        if inspect.isfunction(value) and name.startswith("test") and not _parameters(value):
            value()
        if inspect.isclass(value) and issubclass(value, unittest.TestCase):
            result = unittest.TestResult()
            unittest.defaultTestLoader.loadTestsFromTestCase(value).run(result)
            assert result.testsRun and result.wasSuccessful(), result.errors + result.failures


def _parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def check_settings(
    namespace: dict[str, Any], data_api: DataApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "INSTALLED_APPS" in namespace:
        assert "django_kameleoon" in namespace["INSTALLED_APPS"]
    if "MIDDLEWARE" in namespace:
        middleware = [entry for entry in namespace["MIDDLEWARE"] if isinstance(entry, str)]
        with override_settings(MIDDLEWARE=middleware):
            assert check_middleware() == []
    if "KAMELEOON" in namespace:
        check_kameleoon_dict(namespace, data_api, monkeypatch)
    if "SILENCED_SYSTEM_CHECKS" in namespace:
        assert set(namespace["SILENCED_SYSTEM_CHECKS"]) <= set(every_check_id())


def check_kameleoon_dict(
    namespace: dict[str, Any], data_api: DataApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Valid as written; then, sending to the test server, the paths it names work."""
    raw = namespace["KAMELEOON"]
    load_settings(raw)
    paths = [*raw.get("GOALS", {}), *([raw["CONSENT"]] if raw.get("CONSENT") else [])]
    for path in paths:
        install_module(path.rpartition(".")[0], namespace, monkeypatch)
    local = {**raw, "SITE_CODE": SITE_CODE, "DATA_API_URL": data_api.url}
    with override_settings(KAMELEOON=local):
        settings = get_settings()
        if settings.CONSENT:
            assert callable(import_string(settings.CONSENT))
        for path, goal_id in settings.GOALS.items():
            send_goal_signal(import_string(path), goal_id, data_api)


def install_module(name: str, namespace: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``name`` (``shop.signals``) importable, holding what the block defined."""
    module = types.ModuleType(name)
    module.__dict__.update(namespace)
    parts = name.split(".")
    for i in range(1, len(parts)):
        parent = ".".join(parts[:i])
        if parent not in sys.modules:
            package = types.ModuleType(parent)
            package.__path__ = []
            monkeypatch.setitem(sys.modules, parent, package)
    monkeypatch.setitem(sys.modules, name, module)


def send_goal_signal(signal: Signal, goal_id: int, data_api: DataApiServer) -> None:
    before = len(data_api.events)
    request = make_request()
    signal.send(sender=None, request=request, revenue=42.5)
    assert django_kameleoon.flush(timeout=5)
    [event] = data_api.wait_for_events(before + 1)[before:]
    assert event["eventType"] == "CONVERSION" and event["goalId"] == goal_id
    assert event["revenue"] == 42.5 and event["visitorCode"] == request_state(request).visitor_code


TOP_LEVEL_TRACK = re.compile(r"^django_kameleoon\.(track|track_conversion)\(", re.M)


def check_events_arrived(code: str, data_api: DataApiServer) -> None:
    """A block that sends events at its top level: each type it names arrived, valid."""
    calls = TOP_LEVEL_TRACK.findall(code)
    if not calls:
        return
    expected = {kind for kind in EVENT_TYPES if f'"{kind}"' in code}
    if "track_conversion" in calls:
        expected.add("CONVERSION")
    received = {event["eventType"] for event in data_api.events}
    assert expected <= received, f"sent {sorted(expected)}, received {sorted(received)}"


def check_prints(code: str, output: str) -> None:
    for expected in re.findall(r"print\(.*\)\s+#\s*(.+)$", code, re.M):
        assert expected.strip() in output


# --------------------------------------------------------------------------------------------
# Template blocks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "code"), blocks("django"))
def test_template_snippet(
    line: int, code: str, kameleoon: Configure, data_api: DataApiServer
) -> None:
    engine = Engine(debug=True, libraries={"kameleoon": "django_kameleoon.templatetags.kameleoon"})
    request = make_request()
    context = {
        "request": request,
        "product": {"name": "Cast-iron teapot"},
        "canonical_url": "https://shop.example/products/teapot/",
        "order": {"total": 59.8, "pk": 1042},
    }
    html = engine.from_string(code).render(Context(context))
    state = request_state(request)
    if "kameleoon_visitor_code" in code:
        assert state.visitor_code in html
    if "kameleoon_script" in code:
        assert f"https://{SITE_CODE}.kameleoon.eu/kameleoon.js" in html
    if "kameleoon_page" in code:
        assert state.page == {
            "title": "Cast-iron teapot",
            "canonicalHref": "https://shop.example/products/teapot/",
            "keyPageIndices": [3, 7],
        }
    if "kameleoon_conversion" in code:
        assert django_kameleoon.flush(timeout=5)
        [conversion] = data_api.wait_for_events(1)
        assert conversion["goalId"] == 7 and conversion["revenue"] == 59.8


# --------------------------------------------------------------------------------------------
# Shell commands
# --------------------------------------------------------------------------------------------


def commands() -> list[Any]:
    found = []
    for param in blocks("console"):
        line, code = param.values
        for offset, text in enumerate(code.splitlines()):
            if text.startswith("$ "):
                found.append(pytest.param(text[2:], id=f"README.md:{line + offset}"))
    return found


PROJECT_NAME = re.search(
    r'^name = "(.+)"$', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M
)[1]
MAKE_TARGETS = set(re.findall(r"^([a-z]+):", (ROOT / "Makefile").read_text(), re.M))


@pytest.mark.parametrize("command", commands())
def test_shell_command(command: str) -> None:
    """Each command runs something that exists, with options its parser accepts."""
    words = shlex.split(command)
    if words[0] == "make":
        assert set(words[1:]) <= MAKE_TARGETS
    elif words[:3] == ["python", "-m", "django_kameleoon.collector"]:
        collector.build_parser().parse_args(words[3:])
    elif words[:2] == ["python", "manage.py"]:
        name = words[2]
        command_class = load_command_class(get_commands()[name], name)
        command_class.create_parser("manage.py", name).parse_args(words[3:])
    elif words[:4] == ["python", "-m", "pip", "install"]:
        # From the package index, under the project's own name; or from a checkout, where the
        # path stands for wherever this repository was cloned (what the Makefile does, pip
        # install -e ., before every test run).
        assert words[4:] in (["/path/to/django-kameleoon"], [PROJECT_NAME])
    else:
        pytest.fail(f"the README shows a command this test does not know how to check: {command}")


LINK_TARGET = re.compile(r"\]\(([^)\s]*)")


def test_every_link_works_where_the_readme_is_shown_alone() -> None:
    """A package index shows the README without the repository beside it, and PyPI strips the
    ids of headings, so a relative or ``#anchor`` link leads nowhere there: links are absolute,
    and the README names files and sections as plain text."""
    targets = LINK_TARGET.findall(README)
    assert targets, "the pattern finds the README's links"
    assert [target for target in targets if not target.startswith("https://")] == []


# --------------------------------------------------------------------------------------------
# The settings table
# --------------------------------------------------------------------------------------------


SETTINGS_ROW = re.compile(r"^\| `([A-Z_]+)` \| (.+?) \| .+ \|$", re.M)
CHECK_ROW = re.compile(r"^\| `(django_kameleoon\.[EW]\d{3})` \| (.+) \|$", re.M)


def test_the_settings_table_lists_every_declared_setting_once() -> None:
    table = [name for name, _ in SETTINGS_ROW.findall(README)]
    assert sorted(table) == sorted(RULES)


@pytest.mark.parametrize(
    ("name", "shown"), [pytest.param(*row, id=row[0]) for row in SETTINGS_ROW.findall(README)]
)
def test_the_settings_table_gives_the_declared_default(name: str, shown: str) -> None:
    """``required``, a Python expression, or (for a list of words) some of its words."""
    default = getattr(Settings(), name)
    if shown == "required":
        assert RULES[name].validate(default), f"{name}'s default is valid: it is not required"
        return
    spans = re.findall(r"`([^`]+)`", shown)
    assert spans, f"{name}: no default shown"
    try:
        value = eval(spans[0].replace("<version>", django_kameleoon.__version__), {})
    except NameError:  # bare words: a sample of the default list
        assert set(spans) <= set(default) and shown.endswith("…"), name
    else:
        assert value == default, name


def test_the_system_checks_table_lists_every_id_once() -> None:
    assert sorted(check_id for check_id, _ in CHECK_ROW.findall(README)) == sorted(every_check_id())


@pytest.mark.parametrize("name", list(RULES))
def test_the_system_checks_table_names_each_settings_own_id(name: str) -> None:
    meanings = dict(CHECK_ROW.findall(README))
    assert meanings[f"django_kameleoon.{RULES[name].check_id}"].startswith(f"`{name}` ")


def test_the_collector_output_shown_is_what_it_prints() -> None:
    [example] = [param.values[1] for param in blocks("text") if "CONVERSION v=" in param.values[1]]
    code, href = "x7k2m9q4w8e5r1t3", "http://127.0.0.1:8000/products/teapot/"
    events: list[dict[str, Any]] = [
        {"eventType": "STATICDATA", "browserIndex": 0, "browserVersion": 120.0, "os": "WINDOWS",
         "osIndex": 0, "deviceType": "DESKTOP", "localeLanguageTag": "fr-FR"},
        {"eventType": "PAGE", "href": href, "title": "Cast-iron teapot"},
        {"eventType": "CONVERSION", "goalId": 101, "revenue": 59.8},
    ]  # fmt: skip
    lines = [collector.format_event({"visitorCode": code, **event}) for event in events]
    assert example.splitlines() == lines
