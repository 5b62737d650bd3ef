"""The ``KAMELEOON`` settings dict: defaults, validation, and a cached, typed view of it.

Each setting is declared once, as a field of :class:`Settings` made by :func:`setting`: its type,
its default, the function that validates it and the id of the system check that reports it stand
side by side, so a setting cannot be added without saying how it is validated and reported.
Everything else (the defaults merged under the user's values, the list of problems, the ids that
``checks.py`` reports them under) is derived from those declarations.

Settings are read once and cached, because the middleware consults them on every request; the
cache is dropped on Django's ``setting_changed`` so ``override_settings(KAMELEOON=...)`` takes
effect at the next call. Every problem is collected, so a misconfigured site hears about all of
its mistakes at once (``checks.py`` turns them into system check errors).

The dotted paths a setting names (``CONSENT``, the ``GOALS`` signals) are resolved by the system
check, not when the settings are loaded: at run time one that does not resolve costs only its
own feature, never every other setting. Run-time code meets configuration mistakes in servers
that run no system checks (gunicorn, uvicorn, uWSGI), so it never raises them into a request:
it calls :func:`report_misconfiguration`, which logs each one at ERROR once a minute.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property, lru_cache
from types import MappingProxyType
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import Signal, receiver
from django.utils.module_loading import import_string

from django_kameleoon import __version__
from django_kameleoon.bots import SiteRules
from django_kameleoon.events import MAX_BODY_BYTES, SharedFields
from django_kameleoon.redaction import DEFAULT_REDACTED_PATHS, DEFAULT_REDACTED_WORDS, redact_url

__all__ = [
    "DICT_CHECK_ID",
    "RULES",
    "Problem",
    "Rule",
    "Settings",
    "get_settings",
    "load_settings",
    "report_misconfiguration",
    "resolve_callable",
    "resolve_path",
    "resolve_signal",
    "setting",
    "settings_problems",
]

logger = logging.getLogger("django_kameleoon")

BODY_FORMATS = ("json", "query")
VOCABULARIES = ("kameleoon", "names")
#: Who counts page views: the middleware, the ``{% kameleoon_beacon %}`` image, or each where
#: it applies (the beacon on pages that carry it, the middleware elsewhere).
PAGE_VIEW_MODES = ("middleware", "beacon", "auto")
SAMESITE_VALUES = ("Lax", "Strict", "None")
SITE_CODE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: The Data API's endpoint, below ``DATA_API_URL``.
ENDPOINT_PATH = "/visit/events"
#: ``Settings.url_redactor`` remembers its answers for this many URLs of at most this length:
#: some 1 MB at the most, however many distinct URLs visitors send.
REDACTED_URL_CACHE_SIZE = 1024
REDACTED_URL_CACHE_LENGTH = 512
#: ``Settings.plain_page_fields`` remembers this many pages, of URLs this long together at
#: most: a site's popular pages and their usual referrers, some 2.5 MB at the most. A site
#: whose pages outnumber it has them made anew as they come (an LRU cache, like the others).
PAGE_FIELDS_CACHE_SIZE = 2048
PAGE_FIELDS_CACHE_LENGTH = 512
COOKIE_NAME_RE = re.compile(r"[A-Za-z0-9!#$&'*+.^_`|~-]+")
#: How the durable backends (``CeleryBackend``, ``TasksBackend``) hand batches to their queue.
HANDOFF_MODES = ("batched", "inline")
BACKEND_ALIASES = {
    "threaded": "django_kameleoon.backends.threaded.ThreadedBackend",
    "sync": "django_kameleoon.backends.sync.SyncBackend",
    "locmem": "django_kameleoon.backends.locmem.LocmemBackend",
    "console": "django_kameleoon.backends.console.ConsoleBackend",
}


#: The system-check id of a ``KAMELEOON`` that is not a dict, or that names an unknown setting.
DICT_CHECK_ID = "E003"

Validator = Callable[[Any], str | None]
"""Says what is wrong with a setting's value (the end of ``KAMELEOON['KEY'] ...``), or None."""
Converter = Callable[[Any], Any]
"""Puts a user's value in the form :class:`Settings` holds (a tuple, a full dotted path)."""


def _as_is(value: Any) -> Any:
    """Most settings are held as the user wrote them."""
    return value


@dataclass(frozen=True)
class Rule:
    """What a setting's declaration says besides its type and default.

    ``resolve``, for a value that names something elsewhere (a dotted path), says what is wrong
    with what it names; only the system check runs it (see the module docstring).
    """

    check_id: str
    validate: Validator
    convert: Converter = _as_is
    resolve: Validator | None = None


_RULE = "django_kameleoon"


def setting(
    default: Any,
    *,
    validate: Validator,
    check_id: str,
    convert: Converter = _as_is,
    resolve: Validator | None = None,
) -> Any:
    """Declare one setting: a dataclass field whose metadata carries its :class:`Rule`.

    ``check_id`` is the system check (``E004``, without the app's prefix) that reports a bad value,
    so a site can silence one kind of problem alone. ``convert`` runs on the user's value before
    ``validate``; ``resolve`` on a valid value, in the system check only. A mutable default
    (``{}``) is copied for each :class:`Settings`, as dataclasses require. Returns ``Any`` so
    ``NAME: type = setting(...)`` type-checks as a plain default would.
    """
    metadata = {_RULE: Rule(check_id, validate, convert, resolve)}
    if type(default).__hash__ is None:
        return field(default_factory=lambda: copy.copy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


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
    base = value.rstrip("/")
    if base.endswith(ENDPOINT_PATH):
        # The endpoint's address, copied from Kameleoon's page: the path would be doubled.
        return (
            f"{value!r} is the endpoint's address: use the base URL, "
            f"{base.removesuffix(ENDPOINT_PATH)!r} ({ENDPOINT_PATH} is added to it)"
        )
    return None


def resolve_path(path: str, kind: str, is_kind: Callable[[Any], bool]) -> Any:
    """What a dotted path in the settings names; ImproperlyConfigured, saying why, if it names
    nothing or something that is not ``kind`` (``is_kind`` tells).

    A module that fails while it is imported (a site's own bug) is reported the same way, so
    that neither the system check nor a starting worker dies of it.
    """
    try:
        found = import_string(path)
    except Exception as exc:
        detail = exc if isinstance(exc, ImportError) else f"{type(exc).__name__}: {exc}"
        raise ImproperlyConfigured(f"{path!r} cannot be imported: {detail}") from exc
    if not is_kind(found):
        raise ImproperlyConfigured(f"{path!r} is a {type(found).__name__}, not {kind}")
    return found


def resolve_signal(path: str) -> Signal:
    """The Django signal a ``GOALS`` key names, or ImproperlyConfigured."""
    signal: Signal = resolve_path(path, "a Django Signal", lambda found: isinstance(found, Signal))
    return signal


def resolve_callable(path: str) -> Callable[..., Any]:
    """The function (``CONSENT``) a path names, or ImproperlyConfigured."""
    function: Callable[..., Any] = resolve_path(path, "a callable", callable)
    return function


def _resolve_backend(path: str) -> type:
    """A class with the backend interface (``conf`` sits below ``backends``: no import of it)."""
    cls: type = resolve_path(
        path,
        "a backend class",
        lambda found: isinstance(found, type) and callable(getattr(found, "send", None)),
    )
    return cls


def _path_problem(resolve: Callable[[str], Any], path: str) -> str | None:
    """A resolver's complaint about ``path`` as a validator's message, or None."""
    try:
        resolve(path)
    except ImproperlyConfigured as exc:
        return str(exc)
    return None


def _backend(value: Any) -> str | None:
    if not isinstance(value, str) or "." not in value:
        return f"{value!r} is not a dotted path to a backend class"
    return _path_problem(_resolve_backend, value)


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
    return None if value is None else _searchable_regex_list(value)


def _vocabulary(value: Any) -> str | None:
    return None if value in VOCABULARIES else f"{value!r} is not one of {VOCABULARIES}"


def _page_views(value: Any) -> str | None:
    return None if value in PAGE_VIEW_MODES else f"{value!r} is not one of {PAGE_VIEW_MODES}"


def _regex_list(value: Any) -> str | None:
    """Regexes that each compile: they are tried one by one, so each may carry global flags."""
    if not _is_list(value) or not all(isinstance(p, str) for p in value):
        return "must be a list of regular expressions (strings)"
    for pattern in value:
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"{pattern!r} is not a valid regular expression: {exc}"
    return None


def _searchable_regex_list(value: Any) -> str | None:
    """Regexes that each compile, and compile together: they are searched as one alternation."""
    problem = _regex_list(value)
    if problem is not None:
        return problem
    try:
        re.compile(_any_of(value))
    except re.error as exc:
        return f"cannot be searched as one regular expression: {exc} (rename repeated groups)"
    return None


def _any_of(patterns: Iterable[str]) -> str:
    """One regex that matches where any of ``patterns`` does: one search instead of N."""
    return "|".join(f"(?:{pattern})" for pattern in patterns)


def _word_list(value: Any) -> str | None:
    ok = _is_list(value) and all(isinstance(w, str) and w.isalnum() for w in value)
    return None if ok else "must be a list of words such as ['token', 'email']"


def _optional_names(value: Any) -> str | None:
    ok = value is None or (_is_list(value) and all(isinstance(n, str) and n for n in value))
    return None if ok else "must be None or a list of query parameter names such as ['q', 'page']"


def _optional_dotted_path(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and "." in value):
        return None
    return f"{value!r} is not a dotted path to a callable(request) -> bool"


def _consent_resolves(value: str | None) -> str | None:
    return None if value is None else _path_problem(resolve_callable, value)


def _signals_resolve(value: Mapping[str, int]) -> str | None:
    """Every path that does not name a Django signal, each with why."""
    problems = [_path_problem(resolve_signal, path) for path in value]
    return "; ".join(problem for problem in problems if problem) or None


def _cookie_name(value: Any) -> str | None:
    ok = isinstance(value, str) and COOKIE_NAME_RE.fullmatch(value)
    return None if ok else f"{value!r} is not a valid cookie name"


def _optional_str(value: Any) -> str | None:
    return None if value is None or isinstance(value, str) else "must be a string or None"


def _optional_bool(value: Any) -> str | None:
    return None if value is None or isinstance(value, bool) else "must be True, False or None"


def _optional_seconds(value: Any) -> str | None:
    ok = value is None or _positive_int(value) is None
    return None if ok else "must be a positive whole number of seconds, or None"


def _optional_positive_number(value: Any) -> str | None:
    ok = value is None or _positive_number(value) is None
    return None if ok else "must be a positive number of seconds, or None"


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


def _handoff(value: Any) -> str | None:
    return None if value in HANDOFF_MODES else f"{value!r} is not one of {HANDOFF_MODES}"


def _optional_name(value: Any) -> str | None:
    ok = value is None or (isinstance(value, str) and value.strip() == value and value)
    return None if ok else "must be None or a queue name such as 'kameleoon'"


def _alias(value: Any) -> str | None:
    ok = isinstance(value, str) and value.strip() == value and value
    return None if ok else f"{value!r} is not an alias of Django's TASKS setting, e.g. 'default'"


def _is_list(value: Any) -> bool:
    """A list, tuple or other collection of items; not a string, which is a collection too."""
    return isinstance(value, Iterable) and not isinstance(value, str)


def _backend_path(value: Any) -> Any:
    """A backend alias (``"sync"``) spelled out; anything else is left for the validator."""
    return BACKEND_ALIASES.get(value, value) if isinstance(value, str) else value


def _as_tuple(value: Any) -> Any:
    """A list of patterns or words as a tuple, so :class:`Settings` stays hashable and frozen.

    Anything else (None, a string, a number) is left as it is, for the validator to judge.
    """
    return tuple(value) if _is_list(value) else value


@dataclass(frozen=True)
class Settings:
    """The validated ``KAMELEOON`` settings; attribute names are the dict's keys.

    The fields are the declarations: ``NAME: type = setting(default, validate=..., check_id=...)``.
    A new setting takes the next unused check id, never a used one: sites silence them by id.

    What is derived from them (the endpoint, the compiled exclusions) is computed once per
    settings object, since the middleware needs it on every request.
    """

    SITE_CODE: str = setting("", validate=_site_code, check_id="E001")
    DATA_API_URL: str = setting("https://eu-data.kameleoon.io", validate=_url, check_id="E004")
    BACKEND: str = setting(
        BACKEND_ALIASES["threaded"], validate=_backend, check_id="E005", convert=_backend_path
    )
    BODY_FORMAT: str = setting("json", validate=_body_format, check_id="E006")
    USER_AGENT: str = setting(
        f"django-kameleoon/{__version__}", validate=_user_agent, check_id="E007"
    )
    TIMEOUT: float = setting(5.0, validate=_positive_number, check_id="E008")
    FLUSH_INTERVAL: float = setting(1.0, validate=_positive_number, check_id="E009")
    MAX_BATCH_EVENTS: int = setting(1000, validate=_positive_int, check_id="E010")
    MAX_BATCH_BYTES: int = setting(2_500_000, validate=_batch_bytes, check_id="E011")
    MAX_QUEUE_SIZE: int = setting(10_000, validate=_positive_int, check_id="E012")
    MAX_RETRIES: int = setting(5, validate=_non_negative_int, check_id="E013")
    RETRY_BACKOFF: float = setting(0.5, validate=_non_negative_number, check_id="E014")
    RETRY_BACKOFF_MAX: float = setting(30.0, validate=_non_negative_number, check_id="E015")
    SHUTDOWN_TIMEOUT: float = setting(5.0, validate=_non_negative_number, check_id="E016")
    TRACK_PAGES: bool = setting(True, validate=_is_bool, check_id="E017")
    TRACK_STATICDATA: bool = setting(True, validate=_is_bool, check_id="E018")
    EXCLUDE_PATHS: tuple[str, ...] | None = setting(
        None, validate=_exclude_paths, check_id="E019", convert=_as_tuple
    )
    TRACK_BOTS: bool = setting(False, validate=_is_bool, check_id="E020")
    CONSENT: str | None = setting(
        None, validate=_optional_dotted_path, check_id="E021", resolve=_consent_resolves
    )
    RESPECT_GPC: bool = setting(True, validate=_is_bool, check_id="E022")
    RESPECT_DNT: bool = setting(False, validate=_is_bool, check_id="E023")
    COOKIE_NAME: str = setting("kameleoonVisitorCode", validate=_cookie_name, check_id="E024")
    COOKIE_DOMAIN: str | None = setting(None, validate=_optional_str, check_id="E025")
    COOKIE_MAX_AGE: int = setting(380 * 24 * 60 * 60, validate=_positive_int, check_id="E026")
    COOKIE_SECURE: bool | None = setting(None, validate=_optional_bool, check_id="E027")
    COOKIE_SAMESITE: Literal["Lax", "Strict", "None"] | None = setting(
        "Lax", validate=_samesite, check_id="E028"
    )
    GOALS: Mapping[str, int] = setting(
        {}, validate=_goals, check_id="E029", resolve=_signals_resolve
    )
    REDACT_QUERY_PARAMS: tuple[str, ...] = setting(
        DEFAULT_REDACTED_WORDS, validate=_word_list, check_id="E030", convert=_as_tuple
    )
    KEEP_QUERY_PARAMS: tuple[str, ...] | None = setting(
        None, validate=_optional_names, check_id="E035", convert=_as_tuple
    )
    REDACT_PATHS: tuple[str, ...] = setting(
        DEFAULT_REDACTED_PATHS, validate=_searchable_regex_list, check_id="E036", convert=_as_tuple
    )
    COOKIE_REFRESH_INTERVAL: int | None = setting(
        24 * 60 * 60, validate=_optional_seconds, check_id="E045"
    )
    STATICDATA_VOCABULARY: Literal["kameleoon", "names"] = setting(
        "kameleoon", validate=_vocabulary, check_id="E050"
    )
    BOT_PATTERNS: tuple[str, ...] = setting(
        (), validate=_regex_list, check_id="E051", convert=_as_tuple
    )
    NOT_BOT_PATTERNS: tuple[str, ...] = setting(
        (), validate=_regex_list, check_id="E052", convert=_as_tuple
    )
    FLUSH_TIMEOUT: float = setting(30.0, validate=_positive_number, check_id="E031")
    READ_TIMEOUT_MAX: float | None = setting(
        None, validate=_optional_positive_number, check_id="E032"
    )
    PAGE_VIEWS: Literal["middleware", "beacon", "auto"] = setting(
        "middleware", validate=_page_views, check_id="E070"
    )
    HANDOFF: Literal["batched", "inline"] = setting("batched", validate=_handoff, check_id="E060")
    CELERY_QUEUE: str | None = setting(None, validate=_optional_name, check_id="E061")
    TASKS_BACKEND: str = setting("default", validate=_alias, check_id="E062")
    HANDOFF_TIMEOUT: float = setting(0.25, validate=_positive_number, check_id="E063")

    @cached_property
    def read_timeout_max(self) -> float:
        """The longest wait for an answer from a slow API: ``READ_TIMEOUT_MAX``, by default
        four times ``TIMEOUT``, and never less than ``TIMEOUT``."""
        limit = 4 * self.TIMEOUT if self.READ_TIMEOUT_MAX is None else self.READ_TIMEOUT_MAX
        return max(limit, self.TIMEOUT)

    @cached_property
    def consent_callable(self) -> Callable[[Any], Any] | None:
        """The ``CONSENT`` callable, imported once rather than on every request.

        A path that does not resolve gives a stand-in that raises ``ImproperlyConfigured``
        saying why, so that the failed import is not tried again on every request and the
        caller's one error handler (``visitor``: no consent) covers it too.
        """
        if self.CONSENT is None:
            return None
        try:
            found = resolve_callable(self.CONSENT)
        except ImproperlyConfigured as exc:
            problem = f"KAMELEOON['CONSENT'] {exc}"

            def unresolved(request: Any) -> bool:
                raise ImproperlyConfigured(problem)

            return unresolved
        return found

    @cached_property
    def site_bots(self) -> SiteRules:
        """``BOT_PATTERNS`` and ``NOT_BOT_PATTERNS``, as ``useragent.parse`` takes them."""
        return SiteRules(self.BOT_PATTERNS, self.NOT_BOT_PATTERNS)

    @cached_property
    def redacted_words(self) -> frozenset[str]:
        """``REDACT_QUERY_PARAMS`` lower-cased, ready for ``redaction.redact_url``."""
        return frozenset(word.lower() for word in self.REDACT_QUERY_PARAMS)

    @cached_property
    def url_redactor(self) -> Callable[[str], str]:
        """``redaction.redact_url`` with this site's rules, for every URL an event carries.

        ``KEEP_QUERY_PARAMS`` names are compared lower-case, as the query's decoded names are.
        The answers for URLs up to ``REDACTED_URL_CACHE_LENGTH`` characters are cached: a page
        view redacts two URLs, and pages and referrers repeat (a site's popular pages, a search
        engine's address), while a URL with a query costs some 7 µs to redact. The cache is
        bounded in entries and in the length of what it keeps, so hostile URLs cannot grow it.
        """
        words = self.redacted_words
        names = self.KEEP_QUERY_PARAMS
        keep = None if names is None else frozenset(name.lower() for name in names)
        paths = re.compile(_any_of(self.REDACT_PATHS)) if self.REDACT_PATHS else None

        def redact(url: str) -> str:
            return redact_url(url, words, keep=keep, paths=paths)

        cached = lru_cache(maxsize=REDACTED_URL_CACHE_SIZE)(redact)

        def redactor(url: str) -> str:
            return cached(url) if len(url) <= REDACTED_URL_CACHE_LENGTH else redact(url)

        return redactor

    @cached_property
    def plain_page_fields(self) -> Callable[[str, str | None], dict[str, Any]]:
        """``api.outgoing_fields`` of a PAGE with only an ``href`` and a ``referrerHref``,
        remembered: the middleware's page views, every view of a popular page from its usual
        referrers sharing one dict, made and encoded once (``events.SharedFields``). Only URLs
        within ``PAGE_FIELDS_CACHE_LENGTH`` characters together are remembered, so hostile URLs
        cannot grow it.
        """
        from django_kameleoon.api import outgoing_fields  # api reads the settings from here

        def made(href: str, referrer: str | None) -> dict[str, Any]:
            return outgoing_fields("PAGE", {"href": href, "referrerHref": referrer}, self)

        @lru_cache(maxsize=PAGE_FIELDS_CACHE_SIZE)
        def cached(href: str, referrer: str | None) -> SharedFields:
            return SharedFields(made(href, referrer))

        def fields(href: str, referrer: str | None) -> dict[str, Any]:
            short = len(href) + len(referrer or "") <= PAGE_FIELDS_CACHE_LENGTH
            return cached(href, referrer) if short else made(href, referrer)

        return fields

    @cached_property
    def events_url(self) -> str:
        """The full endpoint, built once per settings object rather than per request."""
        return self.DATA_API_URL.rstrip("/") + ENDPOINT_PATH

    @cached_property
    def exclude_paths_re(self) -> re.Pattern[str]:
        """``EXCLUDE_PATHS`` as one compiled alternation: one regex call per request, not N."""
        patterns = self.EXCLUDE_PATHS if self.EXCLUDE_PATHS is not None else _default_excludes()
        return re.compile(_any_of(patterns) or r"(?!)")


def _default_excludes() -> tuple[str, ...]:
    """Static and media URLs (when they are paths on this site), the admin and robot files;
    the first three under a language prefix too, when the site uses ``i18n_patterns``."""
    prefixes = ["/admin/"]
    for name in ("STATIC_URL", "MEDIA_URL"):
        url = str(getattr(django_settings, name, None) or "")
        if url and not urlsplit(url).netloc:
            prefixes.append(url if url.startswith("/") else "/" + url)
    language = _language_prefix()
    return (
        *(f"^{language}{re.escape(p)}" for p in prefixes if p != "/"),
        r"^/favicon\.ico$",
        r"^/robots\.txt$",
    )


def _language_prefix() -> str:
    """An optional ``/<language>`` of ``LANGUAGES``, as a regex, when the root URLconf uses
    ``i18n_patterns``; else nothing.

    The site's own language codes, not any two letters: without ``i18n_patterns`` a path such
    as ``/my/admin/`` (``my`` is Burmese) is a page of the site like any other.
    """
    from django.conf.urls.i18n import is_language_prefix_patterns_used

    urlconf = getattr(django_settings, "ROOT_URLCONF", None)
    if not urlconf or not is_language_prefix_patterns_used(urlconf)[0]:
        return ""
    codes = sorted({str(code) for code, _name in django_settings.LANGUAGES}, key=len, reverse=True)
    return f"(?:/(?:{'|'.join(map(re.escape, codes))}))?"


def rules_of(cls: type[Any]) -> dict[str, Rule]:
    """Each field's :class:`Rule` by name, in declaration order.

    A field declared without :func:`setting` raises here, at import, rather than going unvalidated.
    """
    rules = {}
    for each in fields(cls):
        if _RULE not in each.metadata:
            raise TypeError(f"{cls.__name__}.{each.name} is not declared with setting()")
        rules[each.name] = each.metadata[_RULE]
    return rules


#: Every setting's rule, read from the declarations in :class:`Settings`.
RULES: Mapping[str, Rule] = MappingProxyType(rules_of(Settings))


class Problem(NamedTuple):
    """One mistake in ``KAMELEOON``, with the id of the system check that reports its kind."""

    check_id: str
    message: str


def _merge(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults overlaid with the user's known settings, each converted as declared."""
    values = {**asdict(_DEFAULTS), **{key: v for key, v in raw.items() if key in RULES}}
    return {key: RULES[key].convert(value) for key, value in values.items()}


def settings_problems(raw: Any, *, resolve: bool = False) -> list[Problem]:
    """Every mistake in a ``KAMELEOON`` value, each as ``"KAMELEOON['KEY'] what is wrong"``.

    ``resolve=True`` (the system check) also resolves what valid values name.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        example = "KAMELEOON = {'SITE_CODE': 'abcdef1234'}"
        return [Problem(DICT_CHECK_ID, f"KAMELEOON must be a dict, e.g. {example}")]
    problems = [
        Problem(DICT_CHECK_ID, f"KAMELEOON has no setting {key!r}")
        for key in raw
        if key not in RULES
    ]
    values = _merge(raw)
    for key, rule in RULES.items():
        message = rule.validate(values[key])
        if not message and resolve and rule.resolve:
            message = rule.resolve(values[key])
        if message:
            problems.append(Problem(rule.check_id, f"KAMELEOON['{key}'] {message}"))
    return problems


def load_settings(raw: Any) -> Settings:
    """Validate a ``KAMELEOON`` value and build :class:`Settings`, or raise with every problem."""
    problems = settings_problems(raw)
    if problems:
        raise ImproperlyConfigured("; ".join(problem.message for problem in problems))
    return Settings(**_merge(raw or {}))


_DEFAULTS = Settings()
_current: Settings | None = None
#: Why the settings are invalid, once found: not validated again on every call until they change.
_invalid: str | None = None


def get_settings() -> Settings:
    """The validated settings of this process, read from Django on first use.

    Raises ``ImproperlyConfigured`` while they are invalid; run-time callers report it with
    :func:`report_misconfiguration` rather than raise it into a request.
    """
    global _current, _invalid
    if _current is None:
        if _invalid is None:
            try:
                _current = load_settings(getattr(django_settings, "KAMELEOON", None))
                return _current
            except ImproperlyConfigured as exc:
                _invalid = f"{exc} (nothing is tracked until this is fixed)"
        raise ImproperlyConfigured(_invalid)
    return _current


#: Seconds before a configuration mistake that lasts is logged again.
MISCONFIGURATION_LOG_INTERVAL = 60.0
#: When each mistake was last logged (``time.monotonic()``); forgotten when the settings change.
_logged: dict[str, float] = {}


def report_misconfiguration(problem: Exception | str) -> None:
    """Log a configuration mistake met at run time, at ERROR: once a minute while it lasts.

    Called instead of raising: a configuration mistake must never fail a request, and gunicorn,
    uvicorn and uWSGI run no system checks, so this log line is where a deploy's mistake shows.
    Once a minute keeps a busy site's log readable; new settings are logged afresh.
    """
    message = str(problem)
    now = time.monotonic()
    last = _logged.get(message)
    if last is not None and now - last < MISCONFIGURATION_LOG_INTERVAL:
        return
    _logged[message] = now
    logger.error("Kameleoon: %s", message)


@receiver(setting_changed)
def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    global _current, _invalid
    if setting in ("KAMELEOON", "STATIC_URL", "MEDIA_URL", "LANGUAGES", "ROOT_URLCONF"):
        _current = _invalid = None
        _logged.clear()
