"""Small array idioms used across the library, written once.

* `readonly`: mark an array read-only (results and problems hand out views nobody may edit);
* `group_starts`: CSR row pointers of a grouping (``bincount`` then ``cumsum``);
* `gather_ranges`: the concatenation of index ranges, vectorized.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["gather_ranges", "group_starts", "readonly"]

IntArray = npt.NDArray[np.int64]


def readonly(a: np.ndarray) -> Any:
    """`a` (made contiguous) with its writeable flag cleared."""
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


def group_starts(group: npt.ArrayLike, n_groups: int) -> IntArray:
    """Row pointers of a CSR whose row k holds the items with ``group == k``: ``n_groups + 1``
    offsets, ``out[k + 1] - out[k]`` the size of group k."""
    out = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(np.asarray(group, dtype=np.int64), minlength=n_groups),
              out=out[1:])
    return out


def gather_ranges(starts: IntArray, lengths: IntArray) -> IntArray:
    """Concatenation of the ranges [starts[k], starts[k] + lengths[k]), vectorized."""
    total = int(lengths.sum())
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    out: IntArray = np.repeat(starts, lengths) + np.arange(total, dtype=np.int64) - first
    return out
