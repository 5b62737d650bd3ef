"""Tell people from bots, crawlers and other programs by their User-Agent header.

Kameleoon counts as a visitor whoever it is told about: it filters bots by the User-Agent of the
request it receives, which is ours, so the visitors' bots are ours to filter. An uptime monitor
that loads a page every minute without cookies would be 1,440 new visitors a day.

**Which list.** The decision rests on the pattern list of isbot (github.com/omrilotan/isbot,
the npm package, Unlicense), vendored in ``data/isbot.json`` with its version and licence, and
refreshed with ``make isbot`` (``tools/update_isbot.py``). It was chosen by measuring four
maintained lists on the corpus in ``tests/data/user_agents`` (the figures, and how to reproduce
them with ``benchmarks/bots.py``, are in the README's "Bots and programs" section):

- isbot's list (as the ``is-bot`` 0.3.7 PyPI port ships it): every hand-labelled crawler; 97-100 %
  of HTTP clients, headless browsers, monitors, AI fetchers, link previews and SEO tools; 99.6 %
  and 99.3 % of two held-out lists; 0 hand-labelled browsers and 0.5 % of 3,000 held-out ones.
- crawler-user-agents 1.67 and crawlerdetect 0.4.2: 97 % of crawlers, but 50-90 % of HTTP clients,
  headless browsers and monitors (they list crawlers, not programs).
- Matomo's device-detector bot list: every crawler, but 4 % of HTTP clients and no headless
  browser (Matomo calls those "libraries"), LGPL-3.0, and 17 ms a User-Agent for a full parse.

isbot's list wins on recall, by far on programs, for 0.5 % of held-out browsers flagged (the
others flag 0-0.1 %, having missed whole kinds of programs), well under the 1 % goal. It is
vendored rather than depended on, as a Django site would want: no new dependency to vet, and
the ``is-bot`` port matches it as one 206-branch alternation through the ``regex`` package,
350 µs for every new browser User-Agent (more than ua-parser's whole parse). :class:`BotMatcher`
below matches the same list in about 8 µs. :data:`EXTRA_PATTERNS` adds the few programs isbot
missed in our corpus.

**How it stays fast.** One 206-way alternation tries every branch at every character of the
header. :class:`BotMatcher` sorts the patterns instead: those anchored at the start are tried at
position 0 only; those containing a fixed piece of text (``crawl``, ``headless``, ``.com``) are
only run when one of those texts occurs in the header, which one scan of a combined literal
regex decides; the handful left are combined into one small regex. A browser's header contains
none of the texts, so it costs the two quick regexes and the scan.

This module is plain data and rules, like ``useragent``: no Django, no I/O beyond reading the
vendored list once at import.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from importlib.resources import files
from typing import Any, Final

__all__ = [
    "EXTRA_PATTERNS",
    "ISBOT",
    "NO_SITE_RULES",
    "BotMatcher",
    "SiteRules",
    "is_bot",
    "python_syntax",
    "required_literal",
]

#: The vendored isbot release: ``source``, ``version``, ``url``, ``licence`` and ``patterns``.
ISBOT: Final[dict[str, Any]] = json.loads(
    files("django_kameleoon").joinpath("data/isbot.json").read_text(encoding="utf-8")
)

#: Programs isbot's list misses, found while building our corpus (each from its own docs).
EXTRA_PATTERNS: Final = (
    r"\(dart:io\)",  # Dart's HttpClient: "Dart/3.3 (dart:io)"
    r"^kube-probe/",  # Kubernetes probes: "kube-probe/1.31+"
    r"\bsitebulb/",  # the Sitebulb SEO auditor
    r"\bgtmetrix\b",  # GTmetrix page-speed reports
)

#: Characters that stand for themselves in a pattern, outside a class or a group.
_PLAIN: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789 /-_;:,@'\"!%&=<>~#`")
#: Characters that stand for themselves after a backslash.
_ESCAPED: Final = frozenset(".()[]{}|?*+^$\\/-:' @#%&=,;!<>~\"")
#: The shortest text worth a prefilter: a single character would occur in most headers.
_MIN_LITERAL: Final = 2

_LOOKBEHIND: Final = re.compile(r"\(\?<([!=])")
_HYPHEN_AFTER_CLASS: Final = re.compile(r"(?<!\\)(\\[dswDSW])-")


def python_syntax(pattern: str) -> str:
    """A JavaScript pattern of the list in Python's syntax.

    The two differ in two ways the list uses. JavaScript allows alternatives of different
    lengths in a look-behind (``(?<! channel/|google/)``), Python does not: ``(?<!a|b)`` is
    ``(?<!a)(?<!b)``, and ``(?<=a|b)`` is ``(?:(?<=a)|(?<=b))``. And JavaScript reads a ``-``
    after a class escape (``[\\w\\d-.]``) as a plain hyphen, where Python wants ``\\-``.
    """
    pattern = _HYPHEN_AFTER_CLASS.sub(r"\1\\-", pattern)
    out = []
    i = 0
    while (found := _LOOKBEHIND.search(pattern, i)) is not None:
        end = _group_end(pattern, found.start())
        alternatives = _split_top_level(pattern[found.end() : end - 1])
        sign = found.group(1)
        behinds = [f"(?<{sign}{alternative})" for alternative in alternatives]
        out.append(pattern[i : found.start()])
        out.append("".join(behinds) if sign == "!" else "(?:" + "|".join(behinds) + ")")
        i = end
    out.append(pattern[i:])
    return "".join(out)


def required_literal(pattern: str) -> str | None:
    """The longest text every match of ``pattern`` contains (lower case), or None.

    Conservative by construction: only characters outside groups, classes and quantifiers
    count, and a pattern with an alternation at its top level has none. Being wrong here would
    hide a bot, so anything not understood ends the current run of text.
    """
    runs: list[str] = [""]
    for token, literal in _tokens(pattern):
        if token == "|":
            return None
        if literal is not None:
            runs[-1] += literal
        elif token in ("?", "*", "{") and runs[-1]:
            # The character before is optional: it leaves the run, which ends.
            runs[-1] = runs[-1][:-1]
            runs.append("")
        else:
            runs.append("")
    best = max(runs, key=len)
    return best if len(best) >= _MIN_LITERAL else None


def _tokens(pattern: str) -> Iterator[tuple[str, str | None]]:
    """Top-level tokens of a pattern: ``(token, the character it stands for or None)``."""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            escaped = pattern[i + 1]
            yield c + escaped, escaped.lower() if escaped in _ESCAPED else None
            i += 2
        elif c == "(":
            end = _group_end(pattern, i)
            yield pattern[i:end], None
            i = end
        elif c == "[":
            end = _class_end(pattern, i)
            yield pattern[i:end], None
            i = end
        elif c == "{":
            yield c, None
            i = pattern.find("}", i) + 1 or len(pattern)
        elif c in "+?*":
            yield c, None
            # A lazy or possessive mark after a quantifier is part of it.
            i += 2 if pattern[i + 1 : i + 2] in ("?", "+") else 1
        else:
            yield c, c.lower() if c.lower() in _PLAIN else None
            i += 1


def _group_end(pattern: str, start: int) -> int:
    """The index after the ``)`` that closes the group opened at ``start``."""
    depth = 0
    i = start
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            i = _class_end(pattern, i)
            continue
        depth += (c == "(") - (c == ")")
        i += 1
        if depth == 0:
            return i
    raise ValueError(f"unbalanced parenthesis in {pattern!r}")


def _class_end(pattern: str, start: int) -> int:
    """The index after the ``]`` that closes the class opened at ``start``."""
    i = start + 1
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
        elif pattern[i] == "]":
            return i + 1
        else:
            i += 1
    raise ValueError(f"unterminated character class in {pattern!r}")


def _split_top_level(pattern: str) -> list[str]:
    """``a|b(c|d)`` as ``["a", "b(c|d)"]``."""
    parts, start, i = [], 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "(":
            i = _group_end(pattern, i)
            continue
        if c == "[":
            i = _class_end(pattern, i)
            continue
        if c == "\\":
            i += 2
            continue
        if c == "|":
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    return parts


def _combined(
    patterns: Iterable[str], flags: re.RegexFlag = re.IGNORECASE | re.ASCII
) -> re.Pattern[str] | None:
    """One regex for several, or None for none. ASCII, like JavaScript's ``\\w`` and ``\\b``."""
    listed = list(patterns)
    if not listed:
        return None
    return re.compile("|".join(f"(?:{p})" for p in listed), flags)


def _literal_scan(texts: Iterable[str]) -> re.Pattern[str] | None:
    """One regex that finds whether any of ``texts`` occurs, shaped as a trie.

    ``bot|bing|crawl`` makes ``re`` try every branch at every position (30 µs for 130 texts over
    a browser's header); ``b(?:ing|ot)|crawl`` lets it drop a position at its first character
    (5 µs). A text that contains another is left out: finding the shorter one is enough. Runs
    on the lower-cased header, so it needs no IGNORECASE (which is slower).
    """
    kept: list[str] = []
    for text in sorted(set(texts), key=len):
        if not any(shorter in text for shorter in kept):
            kept.append(text)
    trie: dict[str, Any] = {}
    for text in kept:
        node = trie
        for char in text:
            node = node.setdefault(char, {})
    return re.compile(_trie_pattern(trie)) if trie else None


def _trie_pattern(node: dict[str, Any]) -> str:
    """The regex of a trie whose leaves end the texts (no text is a prefix of another)."""
    branches = [re.escape(char) + _trie_pattern(child) for char, child in sorted(node.items())]
    if len(branches) <= 1:
        return "".join(branches)
    return "(?:" + "|".join(branches) + ")"


class BotMatcher:
    """Whether a User-Agent matches any of a list of patterns, cheaply when it matches none.

    Patterns are JavaScript-flavoured regexes as isbot writes them, matched case-insensitively
    anywhere in the header. See the module docstring for how they are split.
    """

    __slots__ = ("_anchored", "_confirm", "_literals", "_rest")

    def __init__(self, patterns: Iterable[str]) -> None:
        anchored: list[str] = []
        rest: list[str] = []
        literals: dict[str, list[str]] = {}
        for pattern in dict.fromkeys(patterns):
            python = python_syntax(pattern)
            literal = required_literal(pattern)
            if pattern.startswith("^") and len(_split_top_level(pattern)) == 1:
                anchored.append(python)
            elif literal is None:
                rest.append(python)
            else:
                literals.setdefault(literal, []).append(python)
        self._anchored = _combined(anchored)
        self._rest = _combined(rest)
        self._literals = _literal_scan(literals)
        self._confirm = {
            text: compiled
            for text, found in literals.items()
            if (compiled := _combined(found)) is not None
        }

    def __call__(self, user_agent: str) -> bool:
        if self._anchored is not None and self._anchored.match(user_agent):
            return True
        if self._rest is not None and self._rest.search(user_agent):
            return True
        lowered = user_agent.lower()
        if self._literals is None or not self._literals.search(lowered):
            return False
        # Rare for a browser: some text was found, so run the patterns of the texts present
        # (several can overlap in one header, so each text is looked for on its own).
        return any(
            text in lowered and confirm.search(user_agent)
            for text, confirm in self._confirm.items()
        )


#: isbot's list and ours, built once at import (a few ms).
is_bot: Final = BotMatcher([*ISBOT["patterns"], *EXTRA_PATTERNS])


@dataclass(frozen=True)
class SiteRules:
    """A site's own word on bots: ``BOT_PATTERNS`` and ``NOT_BOT_PATTERNS`` (Python regexes,
    searched case-insensitively in the header).

    Frozen and compared by value, so ``useragent.parse`` can key its cache on it: a settings
    change that edits the patterns gets fresh answers, an unrelated one keeps the cache.
    """

    bot_patterns: tuple[str, ...] = ()
    """Extra regexes that mark a User-Agent as a bot, e.g. the site's own uptime monitor."""
    not_bot_patterns: tuple[str, ...] = ()
    """Exceptions that win over every other rule, e.g. a partner app's WebView."""

    def __hash__(self) -> int:
        # Hashed on every ``useragent.parse`` call (its cache key): once per instance, not
        # the patterns again on each request.
        return self._hash

    @cached_property
    def _hash(self) -> int:
        return hash((self.bot_patterns, self.not_bot_patterns))

    def decide(self, user_agent: str, listed: bool) -> bool:
        """Whether ``user_agent`` is a bot, given what the lists said (``listed``)."""
        if any(p.search(user_agent) for p in self._not_bots):
            return False
        return listed or any(p.search(user_agent) for p in self._bots)

    @cached_property
    def _bots(self) -> tuple[re.Pattern[str], ...]:
        return _site_regexes(self.bot_patterns)

    @cached_property
    def _not_bots(self) -> tuple[re.Pattern[str], ...]:
        return _site_regexes(self.not_bot_patterns)


def _site_regexes(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    """Each compiled alone, as the settings check validated it: a site's pattern may start with
    a global flag such as ``(?i)``, which a combined alternation would refuse. A site has a few,
    and they run once per new User-Agent."""
    return tuple(re.compile(pattern, re.IGNORECASE) for pattern in patterns)


#: No site rules: the lists alone decide.
NO_SITE_RULES: Final = SiteRules()
