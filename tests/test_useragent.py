"""Tests for django_kameleoon.useragent: plain data, no Django needed."""

from __future__ import annotations

import dataclasses

import pytest
import ua_parser
import user_agents  # type: ignore[import-untyped, unused-ignore]

from django_kameleoon import useragent
from django_kameleoon.bots import SiteRules
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
            UserAgentInfo("Chrome", 120.0, "Windows", "DESKTOP", False, "CHROME", "WINDOWS"),
            id="chrome-windows",
        ),
        pytest.param(
            SAFARI_MAC,
            UserAgentInfo("Safari", 16.3, "Mac OS X", "DESKTOP", False, "SAFARI", "MAC"),
            id="safari-macos",
        ),
        pytest.param(
            FIREFOX_LINUX,
            UserAgentInfo("Firefox", 121.0, "Linux", "DESKTOP", False, "FIREFOX", "LINUX"),
            id="firefox-linux",
        ),
        pytest.param(
            IPHONE,
            UserAgentInfo("Mobile Safari", 17.1, "iOS", "PHONE", False, "SAFARI", "IOS"),
            id="iphone-safari",
        ),
        pytest.param(
            ANDROID_PHONE,
            UserAgentInfo("Chrome Mobile", 120.0, "Android", "PHONE", False, "CHROME", "ANDROID"),
            id="android-chrome-phone",
        ),
        pytest.param(
            IPAD,
            UserAgentInfo("Mobile Safari", 16.6, "iOS", "TABLET", False, "SAFARI", "IOS"),
            id="ipad",
        ),
        pytest.param(
            GALAXY_TAB_S7,
            UserAgentInfo("Chrome", 110.0, "Android", "TABLET", False, "CHROME", "ANDROID"),
            id="galaxy-tab-sm-t",
        ),
        pytest.param(
            NEXUS_9,
            UserAgentInfo("Chrome", 58.0, "Android", "TABLET", False, "CHROME", "ANDROID"),
            id="nexus-9",
        ),
        pytest.param(
            GOOGLEBOT,
            UserAgentInfo("Googlebot", 2.1, None, "DESKTOP", True, "OTHER", None),
            id="googlebot",
        ),
        pytest.param(
            BINGBOT,
            UserAgentInfo("bingbot", 2.0, None, "DESKTOP", True, "OTHER", None),
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


@pytest.mark.parametrize("ua", ["", " ", "\t\r\n"])
def test_an_empty_user_agent_is_an_unknown_desktop_and_a_bot(ua: str) -> None:
    """Every browser sends a User-Agent; a request without one is a program."""
    assert parse(ua) == UserAgentInfo(None, None, None, "DESKTOP", True, "OTHER", None)


def test_control_characters_are_harmless() -> None:
    info = parse(CONTROL_CHARS)
    assert info.os == "Windows"
    assert info.device_type == "DESKTOP"


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
    assert info == UserAgentInfo(None, None, None, "DESKTOP", True, "OTHER", None)


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


def test_the_fastest_installed_resolver_is_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """ua-parser-rs's resolver where it is installed (the default), ua-parser's pure-Python one
    where it is not (tox's ``pure`` cell); parse() goes through it, not the legacy parser."""
    fast = useragent.RESOLVER
    assert type(fast) is (ua_parser.RegexResolver or ua_parser.BestAvailableResolver)
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
    """Same families and device as ``user_agents.parse``: only the regex engine underneath
    differs (the device corrections and the bot decision are tested below and in test_bots)."""
    ref = user_agents.parse(ua)
    if ref.is_tablet:
        device_type = "TABLET"
    elif ref.is_mobile:
        device_type = "PHONE"
    else:
        device_type = "DESKTOP"
    info = parse(ua)
    assert info.device_type == device_type
    assert info.browser == (None if ref.browser.family == "Other" else ref.browser.family)
    assert info.os == (None if ref.os.family == "Other" else ref.os.family)
    if ref.browser.version and isinstance(ref.browser.version[0], int):
        assert info.browser_version is not None
        assert int(info.browser_version) == ref.browser.version[0]
    else:
        assert info.browser_version is None

    # The object user-agents' properties run on is fed every field the legacy parser gives.
    ours, _ = useragent._user_agent(ua)
    assert (ours.browser, ours.os, ours.device) == (ref.browser, ref.os, ref.device)
    assert (ours.is_pc, ours.is_touch_capable) == (ref.is_pc, ref.is_touch_capable)


# -- corrections to user-agents' device type ------------------------------------------------------

OPERA_MINI_ANDROID = (
    "Opera/9.80 (Android; Opera Mini/36.2.2254/119.132; U; id) Presto/2.12.423 Version/12.16"
)
OPERA_MOBILE_ANDROID = (
    "Mozilla/5.0 (Linux; U; Android 11; SM-A125F Build/RP1A.200720.012) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/112.0.5615.136 Mobile Safari/537.36 OPR/74.0.2254.67"
)
OPERA_MOBI_ANDROID = (
    "Opera/9.80 (Android 4.1.2; Linux; Opera Mobi/ADR-1305251841) Presto/2.11.355 Version/12.10"
)
DUCKDUCKGO_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/124.0.0.0 Mobile DuckDuckGo/5 Safari/537.36"
)
FIREFOX_ANDROID_TABLET = "Mozilla/5.0 (Android 14; Tablet; rv:133.0) Gecko/133.0 Firefox/133.0"
KAIOS = (
    "Mozilla/5.0 (Mobile; LYF/F300B/LYF-F300B-001-01-15-130718-i; Android; rv:48.0) "
    "Gecko/48.0 Firefox/48.0 KAIOS/2.5"
)


def user_agents_device(ua: str) -> str:
    ref = user_agents.parse(ua)
    return "TABLET" if ref.is_tablet else "PHONE" if ref.is_mobile else "DESKTOP"


@pytest.mark.parametrize(
    ("ua", "device_type"),
    [
        pytest.param(OPERA_MINI_ANDROID, "PHONE", id="opera-mini-android"),
        pytest.param(OPERA_MOBI_ANDROID, "PHONE", id="opera-mobile-presto-android"),
        pytest.param(DUCKDUCKGO_ANDROID, "PHONE", id="duckduckgo-android"),
        pytest.param(FIREFOX_ANDROID_TABLET, "TABLET", id="firefox-android-tablet"),
        pytest.param(KAIOS, "PHONE", id="kaios"),
    ],
)
def test_device_corrections(ua: str, device_type: str) -> None:
    """user-agents 2.2 says otherwise for each; the header's own words decide."""
    assert user_agents_device(ua) != device_type
    assert parse(ua).device_type == device_type


@pytest.mark.parametrize(
    "ua", [OPERA_MOBILE_ANDROID, GALAXY_TAB_S7, NEXUS_9, KINDLE_FIRE, ANDROID_TABLET, IPAD]
)
def test_what_user_agents_got_right_stays(ua: str) -> None:
    assert parse(ua).device_type == user_agents_device(ua)


@pytest.mark.parametrize(
    "ua",
    [
        # iPadOS Safari asks for desktop sites by default: its header is a Mac's.
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.6 Safari/605.1.15",
        # Chrome on Android with "request desktop site" sends a Linux desktop header.
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
    ],
    ids=["ipados-desktop-mode", "android-request-desktop-site"],
)
def test_known_limit_desktop_mode_is_desktop(ua: str) -> None:
    """Documented in the README: nothing in these headers tells a tablet or a phone."""
    assert parse(ua).device_type == "DESKTOP"


# -- browserVersion -------------------------------------------------------------------------------

EDGE_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/18.0 EdgiOS/131.2903.68 Mobile/15E148 Safari/605.1.15"
)
EDGE_LEGACY = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/70.0.3538.102 Safari/537.36 Edge/18.19045"
)


@pytest.mark.parametrize(
    ("ua", "version"),
    [
        pytest.param(OPERA_MINI, 9.8, id="opera-mini-9.80-is-9.8"),
        pytest.param(
            "Mozilla/5.0 (X11; Linux x86_64; rv:5.05) Gecko/20100101 Firefox/5.05", 5.05, id="5.05"
        ),
        pytest.param(EDGE_IOS, 131.0, id="edgios-build-is-not-a-minor"),
        pytest.param(EDGE_WINDOWS, 120.0, id="edge-120.0.2210.91"),
        pytest.param(EDGE_LEGACY, 18.0, id="edge-legacy-18.19045"),
        pytest.param(SAFARI_MAC, 16.3, id="safari-16.3"),
        pytest.param(CHROME, 120.0, id="chrome-120.0.0.0"),
        pytest.param("Mozilla/5.0 \ud800 Chrome/1.2", 1.2, id="surrogate"),
    ],
)
def test_browser_version_is_major_minor_as_written(ua: str, version: float) -> None:
    assert parse(ua).browser_version == version


@pytest.mark.parametrize(
    ("major", "minor", "version"),
    [
        ("9", "80", 9.8),
        ("5", "05", 5.05),
        ("131", "2903", 131.0),
        ("16", "100", 16.1),
        ("16", None, 16.0),
        ("0b1", "2", None),
        ("\u00b2", None, None),
        ("\u0661", None, None),
        ("9" * 10, None, None),
        (None, None, None),
        ("3", "x", 3.0),
    ],
)
def test_browser_version_rule(major: str | None, minor: str | None, version: float | None) -> None:
    assert useragent.browser_version(major, minor) == version


# -- Kameleoon's vocabulary -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ua", "browser", "os"),
    [
        pytest.param(CHROME, "CHROME", "WINDOWS", id="chrome-windows"),
        pytest.param(IPHONE_CHROME, "CHROME", "IOS", id="chrome-ios"),
        pytest.param(EDGE_WINDOWS, "OTHER", "WINDOWS", id="edge"),
        pytest.param(SAMSUNG_PHONE, "OTHER", "ANDROID", id="samsung-internet"),
        pytest.param(OPERA_WINDOWS, "OPERA", "WINDOWS", id="opera"),
        pytest.param(OPERA_MINI_ANDROID, "OPERA", "ANDROID", id="opera-mini"),
        pytest.param(IE11, "INTERNET_EXPLORER", "WINDOWS", id="ie11"),
        pytest.param(FIREFOX_UBUNTU, "FIREFOX", "LINUX", id="firefox-ubuntu"),
        pytest.param(FIREFOX_ANDROID, "FIREFOX", "ANDROID", id="firefox-android"),
        pytest.param(SAFARI_MAC, "SAFARI", "MAC", id="safari-mac"),
        pytest.param(IPAD, "SAFARI", "IOS", id="ipad"),
        pytest.param(CHROME_OS, "CHROME", "LINUX", id="chromeos"),
        pytest.param(WINDOWS_PHONE, "INTERNET_EXPLORER", "WINDOWS_PHONE", id="windows-phone"),
        pytest.param(KINDLE_FIRE, "OTHER", "ANDROID", id="silk-fire-os"),
        pytest.param(KAIOS, "FIREFOX", None, id="kaios"),
        pytest.param(PLAYBOOK, "OTHER", None, id="blackberry-playbook"),
        pytest.param(
            "Mozilla/5.0 (Linux; HarmonyOS 4.2; ALN-AL00) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/114.0.0.0 Mobile Safari/537.36",
            "CHROME",
            "ANDROID",
            id="harmonyos-4",
        ),
        pytest.param(
            "Mozilla/5.0 (Phone; OpenHarmony 5.0) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/114.0.0.0 Safari/537.36 ArkWeb/4.1.6.1 Mobile HuaweiBrowser/5.0.4.300",
            "OTHER",
            None,
            id="harmonyos-next",
        ),
        pytest.param(
            "Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/"
            "537.36 (KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.135 Mobile Safari/537.36 "
            "[FB_IAB/FB4A;FBAV/494.0.0.52.70;]",
            "OTHER",
            "ANDROID",
            id="facebook-in-app",
        ),
        pytest.param(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
            "like Gecko) Mobile/15E148 Instagram 357.0.0.25.101 (iPhone14,5; iOS 18_1; en_US; "
            "en; scale=3.00; 1170x2532; 658645474)",
            "OTHER",
            "IOS",
            id="instagram-in-app",
        ),
        pytest.param(GOOGLEBOT, "OTHER", None, id="unknown-os"),
        pytest.param("", "OTHER", None, id="empty"),
    ],
)
def test_kameleoon_vocabulary(ua: str, browser: str, os: str | None) -> None:
    info = parse(ua)
    assert (info.kameleoon_browser, info.kameleoon_os) == (browser, os)
    assert browser in useragent.BROWSER_INDEX
    assert os is None or os in useragent.OS_INDEX


def test_indices_are_the_official_sdks() -> None:
    """kameleoon-client-python's BrowserType and OperatingSystemType, as it sends them."""
    sdk = pytest.importorskip("kameleoon.data")
    assert {t.name: t.value for t in sdk.BrowserType} == useragent.BROWSER_INDEX
    assert {t.name: t.value for t in sdk.OperatingSystemType} == useragent.OS_INDEX


# -- the site's own patterns ------------------------------------------------------------------


def test_site_patterns_add_bots_and_exceptions() -> None:
    monitor = "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0 Safari/537.36 AcmeWatch/2"
    partner = "Mozilla/5.0 (Linux; Android 14; Pixel 8; wv) PartnerApp/3 okhttp/4.12.0"
    assert not parse(monitor).is_bot
    assert parse(partner).is_bot
    site = SiteRules(bot_patterns=("acmewatch/",), not_bot_patterns=(r"\bPartnerApp/",))
    assert parse(monitor, site).is_bot
    assert not parse(partner, site).is_bot
    # Keyed on the rules' value: the plain answers are still there, equal rules share entries.
    assert not parse(monitor).is_bot
    assert parse(monitor, SiteRules(("acmewatch/",), (r"\bPartnerApp/",))) is parse(monitor, site)


def test_a_site_pattern_may_carry_a_global_flag() -> None:
    assert parse("Mozilla/5.0 AcmeWatch/2", SiteRules(bot_patterns=("x", "(?s)acmewatch"))).is_bot


def test_an_exception_wins_over_an_empty_header() -> None:
    assert not parse("", SiteRules(not_bot_patterns=("^$",))).is_bot
