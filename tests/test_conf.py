"""Settings: declared once, defaults, validation with clear messages, re-reading on override."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_kameleoon import conf
from django_kameleoon.checks import check_settings
from django_kameleoon.conf import (
    RULES,
    Problem,
    Rule,
    Settings,
    get_settings,
    load_settings,
    rules_of,
    setting,
    settings_problems,
)


def test_three_lines_of_settings_give_the_contract_defaults() -> None:
    settings = load_settings({"SITE_CODE": "abcdef1234"})
    assert settings.DATA_API_URL == "https://eu-data.kameleoon.io"
    assert settings.BACKEND == "django_kameleoon.backends.threaded.ThreadedBackend"
    assert settings.BODY_FORMAT == "json"
    assert settings.USER_AGENT.startswith("django-kameleoon/")
    assert (settings.TIMEOUT, settings.FLUSH_INTERVAL) == (5.0, 1.0)
    assert (settings.MAX_BATCH_EVENTS, settings.MAX_BATCH_BYTES) == (1000, 2_500_000)
    assert (settings.MAX_QUEUE_SIZE, settings.MAX_RETRIES, settings.SHUTDOWN_TIMEOUT) == (
        10_000,
        5,
        5.0,
    )
    assert settings.TRACK_PAGES and settings.TRACK_STATICDATA and not settings.TRACK_BOTS
    assert settings.CONSENT is None and settings.RESPECT_GPC and not settings.RESPECT_DNT
    assert settings.COOKIE_NAME == "kameleoonVisitorCode"
    assert settings.COOKIE_MAX_AGE == 380 * 86400
    assert settings.COOKIE_SAMESITE == "Lax" and settings.COOKIE_SECURE is None
    assert settings.events_url == "https://eu-data.kameleoon.io/visit/events"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "SITE_CODE'] is required"),
        ({"SITE_CODE": "a b"}, "is not a Kameleoon project ID"),
        ({"SITE_CODE": "x", "DATA_API_URL": "ftp://host"}, "is not an http(s) URL"),
        ({"SITE_CODE": "x", "DATA_API_URL": "eu-data.kameleoon.io"}, "is not an http(s) URL"),
        ({"SITE_CODE": "x", "MAX_BATCH_BYTES": 3_000_001}, "over the Data API's body limit"),
        ({"SITE_CODE": "x", "BODY_FORMAT": "xml"}, "'xml' is not one of"),
        ({"SITE_CODE": "x", "BACKEND": "nowhere.Backend"}, "cannot be imported"),
        ({"SITE_CODE": "x", "TIMEOUT": 0}, "TIMEOUT'] must be a positive number"),
        ({"SITE_CODE": "x", "TRACK_PAGES": "yes"}, "must be True or False"),
        ({"SITE_CODE": "x", "EXCLUDE_PATHS": ["("]}, "not a valid regular expression"),
        ({"SITE_CODE": "x", "EXCLUDE_PATHS": 5}, "must be a list of regular expressions"),
        ({"SITE_CODE": "x", "EXCLUDE_PATHS": "^/admin/"}, "must be a list of regular expressions"),
        ({"SITE_CODE": "x", "REDACT_QUERY_PARAMS": 5}, "must be a list of words"),
        ({"SITE_CODE": "x", "BACKEND": ["sync"]}, "is not a dotted path to a backend class"),
        ({"SITE_CODE": "x", "COOKIE_SAMESITE": "lax"}, "COOKIE_SAMESITE"),
        ({"SITE_CODE": "x", "SITECODE": "x"}, "KAMELEOON has no setting 'SITECODE'"),
        ("abc", "KAMELEOON must be a dict"),
    ],
)
def test_mistakes_are_named_clearly(raw: Any, message: str) -> None:
    problems = settings_problems(raw)
    assert any(message in problem.message for problem in problems), problems
    with pytest.raises(ImproperlyConfigured, match="KAMELEOON"):
        load_settings(raw)


def test_every_mistake_is_reported_at_once() -> None:
    problems = settings_problems({"DATA_API_URL": "nope", "TIMEOUT": -1})
    assert [problem.check_id for problem in problems] == ["E001", "E004", "E008"]
    with pytest.raises(ImproperlyConfigured) as raised:
        load_settings({"DATA_API_URL": "nope", "TIMEOUT": -1})
    assert str(raised.value) == "; ".join(problem.message for problem in problems)


def test_backend_aliases_are_spelled_out() -> None:
    assert load_settings({"SITE_CODE": "x", "BACKEND": "sync"}).BACKEND.endswith("SyncBackend")


def test_override_settings_takes_effect_at_the_next_call() -> None:
    before = get_settings()
    with override_settings(KAMELEOON={"SITE_CODE": "othersite1", "TIMEOUT": 1.5}):
        assert get_settings().SITE_CODE == "othersite1"
        assert get_settings().TIMEOUT == 1.5
    assert get_settings() == before


def test_default_exclusions_follow_static_and_media_urls() -> None:
    with override_settings(STATIC_URL="/assets/", MEDIA_URL="/uploads/"):
        pattern = load_settings({"SITE_CODE": "x"}).exclude_paths_re
        for path in ("/assets/app.css", "/uploads/a.png", "/admin/", "/favicon.ico", "/robots.txt"):
            assert pattern.search(path), path
        for path in ("/", "/products/assets/", "/robots.txt.html", "/administration"):
            assert not pattern.search(path), path


def test_checks_report_each_problem_as_an_error() -> None:
    with override_settings(KAMELEOON={"DATA_API_URL": "nope"}):
        errors = check_settings()
    assert [e.id for e in errors] == ["django_kameleoon.E001", "django_kameleoon.E004"]
    assert "SITE_CODE" in errors[0].msg and "DATA_API_URL" in errors[1].msg


def test_a_valid_configuration_passes_the_checks() -> None:
    assert check_settings() == []
    assert isinstance(get_settings(), Settings)


# -- one declaration per setting ---------------------------------------------------------------


def test_every_field_is_a_declared_setting() -> None:
    assert list(RULES) == [field.name for field in dataclasses.fields(Settings)]


def test_a_field_declared_without_setting_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Partly:
        DECLARED: int = setting(1, validate=lambda value: None, check_id="E999")
        PLAIN: int = 2

    with pytest.raises(TypeError, match=r"Partly\.PLAIN is not declared with setting\(\)"):
        rules_of(Partly)


def test_problems_are_found_by_the_declared_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    never_right = Rule("E999", lambda value: "is never right")
    monkeypatch.setattr(conf, "RULES", {**conf.RULES, "TIMEOUT": never_right})
    assert settings_problems({"SITE_CODE": "abcdef1234"}) == [
        Problem("E999", "KAMELEOON['TIMEOUT'] is never right")
    ]


def test_a_mutable_default_is_not_shared() -> None:
    assert Settings().GOALS == {} and Settings().GOALS is not Settings().GOALS
