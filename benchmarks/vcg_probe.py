"""Probe: objects settled per VCG re-solve search, Dijkstra against A* with a heuristic shared
by all providers (docs/assignment.md, "Where VCG is still slow"). Plain Python: a measurement
of search sizes, not of speed.

    python benchmarks/vcg_probe.py [n] [d] [providers] [labels] [--check] [--asks-equal]

On `instances.sparse_graph(n, d)` (or `adversarial_graph("asks-equal", n, d)`; providers own 4
consecutive objects) it solves the matching exactly, makes the duals object-optimal
(`max_duals`) and, once, finds every object's `labels` nearest DISTINCT exits (a request that
drops, at its profit, or a free offer) by a multi-label Dijkstra over the reversed edges. Then,
per provider, it re-matches the displaced requests by successive shortest paths twice: plain
Dijkstra (as `_vcg_group`) and A* whose heuristic for a request k is the distance of the nearest
exit of k's list not yet consumed by this provider, minus the drop of k's dual, capped by the
smallest such value over the requests on the paths already augmented (the reversed arcs). A*
runs in the frame it makes feasible: after a search every object's price rises by its heuristic
(settled ones by ``delta - d``), which is O(m) here; a kernel would apply that shift lazily. It
asserts both losses equal the kernel's (`vcg_groups`), and with ``--check`` that the duals stay
feasible and the matching tight after every search.
"""

from __future__ import annotations

import heapq
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from auction.kernels.assignment import exact_matching, max_duals, vcg_groups
from benchmarks.instances import adversarial_graph, sparse_graph

INF = 1 << 62


class Market:
    """An exactly solved market with object-optimal duals, as Python lists."""

    def __init__(self, n_: int, d: int, kind: str = "sparse") -> None:
        if kind == "sparse":
            n, m, indptr, cols, w = sparse_graph(n_, d)
        else:
            n, m, indptr, cols, w = adversarial_graph(kind, n_, d)
        stop = np.zeros(1, dtype=np.uint8)
        pedge, u, p, _, _ = exact_matching(n, m, indptr, cols, w, INF, stop)
        gptr = np.minimum(np.arange(0, m + 4, 4, dtype=np.int64), m)
        self.kernel_loss = np.zeros(len(gptr) - 1, dtype=np.int64)  # `vcg_groups`, to compare
        vcg_groups(n, m, indptr, cols, w, pedge, u, p, gptr, np.arange(m, dtype=np.int64), 0,
                   self.kernel_loss, INF, stop)
        u, p, _ = max_duals(n, m, indptr, cols, w, pedge, u, p)
        self.n, self.m = n, m
        self.indptr, self.cols, self.w = indptr.tolist(), cols.tolist(), w.tolist()
        self.pedge, self.u, self.p = pedge.tolist(), u.tolist(), p.tolist()
        self.oown = [-1] * m
        self.erow = [0] * len(self.cols)
        self.into: list[list[tuple[int, int]]] = [[] for _ in range(m)]
        for k in range(n):
            for e in range(self.indptr[k], self.indptr[k + 1]):
                self.erow[e] = k
                self.into[self.cols[e]].append((k, e))
            if self.pedge[k] >= 0:
                self.oown[self.cols[self.pedge[k]]] = k

    def labels(self, count: int) -> list[list[tuple[int, int]]]:
        """Per object, its `count` nearest distinct exits (distance, exit id): exit id k for
        request k dropping, n + j for free object j. Multi-label Dijkstra, reversed edges."""
        n, cols, u, p, w, pedge = self.n, self.cols, self.u, self.p, self.w, self.pedge
        out: list[list[tuple[int, int]]] = [[] for _ in range(self.m)]
        have: list[set[int]] = [set() for _ in range(self.m)]
        heap = [(u[k], j, k) if k >= 0 else (0, j, n + j) for j, k in enumerate(self.oown)]
        heapq.heapify(heap)
        while heap:
            d, j, lab = heapq.heappop(heap)
            if len(out[j]) >= count or lab in have[j]:
                continue
            out[j].append((d, lab))
            have[j].add(lab)
            for k2, e in self.into[j]:
                if pedge[k2] < 0 or pedge[k2] == e:
                    continue
                j2 = cols[pedge[k2]]
                if len(out[j2]) < count and lab not in have[j2]:
                    heapq.heappush(heap, (d + u[k2] + p[j] - w[e], j2, lab))
        return out


def regroup(mk: Market, objs: list[int], labels: list[list[tuple[int, int]]] | None,
            check: bool) -> tuple[int, list[int], list[int]]:
    """Loss of removing `objs` by successive shortest paths: (loss, settled per search, the
    searches' costs). A* with the shared labels when given, else Dijkstra."""
    n, m, indptr, cols, w = mk.n, mk.m, mk.indptr, mk.cols, mk.w
    u, p, own, pe = mk.u[:], mk.p[:], mk.oown[:], mk.pedge[:]
    home = [cols[e] if e >= 0 else -1 for e in mk.pedge]
    removed = set(objs)
    sources = [own[j] for j in objs if own[j] >= 0]
    loss = sum(p[j] for j in objs if own[j] >= 0)
    for j in objs:
        if own[j] >= 0:
            pe[own[j]] = -1
            own[j] = -1
    used: set[int] = set()  # exits consumed
    moved: list[int] = []  # requests on augmented paths (reversed arcs)
    settled: list[int] = []
    costs: list[int] = []

    def bound(k: int, lab: list[tuple[int, int]]) -> int:
        """Distance of k's nearest unconsumed exit in the original graph, minus k's drop."""
        val = lab[-1][0]
        for dd, ll in lab:
            if ll not in used:
                val = dd
                break
        return max(0, val - (mk.u[k] - u[k]))

    for s in sources:
        h = [0] * m  # the heuristic per object (its request's), 0 for Dijkstra
        if labels is not None:
            cap = min((bound(k, labels[home[k]]) for k in moved if pe[k] >= 0), default=INF)
            for j in range(m):
                if own[j] >= 0:
                    h[j] = min(bound(own[j], labels[home[own[j]]]), cap)
        dist: dict[int, int] = {}
        pred: dict[int, int] = {}
        done: set[int] = set()
        best, end = u[s], -1
        heap: list[tuple[int, int, int]] = []
        todo = [(u[s] + p[cols[e]] - w[e], e) for e in range(indptr[s], indptr[s + 1])]
        while True:
            for d, e in todo:  # reach the edges' objects; note their ends
                j = cols[e]
                if j not in removed and j not in done and d < dist.get(j, INF):
                    dist[j] = d
                    pred[j] = e
                    heapq.heappush(heap, (d + h[j], d, j))
                    cost = d if own[j] < 0 else d + u[own[j]]
                    if cost < best:
                        best, end = cost, j
            todo = []
            while heap and heap[0][0] < best and not todo:
                _, d, j = heapq.heappop(heap)
                if j in done or d > dist[j]:
                    continue
                done.add(j)
                k = own[j]
                if k < 0:
                    break
                todo = [(d + u[k] + p[cols[e]] - w[e], e)
                        for e in range(indptr[k], indptr[k + 1]) if e != pe[k]]
            if not todo:
                break
        delta = best
        settled.append(len(done))
        costs.append(delta)
        loss += delta
        u[s] -= delta
        # potentials: settled objects rise by delta - d; under A* every other one by h
        for j in range(m) if labels is not None else done:
            k = own[j]
            if k < 0 or j in removed:
                continue
            step = delta - dist[j] if j in done else h[j]
            u[k] -= step
            p[j] += step
        if end >= 0:
            j = end
            if own[j] >= 0:
                used.add(own[j])
                pe[own[j]] = -1
            while True:
                k = mk.erow[pred[j]]
                old = cols[pe[k]] if pe[k] >= 0 else -1
                pe[k] = pred[j]
                own[j] = k
                moved.append(k)
                if k == s:
                    break
                j = old
        if check:
            for k in range(n):
                for e in range(indptr[k], indptr[k + 1]):
                    assert cols[e] in removed or u[k] + p[cols[e]] >= w[e], "infeasible"
                assert pe[k] < 0 or (u[k] + p[cols[pe[k]]] == w[pe[k]] and u[k] >= 0)
    return loss, settled, costs


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n, d, providers, count = (int(a) for a in (args + ["10000", "30", "30", "5"][len(args):]))
    check = "--check" in sys.argv
    t = time.perf_counter()
    mk = Market(n, d, "asks-equal" if "--asks-equal" in sys.argv else "sparse")
    print(f"n = {n}, d = {d}: {sum(e >= 0 for e in mk.pedge)} matched, "
          f"{sum(1 for k in range(n) if mk.pedge[k] >= 0 and mk.u[k] == 0)} at profit 0, "
          f"{mk.oown.count(-1)} free offers ({time.perf_counter() - t:.1f} s)")
    t = time.perf_counter()
    labels = mk.labels(count)
    second = [lab[1][0] for lab in labels if len(lab) > 1]
    print(f"{count} exit labels per object: {time.perf_counter() - t:.1f} s; second exit's "
          f"distance, quantiles 0/10/50/90/100%: {np.percentile(second, [0, 10, 50, 90, 100])}")
    plain = fast = 0
    for g in range(providers):
        objs = list(range(4 * g, min(mk.m, 4 * g + 4)))
        loss, sd, cd = regroup(mk, objs, None, check)
        loss_a, sa, _ = regroup(mk, objs, labels, check)
        assert loss == loss_a == mk.kernel_loss[g], (g, loss, loss_a, mk.kernel_loss[g])
        plain += sum(sd[1:])
        fast += sum(sa[1:])
        print(f"provider {g}: loss {loss}, searches cost {cd}; settled Dijkstra {sd}, A* {sa}")
    print(f"settled after each provider's first search: Dijkstra {plain}, A* {fast}: "
          f"{plain / max(1, fast):.1f}x fewer")


if __name__ == "__main__":
    main()
