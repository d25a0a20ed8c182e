"""Problems built from a `Market`'s canonical edge list, for the solvers to solve.

* `auction.problems.matching`: the maximum-weight matching (exclusive offers) and its
  unit expansion (shared capacity), for the auction kernel;
* `auction.problems.transport`: the transportation LP, for HiGHS, PuLP and the flow kernel;
* `auction.problems.call_market`: which resource class each request trades in;
* the gang MILP lives with the gang mechanism (`auction.mechanisms.gang.model`).

Problems see the market and arrays, never a mechanism; mechanisms read build -> solve ->
price.
"""
