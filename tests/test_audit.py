"""Audit sampling: the byte-exact algorithm, its statistics, validation and commit-reveal.

Statistical tests use fixed seeds, so they are deterministic: each either always passes or
always fails. Each rejects at significance 1e-7, so the chance that a correct sampler fails
for an unlucky fixed seed is below 1e-7 per test, under 1e-6 for the whole file.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from auction.errors import InvalidOrderError
from auction.reputation.audit import (
    AETHIR_PERIOD,
    MAX_WEIGHT,
    AuditSchedule,
    audit_sample,
    commit_seed,
    new_seed,
    verify_sample,
    verify_seed,
)

ALPHA = 1e-7


def reference_sample(
    seed: bytes, epoch: int, providers: list[str], weights: list[int], k: int
) -> list[str]:
    """The algorithm as docs/tiers-and-audits.md states it, transcribed step by step."""
    items = sorted((p, w) for p, w in zip(providers, weights, strict=True) if w > 0)
    items.sort(key=lambda pw: pw[0].encode("utf-8"))  # UTF-8 byte order
    prefix = b"auction.audit.v1" + len(seed).to_bytes(4, "big") + seed + epoch.to_bytes(8, "big")
    out = []
    for j in range(k):
        h = hashlib.sha256(prefix + j.to_bytes(4, "big")).digest()
        r = int.from_bytes(h, "big") % sum(w for _, w in items)
        running = 0
        for i, (p, w) in enumerate(items):
            running += w
            if running > r:
                out.append(p)
                del items[i]
                break
    return out


def sequence_probabilities(weights: list[int], k: int) -> dict[tuple[int, ...], Fraction]:
    """Exact probability of every ordered draw of k indices under successive sampling."""
    out = {}
    positive = [i for i, w in enumerate(weights) if w > 0]
    for seq in itertools.permutations(positive, k):
        p, left = Fraction(1), sum(weights)
        for i in seq:
            p *= Fraction(weights[i], left)
            left -= weights[i]
        out[seq] = p
    return out


# -- golden vectors: pinned once, the same on every platform and Python version ---------------
PROVIDERS = ["akash-1", "aethir-7", "io-42", "render-3", "nosana-9", "golem-0"]
WEIGHTS = [8, 1, 4, 0, 2, 16]

GOLDEN = [
    (b"epoch-seed", 0, 3, ["golem-0", "akash-1", "io-42"]),
    (b"epoch-seed", 1, 3, ["golem-0", "akash-1", "io-42"]),
    (b"epoch-seed", 2, 5, ["golem-0", "io-42", "akash-1", "aethir-7", "nosana-9"]),
    ("ünïcode seed", 2**64 - 1, 2, ["golem-0", "aethir-7"]),
    (bytes(range(32)), 1_970_000, 4, ["golem-0", "akash-1", "io-42", "aethir-7"]),
]


@pytest.mark.parametrize(("seed", "epoch", "k", "want"), GOLDEN)
def test_golden_vectors(seed: bytes | str, epoch: int, k: int, want: list[str]) -> None:
    assert audit_sample(seed, epoch, PROVIDERS, WEIGHTS, k) == want


def test_golden_hash_input() -> None:
    """The first draw of epoch 1, byte for byte, as docs/tiers-and-audits.md spells it out."""
    message = (
        b"auction.audit.v1"
        + b"\x00\x00\x00\x0a" + b"epoch-seed"  # u32be(len(seed)), seed
        + b"\x00\x00\x00\x00\x00\x00\x00\x01"  # u64be(epoch)
        + b"\x00\x00\x00\x00"  # u32be(draw)
    )
    digest = hashlib.sha256(message).hexdigest()
    assert digest == "736a46dff74853265a30d83d586d6528274b10ac8f68cec87c97a97bff5988a0"
    # total weight 31; by id: aethir-7 1, akash-1 8, golem-0 16, io-42 4, nosana-9 2, so
    # running totals 1, 9, 25, 29, 31; r = 9 is not below 9, so golem-0 (first total > 9).
    assert int(digest, 16) % 31 == 9
    assert audit_sample(b"epoch-seed", 1, PROVIDERS, WEIGHTS, 1) == ["golem-0"]


def test_many_providers_golden() -> None:
    providers = [f"node-{i:04d}" for i in range(1000)]
    weights = [(i * 7919) % 97 for i in range(1000)]
    got = audit_sample(b"\x00" * 32, 123_456, providers, weights, 8)
    assert got == ["node-0538", "node-0043", "node-0632", "node-0355",
                   "node-0703", "node-0494", "node-0733", "node-0263"]


def test_same_under_other_hash_seeds() -> None:
    """No reliance on Python's randomized `hash`: fresh interpreters agree."""
    code = (
        "import json; from auction.reputation.audit import audit_sample; "
        f"print(json.dumps([audit_sample(s, e, {PROVIDERS!r}, {WEIGHTS!r}, k) "
        f"for s, e, k in {[(g[0], g[1], g[2]) for g in GOLDEN]!r}]))"
    )
    runs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           check=True, timeout=120)
        runs.append(json.loads(p.stdout))
    assert runs[0] == runs[1] == [g[3] for g in GOLDEN]


# -- the implementation is the specification -------------------------------------------------
populations = st.lists(
    st.tuples(
        st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=5),
        st.one_of(st.integers(0, 5), st.integers(0, MAX_WEIGHT)),
    ),
    max_size=12,
    unique_by=lambda pw: pw[0],
)


@given(population=populations, seed=st.binary(min_size=1, max_size=40),
       epoch=st.integers(0, 2**64 - 1), data=st.data())
def test_matches_reference(
    population: list[tuple[str, int]], seed: bytes, epoch: int, data: st.DataObject
) -> None:
    providers = [p for p, _ in population]
    weights = [w for _, w in population]
    k = data.draw(st.integers(0, sum(w > 0 for w in weights)))
    got = audit_sample(seed, epoch, providers, weights, k)
    assert got == reference_sample(seed, epoch, providers, weights, k)
    assert len(set(got)) == k
    assert all(weights[providers.index(p)] > 0 for p in got)  # zero weight never drawn


@given(population=populations, seed=st.binary(min_size=1, max_size=8), data=st.data())
def test_order_of_the_list_does_not_matter(
    population: list[tuple[str, int]], seed: bytes, data: st.DataObject
) -> None:
    k = data.draw(st.integers(0, sum(w > 0 for _, w in population)))
    shuffled = data.draw(st.permutations(population))
    a = audit_sample(seed, 7, [p for p, _ in population], [w for _, w in population], k)
    b = audit_sample(seed, 7, [p for p, _ in shuffled], [w for _, w in shuffled], k)
    assert a == b


@given(n=st.integers(1, 10), zeros=st.sets(st.integers(0, 9)), seed=st.binary(min_size=1))
def test_zero_weight_never_drawn(n: int, zeros: set[int], seed: bytes) -> None:
    providers = [f"p{i}" for i in range(n)]
    weights = [0 if i in zeros else 1 + i for i in range(n)]
    k = sum(w > 0 for w in weights)
    got = audit_sample(seed, 0, providers, weights, k)
    assert sorted(got) == sorted(p for p, w in zip(providers, weights, strict=True) if w)


def test_prefix_property_and_inputs_untouched() -> None:
    providers, weights = list(PROVIDERS), list(WEIGHTS)
    full = audit_sample(b"s", 3, providers, weights, 5)
    for j in range(6):
        assert audit_sample(b"s", 3, providers, weights, j) == full[:j]
    assert (providers, weights) == (PROVIDERS, WEIGHTS)


def test_numpy_weights_and_tuples_accepted() -> None:
    want = audit_sample(b"s", 3, PROVIDERS, WEIGHTS, 3)
    assert audit_sample(b"s", 3, tuple(PROVIDERS), np.array(WEIGHTS), 3) == want
    assert audit_sample(bytearray(b"s"), 3, PROVIDERS, WEIGHTS, 3) == want  # type: ignore[arg-type]


def test_seed_epoch_and_weights_change_the_sample() -> None:
    base = audit_sample(b"s", 3, PROVIDERS, WEIGHTS, 1)
    samples = {tuple(audit_sample(f"s{i}", 3, PROVIDERS, WEIGHTS, 2)) for i in range(30)}
    assert len(samples) > 5
    assert base == audit_sample("s", 3, PROVIDERS, WEIGHTS, 1)  # str seed = its UTF-8 bytes


# -- statistics --------------------------------------------------------------------------------
def _chi2_pvalue(observed: list[int], probabilities: list[Fraction]) -> float:
    n = sum(observed)
    expected = np.array([float(p) * n for p in probabilities])
    assert expected.min() >= 20, "too few draws per cell for the chi-square approximation"
    return float(stats.chisquare(observed, expected).pvalue)


def test_single_draw_frequencies_match_weights() -> None:
    """k = 1: provider i is drawn with probability exactly w_i / W (chi-square, 20k epochs)."""
    providers = ["a", "b", "c", "d", "e", "f", "g", "z"]
    weights = [1, 2, 3, 5, 8, 13, 21, 0]
    epochs = 20_000
    counts = Counter(audit_sample(b"stat-seed-1", e, providers, weights, 1)[0]
                     for e in range(epochs))
    assert counts["z"] == 0
    total = sum(weights)
    positive = [p for p, w in zip(providers, weights, strict=True) if w]
    observed = [counts[p] for p in positive]
    pvalue = _chi2_pvalue(observed, [Fraction(w, total) for w in weights if w])
    assert pvalue > ALPHA, (pvalue, observed)
    # The test has power: the same counts reject weights only 25% off for one provider.
    skewed = [1, 2, 3, 5, 8, 13, 26]
    assert _chi2_pvalue(observed, [Fraction(w, sum(skewed)) for w in skewed]) < ALPHA


def test_multi_draw_distribution_matches_successive_sampling() -> None:
    """k = 3 of 6: the distribution over ordered draws equals the exact successive-sampling
    law (enumerated with fractions), and each inclusion frequency its exact probability."""
    providers = ["u", "v", "w", "x", "y", "z"]
    weights = [1, 2, 3, 4, 6, 12]
    k, epochs = 2, 20_000
    law = sequence_probabilities(weights, k)
    draws = [audit_sample(b"stat-seed-2", e, providers, weights, k) for e in range(epochs)]
    seqs = Counter(tuple(providers.index(p) for p in d) for d in draws)
    keys = sorted(law)
    pvalue = _chi2_pvalue([seqs[s] for s in keys], [law[s] for s in keys])
    assert pvalue > ALPHA, pvalue

    k = 3
    law = sequence_probabilities(weights, k)
    sets: dict[frozenset[int], Fraction] = {}
    for seq, p in law.items():
        sets[frozenset(seq)] = sets.get(frozenset(seq), Fraction(0)) + p
    draws = [audit_sample(b"stat-seed-3", e, providers, weights, k) for e in range(epochs)]
    got = Counter(frozenset(providers.index(p) for p in d) for d in draws)
    keys3 = sorted(sets, key=sorted)
    assert _chi2_pvalue([got[s] for s in keys3], [sets[s] for s in keys3]) > ALPHA
    inclusion = Counter(p for d in draws for p in d)
    for i, name in enumerate(providers):
        exact = sum(p for s, p in sets.items() if i in s)
        test = stats.binomtest(inclusion[name], epochs, float(exact))
        assert test.pvalue > ALPHA / len(providers), (name, inclusion[name], float(exact))


def test_exact_inclusion_is_not_proportional() -> None:
    """Documented fact: for k > 1, inclusion probabilities are not k w_i / W (successive
    sampling favours small weights relative to that), which the docs warn about."""
    weights = [1, 2, 3, 4, 6, 12]
    law = sequence_probabilities(weights, 3)
    incl_small = sum(p for s, p in law.items() if 0 in s)
    assert incl_small > Fraction(3 * 1, sum(weights))


# -- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"seed": b""}, "seed"),
        ({"seed": 123}, "seed"),
        ({"seed": "\ud800"}, "seed"),
        ({"epoch": -1}, "epoch"),
        ({"epoch": 2**64}, "epoch"),
        ({"epoch": 1.0}, "epoch"),
        ({"epoch": True}, "epoch"),
        ({"providers": ["a", "a"], "weights": [1, 2]}, "providers[1]"),
        ({"providers": ["a", ""], "weights": [1, 2]}, "providers[1]"),
        ({"providers": ["a", 3], "weights": [1, 2]}, "providers[1]"),
        ({"providers": ["a", "\udc80"], "weights": [1, 2]}, "providers[1]"),
        ({"providers": "ab", "weights": [1, 2]}, "providers"),
        ({"providers": ["a", "b"], "weights": [1]}, "weights"),
        ({"providers": ["a", "b"], "weights": 3}, "weights"),
        ({"providers": ["a", "b"], "weights": [1, -1]}, "weights[1]"),
        ({"providers": ["a", "b"], "weights": [1, 1.5]}, "weights[1]"),
        ({"providers": ["a", "b"], "weights": [1, True]}, "weights[1]"),
        ({"providers": ["a", "b"], "weights": [1, 2**64]}, "weights[1]"),
        ({"k": -1}, "k"),
        ({"k": 2.0}, "k"),
        ({"providers": ["a", "b"], "weights": [1, 0], "k": 2}, "k"),
    ],
)
def test_invalid_inputs_name_the_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"seed": b"s", "epoch": 0, "providers": ["a", "b"],
                               "weights": [1, 1], "k": 1, **kwargs}
    with pytest.raises(InvalidOrderError) as info:
        audit_sample(**args)  # type: ignore[arg-type]
    assert info.value.field == field


@given(weights=st.lists(st.one_of(st.integers(max_value=-1), st.floats(), st.booleans(),
                                  st.integers(min_value=2**64)), min_size=1, max_size=4))
def test_no_invalid_weight_accepted(weights: list[object]) -> None:
    providers = [f"p{i}" for i in range(len(weights))]
    with pytest.raises(InvalidOrderError):
        audit_sample(b"s", 0, providers, weights, 0)  # type: ignore[arg-type]


def test_k_zero_and_empty_population() -> None:
    assert audit_sample(b"s", 0, [], [], 0) == []
    assert audit_sample(b"s", 0, ["a"], [0], 0) == []
    with pytest.raises(InvalidOrderError, match="exceeds the 0 providers"):
        audit_sample(b"s", 0, ["a"], [0], 1)


# -- epochs and commit-reveal ------------------------------------------------------------------
def test_schedule_epochs() -> None:
    s = AuditSchedule()
    assert s.period == AETHIR_PERIOD == 900
    assert [s.epoch_at(t) for t in (0, 899, 900, 1799.999, 1800, 1800.0)] == [0, 0, 1, 1, 2, 2]
    assert s.start_of(2) == 1800
    o = AuditSchedule(period=60, origin=1_700_000_000)
    assert o.epoch_at(1_700_000_000) == 0
    assert o.epoch_at(1_700_000_059.75) == 0
    assert o.epoch_at(o.start_of(5)) == 5
    assert s.sample(b"s", 1799.5, PROVIDERS, WEIGHTS, 2) == audit_sample(
        b"s", 1, PROVIDERS, WEIGHTS, 2)
    for bad, field in [({"period": 0}, "period"), ({"period": 1.5}, "period"),
                       ({"origin": -1}, "origin")]:
        with pytest.raises(InvalidOrderError) as info:
            AuditSchedule(**bad)  # type: ignore[arg-type]
        assert info.value.field == field
    for t in (-1, float("nan"), float("inf"), "10", True):
        with pytest.raises(InvalidOrderError):
            s.epoch_at(t)  # type: ignore[arg-type]


@given(t=st.integers(0, 2**40), period=st.integers(1, 10**6), origin=st.integers(0, 2**30))
def test_epoch_is_floor_division(t: int, period: int, origin: int) -> None:
    s = AuditSchedule(period=period, origin=origin)
    if t < origin:
        with pytest.raises(InvalidOrderError):
            s.epoch_at(t)
        return
    e = s.epoch_at(t)
    assert e == (t - origin) // period
    assert s.start_of(e) <= t < s.start_of(e + 1)


def test_commit_reveal() -> None:
    seed = new_seed()
    assert len(seed) == 32
    assert new_seed() != seed
    c = commit_seed(seed)
    assert c == hashlib.sha256(seed).hexdigest()
    assert verify_seed(seed, c)
    assert verify_seed(seed, c.upper())
    assert not verify_seed(seed + b"x", c)
    assert commit_seed("abc") == commit_seed(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    for bad in ("zz" * 32, c[:-1], 7):
        with pytest.raises(InvalidOrderError) as info:
            verify_seed(seed, bad)  # type: ignore[arg-type]
        assert info.value.field == "commitment"

    seed = b"revealed seed"  # fixed, so that the checks below are deterministic
    c = commit_seed(seed)
    kw = {"seed": seed, "commitment": c, "epoch": 9, "providers": PROVIDERS, "weights": WEIGHTS}
    sample = audit_sample(seed, 9, PROVIDERS, WEIGHTS, 3)
    assert sample != audit_sample(seed, 10, PROVIDERS, WEIGHTS, 3)
    assert verify_sample(sample, **kw)  # type: ignore[arg-type]
    assert not verify_sample(sample[::-1], **kw)  # type: ignore[arg-type]
    assert not verify_sample(sample, **{**kw, "epoch": 10})  # type: ignore[arg-type]
    assert not verify_sample(sample, **{**kw, "seed": new_seed()})  # type: ignore[arg-type]
    assert not verify_sample([*sample, "x", "y", "z", "w"], **kw)  # type: ignore[arg-type]
