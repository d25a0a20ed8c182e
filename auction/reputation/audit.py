"""Audit sampling, Aethir-style proof of capacity: which providers to probe each epoch.

Each epoch (15 minutes by default, as Aethir's checkers) `audit_sample` draws `k` providers
without replacement, each draw weighted by capacity or stake. The draws come from SHA-256 of a
seed and the epoch only, in exact integer arithmetic, so anyone holding the seed and the provider
list recomputes the same sample on any platform, in any language; without the seed a provider
cannot predict it. The auditor commits to the seed before the epoch (`commit_seed`: its SHA-256)
and reveals it after; `verify_sample` checks both the reveal and the sample.

The algorithm, byte for byte (docs/tiers-and-audits.md has it with test vectors):

1. Drop the providers of weight 0; sort the rest by id, comparing code points (which is the
   order of their UTF-8 bytes).
2. ``prefix = b"auction.audit.v1" || u32be(len(seed)) || seed || u64be(epoch)``, the seed as
   bytes (a str seed is its UTF-8 encoding).
3. For draw ``j = 0, 1, ..., k-1``: ``h = SHA-256(prefix || u32be(j))``; ``W`` = the total
   weight of the providers not drawn yet; ``r = int(h, big-endian) mod W``; draw the first
   provider, in sorted order among those not drawn yet, whose running total of weights
   exceeds ``r``.

Draw j picks a remaining provider with probability its weight over W, up to the bias of
``mod W`` on 256 bits: every probability is within ``W / 2**256`` (relative) of exact.
"""

from __future__ import annotations

import hashlib
import hmac
import numbers
import secrets
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs

from auction.errors import InvalidOrderError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

#: Weights: a sequence of ints, or a numpy integer array.
Weights: TypeAlias = "Sequence[int] | npt.NDArray[np.integer[Any]]"

__all__ = [
    "AETHIR_PERIOD",
    "DOMAIN",
    "MAX_WEIGHT",
    "AuditSchedule",
    "audit_sample",
    "commit_seed",
    "new_seed",
    "verify_sample",
    "verify_seed",
]

#: Domain-separation tag that starts every hashed message (version 1 of the algorithm).
DOMAIN = b"auction.audit.v1"
#: Aethir's proof-of-capacity interval: 15 minutes, in seconds.
AETHIR_PERIOD = 900
#: Largest weight: weights are unsigned 64-bit integers in the byte-exact specification.
MAX_WEIGHT = 2**64 - 1
_MAX_EPOCH = 2**64 - 1
_MAX_U32 = 2**32 - 1


def _seed_bytes(seed: Any) -> bytes:
    if isinstance(seed, str):
        try:
            out = seed.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidOrderError("seed", seed, "must be encodable as UTF-8") from None
    elif isinstance(seed, bytes | bytearray):
        out = bytes(seed)
    else:
        raise InvalidOrderError("seed", seed, f"must be bytes or str, not {type(seed).__name__}")
    if not out or len(out) > _MAX_U32:
        raise InvalidOrderError("seed", seed, f"must hold 1 to {_MAX_U32} bytes")
    return out


def _int(value: Any, field: str, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        kind = "a bool" if isinstance(value, bool) else type(value).__name__
        raise InvalidOrderError(field, value, f"must be an int, not {kind}")
    out = int(value)
    if not 0 <= out <= hi:
        raise InvalidOrderError(field, value, f"must be in [0, {hi}]")
    return out


def _population(providers: Sequence[str], weights: Weights) -> list[tuple[str, int]]:
    """(id, weight) of the providers with positive weight, sorted by id; validates all."""
    if isinstance(providers, str | bytes) or not isinstance(providers, Sequence):
        raise InvalidOrderError("providers", providers, "must be a sequence of str ids")
    try:
        n_weights = len(weights)
    except TypeError:
        raise InvalidOrderError("weights", weights, "must be a sequence of ints") from None
    if isinstance(weights, str | bytes) or n_weights != len(providers):
        raise InvalidOrderError(
            "weights", weights, f"must be a sequence of {len(providers)} ints, one per provider"
        )
    seen: dict[str, int] = {}
    out = []
    for i, (p, w) in enumerate(zip(providers, weights, strict=True)):
        if not isinstance(p, str) or not p:
            raise InvalidOrderError(f"providers[{i}]", p, "must be a non-empty str")
        try:
            p.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidOrderError(f"providers[{i}]", p, "must be encodable as UTF-8") from None
        if p in seen:
            raise InvalidOrderError(f"providers[{i}]", p, f"duplicates providers[{seen[p]}]")
        seen[p] = i
        weight = _int(w, f"weights[{i}]", MAX_WEIGHT)
        if weight:
            out.append((str(p), weight))
    out.sort()  # str order is code point order, which is UTF-8 byte order
    return out


def audit_sample(
    seed: bytes | str,
    epoch: int,
    providers: Sequence[str],
    weights: Weights,
    k: int,
) -> list[str]:
    """The `k` providers to audit in `epoch`, weighted without replacement, in draw order.

    Args:
        seed: the epoch's secret seed (32 random bytes from `new_seed` are plenty); a str is
            taken as its UTF-8 bytes.
        epoch: the epoch number, 0 <= epoch < 2**64 (`AuditSchedule.epoch_at`).
        providers: unique provider ids; their order does not matter.
        weights: one int per provider in [0, 2**64 - 1], e.g. GPUs or stake; 0 is never drawn.
        k: how many to draw, 0 <= k <= the number of providers with positive weight.

    Returns:
        The drawn ids, first draw first: the first j of them are the sample for ``k = j``.
        Each draw picks a remaining provider with probability its weight over the remaining
        total (successive sampling); for k = 1, provider i is drawn with probability w_i / W.

    Raises:
        InvalidOrderError: a bad seed, epoch or k; a provider that is duplicated, empty or not
            UTF-8 encodable; a weight that is not an int in range; k above the number of
            providers with positive weight (draw ``min(k, n)`` to probe at most k).

    Cost: O(n log n) to sort, then O(log n) per draw (a Fenwick tree over the weights).
    """
    key = _seed_bytes(seed)
    epoch = _int(epoch, "epoch", _MAX_EPOCH)
    population = _population(providers, weights)
    k = _int(k, "k", _MAX_U32)
    if k > len(population):
        raise InvalidOrderError(
            "k", k, f"exceeds the {len(population)} providers with positive weight"
        )
    n = len(population)
    # Fenwick tree (1-based): tree[i] sums the weights of items (i - lowbit(i), i].
    tree = [0] * (n + 1)
    for i, (_, w) in enumerate(population, start=1):
        tree[i] += w
        parent = i + (i & -i)
        if parent <= n:
            tree[parent] += tree[i]
    total = sum(w for _, w in population)
    top = 1 << (n.bit_length() - 1) if n else 0
    prefix = hashlib.sha256(DOMAIN + len(key).to_bytes(4, "big") + key + epoch.to_bytes(8, "big"))
    out = []
    for j in range(k):
        h = prefix.copy()
        h.update(j.to_bytes(4, "big"))
        r = int.from_bytes(h.digest(), "big") % total
        # Descend the tree: the first item whose running total exceeds r.
        pos, step = 0, top
        while step:
            nxt = pos + step
            if nxt <= n and tree[nxt] <= r:
                pos = nxt
                r -= tree[nxt]
            step >>= 1
        name, w = population[pos]
        out.append(name)
        total -= w
        i = pos + 1
        while i <= n:
            tree[i] -= w
            i += i & -i
    return out


# -- epochs -------------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class AuditSchedule:
    """Fixed-length audit epochs: epoch ``e`` covers ``[origin + e*period, origin + (e+1)*period)``.

    Attributes:
        period: epoch length in seconds, >= 1 (900: Aethir's 15-minute proof of capacity).
        origin: Unix time (seconds) at which epoch 0 starts.
    """

    period: int = AETHIR_PERIOD
    origin: int = 0

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "period", _int(self.period, "period", _MAX_EPOCH))
        if self.period == 0:
            raise InvalidOrderError("period", 0, "must be >= 1 second")
        object.__setattr__(self, "origin", _int(self.origin, "origin", _MAX_EPOCH))

    def epoch_at(self, t: float) -> int:
        """The epoch holding Unix time `t` (an int or a finite float, >= origin):
        ``floor((t - origin) / period)``, computed exactly (a time on a boundary starts the
        new epoch)."""
        value: Any = t
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InvalidOrderError("t", t, "must be a number of seconds")
        try:
            if isinstance(value, numbers.Rational):
                exact = Fraction(int(value.numerator), int(value.denominator))
            else:
                exact = Fraction(float(value))
        except (ValueError, OverflowError):
            raise InvalidOrderError("t", t, "must be finite") from None
        if exact < self.origin:
            raise InvalidOrderError("t", t, f"is before the schedule's origin {self.origin}")
        return _int((exact - self.origin) // self.period, "epoch", _MAX_EPOCH)

    def start_of(self, epoch: int) -> int:
        """Unix time at which `epoch` starts."""
        return self.origin + _int(epoch, "epoch", _MAX_EPOCH) * self.period

    def sample(
        self,
        seed: bytes | str,
        t: float,
        providers: Sequence[str],
        weights: Weights,
        k: int,
    ) -> list[str]:
        """`audit_sample` for the epoch holding time `t`."""
        return audit_sample(seed, self.epoch_at(t), providers, weights, k)


# -- commit and reveal -----------------------------------------------------------------------
def new_seed() -> bytes:
    """32 bytes from the operating system's secure random source: a fresh seed per epoch."""
    return secrets.token_bytes(32)


def commit_seed(seed: bytes | str) -> str:
    """The commitment to publish before the epoch: SHA-256 of the seed bytes, lowercase hex.

    Hiding only for an unguessable seed (use `new_seed`); binding by collision resistance.
    """
    return hashlib.sha256(_seed_bytes(seed)).hexdigest()


def verify_seed(seed: bytes | str, commitment: str) -> bool:
    """Whether a revealed seed matches a published commitment (64 hex digits, any case)."""
    if not isinstance(commitment, str) or len(commitment) != 64:
        raise InvalidOrderError("commitment", commitment, "must be 64 hex digits")
    try:
        bytes.fromhex(commitment)
    except ValueError:
        raise InvalidOrderError("commitment", commitment, "must be 64 hex digits") from None
    return hmac.compare_digest(commit_seed(seed), commitment.lower())


def verify_sample(
    sample: Sequence[str],
    *,
    seed: bytes | str,
    commitment: str,
    epoch: int,
    providers: Sequence[str],
    weights: Weights,
) -> bool:
    """Whether `sample` is what `audit_sample` draws for this epoch, from a seed that matches
    the commitment published before it. The sample's order matters (it is the draw order)."""
    if isinstance(sample, str) or not isinstance(sample, Sequence):
        raise InvalidOrderError("sample", sample, "must be a sequence of provider ids")
    if not verify_seed(seed, commitment):
        return False
    if len(sample) > len(_population(providers, weights)):
        return False
    return list(sample) == audit_sample(seed, epoch, providers, weights, len(sample))
