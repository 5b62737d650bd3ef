"""Tests for django_kameleoon.useragent: plain data, no Django needed."""

from __future__ import annotations

import dataclasses

import pytest
import ua_parser.regex
import user_agents  # type: ignore[import-untyped, unused-ignore]

from django_kameleoon import useragent
from django_kameleoon.useragent import MAX_UA_LENGTH, UserAgentInfo, parse
from tests.support import (
    ANDROID_PHONE,
    ANDROID_TABLET,
    BINGBOT,
    CHROME,
    FIREFOX_LINUX,
    GOOGLEBOT,
    IPAD,
    IPHONE,
    SAFARI_MAC,
)

FIREFOX_UBUNTU = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0"
EDGE_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91"
)
OPERA_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Safari/537.36 OPR/105.0.0.0"
)
CHROME_OS = (
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
IE11 = "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko"
IPHONE_CHROME = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1"
)
SAMSUNG_PHONE = (
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36"
)
FIREFOX_ANDROID = "Mozilla/5.0 (Android 14; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0"
WINDOWS_PHONE = (
    "Mozilla/5.0 (Mobile; Windows Phone 8.1; Android 4.0; ARM; Trident/7.0; Touch; rv:11.0; "
    "IEMobile/11.0; NOKIA; Lumia 635) like iPhone OS 7_0_3 Mac OS X AppleWebKit/537 "
    "(KHTML, like Gecko) Mobile Safari/537"
)
OPERA_MINI = (
    "Opera/9.80 (J2ME/MIDP; Opera Mini/9.80 (S60; SymbOS; Opera Mobi/23.348; U; en) "
    "Presto/2.5.25 Version/10.54"
)
GALAXY_TAB_S7 = (
    "Mozilla/5.0 (Linux; Android 11; SM-T870) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/110.0.5481.153 Safari/537.36"
)
NEXUS_9 = (
    "Mozilla/5.0 (Linux; Android 7.0; Nexus 9 Build/NRD90R) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/58.0.3029.83 Safari/537.36"
)
KINDLE_FIRE = (
    "Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Silk/118.4.1 like Chrome/118.0.5993.144 Safari/537.36"
)
PLAYBOOK = (
    "Mozilla/5.0 (PlayBook; U; RIM Tablet OS 2.1.0; en-US) AppleWebKit/536.2+ "
    "(KHTML, like Gecko) Version/7.2.1.0 Safari/536.2+"
)
GOOGLEBOT_SMARTPHONE = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.6099.71 Mobile Safari/537.36 "
    "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)
YANDEXBOT = "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)"
AHREFSBOT = "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)"
FACEBOOK = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"
CURL = "curl/8.4.0"
CONTROL_CHARS = "Mozilla/5.0\x00\x01\x1f\x7f (Windows NT 10.0)\r\n\t"


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        pytest.param(
            CHROME,
            UserAgentInfo("Chrome", 120.0, "Windows", "DESKTOP", is_bot=False),
            id="chrome-windows",
        ),
        pytest.param(
            SAFARI_MAC,
            UserAgentInfo("Safari", 16.3, "Mac OS X", "DESKTOP", is_bot=False),
            id="safari-macos",
        ),
        pytest.param(
            FIREFOX_LINUX,
            UserAgentInfo("Firefox", 121.0, "Linux", "DESKTOP", is_bot=False),
            id="firefox-linux",
        ),
        pytest.param(
            IPHONE,
            UserAgentInfo("Mobile Safari", 17.1, "iOS", "PHONE", is_bot=False),
            id="iphone-safari",
        ),
        pytest.param(
            ANDROID_PHONE,
            UserAgentInfo("Chrome Mobile", 120.0, "Android", "PHONE", is_bot=False),
            id="android-chrome-phone",
        ),
        pytest.param(
            IPAD,
            UserAgentInfo("Mobile Safari", 16.6, "iOS", "TABLET", is_bot=False),
            id="ipad",
        ),
        pytest.param(
            GALAXY_TAB_S7,
            UserAgentInfo("Chrome", 110.0, "Android", "TABLET", is_bot=False),
            id="galaxy-tab-sm-t",
        ),
        pytest.param(
            NEXUS_9,
            UserAgentInfo("Chrome", 58.0, "Android", "TABLET", is_bot=False),
            id="nexus-9",
        ),
        pytest.param(
            GOOGLEBOT,
            UserAgentInfo("Googlebot", 2.1, None, "DESKTOP", is_bot=True),
            id="googlebot",
        ),
        pytest.param(
            BINGBOT,
            UserAgentInfo("bingbot", 2.0, None, "DESKTOP", is_bot=True),
            id="bingbot",
        ),
    ],
)
def test_known_user_agents(ua: str, expected: UserAgentInfo) -> None:
    assert parse(ua) == expected


def test_googlebot_smartphone_is_a_bot_on_a_phone() -> None:
    info = parse(GOOGLEBOT_SMARTPHONE)
    assert info.is_bot
    assert info.device_type == "PHONE"


def test_empty_string_is_an_unknown_desktop_not_a_bot() -> None:
    assert parse("") == UserAgentInfo(None, None, None, "DESKTOP", is_bot=False)


def test_control_characters_are_harmless() -> None:
    info = parse(CONTROL_CHARS)
    assert info.os == "Windows"
    assert info.device_type == "DESKTOP"
    assert not info.is_bot


def test_lone_surrogate_does_not_raise() -> None:
    # ua-parser-rs wants UTF-8; a str can still hold an unpaired surrogate.
    info = parse("Mozilla/5.0 \ud800 Chrome/1.2")
    assert info.browser == "Chrome"
    assert info.browser_version == 1.2


def test_non_decimal_digit_in_version_does_not_raise() -> None:
    # user_agents.parse() itself raises ValueError here (int("²")); we must not.
    with pytest.raises(ValueError, match="invalid literal"):
        user_agents.parse("ArcGIS Pro 1.2.²")
    info = parse("ArcGIS Pro 1.2.²")
    assert info.browser == "ArcGIS Pro"
    assert info.browser_version == 1.2


def test_huge_user_agent_is_clipped() -> None:
    huge = CHROME + " " + "x" * 10_000
    assert parse(huge) == parse(CHROME)
    # The cache is keyed on the clipped string, so two huge headers that differ only past the
    # limit share one entry instead of each holding 10 kB.
    assert parse(huge) is parse(huge[:MAX_UA_LENGTH] + "y" * 5_000)


def test_huge_garbage_is_unknown() -> None:
    info = parse("\x00" * 10_000 + CHROME)
    assert info == UserAgentInfo(None, None, None, "DESKTOP", is_bot=False)


@pytest.mark.parametrize("bad", [None, b"Mozilla/5.0", 42, ["Mozilla/5.0"]])
def test_non_str_raises_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="must be a str"):
        parse(bad)  # type: ignore[arg-type]


def test_str_subclass_is_accepted() -> None:
    class Header(str):
        pass

    assert parse(Header(CHROME)) == parse(CHROME)


def test_repeated_string_returns_the_cached_object() -> None:
    ua = CHROME.replace("120.0.0.0", "120.0.4242.0")
    first = parse(ua)
    assert parse(ua) is first
    # An equal string built separately (a different object) hits the same entry.
    assert parse("".join(list(ua))) is first


def test_cache_is_bounded() -> None:
    info = useragent._parse_cached.cache_info()
    assert info.maxsize is not None
    assert 0 < info.maxsize <= 100_000


def test_result_is_frozen() -> None:
    info = parse(CHROME)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.browser = "Firefox"  # type: ignore[misc]


def test_fast_resolver_is_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """ua-parser-rs's resolver, and parse() goes through it (not the legacy Python parser)."""
    fast = useragent.RESOLVER
    assert isinstance(fast, ua_parser.regex.Resolver)
    asked: list[str] = []

    def resolver(ua: str, domain: ua_parser.Domain) -> ua_parser.PartialResult:
        asked.append(ua)
        return fast(ua, domain)

    monkeypatch.setattr(useragent, "RESOLVER", resolver)
    ua = CHROME.replace("120.0.0.0", "120.0.4343.0")  # not cached by another test
    assert parse(ua).browser == "Chrome"
    assert asked == [ua]


def test_the_public_parser_parses() -> None:
    assert useragent.PARSER.parse(SAFARI_MAC).user_agent.family == "Safari"


@pytest.mark.parametrize(
    "ua",
    [
        CHROME,
        SAFARI_MAC,
        FIREFOX_LINUX,
        FIREFOX_UBUNTU,
        EDGE_WINDOWS,
        OPERA_WINDOWS,
        CHROME_OS,
        IE11,
        IPHONE,
        IPHONE_CHROME,
        ANDROID_PHONE,
        SAMSUNG_PHONE,
        FIREFOX_ANDROID,
        WINDOWS_PHONE,
        OPERA_MINI,
        IPAD,
        ANDROID_TABLET,
        GALAXY_TAB_S7,
        NEXUS_9,
        KINDLE_FIRE,
        PLAYBOOK,
        GOOGLEBOT,
        GOOGLEBOT_SMARTPHONE,
        BINGBOT,
        YANDEXBOT,
        AHREFSBOT,
        FACEBOOK,
        CURL,
        CONTROL_CHARS,
        "",
    ],
)
def test_matches_user_agents_classification(ua: str) -> None:
    """Same answers as ``user_agents.parse``: only the regex engine underneath differs."""
    ref = user_agents.parse(ua)
    if ref.is_tablet:
        device_type = "TABLET"
    elif ref.is_mobile:
        device_type = "PHONE"
    else:
        device_type = "DESKTOP"
    info = parse(ua)
    assert info.device_type == device_type
    assert info.is_bot == ref.is_bot
    assert info.browser == (None if ref.browser.family == "Other" else ref.browser.family)
    assert info.os == (None if ref.os.family == "Other" else ref.os.family)
    if ref.browser.version and isinstance(ref.browser.version[0], int):
        assert info.browser_version is not None
        assert int(info.browser_version) == ref.browser.version[0]
    else:
        assert info.browser_version is None

    # The object user-agents' properties run on is fed every field the legacy parser gives.
    ours = useragent._user_agent(ua)
    assert (ours.browser, ours.os, ours.device) == (ref.browser, ref.os, ref.device)
    assert (ours.is_pc, ours.is_touch_capable) == (ref.is_pc, ref.is_touch_capable)
