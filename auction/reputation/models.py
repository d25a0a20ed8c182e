"""Reputation models: how a provider's events become a score in [0, 1].

A model folds one provider's events, in canonical order, into a few numbers per provider (its
state) and maps that state to a score. Canonical order is by (time, outcome code, weight):
events that tie on all three carry the same evidence, so the state depends only on the
multiset of events, never on the order they arrived in or on how they were batched.

* `BetaModel`, beta reputation (Jøsang and Ismail 2002): positive and negative evidence
  ``r`` and ``s`` with exponential forgetting; expected value ``(r + 1) / (r + s + 2)``,
  uncertainty ``2 / (r + s + 2)``; the score is a lower credible bound that starts at 0.
* `IExecModel`, iExec's worker score (PoCo): +1 per success, x2/3 (rounded down) per failure,
  an integer; the score is ``n / (n + scale)``.

Every model gives a provider it has never seen the score 0: no provider can gain by dropping
its identity for a fresh one (docs/reputation.md has the guarantees and their conditions).
The folds are numba kernels, compiled on first use; ``kernel.py_func`` is the plain Python
reference.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import attrs
import numpy as np
import numpy.typing as npt

from auction.kernels.jit import lazy_njit
from auction.reputation.events import (
    POSITIVE,
    EvidenceWeights,
    InvalidReputationError,
    _real,
)

__all__ = [
    "DEFAULT_HALF_LIFE",
    "MODELS",
    "NEWCOMER_SCORE",
    "BetaModel",
    "BetaOpinion",
    "IExecModel",
    "ReputationModel",
    "beta_fold",
    "get_model",
    "iexec_fold",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Int8Array = npt.NDArray[np.int8]

#: Score of a provider a book has never seen, in every model: the bottom of the scale.
NEWCOMER_SCORE = 0.0
#: Default half-life of evidence: 30 days, in seconds.
DEFAULT_HALF_LIFE = 30 * 86400.0


# -- kernels ------------------------------------------------------------------------------------
@lazy_njit(nogil=True)
def beta_fold(
    seg_ptr: IntArray,
    seg_prov: IntArray,
    times: FloatArray,
    pos: FloatArray,
    neg: FloatArray,
    r: FloatArray,
    s: FloatArray,
    last_time: FloatArray,
    half_life: float,
) -> None:
    """Fold events into (r, s) in place; segment k holds provider seg_prov[k]'s events.

    Evidence is kept as of the provider's latest event time: before each event it decays by
    ``2 ** -((t - t_last) / half_life)``, then the event's evidence is added. ``last_time``
    NaN means no events yet. Events must be in canonical order within each segment.
    """
    for k in range(len(seg_prov)):
        p = seg_prov[k]
        rr = r[p]
        ss = s[p]
        tl = last_time[p]
        for i in range(seg_ptr[k], seg_ptr[k + 1]):
            t = times[i]
            if t > tl:  # False while tl is NaN (no evidence to decay yet)
                f = 2.0 ** ((tl - t) / half_life)
                rr = rr * f
                ss = ss * f
            rr = rr + pos[i]
            ss = ss + neg[i]
            tl = t
        r[p] = rr
        s[p] = ss
        last_time[p] = tl


@lazy_njit(nogil=True)
def iexec_fold(
    seg_ptr: IntArray, seg_prov: IntArray, positive: BoolArray, score: IntArray
) -> None:
    """Fold events into integer scores in place: +1 on success, floor(2/3 x) on failure.

    ``floor(2 v / 3)`` is computed as ``v - ceil(v / 3)``, which cannot overflow.
    """
    for k in range(len(seg_prov)):
        p = seg_prov[k]
        v = score[p]
        for i in range(seg_ptr[k], seg_ptr[k + 1]):
            if positive[i]:
                v += 1
            else:
                v -= (v + 2) // 3
        score[p] = v


# -- models -------------------------------------------------------------------------------------
class ReputationModel(abc.ABC):
    """A rule that folds each provider's events into a state and maps it to a score in [0, 1].

    Subclasses are frozen attrs classes holding their parameters. A `ReputationBook` owns the
    state: one array per entry of `columns`, indexed by provider, plus each provider's latest
    event time (NaN before its first event).
    """

    #: The model's name in `MODELS` and in JSON snapshots.
    name: ClassVar[str]
    #: Per-provider state: (column name, dtype), each starting at zero.
    columns: ClassVar[tuple[tuple[str, type], ...]]
    #: Score of a provider with no events: the minimum of the scale, so that a fresh identity
    #: never outranks a provider with history (whitewashing does not pay).
    newcomer_score: ClassVar[float] = NEWCOMER_SCORE

    @abc.abstractmethod
    def fold(
        self,
        state: Mapping[str, np.ndarray],
        last_time: FloatArray,
        seg_ptr: IntArray,
        seg_prov: IntArray,
        times: FloatArray,
        outcomes: Int8Array,
        weights: FloatArray,
    ) -> None:
        """Apply events, grouped in segments by provider and in canonical order, in place.

        ``last_time`` holds each provider's latest event time before the call; the caller
        updates it afterwards.
        """

    @abc.abstractmethod
    def table(
        self, state: Mapping[str, np.ndarray], last_time: FloatArray, at: float
    ) -> dict[str, np.ndarray]:
        """Per-provider columns as of time `at`; always includes ``"score"`` in [0, 1]."""

    @abc.abstractmethod
    def params(self) -> dict[str, Any]:
        """The parameters as a JSON-ready dict; ``type(self).from_params`` reads it back."""

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ReputationModel:
        """Build the model from `params` (as `params` writes them); unknown keys are errors."""
        if not isinstance(params, Mapping):
            raise InvalidReputationError("model", params, "must be a mapping of parameters")
        names = {a.name for a in attrs.fields(cls)}  # type: ignore[arg-type]
        for key in params:
            if key not in names:
                raise InvalidReputationError(
                    str(key), params[key], f"is not a parameter of {cls.__name__}"
                )
        return cls(**params)


def _check_half_life(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value == math.inf:
        return math.inf
    return _real(value, "half_life", 0.0, 1e300, "> 0 (or math.inf: no forgetting)",
                 open_lo=True, param=True)


def _check_confidence(value: Any) -> float:
    # Below 0.5 the "bound" sits above the median and falls as evidence at the same rate grows,
    # which would let splitting work across identities pay.
    out = _real(value, "confidence", 0.5, 1.0, "in [0.5, 1)", param=True)
    if out == 1.0:
        raise InvalidReputationError("confidence", value, "must be in [0.5, 1)")
    return out


def _check_evidence(value: Any) -> EvidenceWeights:
    if isinstance(value, EvidenceWeights):
        return value
    if isinstance(value, Mapping):
        return EvidenceWeights.from_record(value)
    raise InvalidReputationError("evidence", value, "must be an EvidenceWeights or a mapping")


@attrs.frozen
class BetaOpinion:
    """A provider's beta reputation at one time (Jøsang's opinion plus the ranking bound).

    Attributes:
        r: positive evidence, decayed to that time.
        s: negative evidence, decayed to that time.
        expected: ``(r + 1) / (r + s + 2)``, the mean of the Beta(r + 1, s + 1) posterior.
        belief: ``r / (r + s + 2)``.
        disbelief: ``s / (r + s + 2)``.
        uncertainty: ``2 / (r + s + 2)``; belief + disbelief + uncertainty = 1.
        lower_bound: the score used for ranking (see `BetaModel`).
    """

    r: float
    s: float
    expected: float
    belief: float
    disbelief: float
    uncertainty: float
    lower_bound: float


@attrs.frozen(kw_only=True)
class BetaModel(ReputationModel):
    """Beta reputation (Jøsang and Ismail 2002) with forgetting by half-life.

    Each event adds ``weight x evidence.<outcome>`` to a provider's positive evidence ``r``
    (completed, audit passed) or negative evidence ``s`` (the rest). Evidence decays by half
    every `half_life` of event time: at time T an event of time t counts
    ``2 ** -((T - t) / half_life)``, so decaying over a then b equals decaying over a + b.

    Reported per provider: the Beta(r + 1, s + 1) posterior mean ``(r + 1) / (r + s + 2)``,
    Jøsang's opinion (belief, disbelief, uncertainty ``u = 2 / (r + s + 2)``) and the score:
    the lower bound, the ``1 - confidence`` quantile of Beta(r, s + 2). That is the posterior
    under base rate 0 (Jøsang's prior weight 2 all on failure: no evidence, no reputation), so

    * a provider with no positive evidence, a newcomer included, scores exactly 0, and no
      history scores below a fresh identity (whitewashing never pays);
    * the score grows with r, shrinks with s, and never decreases when all evidence is scaled
      up by the same factor, so splitting the same work over identities never raises total
      influence (docs/reputation.md);
    * more evidence at the same success rate ranks higher: 90 of 100 beats 9 of 10.

    Attributes:
        half_life: evidence half-life in event-time units (default 30 days in seconds);
            ``math.inf`` keeps all evidence forever.
        confidence: the bound's credibility level in [0.5, 1); 0.95 means a 5% chance
            (under the model) that the true success rate is lower.
        evidence: evidence per unit of event weight, per outcome.
    """

    name: ClassVar[str] = "beta"
    columns: ClassVar[tuple[tuple[str, type], ...]] = (("r", np.float64), ("s", np.float64))

    half_life: float = attrs.field(default=DEFAULT_HALF_LIFE, converter=_check_half_life)
    confidence: float = attrs.field(default=0.95, converter=_check_confidence)
    evidence: EvidenceWeights = attrs.field(factory=EvidenceWeights, converter=_check_evidence)

    def decay(self, values: Any, elapsed: Any) -> Any:
        """`values` after `elapsed` time units of forgetting: ``values * 2 ** -(elapsed / h)``."""
        return np.asarray(values, dtype=np.float64) * np.power(
            2.0, -np.asarray(elapsed, dtype=np.float64) / self.half_life
        )

    def fold(
        self,
        state: Mapping[str, np.ndarray],
        last_time: FloatArray,
        seg_ptr: IntArray,
        seg_prov: IntArray,
        times: FloatArray,
        outcomes: Int8Array,
        weights: FloatArray,
    ) -> None:
        pos_t, neg_t = self.evidence.tables()
        pos = weights * pos_t[outcomes]
        neg = weights * neg_t[outcomes]
        lt = last_time.copy()  # the caller owns last_time
        beta_fold(seg_ptr, seg_prov, times, pos, neg, state["r"], state["s"], lt, self.half_life)

    def evidence_at(
        self, state: Mapping[str, np.ndarray], last_time: FloatArray, at: float
    ) -> tuple[FloatArray, FloatArray]:
        """(r, s) of every provider decayed from its latest event time to `at`."""
        seen = ~np.isnan(last_time)
        f = np.zeros(len(last_time))
        f[seen] = self.decay(1.0, at - last_time[seen])
        return state["r"] * f, state["s"] * f

    def lower_bound(self, r: Any, s: Any) -> FloatArray:
        """The ranking score: the ``1 - confidence`` quantile of Beta(r, s + 2); 0 if r = 0."""
        from scipy.special import betaincinv, betaln

        r = np.atleast_1d(np.asarray(r, dtype=np.float64))
        s = np.atleast_1d(np.asarray(s, dtype=np.float64))
        r, s = np.broadcast_arrays(r, s)
        q = 1.0 - self.confidence
        out = np.zeros(r.shape)
        m = r > 0
        if m.any():
            # For small r the quantile is about (q r B(r, s + 2)) ** (1 / r); below the smallest
            # double it is 0 (scipy's inverse returns noise there, not a monotone answer).
            rm, sm = r[m], s[m]
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                log_x = (math.log(q) + np.log(rm) + betaln(rm, sm + 2.0)) / rm
            tiny = (rm < 1e-300) | ((rm < 1.0) & (log_x < -708.0))
            vals = betaincinv(rm, sm + 2.0, q)
            vals[tiny] = 0.0
            out[m] = vals
        clipped: FloatArray = np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0)
        return clipped

    def opinions(self, r: FloatArray, s: FloatArray) -> dict[str, FloatArray]:
        """Expected value, belief, disbelief, uncertainty and lower bound of evidence (r, s)."""
        n = r + s + 2.0
        return {
            "expected": (r + 1.0) / n,
            "belief": r / n,
            "disbelief": s / n,
            "uncertainty": 2.0 / n,
            "lower_bound": self.lower_bound(r, s),
        }

    def table(
        self, state: Mapping[str, np.ndarray], last_time: FloatArray, at: float
    ) -> dict[str, np.ndarray]:
        r, s = self.evidence_at(state, last_time, at)
        op = self.opinions(r, s)
        return {"r": r, "s": s, **op, "score": op["lower_bound"]}

    def params(self) -> dict[str, Any]:
        return {
            "half_life": None if self.half_life == math.inf else self.half_life,
            "confidence": self.confidence,
            "evidence": self.evidence.to_record(),
        }

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ReputationModel:
        if isinstance(params, Mapping) and params.get("half_life", 0.0) is None:
            params = {**params, "half_life": math.inf}  # JSON has no infinity
        return super().from_params(params)


def _check_scale(value: Any) -> float:
    return _real(value, "scale", 0.0, 1e18, "in (0, 1e18]", open_lo=True, param=True)


@attrs.frozen(kw_only=True)
class IExecModel(ReputationModel):
    """iExec's worker score (PoCo): +1 per success, x2/3 rounded down per failure.

    The iExec contracts keep an integer score per worker: a contribution that agrees with the
    consensus of a replicated task adds 1, a wrong or missing one sets the score to
    ``floor(2 score / 3)``. Here completed jobs and passed audits are successes, the other
    outcomes failures; event weights and evidence weights play no part (the rule has none),
    and nothing is forgotten. Both updates are non-decreasing in the score, so an identity
    with history is never worse off than a fresh one (score 0), whatever happens next.

    The market score is ``n / (n + scale)``: 0 for a newcomer, 1/2 at ``n = scale``. This
    transform is ours; iExec itself uses the raw score (see `consensus_weight`).

    Attributes:
        scale: the integer score at which the market score reaches 1/2 (default 10).
    """

    name: ClassVar[str] = "iexec"
    columns: ClassVar[tuple[tuple[str, type], ...]] = (("score", np.int64),)

    scale: float = attrs.field(default=10.0, converter=_check_scale)

    @staticmethod
    def consensus_weight(score: Any) -> Any:
        """iExec's weight of a worker's vote in a replicated task: ``max(score // 3, 3) - 1``."""
        return np.maximum(np.asarray(score, dtype=np.int64) // 3, 3) - 1

    def fold(
        self,
        state: Mapping[str, np.ndarray],
        last_time: FloatArray,
        seg_ptr: IntArray,
        seg_prov: IntArray,
        times: FloatArray,
        outcomes: Int8Array,
        weights: FloatArray,
    ) -> None:
        iexec_fold(seg_ptr, seg_prov, POSITIVE[outcomes], state["score"])

    def table(
        self, state: Mapping[str, np.ndarray], last_time: FloatArray, at: float
    ) -> dict[str, np.ndarray]:
        n = state["score"]
        return {"iexec_score": n.copy(), "score": n / (n + self.scale)}

    def params(self) -> dict[str, Any]:
        return {"scale": self.scale}


#: Models by name, for ``ReputationBook(model="beta")`` and JSON snapshots.
MODELS: Mapping[str, type[ReputationModel]] = MappingProxyType(
    {"beta": BetaModel, "iexec": IExecModel}
)


def get_model(model: ReputationModel | str) -> ReputationModel:
    """`model` itself, or the model registered under that name with default parameters."""
    if isinstance(model, ReputationModel):
        return model
    if isinstance(model, str) and model in MODELS:
        return MODELS[model]()
    raise InvalidReputationError(
        "model", model, f"must be a ReputationModel or one of: {', '.join(MODELS)}"
    )
