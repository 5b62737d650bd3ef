"""Bots and programs are not visitors: the classifier (``bots``) and its corpus figures.

The corpus is in tests/data/user_agents (its README says where each file comes from). The
hand-labelled files were written from the bots' and tools' own documentation while the
classifier was built; the ``heldout_*`` files come from two other public lists that were not
looked at while building it, and their figures are the honest ones. The README's "Bots" section
reports what these tests measure: ``pytest tests/test_bots.py -k figures -s`` prints them.
"""

from __future__ import annotations

import re

import pytest

from django_kameleoon import bots, useragent
from tests.support import NOT_PEOPLE, PEOPLE, USER_AGENTS_DIR, user_agent_corpus

#: The issue's goals: share of each kind of non-human traffic recognised, of browsers flagged.
MIN_RECALL = 0.99
MIN_HELD_OUT_RECALL = 0.97
MAX_FALSE_POSITIVES = 0.01

CORPUS_FILES = sorted(path.name for path in USER_AGENTS_DIR.glob("*.txt"))


def is_bot(ua: str) -> bool:
    """The decision the middleware and ``track*()`` act on."""
    return useragent.parse(ua).is_bot


def share(uas: list[str], wanted: bool) -> tuple[float, list[str]]:
    """The share of ``uas`` whose decision is ``wanted``, and those whose decision is not."""
    wrong = [ua for ua in uas if is_bot(ua) is not wanted]
    return 1 - len(wrong) / len(uas), wrong


@pytest.mark.parametrize("ua", NOT_PEOPLE.values(), ids=NOT_PEOPLE.keys())
def test_what_issue_11_found_counted_is_a_bot(ua: str) -> None:
    assert is_bot(ua)


@pytest.mark.parametrize("ua", PEOPLE.values(), ids=PEOPLE.keys())
def test_browsers_are_people(ua: str) -> None:
    assert not is_bot(ua)


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("crawlers.txt", "all"),
        *(("non_human.txt", category) for category in user_agent_corpus("non_human.txt")),
    ],
)
def test_hand_labelled_non_human_traffic_is_recognised(name: str, category: str) -> None:
    uas = user_agent_corpus(name)[category]
    recall, missed = share(uas, wanted=True)
    assert recall >= MIN_RECALL, f"{category}: {recall:.1%} recognised; missed {missed}"


@pytest.mark.parametrize("name", ["heldout_crawlers_cua.txt", "heldout_bots_matomo.txt"])
def test_held_out_bot_lists_are_recognised(name: str) -> None:
    recall, missed = share(user_agent_corpus(name)["all"], wanted=True)
    assert recall >= MIN_HELD_OUT_RECALL, f"{name}: {recall:.1%}; missed {missed}"


@pytest.mark.parametrize("name", ["browsers.txt", "heldout_browsers_matomo.txt"])
def test_few_browsers_are_taken_for_bots(name: str) -> None:
    uas = [ua for group in user_agent_corpus(name).values() for ua in group]
    kept, flagged = share(uas, wanted=False)
    assert 1 - kept <= MAX_FALSE_POSITIVES, f"{name}: {1 - kept:.2%} flagged: {flagged}"


def test_hand_labelled_browsers_are_never_bots() -> None:
    for category, uas in user_agent_corpus("browsers.txt").items():
        assert [ua for ua in uas if is_bot(ua)] == [], category


def test_figures(capsys: pytest.CaptureFixture[str]) -> None:
    """Print the README's figures (``-k figures -s``); asserts only that each file has lines."""
    rows = []
    for name in CORPUS_FILES:
        for category, uas in user_agent_corpus(name).items():
            assert uas
            wanted = not name.startswith(("browsers", "heldout_browsers"))
            right, _ = share(uas, wanted=wanted)
            label = "recognised" if wanted else "flagged"
            value = right if wanted else 1 - right
            rows.append(f"{name:32} {category:28} {len(uas):5} {label:10} {value:7.2%}")
    with capsys.disabled():
        print("\n" + "\n".join(rows))


def every_corpus_user_agent() -> list[str]:
    return [ua for name in CORPUS_FILES for uas in user_agent_corpus(name).values() for ua in uas]


def test_a_new_user_agent_gets_the_bot_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once per new header, inside the cached parse: what ``make bench`` times includes it."""
    asked: list[str] = []
    real = bots.is_bot

    def counting(ua: str) -> bool:
        asked.append(ua)
        return real(ua)

    monkeypatch.setattr(useragent.bots, "is_bot", counting)
    ua = PEOPLE["chrome"].replace("120.0.0.0", "120.0.4242.1")  # not parsed by another test
    useragent.parse(ua)
    useragent.parse(ua)
    assert asked == [ua]


# -- the matcher ----------------------------------------------------------------------------------


def test_the_vendored_list_is_isbot_with_its_licence() -> None:
    assert bots.ISBOT["source"] == "isbot"
    assert bots.ISBOT["licence"] == "Unlicense"
    assert re.fullmatch(r"\d+\.\d+\.\d+", bots.ISBOT["version"])
    assert len(bots.ISBOT["patterns"]) > 150


@pytest.mark.parametrize(
    ("javascript", "python"),
    [
        ("(?<! channel/|google/)google", "(?<! channel/)(?<!google/)google"),
        ("(?<=ab|c)x", "(?:(?<=ab)|(?<=c))x"),
        ("(?<! cu)bots?", "(?<! cu)bots?"),
        (r"[\w\d-.]+", r"[\w\d\-.]+"),
        (r"\\d-", r"\\d-"),
    ],
)
def test_javascript_patterns_become_python(javascript: str, python: str) -> None:
    assert bots.python_syntax(javascript) == python
    re.compile(python)


def test_every_vendored_pattern_compiles_in_python() -> None:
    for pattern in bots.ISBOT["patterns"]:
        re.compile(bots.python_syntax(pattern))


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [
        ("crawl", "crawl"),
        ("(?<! cu)bots?(?:\\b|_)", "bot"),
        ("(?:^|[^g])news(?!sapphire)", "news"),
        ("\\b\\w+\\.ai", ".ai"),
        ("mail\\.ru/", "mail.ru/"),
        ("ptst[ /]\\d", "ptst"),
        ("ab+cd", "ab"),
        ("abc*?de", "ab"),
        ("abc{2}de", "ab"),
        ("a|crawler", None),
        ("@[a-z][\\w-]+\\.", None),
        ("^[\\w]+/[\\w]+$", None),
        ("HeadLess", "headless"),
    ],
)
def test_required_literal(pattern: str, literal: str | None) -> None:
    assert bots.required_literal(pattern) == literal


def test_required_literals_are_in_every_match() -> None:
    """Soundness of the prefilter on the whole corpus: a pattern matches only where its text is."""
    uas = every_corpus_user_agent()
    for pattern in bots.ISBOT["patterns"]:
        literal = bots.required_literal(pattern)
        if literal is None:
            continue
        compiled = re.compile(bots.python_syntax(pattern), re.IGNORECASE | re.ASCII)
        for ua in uas:
            if compiled.search(ua):
                assert literal in ua.lower(), (pattern, ua)


def test_the_matcher_agrees_with_one_big_alternation() -> None:
    """The split into anchored, prefiltered and other patterns changes no answer."""
    joined = "|".join(f"(?:{bots.python_syntax(p)})" for p in bots.ISBOT["patterns"])
    naive = re.compile(joined, re.IGNORECASE | re.ASCII)
    matcher = bots.BotMatcher(bots.ISBOT["patterns"])
    uas = every_corpus_user_agent()
    assert [ua for ua in uas if matcher(ua) != bool(naive.search(ua))] == []


def test_overlapping_texts_are_each_found() -> None:
    """Two texts that overlap in a header ("abcd": "abc" and "bcd") are both checked."""
    matcher = bots.BotMatcher(["abc(?=x)", "bcd"])
    assert matcher("zabcd")
    assert not bots.BotMatcher(["abc(?=x)", "bcdz"])("zabcd")


def test_an_empty_list_matches_nothing() -> None:
    assert not bots.BotMatcher([])("curl/8.5.0")
