"""Turn a User-Agent header into what Kameleoon's STATICDATA event wants.

Kameleoon asks for ``browser``, ``browserVersion`` (a number), ``os`` and ``deviceType``
(``DESKTOP``/``TABLET``/``PHONE``), and the middleware needs to know whether the client is a bot.

The *classification* (phone, tablet, desktop, bot) is user-agents' own: its ``is_tablet``,
``is_mobile`` and ``is_bot`` properties are what Python sites have used for a decade, and
reimplementing them would only produce a second, subtly different answer. What we replace is the
*parsing* underneath: ``user_agents.parse`` goes through ua-parser's legacy
``user_agent_parser.Parse``, which tries several hundred Python regexes one after the other
(about half a millisecond for every string it has not seen). ua-parser 1.0's ``regex`` resolver
runs the same regexes.yaml rules in Rust (ua-parser-rs) in a few microseconds, so we feed its result
into a ``user_agents.parsers.UserAgent`` built without its ``__init__``.

This module is the lowest layer of the package: plain data and rules, no Django, no I/O.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final, Literal

import ua_parser
from ua_parser import Domain, Parser, Resolver, load_builtins, load_lazy_builtins
from user_agents.parsers import (  # type: ignore[import-untyped, unused-ignore]
    UserAgent,
    parse_browser,
    parse_device,
    parse_operating_system,
)

__all__ = [
    "CACHE_SIZE",
    "MAX_UA_LENGTH",
    "PARSER",
    "RESOLVER",
    "DeviceType",
    "UserAgentInfo",
    "parse",
]

DeviceType = Literal["DESKTOP", "TABLET", "PHONE"]

#: Only this many leading characters of a User-Agent are parsed (and used as the cache key).
#: Real headers are 100-300 characters; clipping makes a 10 kB header cost no more than a normal
#: one, and stops a flood of huge distinct headers from filling memory through the cache.
MAX_UA_LENGTH: Final = 512

#: Distinct (clipped) User-Agent strings remembered per process. A site sees a long tail of UAs
#: but a few hundred account for most requests; 10,000 entries is a few megabytes at most.
CACHE_SIZE: Final = 10_000

#: ua-parser's family for "no rule matched"; we report it as ``None`` (Kameleoon's fields are
#: optional, and "Other" is not a browser or an OS).
_UNKNOWN: Final = "Other"


def _make_resolver() -> Resolver:
    """Build the fastest resolver available over ua-parser-builtins' regexes.yaml rules.

    ``ua_parser.RegexResolver`` is ``ua_parser.regex.Resolver`` when ua-parser-rs is installed
    (the ``ua-parser[regex]`` extra we depend on). It compiles the rules itself, so it is given the
    *lazy* matchers, which do not compile a Python regex per rule at start-up; the pure-Python
    fallback is given the eager ones, as ua-parser's own default parser does.

    ua-parser's global parser also wraps its resolver in an S3-FIFO cache; we do not, since
    :func:`parse` caches the finished result and a second cache below it would only cost memory.
    """
    if ua_parser.RegexResolver is not None:
        return ua_parser.RegexResolver(load_lazy_builtins())
    if ua_parser.Re2Resolver is not None:  # pragma: no cover - only without ua-parser-rs
        return ua_parser.Re2Resolver(load_lazy_builtins())
    return ua_parser.BestAvailableResolver(load_builtins())  # pragma: no cover


#: Built once at import (0.1-0.2 s), so no request pays for it and no lock is needed.
RESOLVER: Final[Resolver] = _make_resolver()
PARSER: Final[Parser] = Parser(RESOLVER)


@dataclass(frozen=True, slots=True)
class UserAgentInfo:
    """What Kameleoon's STATICDATA event and the bot filter need from one User-Agent.

    Frozen, so one instance can be shared by every request that sends the same header.
    """

    browser: str | None
    """Browser family, e.g. ``"Chrome"``, ``"Mobile Safari"``; ``None`` when unknown."""
    browser_version: float | None
    """``major.minor`` as a number (``120.0``, ``16.3``), as the API's float64 field wants."""
    os: str | None
    """OS family, e.g. ``"Windows"``, ``"Mac OS X"``, ``"iOS"``; ``None`` when unknown."""
    device_type: DeviceType
    """Kameleoon's ``deviceType``: ``"DESKTOP"``, ``"TABLET"`` or ``"PHONE"``."""
    is_bot: bool
    """True for crawlers and spiders (user-agents' ``is_bot``: ua-parser's ``Spider`` device)."""


def parse(ua_string: str) -> UserAgentInfo:
    """Parse a User-Agent header, from a per-process cache when it was seen before.

    Only the first :data:`MAX_UA_LENGTH` characters are looked at. An empty string is an unknown
    desktop browser that is not a bot. Raises :class:`TypeError` for anything but a ``str``
    (a ``bytes`` header is a bug in the caller, not something to guess the encoding of).
    """
    if not isinstance(ua_string, str):
        raise TypeError(f"User-Agent must be a str, not {type(ua_string).__name__}")
    # Slicing also turns a str subclass into a plain str, so the cache key is always a str.
    return _parse_cached(ua_string[:MAX_UA_LENGTH])


@functools.lru_cache(maxsize=CACHE_SIZE)
def _parse_cached(ua_string: str) -> UserAgentInfo:
    """Do the work of :func:`parse`; bounded LRU, so memory stays flat under any traffic."""
    ua = _user_agent(ua_string)
    if ua.is_tablet:
        device_type: DeviceType = "TABLET"
    elif ua.is_mobile:
        device_type = "PHONE"
    else:
        device_type = "DESKTOP"
    browser: str = ua.browser.family
    os_family: str = ua.os.family
    return UserAgentInfo(
        browser=None if browser == _UNKNOWN else browser,
        browser_version=_browser_version(ua.browser.version),
        os=None if os_family == _UNKNOWN else os_family,
        device_type=device_type,
        is_bot=bool(ua.is_bot),
    )


def _user_agent(ua_string: str) -> UserAgent:
    """Build a ``user_agents.parsers.UserAgent`` from the fast resolver's result.

    ``UserAgent.__init__`` would call the slow legacy parser, so the object is created with
    ``__new__`` and given the four attributes its properties read (``ua_string``, ``os``,
    ``browser``, ``device``), made by user-agents' own ``parse_*`` helpers from the same fields
    the legacy ``Parse`` dict would hold: ``"Other"`` for an unmatched family, ``None`` for absent
    parts. Everything user-agents then decides (``is_tablet``, ``is_mobile``, ``is_pc``,
    ``is_bot``) is unchanged.
    """
    try:
        result = RESOLVER(ua_string, Domain.ALL)
    except UnicodeEncodeError:
        # ua-parser-rs takes UTF-8; a lone surrogate (never a real header, but a str can hold
        # one) cannot be encoded. Parse a lossy copy rather than fail the request.
        result = RESOLVER(ua_string.encode("utf-8", "replace").decode("utf-8"), Domain.ALL)
    ua: UserAgent = UserAgent.__new__(UserAgent)
    ua.ua_string = ua_string
    if (b := result.user_agent) is not None:
        ua.browser = parse_browser(b.family, _part(b.major), _part(b.minor), _part(b.patch))
    else:
        ua.browser = parse_browser(_UNKNOWN)
    if (o := result.os) is not None:
        ua.os = parse_operating_system(o.family, _part(o.major), _part(o.minor), _part(o.patch))
    else:
        ua.os = parse_operating_system(_UNKNOWN)
    if (d := result.device) is not None:
        ua.device = parse_device(d.family, d.brand, d.model)
    else:
        ua.device = parse_device(_UNKNOWN, None, None)
    return ua


def _part(part: str | None) -> str | None:
    """Drop a version part that would crash user-agents' ``int()`` conversion.

    user-agents converts every part for which ``str.isdigit()`` is true with ``int()``, but
    ``isdigit()`` also accepts superscripts such as ``"²"`` that ``int()`` refuses, and some rules
    capture ``[^ ]+``. ``user_agents.parse("ArcGIS Pro 1.2.²")`` raises ``ValueError``; a request
    must never fail over its User-Agent, so such a part is treated as absent.
    """
    if part is not None and part.isdigit() and not part.isdecimal():
        return None
    return part


def _browser_version(version: tuple[int | str, ...]) -> float | None:
    """``major.minor`` of a user-agents version tuple as a finite float, else ``None``.

    user-agents turns all-digit parts into ints and leaves the rest as strings (``"0b1"``).
    Only ASCII-digit parts count, and absurdly long ones (which would overflow to ``inf``,
    not valid JSON) are refused.
    """
    if not version or not isinstance(version[0], int) or version[0] >= 10**9:
        return None
    major = version[0]
    minor = version[1] if len(version) > 1 else None
    if isinstance(minor, int) and minor < 10**9:
        return float(f"{major}.{minor}")
    return float(major)
