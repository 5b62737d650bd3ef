"""Realistic User-Agent strings, made up deterministically, and a Zipf-like draw over them.

Real traffic is a long tail: a few current Chrome and Safari builds make most requests, and
hundreds of other browsers, versions, phones and bots make the rest. The generator varies the
things real headers vary (browser, version, OS and its version, phone and tablet models, in-app
browsers, crawlers), so that the parsers do the work they do on a real site.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["distinct_user_agents", "fresh_user_agents", "zipf_indices"]

WINDOWS = ["Windows NT 10.0; Win64; x64", "Windows NT 10.0; WOW64", "Windows NT 6.1; Win64; x64"]
MACS = [
    "Macintosh; Intel Mac OS X 10_15_7",
    "Macintosh; Intel Mac OS X 10_15_6",
    "Macintosh; Intel Mac OS X 14_4_1",
    "Macintosh; Intel Mac OS X 13_6_7",
]
LINUX = ["X11; Linux x86_64", "X11; Ubuntu; Linux x86_64", "X11; Fedora; Linux x86_64"]
PHONES = [
    "SM-S918B", "SM-S911B", "SM-A546B", "SM-A145R", "SM-G991B", "SM-A536U", "Pixel 8 Pro",
    "Pixel 7a", "Pixel 6", "M2101K6G", "2201117TG", "CPH2411", "RMX3630", "moto g(30)",
    "moto g stylus 5G", "LE2123", "NE2213", "V2202", "TECNO KI5q", "Infinix X6816",
]  # fmt: skip
TABLETS = ["SM-X710", "SM-T510", "SM-X200", "Lenovo TB-X606F", "SM-P610", "Pixel Tablet"]
IOS = ["17_4_1", "17_5", "16_7_8", "17_3_1", "16_6_1", "15_8_2", "17_6", "18_0"]
ANDROID = ["14", "13", "12", "11", "10"]
BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; "
    "+http://www.google.com/bot.html) Chrome/{major}.0.{build}.{patch} Safari/537.36",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/{major}.0.{build}.{patch} Mobile Safari/537.36 (compatible; "
    "Googlebot/2.1; +http://www.google.com/bot.html)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 (compatible; DuckDuckBot-Https/1.1; https://duckduckgo.com/duckduckbot)",
]


def _chrome_desktop(r: random.Random) -> str:
    os_ = r.choice(WINDOWS + MACS + LINUX)
    v = _chromium_version(r)
    base = f"Mozilla/5.0 ({os_}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v} Safari/537.36"
    roll = r.random()
    if roll < 0.18:
        return base + f" Edg/{v.split('.')[0]}.0.{r.randint(1000, 2900)}.{r.randint(0, 120)}"
    if roll < 0.24:
        return base + f" OPR/{r.randint(95, 112)}.0.{r.randint(1000, 5300)}.{r.randint(0, 120)}"
    return base


def _chromium_version(r: random.Random) -> str:
    return f"{r.randint(109, 131)}.0.{r.randint(5000, 6800)}.{r.randint(0, 220)}"


def _chrome_android(r: random.Random, model: str) -> str:
    v = _chromium_version(r)
    tail = "Mobile Safari/537.36" if model in PHONES else "Safari/537.36"
    base = f"Mozilla/5.0 (Linux; Android {r.choice(ANDROID)}; {model}) AppleWebKit/537.36 "
    roll = r.random()
    if roll < 0.2:
        return base + f"(KHTML, like Gecko) SamsungBrowser/{r.randint(20, 26)}.0 Chrome/{v} {tail}"
    if roll < 0.3:
        return (
            base + f"(KHTML, like Gecko) Version/4.0 Chrome/{v} {tail} [FB_IAB/FB4A;FBAV/"
            f"{r.randint(400, 480)}.0.0.{r.randint(10, 60)}.{r.randint(10, 120)};]"
        )
    return base + f"(KHTML, like Gecko) Chrome/{v} {tail}"


def _safari_mac(r: random.Random) -> str:
    major = r.choice(["16", "17", "18"])
    minor = r.randint(0, 6)
    return (
        f"Mozilla/5.0 ({r.choice(MACS)}) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        f"Version/{major}.{minor} Safari/605.1.15"
    )


def _ios(r: random.Random) -> str:
    device = r.choices(["iPhone", "iPad"], weights=[5, 1])[0]
    ios = r.choice(IOS)
    cpu = "CPU iPhone OS" if device == "iPhone" else "CPU OS"
    head = (
        f"Mozilla/5.0 ({device}; {cpu} {ios} like Mac OS X) "
        "AppleWebKit/605.1.15 (KHTML, like Gecko)"
    )
    roll = r.random()
    if roll < 0.15:
        return head + f" CriOS/{_chromium_version(r)} Mobile/15E148 Safari/604.1"
    if roll < 0.25:
        return (
            head + f" Mobile/15E148 Instagram {r.randint(300, 350)}.0.0.{r.randint(10, 40)}."
            f"{r.randint(10, 120)} ({device}{r.randint(12, 16)},{r.randint(1, 8)}; iOS {ios}; "
            f"en_US; en; scale=3.00; 1170x2532; {r.randint(500000000, 600000000)})"
        )
    return head + f" Version/{ios.split('_')[0]}.{ios.split('_')[1]} Mobile/15E148 Safari/604.1"


def _firefox(r: random.Random) -> str:
    v = r.randint(115, 132)
    roll = r.random()
    if roll < 0.15:
        return (
            f"Mozilla/5.0 (Android {r.choice(ANDROID)}; Mobile; rv:{v}.0) Gecko/{v}.0 Firefox/{v}.0"
        )
    os_ = r.choice(WINDOWS + MACS + LINUX).replace("Intel Mac OS X 10_15_7", "Intel Mac OS X 10.15")
    return f"Mozilla/5.0 ({os_}; rv:{v}.0) Gecko/20100101 Firefox/{v}.{r.randint(0, 3)}"


def _bot(r: random.Random) -> str:
    return r.choice(BOTS).format(
        major=r.randint(119, 131), build=r.randint(6000, 6800), patch=r.randint(0, 200)
    )


def _one(r: random.Random) -> str:
    kind = r.choices(
        ["chrome", "android", "tablet", "safari", "ios", "firefox", "bot"],
        weights=[34, 22, 4, 8, 18, 9, 5],
    )[0]
    if kind == "chrome":
        return _chrome_desktop(r)
    if kind == "android":
        return _chrome_android(r, r.choice(PHONES))
    if kind == "tablet":
        return _chrome_android(r, r.choice(TABLETS))
    if kind == "safari":
        return _safari_mac(r)
    if kind == "ios":
        return _ios(r)
    if kind == "firefox":
        return _firefox(r)
    return _bot(r)


def _unique(r: random.Random, seen: set[str]) -> Iterator[str]:
    while True:
        ua = _one(r)
        if ua not in seen:
            seen.add(ua)
            yield ua


def distinct_user_agents(count: int = 1000, seed: int = 1) -> list[str]:
    """``count`` distinct User-Agents, the same list for the same seed, most popular first.

    Crawlers are kept out of the 100 most popular ranks, so that with :func:`zipf_indices`
    they make a few percent of requests, as on a typical site, not a quarter of them.
    """
    r = random.Random(seed)
    gen = _unique(r, set())
    agents = [next(gen) for _ in range(count)]
    people = [ua for ua in agents if not _is_crawler(ua)]
    crawlers = [ua for ua in agents if _is_crawler(ua)]
    head, tail = people[:100], people[100:] + crawlers
    r.shuffle(tail)
    return head + tail


def _is_crawler(ua: str) -> bool:
    return "bot" in ua.lower() or "externalhit" in ua


def fresh_user_agents(count: int, seed: int, avoid: set[str]) -> list[str]:
    """``count`` User-Agents none of which is in ``avoid``; they are added to it."""
    r = random.Random(seed)
    gen = _unique(r, avoid)
    return [next(gen) for _ in range(count)]


def zipf_indices(count: int, population: int, seed: int = 2, exponent: float = 1.0) -> list[int]:
    """``count`` draws from ``range(population)``, rank ``k`` weighted ``1 / k**exponent``."""
    r = random.Random(seed)
    weights = [1.0 / (rank**exponent) for rank in range(1, population + 1)]
    return r.choices(range(population), weights=weights, k=count)
