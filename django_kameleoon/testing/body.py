"""Examining a whole request: the URL query, the headers, the size, then the body's events.

Both body formats are split here (a JSON array, or one URL-encoded line per event); each event
is then validated by ``validation.examine_event``. ``examine_request`` gives the ``Verdict``
the server answers with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from django_kameleoon.testing.rules import (
    COMMON_FIELDS,
    DEFAULT_USER_AGENT_PREFIXES,
    MAX_BODY_BYTES,
    BodyFormat,
    WireEvent,
)
from django_kameleoon.testing.validation import (
    examine_event,
    field_problem,
    load_json_strictly,
    short_repr,
)

_BAD_PERCENT = re.compile("%(?![0-9A-Fa-f]{2})")


@dataclass
class ParsedBody:
    """A body split into events: each typed, with its problems; plus the body's own problems.

    ``count`` is how many events the body held (lines or array items), valid or not.
    """

    events: list[tuple[WireEvent, list[str]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    count: int = 0


def parse_body(
    body: bytes, *, body_format: BodyFormat, visitor_code: str | None = None
) -> ParsedBody:
    """Split a ``/visit/events`` body in either format, and examine each event."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ParsedBody(problems=[f"body is not valid UTF-8: {exc}"])
    if body_format == "json":
        raws, problems, count = _split_json(text)
    else:
        raws, problems, count = _split_query(text)
    if count == 0 and not problems:
        problems.append("body holds no events")
    parsed = ParsedBody(problems=problems, count=count)
    for position, raw in raws:
        event, event_problems = examine_event(
            raw, from_query=body_format == "query", visitor_code=visitor_code
        )
        nonce = raw.get("nonce")
        where = f"event {position}" + (f" (nonce {nonce})" if isinstance(nonce, str) else "")
        parsed.events.append((event, [f"{where}: {p}" for p in event_problems]))
    return parsed


_Raws = list[tuple[int, Mapping[str, Any]]]


def _split_json(text: str) -> tuple[_Raws, list[str], int]:
    problems: list[str] = []
    try:
        data = load_json_strictly(text, problems)
    except ValueError as exc:
        return [], [f"body is not valid JSON: {exc}"], 0
    if not isinstance(data, list):
        return [], [f"body must be a JSON array of events, got a {type(data).__name__}"], 0
    raws: _Raws = []
    for position, item in enumerate(data, 1):
        if isinstance(item, dict):
            raws.append((position, item))
        else:
            problems.append(f"event {position} is not a JSON object: {short_repr(item)}")
    return raws, problems, len(data)


def _split_query(text: str) -> tuple[_Raws, list[str], int]:
    """One event per line, ``name=value&...``, values percent-encoded.

    Splitting on ``&`` and ``=`` happens before decoding (``parse_qsl``), which is what makes an
    encoded ``%26`` or ``%3D`` inside a value safe. Percent escapes must decode as UTF-8.
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the new line that ends the last line
    raws: _Raws = []
    problems: list[str] = []
    for position, line in enumerate(lines, 1):
        line = line.removesuffix("\r")
        if not line:
            problems.append(f"event {position} is an empty line")
            continue
        bad_escape = _BAD_PERCENT.search(line)
        if bad_escape:
            snippet = line[bad_escape.start() : bad_escape.start() + 3]
            problems.append(f"event {position} has a malformed percent escape {snippet!r}")
            continue
        try:
            pairs = parse_qsl(line, keep_blank_values=True, strict_parsing=True, errors="strict")
        except ValueError as exc:
            problems.append(f"event {position} is not URL-encoded name=value pairs: {exc}")
            continue
        fields: dict[str, str] = {}
        for name, value in pairs:
            if name in fields:
                problems.append(f"event {position} has the field {name!r} twice")
            fields[name] = value
        raws.append((position, fields))
    return raws, problems, len(lines)


@dataclass
class Verdict:
    """What the API makes of a request: the status it answers, and everything wrong."""

    status: int
    query: dict[str, str]
    body_format: BodyFormat
    problems: list[str]
    body: ParsedBody | None = None  # None when the request is refused before the body is read


def examine_request(
    query: str, headers: Mapping[str, str], body: bytes, *, site_code: str | None = None
) -> Verdict:
    """Examine a ``POST /visit/events`` request: URL query, headers, size, then the body.

    Only a malformed URL query (400) or an oversized body (413) is refused; everything else is
    answered 202 and its problems recorded, as the real API accepts before it validates.
    """
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError as exc:
        return Verdict(400, {}, "query", [f"URL query is malformed: {exc}"])
    params: dict[str, str] = {}
    problems: list[str] = []
    for name, value in pairs:
        if name in params:
            problems.append(f"URL query parameter {name} is given twice")
        params[name] = value
    json_flag = params.get("json", "false")
    body_format: BodyFormat = "json" if json_flag == "true" else "query"

    def refuse(status: int, problem: str) -> Verdict:
        return Verdict(status, params, body_format, [*problems, problem])

    if "siteCode" not in params:
        return refuse(400, "URL query lacks the required siteCode")
    if json_flag not in ("true", "false"):
        return refuse(400, f"URL query json={json_flag!r} must be true or false")
    if len(body) > MAX_BODY_BYTES:
        return refuse(413, f"body is {len(body):,} bytes, over the {MAX_BODY_BYTES:,}-byte limit")

    if site_code is not None and params["siteCode"] != site_code:
        problems.append(f"siteCode {params['siteCode']!r} is not this server's {site_code!r}")
    problems += _user_agent_problems(headers.get("User-Agent"))
    visitor_code = params.get("visitorCode")
    if visitor_code is not None:
        problem = field_problem(visitor_code, COMMON_FIELDS["visitorCode"])
        if problem is not None:
            problems.append(f"URL query visitorCode {problem}")
    parsed = parse_body(body, body_format=body_format, visitor_code=visitor_code)
    return Verdict(202, params, body_format, problems + parsed.problems, parsed)


def _user_agent_problems(user_agent: str | None) -> list[str]:
    if not user_agent:
        return ["User-Agent header is missing; a server-side sender must set its own"]
    if user_agent.startswith(DEFAULT_USER_AGENT_PREFIXES):
        return [f"User-Agent {user_agent!r} is the HTTP library's default; set our own"]
    return []
