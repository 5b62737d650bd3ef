"""What a new User-Agent costs with this Python's resolver: ``python -m benchmarks.resolver``.

ua-parser-rs (Rust) is installed by default where it has wheels; elsewhere ua-parser's
pure-Python resolver runs the same rules. This prints the median cost of
``django_kameleoon.useragent.parse`` on a User-Agent it has not seen (bot decision included),
over five rounds of 2,000 strings, each new, so the two can be compared on one machine:
run it in a venv with ua-parser-rs and in one without (tox's ``pure`` cell).
"""

from __future__ import annotations

import statistics
import time

import ua_parser

from benchmarks.useragents import distinct_user_agents
from django_kameleoon import useragent

ROUNDS, PER_ROUND = 5, 2000


def main() -> None:
    resolver = "Rust (ua-parser-rs)" if ua_parser.RegexResolver else "pure Python"
    strings = distinct_user_agents(ROUNDS * PER_ROUND, seed=7)
    useragent.parse(strings[0])  # warm up: lazy rule compilation, imports
    costs = []
    for start in range(0, len(strings), PER_ROUND):
        batch = strings[start : start + PER_ROUND]
        began = time.perf_counter()
        for ua in batch:
            useragent.parse(ua)
        costs.append((time.perf_counter() - began) / len(batch))
    print(f"new User-Agent, {resolver}: {statistics.median(costs) * 1e6:.0f} µs (median of rounds)")


if __name__ == "__main__":
    main()
