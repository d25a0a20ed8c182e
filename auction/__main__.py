"""``python -m auction``: the command line (see `auction.cli`)."""

from __future__ import annotations

from auction.cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m auction"))
