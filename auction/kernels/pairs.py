"""The exclusive-offer matching problem's CSR in one compiled pass over a market's pairs.

`auction.problems.matching.matching_problem` needs the eligible pairs with requests in
priority order, only those whose offer can host the whole request, weighted by
(surplus + offer bonus) x gpus, offers as ranks. In numpy that is a gather of every pair into
priority order, then about ten fancy-indexing passes over all of them (a few hundred ms at
10^7 pairs); `exclusive_csr` reads each pair once and writes the CSR directly. Plain arrays
in, plain arrays out; ``exclusive_csr.py_func`` is the same code in plain Python, the
reference the tests compare it with.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from auction.kernels.jit import lazy_njit

__all__ = ["exclusive_csr"]

IntArray = npt.NDArray[np.int64]


@lazy_njit(nogil=True)
def exclusive_csr(
    indptr: IntArray, offers: IntArray, surplus: IntArray, request_order: IntArray,
    offer_rank: IntArray, offer_bonus: IntArray, request_gpus: IntArray, offer_gpus: IntArray,
) -> tuple[IntArray, IntArray, IntArray, int, int]:
    """CSR over persons (person p is request row ``request_order[p]``) of the pairs
    ``indptr``/``offers``/``surplus`` (CSR over request rows) whose offer holds at least the
    request's GPUs, in the pairs' order within a request: (indptr, cols = offer_rank[offer],
    weight = (surplus + offer_bonus[offer]) x request gpus, the largest score surplus +
    bonus, the largest gpus of a kept pair). The caller checks that score x gpus stays below
    its limit before using the weights (they wrap around in int64 past it)."""
    n = len(request_order)
    out_ptr = np.zeros(n + 1, dtype=np.int64)
    for p in range(n):
        r = request_order[p]
        g = request_gpus[r]
        k = 0
        for j in range(indptr[r], indptr[r + 1]):
            if offer_gpus[offers[j]] >= g:
                k += 1
        out_ptr[p + 1] = out_ptr[p] + k
    total = out_ptr[n]
    cols = np.empty(total, dtype=np.int64)
    weight = np.empty(total, dtype=np.int64)
    best = 0
    gmax = 0
    for p in range(n):
        r = request_order[p]
        g = request_gpus[r]
        at = out_ptr[p]
        if at == out_ptr[p + 1]:
            continue
        if g > gmax:
            gmax = g
        for j in range(indptr[r], indptr[r + 1]):
            o = offers[j]
            if offer_gpus[o] >= g:
                cols[at] = offer_rank[o]
                s = surplus[j] + offer_bonus[o]
                weight[at] = s * g
                if s > best:
                    best = s
                at += 1
    return out_ptr, cols, weight, best, gmax
