"""The ``KAMELEOON`` settings dict: defaults, validation, and a cached, typed view of it.

Settings are read once and cached, because the middleware consults them on every request; the
cache is dropped on Django's ``setting_changed`` so ``override_settings(KAMELEOON=...)`` takes
effect at the next call. Every problem is collected, so a misconfigured site hears about all of
its mistakes at once (``checks.py`` turns them into system check errors).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Literal
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from django_kameleoon import __version__
from django_kameleoon.events import MAX_BODY_BYTES
from django_kameleoon.redaction import DEFAULT_REDACTED_WORDS

__all__ = ["MAX_BODY_BYTES", "Settings", "get_settings", "load_settings"]

BODY_FORMATS = ("json", "query")
SAMESITE_VALUES = ("Lax", "Strict", "None")
SITE_CODE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
COOKIE_NAME_RE = re.compile(r"[A-Za-z0-9!#$&'*+.^_`|~-]+")
BACKEND_ALIASES = {
    "threaded": "django_kameleoon.backends.threaded.ThreadedBackend",
    "sync": "django_kameleoon.backends.sync.SyncBackend",
    "locmem": "django_kameleoon.backends.locmem.LocmemBackend",
    "console": "django_kameleoon.backends.console.ConsoleBackend",
}


@dataclass(frozen=True)
class Settings:
    """The validated ``KAMELEOON`` settings; attribute names are the dict's keys.

    What is derived from them (the endpoint, the compiled exclusions) is computed once per
    settings object, since the middleware needs it on every request.
    """

    SITE_CODE: str = ""
    DATA_API_URL: str = "https://eu-data.kameleoon.io"
    BACKEND: str = BACKEND_ALIASES["threaded"]
    BODY_FORMAT: str = "json"
    USER_AGENT: str = f"django-kameleoon/{__version__}"
    TIMEOUT: float = 5.0
    FLUSH_INTERVAL: float = 1.0
    MAX_BATCH_EVENTS: int = 1000
    MAX_BATCH_BYTES: int = 2_500_000
    MAX_QUEUE_SIZE: int = 10_000
    MAX_RETRIES: int = 5
    RETRY_BACKOFF: float = 0.5
    RETRY_BACKOFF_MAX: float = 30.0
    SHUTDOWN_TIMEOUT: float = 5.0
    TRACK_PAGES: bool = True
    TRACK_STATICDATA: bool = True
    EXCLUDE_PATHS: tuple[str, ...] | None = None
    TRACK_BOTS: bool = False
    CONSENT: str | None = None
    RESPECT_GPC: bool = True
    RESPECT_DNT: bool = False
    COOKIE_NAME: str = "kameleoonVisitorCode"
    COOKIE_DOMAIN: str | None = None
    COOKIE_MAX_AGE: int = 380 * 24 * 60 * 60
    COOKIE_SECURE: bool | None = None
    COOKIE_SAMESITE: Literal["Lax", "Strict", "None"] | None = "Lax"
    GOALS: Mapping[str, int] = field(default_factory=dict)
    REDACT_QUERY_PARAMS: tuple[str, ...] = DEFAULT_REDACTED_WORDS

    @cached_property
    def consent_check(self) -> Callable[[Any], Any] | None:
        """The ``CONSENT`` callable, imported once rather than on every request."""
        from django.utils.module_loading import import_string

        return None if self.CONSENT is None else import_string(self.CONSENT)

    @cached_property
    def redacted_words(self) -> frozenset[str]:
        """``REDACT_QUERY_PARAMS`` lower-cased, ready for ``redaction.redact_url``."""
        return frozenset(word.lower() for word in self.REDACT_QUERY_PARAMS)

    @cached_property
    def events_url(self) -> str:
        """The full endpoint, built once per settings object rather than per request."""
        return self.DATA_API_URL.rstrip("/") + "/visit/events"

    @cached_property
    def exclude_paths_re(self) -> re.Pattern[str]:
        """``EXCLUDE_PATHS`` as one compiled alternation: one regex call per request, not N."""
        patterns = self.EXCLUDE_PATHS if self.EXCLUDE_PATHS is not None else _default_excludes()
        return re.compile("|".join(f"(?:{p})" for p in patterns) or r"(?!)")


def _default_excludes() -> tuple[str, ...]:
    """Static and media URLs (when they are paths on this site), the admin and robot files."""
    prefixes = ["/admin/"]
    for name in ("STATIC_URL", "MEDIA_URL"):
        url = str(getattr(django_settings, name, None) or "")
        if url and not urlsplit(url).netloc:
            prefixes.append(url if url.startswith("/") else "/" + url)
    return (
        *(f"^{re.escape(p)}" for p in prefixes if p != "/"),
        r"^/favicon\.ico$",
        r"^/robots\.txt$",
    )


_Check = Callable[[Any], str | None]


def _is_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be True or False"


def _positive_number(value: Any) -> str | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    return None if ok else "must be a positive number of seconds"


def _non_negative_number(value: Any) -> str | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    return None if ok else "must be a number of seconds, zero or more"


def _positive_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return None if ok else "must be a positive integer"


def _non_negative_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return None if ok else "must be an integer, zero or more"


def _site_code(value: Any) -> str | None:
    if not value:
        return "is required: set it to your Kameleoon project ID (siteCode)"
    if not isinstance(value, str) or not SITE_CODE_RE.fullmatch(value):
        return f"{value!r} is not a Kameleoon project ID (letters, digits, '-' and '_')"
    return None


def _url(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string URL"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"{value!r} is not an http(s) URL such as 'https://eu-data.kameleoon.io'"
    if parts.query or parts.fragment:
        return f"{value!r} must be a base URL without query or fragment"
    return None


def _backend(value: Any) -> str | None:
    if not isinstance(value, str) or "." not in value:
        return f"{value!r} is not a dotted path to a backend class"
    from django.utils.module_loading import import_string

    try:
        import_string(value)
    except ImportError as exc:
        return f"{value!r} cannot be imported: {exc}"
    return None


def _body_format(value: Any) -> str | None:
    return None if value in BODY_FORMATS else f"{value!r} is not one of {BODY_FORMATS}"


def _user_agent(value: Any) -> str | None:
    ok = isinstance(value, str) and value.strip() and value.isprintable()
    return None if ok else "must be a non-empty printable string"


def _batch_bytes(value: Any) -> str | None:
    problem = _positive_int(value)
    if problem is None and value > MAX_BODY_BYTES:
        return f"{value} is over the Data API's body limit of {MAX_BODY_BYTES:,} bytes"
    return problem


def _exclude_paths(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(p, str) for p in value):
        return "must be a list of regular expressions (strings)"
    for pattern in value:
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"{pattern!r} is not a valid regular expression: {exc}"
    return None


def _words(value: Any) -> str | None:
    ok = not isinstance(value, str) and all(isinstance(w, str) and w.isalnum() for w in value)
    return None if ok else "must be a list of words such as ['token', 'email']"


def _optional_dotted_path(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and "." in value):
        return None
    return f"{value!r} is not a dotted path to a callable(request) -> bool"


def _cookie_name(value: Any) -> str | None:
    ok = isinstance(value, str) and COOKIE_NAME_RE.fullmatch(value)
    return None if ok else f"{value!r} is not a valid cookie name"


def _optional_str(value: Any) -> str | None:
    return None if value is None or isinstance(value, str) else "must be a string or None"


def _optional_bool(value: Any) -> str | None:
    return None if value is None or isinstance(value, bool) else "must be True, False or None"


def _samesite(value: Any) -> str | None:
    ok = value is None or value in SAMESITE_VALUES
    return None if ok else f"{value!r} is not one of {SAMESITE_VALUES} or None"


def _goals(value: Any) -> str | None:
    ok = isinstance(value, Mapping) and all(
        isinstance(k, str) and "." in k and isinstance(v, int) and not isinstance(v, bool)
        for k, v in value.items()
    )
    return (
        None
        if ok
        else "must map dotted paths of signals to goal ids, e.g. {'shop.signals.paid': 12}"
    )


_CHECKS: dict[str, _Check] = {
    "SITE_CODE": _site_code,
    "DATA_API_URL": _url,
    "BACKEND": _backend,
    "BODY_FORMAT": _body_format,
    "USER_AGENT": _user_agent,
    "TIMEOUT": _positive_number,
    "FLUSH_INTERVAL": _positive_number,
    "MAX_BATCH_EVENTS": _positive_int,
    "MAX_BATCH_BYTES": _batch_bytes,
    "MAX_QUEUE_SIZE": _positive_int,
    "MAX_RETRIES": _non_negative_int,
    "RETRY_BACKOFF": _non_negative_number,
    "RETRY_BACKOFF_MAX": _non_negative_number,
    "SHUTDOWN_TIMEOUT": _non_negative_number,
    "TRACK_PAGES": _is_bool,
    "TRACK_STATICDATA": _is_bool,
    "EXCLUDE_PATHS": _exclude_paths,
    "TRACK_BOTS": _is_bool,
    "CONSENT": _optional_dotted_path,
    "RESPECT_GPC": _is_bool,
    "RESPECT_DNT": _is_bool,
    "COOKIE_NAME": _cookie_name,
    "COOKIE_DOMAIN": _optional_str,
    "COOKIE_MAX_AGE": _positive_int,
    "COOKIE_SECURE": _optional_bool,
    "COOKIE_SAMESITE": _samesite,
    "GOALS": _goals,
    "REDACT_QUERY_PARAMS": _words,
}


def _merge(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults overlaid with the user's values, with backend aliases spelled out."""
    values = {**asdict(_DEFAULTS), **raw}
    values["BACKEND"] = BACKEND_ALIASES.get(values["BACKEND"], values["BACKEND"])
    for key in ("EXCLUDE_PATHS", "REDACT_QUERY_PARAMS"):
        if values[key] is not None and not isinstance(values[key], str):
            values[key] = tuple(values[key])
    return values


def settings_problems(raw: Any) -> list[str]:
    """Every mistake in a ``KAMELEOON`` value, as ``"KAMELEOON['KEY'] what is wrong"`` lines."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        return ["KAMELEOON must be a dict, e.g. KAMELEOON = {'SITE_CODE': 'abcdef1234'}"]
    problems = [f"KAMELEOON has no setting {key!r}" for key in raw if key not in _CHECKS]
    values = _merge({k: v for k, v in raw.items() if k in _CHECKS})
    for key, check in _CHECKS.items():
        problem = check(values[key])
        if problem:
            problems.append(f"KAMELEOON['{key}'] {problem}")
    return problems


def load_settings(raw: Any) -> Settings:
    """Validate a ``KAMELEOON`` value and build :class:`Settings`, or raise with every problem."""
    problems = settings_problems(raw)
    if problems:
        raise ImproperlyConfigured("; ".join(problems))
    return Settings(**_merge(raw or {}))


_DEFAULTS = Settings()
_current: Settings | None = None


def get_settings() -> Settings:
    """The validated settings of this process, read from Django on first use."""
    global _current
    if _current is None:
        _current = load_settings(getattr(django_settings, "KAMELEOON", None))
    return _current


@receiver(setting_changed)
def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    global _current
    if setting in ("KAMELEOON", "STATIC_URL", "MEDIA_URL"):
        _current = None
