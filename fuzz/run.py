"""Coverage-guided fuzzing with atheris: ``python fuzz/run.py --seconds 60 --target book_json``.

Runs one target (or ``--target all``, each in turn, in a subprocess) for a bounded time on its
corpus in ``fuzz/corpus/<target>/``, and prints the number of inputs tried. New interesting
inputs are added to the corpus directory only with ``--grow``. Needs ``pip install .[fuzz]``.

With ``--target all`` each target's output goes to ``fuzz-<target>.log`` and one summary line
is printed per target; the exit code is 1 when any target found something: an exception
other than an `AuctionError` (libFuzzer saves the input as ``crash-*``), an input running
past ``-timeout`` (``timeout-*``), memory past ``-rss_limit_mb`` (``oom-*``), a crash of the
interpreter, or a target still running `GRACE` seconds after its time (killed: a hang).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Seconds a target may run past its time (start-up, instrumenting imports, the final merge)
#: before it counts as hung and is killed.
GRACE = 60
#: Seconds one input may take before libFuzzer reports it as a hang (``timeout-*``).
INPUT_TIMEOUT = 10
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def _one(target: str, seconds: int, grow: bool) -> int:
    import atheris

    # coverage of the library's own code only: instrumenting numpy, numba and scipy as well
    # took most of a target's start-up (13 s of 19 s for a 5-s run under load; now 4 s)
    with atheris.instrument_imports(include=["auction"]):
        import auction
        import auction.cli
        import auction.constraints
        import auction.datasets
        import auction.live.log
        import auction.mechanisms.sealed_bid
        import auction.scale.sweep  # noqa: F401
    from targets import TARGETS

    corpus = HERE / "corpus" / target
    work = corpus if grow else Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))
    args = [sys.argv[0], str(work), *([] if grow else [str(corpus)]),
            f"-max_total_time={seconds}", f"-timeout={INPUT_TIMEOUT}", "-rss_limit_mb=2048",
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
        failed |= _run_one(t, a.seconds, a.grow)
    return failed


def _run_one(target: str, seconds: int, grow: bool) -> int:
    """Fuzz `target` in a subprocess (output in ``fuzz-<target>.log``); print one summary line
    (and the log's tail on a finding); 1 on a finding, else 0."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    log = Path(f"fuzz-{target}.log")
    start = time.monotonic()
    with log.open("w") as out:
        try:
            code = subprocess.run(
                [sys.executable, __file__, "--target", target, "--seconds", str(seconds),
                 *(["--grow"] if grow else [])],
                env=env, stdout=out, stderr=subprocess.STDOUT, timeout=seconds + GRACE,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            code = -1
    text = log.read_text(errors="replace")
    runs = re.findall(r"^Done (\d+) runs", text, re.M)
    tried = f"{int(runs[-1]):,} inputs" if runs else "inputs unknown"
    took = time.monotonic() - start
    if code == 0:
        print(f"== {target}: {tried} in {took:.0f} s, nothing found", flush=True)
        return 0
    why = (f"still running {GRACE} s past its time: killed (a hang)" if code == -1
           else f"exit code {code}: a finding (the input is saved as crash-*, timeout-* or "
           f"oom-*; move it into fuzz/corpus/{target}/ once fixed)")
    print(f"== {target}: {tried} in {took:.0f} s, {why}", flush=True)
    print("\n".join(text.splitlines()[-40:]), flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
