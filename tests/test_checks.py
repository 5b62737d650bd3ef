"""System checks: middleware presence and order, the request context processor, uWSGI threads."""

from __future__ import annotations

import io
import logging
import re
import sys
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps
from django.core.checks import ERROR, CheckMessage, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.middleware.cache import FetchFromCacheMiddleware
from django.test import override_settings

from django_kameleoon import checks, lifecycle
from django_kameleoon.conf import RULES
from django_kameleoon.middleware import KameleoonMiddleware
from tests.support import every_check_id

OURS = "django_kameleoon.middleware.KameleoonMiddleware"
SECURITY = "django.middleware.security.SecurityMiddleware"
SESSION = "django.contrib.sessions.middleware.SessionMiddleware"
COMMON = "django.middleware.common.CommonMiddleware"
CSRF = "django.middleware.csrf.CsrfViewMiddleware"
LOCALE = "django.middleware.locale.LocaleMiddleware"
UPDATE_CACHE = "django.middleware.cache.UpdateCacheMiddleware"
FETCH_CACHE = "django.middleware.cache.FetchFromCacheMiddleware"
WHOLE_CACHE = "django.middleware.cache.CacheMiddleware"
FLATPAGES = "django.contrib.flatpages.middleware.FlatpageFallbackMiddleware"
CONDITIONAL_GET = "django.middleware.http.ConditionalGetMiddleware"
DJANGO_TEMPLATES = "django.template.backends.django.DjangoTemplates"


class SubclassedMiddleware(KameleoonMiddleware):
    """A site's own subclass still counts as the middleware."""


class SiteCacheMiddleware(FetchFromCacheMiddleware):
    """A site's own cache middleware answers cache hits just as Django's does."""


SUBCLASS = f"{__name__}.SubclassedMiddleware"
SITE_CACHE = f"{__name__}.SiteCacheMiddleware"


def ids(messages: list[CheckMessage]) -> list[str | None]:
    return [message.id for message in messages]


def ours(messages: list[CheckMessage]) -> list[CheckMessage]:
    return [m for m in messages if (m.id or "").startswith("django_kameleoon.")]


def test_the_test_site_passes_every_check() -> None:
    assert ours(run_checks()) == []


# -- settings (E001, E003, and one id per setting from E004) --------------------------------------


#: A bad value of each setting, and the id it must be reported under: the ids are public, since
#: sites list them in SILENCED_SYSTEM_CHECKS, so they are spelled out here rather than derived.
BAD_VALUES: dict[str, tuple[Any, str]] = {
    "SITE_CODE": ("a b", "E001"),
    "DATA_API_URL": ("ftp://nowhere", "E004"),
    "BACKEND": ("nowhere.Backend", "E005"),
    "BODY_FORMAT": ("xml", "E006"),
    "USER_AGENT": ("", "E007"),
    "TIMEOUT": (0, "E008"),
    "FLUSH_INTERVAL": (-1, "E009"),
    "MAX_BATCH_EVENTS": (0, "E010"),
    "MAX_BATCH_BYTES": (3_000_001, "E011"),
    "MAX_QUEUE_SIZE": (1.5, "E012"),
    "MAX_RETRIES": (-1, "E013"),
    "RETRY_BACKOFF": ("1", "E014"),
    "RETRY_BACKOFF_MAX": (-0.1, "E015"),
    "SHUTDOWN_TIMEOUT": (None, "E016"),
    "TRACK_PAGES": ("yes", "E017"),
    "TRACK_STATICDATA": (1, "E018"),
    "EXCLUDE_PATHS": (["("], "E019"),
    "TRACK_BOTS": (None, "E020"),
    "CONSENT": ("consent", "E021"),
    "RESPECT_GPC": ("true", "E022"),
    "RESPECT_DNT": (0, "E023"),
    "COOKIE_NAME": ("visitor code", "E024"),
    "COOKIE_DOMAIN": (42, "E025"),
    "COOKIE_MAX_AGE": (0, "E026"),
    "COOKIE_SECURE": ("auto", "E027"),
    "COOKIE_SAMESITE": ("lax", "E028"),
    "GOALS": ({"paid": 12}, "E029"),
    "REDACT_QUERY_PARAMS": (["api-key"], "E030"),
    "KEEP_QUERY_PARAMS": ("q", "E035"),
    "REDACT_PATHS": (["("], "E036"),
    "COOKIE_REFRESH_INTERVAL": (0, "E045"),
    "STATICDATA_VOCABULARY": ("sdk", "E050"),
    "BOT_PATTERNS": (["(unclosed"], "E051"),
    "NOT_BOT_PATTERNS": ("PartnerApp/", "E052"),
    "FLUSH_TIMEOUT": (None, "E031"),
    "READ_TIMEOUT_MAX": (0, "E032"),
    "PAGE_VIEWS": ("both", "E070"),
    "HANDOFF": ("eager", "E060"),
    "CELERY_QUEUE": ("", "E061"),
    "TASKS_BACKEND": (None, "E062"),
    "HANDOFF_TIMEOUT": (0, "E063"),
}


@override_settings(KAMELEOON={"DATA_API_URL": "ftp://nowhere"})
def test_settings_problems_are_errors() -> None:
    messages = ours(run_checks())
    assert ids(messages) == ["django_kameleoon.E001", "django_kameleoon.E004"]
    assert all(message.level == ERROR for message in messages)
    assert "SITE_CODE" in messages[0].msg
    assert "DATA_API_URL" in messages[1].msg


@pytest.mark.parametrize(("key", "bad", "check_id"), [(k, *v) for k, v in BAD_VALUES.items()])
def test_a_bad_value_is_reported_under_its_settings_own_id(
    key: str, bad: Any, check_id: str
) -> None:
    with override_settings(KAMELEOON={"SITE_CODE": "abcdef1234", key: bad}):
        messages = checks.check_settings()
    assert ids(messages) == [f"django_kameleoon.{check_id}"]
    assert messages[0].msg.startswith(f"KAMELEOON['{key}'] ")


def test_every_declared_setting_has_a_bad_value_above() -> None:
    assert list(BAD_VALUES) == list(RULES)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"SITE_CODE": "abcdef1234", "SITECODE": "abcdef1234"}, id="unknown-key"),
        pytest.param("abcdef1234", id="not-a-dict"),
    ],
)
def test_a_kameleoon_that_is_not_a_dict_of_settings_is_e003(raw: Any) -> None:
    with override_settings(KAMELEOON=raw):
        assert ids(checks.check_settings()) == ["django_kameleoon.E003"]


def test_a_missing_site_code_is_e001() -> None:
    with override_settings(KAMELEOON={}):
        assert ids(checks.check_settings()) == ["django_kameleoon.E001"]


def test_no_two_kinds_of_problem_share_an_id() -> None:
    found = every_check_id()
    assert {"django_kameleoon.E002", "django_kameleoon.W004"} <= set(found), "parsed checks.py"
    assert len(found) == len(set(found)), sorted(found)
    assert all(re.fullmatch(r"django_kameleoon\.[EW]\d{3}", check_id) for check_id in found)


@override_settings(
    KAMELEOON={"SITE_CODE": "abcdef1234", "TIMEOUT": 0},
    SILENCED_SYSTEM_CHECKS=["django_kameleoon.E008"],
)
def test_one_kind_of_problem_can_be_silenced_alone() -> None:
    call_command("check", stdout=io.StringIO())
    with (
        override_settings(KAMELEOON={"SITE_CODE": "abcdef1234", "TIMEOUT": 0, "TRACK_BOTS": 1}),
        pytest.raises(SystemCheckError) as raised,
    ):
        call_command("check", stdout=io.StringIO())
    assert "django_kameleoon.E020" in str(raised.value)
    assert "django_kameleoon.E008" not in str(raised.value)


#: Values of the right shape that name nothing usable: only resolving them finds the mistake.
#: Each is reported under its setting's own id, with what is wrong.
UNRESOLVED: list[Any] = [
    pytest.param("CONSENT", "tests.consent.nope", "E021", "cannot be imported", id="consent"),
    pytest.param(
        "CONSENT", "tests.signals.not_a_signal", "E021", "is a int, not a callable",
        id="consent-not-callable",
    ),
    pytest.param(
        "GOALS",
        {"tests.signals.order_paid": 12, "tests.signal.order_paid": 13},
        "E029",
        "'tests.signal.order_paid' cannot be imported",
        id="goals-typo",
    ),
    pytest.param(
        "GOALS", {"tests.consent.allow": 3}, "E029", "is a function, not a Django Signal",
        id="goals-not-a-signal",
    ),
    pytest.param(
        "BACKEND", "tests.consent.allow", "E005", "is a function, not a backend class",
        id="backend-function",
    ),
    pytest.param(
        "GOALS", {"tests.broken_module.paid": 3}, "E029",
        "cannot be imported: RuntimeError: this module is broken", id="goals-module-fails",
    ),
    pytest.param(
        "DATA_API_URL",
        "https://eu-data.kameleoon.io/visit/events",
        "E004",
        "use the base URL, 'https://eu-data.kameleoon.io'",
        id="url-with-endpoint",
    ),
    pytest.param(
        "DATA_API_URL",
        "https://proxy.example/kameleoon/visit/events/",
        "E004",
        "use the base URL, 'https://proxy.example/kameleoon'",
        id="url-with-endpoint-slash",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("key", "value", "check_id", "says"), UNRESOLVED)
def test_every_dotted_path_is_resolved_by_the_check(
    key: str, value: Any, check_id: str, says: str
) -> None:
    with override_settings(KAMELEOON={"SITE_CODE": "abcdef1234", key: value}):
        messages = ours(run_checks())
    assert ids(messages) == [f"django_kameleoon.{check_id}"]
    assert messages[0].msg.startswith(f"KAMELEOON['{key}'] ")
    assert says in messages[0].msg


def test_a_base_url_with_a_path_of_its_own_passes() -> None:
    """A proxy in front of the API may live under a path; only the endpoint's own is a mistake."""
    with override_settings(KAMELEOON={"SITE_CODE": "abcdef1234", "DATA_API_URL": PROXY}):
        assert ours(run_checks()) == []


PROXY = "https://proxy.example/kameleoon/"


# -- middleware (W001, W002) -----------------------------------------------------------------


@override_settings(MIDDLEWARE=[SECURITY, SESSION, COMMON])
def test_missing_middleware() -> None:
    messages = checks.check_middleware()
    assert ids(messages) == ["django_kameleoon.W001"]
    assert OURS in (messages[0].hint or "")
    assert ids(ours(run_checks())) == ["django_kameleoon.W001"], "registered with Django"


@override_settings(MIDDLEWARE=[])
def test_empty_middleware() -> None:
    assert ids(checks.check_middleware()) == ["django_kameleoon.W001"]


@override_settings(MIDDLEWARE=[SECURITY, SUBCLASS, COMMON])
def test_subclass_counts() -> None:
    assert checks.check_middleware() == []


@override_settings(MIDDLEWARE=[SECURITY, "no.such.Middleware", COMMON])
def test_unimportable_entry_is_not_ours() -> None:
    assert ids(checks.check_middleware()) == ["django_kameleoon.W001"]


@pytest.mark.parametrize("early", [FETCH_CACHE, WHOLE_CACHE, UPDATE_CACHE, FLATPAGES, SITE_CACHE])
def test_listed_after_middleware_that_answers_without_us(early: str) -> None:
    with override_settings(MIDDLEWARE=[SECURITY, early, OURS, COMMON]):
        messages = checks.check_middleware()
    assert ids(messages) == ["django_kameleoon.W002"]
    assert early in messages[0].msg
    assert "Move KameleoonMiddleware above it" in (messages[0].hint or "")


@override_settings(MIDDLEWARE=[UPDATE_CACHE, SESSION, OURS, COMMON, FETCH_CACHE])
def test_one_warning_per_misplaced_neighbour() -> None:
    messages = checks.check_middleware()
    assert ids(messages) == ["django_kameleoon.W002"]
    assert UPDATE_CACHE in messages[0].msg
    assert "visitor code to everyone" in (messages[0].hint or "")


RECOMMENDED = [CONDITIONAL_GET, SECURITY, OURS, UPDATE_CACHE, SESSION, LOCALE, COMMON, CSRF]


@override_settings(MIDDLEWARE=[*RECOMMENDED, FETCH_CACHE, FLATPAGES])
def test_recommended_order_passes() -> None:
    """Redirect and error answers (Common, Locale, CSRF) may come after us: none is a page."""
    assert checks.check_middleware() == []


@pytest.mark.parametrize(
    "stack",
    [[CONDITIONAL_GET, SECURITY, OURS, COMMON], [SECURITY, OURS, CONDITIONAL_GET, COMMON]],
    ids=["after", "before"],
)
def test_conditional_get_may_be_on_either_side(stack: list[str]) -> None:
    """A 304 is a page view whoever answers it (tests/test_caching.py): no W003 any more."""
    with override_settings(MIDDLEWARE=stack):
        assert checks.check_middleware() == []


# -- the request context processor (W004) -----------------------------------------------------


def engine(*processors: str, backend: str = DJANGO_TEMPLATES, **extra: Any) -> dict[str, Any]:
    return {"BACKEND": backend, "OPTIONS": {"context_processors": list(processors)}, **extra}


@override_settings(TEMPLATES=[engine("django.contrib.messages.context_processors.messages")])
def test_missing_request_context_processor() -> None:
    messages = checks.check_context_processor()
    assert ids(messages) == ["django_kameleoon.W004"]
    assert "django.template.context_processors.request" in (messages[0].hint or "")


@override_settings(
    TEMPLATES=[
        engine("django.template.context_processors.request"),
        engine(NAME="emails"),
        {"BACKEND": DJANGO_TEMPLATES, "NAME": "bare"},
        engine(backend="django.template.backends.jinja2.Jinja2"),
    ]
)
def test_each_django_engine_is_checked_and_others_ignored() -> None:
    messages = checks.check_context_processor()
    assert ids(messages) == ["django_kameleoon.W004", "django_kameleoon.W004"]
    assert "TEMPLATES[1] (emails)" in messages[0].msg
    assert "TEMPLATES[2] (bare)" in messages[1].msg


@override_settings(TEMPLATES=[])
def test_no_templates_no_warning() -> None:
    assert checks.check_context_processor() == []


# -- uWSGI without threads (E002) ----------------------------------------------------------------


@pytest.fixture
def fake_uwsgi(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Pretend to run inside uWSGI, whose ``uwsgi`` module exists only in its workers."""
    module = SimpleNamespace(opt={})
    monkeypatch.setitem(sys.modules, "uwsgi", module)  # type: ignore[arg-type]
    return module


def test_not_under_uwsgi() -> None:
    assert "uwsgi" not in sys.modules
    assert checks.check_uwsgi_threads() == []


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"enable-threads": b"false"},
        {"enable-threads": b"0"},
        {"threads": b"0"},
        {"threads": b"many"},
        {"enable-threads": [b"true", b"false"]},
        {"master": True, "processes": b"4"},
    ],
)
def test_uwsgi_without_threads_is_an_error(
    fake_uwsgi: SimpleNamespace, options: dict[str, Any]
) -> None:
    fake_uwsgi.opt = options
    messages = checks.check_uwsgi_threads()
    assert ids(messages) == ["django_kameleoon.E002"]
    assert "--enable-threads" in (messages[0].hint or "")
    assert ids(ours(run_checks())) == ["django_kameleoon.E002"], "registered with Django"


@pytest.mark.parametrize(
    "options",
    [
        {"enable-threads": True},
        {"enable-threads": b"true"},
        {"enable-threads": b"1"},
        {"enable-threads": "yes"},
        {"threads": b"4"},
        {"threads": [b"2"]},
        {"enable-threads": [b"false", b"true"]},
    ],
)
def test_uwsgi_with_threads_passes(fake_uwsgi: SimpleNamespace, options: dict[str, Any]) -> None:
    fake_uwsgi.opt = options
    assert checks.check_uwsgi_threads() == []


@pytest.mark.parametrize(
    ("version_info", "problem"),
    [
        ((2, 0, 26, 0, ""), True),
        ((2, 0, 27, 0, ""), False),  # threads always on: --enable-threads changes nothing
        ((2, 1, 0, 0, ""), False),
        (("2", "0", "31"), True),  # not what uWSGI gives: the options decide
        (None, True),
    ],
)
def test_uwsgi_from_2_0_27_always_runs_threads(
    fake_uwsgi: SimpleNamespace, version_info: Any, problem: bool
) -> None:
    fake_uwsgi.version_info = version_info
    assert (lifecycle.uwsgi_threads_problem() is not None) is problem


def test_uwsgi_module_without_opt(fake_uwsgi: SimpleNamespace) -> None:
    del fake_uwsgi.opt
    assert ids(checks.check_uwsgi_threads()) == ["django_kameleoon.E002"]


def test_app_logs_uwsgi_problem_at_startup(
    fake_uwsgi: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    """Checks do not run inside uWSGI workers, so ``ready()`` says it in the log too."""
    with caplog.at_level(logging.ERROR, logger="django_kameleoon"):
        apps.get_app_config("django_kameleoon").ready()
    assert "--enable-threads" in caplog.text
    fake_uwsgi.opt = {"enable-threads": True}
    caplog.clear()
    apps.get_app_config("django_kameleoon").ready()
    assert caplog.text == ""
