"""Reputation book and models: validation, golden values, idempotent replay, exact JSON, and the
whitewashing and splitting guarantees of docs/reputation.md."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import betaincinv

import auction
from auction import Market, Offer, OrderBook, Request
from auction.errors import AuctionError, DuplicateIdError, UnknownSchemaError
from auction.reputation import (
    MODELS,
    NEWCOMER_SCORE,
    SCHEMA,
    BetaModel,
    ConflictingEventError,
    Event,
    EventBatch,
    EvidenceWeights,
    IExecModel,
    InvalidEventError,
    InvalidReputationError,
    Outcome,
    ReputationBook,
    UnknownReputationSchemaError,
)
from auction.reputation.models import beta_fold, iexec_fold

ROOT = Path(auction.__file__).resolve().parent.parent
OK, FAIL = Outcome.COMPLETED, Outcome.FAILED
NEGATIVE = [o for o in Outcome if not o.positive]


def ev(i: int | str, provider: str = "p", time: float = 0.0, outcome: Any = OK,
       weight: float = 1.0, tenant: str | None = None) -> Event:
    return Event(id=str(i), provider=provider, time=time, outcome=outcome, weight=weight,
                 tenant=tenant)


# -- strategies ---------------------------------------------------------------------------------
providers = st.sampled_from(["a", "b", "c", "d"])
times = st.one_of(st.integers(0, 50).map(float), st.floats(0, 1e6, allow_nan=False))
weights = st.one_of(st.just(1.0), st.sampled_from([0.5, 2.0, 3.0]),
                    st.floats(1e-3, 1e3, allow_nan=False))


@st.composite
def event_lists(draw: st.DrawFn, min_size: int = 0, max_size: int = 40) -> list[Event]:
    n = draw(st.integers(min_size, max_size))
    return [
        Event(
            id=f"e{i}", provider=draw(providers), time=draw(times),
            outcome=draw(st.sampled_from(list(Outcome))), weight=draw(weights),
            tenant=draw(st.sampled_from([None, "t1", "t2"])),
        )
        for i in range(n)
    ]


models = st.one_of(
    st.builds(BetaModel, half_life=st.sampled_from([1.0, 30.0, 1e4, math.inf]),
              confidence=st.sampled_from([0.5, 0.9, 0.95, 0.99])),
    st.builds(IExecModel, scale=st.sampled_from([1.0, 10.0])),
)


def record_in_batches(book: ReputationBook, events: list[Event], cuts: list[int]) -> None:
    """Record `events` as batches ending at `cuts`, single events recorded one by one."""
    start = 0
    for stop in [*sorted(set(cuts)), len(events)]:
        chunk = events[start:stop]
        if len(chunk) == 1:
            book.record(chunk[0])
        elif chunk:
            book.record_many(EventBatch.from_events(chunk) if stop % 2 else chunk)
        start = max(start, stop)


# -- events -------------------------------------------------------------------------------------
BAD_EVENT_FIELDS: list[tuple[str, Any]] = [
    ("id", ""), ("id", " x"), ("id", "x\n"), ("id", "a\0b"), ("id", 3),
    ("provider", ""), ("provider", None), ("provider", "p "),
    ("time", -1), ("time", math.nan), ("time", math.inf), ("time", "1"), ("time", True),
    ("time", 2**60 + 1), ("time", 2.0**54),
    ("outcome", "bogus"), ("outcome", 1), ("outcome", None),
    ("weight", 0), ("weight", -1.0), ("weight", math.nan), ("weight", 2e9), ("weight", True),
    ("tenant", ""), ("tenant", 5),
]


@pytest.mark.parametrize(("field", "value"), BAD_EVENT_FIELDS)
def test_invalid_event_names_field_value_and_id(field: str, value: Any) -> None:
    fields: dict[str, Any] = {"id": "e1", "provider": "p", "time": 1.0, "outcome": "completed"}
    fields[field] = value
    with pytest.raises(InvalidEventError) as info:
        Event(**fields)
    err = info.value
    assert (err.field, err.value) == (field, value) or (field, value) == ("time", 2**60 + 1)
    assert err.field == field
    assert isinstance(err, InvalidReputationError | AuctionError | ValueError)
    assert err.event_id == (None if field == "id" else "e1")
    assert field in str(err)


def test_event_normalizes_and_round_trips() -> None:
    e = Event(id="e1", provider="p", time=3, outcome="sla_breach", weight=2, tenant="t")
    assert (e.time, e.outcome, e.weight) == (3.0, Outcome.SLA_BREACH, 2.0)
    assert type(e.time) is float
    assert type(e.weight) is float
    assert Event.from_record(e.to_record()) == e
    assert json.loads(json.dumps(e.to_record()))["outcome"] == "sla_breach"
    with pytest.raises(InvalidEventError, match="is not a field") as info:
        Event.from_record({**e.to_record(), "color": "red"})
    assert info.value.field == "color"
    assert info.value.event_id == "e1"
    with pytest.raises(InvalidEventError, match="required") as info:
        Event.from_record({"id": "e1", "provider": "p", "outcome": "failed"})
    assert info.value.field == "time"
    with pytest.raises(InvalidEventError):
        Event.from_record(["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(InvalidEventError):  # validation runs on evolve too
        attrs.evolve(e, weight=0)


def test_outcomes() -> None:
    assert [o.code for o in Outcome] == [0, 1, 2, 3, 4]
    assert {o for o in Outcome if o.positive} == {Outcome.COMPLETED, Outcome.AUDIT_PASSED}


def test_event_batch_columns_and_round_trip() -> None:
    events = [ev(1, "p", 1.0, "completed", 2.0, "t"), ev(2, "q", 0.5, FAIL), ev(3, "p", 2, OK)]
    batch = EventBatch.from_events(events)
    assert list(batch) == events
    assert len(batch) == 3
    assert batch.provider_names == ("p", "q")
    assert batch.provider_codes.tolist() == [0, 1, 0]
    assert batch.tenant_codes.tolist() == [0, -1, -1]
    assert batch.outcomes.dtype == np.int8
    assert not batch.times.flags.writeable
    with pytest.raises(AttributeError):
        batch.times = np.zeros(3)
    cols = batch.to_columns()
    again = EventBatch(cols["id"], cols["provider"], cols["time"], cols["outcome"],
                       cols["weight"], cols["tenant"])
    assert list(again) == events
    coded = EventBatch.from_codes(["1", "2", "3"], ["p", "q"], [0, 1, 0], [1.0, 0.5, 2.0],
                                  np.array([0, 1, 0]), [2.0, 1.0, 1.0], ["t"], [0, -1, -1])
    assert list(coded) == events


@pytest.mark.parametrize(
    ("kwargs", "field", "event_id"),
    [
        ({"times": [0.0, -1.0]}, "time", "b"),
        ({"times": [0.0, math.nan]}, "time", "b"),
        ({"times": np.array([0, 2**60 + 1])}, "time", "b"),
        ({"times": [0.0, "x"]}, "time", "b"),
        ({"outcomes": ["completed", "nope"]}, "outcome", "b"),
        ({"outcomes": np.array([0, 7])}, "outcome", "b"),
        ({"weights": [1.0, 0.0]}, "weight", "b"),
        ({"providers": ["p", ""]}, "provider", "b"),
        ({"providers": ["p", 3]}, "provider", "b"),
        ({"tenants": [None, " t"]}, "tenant", "b"),
        ({"ids": ["a", "a "]}, "id", None),
        ({"ids": ["", "b"]}, "id", None),
        ({"times": [0.0]}, "times", None),
        ({"providers": ["p"]}, "providers", None),
    ],
)
def test_event_batch_errors_name_field_and_event(
    kwargs: dict[str, Any], field: str, event_id: str | None
) -> None:
    args: dict[str, Any] = {"ids": ["a", "b"], "providers": ["p", "q"], "times": [0.0, 1.0],
                            "outcomes": ["completed", "failed"]}
    args.update(kwargs)
    with pytest.raises(InvalidEventError) as info:
        EventBatch(**args)
    assert info.value.field == field
    assert info.value.event_id == event_id


def test_event_batch_from_codes_errors() -> None:
    with pytest.raises(InvalidEventError, match="appears twice"):
        EventBatch.from_codes(["a"], ["p", "p"], [0], [0.0], ["completed"])
    with pytest.raises(InvalidEventError) as info:
        EventBatch.from_codes(["a", "b"], ["p"], [0, 1], [0.0, 0.0], ["completed"] * 2)
    assert (info.value.field, info.value.event_id) == ("provider_codes", "b")
    with pytest.raises(InvalidEventError) as info:
        EventBatch.from_codes(["a"], ["p"], [0], [0.0], ["completed"], None, ["t"], [-2])
    assert info.value.field == "tenant_codes"


def test_evidence_weights() -> None:
    ew = EvidenceWeights()
    assert ew.of("audit_failed") == 6.0
    assert ew.of(Outcome.COMPLETED) == 1.0
    pos, neg = ew.tables()
    assert pos.tolist() == [1.0, 0.0, 0.0, 2.0, 0.0]
    assert neg.tolist() == [0.0, 1.0, 2.0, 0.0, 6.0]
    assert EvidenceWeights.from_record(ew.to_record()) == ew
    bads: tuple[Any, ...] = (-1.0, math.nan, True, "1")
    for bad in bads:
        with pytest.raises(InvalidReputationError) as info:
            EvidenceWeights(failed=bad)
        assert info.value.field == "failed"
        assert not isinstance(info.value, InvalidEventError)  # a parameter, not an event
    with pytest.raises(InvalidReputationError, match="not an outcome"):
        EvidenceWeights.from_record({"lost": 1.0})


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: BetaModel(half_life=0.0), "half_life"),
        (lambda: BetaModel(half_life=-5.0), "half_life"),
        (lambda: BetaModel(half_life=math.nan), "half_life"),
        (lambda: BetaModel(confidence=1.0), "confidence"),
        (lambda: BetaModel(confidence=0.0), "confidence"),
        (lambda: BetaModel(confidence=0.3), "confidence"),
        (lambda: BetaModel(evidence="heavy"), "evidence"),
        (lambda: IExecModel(scale=0.0), "scale"),
        (lambda: ReputationBook("nope"), "model"),
        (lambda: BetaModel.from_params({"half_life": 1.0, "speed": 2}), "speed"),
    ],
)
def test_invalid_parameters(make: Any, field: str) -> None:
    with pytest.raises(InvalidReputationError) as info:
        make()
    assert info.value.field == field


# -- golden values ------------------------------------------------------------------------------
def test_beta_golden_eight_successes_two_failures() -> None:
    events = [ev(i, time=float(i)) for i in range(8)] + [ev(f"f{i}", time=9.0, outcome=FAIL)
                                                         for i in range(2)]
    book = ReputationBook(BetaModel(half_life=math.inf), events)
    op = book.opinion("p")
    assert (op.r, op.s) == (8.0, 2.0)
    assert op.expected == 0.75 == book.expected("p")
    assert op.uncertainty == pytest.approx(1 / 6)
    assert op.belief == pytest.approx(2 / 3)
    assert op.belief + op.disbelief + op.uncertainty == pytest.approx(1.0)
    assert op.lower_bound == pytest.approx(0.43562581171077, rel=1e-12)
    assert op.lower_bound == float(betaincinv(8.0, 4.0, 1 - 0.95))
    assert book.score("p") == op.lower_bound == book.lower_bound("p")
    unknown = book.opinion("nobody")
    assert (unknown.expected, unknown.uncertainty, unknown.lower_bound) == (0.5, 1.0, 0.0)


def test_beta_half_life_halves_evidence() -> None:
    book = ReputationBook(BetaModel(half_life=10.0), [ev(1, time=5.0, weight=4.0)])
    assert book.opinion("p").r == 4.0
    assert book.opinion("p", at=15.0).r == 2.0
    assert book.opinion("p", at=35.0).r == 0.5
    book.record(ev(2, time=15.0, outcome=FAIL))  # decays the 4 to 2, then adds s = 1
    assert (book.opinion("p").r, book.opinion("p").s) == (2.0, 1.0)
    with pytest.raises(InvalidReputationError) as info:
        book.score("p", at=14.0)
    assert info.value.field == "at"


def test_evidence_weights_per_outcome() -> None:
    events = [ev(o.value, time=1.0, outcome=o, weight=2.0) for o in Outcome]
    book = ReputationBook(BetaModel(half_life=math.inf), events)
    assert (book.opinion("p").r, book.opinion("p").s) == (2 * (1 + 2), 2 * (1 + 2 + 6))
    custom = BetaModel(half_life=math.inf, evidence={"audit_failed": 0.0, "completed": 3.0})
    book = ReputationBook(custom, events)
    assert (book.opinion("p").r, book.opinion("p").s) == (2 * (3 + 2), 2 * (1 + 2))


def iexec_reference(outcomes: list[bool]) -> int:
    """The PoCo contract's rule on a uint256: +1, or score * 2 / 3 rounded down."""
    score = 0
    for success in outcomes:
        score = score + 1 if success else score * 2 // 3
    return score


@pytest.mark.parametrize(
    ("sequence", "want"),
    [
        ("", 0), ("F", 0), ("S", 1), ("SSSF", 2), ("SSSFS", 3), ("SSSFSF", 2),
        ("S" * 10 + "F", 6), ("S" * 10 + "FF", 4), ("S" * 10 + "FFFFF", 0),
        ("S" * 8 + "FF", 3), ("FFFSS", 2),
    ],
)
def test_iexec_golden_sequences(sequence: str, want: int) -> None:
    events = [ev(i, time=float(i), outcome=OK if c == "S" else FAIL)
              for i, c in enumerate(sequence)]
    book = ReputationBook("iexec", events)
    got = int(book.table()["iexec_score"][0]) if events else 0
    assert got == want == iexec_reference([c == "S" for c in sequence])
    assert book.score("p") == want / (want + 10.0)


@given(st.lists(st.booleans(), max_size=200), st.integers(0, 2**40))
def test_iexec_kernel_matches_contract_rule(outcomes: list[bool], start: int) -> None:
    score = np.array([start], dtype=np.int64)
    ptr = np.array([0, len(outcomes)], dtype=np.int64)
    iexec_fold(ptr, np.zeros(1, dtype=np.int64), np.array(outcomes, dtype=np.bool_), score)
    ref = start
    for success in outcomes:
        ref = ref + 1 if success else ref * 2 // 3
    assert int(score[0]) == ref


def test_iexec_consensus_weight_and_ignored_weights() -> None:
    assert IExecModel.consensus_weight([0, 9, 11, 12, 30]).tolist() == [2, 2, 2, 3, 9]
    heavy = ReputationBook("iexec", [ev(1, weight=50.0), ev(2, time=1.0, outcome="audit_passed")])
    assert heavy.table()["iexec_score"].tolist() == [2]
    with pytest.raises(InvalidReputationError, match="beta model"):
        heavy.opinion("p")


def test_kernels_match_python_reference() -> None:
    rng = np.random.default_rng(7)
    n, m = 500, 40
    prov = np.sort(rng.integers(0, m, n))
    start = np.flatnonzero(np.r_[True, prov[1:] != prov[:-1]])
    ptr, seg = np.r_[start, n].astype(np.int64), prov[start].astype(np.int64)
    t = np.concatenate([np.sort(rng.random(c) * 100) for c in np.diff(ptr)])
    pos, neg = rng.random(n) * (rng.random(n) < 0.7), rng.random(n)
    outs = []
    for fn in (beta_fold, beta_fold.py_func):
        r, s, lt = np.zeros(m), np.zeros(m), np.full(m, np.nan)
        fn(ptr, seg, t, pos, neg, r, s, lt, 7.5)
        outs.append((r, s, lt))
    for a, b in zip(*outs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    positive = rng.random(n) < 0.8
    got = [np.full(m, 5, dtype=np.int64) for _ in range(2)]
    iexec_fold(ptr, seg, positive, got[0])
    iexec_fold.py_func(ptr, seg, positive, got[1])
    assert np.array_equal(got[0], got[1])


# -- idempotency, replay, JSON --------------------------------------------------------------------
def test_same_id_counts_once_and_conflicts_are_refused() -> None:
    book = ReputationBook("beta", [ev(1, time=1.0), ev(2, time=2.0, outcome=FAIL)])
    before = book.to_json()
    assert book.record(ev(1, time=1.0)) is False
    assert book.record_many([ev(1, time=1.0), ev(2, time=2.0, outcome=FAIL)]) == 0
    assert len(book) == 2
    assert "1" in book
    assert "3" not in book
    assert book.to_json() == before
    with pytest.raises(ConflictingEventError) as info:
        book.record_many([ev(3, time=3.0), ev(1, time=1.0, outcome=FAIL)])
    err = info.value
    assert (err.event_id, err.field, err.recorded, err.given) == ("1", "outcome", "completed",
                                                                  "failed")
    assert isinstance(err, DuplicateIdError)  # one type for every duplicate id
    assert (err.kind, err.id) == ("event", "1")
    assert book.to_json() == before
    assert "3" not in book
    with pytest.raises(ConflictingEventError) as info:  # within one batch
        book.record_many([ev(4, time=4.0), ev(4, time=4.0, weight=2.0)])
    assert info.value.field == "weight"
    assert "4" not in book
    assert book.record_many([ev(5, time=5.0), ev(5, time=5.0)]) == 1
    with pytest.raises(ConflictingEventError, match="tenant"):
        book.record(ev(5, time=5.0, tenant="t"))


@given(events=event_lists(), model=models, data=st.data())
def test_replay_of_any_permutation_with_duplicates_is_bit_identical(
    events: list[Event], model: Any, data: st.DataObject
) -> None:
    reference = ReputationBook.replay(events, model)
    live = ReputationBook(model)
    shuffled = data.draw(st.permutations(events))
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=10)) if events else []
    stream = shuffled + repeats
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=6))
    record_in_batches(live, stream, cuts)
    assert live.to_json() == reference.to_json()
    assert live.scores() == reference.scores()
    assert len(live) == len(events)
    later = (live.clock or 0.0) + 17.0
    assert live.scores(at=later) == reference.scores(at=later)


@given(events=event_lists(min_size=1), model=models, data=st.data())
def test_json_round_trip_is_exact_and_continues_identically(
    events: list[Event], model: Any, data: st.DataObject
) -> None:
    k = data.draw(st.integers(0, len(events)))
    book = ReputationBook(model, events[:k])
    restored = ReputationBook.from_json(book.to_json())
    assert restored.to_json() == book.to_json()
    assert restored.model == book.model
    for b in (book, restored):
        b.record_many(events[k:])
    assert restored.to_json() == book.to_json() == ReputationBook(model, events).to_json()
    table, again = book.table(), restored.table()
    for key, col in table.items():
        assert np.array_equal(np.asarray(col), np.asarray(again[key])), key


def test_json_floats_are_exact_and_snapshots_are_checked() -> None:
    awkward = [ev(1, time=0.1 + 0.2, weight=1 / 3), ev(2, time=1e-300, outcome="audit_failed",
                                                     weight=math.pi, tenant="t")]
    book = ReputationBook(BetaModel(half_life=math.e), awkward)
    data = json.loads(book.to_json())
    assert (data["format"], data["version"]) == ("auction.reputation", 1)
    assert data["events"]["time"] == [0.1 + 0.2, 1e-300]
    assert data["events"]["weight"][0] == 1 / 3
    assert ReputationBook.from_json(book.to_json(indent=2)).to_json() == book.to_json()
    tampered = json.loads(book.to_json())
    tampered["state"]["r"][0] += 1e-16
    with pytest.raises(InvalidReputationError, match="does not match") as info:
        ReputationBook.from_json(json.dumps(tampered))
    assert info.value.field == "state"
    changes: list[tuple[dict[str, Any], str]] = [
        ({"version": 0}, "version"),
        ({"model": {"name": "pagerank"}}, "model"),
        ({"extra": 1}, "extra"),
    ]
    for change, field in changes:
        with pytest.raises(InvalidReputationError) as info:
            ReputationBook.from_json(json.dumps({**data, **change}))
        assert info.value.field == field
    body = {k: v for k, v in data.items() if k not in ("format", "version")}
    # a snapshot of the older single key, {"schema": "auction.reputation/1"}, still reads
    old = ReputationBook.from_json(json.dumps({"schema": SCHEMA, **body}))
    assert old.to_json() == book.to_json()
    assert SCHEMA == "auction.reputation/1"
    refused: list[tuple[dict[str, Any], str, Any]] = [
        ({"schema": "auction.reputation/2"}, "schema", "auction.reputation/2"),
        ({"schema": None}, "schema", None),
        ({"schema": "auction.settlement.ledger/2"}, "schema", "auction.settlement.ledger/2"),
        ({}, "format", None),
        ({"format": "auction.reputation", "version": 2}, "version", 2),
        ({"format": "auction.book", "version": 1}, "format", "auction.book"),
        ({"format": "auction.reputation", "version": 1, "schema": SCHEMA}, "schema", SCHEMA),
    ]
    for head, field, value in refused:
        with pytest.raises(UnknownReputationSchemaError) as unknown:
            ReputationBook.from_json(json.dumps({**head, **body}))
        assert isinstance(unknown.value, UnknownSchemaError)
        assert (unknown.value.field, unknown.value.value) == (field, value)
        assert unknown.value.supported == (SCHEMA,)
    with pytest.raises(InvalidReputationError, match="not valid JSON"):
        ReputationBook.from_json("{")
    with pytest.raises(InvalidReputationError, match="not valid JSON"):
        ReputationBook.from_json(None)  # type: ignore[arg-type]
    bad_event = json.loads(book.to_json())
    bad_event["events"]["weight"][1] = -1
    with pytest.raises(InvalidEventError) as info:
        ReputationBook.from_json(json.dumps(bad_event))
    assert (info.value.field, info.value.event_id) == ("weight", "2")
    inf_book = ReputationBook(BetaModel(half_life=math.inf), awkward)
    assert json.loads(inf_book.to_json())["model"]["half_life"] is None
    assert ReputationBook.from_json(inf_book.to_json()).model == inf_book.model


def test_events_round_trip_in_arrival_order() -> None:
    events = [ev(2, "q", 5.0, FAIL, 2.0, "t"), ev(1, "p", 1.0)]
    book = ReputationBook("iexec", events)
    assert list(book.events()) == events
    assert json.loads(book.to_json())["events"]["id"] == ["1", "2"]  # sorted by id


# -- forgetting -----------------------------------------------------------------------------------
@given(
    value=st.floats(1e-6, 1e9), a=st.floats(0, 1e6), b=st.floats(0, 1e6),
    half_life=st.floats(1e-2, 1e6),
)
def test_decaying_over_a_then_b_equals_decaying_over_a_plus_b(
    value: float, a: float, b: float, half_life: float
) -> None:
    model = BetaModel(half_life=half_life)
    two_steps = model.decay(model.decay(value, a), b)
    one_step = model.decay(value, a + b)
    assert two_steps == pytest.approx(one_step, rel=1e-9, abs=1e-300)


@given(events=event_lists(min_size=1), half_life=st.floats(0.5, 1e5), extra=st.floats(0, 1e3))
def test_folded_evidence_equals_closed_form(
    events: list[Event], half_life: float, extra: float
) -> None:
    model = BetaModel(half_life=half_life)
    book = ReputationBook(model, events)
    at = (book.clock or 0.0) + extra
    pos, neg = model.evidence.tables()
    for p in book.providers:
        mine = [e for e in events if e.provider == p]
        r = math.fsum(e.weight * pos[e.outcome.code] * 2 ** -((at - e.time) / half_life)
                      for e in mine)
        s = math.fsum(e.weight * neg[e.outcome.code] * 2 ** -((at - e.time) / half_life)
                      for e in mine)
        op = book.opinion(p, at=at)
        assert op.r == pytest.approx(r, rel=1e-9, abs=1e-280)
        assert op.s == pytest.approx(s, rel=1e-9, abs=1e-280)


# -- whitewashing and splitting -------------------------------------------------------------------
@st.composite
def histories(draw: st.DrawFn, provider: str = "old") -> list[Event]:
    """Any history of `provider` with at least one failure of some kind."""
    events = draw(event_lists(max_size=25))
    events = [attrs.evolve(e, provider=provider) for e in events]
    failure = Event(id="fail", provider=provider, time=draw(times),
                    outcome=draw(st.sampled_from(NEGATIVE)), weight=draw(weights))
    return [*events, failure]


@given(history=histories(), model=models, extra=st.floats(0, 1e7))
def test_whitewashing_never_pays(history: list[Event], model: Any, extra: float) -> None:
    """For any history with a failure, under any model and parameters, at any time: a fresh
    identity scores at most what the old one does (it scores the minimum, 0)."""
    book = ReputationBook(model, history)
    at = (book.clock or 0.0) + extra
    assert book.score("fresh", at) == NEWCOMER_SCORE == 0.0
    assert book.score("old", at) >= book.score("fresh", at)
    assert "fresh" not in book.scores(at)  # the market's default reputation (0) applies
    market = Market(OrderBook(), reputation=book.scores(at))
    assert market.default_reputation <= book.score("old", at)


@given(history=histories(), future=st.lists(st.booleans(), max_size=30))
def test_iexec_keeping_an_identity_is_never_worse_whatever_comes_next(
    history: list[Event], future: list[bool]
) -> None:
    """iExec's updates are monotone in the score, so a failed identity (score >= 0) stays at or
    above a fresh one (score 0) under any future sequence of outcomes."""
    t0 = max(e.time for e in history) + 1.0
    nxt = [(f"n{i}", t0 + i, OK if good else FAIL) for i, good in enumerate(future)]
    kept = ReputationBook("iexec", history)
    kept.record_many([Event(id=i, provider="old", time=t, outcome=o) for i, t, o in nxt])
    fresh = ReputationBook("iexec", [Event(id=i, provider="new", time=t, outcome=o)
                                     for i, t, o in nxt])
    assert kept.score("old") >= fresh.score("new")


@given(
    events=event_lists(min_size=1, max_size=25),
    shares=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=5),
    capacity=st.floats(1.0, 1e4),
    model=st.builds(BetaModel, half_life=st.sampled_from([5.0, 1e3, math.inf]),
                    confidence=st.sampled_from([0.5, 0.9, 0.95, 0.999])),
)
def test_beta_splitting_work_across_identities_never_adds_influence(
    events: list[Event], shares: list[float], capacity: float, model: BetaModel
) -> None:
    """Split one provider's capacity over identities in shares lambda_i, each identity doing
    that share of every job (weights x lambda_i): total influence <= the merged identity's."""
    total = math.fsum(shares)
    lams = [x / total for x in shares]
    merged = [attrs.evolve(e, provider="merged") for e in events]
    split = [
        attrs.evolve(e, id=f"{e.id}/{k}", provider=f"id{k}", weight=e.weight * lam)
        for k, lam in enumerate(lams) for e in events
    ]
    book = ReputationBook(model, merged + split)
    merged_influence = book.influence({"merged": capacity})["merged"]
    split_influence = book.influence({f"id{k}": capacity * lam for k, lam in enumerate(lams)})
    assert math.fsum(split_influence.values()) <= merged_influence * (1 + 1e-9) + 1e-12


@given(history=histories(), capacity=st.floats(1, 1e4), moved=st.floats(0, 1), model=models)
def test_moving_capacity_to_fresh_identities_never_adds_influence(
    history: list[Event], capacity: float, moved: float, model: Any
) -> None:
    book = ReputationBook(model, history)
    split = book.influence({"old": capacity * (1 - moved), "sybil1": capacity * moved / 2,
                            "sybil2": capacity * moved / 2})
    assert math.fsum(split.values()) <= book.influence({"old": capacity})["old"] * (1 + 1e-12)


@given(successes=st.lists(st.integers(0, 30), min_size=1, max_size=5),
       capacity=st.lists(st.floats(0, 100), min_size=5, max_size=5))
def test_iexec_splitting_successes_never_adds_influence(
    successes: list[int], capacity: list[float]
) -> None:
    events = []
    for k, n in enumerate(successes):
        events += [ev(f"{k}/{i}", f"id{k}", float(i)) for i in range(n)]
        events += [ev(f"m{k}/{i}", "merged", float(i)) for i in range(n)]
    book = ReputationBook("iexec", events)
    caps = dict(zip([f"id{k}" for k in range(len(successes))], capacity, strict=False))
    split = math.fsum(book.influence(caps).values())
    assert split <= book.influence({"merged": math.fsum(caps.values())})["merged"] + 1e-9


@given(r=st.floats(0, 1e4), s=st.floats(0, 1e4), more=st.floats(1e-3, 1e3),
       conf=st.sampled_from([0.5, 0.9, 0.95, 0.999]), lam=st.floats(1e-3, 1.0))
def test_beta_score_is_monotone(r: float, s: float, more: float, conf: float, lam: float) -> None:
    model = BetaModel(confidence=conf)
    lb = float(model.lower_bound(r, s)[0])
    assert 0.0 <= lb <= 1.0
    assert float(model.lower_bound(r + more, s)[0]) >= lb - 1e-300  # more success: not lower
    assert float(model.lower_bound(r, s + more)[0]) <= lb + 1e-300  # more failure: not higher
    assert float(model.lower_bound(lam * r, lam * s)[0]) <= lb * (1 + 1e-9) + 1e-250  # rays
    if r > 0:
        assert lb <= (r + 1) / (r + s + 2)  # below the expected value


def test_more_evidence_at_the_same_rate_ranks_higher() -> None:
    events = [ev(f"a{i}", "few", 0.0, OK if i < 9 else FAIL) for i in range(10)]
    events += [ev(f"b{i}", "many", 0.0, OK if i < 90 else FAIL) for i in range(100)]
    book = ReputationBook(BetaModel(half_life=math.inf), events)
    assert [name for name, _ in book.ranking()] == ["many", "few"]


# -- queries and the market ------------------------------------------------------------------
def test_scores_ranking_table_and_influence() -> None:
    events = [ev(1, "b", 0.0), ev(2, "b", 1.0), ev(3, "a", 1.0), ev(4, "c", 2.0, FAIL),
              ev(5, "d", 2.0)]
    book = ReputationBook(BetaModel(half_life=math.inf), events)
    assert book.clock == 2.0
    assert book.providers == ("a", "b", "c", "d")
    scores = book.scores()
    assert list(scores) == ["a", "b", "c", "d"]
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert scores["c"] == 0.0
    assert scores["b"] > scores["a"] == scores["d"] > 0
    assert book.ranking() == [("b", scores["b"]), ("a", scores["a"]), ("d", scores["d"]),
                              ("c", 0.0)]
    table = book.table()
    assert table["provider"] == ["a", "b", "c", "d"]
    assert table["score"].tolist() == list(scores.values())
    assert book.influence({"b": 8, "zz": 4}) == {"b": 8 * scores["b"], "zz": 0.0}
    with pytest.raises(InvalidReputationError):
        book.influence({"b": -1})
    with pytest.raises(InvalidReputationError):
        book.score(3)  # type: ignore[arg-type]
    empty = ReputationBook()
    assert (empty.clock, empty.scores(), empty.ranking(), len(empty)) == (None, {}, [], 0)
    assert "ReputationBook" in repr(book)
    assert "5 events" in repr(book)


def test_out_of_order_events_refold() -> None:
    model = BetaModel(half_life=3.0)
    late = ReputationBook(model, [ev(1, time=10.0), ev(2, time=20.0, outcome=FAIL)])
    assert late.record(ev(3, time=5.0)) is True  # older than the provider's latest event
    assert late.to_json() == ReputationBook(model, [ev(i, time=t, outcome=o) for i, t, o in [
        (3, 5.0, OK), (1, 10.0, OK), (2, 20.0, FAIL)]]).to_json()


def test_market_takes_the_scores() -> None:
    rep = ReputationBook("beta", [ev(i, "good", float(i)) for i in range(20)]
                         + [ev(f"x{i}", "bad", float(i), FAIL) for i in range(5)])
    orders = OrderBook([
        Offer(id="o1", provider="good", gpu_model="H100", gpus=1, price=3, region="eu",
              vram_gb=80),
        Offer(id="o2", provider="bad", gpu_model="H100", gpus=1, price=1, region="eu",
              vram_gb=80),
        Offer(id="o3", provider="new", gpu_model="H100", gpus=1, price=1, region="eu",
              vram_gb=80),
        Request(id="r1", tenant="t", gpus=1, max_price=5, min_reputation=0.5),
    ])
    market = Market(orders, reputation=rep.scores())
    served = auction.clear(market, "first-price")
    assert served.provider.tolist() == ["good"]


def test_models_registry_and_import_is_light() -> None:
    assert set(MODELS) == {"beta", "iexec"}
    code = textwrap.dedent("""
        import json, sys
        import auction.reputation as rep
        book = rep.ReputationBook("beta")
        print(json.dumps([m for m in ("numba", "scipy") if m in sys.modules]))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "AUCTION_"))}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
