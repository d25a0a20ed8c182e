"""Hypothesis profiles for the test suite.

``ci`` (the default) keeps the whole suite fast on two cores: a modest number of examples, no
deadline (numba compiles a kernel on its first call, which would trip one), and a reproduction
blob printed with every failure. Pick another with ``HYPOTHESIS_PROFILE``: ``dev`` for quick
local runs, ``thorough`` for a long hunt before a release.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", deadline=None, print_blob=True, max_examples=30)
settings.register_profile("dev", deadline=None, print_blob=True, max_examples=10)
settings.register_profile("thorough", deadline=None, print_blob=True, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
