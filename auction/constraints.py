"""Constraint expressions over the other side's attributes, compiled once, evaluated on columns.

An offer or a request may carry ``constraints="..."``: a boolean expression over the
attributes and built-in fields of the *other* side (Golem's two-sided matching). This module
holds the language (`parse`), the columnar attributes it reads (`AttributeTable`), the check of
user attributes (`validate_attributes`) and a translator from Golem's LDAP-style filters
(`from_golem`). The language, its semantics and its limits are described in
``docs/constraints.md``; in short::

    expr    := or
    or      := and ("or" and)*
    and     := unary ("and" unary)*
    unary   := "not" unary | primary
    primary := "(" expr ")" | "has" NAME | "true" | "false"
             | NAME OP LITERAL | LITERAL OP NAME | NAME "in" "(" LITERAL ("," LITERAL)* ")"
    OP      := "==" | "!=" | "<" | "<=" | ">" | ">="

An atom is false on a row that lacks the field or holds a value of another kind than the
literal (``!=`` included); ``not`` is plain boolean negation of what is inside it.

Nothing is evaluated with ``eval``: text is tokenized and parsed by recursive descent, bounded
in length (`MAX_LENGTH`) and nesting (`MAX_DEPTH`). A parsed `Expression` is a frozen value,
cached per distinct text, and evaluates with numpy over the rows of an `AttributeTable` in
O(rows x atoms); strings are interned to integer codes in sorted order, so ``==``, ``in``
and the orderings are integer compares, and numbers are exact scaled integers.
"""

from __future__ import annotations

import bisect
import decimal
import functools
import numbers
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any, TypeAlias

import attrs
import numpy as np
import numpy.typing as npt

from auction.errors import ConstraintSyntaxError, InvalidOrderError, InvalidValueError

__all__ = [
    "KEYWORDS",
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_LENGTH",
    "MAX_NAME_LENGTH",
    "And",
    "AttributeTable",
    "Column",
    "Compare",
    "Const",
    "Expression",
    "Has",
    "Literal",
    "Member",
    "Not",
    "Or",
    "from_golem",
    "is_decimal_string",
    "parse",
    "validate_attributes",
]

IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
AttributeValue: TypeAlias = str | int | bool

#: Longest expression text accepted, in characters.
MAX_LENGTH = 4096
#: Deepest nesting of parentheses and ``not`` accepted.
MAX_DEPTH = 32
#: Most digits in a number (literal or attribute value), integer and fraction digits together.
MAX_DIGITS = 60
#: Longest field name accepted.
MAX_NAME_LENGTH = 128
#: Reserved words (lower case; they cannot be field names).
KEYWORDS = frozenset({"and", "or", "not", "in", "has", "true", "false"})

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/\-]*")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_DECIMAL_STRING = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+")
_DIGITS = frozenset("0123456789")
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_OPS = ("==", "!=", "<=", ">=", "<", ">")
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1


def is_decimal_string(text: str) -> bool:
    """True for strings that are numbers in this module: ``-?(0|[1-9][0-9]*)\\.[0-9]+``.

    A decimal point is required, so ``"2.50"`` and ``"-0.5"`` are numbers while ``"535"``,
    ``"007"``, ``"1e3"`` and ``"1.2.3"`` stay strings (ints travel as ints, in JSON too).
    """
    return _DECIMAL_STRING.fullmatch(text) is not None


# -- numbers ----------------------------------------------------------------------------------
def _scaled_from_text(text: str) -> tuple[int, int]:
    """``(mantissa, scale)`` with value ``mantissa / 10**scale``, trailing zeros dropped."""
    neg = text.startswith("-")
    body = text[1:] if neg else text
    whole, _, frac = body.partition(".")
    frac = frac.rstrip("0")
    mantissa = int(whole + frac)
    return (-mantissa if neg else mantissa), len(frac)


def _fraction_to_text(value: Fraction) -> str:
    """Exact decimal text of a fraction whose denominator divides a power of ten."""
    den = value.denominator
    scale = 0
    while den % 10 == 0:
        den //= 10
        scale += 1
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den != 1:  # pragma: no cover - literals and attributes are decimals by construction
        raise InvalidValueError("value", value, "has no finite decimal expansion")
    scale += max(twos, fives)
    if scale == 0:
        return str(value.numerator)
    scaled = value.numerator * 10**scale // value.denominator
    sign = "-" if scaled < 0 else ""
    digits = str(abs(scaled)).rjust(scale + 1, "0")
    return f"{sign}{digits[:-scale]}.{digits[-scale:]}"


def _number_of(value: Any) -> tuple[int, int] | None:
    """``(mantissa, scale)`` of an int, a finite Decimal or a decimal string, else None.

    Raises `InvalidValueError` (its `reason` says why) for a number too long or not finite.
    """
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, numbers.Integral):
        v = int(value)
        if abs(v) >= 10**MAX_DIGITS:  # more than MAX_DIGITS digits (str() may refuse such)
            raise InvalidValueError("value", value, f"has more than {MAX_DIGITS} digits")
        return v, 0
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise InvalidValueError("value", value, "must be a finite decimal")
        sign, digits, exp = value.as_tuple()
        assert isinstance(exp, int)
        if len(digits) + max(exp, 0) > MAX_DIGITS or -exp > MAX_DIGITS:
            raise InvalidValueError("value", value, f"has more than {MAX_DIGITS} digits")
        mantissa = int("".join(map(str, digits)) or "0")
        if exp >= 0:
            mantissa *= 10**exp
            exp = 0
        scale = -exp
        while scale and mantissa % 10 == 0:
            mantissa //= 10
            scale -= 1
        return (-mantissa if sign else mantissa), scale
    if isinstance(value, str) and is_decimal_string(value):
        if len(value) - 2 > MAX_DIGITS:
            raise InvalidValueError("value", value, f"has more than {MAX_DIGITS} digits")
        return _scaled_from_text(value)
    return None


# -- the expression tree ---------------------------------------------------------------------
def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@attrs.frozen(repr=False)
class Literal:
    """A literal: ``kind`` is ``"str"``, ``"num"`` (an exact `Fraction`) or ``"bool"``.

    A quoted decimal (``'2.50'``) is a number that keeps its ``text``: it also matches a
    string (or set member) equal to that text.
    """

    kind: str
    value: str | Fraction | bool
    text: str | None = None

    def __str__(self) -> str:
        if self.kind == "bool":
            return "true" if self.value else "false"
        if self.kind == "num":
            assert isinstance(self.value, Fraction)
            return _fraction_to_text(self.value) if self.text is None else _quote(self.text)
        assert isinstance(self.value, str)
        return _quote(self.value)

    @property
    def string(self) -> str | None:
        """The text a string field must equal to match: the string, or a quoted decimal's
        text; None for bools and unquoted numbers."""
        return self.value if isinstance(self.value, str) else self.text

    def __repr__(self) -> str:
        return f"Literal({self})"

    def sort_key(self) -> tuple[int, str | Fraction | bool, str]:
        """Canonical order inside ``in (...)``: strings, then numbers, then bools."""
        return ({"str": 0, "num": 1, "bool": 2}[self.kind], self.value, self.text or "")


@attrs.frozen
class Const:
    """``true`` or ``false``."""

    value: bool


@attrs.frozen
class Compare:
    """``name op literal``; a literal written on the left is stored flipped (``4 < x``:
    ``x > 4``)."""

    name: str
    op: str
    literal: Literal


def _canonical_literals(literals: Iterable[Literal]) -> tuple[Literal, ...]:
    return tuple(sorted(set(literals), key=Literal.sort_key))


@attrs.frozen
class Member:
    """``name in (literals...)``: true when the value equals one of them (sets: intersect).
    The literals are kept distinct and sorted (strings, numbers, bools)."""

    name: str
    literals: tuple[Literal, ...] = attrs.field(converter=_canonical_literals)


@attrs.frozen
class Has:
    """``has name``: the row holds the field (a set-valued field: a non-empty set)."""

    name: str


@attrs.frozen
class Not:
    """``not arg``."""

    arg: Node


@attrs.frozen
class And:
    """``a and b and ...`` (flattened, at least two args)."""

    args: tuple[Node, ...]


@attrs.frozen
class Or:
    """``a or b or ...`` (flattened, at least two args)."""

    args: tuple[Node, ...]


Node: TypeAlias = Const | Compare | Member | Has | Not | And | Or


def _names(node: Node) -> Iterable[str]:
    if isinstance(node, Compare | Member | Has):
        yield node.name
    elif isinstance(node, Not):
        yield from _names(node.arg)
    elif isinstance(node, And | Or):
        for a in node.args:
            yield from _names(a)


def _render(node: Node, parent: int = 0) -> str:
    if isinstance(node, Or):
        text, prec = " or ".join(_render(a, 1) for a in node.args), 1
    elif isinstance(node, And):
        text, prec = " and ".join(_render(a, 2) for a in node.args), 2
    elif isinstance(node, Not):
        text, prec = "not " + _render(node.arg, 3), 3
    elif isinstance(node, Compare):
        return f"{node.name} {node.op} {node.literal}"
    elif isinstance(node, Member):
        return f"{node.name} in ({', '.join(map(str, node.literals))})"
    elif isinstance(node, Has):
        return f"has {node.name}"
    else:
        return "true" if node.value else "false"
    return f"({text})" if prec < parent else text


def _and(args: list[Node]) -> Node:
    flat: list[Node] = []
    for a in args:
        flat.extend(a.args if isinstance(a, And) else (a,))
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def _or(args: list[Node]) -> Node:
    flat: list[Node] = []
    for a in args:
        flat.extend(a.args if isinstance(a, Or) else (a,))
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def _not(arg: Node) -> Node:
    return arg.arg if isinstance(arg, Not) else Not(arg)


# -- tokenizer and parser --------------------------------------------------------------------
class _Fail(Exception):
    def __init__(self, position: int, expected: str):
        super().__init__(position, expected)
        self.position = position
        self.expected = expected


# token kinds: "name", "kw", "str", "num", "op", "(", ")", ",", "end"
_Token: TypeAlias = tuple[str, Any, int]


def _tokenize(text: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c in "(),":
            out.append((c, c, i))
            i += 1
        elif c in "=!<>":
            two = text[i : i + 2]
            if two in _OPS:
                out.append(("op", two, i))
                i += 2
            elif c in "<>":
                out.append(("op", c, i))
                i += 1
            else:
                raise _Fail(i, "an operator: == != < <= > >=")
        elif c in "'\"":
            j, chars = i + 1, []
            while True:
                if j >= n:
                    raise _Fail(j, f"a closing {c} for the string opened at position {i}")
                d = text[j]
                if d == c:
                    break
                if d == "\\":
                    if j + 1 >= n or text[j + 1] not in "\\'\"":
                        raise _Fail(j + 1, "an escaped \\, ' or \" after a backslash")
                    chars.append(text[j + 1])
                    j += 2
                else:
                    chars.append(d)
                    j += 1
            out.append(("str", "".join(chars), i))
            i = j + 1
        elif c in _DIGITS or (c == "-" and i + 1 < n and text[i + 1] in _DIGITS):
            m = _NUMBER.match(text, i)
            assert m is not None
            j = m.end()
            if j < n and (text[j].isalnum() or text[j] in "._-"):
                raise _Fail(j, "a number: digits with at most one decimal point")
            lit = m.group()
            if sum(ch.isdigit() for ch in lit) > MAX_DIGITS:
                raise _Fail(i, f"a number of at most {MAX_DIGITS} digits")
            mantissa, scale = _scaled_from_text(lit)
            out.append(("num", Fraction(mantissa, 10**scale), i))
            i = j
        elif c in _NAME_START:
            m = _NAME.match(text, i)
            assert m is not None
            word = m.group()
            if len(word) > MAX_NAME_LENGTH:
                raise _Fail(i, f"a name of at most {MAX_NAME_LENGTH} characters")
            out.append(("kw" if word in KEYWORDS else "name", word, i))
            i = m.end()
        else:
            raise _Fail(i, "a name, a literal, an operator, a parenthesis or a comma")
    out.append(("end", None, n))
    return out


class _Parser:
    """Recursive descent over the tokens; depth bounded by `MAX_DEPTH`."""

    def __init__(self, text: str):
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.toks[self.i]

    def take(self) -> _Token:
        t = self.toks[self.i]
        self.i += 1
        return t

    def is_kw(self, word: str) -> bool:
        kind, value, _ = self.toks[self.i]
        return kind == "kw" and value == word

    def enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Fail(pos, f"nesting (parentheses and 'not') at most {MAX_DEPTH} deep")

    def run(self) -> Node:
        node = self.expr()
        kind, _, pos = self.peek()
        if kind != "end":
            raise _Fail(pos, "'and', 'or' or the end of the expression")
        return node

    def expr(self) -> Node:
        args = [self.conj()]
        while self.is_kw("or"):
            self.take()
            args.append(self.conj())
        return _or(args)

    def conj(self) -> Node:
        args = [self.unary()]
        while self.is_kw("and"):
            self.take()
            args.append(self.unary())
        return _and(args)

    def unary(self) -> Node:
        if self.is_kw("not"):
            _, _, pos = self.take()
            self.enter(pos)
            arg = self.unary()
            self.depth -= 1
            return _not(arg)
        return self.primary()

    def literal(self, after: str) -> Literal:
        kind, value, pos = self.take()
        if kind == "str":
            try:
                number = _number_of(value)
            except ValueError:
                raise _Fail(pos, f"a number of at most {MAX_DIGITS} digits") from None
            if number is not None:  # a decimal string is a number, as in attribute values
                return Literal("num", Fraction(number[0], 10 ** number[1]), text=value)
            return Literal("str", value)
        if kind == "num":
            return Literal("num", value)
        if kind == "kw" and value in ("true", "false"):
            return Literal("bool", value == "true")
        raise _Fail(pos, f"a literal (quoted string, number, true or false) after {after}")

    def name(self, after: str) -> str:
        kind, value, pos = self.take()
        if kind != "name":
            what = f"the keyword {value!r}" if kind == "kw" else "a field name"
            raise _Fail(pos, f"a field name after {after} (not {what})")
        return str(value)

    @staticmethod
    def check_order(op: str, lit: Literal, pos: int) -> None:
        if lit.kind == "bool" and op not in ("==", "!="):
            raise _Fail(pos, f"a number or a string to compare with {op} (bools take == or !=)")

    def primary(self) -> Node:
        kind, value, pos = self.peek()
        if kind == "(":
            self.take()
            self.enter(pos)
            node = self.expr()
            k2, _, p2 = self.take()
            if k2 != ")":
                raise _Fail(p2, f"')' closing the '(' at position {pos}")
            self.depth -= 1
            return node
        if kind == "kw" and value == "has":
            self.take()
            return Has(self.name("'has'"))
        if kind == "kw" and value in ("true", "false") and self.toks[self.i + 1][0] != "op":
            self.take()
            return Const(value == "true")
        if kind == "name":
            self.take()
            k2, v2, p2 = self.take()
            if k2 == "op":
                p3 = self.peek()[2]
                lit = self.literal(repr(v2))
                self.check_order(v2, lit, p3)
                return Compare(value, v2, lit)
            if k2 == "kw" and v2 == "in":
                k3, _, p3 = self.take()
                if k3 != "(":
                    raise _Fail(p3, "'(' after 'in'")
                lits = [self.literal("'('")]
                while self.peek()[0] == ",":
                    self.take()
                    lits.append(self.literal("','"))
                k4, _, p4 = self.take()
                if k4 != ")":
                    raise _Fail(p4, "',' or ')' in the list after 'in'")
                return Member(value, tuple(lits))
            raise _Fail(p2, f"an operator (== != < <= > >=) or 'in' after the name {value!r}")
        if kind in ("str", "num") or (kind == "kw" and value in ("true", "false")):
            lit = self.literal("the start of a comparison")
            k2, op, p2 = self.take()
            if k2 != "op":
                raise _Fail(p2, "an operator (== != < <= > >=) after a literal")
            self.check_order(op, lit, pos)
            name = self.name(repr(op))
            return Compare(name, _FLIP[op], lit)
        if kind == "end":
            raise _Fail(pos, "an expression")
        raise _Fail(pos, "a field name, a literal, 'not', 'has', 'true', 'false' or '('")


@functools.lru_cache(maxsize=1 << 14)
def _parse_cached(text: str) -> Expression:
    return Expression(_Parser(text).run(), source=text)


def parse(text: str, *, order_id: str | None = None, field: str = "constraints") -> Expression:
    """Parse constraint text into an `Expression` (cached per distinct text).

    Raises:
        ConstraintSyntaxError: bad syntax, text longer than `MAX_LENGTH` or nested deeper than
            `MAX_DEPTH`; it names `order_id`, `field`, the position and what was expected.
    """
    if not isinstance(text, str):
        raise InvalidOrderError(field, text, "must be a str", order_id=order_id)
    if len(text) > MAX_LENGTH:
        raise ConstraintSyntaxError(
            text, MAX_LENGTH, f"an expression of at most {MAX_LENGTH} characters",
            order_id=order_id, field=field,
        )
    try:
        return _parse_cached(text)
    except _Fail as e:
        raise ConstraintSyntaxError(
            text, e.position, e.expected, order_id=order_id, field=field
        ) from None


# -- columns -------------------------------------------------------------------------------------
def _readonly(a: np.ndarray) -> Any:
    a.flags.writeable = False
    return a


def _as_rows(rows: Any, k: int) -> IntArray | None:
    """Sorted distinct row indices of a sparse part, or None (dense: every row)."""
    if rows is None:
        return None
    r = np.asarray(rows, dtype=np.int64)
    if r.ndim != 1 or len(r) != k:
        raise InvalidValueError("rows", f"shape {r.shape}", f"must be 1-D of length {k}")
    if k and np.any(np.diff(r) <= 0):
        raise InvalidValueError("rows", "not increasing", "must be sorted and distinct")
    r.flags.writeable = False
    return r


@attrs.frozen(eq=False)
class _Part:
    """Values of one kind of one field; `rows` None means every row holds one."""

    rows: IntArray | None
    # row -> position (-1: none), built on first use for parts holding >= 1/8 of the rows, so
    # its memory stays within 8 entries per value held
    _posmap: npt.NDArray[np.int32] | None = attrs.field(init=False, default=None)

    def locate(
        self, rows: IntArray | None, n_rows: int
    ) -> tuple[IntArray | None, IntArray | None]:
        """For the evaluated rows (None: all), the output positions holding a value and the
        part positions they read; (None, None): every output position, position = row."""
        if rows is None:
            return self.rows, None
        if self.rows is None:
            return None, rows
        k = len(self.rows)
        if k == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        if 8 * k >= n_rows and n_rows < 2**31:
            posmap = self._posmap
            if posmap is None:
                posmap = np.full(n_rows, -1, dtype=np.int32)
                posmap[self.rows] = np.arange(k, dtype=np.int32)
                object.__setattr__(self, "_posmap", posmap)
            p = posmap[rows]
            idx = np.flatnonzero(p >= 0)
            return idx, p[idx].astype(np.int64)
        pos = np.searchsorted(self.rows, rows)
        np.minimum(pos, k - 1, out=pos)
        idx = np.flatnonzero(self.rows[pos] == rows)
        return idx, pos[idx]


@attrs.frozen(eq=False)
class _StrPart(_Part):
    codes: npt.NDArray[np.int32]  # index into vocab, per held row
    vocab: tuple[str, ...]  # sorted, distinct


@attrs.frozen(eq=False)
class _NumPart(_Part):
    values: npt.NDArray[Any]  # value * 10**scale: int64, or object (Python ints) past int64
    scale: int


@attrs.frozen(eq=False)
class _BoolPart(_Part):
    values: BoolArray


@attrs.frozen(eq=False)
class _SetPart(_Part):
    indptr: IntArray  # members of held row j: codes[indptr[j]:indptr[j+1]]
    codes: npt.NDArray[np.int32]
    vocab: tuple[str, ...]  # sorted, distinct
    owner: IntArray = attrs.field(init=False)  # held row of each member

    def __attrs_post_init__(self) -> None:
        k = len(self.indptr) - 1
        owner = np.repeat(np.arange(k, dtype=np.int64), np.diff(self.indptr))
        object.__setattr__(self, "owner", _readonly(owner))


def _intern(values: Sequence[str]) -> tuple[npt.NDArray[np.int32], tuple[str, ...]]:
    """Codes into the sorted distinct vocabulary (Python's str order: code points)."""
    if len(values) == 1:
        return np.zeros(1, dtype=np.int32), (values[0],)
    vocab = sorted(set(values))
    index = {s: i for i, s in enumerate(vocab)}
    codes = np.fromiter((index[s] for s in values), dtype=np.int32, count=len(values))
    return codes, tuple(vocab)


def _scaled_array(pairs: Sequence[tuple[int, int]]) -> tuple[npt.NDArray[Any], int]:
    scale = max((s for _, s in pairs), default=0)
    vals = [m * 10 ** (scale - s) for m, s in pairs]
    if all(_I64_MIN <= v <= _I64_MAX for v in vals):
        return np.array(vals, dtype=np.int64), scale
    arr = np.empty(len(vals), dtype=object)
    arr[:] = vals
    return arr, scale


def _present_rows(present: Any, n: int) -> IntArray | None:
    if present is None:
        return None
    mask = np.asarray(present, dtype=bool)
    if mask.shape != (n,):
        raise InvalidValueError("present", f"shape {mask.shape}", f"must have shape ({n},)")
    return None if mask.all() else np.flatnonzero(mask).astype(np.int64)


def _check_str(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidValueError(field, value, f"must be a str, not {type(value).__name__}")
    return str(value)


@attrs.frozen(eq=False)
class Column:
    """One field of one side, as up to four typed parts (strings, numbers, bools, sets).

    A row may hold the field in at most one part; a row in no part lacks the field. Parts
    are sparse (sorted row indices) or dense, so a field held by few rows costs memory in
    proportion to those rows, never to the table. Build columns with the ``from_*``
    constructors (or `AttributeTable.from_records`).
    """

    n_rows: int
    strings: _StrPart | None = None
    numbers: _NumPart | None = None
    bools: _BoolPart | None = None
    sets: _SetPart | None = None

    @property
    def parts(self) -> tuple[_Part, ...]:
        """The parts present."""
        return tuple(p for p in (self.strings, self.numbers, self.bools, self.sets) if p)

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def from_strings(cls, values: Sequence[str | None]) -> Column:
        """Strings per row; None marks a row without the field."""
        held = [i for i, v in enumerate(values) if v is not None]
        strs = [_check_str(values[i], "values") for i in held]
        codes, vocab = _intern(strs)
        rows = None if len(held) == len(values) else np.array(held, dtype=np.int64)
        return cls(len(values), strings=_StrPart(_as_rows(rows, len(held)), codes, vocab))

    @classmethod
    def from_codes(cls, codes: Any, vocab: Sequence[str]) -> Column:
        """Strings given as codes into `vocab` (any order, distinct); a negative code marks a
        row without the field. Cost O(rows + vocab log vocab)."""
        c = np.asarray(codes)
        if c.ndim != 1 or not np.issubdtype(c.dtype, np.integer):
            raise InvalidValueError("codes", f"{c.dtype} {c.shape}", "must be a 1-D int array")
        words = [_check_str(v, "vocab") for v in vocab]
        if len(set(words)) != len(words):
            raise InvalidValueError("vocab", "duplicates", "must hold distinct strings")
        if len(c) and c.max(initial=-1) >= len(words):
            raise InvalidValueError("codes", int(c.max()), f"must be < len(vocab)={len(words)}")
        order = sorted(range(len(words)), key=words.__getitem__)
        remap = np.empty(len(words), dtype=np.int32)
        remap[np.array(order, dtype=np.int64)] = np.arange(len(words), dtype=np.int32)
        held = c >= 0
        rows = None if held.all() else np.flatnonzero(held).astype(np.int64)
        new = remap[c[held].astype(np.int64)] if len(words) else np.zeros(0, dtype=np.int32)
        part = _StrPart(_as_rows(rows, len(new)), new.astype(np.int32),
                        tuple(words[i] for i in order))
        return cls(len(c), strings=part)

    @classmethod
    def from_ints(cls, values: Any, present: Any = None) -> Column:
        """Exact integers (an int array, or Python ints); `present` masks rows that hold one."""
        arr = np.asarray(values)
        if arr.ndim != 1:
            raise InvalidValueError("values", f"shape {arr.shape}", "must be 1-D")
        if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == object):
            raise InvalidValueError("values", str(arr.dtype), "must be integers")
        n = len(arr)
        rows = _present_rows(present, n)
        sel = arr if rows is None else arr[rows]
        fits = np.issubdtype(sel.dtype, np.signedinteger) or (
            np.issubdtype(sel.dtype, np.unsignedinteger) and sel.max(initial=0) <= _I64_MAX
        )
        if not fits:  # Python ints or large unsigned: exact, possibly past int64
            held = np.ones(n, dtype=bool) if rows is None else np.isin(np.arange(n), rows)
            return cls.from_numbers(
                [int(v) if h else None for v, h in zip(arr.tolist(), held.tolist(), strict=True)]
            )
        part = _NumPart(_as_rows(rows, len(sel)), _readonly(sel.astype(np.int64)), 0)
        return cls(n, numbers=part)

    @classmethod
    def from_numbers(cls, values: Sequence[Any]) -> Column:
        """Exact numbers per row: ints, `decimal.Decimal` or decimal strings; None: missing."""
        held, pairs = [], []
        for i, v in enumerate(values):
            if v is None:
                continue
            try:
                num = _number_of(v)
            except InvalidValueError as e:
                raise InvalidValueError(f"values[{i}]", v, e.reason) from None
            if num is None:
                raise InvalidValueError(f"values[{i}]", v, "must be an int, a Decimal or a "
                                        "decimal string")
            held.append(i)
            pairs.append(num)
        vals, scale = _scaled_array(pairs)
        rows = None if len(held) == len(values) else np.array(held, dtype=np.int64)
        return cls(len(values), numbers=_NumPart(_as_rows(rows, len(held)), vals, scale))

    @classmethod
    def from_bools(cls, values: Any, present: Any = None) -> Column:
        """Booleans per row; `present` masks rows that hold one."""
        arr = np.asarray(values)
        if arr.ndim != 1 or arr.dtype != bool:
            raise InvalidValueError("values", f"{arr.dtype} {arr.shape}", "must be 1-D bool")
        rows = _present_rows(present, len(arr))
        sel = arr if rows is None else arr[rows]
        return cls(len(arr), bools=_BoolPart(_as_rows(rows, len(sel)), _readonly(sel.copy())))

    @classmethod
    def from_sets(cls, values: Sequence[Iterable[str] | None]) -> Column:
        """A set of strings per row (the built-in ``tags``); None: a row without the field."""
        held = [i for i, v in enumerate(values) if v is not None]
        members: list[list[str]] = []
        for i in held:
            v = values[i]
            if isinstance(v, str) or not isinstance(v, Iterable):
                raise InvalidValueError(f"values[{i}]", v, "must be a set of strings")
            members.append(sorted({_check_str(s, f"values[{i}]") for s in v}))
        flat = [s for m in members for s in m]
        codes, vocab = _intern(flat)
        indptr = np.zeros(len(held) + 1, dtype=np.int64)
        np.cumsum([len(m) for m in members], out=indptr[1:])
        rows = None if len(held) == len(values) else np.array(held, dtype=np.int64)
        part = _SetPart(_as_rows(rows, len(held)), _readonly(indptr), codes, vocab)
        return cls(len(values), sets=part)

    @classmethod
    def from_set_codes(cls, indptr: Any, codes: Any, vocab: Sequence[str]) -> Column:
        """Sets in CSR form: row i holds ``vocab[c]`` for c in ``codes[indptr[i]:indptr[i+1]]``
        (vocab in any order, distinct; duplicates within a row are harmless)."""
        ip = np.asarray(indptr, dtype=np.int64)
        c = np.asarray(codes, dtype=np.int64)
        words = [_check_str(v, "vocab") for v in vocab]
        if ip.ndim != 1 or len(ip) < 1 or ip[0] != 0 or np.any(np.diff(ip) < 0) \
                or ip[-1] != len(c):
            raise InvalidValueError("indptr", f"shape {ip.shape}", "must be a CSR index "
                                    "starting at 0, non-decreasing, ending at len(codes)")
        if len(set(words)) != len(words):
            raise InvalidValueError("vocab", "duplicates", "must hold distinct strings")
        if len(c) and (c.min() < 0 or c.max() >= len(words)):
            raise InvalidValueError("codes", "out of range", f"must be in [0, {len(words)})")
        order = sorted(range(len(words)), key=words.__getitem__)
        remap = np.empty(len(words), dtype=np.int32)
        remap[np.array(order, dtype=np.int64)] = np.arange(len(words), dtype=np.int32)
        part = _SetPart(None, _readonly(ip.copy()), remap[c] if len(words) else
                        np.zeros(0, dtype=np.int32), tuple(words[i] for i in order))
        return cls(len(ip) - 1, sets=part)

    @classmethod
    def coerce(cls, values: Any, n_rows: int, name: str = "column") -> Column:
        """A `Column` from a Column or from a 1-D array or sequence.

        Arrays: bool dtype -> bools, integer dtype -> ints, str dtype -> strings as given.
        Sequences (lists, object arrays): sets -> set members; other values classified as
        attribute values are (str, int, bool, Decimal; a decimal string is a number); None
        marks a row without the field.
        """
        if isinstance(values, Column):
            col = values
        else:
            arr = values if isinstance(values, np.ndarray) else None
            if arr is not None and arr.dtype == bool:
                col = cls.from_bools(arr)
            elif arr is not None and np.issubdtype(arr.dtype, np.integer):
                col = cls.from_ints(arr)
            elif arr is not None and arr.dtype.kind in "US":
                col = cls.from_strings([str(v) for v in arr.tolist()])
            else:
                seq = list(values)
                is_set = [isinstance(v, set | frozenset) for v in seq]
                scalars = cls.from_table_records([None if s else v for v, s in
                                                  zip(seq, is_set, strict=True)])
                col = scalars
                if any(is_set):
                    sets = cls.from_sets([v if s else None for v, s in
                                          zip(seq, is_set, strict=True)])
                    col = attrs.evolve(scalars, sets=sets.sets)
        if col.n_rows != n_rows:
            raise InvalidValueError(name, f"{col.n_rows} rows", f"must have {n_rows} rows")
        return col

    @classmethod
    def from_table_records(cls, values: Sequence[Any]) -> Column:
        """Mixed scalar values per row (str, int, bool, Decimal, decimal string; None:
        missing), each in the part of its kind, as `AttributeTable.from_records` does."""
        table = AttributeTable.from_records([{} if v is None else {"v": v} for v in values])
        return table.columns.get("v", Column(len(values)))


def _classify(value: Any) -> tuple[str, Any]:
    """``("str", s)``, ``("num", (mantissa, scale))`` or ``("bool", b)``; raises
    `InvalidValueError` (its `reason` says why)."""
    if isinstance(value, bool | np.bool_):
        return "bool", bool(value)
    if isinstance(value, str):
        if "\0" in value:
            raise InvalidValueError("value", value, "must not contain NUL characters")
        if "." in value:
            num = _number_of(value)
            if num is not None:
                return "num", num
        return "str", str(value)
    num = _number_of(value)
    if num is None:
        kind = type(value).__name__
        raise InvalidValueError(
            "value", value, f"must be a str, an int, a bool or a decimal (a Decimal or a "
            f"string like '2.50'), not {kind}"
        )
    return "num", num


def _check_name(name: Any) -> str | None:
    """The reason `name` is not a valid field name, or None."""
    if not isinstance(name, str):
        return f"must be a str, not {type(name).__name__}"
    if len(name) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters"
    if not name.isascii() or _NAME.fullmatch(name) is None:
        return "must be a name: an ASCII letter or _, then letters, digits, _ . - : or /"
    if name in KEYWORDS:
        return f"is a keyword of the constraint language ({', '.join(sorted(KEYWORDS))})"
    return None


@attrs.frozen(eq=False)
class AttributeTable:
    """The attributes of one side of the market, column by column, for `Expression.evaluate`.

    Attributes:
        n_rows: number of rows (orders of that side).
        columns: field name -> `Column`; a field absent here is missing in every row.
    """

    n_rows: int
    columns: Mapping[str, Column] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        n: Any = self.n_rows
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise InvalidValueError("n_rows", n, "must be an int >= 0")
        object.__setattr__(self, "n_rows", int(n))
        cols = dict(self.columns)
        for name, col in cols.items():
            reason = _check_name(name)
            if reason is not None:
                raise InvalidValueError("columns", name, reason)
            if not isinstance(col, Column) or col.n_rows != self.n_rows:
                got = col.n_rows if isinstance(col, Column) else type(col).__name__
                raise InvalidValueError(f"columns[{name}]", got,
                                        f"must be a Column of {self.n_rows} rows")
            held: list[IntArray | None] = []  # O(values held) per column, not O(rows)
            for part in col.parts:
                k = _part_len(part)
                if part.rows is None:
                    if k != self.n_rows:
                        raise InvalidValueError(f"columns[{name}]", k,
                                                f"dense part must have {self.n_rows} rows")
                elif len(part.rows) and (part.rows[0] < 0 or part.rows[-1] >= self.n_rows):
                    raise InvalidValueError(f"columns[{name}]", "rows",
                                            f"must be in [0, {self.n_rows})")
                if k:
                    held.append(part.rows)
            sparse = [r for r in held if r is not None]
            if len(held) > 1 and (
                len(sparse) < len(held)
                or len(np.unique(np.concatenate(sparse))) < sum(len(r) for r in sparse)
            ):
                raise InvalidValueError(f"columns[{name}]", "overlapping parts",
                                        "a row holds at most one value per field")
        object.__setattr__(self, "columns", cols)

    @classmethod
    def from_records(
        cls,
        records: Sequence[Mapping[str, Any] | None] | Mapping[int, Mapping[str, Any]],
        n: int | None = None,
    ) -> AttributeTable:
        """Build columns from per-row attribute mappings.

        `records` is a sequence of mappings (row i = records[i], None or ``{}`` for a row
        without attributes), or a mapping row -> attributes for sparse input (then `n` is
        required). Values are classified as `validate_attributes` does: str (a decimal string
        such as ``"2.50"`` is a number), int or `decimal.Decimal` (number), bool. Cost
        O(rows + values), memory O(rows held per field); a vocabulary of any size is fine.
        """
        if isinstance(records, Mapping):
            if n is None:
                raise InvalidValueError("n", None, "is required when records is a mapping")
            def row_of(key: Any) -> int:
                if isinstance(key, bool) or not isinstance(key, numbers.Integral) \
                        or not 0 <= key < n:  # type: ignore[operator]
                    raise InvalidValueError("records", key, f"row must be an int in [0, {n})")
                return int(key)

            items: Iterable[tuple[int, Mapping[str, Any] | None]] = sorted(
                (row_of(k), v) for k, v in records.items()
            )
        else:
            if n is not None and n != len(records):
                raise InvalidValueError("n", n, f"must equal len(records)={len(records)}")
            n = len(records)
            items = enumerate(records)
        per: dict[str, dict[str, tuple[list[int], list[Any]]]] = {}
        for row, rec in items:  # rows increase: every part's rows come out sorted
            if not rec:
                continue
            if not isinstance(rec, Mapping):
                raise InvalidValueError(f"records[{row}]", rec, "must be a mapping")
            for name, value in rec.items():
                col = per.get(name)
                if col is None:
                    reason = _check_name(name)
                    if reason is not None:
                        raise InvalidValueError(f"records[{row}]", name, reason)
                    col = per[name] = {}
                try:
                    kind, v = _classify(value)
                except InvalidValueError as e:
                    raise InvalidValueError(f"attributes[{name}]", value,
                                            f"{e.reason} (row {row})") from None
                part = col.get(kind)
                if part is None:
                    part = col[kind] = ([], [])
                part[0].append(row)
                part[1].append(v)
        columns: dict[str, Column] = {}
        for name, parts in per.items():
            kw: dict[str, Any] = {}
            for kind, (rows_list, vals) in parts.items():
                rows = None if len(rows_list) == n else np.array(rows_list, dtype=np.int64)
                if kind == "str":
                    codes, vocab = _intern(vals)
                    kw["strings"] = _StrPart(rows, codes, vocab)
                elif kind == "num":
                    arr, scale = _scaled_array(vals)
                    kw["numbers"] = _NumPart(rows, arr, scale)
                else:
                    kw["bools"] = _BoolPart(rows, np.array(vals, dtype=bool))
            columns[name] = Column(n, **kw)
        out = cls.__new__(cls)  # names and parts are valid by construction: skip the checks
        object.__setattr__(out, "n_rows", n)
        object.__setattr__(out, "columns", columns)
        return out

    def with_columns(
        self, columns: Mapping[str, Any] | None = None, /, **named: Any
    ) -> AttributeTable:
        """A new table with more fields (the market's built-ins: gpu_model, region, tags...).

        Each value is a `Column` or what `Column.coerce` takes (an int, bool or str array, a
        sequence of sets...). A name already in the table raises `InvalidValueError`.
        """
        add = {**(columns or {}), **named}
        out = dict(self.columns)
        for name, values in add.items():
            if name in out:
                raise InvalidValueError("columns", name, "is already a field of the table")
            out[name] = Column.coerce(values, self.n_rows, f"columns[{name}]")
        return AttributeTable(self.n_rows, out)


def _part_len(part: _Part) -> int:
    if isinstance(part, _StrPart):
        return len(part.codes)
    if isinstance(part, _NumPart | _BoolPart):
        return len(part.values)
    assert isinstance(part, _SetPart)
    return len(part.indptr) - 1


# -- evaluation --------------------------------------------------------------------------------
_CodePred: TypeAlias = Callable[[npt.NDArray[np.int32]], BoolArray]


def _str_pred(vocab: tuple[str, ...], op: str, s: str) -> _CodePred | None:
    """Predicate on codes for ``value op s``; None: false for every code."""
    lo = bisect.bisect_left(vocab, s)
    hi = bisect.bisect_right(vocab, s)  # hi == lo + 1 when s is in the vocabulary
    if op == "==":
        return (lambda c: c == lo) if hi > lo else None
    if op == "!=":
        return (lambda c: c != lo) if hi > lo else (lambda c: np.ones(len(c), dtype=bool))
    if op == "<":
        return lambda c: c < lo
    if op == "<=":
        return lambda c: c < hi
    if op == ">":
        return lambda c: c >= hi
    return lambda c: c >= lo  # ">="


def _str_in_pred(vocab: tuple[str, ...], words: list[str]) -> _CodePred | None:
    found = []
    for s in words:
        k = bisect.bisect_left(vocab, s)
        if k < len(vocab) and vocab[k] == s:
            found.append(k)
    if not found:
        return None
    if len(found) == 1:
        k0 = found[0]
        return lambda c: c == k0
    ks = np.array(found, dtype=np.int32)
    if len(vocab) <= 4096:  # a lookup table: one gather, no sort
        table = np.zeros(len(vocab), dtype=bool)
        table[ks] = True
        return lambda c: table[c]
    return lambda c: np.isin(c, ks)


def _num_pred(part: _NumPart, op: str, lit: Fraction) -> Callable[[Any], BoolArray] | bool:
    """Predicate on scaled values for ``value op lit``, or a constant (True/False for every
    held row), exact: the threshold is rounded toward the right side for integer values."""
    t = lit * 10**part.scale
    floor_t = t.numerator // t.denominator
    ceil_t = -((-t.numerator) // t.denominator)
    exact = t.denominator == 1
    obj = part.values.dtype == object
    if op in ("==", "!="):
        if not exact or (not obj and not _I64_MIN <= floor_t <= _I64_MAX):
            return op == "!="
        v = floor_t
        return (lambda a: a == v) if op == "==" else (lambda a: a != v)
    if op == "<":  # a < t  <=>  a < ceil(t)
        c = ceil_t
        if not obj and c > _I64_MAX:
            return True
        if not obj and c <= _I64_MIN:
            return False
        return lambda a: a < c
    if op == "<=":  # a <= floor(t)
        f = floor_t
        if not obj and f >= _I64_MAX:
            return True
        if not obj and f < _I64_MIN:
            return False
        return lambda a: a <= f
    if op == ">":  # a > floor(t)
        f = floor_t
        if not obj and f >= _I64_MAX:
            return False
        if not obj and f < _I64_MIN:
            return True
        return lambda a: a > f
    c = ceil_t  # ">=": a >= ceil(t)
    if not obj and c > _I64_MAX:
        return False
    if not obj and c <= _I64_MIN:
        return True
    return lambda a: a >= c


def _apply(
    out: BoolArray, idx: IntArray | None, vals: BoolArray | bool, *, union: bool = True
) -> None:
    """out[idx] |= vals (idx None: every position)."""
    if idx is None:
        if isinstance(vals, bool):
            if vals:
                out[:] = True
        else:
            out |= vals
    elif isinstance(vals, bool):
        if vals:
            out[idx] = True
    else:
        out[idx[vals]] = True


def _values(part: _Part, arr: npt.NDArray[Any], rows: IntArray | None, n_rows: int) -> tuple[
    IntArray | None, npt.NDArray[Any]
]:
    idx, pos = part.locate(rows, n_rows)
    return idx, (arr if pos is None else arr[pos])


def _set_any(
    part: _SetPart, rows: IntArray | None, pred: _CodePred | None, n_rows: int
) -> tuple[IntArray | None, BoolArray, IntArray]:
    """For each held evaluated row: does any member satisfy `pred`; also member counts."""
    idx, pos = part.locate(rows, n_rows)
    if pos is None:
        k = len(part.indptr) - 1
        hit = np.zeros(k, dtype=bool)
        if pred is not None and len(part.codes):
            hit[part.owner[pred(part.codes)]] = True
        return idx, hit, np.diff(part.indptr)
    starts = part.indptr[pos]
    lens = part.indptr[pos + 1] - starts
    total = int(lens.sum())
    hit = np.zeros(len(pos), dtype=bool)
    if pred is not None and total:
        local = np.repeat(np.arange(len(pos), dtype=np.int64), lens)
        offsets = np.cumsum(lens) - lens
        entry = starts[local] + (np.arange(total, dtype=np.int64) - offsets[local])
        hit[local[pred(part.codes[entry])]] = True
    return idx, hit, lens


def _eval_text(col: Column, op: str, text: str, rows: IntArray | None, out: BoolArray
               ) -> None:
    """String and set parts against a text."""
    if col.strings is not None:
        pred = _str_pred(col.strings.vocab, op, text)
        if pred is not None:
            idx, codes = _values(col.strings, col.strings.codes, rows, col.n_rows)
            _apply(out, idx, pred(codes))
    if col.sets is not None and op in ("==", "!="):  # orderings on a set are false
        pred = _str_pred(col.sets.vocab, "==", text)
        idx, hit, _ = _set_any(col.sets, rows, pred, col.n_rows)
        _apply(out, idx, ~hit if op == "!=" else hit)


def _eval_scalar(col: Column, op: str, lit: Literal, rows: IntArray | None, out: BoolArray
                 ) -> None:
    """Number and bool parts against a number or bool literal."""
    if lit.kind == "num":
        if col.numbers is not None:
            assert isinstance(lit.value, Fraction)
            npred = _num_pred(col.numbers, op, lit.value)
            idx, vals = _values(col.numbers, col.numbers.values, rows, col.n_rows)
            _apply(out, idx, npred if isinstance(npred, bool) else
                   np.asarray(npred(vals), dtype=bool))
    elif lit.kind == "bool" and col.bools is not None:
        b = bool(lit.value)
        idx, vals = _values(col.bools, col.bools.values, rows, col.n_rows)
        _apply(out, idx, (vals == b) if op == "==" else (vals != b))


def _eval_compare(col: Column, op: str, lit: Literal, rows: IntArray | None, out: BoolArray
                  ) -> None:
    text = lit.string
    if text is not None:
        _eval_text(col, op, text, rows, out)
    _eval_scalar(col, op, lit, rows, out)


def _eval_member(col: Column, lits: tuple[Literal, ...], rows: IntArray | None, out: BoolArray
                 ) -> None:
    words = [w for w in (lit.string for lit in lits) if w is not None]
    if words:
        if col.strings is not None:
            pred = _str_in_pred(col.strings.vocab, words)
            if pred is not None:
                idx, codes = _values(col.strings, col.strings.codes, rows, col.n_rows)
                _apply(out, idx, pred(codes))
        if col.sets is not None:
            pred = _str_in_pred(col.sets.vocab, words)
            if pred is not None:
                idx, hit, _ = _set_any(col.sets, rows, pred, col.n_rows)
                _apply(out, idx, hit)
    for lit in lits:
        if lit.kind != "str":
            _eval_scalar(col, "==", lit, rows, out)


def _eval_has(col: Column, rows: IntArray | None, out: BoolArray) -> None:
    for part in (col.strings, col.numbers, col.bools):
        if part is not None:
            idx, _ = part.locate(rows, col.n_rows)
            _apply(out, idx, True)
    if col.sets is not None:
        idx, _, lens = _set_any(col.sets, rows, None, col.n_rows)
        _apply(out, idx, lens > 0)


def _eval(node: Node, table: AttributeTable, rows: IntArray | None, m: int) -> BoolArray:
    if isinstance(node, And | Or):
        # and: later operands only matter where `out` is still true (or: still false); once
        # those rows are few, evaluate the rest on them alone
        conj = isinstance(node, And)
        out = _eval(node.args[0], table, rows, m)
        for i in range(1, len(node.args)):
            open_ = out if conj else ~out
            k = int(np.count_nonzero(open_))
            if k == 0:
                break
            if 4 * k <= m:
                idx = np.flatnonzero(open_)
                sub = idx if rows is None else rows[idx]
                rest = node.args[i:]
                tail = rest[0] if len(rest) == 1 else (And(rest) if conj else Or(rest))
                out[idx] = _eval(tail, table, sub, k)
                break
            if conj:
                out &= _eval(node.args[i], table, rows, m)
            else:
                out |= _eval(node.args[i], table, rows, m)
        return out
    if isinstance(node, Not):
        out = _eval(node.arg, table, rows, m)
        np.logical_not(out, out=out)
        return out
    if isinstance(node, Const):
        return np.full(m, node.value, dtype=bool)
    out = np.zeros(m, dtype=bool)
    col = table.columns.get(node.name)
    if col is None:
        return out
    if isinstance(node, Compare):
        _eval_compare(col, node.op, node.literal, rows, out)
    elif isinstance(node, Member):
        _eval_member(col, node.literals, rows, out)
    else:
        _eval_has(col, rows, out)
    return out


@attrs.frozen(repr=False, cache_hash=True)
class Expression:
    """A parsed constraint: a frozen, hashable, picklable value (make one with `parse`).

    Two expressions are equal when their canonical trees are (``str(e)`` is the canonical
    text; `source` is the text as written and takes no part in equality).

    Attributes:
        root: the expression tree (`Const`, `Compare`, `Member`, `Has`, `Not`, `And`, `Or`).
        source: the text it was parsed from.
    """

    root: Node
    source: str = attrs.field(default="", eq=False)

    @property
    def names(self) -> frozenset[str]:
        """The field names the expression reads."""
        return frozenset(_names(self.root))

    @property
    def conjuncts(self) -> tuple[Node, ...]:
        """The top-level ``and`` operands (the root alone if it is not an ``and``): each must
        hold on a row for the expression to hold, so an index may start from the most
        selective one (a `Compare` with ``==`` or a `Member` on an indexed field)."""
        return self.root.args if isinstance(self.root, And) else (self.root,)

    def __str__(self) -> str:
        return _render(self.root)

    def __repr__(self) -> str:
        return f"Expression({str(self)!r})"

    def evaluate(self, table: AttributeTable, rows: Any = None) -> BoolArray:
        """Truth value on each row of `table`, or on the given row indices (int array; a row
        may repeat: the market passes the offer row of each candidate pair).

        Vectorised over columns: O(min(len(rows), n_rows) x atoms) plus one gather, never a
        Python loop per row. Raises `InvalidValueError` for row indices out of range.
        """
        n = table.n_rows
        if rows is None:
            return _eval(self.root, table, None, n)
        r = np.asarray(rows)
        if r.ndim != 1 or not (np.issubdtype(r.dtype, np.integer) or len(r) == 0):
            raise InvalidValueError("rows", f"{r.dtype} {r.shape}", "must be a 1-D int array")
        r = r.astype(np.int64, copy=False)
        if len(r) and (r.min() < 0 or r.max() >= n):
            bad = int(r.min()) if r.min() < 0 else int(r.max())
            raise InvalidValueError("rows", bad, f"row indices must be in [0, {n})")
        if len(r) >= n:  # evaluate each table row once, then gather
            full: BoolArray = _eval(self.root, table, None, n)
            gathered: BoolArray = full[r]
            return gathered
        return _eval(self.root, table, r, len(r))


# -- attributes of orders -------------------------------------------------------------------------
def validate_attributes(
    mapping: Any,
    *,
    order_id: str | None = None,
    reserved: Iterable[str] = (),
    field: str = "attributes",
) -> dict[str, AttributeValue]:
    """Check an order's attributes and return them normalized, sorted by name.

    Names: ASCII identifiers (a letter or ``_``, then letters, digits, ``_ . - : /``), at
    most `MAX_NAME_LENGTH` characters, not a keyword, not in `reserved` (the built-in fields).
    Values: str (no NUL; a decimal string such as ``"2.50"`` is a number), int (bool is not an
    int here: it is its own kind), bool, or `decimal.Decimal` (an integral one becomes an int,
    another its plain decimal string, e.g. ``Decimal("2.50")`` -> ``"2.50"``). Floats are
    refused: they are not exact.

    Raises:
        InvalidOrderError: naming `order_id`, the field (``attributes`` for a bad name,
            ``attributes[name]`` for a bad value) and the value.
    """
    if not isinstance(mapping, Mapping):
        raise InvalidOrderError(field, mapping, "must be a mapping of name -> value",
                                order_id=order_id)
    banned = frozenset(reserved)
    out: dict[str, AttributeValue] = {}
    for name in sorted(mapping, key=str):
        value = mapping[name]
        reason = _check_name(name)
        if reason is None and name in banned:
            reason = "is a built-in field; choose another name"
        if reason is not None:
            raise InvalidOrderError(field, name, reason, order_id=order_id)
        try:
            kind, v = _classify(value)
        except InvalidValueError as e:
            raise InvalidOrderError(f"{field}[{name}]", value, e.reason,
                                    order_id=order_id) from None
        key = str(name)
        if kind == "bool":
            out[key] = bool(v)
        elif isinstance(value, str):
            out[key] = str(value)  # a plain or a decimal string, as given
        elif v[1] == 0:
            out[key] = v[0]  # an int, or an integral Decimal
        else:
            out[key] = format(value, "f")  # a Decimal: its plain decimal string
    return out


# -- Golem filters -------------------------------------------------------------------------------
def _golem_literals(value: str) -> list[Literal]:
    """What Golem's typed comparison may read `value` as: a number or a bool when it parses as
    one (for a numeric or bool property), and the string itself (for a string property)."""
    if is_decimal_string(value):  # a quoted decimal: the number, or the string itself
        if len(value) - 2 > MAX_DIGITS:
            return [Literal("str", value)]
        mantissa, scale = _scaled_from_text(value)
        return [Literal("num", Fraction(mantissa, 10**scale), text=value)]
    out: list[Literal] = []
    if re.fullmatch(r"-?[0-9]+", value):
        if len(value.lstrip("-")) <= MAX_DIGITS:
            out.append(Literal("num", Fraction(int(value))))
    elif value in ("true", "false"):
        out.append(Literal("bool", value == "true"))
    out.append(Literal("str", value))
    return out


class _GolemParser:
    """Golem's filter grammar (yagna core/market/resolver/src/resolver/ldap_parser.rs)."""

    def __init__(self, text: str):
        self.text = text
        self.i = 0
        self.depth = 0

    def ws(self) -> None:
        while self.i < len(self.text) and self.text[self.i] in " \t\r\n":
            self.i += 1

    def expect(self, ch: str, what: str) -> None:
        self.ws()
        if self.i >= len(self.text) or self.text[self.i] != ch:
            raise _Fail(self.i, what)
        self.i += 1

    def run(self) -> tuple[str, Any]:
        node = self.filter()
        self.ws()
        if self.i != len(self.text):
            raise _Fail(self.i, "the end of the filter")
        return node

    def filter(self) -> tuple[str, Any]:
        self.ws()
        start = self.i
        self.expect("(", "'(' starting a filter")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Fail(start, f"filters nested at most {MAX_DEPTH} deep")
        self.ws()
        c = self.text[self.i] if self.i < len(self.text) else ""
        node: tuple[str, Any]
        if c == ")":
            node = ("const", True)  # "()" matches anything
        elif c in "&|":
            self.i += 1
            items = []
            while True:
                self.ws()
                if self.i < len(self.text) and self.text[self.i] == "(":
                    items.append(self.filter())
                else:
                    break
            node = ("and" if c == "&" else "or", items)
        elif c == "!":
            self.i += 1
            node = ("not", self.filter())
        else:
            node = self.item()
        self.expect(")", "')' closing the filter")
        self.depth -= 1
        return node

    def item(self) -> tuple[str, Any]:
        t, start = self.text, self.i
        j = start
        while j < len(t) and t[j] not in "=<>~()":
            j += 1
        name = t[start:j].strip()
        if j >= len(t) or t[j] in "()":
            raise _Fail(j, "an operator (=, <, <=, >, >=) after the property name")
        if t[j] == "~":
            raise _Fail(j, "=, <, <=, > or >= (Golem has no ~= approximate match)")
        reason = _check_name(name)
        if reason is not None:
            raise _Fail(start, "a property name (a letter or _, then letters, digits, _ . - : /; "
                        "no [aspect] or {type} suffix)")
        op = t[j : j + 2] if t[j : j + 2] in ("<=", ">=") else t[j]
        k = j + len(op)
        end = t.find(")", k)
        if end < 0:
            raise _Fail(len(t), "')' closing the filter")
        value = t[k:end]
        self.i = end
        if op == "=" and value == "*":
            return ("present", name)
        if value.startswith("["):
            raise _Fail(k, "a single value (Golem's list values [a,b] are not supported)")
        if "*" in value:
            raise _Fail(k + value.index("*"), "a value without '*' (wildcard values are not "
                        "supported; only the presence test name=* is)")
        return ("cmp", (name, "==" if op == "=" else op, value))


def _golem_node(node: tuple[str, Any], positive: bool) -> Node:
    """Golem's three-valued result made two-valued: positive -> "definitely true", else
    "definitely false" (a comparison on a missing property is undefined, so neither)."""
    kind, arg = node
    if kind == "const":
        return Const(bool(arg) == positive)
    if kind == "present":
        return Has(arg) if positive else Not(Has(arg))
    if kind == "not":
        return _golem_node(arg, not positive)
    if kind in ("and", "or"):
        parts = [_golem_node(a, positive) for a in arg]
        conj = (kind == "and") == positive
        if not parts:
            return Const(conj)
        return _and(parts) if conj else _or(parts)
    name, op, value = arg
    lits = _golem_literals(value)
    atom: Node
    if op == "==":
        atom = Member(name, tuple(lits)) if len(lits) > 1 else Compare(name, "==", lits[0])
    else:
        alts: list[Node] = [Compare(name, op, lit) for lit in lits if lit.kind != "bool"]
        if not alts:  # pragma: no cover - the string alternative is always there
            return Const(False)
        atom = _or(alts)
    return atom if positive else And((Has(name), Not(atom)))


def from_golem(filter: str) -> str:
    """Translate a Golem constraint filter (LDAP style) into this module's language.

    Supported: ``(&...)``, ``(|...)``, ``(!...)``, ``(name=value)``, ``<``, ``<=``, ``>``,
    ``>=``, presence ``(name=*)`` and the empty filter ``()``. A value that parses as a number
    (or true/false) compares as that or as the string, as Golem's typed comparison does
    depending on the property's type. Golem leaves a comparison on a missing property
    undefined, so a negated comparison also requires the property (``(!(a=1))`` ->
    ``has a and not a in (1, '1')``). Wildcard values (``(a=v*)``), aspects (``a[x]``), typed
    references (``a{t}``) and ``~=`` raise `ConstraintSyntaxError` (field ``filter``).
    """
    if not isinstance(filter, str):
        raise InvalidValueError("filter", filter, "must be a str")
    if len(filter) > MAX_LENGTH:
        raise ConstraintSyntaxError(filter, MAX_LENGTH, f"a filter of at most {MAX_LENGTH} "
                                    "characters", field="filter")
    try:
        tree = _GolemParser(filter).run()
    except _Fail as e:
        raise ConstraintSyntaxError(filter, e.position, e.expected, field="filter") from None
    text = _render(_golem_node(tree, True))
    parse(text, field="filter")  # the translation is valid text within the bounds
    return text
