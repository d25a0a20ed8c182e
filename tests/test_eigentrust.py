"""EigenTrust: a distribution that solves the fixed point, against a dense solve, and what
pre-trusted peers resist (collusion, whitewashing, sybil splitting)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auction.reputation import (
    Event,
    InvalidReputationError,
    Outcome,
    ReputationBook,
    eigentrust,
    eigentrust_arrays,
)

ALPHA = 0.15


@st.composite
def rating_graphs(
    draw: st.DrawFn, max_peers: int = 12, max_ratings: int = 60, exact: bool = False
) -> dict[str, Any]:
    """Random ratings; `exact`: amounts in quarters, so every sum of them is exact and a
    reference computed in another order agrees on which peers have positive trust."""
    n = draw(st.integers(1, max_peers))
    m = draw(st.integers(0, max_ratings))
    codes = st.integers(0, n - 1)
    amount = st.integers(0, 40).map(lambda k: k / 4) if exact else st.one_of(
        st.just(0.0), st.floats(0, 10, allow_nan=False))
    pre = draw(st.one_of(st.none(), st.lists(st.floats(0, 5), min_size=n, max_size=n).filter(
        lambda w: sum(w) > 0)))
    return {
        "rater": np.array(draw(st.lists(codes, min_size=m, max_size=m)), dtype=np.int64),
        "ratee": np.array(draw(st.lists(codes, min_size=m, max_size=m)), dtype=np.int64),
        "sat": np.array(draw(st.lists(amount, min_size=m, max_size=m))),
        "unsat": np.array(draw(st.lists(amount, min_size=m, max_size=m))),
        "n": n,
        "pre": None if pre is None else np.array(pre),
        "alpha": draw(st.sampled_from([0.05, 0.15, 0.5, 1.0])),
    }


def dense_solution(g: dict[str, Any]) -> np.ndarray:
    """t = alpha (I - (1 - alpha) C^T)^-1 p with rows of no positive rating replaced by p."""
    n = g["n"]
    p = np.full(n, 1.0 / n) if g["pre"] is None else g["pre"] / g["pre"].sum()
    s = np.zeros((n, n))
    np.add.at(s, (g["rater"], g["ratee"]), g["sat"])
    np.add.at(s, (g["rater"], g["ratee"]), -g["unsat"])
    s = np.maximum(s, 0.0)
    c = np.empty((n, n))
    for i in range(n):
        c[i] = s[i] / s[i].sum() if s[i].sum() > 0 else p
    return np.linalg.solve(np.eye(n) - (1 - g["alpha"]) * c.T, g["alpha"] * p)


@given(rating_graphs())
def test_trust_is_a_distribution(g: dict[str, Any]) -> None:
    t, iterations, converged, residual = eigentrust_arrays(
        g["rater"], g["ratee"], g["sat"], g["unsat"], g["n"], g["pre"], alpha=g["alpha"],
        tol=1e-13,
    )
    assert converged
    assert residual <= 1e-13
    assert (t >= 0).all()
    assert math.fsum(t.tolist()) == pytest.approx(1.0, abs=1e-12)
    # contraction by (1 - alpha) per step from a distance of at most 2
    bound = 1 if g["alpha"] == 1.0 else math.log(1e-13 / 2) / math.log(1 - g["alpha"]) + 2
    assert iterations <= bound


@given(rating_graphs(exact=True))
def test_trust_is_the_fixed_point(g: dict[str, Any]) -> None:
    t, *_ = eigentrust_arrays(g["rater"], g["ratee"], g["sat"], g["unsat"], g["n"], g["pre"],
                              alpha=g["alpha"], tol=1e-13)
    np.testing.assert_allclose(t, dense_solution(g), atol=1e-11)


@given(rating_graphs(), st.randoms(use_true_random=False))
def test_order_of_ratings_does_not_matter(g: dict[str, Any], rnd: Any) -> None:
    perm = list(range(len(g["rater"])))
    rnd.shuffle(perm)
    a = eigentrust_arrays(g["rater"], g["ratee"], g["sat"], g["unsat"], g["n"], g["pre"],
                          alpha=g["alpha"])
    b = eigentrust_arrays(g["rater"][perm], g["ratee"][perm], g["sat"][perm],
                          g["unsat"][perm], g["n"], g["pre"], alpha=g["alpha"])
    assert np.array_equal(a[0], b[0])
    assert a[1:] == b[1:]


def test_golden_three_peers() -> None:
    """t rates A (3) and B (1) and is the only pre-trusted peer; A and B rate nobody, so their
    trust returns to t: t_t = 1 / (2 - a), t_A = 0.75 (1 - a) t_t, t_B = 0.25 (1 - a) t_t."""
    res = eigentrust(["t", "t"], ["A", "B"], [3.0, 1.0], pretrusted=["t"], alpha=ALPHA, tol=1e-15)
    tt = 1 / (2 - ALPHA)
    want = {"A": 0.75 * (1 - ALPHA) * tt, "B": 0.25 * (1 - ALPHA) * tt, "t": tt}
    assert res.peers == ("A", "B", "t")
    assert res.providers == ("A", "B")
    for peer, value in want.items():
        assert res.trust_of(peer) == pytest.approx(value, rel=1e-12)
    assert res.converged
    assert res.trust_of("nobody") == 0.0
    assert res.distribution() == pytest.approx({"A": 0.75, "B": 0.25}, rel=1e-12)
    assert res.scores() == pytest.approx({"A": 1.0, "B": 1 / 3}, rel=1e-12)
    assert res.distribution(["A", "zz"]) == {"A": 1.0, "zz": 0.0}
    assert not res.trust.flags.writeable


def test_unsatisfactory_ratings_clip_at_zero() -> None:
    res = eigentrust(["t", "t"], ["A", "B"], [3.0, 1.0], [1.0, 5.0], pretrusted=["t"])
    assert res.trust_of("B") == 0.0
    assert res.scores() == {"A": 1.0, "B": 0.0}


def test_colluders_without_trusted_raters_get_nothing() -> None:
    """A clique rating itself up gets no trust that pre-trusted peers did not give it."""
    raters = ["t", "t", "x", "y", "z", "x", "y", "z"]
    ratees = ["A", "B", "y", "z", "x", "z", "x", "y"]
    sat = [5.0, 5.0, 1e6, 1e6, 1e6, 1e6, 1e6, 1e6]
    res = eigentrust(raters, ratees, sat, pretrusted=["t"])
    assert res.trust_of("x") == res.trust_of("y") == res.trust_of("z") == 0.0
    plain = eigentrust(raters, ratees, sat)  # uniform p: the clique keeps what it is given
    assert plain.trust_of("x") > plain.trust_of("A")


@given(rating_graphs(max_peers=8), st.data())
def test_whitewashing_a_fresh_identity_gets_nothing(g: dict[str, Any], data: Any) -> None:
    n = g["n"]
    names = [f"p{i}" for i in range(n)]
    pre = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=3))
    res = eigentrust([names[i] for i in g["rater"]], [names[i] for i in g["ratee"]],
                     g["sat"], g["unsat"], pretrusted=pre, providers=["fresh"])
    assert res.trust_of("fresh") == 0.0
    assert all(res.trust_of(p) >= 0.0 for p in names)
    assert res.scores()["fresh"] == 0.0


@given(rating_graphs(max_peers=8), st.lists(st.floats(0.05, 1.0), min_size=2, max_size=4))
def test_splitting_a_provider_never_adds_trust(g: dict[str, Any], shares: list[float]) -> None:
    """Provider P, rated by peers (never pre-trusted, rating nobody), splits into identities,
    each receiving the share lambda_k of every rating: total trust does not grow."""
    names = [f"p{i}" for i in range(g["n"])]
    raters = [names[i] for i in g["rater"]]
    sat, unsat = g["sat"], g["unsat"]
    lam = np.array(shares) / sum(shares)
    merged = eigentrust(raters + names, ["P"] * len(raters) + names,
                        np.r_[sat, np.ones(len(names))], np.r_[unsat, np.zeros(len(names))],
                        pretrusted=names)
    split_raters = raters * len(lam) + names
    split_ratees = [f"P{k}" for k in range(len(lam)) for _ in raters] + names
    split = eigentrust(
        split_raters, split_ratees,
        np.r_[np.concatenate([sat * x for x in lam]), np.ones(len(names))],
        np.r_[np.concatenate([unsat * x for x in lam]), np.zeros(len(names))],
        pretrusted=names,
    )
    total = math.fsum(split.trust_of(f"P{k}") for k in range(len(lam)))
    assert total <= merged.trust_of("P") + 1e-12


def test_without_pretrusted_peers_sybils_gain() -> None:
    """The documented limit: with a uniform p every identity gets alpha / n of teleport."""
    one = eigentrust(["t"], ["A"], [1.0], providers=["S"])
    many = eigentrust(["t"], ["A"], [1.0], providers=["S1", "S2", "S3"])
    assert sum(many.trust_of(s) for s in ("S1", "S2", "S3")) > one.trust_of("S")


def test_not_converged_is_reported() -> None:
    res = eigentrust(["a", "b", "c"], ["b", "c", "a"], [1.0, 1.0, 1.0], pretrusted=["a"],
                     alpha=0.01, max_iter=3, tol=1e-15)
    assert not res.converged
    assert res.iterations == 3
    assert res.residual > 1e-15
    assert math.fsum(res.trust.tolist()) == pytest.approx(1.0)


def test_book_eigentrust_reads_tenant_ratings() -> None:
    events = [
        Event(id="1", provider="A", time=0, outcome=Outcome.COMPLETED, tenant="t1", weight=3.0),
        Event(id="2", provider="B", time=1, outcome=Outcome.COMPLETED, tenant="t1"),
        Event(id="3", provider="B", time=2, outcome=Outcome.SLA_BREACH, tenant="t2"),
        Event(id="4", provider="C", time=3, outcome=Outcome.COMPLETED),  # no rater
    ]
    book = ReputationBook("beta", events)
    res = book.eigentrust(pretrusted=["t1", "t2"])
    assert res.providers == ("A", "B", "C")
    assert res.peers == ("A", "B", "C", "t1", "t2")
    assert res.scores() == pytest.approx({"A": 1.0, "B": 1 / 3, "C": 0.0})
    assert math.fsum(res.distribution().values()) == pytest.approx(1.0)
    same = ReputationBook("beta", events[::-1]).eigentrust(pretrusted=["t1", "t2"])
    assert np.array_equal(same.trust, res.trust)
    with pytest.raises(InvalidReputationError, match="neither a tenant nor a provider"):
        book.eigentrust(pretrusted=["stranger"])
    assert ReputationBook().eigentrust().peers == ()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"tol": 0.0}, "tol"),
        ({"max_iter": 0}, "max_iter"),
        ({"max_iter": 2.5}, "max_iter"),
        ({"sat": [-1.0]}, "sat"),
        ({"sat": [math.nan]}, "sat"),
        ({"unsat": [1.0, 2.0]}, "unsat"),
        ({"rater": [3]}, "rater"),
        ({"ratee": [-1]}, "ratee"),
        ({"rater": [0.5]}, "rater"),
        ({"pretrusted": [0.0, 0.0]}, "pretrusted"),
        ({"pretrusted": [1.0]}, "pretrusted"),
        ({"n_peers": -1}, "n_peers"),
    ],
)
def test_invalid_arguments_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"rater": [0], "ratee": [1], "sat": [1.0], "unsat": None,
                            "n_peers": 2, "pretrusted": None}
    args.update(kwargs)
    with pytest.raises(InvalidReputationError) as info:
        eigentrust_arrays(**args)
    assert info.value.field == field


def test_invalid_names() -> None:
    with pytest.raises(InvalidReputationError) as info:
        eigentrust(["a", ""], ["b", "c"], [1.0, 1.0])
    assert info.value.field == "raters"
    with pytest.raises(InvalidReputationError) as info:
        eigentrust(["a"], ["b"], [1.0], pretrusted={"a": -1.0})
    assert info.value.field == "pretrusted['a']"
