"""Numba kernels: plain arrays in, plain arrays out.

Kernels never import the order types or the market; each has a pure-Python reference that the
tests compare it with. Compilation is lazy (see `auction.kernels.jit`).
"""
