"""Hostile arguments to track()/track_conversion(): a clear error at the call, or events the
strict Data API accepts with no violation, in both body formats. Nothing in between.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import django_kameleoon
from django_kameleoon.events import EVENT_TYPES, FIELDS
from django_kameleoon.testing import DataApiServer
from tests.conftest import Configure

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


def deliver_and_check(data_api: DataApiServer, expected: int) -> None:
    assert django_kameleoon.flush(30)
    assert len(data_api.events) == expected
    assert data_api.violations == []


@pytest.mark.parametrize("body_format", ["json", "query"])
def test_fuzzed_track_calls(
    kameleoon: Configure, data_api: DataApiServer, body_format: str
) -> None:
    kameleoon(BODY_FORMAT=body_format)
    accepted = 0

    @FUZZ
    @given(track_calls())
    def call(args: tuple[Any, str, dict[str, Any]]) -> None:
        nonlocal accepted
        code, event_type, fields = args
        try:
            event = django_kameleoon.track(code, event_type, **fields)
        except (TypeError, ValueError):
            return
        assert event is not None
        accepted += 1

    call()
    deliver_and_check(data_api, accepted)


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


@pytest.mark.parametrize("body_format", ["json", "query"])
def test_hostile_text_in_well_shaped_calls_is_always_delivered(
    kameleoon: Configure, data_api: DataApiServer, body_format: str
) -> None:
    """Text is clipped and cleaned, never rejected: every such call must be queued."""
    kameleoon(BODY_FORMAT=body_format)
    accepted = 0

    @FUZZ
    @given(well_shaped_calls())
    def call(args: tuple[str, str, dict[str, Any]]) -> None:
        nonlocal accepted
        code, event_type, fields = args
        assert django_kameleoon.track(code, event_type, **fields) is not None
        accepted += 1

    call()
    deliver_and_check(data_api, accepted)


@pytest.mark.parametrize("body_format", ["json", "query"])
def test_fuzzed_conversions(
    kameleoon: Configure, data_api: DataApiServer, body_format: str
) -> None:
    kameleoon(BODY_FORMAT=body_format)
    accepted = 0

    @FUZZ
    @given(
        code=VISITOR_CODES,
        goal_id=st.one_of(st.integers(-(2**64), 2**64), NUMBERS, TEXT),
        revenue=NUMBERS,
        negative=st.one_of(st.booleans(), NUMBERS),
        metadata=st.one_of(st.none(), METADATA),
    )
    def call(code: Any, goal_id: Any, revenue: Any, negative: Any, metadata: Any) -> None:
        nonlocal accepted
        try:
            event = django_kameleoon.track_conversion(
                code, goal_id, revenue=revenue, negative=negative, metadata=metadata
            )
        except (TypeError, ValueError):
            return
        assert event is not None
        revenue_sent = event.fields.get("revenue")
        assert revenue_sent is None or math.isfinite(revenue_sent)
        accepted += 1

    call()
    deliver_and_check(data_api, accepted)


def test_decimal_revenue_is_sent_as_a_number(kameleoon: Configure, data_api: DataApiServer) -> None:
    django_kameleoon.track_conversion("visitor", 1, revenue=Decimal("12.34"))
    assert django_kameleoon.flush(5)
    assert data_api.events[0]["revenue"] == 12.34
