"""Problems built from a `Market`'s canonical edge list, for the solvers to solve.

* `auction.problems.matching`: the maximum-weight matching (exclusive offers), for the
  auction kernel;
* `auction.problems.transport`: the transportation problem (`lp`, and `assignment`'s shared
  shape), for HiGHS, PuLP and the flow kernel, with its exact certificate;
* `auction.problems.gang`: the gang MILP;
* `auction.problems.call_market`: which resource class each request trades in;
* `auction.problems.memory`: what a problem will hold, estimated before it is built.

Solvers (`auction.solvers`) take these problems and return one `SolverOutcome`.

Problems see the market and arrays, never a mechanism; mechanisms read build -> solve ->
price.
"""
