"""Turn a User-Agent header into what Kameleoon's STATICDATA event wants, and tell bots apart.

Kameleoon asks for ``browser``, ``browserVersion`` (a number), ``os`` and ``deviceType``
(``DESKTOP``/``TABLET``/``PHONE``), and the middleware needs to know whether the client is a bot.

The *classification* (phone, tablet, desktop) starts from user-agents' own: its ``is_tablet`` and
``is_mobile`` properties are what Python sites have used for a decade, and reimplementing them
would only produce a second, subtly different answer. Four corrections, measured against the
header's own words, are applied on top (:func:`_device_type`). What we replace is the *parsing*
underneath: ``user_agents.parse`` goes through ua-parser's legacy ``user_agent_parser.Parse``,
which tries several hundred Python regexes one after the other (about half a millisecond for
every string it has not seen). ua-parser 1.0's ``regex`` resolver runs the same regexes.yaml
rules in Rust (ua-parser-rs) in a few microseconds, so we feed its result into a
``user_agents.parsers.UserAgent`` built without its ``__init__``.

Whether the client is a bot is :mod:`django_kameleoon.bots`' decision (isbot's list), then the
site's own ``SiteRules``. ua-parser's "Spider" device (user-agents' ``is_bot``) is not used: on
our corpus it found no bot that isbot's list missed, and took one more browser for a bot.

Kameleoon's own vocabulary (:data:`BROWSER_INDEX`, :data:`OS_INDEX`: what its official SDK sends)
is mapped here too, next to the families it is mapped from; the README's "STATICDATA" section
gives the table and the reason for each row that is not obvious. Everything is computed once
per distinct header and cached.

This module is the lowest layer of the package: plain data and rules, no Django, no I/O.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Final, Literal

import ua_parser
from ua_parser import Domain, Parser, Resolver, load_builtins, load_lazy_builtins
from user_agents.parsers import (  # type: ignore[import-untyped, unused-ignore]
    TABLET_DEVICE_FAMILIES,
    UserAgent,
    parse_browser,
    parse_device,
    parse_operating_system,
)

from django_kameleoon import bots
from django_kameleoon.bots import NO_SITE_RULES, SiteRules

__all__ = [
    "BROWSER_INDEX",
    "CACHE_SIZE",
    "KAMELEOON_BROWSERS",
    "MAX_UA_LENGTH",
    "OS_INDEX",
    "PARSER",
    "RESOLVER",
    "DeviceType",
    "UserAgentInfo",
    "browser_version",
    "kameleoon_os",
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


#: Kameleoon's browsers and their ``browserIndex`` (kameleoon-client-python's ``BrowserType``).
BROWSER_INDEX: Final[Mapping[str, int]] = {
    "CHROME": 0,
    "INTERNET_EXPLORER": 1,
    "FIREFOX": 2,
    "SAFARI": 3,
    "OPERA": 4,
    "OTHER": 5,
}

#: Kameleoon's operating systems and their ``osIndex`` (the SDK's ``OperatingSystemType``).
OS_INDEX: Final[Mapping[str, int]] = {
    "WINDOWS": 0,
    "MAC": 1,
    "IOS": 2,
    "LINUX": 3,
    "ANDROID": 4,
    "WINDOWS_PHONE": 5,
}

#: ua-parser browser families that are one of Kameleoon's named browsers; every other family
#: (Edge, Samsung Internet, in-app browsers, WebViews, ...) is ``OTHER``. A family counts as
#: the browser its maker ships, whatever engine it runs: Chrome on iOS is Chrome.
KAMELEOON_BROWSERS: Final[Mapping[str, str]] = {
    **dict.fromkeys(
        ("Chrome", "Chrome Mobile", "Chrome Mobile iOS", "Chromium", "Brave"), "CHROME"
    ),
    **dict.fromkeys(("IE", "IE Mobile", "IE Large Screen"), "INTERNET_EXPLORER"),
    **dict.fromkeys(
        ("Firefox", "Firefox Mobile", "Firefox iOS", "Firefox Beta", "Firefox Alpha"), "FIREFOX"
    ),
    **dict.fromkeys(("Safari", "Mobile Safari"), "SAFARI"),
    **dict.fromkeys(
        (
            "Opera",
            "Opera Mobile",
            "Opera Mini",
            "Opera Touch",
            "Opera GX",
            "Opera Coast",
            "Opera Neon",
            "Opera Tablet",
        ),
        "OPERA",
    ),
}

#: ua-parser OS families that are one of Kameleoon's six; any other OS is left out.
_KAMELEOON_OSES: Final[Mapping[str, str]] = {
    "Windows": "WINDOWS",
    "Mac OS X": "MAC",
    "iOS": "IOS",
    "Android": "ANDROID",
    "Windows Phone": "WINDOWS_PHONE",
    **dict.fromkeys(
        (
            "Linux",
            "Chrome OS",
            "Ubuntu",
            "Kubuntu",
            "Debian",
            "Fedora",
            "Red Hat",
            "CentOS",
            "SUSE",
            "openSUSE",
            "Mageia",
            "Mandriva",
            "Gentoo",
            "Arch Linux",
            "Slackware",
            "PCLinuxOS",
            "Linux Mint",
            "Mint",
        ),
        "LINUX",
    ),
}

#: HarmonyOS 2-4 runs Android apps and says so in its header ("Android 12; HarmonyOS");
#: ua-parser reads some of its headers as Linux. HarmonyOS NEXT ("OpenHarmony") is not Android.
_HARMONY_OS: Final = re.compile(r"HarmonyOS(?!.*OpenHarmony)|(?<!Open)Harmony", re.IGNORECASE)

#: A phone's header says so: Chrome and Firefox on Android write "Mobile" on phones only, Opera
#: "Opera Mobi" or "Opera Mini" (MDN: look for "Mobi" to tell a phone).
_PHONE_WORD: Final = re.compile(r"Mobi|Opera Mini")

#: A version part as Kameleoon can use it: ASCII digits, short enough to stay a finite float.
_MAJOR: Final = re.compile(r"[0-9]{1,9}")
#: A minor of four digits or more is a build number (Edge on iOS: ``EdgiOS/131.2903.68``).
_MINOR: Final = re.compile(r"[0-9]{1,3}")


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
    """``major.minor`` as a number (``120.0``, ``16.3``): see :func:`browser_version`."""
    os: str | None
    """OS family, e.g. ``"Windows"``, ``"Mac OS X"``, ``"iOS"``; ``None`` when unknown."""
    device_type: DeviceType
    """Kameleoon's ``deviceType``: ``"DESKTOP"``, ``"TABLET"`` or ``"PHONE"``."""
    is_bot: bool
    """True for crawlers, scripts, monitors and an empty header: not a person (``bots``)."""
    kameleoon_browser: str = "OTHER"
    """The browser in Kameleoon's words: a key of :data:`BROWSER_INDEX`."""
    kameleoon_os: str | None = None
    """The OS in Kameleoon's words, a key of :data:`OS_INDEX`; ``None`` outside those six."""
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        values = tuple(getattr(self, each.name) for each in fields(self) if each.compare)
        object.__setattr__(self, "_hash", hash(values))

    def __hash__(self) -> int:
        # Hashed on every page view (``pageview.static_fields`` is cached on it): once, here,
        # rather than its seven fields again each time.
        return self._hash


def parse(ua_string: str, site: SiteRules = NO_SITE_RULES) -> UserAgentInfo:
    """Parse a User-Agent header, from a per-process cache when it was seen before.

    Only the first :data:`MAX_UA_LENGTH` characters are looked at. An empty (or blank) header
    is an unknown desktop client and a bot: a person's browser always sends one. ``site`` is
    the site's own ``BOT_PATTERNS`` and ``NOT_BOT_PATTERNS``; the cache is keyed on it too, so
    changed settings take effect at once. Raises :class:`TypeError` for anything but a ``str``
    (a ``bytes`` header is a bug in the caller, not something to guess the encoding of).
    """
    if not isinstance(ua_string, str):
        raise TypeError(f"User-Agent must be a str, not {type(ua_string).__name__}")
    # Slicing also turns a str subclass into a plain str, so the cache key is always a str.
    return _parse_cached(ua_string[:MAX_UA_LENGTH], site)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _parse_cached(ua_string: str, site: SiteRules) -> UserAgentInfo:
    """Do the work of :func:`parse`; bounded LRU, so memory stays flat under any traffic."""
    ua, version = _user_agent(ua_string)
    browser: str = ua.browser.family
    os_family: str = ua.os.family
    listed = not ua_string.strip() or bots.is_bot(ua_string)
    return UserAgentInfo(
        browser=None if browser == _UNKNOWN else browser,
        browser_version=browser_version(*version),
        os=None if os_family == _UNKNOWN else os_family,
        device_type=_device_type(ua),
        is_bot=site.decide(ua_string, listed),
        kameleoon_browser=KAMELEOON_BROWSERS.get(browser, "OTHER"),
        kameleoon_os=kameleoon_os(os_family, ua_string),
    )


def _device_type(ua: UserAgent) -> DeviceType:
    """user-agents' phone, tablet or desktop, corrected where the header says otherwise.

    user-agents takes an Android header without "Mobile Safari" for a tablet, so Opera Mini,
    Opera Mobile and DuckDuckGo on Android phones ("Mobile DuckDuckGo/5 Safari") became
    tablets; it takes every Firefox on Android for a phone, though Firefox on a tablet writes
    "Android 14; Tablet"; and it does not know KaiOS, a phone OS.
    """
    header: str = ua.ua_string
    if ua.os.family == "KaiOS":
        return "PHONE"
    if ua.browser.family == "Firefox Mobile" and "; Tablet;" in header:
        return "TABLET"
    if ua.is_tablet:
        # Only a tablet for want of "Mobile Safari", not for its device: the header decides.
        by_words = ua.os.family == "Android" and ua.device.family not in TABLET_DEVICE_FAMILIES
        return "PHONE" if by_words and _PHONE_WORD.search(header) else "TABLET"
    return "PHONE" if ua.is_mobile else "DESKTOP"


def kameleoon_os(os_family: str, ua_string: str) -> str | None:
    """The OS in Kameleoon's words (a key of :data:`OS_INDEX`), or None outside its six."""
    if _HARMONY_OS.search(ua_string):
        return "ANDROID"
    return _KAMELEOON_OSES.get(os_family)


def browser_version(major: str | None, minor: str | None) -> float | None:
    """``major.minor`` as the header writes them, as the float Kameleoon's field wants.

    ``Opera Mini/9.80`` is 9.8 and ``5.05`` is 5.05 (not 5.5): the digits after the dot are
    read as written. A "minor" of four digits or more is a build number, not a minor
    (``EdgiOS/131.2903.68`` is 131.0). A major that is not ASCII digits (``"²"``, ``"0b1"``)
    gives None, and so does an absurdly long one.
    """
    if major is None or not _MAJOR.fullmatch(major):
        return None
    if minor is not None and _MINOR.fullmatch(minor):
        return float(f"{major}.{minor}")
    return float(major)


def _user_agent(ua_string: str) -> tuple[UserAgent, tuple[str | None, str | None]]:
    """Build a ``user_agents.parsers.UserAgent`` from the fast resolver's result.

    ``UserAgent.__init__`` would call the slow legacy parser, so the object is created with
    ``__new__`` and given the four attributes its properties read (``ua_string``, ``os``,
    ``browser``, ``device``), made by user-agents' own ``parse_*`` helpers from the same fields
    the legacy ``Parse`` dict would hold: ``"Other"`` for an unmatched family, ``None`` for absent
    parts. Everything user-agents then decides (``is_tablet``, ``is_mobile``, ``is_pc``,
    ``is_bot``) is unchanged. The browser's major and minor are returned as written too, since
    user-agents turns ``"05"`` into ``5``.
    """
    try:
        result = RESOLVER(ua_string, Domain.ALL)
    except UnicodeEncodeError:
        # ua-parser-rs takes UTF-8; a lone surrogate (never a real header, but a str can hold
        # one) cannot be encoded. Parse a lossy copy rather than fail the request.
        result = RESOLVER(ua_string.encode("utf-8", "replace").decode("utf-8"), Domain.ALL)
    ua: UserAgent = UserAgent.__new__(UserAgent)
    ua.ua_string = ua_string
    version: tuple[str | None, str | None] = (None, None)
    if (b := result.user_agent) is not None:
        ua.browser = parse_browser(b.family, _part(b.major), _part(b.minor), _part(b.patch))
        version = (b.major, b.minor)
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
    return ua, version


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
