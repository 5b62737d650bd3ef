"""The bot lists measured side by side on our corpus: recall, false positives and cost.

``.venv/bin/python -m benchmarks.bots`` prints one row per classifier: ours
(``useragent.parse(ua).is_bot``) and, when they are installed, the candidates the choice in
``django_kameleoon/bots.py`` was made between. They are not dependencies of anything here;
to include them, install them into the venv first::

    .venv/bin/pip install is-bot==0.3.7 crawler-user-agents==1.67.0 crawlerdetect==0.4.2 \\
        device-detector==6.5.1

Recall is the share of each labelled group recognised as not a person, "flagged" the share of
labelled browsers taken for bots; cost is µs per User-Agent never seen before, on 2,000 fresh
browser headers from ``useragents.py`` (median of 3 rounds). The corpus is tests/data/user_agents.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator

from benchmarks import useragents
from tests.support import USER_AGENTS_DIR, user_agent_corpus

Classifier = Callable[[str], bool]


def candidates() -> Iterator[tuple[str, Classifier]]:
    """Ours, then every candidate that is installed."""
    from django_kameleoon import useragent

    yield "ours (isbot list, vendored)", lambda ua: useragent.parse(ua).is_bot
    try:
        import is_bot

        yield "is-bot 0.3.7", is_bot.Bots().is_bot
    except ImportError:
        pass
    try:
        import crawleruseragents

        yield "crawler-user-agents 1.67", crawleruseragents.is_crawler
    except ImportError:
        pass
    try:
        from crawlerdetect import CrawlerDetect

        yield "crawlerdetect 0.4.2", CrawlerDetect().is_crawler
    except ImportError:
        pass
    try:
        from device_detector.parser import Bot

        yield "device-detector bots", lambda ua: bool(ua) and Bot(ua, None).parse().is_bot()
    except ImportError:
        pass


def groups() -> Iterator[tuple[str, list[str], bool]]:
    """``(label, user agents, are they bots)`` for every file and category of the corpus."""
    for path in sorted(USER_AGENTS_DIR.glob("*.txt")):
        bots = not path.name.startswith(("browsers", "heldout_browsers"))
        corpus = user_agent_corpus(path.name)
        if bots:
            for category, uas in corpus.items():
                yield f"{path.stem}/{category}", uas, True
        else:
            yield path.stem, [ua for uas in corpus.values() for ua in uas], False


def cost(classify: Classifier, fresh: list[str]) -> float:
    """Median µs per never-seen header (a suffix per round defeats every cache)."""
    rounds = []
    for n in range(3):
        batch = [f"{ua} r{n}" for ua in fresh]
        start = time.perf_counter()
        for ua in batch:
            classify(ua)
        rounds.append((time.perf_counter() - start) / len(batch) * 1e6)
    return statistics.median(rounds)


def main() -> None:
    fresh = [
        ua
        for ua in useragents.fresh_user_agents(3000, seed=7, avoid=set())
        if not useragents._is_crawler(ua)
    ][:2000]
    for name, classify in candidates():
        print(f"== {name}: {cost(classify, fresh):.1f} µs per new browser User-Agent")
        for label, uas, bots in groups():
            hits = sum(bool(classify(ua)) for ua in uas)
            kind = "recognised" if bots else "flagged"
            print(f"   {label:45} {len(uas):5}  {kind:10} {hits / len(uas):7.2%}")


if __name__ == "__main__":
    main()
