"""The ``auction`` command line (also ``python -m auction``).

Commands:

* ``auction demo [--seed N]``: clear the example markets with every registered mechanism and
  print a comparison table (`auction.demo`).
* ``auction clear BOOK.json [--mechanism NAME] [--payment RULE] [-o NAME=VALUE ...]
  [--reputation REP.json] [--output OUT.json]``: read a book in the ``auction.book`` JSON
  format (`auction.OrderBook.from_json`), clear it with the mechanism built with those options,
  and write the result (`ClearingResult.to_dict`, under the header ``{"format":
  "auction.result", "version": 1}``) as JSON, to stdout unless ``--output`` is given. ``-``
  reads the book from stdin. Option values are typed: integers, decimals, ``true``/``false``,
  ``none``, else strings (never evaluated).
* ``auction mechanisms``: list registered mechanisms with their payment rules, tags and options.
* ``auction example-book [--seed N] [--exchange] [--output BOOK.json] [--reputation REP.json]``:
  write the example market's book (or, with ``--exchange``, its call-market form) as JSON, and
  its providers' reputation scores (``{"format": "auction.scores", "version": 1, "scores":
  {provider: score}}``; ``clear --reputation`` also reads a bare ``{provider: score}`` object).
* ``auction warmup``: compile every numba kernel (or load it from the disk cache) and print
  the compile time of each (`auction.warmup`).
* ``auction simulate [--epochs N] [--mechanism NAME] [--fee RATE] [--settle lease|render]
  [--emission TOKENS] [--demand X ...] ...``: run the example market over many epochs
  (`auction.simulation`) and print one row per epoch; ``--csv`` and ``--plot`` save them.

Exit codes: 0 on success; 1 when clearing ran but produced no valid allocation (status
``failed``; the result is still written); 2 for bad input: unreadable or invalid files (the
message names the offending order and field), an unknown mechanism or payment rule, a market
the mechanism cannot clear, bad arguments or no command. Every error is one line on stderr,
``auction: error: ...``, never a traceback.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import attrs

from auction._formats import header, read_version
from auction.errors import (
    AuctionError,
    DuplicateOrderError,
    InvalidOrderError,
    InvalidValueError,
    MechanismNotFoundError,
    UnknownPaymentRuleError,
    UnsupportedMarketError,
)

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class _InputError(Exception):
    """A problem with the command's input, reported on stderr with exit code 2."""


_JSON_TYPES = {"list": "an array", "str": "a string", "int": "a number", "float": "a number",
               "bool": "true or false", "NoneType": "null"}


def _describe_order_error(
    source: str, e: InvalidOrderError | DuplicateOrderError, text: str = ""
) -> str:
    """A one-line account of a bad order naming the order, the field and the value."""
    if isinstance(e, DuplicateOrderError):
        return f"{source}: order {e.order_id!r}: duplicate id (ids must be unique across the book)"
    if e.field == "json" and e.reason == "is not valid JSON":
        return f"{source}: not valid JSON: {e.value}"
    if e.field == "json" and "top level" in e.reason:
        got = _JSON_TYPES.get(str(e.value), str(e.value))
        return (f"{source}: a book is a JSON object with \"format\", \"version\", "
                f"\"offers\" and \"requests\", not {got}")
    if e.value is None and e.reason.startswith("is required") and e.order_id is not None:
        side, missing = _missing_fields(text, e.order_id)
        fields = " and ".join(repr(f) for f in missing or [e.field])
        plural = "s" if len(missing) > 1 else ""
        return f"{source}: missing required field{plural} {fields} in {side} {e.order_id!r}"
    where = f"order {e.order_id!r}, " if e.order_id is not None else ""
    return f"{source}: {where}field {e.field!r} = {e.value!r}: {e.reason}"


def _missing_fields(text: str, order_id: str) -> tuple[str, list[str]]:
    """("offer" or "request", the required fields its JSON record lacks) for `order_id`."""
    from auction.orders import Offer, Request

    try:
        data = json.loads(text)
    except ValueError:
        return "order", []
    for side, cls in (("offers", Offer), ("requests", Request)):
        records = data.get(side, []) if isinstance(data, dict) else []
        for rec in records if isinstance(records, list) else []:
            if isinstance(rec, dict) and rec.get("id") == order_id:
                required = [f.name for f in attrs.fields(cls) if f.default is attrs.NOTHING]
                return side[:-1], [f for f in required if f not in rec]
    return "order", []


def _describe_auction_error(e: AuctionError) -> str:
    """One wording per error, whichever command raised it."""
    if isinstance(e, MechanismNotFoundError):
        return f"unknown mechanism {e.name!r}; available: {', '.join(e.available) or 'none'}"
    if isinstance(e, UnknownPaymentRuleError):
        return (f"mechanism {e.mechanism!r} has no payment rule {e.payment!r}; "
                f"it offers: {', '.join(e.offered)}")
    return str(e)


def _read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _InputError(f"{path}: cannot read: {e}") from None


def _write_text(path: str | None, text: str) -> None:
    if path is None or path == "-":
        sys.stdout.write(text)
        return
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as e:
        raise _InputError(f"{path}: cannot write: {e}") from None


#: The header of the CLI's JSON outputs: the result of ``clear``, the scores of
#: ``example-book --reputation`` (as every JSON format of the library, `auction._formats`).
RESULT_FORMAT, RESULT_VERSION = "auction.result", 1
SCORES_FORMAT, SCORES_VERSION = "auction.scores", 1


def _load_reputation(path: str) -> dict[str, float]:
    """Scores from ``{"format": "auction.scores", "version": 1, "scores": {...}}``, or from a
    bare object of provider names to scores (as written before the header)."""
    text = _read_text(path)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise _InputError(f"{path}: not valid JSON: {e}") from None
    shape = ("a JSON object mapping provider names to scores in [0, 1], or "
             f"{{\"format\": \"{SCORES_FORMAT}\", \"version\": 1, \"scores\": {{...}}}}")
    if not isinstance(data, dict):
        raise _InputError(f"{path}: reputation must be {shape}")
    if isinstance(data.get("format"), str) or isinstance(data.get("scores"), dict):
        _, keys = read_version(data, SCORES_FORMAT, (SCORES_VERSION,), document=path)
        extra = sorted(set(data) - keys - {"scores"})
        if extra or not isinstance(data.get("scores"), dict):
            raise _InputError(f"{path}: reputation must be {shape}")
        scores: dict[str, float] = data["scores"]
        return scores
    return data


# -- mechanism options ----------------------------------------------------------------------


def _parameters(name: str) -> dict[str, inspect.Parameter]:
    """The options a mechanism's constructor takes (its signature; ``payment`` excluded)."""
    from auction.mechanisms import get

    try:
        sig = inspect.signature(type(get(name)))
    except (TypeError, ValueError):  # no signature to read: no options known
        return {}
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return {p.name: p for p in sig.parameters.values()
            if p.kind not in skip and p.name not in ("self", "payment")}


def _plain(value: Any) -> Any:
    """An option's value as plain Python for listings (read-only mappings as dicts)."""
    from collections.abc import Mapping

    return dict(value) if isinstance(value, Mapping) else value


def _show_default(p: inspect.Parameter) -> str:
    return f"{p.name} (required)" if p.default is inspect.Parameter.empty else (
        f"{p.name}={p.default!r}")


_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?|[+-]?inf")


def _typed(text: str, annotation: str) -> Any:
    """`text` as the first type the annotation allows: None, bool, int, float, else a string.

    An empty or unknown annotation allows all of them. Nothing is evaluated.
    """
    words = set(re.findall(r"[A-Za-z_]+", annotation))
    known = words & {"None", "bool", "int", "float", "str", "Literal"}

    def allows(*types: str) -> bool:
        return not known or bool(words & set(types))

    low = text.strip().lower()
    if low in ("none", "null") and allows("None"):
        return None
    if low in ("true", "false") and allows("bool"):
        return low == "true"
    if _INT.fullmatch(text.strip()) and allows("int", "float"):
        return int(text) if allows("int") else float(text)
    if _FLOAT.fullmatch(low) and allows("float"):
        return float(text)
    if allows("str", "Literal"):
        return text
    raise _InputError(f"expected {annotation}, got {text!r}")


def _options(name: str, pairs: Sequence[str], payment: str | None) -> dict[str, Any]:
    """``-o NAME=VALUE`` pairs as typed keyword arguments of mechanism `name`."""
    params = _parameters(name)
    options: dict[str, Any] = {} if payment is None else {"payment": payment}
    for pair in pairs:
        key, eq, raw = pair.partition("=")
        key = key.strip()
        if not eq or not key:
            hint = " (to write the result to a file, use --output)" if not eq else ""
            raise _InputError(f"option {pair!r}: expected NAME=VALUE{hint}")
        if key in options:
            raise _InputError(f"option {key!r} is given twice")
        if key == "payment":
            options[key] = raw
            continue
        if params and key not in params:
            raise _InputError(
                f"mechanism {name!r} has no option {key!r}; it takes: "
                f"{', '.join(params) or 'none'}"
            )
        p = params.get(key)
        annotation = "" if p is None or p.annotation is inspect.Parameter.empty else str(
            p.annotation)
        try:
            options[key] = _typed(raw, annotation)
        except _InputError as e:
            raise _InputError(f"option {key!r}: {e}") from None
    return options


def _mechanism_table() -> list[str]:
    """Each registered mechanism: payment rules (the first is the default), tags, options."""
    from auction.mechanisms import available, get, tags_of
    from auction.mechanisms.base import DEPRECATED_PAYMENTS

    rows: list[tuple[str, str, str, str]] = []
    for name in available():
        try:
            tags = tags_of(name)
            built = get(name)
            options = ", ".join(
                _show_default(p) if not hasattr(built, p.name)
                else f"{p.name}={_plain(getattr(built, p.name))!r}"
                for p in _parameters(name).values()
            )
        except Exception as e:  # a broken plugin is listed, not fatal
            rows.append((name, "-", f"(cannot be built with default options: {e})", ""))
            continue
        promises = [k for k, v in attrs.asdict(tags).items() if k != "payments" and v is True]
        rows.append((name, ", ".join(tags.payments), ", ".join(promises) or "-",
                     options or "-"))
    w0 = max([len("mechanism"), *(len(r[0]) for r in rows)])
    w1 = max([len("payments"), *(len(r[1]) for r in rows)])
    lines = [f"{'mechanism'.ljust(w0)}  {'payments'.ljust(w1)}  tags"]
    lines += [f"{n.ljust(w0)}  {pay.ljust(w1)}  {flags}" for n, pay, flags, _ in rows]
    offered = {p for _, pay, _, _ in rows for p in pay.split(", ")}
    aliases = [f"{old} (use {new})" for old, new in DEPRECATED_PAYMENTS.items() if new in offered]
    if aliases:
        lines += ["", f"deprecated payment names, still accepted: {', '.join(aliases)}"]
    lines += ["", "options (clear -o NAME=VALUE; defaults shown):"]
    lines += [f"{n.ljust(w0)}  {opts}" for n, _, _, opts in rows if opts]
    return lines


def _clear_epilog() -> str:
    return "\n".join(_mechanism_table())


# -- commands ---------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from auction.demo import run_demo

    run_demo(sys.stdout, seed=args.seed)
    return EXIT_OK


def _cmd_mechanisms(args: argparse.Namespace) -> int:
    print("\n".join(_mechanism_table()))
    return EXIT_OK


def _cmd_warmup(args: argparse.Namespace) -> int:
    from auction._warmup import warmup

    def progress(step: str) -> None:
        if args.verbose:
            print(f"  {step}", file=sys.stderr, flush=True)

    report = warmup(progress=progress)
    compiled = [k for k in report.kernels if k.signatures]
    helpers = len(report.kernels) - len(compiled)
    width = max([len("kernel"), *(len(k.name) for k in compiled)])
    print(f"{'kernel'.ljust(width)}  signatures  compile s  from cache")
    for k in compiled:
        print(f"{k.name.ljust(width)}  {k.signatures:>10}  {k.compile_seconds:>9.2f}  "
              f"{k.cache_hits:>10}")
    inside = f" (and {helpers} helpers, loaded inside their callers)" if helpers else ""
    print(f"{len(compiled)} kernels ready{inside} in {report.seconds:.2f} s, "
          f"{report.compile_seconds:.2f} s of it compiling")
    print(f"disk cache: {report.cache_dir or 'off'}")
    for line in report.skipped:
        print(f"skipped: {line}")
    return EXIT_OK


def _cmd_example_book(args: argparse.Namespace) -> int:
    from auction.datasets import example_book, example_exchange_book, example_reputation

    book = (example_exchange_book if args.exchange else example_book)(args.seed)
    _write_text(args.output, book.to_json(indent=2) + "\n")
    if args.reputation is not None:
        scores = example_reputation(args.seed)
        doc = {**header(SCORES_FORMAT, SCORES_VERSION), "scores": dict(sorted(scores.items()))}
        _write_text(args.reputation, json.dumps(doc, indent=2) + "\n")
    return EXIT_OK


def _cmd_clear(args: argparse.Namespace) -> int:
    from auction.book import OrderBook
    from auction.market import Market
    from auction.mechanisms import get
    from auction.result import Status

    try:
        options = _options(args.mechanism, args.option, args.payment)
        mechanism = get(args.mechanism, **options)
    except (MechanismNotFoundError, UnknownPaymentRuleError) as e:
        raise _InputError(_describe_auction_error(e)) from None
    except InvalidValueError as e:  # an option the mechanism refuses
        raise _InputError(f"mechanism {args.mechanism!r}, option {e.field!r} = {e.value!r}: "
                          f"{e.reason}") from None
    except (AuctionError, ValueError, TypeError) as e:  # an option the mechanism refuses
        field = getattr(e, "field", None)
        named = field if field in options else next((k for k in options if k in str(e)), None)
        where = f"option {named!r}" if named else f"options {options!r}"
        raise _InputError(f"mechanism {args.mechanism!r}, {where}: {e}") from None

    source = "<stdin>" if args.book == "-" else args.book
    text = _read_text(args.book)
    try:
        book = OrderBook.from_json(text)
    except (InvalidOrderError, DuplicateOrderError) as e:
        raise _InputError(_describe_order_error(source, e, text)) from None

    reputation = None if args.reputation is None else _load_reputation(args.reputation)
    try:
        market = Market(book, reputation)
    except InvalidOrderError as e:
        raise _InputError(_describe_order_error(args.reputation or source, e)) from None

    try:
        result = mechanism.clear(market)
    except UnsupportedMarketError as e:
        raise _InputError(str(e)) from None

    doc = {**header(RESULT_FORMAT, RESULT_VERSION), **result.to_dict()}
    _write_text(args.output, json.dumps(doc, indent=2) + "\n")
    if result.status is Status.FAILED:
        print(f"auction: clearing failed: {result.message}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _cmd_simulate(args: argparse.Namespace) -> int:
    import csv
    import io

    from auction.money import to_units
    from auction.settlement import Currency, FeeSchedule, FixedEmission, OraclePrice
    from auction.simulation import Design, ExampleFlow, plot, simulate

    usdc, token = Currency("USDC", 6), Currency("TOKEN", 6)
    try:
        price = OraclePrice.of(token, usdc, args.token_price)
        fees = FeeSchedule({"USDC": args.fee})
        emission = FixedEmission(to_units(args.emission, token.decimals))
        quality_weight = to_units(args.quality_weight, usdc.decimals)
    except (AuctionError, ValueError) as e:
        raise _InputError(str(e)) from None
    design = Design(
        mechanism=args.mechanism, payment=args.payment, fees=fees, settle=args.settle,
        token_price=price, emission=emission,
        genesis_supply=to_units(
            args.genesis if args.genesis is not None
            else ("1000000000" if args.settle == "render" else "0"),
            token.decimals,
        ),
        reputation="beta" if quality_weight else None,
        quality_weight=quality_weight,
    )
    flow = ExampleFlow(seed=args.seed, demand=tuple(args.demand), exchange=args.exchange)
    try:
        run = simulate(flow, design, epochs=args.epochs, epoch_hours=args.epoch_hours,
                       seed=args.seed, reliability=args.reliability)
    except (MechanismNotFoundError, UnknownPaymentRuleError, UnsupportedMarketError) as e:
        raise _InputError(_describe_auction_error(e)) from None
    rows = run.to_records()
    money = ("revenue", "protocol_revenue", "provider_income")
    tokens: tuple[str, ...] = ("provider_rewards", "burned", "minted", "supply")
    head = ["epoch", "requests", "served", "util", "revenue", "protocol", "income", "rewards",
            "burned", "minted", "supply"]
    if args.settle == "render":  # the protocol's 5% is kept in tokens
        tokens = ("token_fees", *tokens)
        head.insert(7, "token_fees")
    table = [head] + [
        [str(r["epoch"]), str(r["requests"]), str(r["served"]), f"{r['utilization']:.2f}"]
        + [f"{r[k] // 10**usdc.decimals:,}" for k in money]
        + [f"{r[k] // 10**token.decimals:,}" for k in tokens]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    print(f"{args.epochs} epochs of {args.epoch_hours} h, {design.mechanism}, "
          f"{design.settle.value} settlement; USDC and TOKEN in whole units")
    for row in table:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    if args.csv is not None:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["epoch"])
        writer.writeheader()
        writer.writerows(rows)
        _write_text(args.csv, out.getvalue())
    if args.plot is not None:
        try:
            plot({str(design.mechanism): run}, args.plot)
        except ImportError as e:
            raise _InputError(str(e)) from None
    return EXIT_OK


# -- parser -----------------------------------------------------------------------------


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = _seed(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _number_in(lo: float, hi: float) -> Callable[[str], float]:
    """An argparse type: a number in [lo, hi]."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be in [{lo:g}, {hi:g}], got {value}")
        return value

    return parse


def _one_line(text: str) -> str:
    """`text` with every non-printable character (newlines, tabs, controls) escaped as in a
    Python literal, so an error message stays one line whatever the input held."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _Parser(argparse.ArgumentParser):
    """The parser of the command and of each sub-command: an epilog, if any, is made only when
    help is shown, and a usage error is one line (``PROG: error: ...``, exit code 2), not
    the usage block and the error."""

    epilog_factory: Callable[[], str] | None = None

    def format_help(self) -> str:
        if self.epilog_factory is not None:
            self.epilog = self.epilog_factory()
        return super().format_help()

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE,
                  _one_line(f"{self.prog}: error: {message} (see '{self.prog} --help')") + "\n")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``auction`` command."""
    parser = _Parser(
        prog=prog or "auction",
        description="Clear reverse auctions for decentralized GPU compute markets.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = sub.add_parser(
        "demo", help="clear the example markets with every mechanism"
    )
    demo.add_argument("--seed", type=_seed, default=0, help="example market seed (default 0)")
    demo.set_defaults(func=_cmd_demo)

    clear = sub.add_parser(
        "clear",
        help="clear a JSON book and write the result as JSON",
        description="Clear a book in the auction.book JSON format and write the result.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if isinstance(clear, _Parser):
        clear.epilog_factory = _clear_epilog
    clear.add_argument("book", metavar="BOOK.json", help="the book to clear ('-' for stdin)")
    clear.add_argument(
        "--mechanism", "-m", default="first-price",
        help="mechanism name, see 'auction mechanisms' (default first-price)",
    )
    clear.add_argument("--payment", "-p", default=None,
                       help="payment rule of the mechanism (default: the first listed below)")
    clear.add_argument(
        "--option", "-o", metavar="NAME=VALUE", action="append", default=[],
        help="a mechanism option (repeatable), e.g. -m assignment -o shape=shared, or -m gang "
        "-o time_limit=5 -o mip_gap=0.01; values: integers, decimals, true/false, none, else "
        "strings; each mechanism's options are listed below",
    )
    clear.add_argument(
        "--reputation", "-r", metavar="REP.json", default=None,
        help="JSON object of provider reputation scores in [0, 1]",
    )
    clear.add_argument(
        "--output", metavar="OUT.json", default=None,
        help="write the result here instead of stdout",
    )
    clear.set_defaults(func=_cmd_clear)

    mechs = sub.add_parser(
        "mechanisms", help="list mechanisms: payment rules, tags and options"
    )
    mechs.set_defaults(func=_cmd_mechanisms)

    warm = sub.add_parser(
        "warmup", help="compile every kernel now (or load it from the disk cache)",
        description="Compile every numba kernel, or load it from the disk cache, and print "
        "the compile time of each. A service runs it (or auction.warmup()) at start.",
    )
    warm.add_argument("--verbose", "-v", action="store_true",
                      help="print each step on stderr as it starts")
    warm.set_defaults(func=_cmd_warmup)

    example = sub.add_parser(
        "example-book", help="write the built-in example market's book as JSON"
    )
    example.add_argument("--seed", type=_seed, default=0, help="example market seed (default 0)")
    example.add_argument(
        "--exchange", action="store_true",
        help="the same supply as an exchange (call market): for lp and the double auctions",
    )
    example.add_argument(
        "--output", "-o", metavar="BOOK.json", default=None,
        help="write the book here instead of stdout",
    )
    example.add_argument(
        "--reputation", "-r", metavar="REP.json", default=None,
        help="also write the example providers' reputation scores here",
    )
    example.set_defaults(func=_cmd_example_book)

    sim = sub.add_parser(
        "simulate",
        help="run the example market over many epochs",
        description="Run the example market epoch after epoch: clearing, lease settlement "
        "(or Render burns), emissions; print one row per epoch.",
    )
    sim.add_argument("--epochs", type=_seed, default=7, help="epochs to run (default 7)")
    sim.add_argument("--epoch-hours", type=_positive, default=24,
                     help="hours per epoch (default 24)")
    sim.add_argument("--mechanism", "-m", default="first-price",
                     help="mechanism name (default first-price)")
    sim.add_argument("--payment", "-p", default=None, help="payment rule of the mechanism")
    sim.add_argument("--exchange", action="store_true",
                     help="post the orders as a call market (for lp and the double auctions)")
    sim.add_argument("--fee", default="0", help="take rate on USDC payments, e.g. 20%% (default 0)")
    sim.add_argument("--settle", choices=("lease", "render"), default="lease",
                     help="tenants pay through leases, or burn tokens Render-style")
    sim.add_argument("--token-price", default="0.50",
                     help="the token's price in USDC (default 0.50)")
    sim.add_argument("--emission", default="10000",
                     help="tokens minted per epoch, split by work (default 10000)")
    sim.add_argument("--genesis", default=None,
                     help="tokens on the market before epoch 0 (default 1e9 with render "
                     "settlement, else 0)")
    sim.add_argument("--demand", type=_number_in(0, 100), nargs="+", default=[1.0], metavar="X",
                     help="requests per epoch as multiples of the example's 240, one per "
                     "epoch (the last repeats; default 1)")
    sim.add_argument("--reliability", type=_number_in(0, 1), default=1.0,
                     help="probability that a lease runs to its end (default 1)")
    sim.add_argument("--quality-weight", default="0",
                     help="USDC per GPU-hour a reputation of 1 is worth (beta model); "
                     "0: price only (default)")
    sim.add_argument("--seed", type=_seed, default=0, help="seed (default 0)")
    sim.add_argument("--csv", metavar="OUT.csv", default=None, help="also write the rows as CSV")
    sim.add_argument("--plot", metavar="OUT.png", default=None,
                     help="also plot the run (needs the plot extra: matplotlib)")
    sim.set_defaults(func=_cmd_simulate)

    from auction.scale.sweep import add_parser as add_sweep_parser

    add_sweep_parser(sub)
    cmp = sub.add_parser(
        "compare", help="compare market designs (presets, mechanisms) on the example flow",
        description="Run market designs (the presets akash, render, ionet, aethir, nosana, "
        "iexec, golem, or registered mechanisms) on the same example order flow and print "
        "one summary row per design.",
    )
    from auction.compare import build_parser as build_compare_parser

    build_compare_parser(cmp)
    cmp.set_defaults(func=_cmd_compare)
    return parser


def _cmd_compare(args: argparse.Namespace) -> int:
    from auction.compare import run_compare

    return run_compare(args)


def _no_command(parser: argparse.ArgumentParser) -> str:
    """The one line printed when no command is given."""
    commands = next((list(a.choices) for a in parser._actions
                     if isinstance(a, argparse._SubParsersAction)), [])
    return (f"usage: {parser.prog} COMMAND [ARGS], COMMAND one of: {', '.join(commands)} "
            f"(see '{parser.prog} --help', or '{parser.prog} COMMAND --help')")


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run the command line with `argv` (default ``sys.argv[1:]``) and return the exit code.

    Input errors are reported on stderr as one line, ``auction: error: ...``, with exit code
    2; they never raise. With no command, one usage line and exit code 2.
    """
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on --help (0) and on bad arguments (2)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if args.command is None:  # one line: what to type, and where the help is
        print(_no_command(parser), file=sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except _InputError as e:
        print(_one_line(f"{parser.prog}: error: {e}"), file=sys.stderr)
        return EXIT_USAGE
    except AuctionError as e:
        print(_one_line(f"{parser.prog}: error: {_describe_auction_error(e)}"), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # the reader went away (say, `auction example-book | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    return code
