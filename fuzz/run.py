"""Coverage-guided fuzzing with atheris: ``python fuzz/run.py --seconds 60 --target book_json``.

Runs one target (or ``--target all``, each in turn, in a subprocess) for a bounded time on its
corpus in ``fuzz/corpus/<target>/``, and prints the number of inputs tried. New interesting
inputs are added to the corpus directory only with ``--grow``. Needs ``pip install .[fuzz]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def _one(target: str, seconds: int, grow: bool) -> int:
    import atheris

    with atheris.instrument_imports():
        import auction
        import auction.cli
        import auction.constraints
        import auction.live.log  # noqa: F401
    from targets import TARGETS

    corpus = HERE / "corpus" / target
    work = corpus if grow else Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))
    args = [sys.argv[0], str(work), *([] if grow else [str(corpus)]),
            f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048",
            "-print_final_stats=1"]
    atheris.Setup(args, TARGETS[target])
    atheris.Fuzz()
    return 0


def main() -> int:
    """Parse the arguments and fuzz."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--target", default="all")
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--grow", action="store_true", help="add new inputs to the corpus")
    a = p.parse_args()
    if a.target != "all":
        return _one(a.target, a.seconds, a.grow)
    from targets import TARGETS

    failed = 0
    for t in TARGETS:
        print(f"== {t}", flush=True)
        env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
        failed |= subprocess.call([sys.executable, __file__, "--target", t,
                                   "--seconds", str(a.seconds), *(["--grow"] if a.grow else [])],
                                  env=env)
    return failed


if __name__ == "__main__":
    sys.exit(main())
