"""The local collector: its one-line formatting, its JSON Lines file, and its command line.

The formatting is tested on plain dicts; everything else against the real server it wraps,
posted to over HTTP, and the command line as a real process stopped by Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import io
import json
import re
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from django_kameleoon import collector
from django_kameleoon.collector import (
    Collector,
    VisitorSummary,
    count_by_type,
    format_event,
    format_table,
    format_violation,
    summarize_visitors,
    visitor_table,
)
from django_kameleoon.events import EVENT_TYPES
from tests.support import python_module, run_python, spawn

SITE = "collector-site"
UA = "django-kameleoon-tests/1.0"
CODE = "abc123"


def event(event_type: str, n: int = 0, **fields: Any) -> dict[str, Any]:
    return {"visitorCode": CODE, "nonce": f"{n:016x}", "eventType": event_type, **fields}


ONE_OF_EACH: dict[str, dict[str, Any]] = {
    "STATICDATA": event(
        "STATICDATA",
        1,
        browser="Chrome",
        browserVersion=120.0,
        os="Windows",
        deviceType="DESKTOP",
        localeLanguageTag="fr",
    ),
    "PAGE": event("PAGE", 2, href="https://shop.example/p?x=1", title="Teapot"),
    "CONVERSION": event("CONVERSION", 3, goalId=7, revenue=5.5),
    "TARGETINGSEGMENT": event("TARGETINGSEGMENT", 4, id=12),
    "EXPERIMENT": event("EXPERIMENT", 5, id=100, variationId=200),
    "PERSONALIZATION": event(
        "PERSONALIZATION", 6, id=300, variationId=0, unexpositionCause="SCHEDULE"
    ),
    "WEATHER": event(
        "WEATHER",
        7,
        temperature=293.15,
        humidity=40.0,
        pressure=1013.0,
        windSpeed=3.5,
        cloudiness=20.0,
        sunriseTime=1735714800000,
        sunsetTime=1735746000000,
    ),
    "CUSTOMDATA": event("CUSTOMDATA", 8, index=3, valuesCountMap={"gold": 1}),
    "PRODUCT": event("PRODUCT", 9, ean="4006381333931"),
    "GEOLOCATION": event("GEOLOCATION", 10, city="Paris", country="France", latitude=48.85),
}


# --------------------------------------------------------------------------------------------
# One event, one line
# --------------------------------------------------------------------------------------------


def test_the_brief_s_examples_read_as_promised() -> None:
    assert format_event(ONE_OF_EACH["PAGE"]) == (
        'PAGE       v=abc123  https://shop.example/p?x=1  "Teapot"'
    )
    assert format_event(ONE_OF_EACH["CONVERSION"]) == "CONVERSION v=abc123  goal=7 revenue=5.5"
    assert format_event(ONE_OF_EACH["STATICDATA"]) == (
        "STATICDATA v=abc123  Chrome 120 / Windows / DESKTOP / fr"
    )


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_type_gives_one_line_with_its_key_fields(event_type: str) -> None:
    line = format_event(ONE_OF_EACH[event_type])
    assert "\n" not in line
    assert line.startswith(f"{event_type} ") and " v=abc123  " in line
    assert "nonce" not in line and "eventType" not in line
    key_values = {
        "TARGETINGSEGMENT": "segment=12",
        "EXPERIMENT": "experiment=100 variation=200",
        "PERSONALIZATION": "variation=0 cause=SCHEDULE",
        "WEATHER": "293.15 K",
        "CUSTOMDATA": 'index=3 values={"gold":1}',
        "PRODUCT": "ean=4006381333931",
        "GEOLOCATION": "Paris, France (48.85, ?)",
    }
    assert key_values.get(event_type, "") in line


def test_page_details_canonical_referrer_and_key_pages() -> None:
    page = event(
        "PAGE",
        href="https://a/x",
        canonicalHref="https://a/canonical",
        referrerHref="https://b/",
        keyPageIndices=[3, 7],
    )
    assert format_event(page) == (
        "PAGE       v=abc123  https://a/x  canonical=https://a/canonical  from https://b/  "
        "key_pages=[3,7]"
    )
    same = event("PAGE", href="https://a/x", canonicalHref="https://a/x")
    assert "canonical" not in format_event(same)


def test_a_negative_conversion_is_marked_and_metadata_shown() -> None:
    line = format_event(event("CONVERSION", goalId=7, negative=True, metadata={"1": ["a"]}))
    assert line == 'CONVERSION v=abc123  goal=7 NEGATIVE metadata={"1":["a"]}'


def test_visitor_text_cannot_break_the_line_or_reach_the_terminal_raw() -> None:
    line = format_event(event("PAGE", href="https://a/\nINJECTED", title="\x1b[31mred" + "x" * 500))
    assert "\n" not in line and "\x1b" not in line
    assert "\\n" in line and "\\x1b" in line
    assert len(line) < 300 and line.endswith('…"')


def test_an_unknown_or_partial_event_is_still_one_line() -> None:
    assert format_event({"eventType": "NEW", "a": 1}) == "NEW        v=?  a=1"
    assert format_event(event("STATICDATA")) == "STATICDATA v=abc123  (no details)"
    assert format_event(event("PAGE")) == "PAGE       v=abc123  (no href)"


def test_violations_are_loud() -> None:
    assert format_violation("PAGE.href is missing") == "!! VIOLATION: PAGE.href is missing"


# --------------------------------------------------------------------------------------------
# Summaries and tables
# --------------------------------------------------------------------------------------------


def test_visitors_are_summarised_in_order_of_appearance() -> None:
    events = [
        ONE_OF_EACH["STATICDATA"],
        ONE_OF_EACH["PAGE"],
        {"visitorCode": "other", "eventType": "PAGE", "href": "x"},
        ONE_OF_EACH["CONVERSION"],
        event("CONVERSION", goalId=8, revenue=10),
        event("CONVERSION", goalId=8, revenue=10, negative=True),
    ]
    summaries = summarize_visitors(events)
    assert list(summaries) == [CODE, "other"]
    mine = summaries[CODE]
    assert (mine.device, mine.browser, mine.os, mine.locale) == (
        "DESKTOP",
        "Chrome 120",
        "Windows",
        "fr",
    )
    assert (mine.pages, mine.conversions, mine.revenue, mine.events) == (1, 1, 5.5, 5)
    assert count_by_type(events) == {"STATICDATA": 1, "PAGE": 2, "CONVERSION": 3}


def test_tables_align_text_left_and_numbers_right() -> None:
    lines = format_table(["who", "n"], [["a", 1], ["bbb", 22]])
    assert lines == ["who   n", "---  --", "a     1", "bbb  22"]


def test_the_visitor_table_can_name_visitors() -> None:
    summary = VisitorSummary(CODE, device="PHONE", pages=2, conversions=1, revenue=19.99)
    lines = visitor_table([summary], {CODE: "iPhone"})
    assert lines[0].split() == [
        "visitor",
        "who",
        "device",
        "browser",
        "os",
        "locale",
        "pages",
        "conv.",
        "revenue",
    ]
    assert lines[2].split() == [CODE, "iPhone", "PHONE", "2", "1", "19.99"]


# --------------------------------------------------------------------------------------------
# Against the real server
# --------------------------------------------------------------------------------------------


def post(url: str, body: bytes, *, json_format: bool = True) -> requests.Response:
    params = {"siteCode": SITE, **({"json": "true"} if json_format else {})}
    return requests.post(
        url + "/visit/events", params=params, data=body, headers={"User-Agent": UA}, timeout=5
    )


def test_each_accepted_event_is_printed_and_appended_as_json_lines(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text('{"kept": "from an earlier run"}\n')
    events = list(ONE_OF_EACH.values())
    with Collector(port=0, site_code=SITE, jsonl=jsonl, out=out, err=err) as server:
        assert post(server.url, json.dumps(events).encode()).status_code == 202
        query = (
            "nonce=00000000000000ff&eventType=PAGE&visitorCode=q&href=https%3A%2F%2Fq%2F%3Fa%3D1"
        )
        assert post(server.url, query.encode(), json_format=False).status_code == 202
        received = server.server.wait_for_events(len(events) + 1)
    lines = out.getvalue().splitlines()
    assert lines == [format_event(e) for e in received]
    assert lines[-1] == "PAGE       v=q  https://q/?a=1"
    stored = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert stored == [{"kept": "from an earlier run"}, *received]
    assert err.getvalue() == ""


def test_violations_go_to_stderr_and_the_event_is_still_shown() -> None:
    out, err = io.StringIO(), io.StringIO()
    with Collector(port=0, site_code=SITE, out=out, err=err) as server:
        bad = [event("CONVERSION", goalId="seven")]
        assert post(server.url, json.dumps(bad).encode()).status_code == 202
        server.server.wait_for_events(1)
        assert server.server.violations
    assert err.getvalue().startswith("!! VIOLATION: event 1 (nonce 0000000000000000): ")
    assert "CONVERSION.goalId" in err.getvalue()
    assert out.getvalue() == "CONVERSION v=abc123  goal=seven\n"


def test_a_repeated_post_is_printed_and_counted_as_duplicates() -> None:
    """A retry after a lost answer repeats its events' nonces: the API keeps each once, and the
    collector shows every copy it got and counts them."""
    out = io.StringIO()
    body = json.dumps([ONE_OF_EACH["PAGE"], ONE_OF_EACH["CONVERSION"]]).encode()
    with Collector(port=0, site_code=SITE, out=out) as server:
        for _ in range(2):
            assert post(server.url, body).status_code == 202
        server.server.wait_for_requests(2)
        summary = server.summary()
    first = [format_event(ONE_OF_EACH["PAGE"]), format_event(ONE_OF_EACH["CONVERSION"])]
    assert out.getvalue().splitlines() == [
        *first,
        *(f"DUPLICATE  {line}  [nonce already received]" for line in first),
    ]
    assert summary[0] == "received 2 event(s): CONVERSION 1, PAGE 1"
    assert "2 duplicate(s): a nonce received before (a retry), which the API keeps once" in summary


def options(**overrides: Any) -> Any:
    return collector.build_parser().parse_args(
        [f"--{k.replace('_', '-')}={v}" for k, v in {"port": 0, **overrides}.items()]
    )


class Sink:
    """A stream whose lines can be awaited: ``run`` writes from its own thread."""

    def __init__(self) -> None:
        self.text = ""
        self._changed = threading.Condition()

    def write(self, text: str) -> int:
        with self._changed:
            self.text += text
            self._changed.notify_all()
        return len(text)

    def flush(self) -> None:
        pass

    def wait_for(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        with self._changed:
            found = self._changed.wait_for(lambda: re.search(pattern, self.text, re.M), timeout)
        assert found, f"no {pattern!r} in {self.text!r}"
        return found


def test_run_stops_on_request_and_reports_what_it_received() -> None:
    out = Sink()
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(collector.run(options(), out=out, stop=stop))
    )
    thread.start()
    url = out.wait_for(r"listening on (http://\S+)").group(1)
    post(url, json.dumps([ONE_OF_EACH["PAGE"]]).encode())
    out.wait_for("^PAGE ")
    stop.set()
    thread.join(timeout=10)
    assert result == [0]
    assert f'KAMELEOON["DATA_API_URL"] = "{url}"' in out.text
    assert "received 1 event(s): PAGE 1" in out.text and "no violations" in out.text


def test_run_says_when_the_port_is_taken() -> None:
    err = io.StringIO()
    with Collector(port=0) as busy:
        status = collector.run(options(port=busy.server.port), err=err)
    assert status == 2
    assert f"cannot listen on 127.0.0.1:{busy.server.port}" in err.getvalue()


# --------------------------------------------------------------------------------------------
# The command line, as a real process
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_module_serves_until_ctrl_c_or_sigterm(signum: int, tmp_path: Path) -> None:
    jsonl = tmp_path / "out.jsonl"
    argv = python_module("django_kameleoon.collector", "--port=0", f"--jsonl={jsonl}")
    with spawn(argv, tmp_path / "collector.log") as process:
        url = process.wait_for_output(r"listening on (http://\S+)").group(1)
        post(url, json.dumps([ONE_OF_EACH["CONVERSION"]]).encode())
        process.wait_for_output(r"^CONVERSION v=abc123  goal=7 revenue=5.5$")
        post(url, json.dumps([ONE_OF_EACH["CONVERSION"]]).encode())  # a retry, say
        process.wait_for_output(r"^DUPLICATE  CONVERSION v=abc123  goal=7 revenue=5.5  \[")
        process.stop(signum, timeout=20)
    output = process.output()
    assert process.popen.returncode == 0, output
    assert "received 1 event(s): CONVERSION 1" in output
    assert "1 duplicate(s)" in output
    assert "Traceback" not in output
    assert json.loads(jsonl.read_text()) == ONE_OF_EACH["CONVERSION"]


def test_the_collector_does_not_import_django() -> None:
    code = (
        "import sys, django_kameleoon.collector; "
        "print(sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')))"
    )
    result = run_python("-c", code, timeout=30)
    assert result.stdout.strip() == "[]", result.stderr


def test_the_management_command_defaults_to_the_site_code(tmp_path: Path) -> None:
    argv = python_module("django", "kameleoon_collector", "--port=0")
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings"}
    with spawn(argv, tmp_path / "collector.log", env=env) as process:
        url = process.wait_for_output(r"listening on (http://\S+)").group(1)
        process.wait_for_output(r"siteCode: 'testsite01' only")
        wrong_site = [ONE_OF_EACH["PRODUCT"]]
        post(url, json.dumps(wrong_site).encode())  # posted with siteCode=collector-site
        process.wait_for_output(r"^!! VIOLATION: siteCode 'collector-site' is not this server's")
        process.stop(signal.SIGTERM, timeout=20)
    output = process.output()
    assert process.popen.returncode == 1, output  # a session with violations ends non-zero
    assert "PRODUCT    v=abc123  ean=4006381333931" in output
