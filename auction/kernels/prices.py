"""Shortest paths with negative arcs: the kernel behind exact equilibrium prices.

Equilibrium prices of a transportation market form the solution set of a system of difference
constraints ``x[j] - x[i] <= c``, one arc ``i -> j`` of length ``c`` each. Shortest distances
from a root give that system's largest solution, and a negative cycle proves it has none
(Cormen et al., *Introduction to Algorithms*, section 24.4). The kernel is the queue-based
Bellman-Ford (SPFA) on integer lengths: exact, with the ``O(V E)`` worst case of Bellman-Ford
and near-linear behaviour on the graphs markets make.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from auction.kernels.jit import lazy_njit

__all__ = ["UNREACHABLE", "shortest_paths"]

IntArray = npt.NDArray[np.int64]

#: Distance of a node the root does not reach.
UNREACHABLE = np.iinfo(np.int64).max


@lazy_njit(nogil=True)
def shortest_paths(
    n_nodes: int, indptr: IntArray, heads: IntArray, lengths: IntArray, root: int
) -> tuple[IntArray, bool]:
    """Shortest distances from `root` over arcs in CSR form (``heads[indptr[i]:indptr[i+1]]``
    leave node i), and False if a negative cycle is reachable (distances then meaningless).

    Lengths and distances are int64; the caller keeps ``|lengths| * n_nodes`` below 2**62.
    """
    inf = np.iinfo(np.int64).max
    dist = np.full(n_nodes, inf, dtype=np.int64)
    if n_nodes == 0:
        return dist, True
    queued = np.zeros(n_nodes, dtype=np.bool_)
    passes = np.zeros(n_nodes, dtype=np.int64)  # times a node entered the queue
    queue = np.empty(n_nodes, dtype=np.int64)  # circular: each node is in it at most once
    head = 0
    size = 1
    queue[0] = root
    queued[root] = True
    dist[root] = 0
    while size > 0:
        i = queue[head]
        head = (head + 1) % n_nodes
        size -= 1
        queued[i] = False
        di = dist[i]
        for k in range(indptr[i], indptr[i + 1]):
            j = heads[k]
            d = di + lengths[k]
            if d < dist[j]:
                dist[j] = d
                if not queued[j]:
                    passes[j] += 1
                    if passes[j] > n_nodes:  # a shortest path never has n_nodes arcs
                        return dist, False
                    queue[(head + size) % n_nodes] = j
                    size += 1
                    queued[j] = True
    return dist, True
