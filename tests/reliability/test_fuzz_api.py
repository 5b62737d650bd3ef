"""Hostile arguments to track()/track_conversion(): a clear error at the call, or events the
strict Data API accepts with no violation, in both body formats. Nothing in between.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import django_kameleoon
from django_kameleoon.events import EVENT_TYPES, FIELDS, Event
from django_kameleoon.testing import DataApiServer
from tests.support import Configure

# Any character, lone surrogates and control characters included.
ANY_CHAR = st.characters(codec=None, categories=None)
TEXT = st.one_of(
    st.text(ANY_CHAR, max_size=50),
    st.sampled_from(["&", "=", "%", "\n", "a&b=c%d\r\n", "\ud800", "\x00", "é日本"]),
    st.builds(
        lambda c, n: c * n, st.sampled_from(["x", "é", "&", "\ud83d"]), st.integers(0, 100_000)
    ),
)
NUMBERS = st.one_of(
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
GARBAGE = st.recursive(
    st.one_of(TEXT, NUMBERS),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.integers(-(2**33), 2**33), TEXT), inner, max_size=4),
    ),
    max_leaves=12,
)
METADATA = st.one_of(
    GARBAGE,
    st.dictionaries(st.integers(-(2**32), 2**32), st.lists(TEXT, max_size=5), max_size=5),
)
COUNTS = st.one_of(
    GARBAGE,
    st.dictionaries(TEXT, st.integers(-(2**32), 2**32), max_size=5),
)
GOOD_CODES = st.from_regex(r"[A-Za-z0-9_-]{1,100}", fullmatch=True)
# Mostly good codes, so that the fields behind them get exercised too.
VISITOR_CODES = st.one_of(GOOD_CODES, GOOD_CODES, GOOD_CODES, TEXT, NUMBERS)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def field_values(kind: str) -> st.SearchStrategy[Any]:
    """Plausible values of a field's kind, mixed with garbage."""
    plausible: dict[str, st.SearchStrategy[Any]] = {
        "str": TEXT,
        "int32": st.integers(-(2**31) - 1, 2**31),
        "int64": st.integers(-(2**63) - 1, 2**63),
        "float": NUMBERS,
        "bool": st.booleans(),
        "enum": st.sampled_from(["DESKTOP", "PHONE", "SCHEDULE", "PRIORITY", "nope"]),
        "indices": st.lists(st.integers(-(2**32), 2**32), max_size=4),
        "metadata": METADATA,
        "counts": COUNTS,
    }
    return st.one_of(plausible[kind], plausible[kind], plausible[kind], GARBAGE)


@st.composite
def track_calls(draw: st.DrawFn) -> tuple[Any, str, dict[str, Any]]:
    event_type = draw(st.sampled_from(EVENT_TYPES))
    spec = FIELDS[event_type]
    names = draw(st.sets(st.sampled_from(sorted(spec)), max_size=len(spec)))
    required = {name for name, field in spec.items() if field.required}
    if draw(st.integers(0, 4)):
        names |= required
    fields = {name: draw(field_values(spec[name].kind)) for name in names}
    if draw(st.integers(0, 20)) == 0:
        fields["unknownField"] = draw(GARBAGE)
    return draw(VISITOR_CODES), event_type, fields


@pytest.fixture(params=["json", "query"])
def body_format(request: pytest.FixtureRequest, kameleoon: Configure) -> str:
    """The fuzz tests that use it run once for each body format."""
    kameleoon(BODY_FORMAT=request.param)
    return str(request.param)


def fuzz_and_deliver(
    data_api: DataApiServer,
    examples: st.SearchStrategy[Any],
    track: Callable[[Any], Event | None],
    *,
    may_refuse: bool,
) -> None:
    """Call ``track`` on each example: it queues an event or, if it ``may_refuse``, raises
    TypeError or ValueError at the call. Every event queued arrives, breaking no rule."""
    accepted = 0

    @FUZZ
    @given(examples)
    def call(example: Any) -> None:
        nonlocal accepted
        try:
            event = track(example)
        except (TypeError, ValueError):
            if may_refuse:
                return
            raise
        assert event is not None
        accepted += 1

    call()
    assert django_kameleoon.flush(30)
    assert len(data_api.events) == accepted
    assert data_api.violations == []


def track(args: tuple[Any, str, dict[str, Any]]) -> Event | None:
    code, event_type, fields = args
    return django_kameleoon.track(code, event_type, **fields)


@pytest.mark.usefixtures("body_format")
def test_fuzzed_track_calls(data_api: DataApiServer) -> None:
    fuzz_and_deliver(data_api, track_calls(), track, may_refuse=True)


#: Values of the right shape, but hostile: any text of any length, extreme in-range numbers.
WELL_SHAPED: dict[str, st.SearchStrategy[Any]] = {
    "str": TEXT,
    "int32": st.integers(-(2**31), 2**31 - 1),
    "int64": st.integers(-(2**63), 2**63 - 1),
    "float": st.one_of(
        st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**60), 2**60)
    ),
    "bool": st.booleans(),
    "enum": st.sampled_from(["DESKTOP", "TABLET", "PHONE"]),
    "indices": st.lists(st.integers(-(2**31), 2**31 - 1), max_size=4),
    "metadata": st.dictionaries(
        st.integers(-(2**31), 2**31 - 1), st.lists(TEXT, max_size=3), max_size=3
    ),
    "counts": st.dictionaries(TEXT, st.integers(0, 1000), max_size=5),
}


@st.composite
def well_shaped_calls(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    event_type = draw(st.sampled_from([t for t in EVENT_TYPES if t != "PERSONALIZATION"]))
    spec = FIELDS[event_type]
    names = draw(st.sets(st.sampled_from(sorted(spec)))) | {
        name for name, field in spec.items() if field.required
    }
    return draw(GOOD_CODES), event_type, {n: draw(WELL_SHAPED[spec[n].kind]) for n in names}


@pytest.mark.usefixtures("body_format")
def test_hostile_text_in_well_shaped_calls_is_always_delivered(data_api: DataApiServer) -> None:
    """Text is clipped and cleaned, never rejected: every such call must be queued."""
    fuzz_and_deliver(data_api, well_shaped_calls(), track, may_refuse=False)


CONVERSIONS = st.fixed_dictionaries(
    {
        "target": VISITOR_CODES,
        "goal_id": st.one_of(st.integers(-(2**64), 2**64), NUMBERS, TEXT),
        "revenue": NUMBERS,
        "negative": st.one_of(st.booleans(), NUMBERS),
        "metadata": st.one_of(st.none(), METADATA),
    }
)


@pytest.mark.usefixtures("body_format")
def test_fuzzed_conversions(data_api: DataApiServer) -> None:
    def convert(arguments: dict[str, Any]) -> Event | None:
        event = django_kameleoon.track_conversion(**arguments)
        if event is not None:
            revenue = event.fields.get("revenue")
            assert revenue is None or math.isfinite(revenue)
        return event

    fuzz_and_deliver(data_api, CONVERSIONS, convert, may_refuse=True)


def test_decimal_revenue_is_sent_as_a_number(kameleoon: Configure, data_api: DataApiServer) -> None:
    django_kameleoon.track_conversion("visitor", 1, revenue=Decimal("12.34"))
    assert django_kameleoon.flush(5)
    assert data_api.events[0]["revenue"] == 12.34
