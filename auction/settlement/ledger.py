"""A double-entry ledger of exact integer amounts: the single source of truth for settlement.

Money moves only in `Transaction`s: a set of `Posting`s, signed integer amounts on accounts,
that sum to zero in every currency, so money is never created or lost. Money enters the ledger
from the `ISSUANCE` account (the outside world: minting and deposits of off-ledger money draw
from it, so its balance is negative) and leaves it into `BURNED` (final) or back to `ISSUANCE`.

As in TigerBeetle and beancount: amounts are integers in the smallest currency unit;
transactions are immutable and are never edited (a correction is a new transaction); one
transaction per id, so a retry is a no-op; nothing is half-applied; and the state is rebuilt by
replaying the journal.
"""

from __future__ import annotations

import enum
import json
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping
from fractions import Fraction
from typing import Any

import attrs

from auction._formats import header, read_version
from auction.errors import AuctionError, DuplicateIdError, InvalidValueError, UnknownSchemaError
from auction.money import format_units, to_units

__all__ = [
    "FORMAT",
    "MAX_AMOUNT",
    "SCHEMA",
    "VERSION",
    "Account",
    "AccountKind",
    "Currency",
    "DuplicateTransactionError",
    "InsufficientFundsError",
    "InvalidSettlementError",
    "InvalidTransactionError",
    "Ledger",
    "Posting",
    "SettlementError",
    "Transaction",
    "TxKind",
    "TxMeta",
    "UnknownLedgerSchemaError",
    "transfer",
]

#: Largest absolute amount of one posting: a signed 128-bit integer, as TigerBeetle's amounts
#: are 128-bit. Balances are exact Python ints and have no bound.
MAX_AMOUNT = 2**127 - 1
#: Largest transaction time (a block height, a second or any integer clock).
MAX_TIME = 2**63 - 1

_CURRENCY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")


# -- errors -------------------------------------------------------------------------------------
class SettlementError(AuctionError):
    """Base class of the errors settlement raises."""


class InvalidSettlementError(SettlementError, InvalidValueError):
    """A settlement value or parameter failed validation (`field`, `value`, `reason`)."""


class InvalidTransactionError(InvalidSettlementError):
    """A transaction (or one of its postings) failed validation; `tx_id` names it if known."""

    holder = "transaction"

    def __init__(self, field: str, value: Any, reason: str, *, tx_id: str | None = None) -> None:
        self.tx_id = tx_id
        super().__init__(field, value, reason, within=tx_id)


class DuplicateTransactionError(SettlementError, DuplicateIdError):
    """A transaction id was posted before with other content (ids are never reused); a
    `DuplicateIdError` of kind ``"transaction"``.

    Attributes:
        tx_id: the id.
        field: the first field that differs (``"postings"``, ``"time"``, ``"memo"`` or
            ``"meta"``).
        recorded: its value in the posted transaction.
        given: its value in the new one.
    """

    def __init__(self, tx_id: str, field: str, recorded: Any, given: Any) -> None:
        self.tx_id = tx_id
        self.field = field
        self.recorded = recorded
        self.given = given
        DuplicateIdError.__init__(
            self, "transaction", tx_id, f"transaction id {tx_id!r} was posted with "
            f"{field}={recorded!r}, now given with {field}={given!r}"
        )


class InsufficientFundsError(SettlementError, ValueError):
    """A transaction would take an account below zero; nothing was applied.

    Attributes:
        account: the account.
        currency: the currency.
        balance: its balance before the transaction.
        amount: what the transaction takes out of it (net, > 0).
        tx_id: the transaction.
    """

    def __init__(
        self, account: Account, currency: str, balance: int, amount: int, tx_id: str
    ) -> None:
        self.account = account
        self.currency = currency
        self.balance = balance
        self.amount = amount
        self.tx_id = tx_id
        super().__init__(
            f"transaction {tx_id!r} would take {amount} {currency} from {account}, "
            f"which holds {balance}"
        )


# -- validation helpers -------------------------------------------------------------------------
def _int(value: Any, field: str, lo: int, hi: int, tx_id: str | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        kind = "a bool" if isinstance(value, bool) else type(value).__name__
        raise InvalidTransactionError(field, value, f"must be an int, not {kind}", tx_id=tx_id)
    out = int(value)
    if not lo <= out <= hi:
        raise InvalidTransactionError(field, value, f"must be in [{lo}, {hi}]", tx_id=tx_id)
    return out


def _text(value: Any, field: str, *, empty: bool, tx_id: str | None = None) -> str:
    if not isinstance(value, str):
        raise InvalidTransactionError(
            field, value, f"must be a str, not {type(value).__name__}", tx_id=tx_id
        )
    if (not value and not empty) or value != value.strip():
        what = "" if empty else "non-empty, "
        raise InvalidTransactionError(
            field, value, f"must be {what}without surrounding spaces", tx_id=tx_id
        )
    if "\0" in value:
        raise InvalidTransactionError(field, value, "must not contain NUL characters", tx_id=tx_id)
    return str(value)  # a str subclass (numpy.str_) becomes a plain str


def currency_code(value: Any, field: str = "currency") -> str:
    """`value` as a currency code: 1 to 32 letters, digits, ``.``, ``_`` or ``-``, not starting
    with a punctuation mark (``"AKT"``, ``"uakt"``, ``"USDC"``, ``"CREDIT"``)."""
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise InvalidSettlementError(
            field, value, "must be a currency code: 1-32 letters, digits, '.', '_' or '-'"
        )
    return str(value)


def _kind_arg(value: AccountKind | str) -> AccountKind:
    """Lets ``Account("tenant", ...)`` type-check; `Account` validates the value itself."""
    return value  # type: ignore[return-value]


# -- value types --------------------------------------------------------------------------------
class AccountKind(enum.StrEnum):
    """What an account holds. Every account has a kind and an owner."""

    #: A tenant's wallet.
    TENANT = "tenant"
    #: Money a tenant set aside for a lease (owner: the lease id), paid out as it accrues.
    TENANT_ESCROW = "tenant_escrow"
    #: A provider's wallet: what it earned.
    PROVIDER = "provider"
    #: A provider's stake (or a locked bid deposit), slashable.
    PROVIDER_STAKE = "provider_stake"
    #: Take-rate fees and platform margins collected by the protocol.
    PROTOCOL_FEES = "protocol_fees"
    #: Money destroyed; burning is final (no transaction may take money out of it).
    BURNED = "burned"
    #: The protocol's treasury (slashed stakes, forfeited deposits, ...).
    TREASURY = "treasury"
    #: Scheduled emissions waiting to be paid out.
    EMISSIONS_POOL = "emissions_pool"
    #: Tokens held by the open market: everyone off the protocol's books who trades the token.
    #: Tenants buy the tokens they burn from it (a simulation puts the genesis supply here).
    MARKET = "market"
    #: The outside world: minting and deposits of off-ledger money draw from it (its balance
    #: goes negative), withdrawals to off-ledger money go back to it.
    ISSUANCE = "issuance"


_KIND_ORDER = {k: i for i, k in enumerate(AccountKind)}


def _account_key(a: Account) -> tuple[int, str]:
    return _KIND_ORDER[a.kind], a.owner


@attrs.frozen(cache_hash=True, repr=False)
class Account:
    """An account: a kind and an owner (a tenant, provider or lease id; empty for the
    protocol's own accounts).

    ``Account(AccountKind.TENANT, "lab")``, ``Account(AccountKind.BURNED)``; the kind may be
    given as its string value (``Account("tenant", "lab")``). Accounts sort by kind (in
    declaration order), then owner.
    """

    kind: AccountKind = attrs.field(converter=_kind_arg)
    owner: str = ""
    #: The kind's string value: ledger keys are plain strings, hashed at C speed.
    _kind: str = attrs.field(init=False, eq=False, repr=False, alias="_kind")

    def __attrs_post_init__(self) -> None:
        kind: Any = self.kind
        if not isinstance(kind, AccountKind):
            try:
                kind = AccountKind(kind)
            except ValueError:
                kinds = ", ".join(k.value for k in AccountKind)
                raise InvalidTransactionError(
                    "kind", self.kind, f"must be an AccountKind or one of: {kinds}"
                ) from None
            object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "owner", _text(self.owner, "owner", empty=True))
        object.__setattr__(self, "_kind", str(kind.value))

    def __lt__(self, other: Account) -> bool:
        return _account_key(self) < _account_key(other)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.owner}" if self.owner else self.kind.value

    def __repr__(self) -> str:
        owner = f", {self.owner!r}" if self.owner else ""
        return f"Account({self.kind.value!r}{owner})"


@attrs.frozen
class Posting:
    """A signed amount on one account, in one currency: positive credits the account's
    balance, negative debits it. Amounts are ints with ``abs(amount) <= MAX_AMOUNT``."""

    account: Account
    currency: str
    amount: int

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.account, Account):
            raise InvalidTransactionError("account", self.account, "must be an Account")
        try:
            object.__setattr__(self, "currency", currency_code(self.currency))
        except InvalidSettlementError as e:
            raise InvalidTransactionError(e.field, e.value, e.reason) from None
        object.__setattr__(self, "amount", _int(self.amount, "amount", -MAX_AMOUNT, MAX_AMOUNT))


#: A balance's key inside the ledger: (kind value, owner, currency), plain strings.
Key = tuple[str, str, str]
#: One net change of a transaction: the key, the amount, and the account it belongs to.
Delta = tuple[Key, int, Account]


def key_of(account: Account, currency: str) -> Key:
    """The ledger's key for `account`'s balance in `currency`."""
    return (account._kind, account.owner, currency)


def _as_tuple(postings: Iterable[Posting]) -> tuple[Posting, ...]:
    if isinstance(postings, Posting) or not isinstance(postings, Iterable):
        raise InvalidTransactionError("postings", postings, "must be a sequence of Postings")
    return tuple(postings)


class TxKind(enum.StrEnum):
    """What a transaction does, for programs (the memo is for people)."""

    #: A plain transfer with no settlement meaning (the default).
    TRANSFER = "transfer"
    #: A tenant's deposit into a lease's escrow.
    DEPOSIT = "deposit"
    #: A lease's accrual of a run of periods.
    ACCRUAL = "accrual"
    #: A lease's close: the rest of its escrow back to the tenant.
    CLOSE = "close"
    #: An SLA penalty: refunded periods and a slashed stake.
    PENALTY = "penalty"
    #: A bid deposit locked.
    BID_LOCK = "bid_lock"
    #: A bid deposit resolved (returned or forfeited).
    BID_RESOLVE = "bid_resolve"
    #: New money out of ``ISSUANCE`` (an emission, a mint).
    MINT = "mint"
    #: Money into ``BURNED`` (a burn, Render's burn of a job's value).
    BURN = "burn"
    #: Akash BME: tokens burned for credit.
    BME_MINT = "bme_mint"
    #: Akash BME: credit burned for tokens.
    BME_REDEEM = "bme_redeem"
    #: Rewards paid to providers.
    REWARD = "reward"


def _tx_kind(value: Any) -> TxKind:
    try:
        return TxKind(value)
    except ValueError:
        kinds = ", ".join(k.value for k in TxKind)
        raise InvalidTransactionError("kind", value, f"must be one of: {kinds}") from None


def _runs(value: Any) -> tuple[tuple[int, int], ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidTransactionError("periods", value, "must be a sequence of (first, last) runs")
    out = []
    for run in value:
        pair = () if isinstance(run, str | bytes) or not isinstance(run, Iterable) else tuple(run)
        if len(pair) != 2:
            raise InvalidTransactionError("periods", run, "each run is (first, last)")
        a, b = (_int(x, "periods", 0, MAX_TIME) for x in pair)
        if a > b:
            raise InvalidTransactionError("periods", run, "a run ends before it starts")
        out.append((a, b))
    return tuple(out)


def _meta_text(value: Any) -> str:
    return _text(value, "meta", empty=True)


def _unpaid(value: Any) -> int:
    return _int(value, "unpaid", 0, MAX_AMOUNT)


@attrs.frozen(kw_only=True)
class TxMeta:
    """Typed metadata of a transaction: what settlement state it changes, read by programs
    (`LeaseBook.restore` folds over it) where the memo is free text for people.

    Attributes:
        kind: what the transaction does (`TxKind`).
        lease: the lease it concerns (empty: none).
        bid: the bid whose deposit it locks or resolves (empty: none).
        periods: runs of periods, each ``(first, last)`` inclusive: the periods an accrual
            charged, or those a penalty refunded.
        status: a close's lease status (``"closed"``, ``"overdrawn"``), or a bid deposit's
            resolution (``"returned"``, ``"forfeited"``); empty otherwise.
        unpaid: what an overdrawn lease owed through the requested period and could not pay.
    """

    kind: TxKind = attrs.field(default=TxKind.TRANSFER, converter=_tx_kind)
    lease: str = attrs.field(default="", converter=_meta_text)
    bid: str = attrs.field(default="", converter=_meta_text)
    periods: tuple[tuple[int, int], ...] = attrs.field(default=(), converter=_runs)
    status: str = attrs.field(default="", converter=_meta_text)
    unpaid: int = attrs.field(default=0, converter=_unpaid)

    @classmethod
    def _trusted(cls, kind: TxKind, lease: str, periods: tuple[tuple[int, int], ...]) -> TxMeta:
        """Metadata from values this package already validated (the bulk accrual path)."""
        m = object.__new__(cls)
        s = object.__setattr__
        s(m, "kind", kind)
        s(m, "lease", lease)
        s(m, "bid", "")
        s(m, "periods", periods)
        s(m, "status", "")
        s(m, "unpaid", 0)
        return m

    def to_record(self) -> dict[str, Any]:
        """JSON-ready: the fields that differ from their defaults."""
        out: dict[str, Any] = {}
        for f in attrs.fields(TxMeta):
            v = getattr(self, f.name)
            if v != f.default:
                out[f.name] = (str(v.value) if isinstance(v, TxKind)
                               else [list(r) for r in v] if f.name == "periods" else v)
        return out

    @classmethod
    def from_record(cls, record: Any) -> TxMeta:
        """Metadata from what `to_record` wrote."""
        if not isinstance(record, Mapping):
            raise InvalidTransactionError("meta", record, "must be a mapping")
        names = {f.name for f in attrs.fields(TxMeta)}
        extra = sorted(map(str, set(record) - names))
        if extra:
            raise InvalidTransactionError(extra[0], record[extra[0]], "is not a field of TxMeta")
        return cls(**record)


#: Metadata of a plain transfer.
PLAIN = TxMeta()


def _meta(value: Any) -> TxMeta:
    if not isinstance(value, TxMeta):
        raise InvalidTransactionError("meta", value, "must be a TxMeta")
    return value


@attrs.frozen
class Transaction:
    """An immutable, balanced set of postings, applied all at once or not at all.

    Attributes:
        id: unique id; posting the same transaction again is a no-op, posting other content
            under the same id is an error. Non-empty, no surrounding spaces, no NUL.
        postings: two or more `Posting`s summing to zero in each currency. An account may
            appear more than once; its net change is what counts. No transaction may take
            money out of a `BURNED` account.
        time: when it happened, an int >= 0 on the caller's clock (block, second or hour).
        memo: free text for people.
        meta: typed metadata for programs (`TxMeta`): the kind, the lease, the periods; a
            plain transfer by default.
    """

    id: str
    postings: tuple[Posting, ...] = attrs.field(converter=_as_tuple)
    time: int = 0
    memo: str = ""
    meta: TxMeta = attrs.field(default=PLAIN, converter=_meta, kw_only=True)
    #: Net change per (account, currency), in first-posted order, zero nets dropped.
    _deltas: tuple[Delta, ...] = attrs.field(
        init=False, eq=False, repr=False, alias="_deltas"
    )

    def __attrs_post_init__(self) -> None:
        tid = _text(self.id, "id", empty=False)
        s = object.__setattr__
        s(self, "id", tid)
        s(self, "time", _int(self.time, "time", 0, MAX_TIME, tid))
        if not isinstance(self.memo, str):
            raise InvalidTransactionError("memo", self.memo, "must be a str", tx_id=tid)
        if len(self.postings) < 2:
            raise InvalidTransactionError(
                "postings", len(self.postings), "a transaction needs at least 2 postings",
                tx_id=tid,
            )
        for i, p in enumerate(self.postings):
            if not isinstance(p, Posting):
                raise InvalidTransactionError(
                    "postings", p, f"postings[{i}] is not a Posting", tx_id=tid
                )
        s(self, "_deltas", _net(self.postings))
        totals: dict[str, int] = {}
        for (_, _, currency), amount, account in self._deltas:
            totals[currency] = totals.get(currency, 0) + amount
            if amount < 0 and account.kind is AccountKind.BURNED:
                raise InvalidTransactionError(
                    "postings", str(account),
                    "burning is final: no transaction may take money out of a BURNED account",
                    tx_id=tid,
                )
        for currency, total in totals.items():
            if total:
                raise InvalidTransactionError(
                    "postings", currency, f"postings sum to {total}, not 0, in {currency}",
                    tx_id=tid,
                )

    @classmethod
    def _trusted(
        cls, id: str, postings: tuple[Posting, ...], time: int, memo: str,
        deltas: tuple[Delta, ...], meta: TxMeta = PLAIN,
    ) -> Transaction:
        """A transaction built by this package from values it already validated: skips the
        checks (the hot path of bulk accrual). `deltas` must be ``_net(postings)``."""
        tx = object.__new__(cls)
        s = object.__setattr__
        s(tx, "id", id)
        s(tx, "postings", postings)
        s(tx, "time", time)
        s(tx, "memo", memo)
        s(tx, "meta", meta)
        s(tx, "_deltas", deltas)
        return tx

    def __str__(self) -> str:
        moves = ", ".join(f"{p.account} {p.amount:+d} {p.currency}" for p in self.postings)
        return f"{self.id}: {moves}"

    def net(self) -> dict[tuple[Account, str], int]:
        """Net change per (account, currency), zero nets left out."""
        return {(a, k[2]): d for k, d, a in self._deltas}

    def to_record(self) -> dict[str, Any]:
        """JSON-ready: postings as ``[kind, owner, currency, amount]`` lists, amounts as ints
        (exact in Python's json); ``meta`` only when the transaction has some."""
        out: dict[str, Any] = {
            "id": self.id,
            "time": self.time,
            "memo": self.memo,
            "postings": [
                [p.account.kind.value, p.account.owner, p.currency, p.amount]
                for p in self.postings
            ],
        }
        if self.meta != PLAIN:
            out["meta"] = self.meta.to_record()
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Transaction:
        """A transaction from a dict as `to_record` writes it."""
        if not isinstance(record, Mapping):
            raise InvalidTransactionError("record", record, "a transaction must be a mapping")
        tid = record.get("id") if isinstance(record.get("id"), str) else None
        extra = set(record) - {"id", "time", "memo", "postings", "meta"}
        if extra:
            key = sorted(map(str, extra))[0]
            raise InvalidTransactionError(key, record.get(key), "is not a field of Transaction",
                                          tx_id=tid)
        raw = record.get("postings")
        if not isinstance(raw, list):
            raise InvalidTransactionError("postings", raw, "must be a list", tx_id=tid)
        postings = []
        for p in raw:
            if not isinstance(p, list) or len(p) != 4:
                raise InvalidTransactionError(
                    "postings", p, "each posting is [kind, owner, currency, amount]", tx_id=tid
                )
            postings.append(Posting(Account(p[0], p[1]), p[2], p[3]))
        return cls(
            id=record.get("id"),  # type: ignore[arg-type]  # validated by the constructor
            postings=tuple(postings),
            time=record.get("time", 0),
            memo=record.get("memo", ""),
            meta=TxMeta.from_record(record["meta"]) if "meta" in record else PLAIN,
        )


def _net(postings: Iterable[Posting]) -> tuple[Delta, ...]:
    acc: dict[Key, int] = {}
    accounts: dict[Key, Account] = {}
    for p in postings:
        key = key_of(p.account, p.currency)
        acc[key] = acc.get(key, 0) + p.amount
        accounts.setdefault(key, p.account)
    return tuple((k, v, accounts[k]) for k, v in acc.items() if v)


def transfer(
    id: str, source: Account, target: Account, currency: str, amount: int, *,
    time: int = 0, memo: str = "", meta: TxMeta = PLAIN,
) -> Transaction:
    """A two-posting transaction moving `amount` (an int >= 0) of `currency` from `source` to
    `target`."""
    amount = _int(amount, "amount", 0, MAX_AMOUNT, id if isinstance(id, str) else None)
    return Transaction(
        id, (Posting(source, currency, -amount), Posting(target, currency, amount)),
        time=time, memo=memo, meta=meta,
    )


@attrs.frozen
class Currency:
    """A currency code and how many decimals its smallest unit has, for reading and
    printing amounts: ``Currency("USDC", 6).format(2_710_000) == "2.710000"``."""

    code: str
    decimals: int = 6

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "code", currency_code(self.code, "code"))
        if isinstance(self.decimals, bool) or not isinstance(self.decimals, int) or not (
            0 <= self.decimals <= 36
        ):
            raise InvalidSettlementError("decimals", self.decimals, "must be an int in [0, 36]")

    def units(self, amount: str | int | Fraction) -> int:
        """A decimal amount (``"2.71"``) as smallest units; refuses to round."""
        if isinstance(amount, Fraction):
            scaled = amount * 10**self.decimals
            if scaled.denominator != 1:
                raise InvalidSettlementError(
                    "amount", amount, f"has more than {self.decimals} decimal places"
                )
            return int(scaled)
        return to_units(amount, self.decimals)

    def format(self, units: int) -> str:
        """Smallest units as an exact decimal string with the code: ``"2.710000 USDC"``."""
        return f"{format_units(units, self.decimals)} {self.code}"


# -- the ledger ---------------------------------------------------------------------------------
class Ledger:
    """Balances per (account, currency), changed only by posting transactions.

    Args:
        allow_negative: account kinds whose balances may go below zero. By default only
            `ISSUANCE`, the outside world; every other account must stay >= 0.

    Every account starts at zero in every currency. Balances are exact Python ints.
    """

    __slots__ = (
        "__weakref__",
        "_accounts",
        "_allow",
        "_allow_keys",
        "_balances",
        "_burned",
        "_by_id",
        "_journal",
        "_journal_cache",
        "_minted",
        "_redeemed",
    )

    def __init__(
        self, *, allow_negative: Iterable[AccountKind | str] = (AccountKind.ISSUANCE,)
    ) -> None:
        if isinstance(allow_negative, str | bytes) or not isinstance(allow_negative, Iterable):
            raise InvalidSettlementError("allow_negative", allow_negative,
                                         "must be a collection of AccountKind")
        kinds = set()
        for k in allow_negative:
            try:
                kinds.add(AccountKind(k))
            except ValueError:
                raise InvalidSettlementError("allow_negative", k, "is not an AccountKind") from None
        if AccountKind.BURNED in kinds:
            raise InvalidSettlementError("allow_negative", "burned", "burning is final")
        self._allow: frozenset[AccountKind] = frozenset(kinds)
        self._allow_keys: frozenset[str] = frozenset(str(k.value) for k in kinds)
        self._balances: dict[Key, int] = {}
        self._accounts: dict[Key, Account] = {}  # the account of every key ever used
        self._by_id: dict[str, Transaction] = {}
        self._journal: list[Transaction] = []
        self._journal_cache: tuple[Transaction, ...] | None = ()
        self._minted: dict[str, int] = {}
        self._redeemed: dict[str, int] = {}
        self._burned: dict[str, int] = {}

    # ---- posting
    def post(self, tx: Transaction) -> bool:
        """Apply `tx`.

        Returns:
            True if applied; False if a transaction with the same id and identical content
            was already posted (a retry: nothing changes).

        Raises:
            DuplicateTransactionError: the id was posted with other content.
            InsufficientFundsError: an account not in ``allow_negative`` would go below zero.
                Nothing is applied.
        """
        if self._seen(tx):
            return False
        get = self._balances.get
        allow = self._allow_keys
        for key, d, account in tx._deltas:
            if d < 0 and key[0] not in allow:
                bal = get(key, 0)
                if bal + d < 0:
                    raise InsufficientFundsError(account, key[2], bal, -d, tx.id)
        self._apply(tx)
        return True

    def post_many(self, txs: Iterable[Transaction]) -> int:
        """Apply transactions in order, all or nothing.

        Retries (an id already posted, or twice in `txs`, with identical content) are skipped.

        Returns:
            how many were applied.

        Raises:
            SettlementError: the errors of `post`, for the first transaction that fails; then
                nothing of the batch is applied.
        """
        batch: dict[str, Transaction] = {}
        overlay: dict[Key, int] = {}
        todo: list[Transaction] = []
        get = self._balances.get
        allow = self._allow_keys
        for tx in txs:
            if self._seen(tx, batch):
                continue
            for key, d, account in tx._deltas:
                if d < 0 and key[0] not in allow:
                    bal = overlay[key] if key in overlay else get(key, 0)
                    if bal + d < 0:
                        raise InsufficientFundsError(account, key[2], bal, -d, tx.id)
            for key, d, _ in tx._deltas:
                overlay[key] = (overlay[key] if key in overlay else get(key, 0)) + d
            batch[tx.id] = tx
            todo.append(tx)
        for tx in todo:
            self._apply(tx)
        return len(todo)

    def _seen(self, tx: Transaction, batch: Mapping[str, Transaction] | None = None) -> bool:
        """True for a retry of a posted transaction; raises on a conflicting id."""
        if not isinstance(tx, Transaction):
            raise InvalidTransactionError("tx", tx, "must be a Transaction")
        prior = self._by_id.get(tx.id)
        if prior is None and batch is not None:
            prior = batch.get(tx.id)
        if prior is None:
            return False
        if prior == tx:
            return True
        for field in ("postings", "time", "memo", "meta"):
            if getattr(prior, field) != getattr(tx, field):
                raise DuplicateTransactionError(tx.id, field, getattr(prior, field),
                                                getattr(tx, field))
        raise AssertionError("unreachable: equal fields, unequal transactions")

    def _apply(self, tx: Transaction) -> None:
        """Apply a checked transaction (cannot fail)."""
        bal = self._balances
        accounts = self._accounts
        for key, d, account in tx._deltas:
            old = bal.get(key)
            if old is None:
                if d:  # zero balances are not kept (a zero posting leaves no trace)
                    bal[key] = d
                if key not in accounts:
                    accounts[key] = account
            elif old + d:
                bal[key] = old + d
            else:
                del bal[key]
            kind = key[0]
            if kind == "issuance":
                flows = self._minted if d < 0 else self._redeemed
                flows[key[2]] = flows.get(key[2], 0) + abs(d)
            elif kind == "burned":
                self._burned[key[2]] = self._burned.get(key[2], 0) + d
        self._by_id[tx.id] = tx
        self._journal.append(tx)
        self._journal_cache = None

    # ---- reading
    @property
    def allow_negative(self) -> frozenset[AccountKind]:
        """Account kinds whose balances may go below zero."""
        return self._allow

    def balance(self, account: Account, currency: str) -> int:
        """The balance of `account` in `currency` (0 if it never moved)."""
        return self._balances.get((account._kind, account.owner, currency), 0)

    def balances(self) -> dict[tuple[Account, str], int]:
        """Every non-zero balance, ordered by account (kind, owner), then currency."""
        acc = self._accounts
        keys = sorted(self._balances, key=lambda k: (_account_key(acc[k]), k[2]))
        return {(acc[k], k[2]): self._balances[k] for k in keys}

    def total(self, kind: AccountKind | str, currency: str) -> int:
        """Sum of the balances of every account of `kind` in `currency`."""
        kind = str(AccountKind(kind).value)
        return sum(v for (k, _, c), v in self._balances.items() if k == kind and c == currency)

    def currencies(self) -> list[str]:
        """Every currency that ever moved, sorted."""
        return sorted({key[2] for tx in self._journal for key, _, _ in tx._deltas})

    def supply(self, currency: str) -> int:
        """Money on the ledger: the sum of the balances of every account except `ISSUANCE`
        and `BURNED` ones.

        By conservation (every transaction sums to zero) it equals ``-ISSUANCE - BURNED``
        balances, and ``minted - redeemed - burned``.
        """
        return -sum(
            v for (k, _, c), v in self._balances.items()
            if c == currency and k in ("issuance", "burned")
        )

    def minted(self, currency: str) -> int:
        """Cumulative money that came out of `ISSUANCE` accounts (minting, deposits from
        off-ledger): the sum over transactions of each ISSUANCE account's net decrease."""
        return self._minted.get(currency, 0)

    def redeemed(self, currency: str) -> int:
        """Cumulative money that went back to `ISSUANCE` accounts (withdrawn off-ledger)."""
        return self._redeemed.get(currency, 0)

    def burned(self, currency: str) -> int:
        """Cumulative money burned: the balance of the `BURNED` accounts (burning is final)."""
        return self._burned.get(currency, 0)

    @property
    def journal(self) -> tuple[Transaction, ...]:
        """Every applied transaction, in posting order."""
        if self._journal_cache is None:
            self._journal_cache = tuple(self._journal)
        return self._journal_cache

    def get(self, tx_id: str) -> Transaction | None:
        """The posted transaction with this id, or None."""
        return self._by_id.get(tx_id)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._by_id

    def __len__(self) -> int:
        return len(self._journal)

    def __iter__(self) -> Iterator[Transaction]:
        return iter(self.journal)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ledger):
            return NotImplemented
        return self._allow == other._allow and self._journal == other._journal

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Ledger({len(self._journal)} transactions, {len(self._balances)} balances)"

    # ---- rebuilding
    @classmethod
    def replay(
        cls, journal: Iterable[Transaction], *,
        allow_negative: Iterable[AccountKind | str] = (AccountKind.ISSUANCE,),
    ) -> Ledger:
        """A ledger rebuilt by posting `journal` in order; equal to the ledger that wrote it."""
        out = cls(allow_negative=allow_negative)
        out.post_many(journal)
        return out

    def copy(self) -> Ledger:
        """An independent ledger with the same journal (transactions are immutable, shared)."""
        out = Ledger(allow_negative=self._allow)
        out._balances = dict(self._balances)
        out._accounts = dict(self._accounts)
        out._by_id = dict(self._by_id)
        out._journal = list(self._journal)
        out._journal_cache = None
        out._minted = dict(self._minted)
        out._redeemed = dict(self._redeemed)
        out._burned = dict(self._burned)
        return out

    def to_json(self) -> str:
        """The ledger as JSON: ``{"format": FORMAT, "version": VERSION, "allow_negative":
        [...], "journal": [records]}``, each record with its typed ``meta``.

        Amounts are JSON integers, exact when read back with Python's json (other readers
        may round integers above 2**53). Balances are not stored: `from_json` replays.
        """
        return json.dumps({
            **header(FORMAT, VERSION),
            "allow_negative": sorted(k.value for k in self._allow),
            "journal": [tx.to_record() for tx in self._journal],
        })

    @classmethod
    def from_json(cls, text: str) -> Ledger:
        """Read what `to_json` wrote, replaying its journal (with all the checks of `post`).

        Reads version 2 (also under the older key ``"schema": "auction.settlement.ledger/2"``)
        and version 1 (``"format": "auction.settlement.ledger/1"``), whose records carry no
        metadata: that of lease and bid deposit transactions is derived from the ids and memos
        version 1 wrote (so `LeaseBook.restore` works on it); the others read as plain
        transfers.

        Raises:
            UnknownLedgerSchemaError: the document names another format or version.
        """
        try:
            doc = json.loads(text)
        except (TypeError, ValueError) as e:
            raise InvalidSettlementError("json", str(text)[:60], f"is not JSON: {e}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("journal"), list):
            raise InvalidSettlementError("json", str(text)[:60],
                                         "must be an object with a 'journal' list")
        version, _ = read_version(doc, FORMAT, (1, VERSION), document="ledger",
                                  error=UnknownLedgerSchemaError, default=1)
        records = (Transaction.from_record(r) for r in doc["journal"])
        return cls.replay(
            records if version == VERSION else map(_legacy_meta, records),
            allow_negative=doc.get("allow_negative", [AccountKind.ISSUANCE.value]),
        )


#: The ``"format"`` of a saved ledger.
FORMAT = "auction.settlement.ledger"
#: The version `Ledger.to_json` writes (2: transactions carry `TxMeta`; 1 had no metadata,
#: `Ledger.from_json` still reads it).
VERSION = 2
#: The older single-key header of version 2 (``"schema": SCHEMA``), still read.
SCHEMA = f"{FORMAT}/{VERSION}"
#: Version 1's header (``"format": SCHEMA_V1``), still read.
SCHEMA_V1 = f"{FORMAT}/1"


def _legacy_meta(tx: Transaction) -> Transaction:
    """A version-1 transaction with the metadata its id and memo implied (the only place that
    reads memos: version 1 had nothing else)."""
    if tx.meta != PLAIN:
        return tx
    kind, _, rest = tx.id.partition(":")
    meta: TxMeta | None = None
    try:
        if kind == "accrue" and tx.memo.startswith("periods "):
            lease, _, _ = rest.rpartition(":")
            a, _, b = tx.memo.removeprefix("periods ").partition("-")
            meta = TxMeta(kind=TxKind.ACCRUAL, lease=lease, periods=((int(a), int(b)),))
        elif kind == "deposit":
            meta = TxMeta(kind=TxKind.DEPOSIT, lease=rest.rpartition(":")[0])
        elif kind == "close":
            status, _, unpaid = tx.memo.partition(": unpaid ")
            meta = TxMeta(kind=TxKind.CLOSE, lease=rest, status=status,
                          unpaid=int(unpaid) if unpaid else 0)
        elif kind == "penalty":
            parts = tx.memo.split("; ", 2)
            if len(parts) == 3 and parts[2].startswith("lease "):
                runs = parts[1].removeprefix("refunded ")
                meta = TxMeta(kind=TxKind.PENALTY, lease=parts[2][6:], periods=() if runs == "-"
                              else tuple(tuple(map(int, r.split("-"))) for r in runs.split(",")))
        elif kind == "bid-deposit":
            bid, _, tail = rest.rpartition(":")
            if tail == "resolve":
                meta = TxMeta(kind=TxKind.BID_RESOLVE, bid=bid, status=tx.memo)
            else:
                meta = TxMeta(kind=TxKind.BID_LOCK, bid=rest)
    except ValueError:  # not what this library wrote: left as a plain transfer
        meta = None
    return tx if meta is None else attrs.evolve(tx, meta=meta)


class UnknownLedgerSchemaError(UnknownSchemaError, InvalidSettlementError):
    """A ledger document names a format or version this library cannot read (see
    `UnknownSchemaError`)."""
