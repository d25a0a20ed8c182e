"""Sparse eligibility join kernel: request profiles x offer classes, from inverted indexes.

`Market` picks, per profile, the inverted index (model, region, rarest required tag, provider,
or every class) that yields the fewest candidate classes; `join_block` walks those candidates
for a range of profiles and keeps the (profile, class) pairs whose structural fields suit each
other: VRAM and node-resource floors, model and region lists, required tags, provider lists
and tenant lists. Set-valued fields are CSR code lists sorted within a row, so membership is a
binary search and a subset test a merge; nothing grows with a vocabulary. Constraint
expressions are not evaluated here (the caller filters the survivors on columns), nor are
price, capacity and reputation (per offer, by the mechanisms).

Within a profile the kept classes are sorted ascending. The output of a block fits in
``cap`` pairs, the caller's bound on the block's candidate count.

Both `join_block` and `count_pairs` take a one-byte stop flag (`auction.kernels.budget`), set
by a timer at the clearing's deadline, and read it every `CHECK_EVERY` units of work once
`after` units are done (the grace in which a small market is always built).

`join_block` is compiled on first use; ``_group.python("join_block")`` is the same code in
plain Python, the reference the tests compare it with (and `Market`'s numpy join checks both).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from auction.kernels.budget import CHECK_EVERY
from auction.kernels.jit import KernelGroup

__all__ = ["count_pairs", "join_block", "join_block_reference"]

IntArray = npt.NDArray[np.int64]
_group = KernelGroup(nogil=True)

#: Candidate source per profile (`Market` chooses it): every class, or one inverted index.
EVERY, MODELS, REGIONS, TAG, PROVIDERS = 0, 1, 2, 3, 4


@_group.add
def _has(codes: IntArray, lo: int, hi: int, x: int) -> bool:
    """Whether x is in the sorted slice codes[lo:hi]."""
    while lo < hi:
        mid = (lo + hi) >> 1
        v = codes[mid]
        if v < x:
            lo = mid + 1
        elif v > x:
            hi = mid
        else:
            return True
    return False


@_group.add
def _subset(a: IntArray, a_lo: int, a_hi: int, b: IntArray, b_lo: int, b_hi: int) -> bool:
    """Whether the sorted slice a[a_lo:a_hi] is a subset of the sorted slice b[b_lo:b_hi]."""
    j = b_lo
    for i in range(a_lo, a_hi):
        x = a[i]
        while j < b_hi and b[j] < x:
            j += 1
        if j == b_hi or b[j] != x:
            return False
        j += 1
    return True


@_group.add
def join_block(
    lo: int, hi: int, n_class: int, source: IntArray, best_tag: IntArray,
    profile_first: IntArray, class_first: IntArray,
    pm_ptr: IntArray, pm_codes: IntArray, pr_ptr: IntArray, pr_codes: IntArray,
    pt_ptr: IntArray, pt_codes: IntArray, pp_ptr: IntArray, pp_codes: IntArray,
    bm_ptr: IntArray, bm_mem: IntArray, br_ptr: IntArray, br_mem: IntArray,
    bt_ptr: IntArray, bt_mem: IntArray, bp_ptr: IntArray, bp_mem: IntArray,
    class_model: IntArray, class_region: IntArray, ct_ptr: IntArray, ct_codes: IntArray,
    min_vram: IntArray, vram: IntArray, req_floor: IntArray, off_res: IntArray,
    check_providers: bool, off_provider: IntArray, ex_ptr: IntArray, ex_codes: IntArray,
    check_tenants: bool, req_tenant: IntArray, ot_ptr: IntArray, ot_codes: IntArray,
    oxt_ptr: IntArray, oxt_codes: IntArray, cap: int, stop: npt.NDArray[np.uint8],
    after: int,
) -> tuple[IntArray, IntArray, bool]:
    """Eligible (profile, class) pairs of profiles lo..hi-1, by profile then class, and
    whether `stop` was set first (read between index lists, every `CHECK_EVERY` candidates
    or so once `after` candidates are done; the pairs are then a part of the block's)."""
    out_p = np.empty(cap, dtype=np.int64)
    out_c = np.empty(cap, dtype=np.int64)
    every = np.arange(n_class, dtype=np.int64)
    every_ptr = np.array([0, n_class], dtype=np.int64)
    zero = np.zeros(1, dtype=np.int64)
    n_floor = req_floor.shape[0]
    n = 0
    seen = 0
    done = 0
    for p in range(lo, hi):
        r = profile_first[p]
        start = n
        src = source[p]
        # candidate classes: the index lists of the profile's codes in the chosen index
        if src == MODELS:
            k_lo, k_hi, ptr, mem, codes = pm_ptr[p], pm_ptr[p + 1], bm_ptr, bm_mem, pm_codes
        elif src == REGIONS:
            k_lo, k_hi, ptr, mem, codes = pr_ptr[p], pr_ptr[p + 1], br_ptr, br_mem, pr_codes
        elif src == PROVIDERS:
            k_lo, k_hi, ptr, mem, codes = pp_ptr[p], pp_ptr[p + 1], bp_ptr, bp_mem, pp_codes
        elif src == TAG:
            k_lo, k_hi, ptr, mem, codes = p, p + 1, bt_ptr, bt_mem, best_tag
        else:
            k_lo, k_hi, ptr, mem, codes = 0, 1, every_ptr, every, zero
        pm_lo, pm_hi = pm_ptr[p], pm_ptr[p + 1]
        pr_lo, pr_hi = pr_ptr[p], pr_ptr[p + 1]
        pt_lo, pt_hi = pt_ptr[p], pt_ptr[p + 1]
        pp_lo, pp_hi = pp_ptr[p], pp_ptr[p + 1]
        ex_lo, ex_hi = ex_ptr[r], ex_ptr[r + 1]
        floor_vram = min_vram[r]
        tenant = req_tenant[r]
        for k in range(k_lo, k_hi):
            code = codes[k]
            if seen >= CHECK_EVERY:  # read between index lists, about every CHECK_EVERY
                done += seen
                seen = 0
                if done >= after and stop[0]:
                    return out_p[:n], out_c[:n], True
            seen += ptr[code + 1] - ptr[code] + 1
            for j in range(ptr[code], ptr[code + 1]):
                c = mem[j]
                o = class_first[c]
                if vram[o] < floor_vram:
                    continue
                ok = True
                for f in range(n_floor):
                    if off_res[f, o] < req_floor[f, r]:
                        ok = False
                        break
                if not ok:
                    continue
                if pm_hi > pm_lo and not _has(pm_codes, pm_lo, pm_hi, class_model[c]):
                    continue
                if pr_hi > pr_lo and not _has(pr_codes, pr_lo, pr_hi, class_region[c]):
                    continue
                if pt_hi > pt_lo and not _subset(pt_codes, pt_lo, pt_hi, ct_codes, ct_ptr[c],
                                                 ct_ptr[c + 1]):
                    continue
                if check_providers:
                    prov = off_provider[o]
                    if pp_hi > pp_lo and not _has(pp_codes, pp_lo, pp_hi, prov):
                        continue
                    if ex_hi > ex_lo and _has(ex_codes, ex_lo, ex_hi, prov):
                        continue
                if check_tenants:
                    t_lo, t_hi = ot_ptr[o], ot_ptr[o + 1]
                    if t_hi > t_lo and not _has(ot_codes, t_lo, t_hi, tenant):
                        continue
                    t_lo, t_hi = oxt_ptr[o], oxt_ptr[o + 1]
                    if t_hi > t_lo and _has(oxt_codes, t_lo, t_hi, tenant):
                        continue
                out_p[n] = p
                out_c[n] = c
                n += 1
        if k_hi - k_lo > 1:  # several index lists: merge them into class order
            out_c[start:n] = np.sort(out_c[start:n])
    return out_p[:n], out_c[:n], False


def join_block_reference(*args: object) -> tuple[IntArray, IntArray, bool]:
    """`join_block` in plain Python (the same code, uncompiled): the tests' oracle."""
    fn = _group.python("join_block")
    out: tuple[IntArray, IntArray, bool] = fn(*args)
    return out


@_group.add
def count_pairs(
    request_profile: IntArray, profile_indptr: IntArray, profile_classes: IntArray,
    class_indptr: IntArray, members: IntArray, offer_price: IntArray, offer_gpus: IntArray,
    offer_rep: npt.NDArray[np.float64], req_max_price: IntArray, req_gpus: IntArray,
    req_any_size: npt.NDArray[np.bool_], req_min_rep: npt.NDArray[np.float64],
    stop: npt.NDArray[np.uint8], after: int,
) -> int:
    """Number of eligible (request, offer) pairs: per request, the members of its profile's
    classes (`members`: each class's offers in price order) priced at or below its max price,
    with the reputation it asks and, unless `req_any_size` (divisible or cluster), all its
    GPUs; -1 when `stop` was set first (read between classes, every `CHECK_EVERY` offers
    scanned or so, once `after` are done). Work:
    O(pairs + requests x eligible classes)."""
    total = 0
    seen = 0
    done = 0
    for r in range(len(request_profile)):
        p = request_profile[r]
        maxp = req_max_price[r]
        need = 1 if req_any_size[r] else req_gpus[r]
        floor = req_min_rep[r]
        for ci in range(profile_indptr[p], profile_indptr[p + 1]):
            if seen >= CHECK_EVERY:
                done += seen
                seen = 0
                if done >= after and stop[0]:
                    return -1
            c = profile_classes[ci]
            seen += 1
            for j in range(class_indptr[c], class_indptr[c + 1]):
                o = members[j]
                if offer_price[o] > maxp:
                    break
                seen += 1
                if offer_gpus[o] >= need and offer_rep[o] >= floor:
                    total += 1
    return total
