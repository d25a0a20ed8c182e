"""EigenTrust (Kamvar, Schlosser and Garcia-Molina 2003): global trust from local ratings.

Peers rate peers: here tenants (and auditors) rate the providers that served them. Peer i's
local trust in j is ``s_ij = sat_ij - unsat_ij``, its satisfactory minus unsatisfactory
evidence about j, clipped at 0 and normalized over i's row::

    c_ij = max(s_ij, 0) / sum_k max(s_ik, 0)

A peer with no positive rating of anyone (a provider that rates nobody, for instance) trusts
the pre-trusted distribution ``p`` instead. The global trust vector solves

    t = (1 - alpha) C^T t + alpha p

found by power iteration from ``t = p`` until the L1 change is below `tol`. ``C`` is
row-stochastic, so every iterate is a probability distribution over peers; the map contracts by
``1 - alpha`` per step, so it converges, after about ``log(tol) / log(1 - alpha)`` steps.

What it resists: raters are weighted by their own trust, so a clique of colluders rating each
other gains only the trust that flows into it from outside, and with pre-trusted peers an
identity nobody trusted rated receives nothing (sybils and whitewashers start at 0). Without
pre-trusted peers ``p`` is uniform and every identity, sybils included, gets ``alpha / n``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from auction.reputation.events import InvalidReputationError, _name, _real

__all__ = ["EigenTrustResult", "eigentrust", "eigentrust_arrays", "local_trust"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def _readonly(a: np.ndarray) -> Any:
    a.flags.writeable = False
    return a


@attrs.frozen(eq=False)
class EigenTrustResult:
    """Global trust over peers, and how the iteration went.

    Attributes:
        peers: every peer, sorted by name.
        trust: global trust per peer (read-only array aligned with `peers`): non-negative,
            sums to 1.
        providers: the peers that were rated (or named as providers), sorted: those whose
            scores a market needs.
        iterations: power-iteration steps taken.
        converged: True if the L1 change of the last step was at most the tolerance.
        residual: that L1 change.
    """

    peers: tuple[str, ...]
    trust: FloatArray
    providers: tuple[str, ...]
    iterations: int
    converged: bool
    residual: float
    _pos: dict[str, int] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_pos", {p: i for i, p in enumerate(self.peers)})

    def __getstate__(self) -> dict[str, Any]:
        return {a.name: getattr(self, a.name) for a in attrs.fields(type(self))}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled and deep-copied results keep a read-only `trust` array."""
        for name, value in state.items():
            if isinstance(value, np.ndarray):
                value = _readonly(value)
            object.__setattr__(self, name, value)

    def trust_of(self, peer: str) -> float:
        """Global trust of `peer`; 0 for a peer the ratings never mention."""
        i = self._pos.get(peer)
        return 0.0 if i is None else float(self.trust[i])

    def distribution(self, peers: Iterable[str] | None = None) -> dict[str, float]:
        """Trust over `peers` (default: the providers), rescaled to sum to 1.

        Unknown peers get 0. If every listed peer has trust 0, all get 0.
        """
        names, values = self._values(peers)
        total = math.fsum(values.tolist())
        out = values / total if total > 0 else values
        return dict(zip(names, out.tolist(), strict=True))

    def scores(self, peers: Iterable[str] | None = None) -> dict[str, float]:
        """Trust over `peers` (default: the providers) divided by its maximum: a score in
        [0, 1] per peer, 1 for the most trusted, ready for ``Market(book, reputation=...)``."""
        names, values = self._values(peers)
        top = float(values.max()) if len(values) else 0.0
        out = values / top if top > 0 else values
        return dict(zip(names, np.clip(out, 0.0, 1.0).tolist(), strict=True))

    def _values(self, peers: Iterable[str] | None) -> tuple[list[str], FloatArray]:
        names = list(self.providers if peers is None else peers)
        values = np.array([self.trust_of(p) for p in names], dtype=np.float64)
        return names, values


def local_trust(
    rater: IntArray, ratee: IntArray, sat: FloatArray, unsat: FloatArray, n_peers: int
) -> tuple[Any, BoolArray]:
    """Normalized local trust as a sparse matrix ``C^T`` (row j: who trusts j), and the mask
    of peers with no positive rating (whose trust goes to the pre-trusted distribution).

    Ratings of the same (rater, ratee) pair are summed in a canonical order (sorted by value),
    so the matrix does not depend on the order of the ratings.
    """
    from scipy import sparse

    order = np.lexsort((unsat, sat, ratee, rater))
    i, j = rater[order], ratee[order]
    if len(i):
        start = np.flatnonzero(np.r_[True, (i[1:] != i[:-1]) | (j[1:] != j[:-1])])
        s = np.add.reduceat(sat[order], start) - np.add.reduceat(unsat[order], start)
        i, j = i[start], j[start]
    else:
        s = np.zeros(0)
    keep = s > 0
    i, j, s = i[keep], j[keep], s[keep]
    row = np.bincount(i, weights=s, minlength=n_peers)
    c = s / row[i]
    ct = sparse.csr_matrix((c, (j, i)), shape=(n_peers, n_peers))
    return ct, row == 0


def eigentrust_arrays(
    rater: npt.ArrayLike,
    ratee: npt.ArrayLike,
    sat: npt.ArrayLike,
    unsat: npt.ArrayLike | None,
    n_peers: int,
    pretrusted: npt.ArrayLike | None = None,
    *,
    alpha: float = 0.15,
    tol: float = 1e-10,
    max_iter: int = 1000,
) -> tuple[FloatArray, int, bool, float]:
    """EigenTrust on integer peer codes: (trust, iterations, converged, residual).

    Args:
        rater: the rating peer's code in [0, n_peers), per rating.
        ratee: the rated peer's code in [0, n_peers), per rating.
        sat: satisfactory evidence per rating (finite, >= 0).
        unsat: unsatisfactory evidence per rating (finite, >= 0); None means 0.
        n_peers: number of peers.
        pretrusted: weight per peer (>= 0, positive total), normalized to ``p``; None means
            uniform.
        alpha: weight of the pre-trusted distribution in each step, in (0, 1].
        tol: stop when the L1 change of a step is at most this.
        max_iter: stop after this many steps (then ``converged`` is False).
    """
    n, alpha, tol, max_iter = _check_params(n_peers, alpha, tol, max_iter)
    i = _codes(rater, "rater", n)
    j = _codes(ratee, "ratee", n)
    if len(i) != len(j):
        raise InvalidReputationError("ratee", len(j), f"must hold one code per rater ({len(i)})")
    s_pos = _evidence(sat, "sat", len(i))
    s_neg = np.zeros(len(i)) if unsat is None else _evidence(unsat, "unsat", len(i))
    p = _pretrusted_vector(pretrusted, n)
    if n == 0:
        return np.zeros(0), 0, True, 0.0
    ct, dangling = local_trust(i, j, s_pos, s_neg, n)
    t = p.copy()
    residual = math.inf
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported
        new = ct @ t
        new += float(t[dangling].sum()) * p
        new *= 1.0 - alpha
        new += alpha * p
        residual = float(np.abs(new - t).sum())
        t = new
        if residual <= tol:
            break
    t = np.maximum(t, 0.0)
    t /= t.sum()
    return t, it, residual <= tol, residual


def eigentrust(
    raters: Sequence[str],
    ratees: Sequence[str],
    sat: npt.ArrayLike,
    unsat: npt.ArrayLike | None = None,
    *,
    pretrusted: Iterable[str] | Mapping[str, float] | None = None,
    providers: Iterable[str] = (),
    alpha: float = 0.15,
    tol: float = 1e-10,
    max_iter: int = 1000,
) -> EigenTrustResult:
    """EigenTrust over named peers: rating k says `raters[k]` had `sat[k]` satisfactory and
    `unsat[k]` unsatisfactory evidence about `ratees[k]`.

    Args:
        pretrusted: peers trusted a priori, uniformly (a collection of names) or with weights
            (a mapping name -> weight >= 0); None means every peer, uniformly.
        providers: peers to report as providers besides the rated ones (they may be unrated).
        alpha: see `eigentrust_arrays`.
        tol: see `eigentrust_arrays`.
        max_iter: see `eigentrust_arrays`.

    Peers are every name among raters, ratees, pre-trusted peers and providers; a name that
    both rates and is rated is one peer.
    """
    r_names = _names(raters, "raters")
    e_names = _names(ratees, "ratees")
    extra = _names(providers, "providers")
    if isinstance(pretrusted, Mapping):
        pre_names = _names(list(pretrusted), "pretrusted")
    elif pretrusted is not None:
        pre_names = _names(pretrusted, "pretrusted")
    else:
        pre_names = []
    peers = tuple(sorted(set(r_names) | set(e_names) | set(pre_names) | set(extra)))
    pos = {p: k for k, p in enumerate(peers)}
    weights: FloatArray | None = None
    if pretrusted is not None:
        weights = np.zeros(len(peers))
        if isinstance(pretrusted, Mapping):
            for name, w in pretrusted.items():
                weights[pos[name]] = _real(w, f"pretrusted[{name!r}]", 0.0, 1e300, ">= 0",
                                           param=True)
        else:
            weights[[pos[name] for name in pre_names]] = 1.0
    t, it, ok, res = eigentrust_arrays(
        np.fromiter(map(pos.__getitem__, r_names), np.int64, len(r_names)),
        np.fromiter(map(pos.__getitem__, e_names), np.int64, len(e_names)),
        sat, unsat, len(peers), weights, alpha=alpha, tol=tol, max_iter=max_iter,
    )
    return EigenTrustResult(
        peers=peers,
        trust=_readonly(t),
        providers=tuple(sorted(set(e_names) | set(extra))),
        iterations=it,
        converged=ok,
        residual=res,
    )


# -- validation ---------------------------------------------------------------------------------
def _check_params(n: Any, alpha: Any, tol: Any, max_iter: Any) -> tuple[int, float, float, int]:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise InvalidReputationError("n_peers", n, "must be an int >= 0")
    a = _real(alpha, "alpha", 0.0, 1.0, "in (0, 1]", open_lo=True, param=True)
    t = _real(tol, "tol", 0.0, 1.0, "in (0, 1]", open_lo=True, param=True)
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 1:
        raise InvalidReputationError("max_iter", max_iter, "must be an int >= 1")
    return int(n), a, t, int(max_iter)


def _codes(values: npt.ArrayLike, field: str, n: int) -> IntArray:
    a = np.asarray(values)
    if a.ndim != 1 or (len(a) and a.dtype.kind not in "iu"):
        raise InvalidReputationError(field, a.dtype, "must be a 1-d array of integer peer codes")
    a = a.astype(np.int64)
    bad = (a < 0) | (a >= n)
    if bad.any():
        raise InvalidReputationError(field, int(a[bad][0]), f"must be a peer code in [0, {n})")
    return a


def _evidence(values: npt.ArrayLike, field: str, m: int) -> FloatArray:
    a = np.asarray(values, dtype=np.float64) if not isinstance(values, np.ndarray) else values
    if a.ndim != 1 or len(a) != m or a.dtype.kind not in "fiu" or a.dtype == np.bool_:
        raise InvalidReputationError(field, getattr(a, "shape", a),
                                     f"must be {m} numbers, one per rating")
    a = a.astype(np.float64)
    bad = ~np.isfinite(a) | (a < 0)
    if bad.any():
        raise InvalidReputationError(field, float(a[bad][0]), "must be finite and >= 0")
    return a


def _pretrusted_vector(weights: npt.ArrayLike | None, n: int) -> FloatArray:
    if weights is None:
        return np.full(n, 1.0 / n) if n else np.zeros(0)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise InvalidReputationError("pretrusted", w.shape, f"must hold one weight per peer ({n})")
    if not np.isfinite(w).all() or (w < 0).any():
        raise InvalidReputationError("pretrusted", w, "weights must be finite and >= 0")
    total = math.fsum(w.tolist())
    if total <= 0:
        raise InvalidReputationError("pretrusted", w, "needs a peer of positive weight")
    return w / total


def _names(values: Any, field: str) -> list[str]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidReputationError(field, values, "must be a collection of peer names")
    out = values.tolist() if isinstance(values, np.ndarray) else list(values)
    try:
        uniq = set(out)
    except TypeError:  # an unhashable entry
        uniq = set()
        for v in out:
            _name(v, field, None, param=True)
    for v in uniq:  # the distinct names only
        if type(v) is not str or not v or v != v.strip() or "\0" in v:
            out = [_name(x, field, None, param=True) for x in out]  # names it, or makes str
            break
    return out
