"""The double-entry ledger: validation, idempotency, all-or-nothing, conservation, replay."""

from __future__ import annotations

import contextlib
import json
import pickle
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.errors import AuctionError, DuplicateIdError, DuplicateOrderError
from auction.settlement import (
    MAX_AMOUNT,
    Account,
    AccountKind,
    Currency,
    DuplicateTransactionError,
    InsufficientFundsError,
    InvalidSettlementError,
    InvalidTransactionError,
    Ledger,
    Posting,
    SettlementError,
    Transaction,
    TxKind,
    TxMeta,
    transfer,
)

ISSUANCE = Account(AccountKind.ISSUANCE)
BURNED = Account(AccountKind.BURNED)
LAB = Account(AccountKind.TENANT, "lab")
ESCROW = Account(AccountKind.TENANT_ESCROW, "lease-1")
FARM = Account(AccountKind.PROVIDER, "farm")


def funded(amount: int = 1000, currency: str = "AKT") -> Ledger:
    ledger = Ledger()
    ledger.post(transfer("fund", ISSUANCE, LAB, currency, amount))
    return ledger


# -- value types --------------------------------------------------------------------------------
def test_account_kinds_parse_sort_and_print() -> None:
    assert Account("tenant", "lab") == LAB
    assert repr(LAB) == "Account('tenant', 'lab')"
    assert str(LAB) == "tenant:lab"
    assert str(BURNED) == "burned"
    assert sorted([ISSUANCE, FARM, LAB, Account("tenant", "a")]) == [
        Account("tenant", "a"), LAB, FARM, ISSUANCE]
    assert hash(Account("tenant", "lab")) == hash(LAB)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "wallet", "owner": "x"}, "kind"),
        ({"kind": "tenant", "owner": " x"}, "owner"),
        ({"kind": "tenant", "owner": "a\0b"}, "owner"),
        ({"kind": "tenant", "owner": 3}, "owner"),
    ],
)
def test_bad_accounts_are_refused(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidTransactionError) as e:
        Account(**kwargs)  # type: ignore[arg-type]
    assert e.value.field == field


@pytest.mark.parametrize(
    ("currency", "amount", "field"),
    [
        ("", 1, "currency"),
        ("A K T", 1, "currency"),
        ("-AKT", 1, "currency"),
        ("X" * 33, 1, "currency"),
        ("AKT", 1.0, "amount"),
        ("AKT", True, "amount"),
        ("AKT", "5", "amount"),
        ("AKT", MAX_AMOUNT + 1, "amount"),
        ("AKT", -MAX_AMOUNT - 1, "amount"),
    ],
)
def test_bad_postings_are_refused(currency: object, amount: object, field: str) -> None:
    with pytest.raises(InvalidTransactionError) as e:
        Posting(LAB, currency, amount)  # type: ignore[arg-type]
    assert e.value.field == field
    assert isinstance(e.value, SettlementError | ValueError | AuctionError)


def test_posting_accepts_numpy_ints_and_the_extremes() -> None:
    import numpy as np

    p = Posting(LAB, "uakt", np.int64(7))  # type: ignore[arg-type]
    assert p.amount == 7
    assert type(p.amount) is int
    assert Posting(LAB, "USDC", MAX_AMOUNT).amount == MAX_AMOUNT


def test_transaction_validation_names_field_and_id() -> None:
    ok = (Posting(LAB, "AKT", -5), Posting(FARM, "AKT", 5))
    with pytest.raises(InvalidTransactionError, match=r"'t1'.*sum to -1"):
        Transaction("t1", (Posting(LAB, "AKT", -5), Posting(FARM, "AKT", 4)))
    with pytest.raises(InvalidTransactionError, match="at least 2"):
        Transaction("t1", ok[:1])
    with pytest.raises(InvalidTransactionError) as e:
        Transaction("", ok)
    assert e.value.field == "id"
    with pytest.raises(InvalidTransactionError) as e:
        Transaction("t1", ok, time=-1)
    assert (e.value.field, e.value.tx_id) == ("time", "t1")
    with pytest.raises(InvalidTransactionError, match="postings"):
        Transaction("t1", (ok[0], "oops"))  # type: ignore[arg-type]
    with pytest.raises(InvalidTransactionError, match="postings"):
        Transaction("t1", ok[0])  # type: ignore[arg-type]
    with pytest.raises(InvalidTransactionError, match="memo"):
        Transaction("t1", ok, memo=3)  # type: ignore[arg-type]
    # balanced per currency: two currencies each summing to zero is fine, crossing is not
    Transaction("fx", (Posting(LAB, "AKT", -5), Posting(FARM, "AKT", 5),
                       Posting(LAB, "USDC", 2), Posting(FARM, "USDC", -2)))
    with pytest.raises(InvalidTransactionError, match="in AKT"):
        Transaction("fx", (Posting(LAB, "AKT", -5), Posting(FARM, "USDC", 5)))


def test_burning_is_final() -> None:
    with pytest.raises(InvalidTransactionError, match="BURNED"):
        transfer("unburn", BURNED, LAB, "AKT", 1)
    with pytest.raises(InvalidSettlementError):
        Ledger(allow_negative=[AccountKind.BURNED])
    # a zero-amount transfer touches nothing, even from BURNED
    assert transfer("noop", BURNED, LAB, "AKT", 0).net() == {}


def test_transfer_refuses_negative_amounts() -> None:
    with pytest.raises(InvalidTransactionError) as e:
        transfer("t", LAB, FARM, "AKT", -1)
    assert (e.value.field, e.value.tx_id) == ("amount", "t")


def test_net_merges_repeated_accounts() -> None:
    tx = Transaction("t", (Posting(LAB, "AKT", -5), Posting(FARM, "AKT", 3),
                           Posting(FARM, "AKT", 2), Posting(LAB, "AKT", 0)))
    assert tx.net() == {(LAB, "AKT"): -5, (FARM, "AKT"): 5}


def test_currency_reads_and_prints_exactly() -> None:
    usdc = Currency("USDC", 6)
    assert usdc.units("2.71") == 2_710_000
    assert usdc.units(Fraction(1, 4)) == 250_000
    assert usdc.format(2_710_000) == "2.710000 USDC"
    with pytest.raises(InvalidSettlementError):
        usdc.units(Fraction(1, 3))
    with pytest.raises(InvalidSettlementError):
        Currency("USDC", -1)
    with pytest.raises(InvalidSettlementError):
        Currency("", 6)


# -- posting ------------------------------------------------------------------------------------
def test_post_moves_money_and_tracks_supply() -> None:
    ledger = funded(1000)
    assert ledger.post(transfer("dep", LAB, ESCROW, "AKT", 300, time=5, memo="deposit"))
    assert ledger.post(transfer("burn", LAB, BURNED, "AKT", 100))
    assert ledger.post(transfer("out", LAB, ISSUANCE, "AKT", 50))  # withdrawn off-ledger
    assert ledger.balance(LAB, "AKT") == 550
    assert ledger.balance(ESCROW, "AKT") == 300
    assert ledger.balance(FARM, "AKT") == 0
    assert ledger.balance(LAB, "USDC") == 0
    assert ledger.minted("AKT") == 1000
    assert ledger.burned("AKT") == 100
    assert ledger.redeemed("AKT") == 50
    assert ledger.supply("AKT") == 850 == 1000 - 50 - 100
    assert ledger.supply("AKT") == -ledger.balance(ISSUANCE, "AKT") - ledger.burned("AKT")
    assert ledger.total("tenant", "AKT") == 550
    assert list(ledger.balances()) == [
        (LAB, "AKT"), (ESCROW, "AKT"), (BURNED, "AKT"), (ISSUANCE, "AKT")]
    assert [tx.id for tx in ledger.journal] == ["fund", "dep", "burn", "out"]
    assert ledger.get("dep") is ledger.journal[1]
    assert "dep" in ledger
    assert "nope" not in ledger
    assert len(ledger) == 4
    assert ledger.currencies() == ["AKT"]


def test_retry_is_a_no_op_and_a_conflict_is_an_error() -> None:
    ledger = funded()
    tx = transfer("dep", LAB, ESCROW, "AKT", 300)
    assert ledger.post(tx)
    before = ledger.balances()
    assert not ledger.post(transfer("dep", LAB, ESCROW, "AKT", 300))
    assert ledger.balances() == before
    assert len(ledger) == 2
    with pytest.raises(DuplicateTransactionError) as e:
        ledger.post(transfer("dep", LAB, ESCROW, "AKT", 301))
    assert (e.value.tx_id, e.value.field) == ("dep", "postings")
    assert isinstance(e.value, DuplicateIdError)  # one type for every duplicate id
    assert (e.value.kind, e.value.id) == ("transaction", "dep")
    with pytest.raises(DuplicateTransactionError) as e:
        ledger.post(transfer("dep", LAB, ESCROW, "AKT", 300, memo="other"))
    assert e.value.field == "memo"
    with pytest.raises(DuplicateTransactionError) as e:
        ledger.post(transfer("dep", LAB, ESCROW, "AKT", 300,
                             meta=TxMeta(kind=TxKind.DEPOSIT, lease="lease-1")))
    assert e.value.field == "meta"
    assert ledger.balances() == before


def test_metadata_is_typed_validated_and_round_trips() -> None:
    meta = TxMeta(kind="close", lease="l", status="overdrawn", unpaid=700)
    assert meta.kind is TxKind.CLOSE
    tx = transfer("close:l", ESCROW, LAB, "AKT", 5, meta=meta)
    record = tx.to_record()
    assert record["meta"] == {"kind": "close", "lease": "l", "status": "overdrawn",
                              "unpaid": 700}
    assert "meta" not in transfer("t", LAB, ESCROW, "AKT", 1).to_record()
    assert Transaction.from_record(json.loads(json.dumps(record))) == tx
    runs = TxMeta(kind=TxKind.PENALTY, periods=[[1, 2], (4, 4)])
    assert runs.periods == ((1, 2), (4, 4))
    bad: list[tuple[dict[str, object], str]] = [
        ({"kind": "refund"}, "kind"), ({"periods": [(3, 2)]}, "periods"),
        ({"periods": [(1,)]}, "periods"), ({"periods": "1-2"}, "periods"),
        ({"unpaid": -1}, "unpaid"), ({"unpaid": 1.5}, "unpaid"), ({"lease": 3}, "meta"),
    ]
    for kwargs, field in bad:
        with pytest.raises(InvalidTransactionError) as e:
            TxMeta(**kwargs)
        assert e.value.field == field
    with pytest.raises(InvalidTransactionError, match="meta"):
        Transaction("t", tx.postings, meta={"kind": "close"})
    with pytest.raises(InvalidTransactionError) as e:
        Transaction.from_record({**record, "meta": {"kind": "close", "colour": "red"}})
    assert e.value.field == "colour"


def test_insufficient_funds_names_everything_and_applies_nothing() -> None:
    ledger = funded(100)
    tx = Transaction("split", (Posting(LAB, "AKT", -150), Posting(FARM, "AKT", 150)))
    with pytest.raises(InsufficientFundsError) as e:
        ledger.post(tx)
    err = e.value
    assert (err.account, err.currency, err.balance, err.amount, err.tx_id) == (
        LAB, "AKT", 100, 150, "split")
    assert "150 AKT from tenant:lab, which holds 100" in str(err)
    assert ledger.balances() == {(LAB, "AKT"): 100, (ISSUANCE, "AKT"): -100}
    assert "split" not in ledger


def test_allow_negative_is_configurable() -> None:
    ledger = Ledger(allow_negative=["issuance", AccountKind.TREASURY])
    treasury = Account(AccountKind.TREASURY)
    ledger.post(transfer("grant", treasury, FARM, "AKT", 10))
    assert ledger.balance(treasury, "AKT") == -10
    assert ledger.allow_negative == {AccountKind.ISSUANCE, AccountKind.TREASURY}
    strict = Ledger(allow_negative=())
    with pytest.raises(InsufficientFundsError):
        strict.post(transfer("mint", ISSUANCE, LAB, "AKT", 1))
    with pytest.raises(InvalidSettlementError):
        Ledger(allow_negative=["nope"])
    with pytest.raises(InvalidSettlementError):
        Ledger(allow_negative="issuance")


def test_post_many_is_all_or_nothing() -> None:
    ledger = funded(100)
    good = transfer("a", LAB, ESCROW, "AKT", 60)
    bad = transfer("b", LAB, ESCROW, "AKT", 60)  # only 40 left after `a`
    with pytest.raises(InsufficientFundsError) as e:
        ledger.post_many([good, bad])
    assert e.value.balance == 40
    assert e.value.tx_id == "b"
    assert len(ledger) == 1
    assert ledger.balance(LAB, "AKT") == 100
    # a retry inside the batch is skipped; a conflict inside the batch fails the batch
    assert ledger.post_many([good, good, transfer("c", ESCROW, FARM, "AKT", 60)]) == 2
    with pytest.raises(DuplicateTransactionError):
        ledger.post_many([transfer("d", LAB, FARM, "AKT", 1), transfer("d", LAB, FARM, "AKT", 2)])
    assert "d" not in ledger
    with pytest.raises(InvalidTransactionError):
        ledger.post_many([transfer("e", LAB, FARM, "AKT", 1), "not a transaction"])  # type: ignore[list-item]
    assert "e" not in ledger


def test_json_round_trip_is_exact() -> None:
    ledger = Ledger()
    big = MAX_AMOUNT - 12345
    ledger.post(transfer("mint", ISSUANCE, LAB, "uakt", big, time=2**62, memo="genesis ✓"))
    ledger.post(transfer("pay", LAB, FARM, "uakt", 2**53 + 1))
    text = ledger.to_json()
    again = Ledger.from_json(text)
    assert again == ledger
    assert again.balances() == ledger.balances()
    assert again.balance(FARM, "uakt") == 2**53 + 1
    assert again.journal[0].memo == "genesis ✓"
    assert json.loads(text)["journal"][1]["postings"][1] == ["provider", "farm", "uakt", 2**53 + 1]
    loose = Ledger(allow_negative=["issuance", "treasury"])
    assert Ledger.from_json(loose.to_json()).allow_negative == loose.allow_negative


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"journal": [{"id": "x", "postings": [["tenant", "a", "AKT"]]}]}',
        '{"journal": [{"id": "x", "postings": []}]}',
        '{"journal": [{"id": "x", "postings": "no"}]}',
        '{"journal": [{"id": "x", "postings": [], "extra": 1}]}',
        '{"journal": [7]}',
    ],
)
def test_from_json_refuses_bad_documents(text: str) -> None:
    with pytest.raises(InvalidSettlementError):
        Ledger.from_json(text)


def test_from_json_replays_with_all_checks() -> None:
    bad = {"journal": [transfer("pay", LAB, FARM, "AKT", 5).to_record()]}
    with pytest.raises(InsufficientFundsError):
        Ledger.from_json(json.dumps(bad))


def test_copy_is_independent() -> None:
    ledger = funded()
    twin = ledger.copy()
    twin.post(transfer("x", LAB, FARM, "AKT", 1))
    assert ledger.balance(FARM, "AKT") == 0
    assert twin.balance(FARM, "AKT") == 1
    assert twin != ledger
    assert twin.journal[:1] == ledger.journal
    assert twin.minted("AKT") == ledger.minted("AKT")


# -- properties ---------------------------------------------------------------------------------
ACCOUNTS = [ISSUANCE, BURNED, LAB, Account("tenant", "bob"), ESCROW, FARM,
            Account(AccountKind.PROVIDER_STAKE, "farm"), Account(AccountKind.PROTOCOL_FEES),
            Account(AccountKind.TREASURY)]
CURRENCIES = ["AKT", "USDC"]


@st.composite
def transactions(draw: st.DrawFn, tx_id: str) -> Transaction:
    """A balanced transaction over a few accounts; some will lack the funds to post."""
    currency = draw(st.sampled_from(CURRENCIES))
    n = draw(st.integers(1, 3))
    sources = draw(st.lists(st.sampled_from([a for a in ACCOUNTS if a != BURNED]),
                            min_size=n, max_size=n))
    targets = draw(st.lists(st.sampled_from(ACCOUNTS), min_size=n, max_size=n))
    amounts = draw(st.lists(st.one_of(st.integers(0, 50), st.integers(0, 2**80)),
                            min_size=n, max_size=n))
    postings = []
    for s, t, a in zip(sources, targets, amounts, strict=True):
        postings += [Posting(s, currency, -a), Posting(t, currency, a)]
    return Transaction(tx_id, tuple(postings), time=draw(st.integers(0, 10)))


@st.composite
def journals(draw: st.DrawFn) -> list[Transaction]:
    n = draw(st.integers(1, 25))
    return [draw(transactions(f"t{i}")) for i in range(n)]


def check_invariants(ledger: Ledger) -> None:
    bal = ledger.balances()
    for c in CURRENCIES:
        assert sum(v for (_, cur), v in bal.items() if cur == c) == 0  # conservation
        assert ledger.supply(c) == ledger.minted(c) - ledger.redeemed(c) - ledger.burned(c)
        assert ledger.burned(c) == ledger.balance(BURNED, c)
    for (account, _), v in bal.items():
        assert v != 0
        if account.kind not in ledger.allow_negative:
            assert v > 0


@settings(max_examples=60)
@given(journals(), st.data())
def test_properties_of_any_history(txs: list[Transaction], data: st.DataObject) -> None:
    ledger = Ledger()
    for tx in txs:
        before = ledger.balances()
        try:
            applied = ledger.post(tx)
        except InsufficientFundsError:
            assert ledger.balances() == before
            assert tx.id not in ledger
            continue
        assert applied
        check_invariants(ledger)
    live = ledger.balances()
    # replay equals the live ledger
    replayed = Ledger.replay(ledger.journal)
    assert replayed == ledger
    assert replayed.balances() == live
    assert Ledger.from_json(ledger.to_json()).balances() == live
    # posting any subset again changes nothing
    again = data.draw(st.lists(st.sampled_from(ledger.journal), max_size=10)) if len(ledger) else []
    assert all(not ledger.post(tx) for tx in again)
    assert ledger.post_many(again) == 0
    assert ledger.balances() == live
    assert len(ledger) == len(replayed)
    # a batch that fails anywhere leaves the ledger unchanged
    extra = data.draw(journals())
    batch = [Transaction(f"b{i}", tx.postings) for i, tx in enumerate(extra)]
    broke = Account(AccountKind.TENANT, "broke")  # no transaction ever funds it
    batch.insert(data.draw(st.integers(0, len(batch))), transfer("b-fail", broke, FARM, "AKT", 1))
    journal = ledger.journal
    with pytest.raises(InsufficientFundsError):
        ledger.post_many(batch)
    assert ledger.balances() == live
    assert ledger.journal == journal
    check_invariants(ledger)


@settings(max_examples=40)
@given(journals())
def test_post_many_equals_posting_one_by_one(txs: list[Transaction]) -> None:
    one = Ledger()
    for tx in txs:
        with contextlib.suppress(InsufficientFundsError):
            one.post(tx)
    batch = Ledger()
    assert batch.post_many(one.journal) == len(one)
    assert batch == one
    assert batch.balances() == one.balances()


def test_a_duplicate_order_id_is_the_same_duplicate_id_error() -> None:
    """Duplicates raise one type everywhere: an order id twice in a book is the
    `DuplicateIdError` of kind "order" (and still the `KeyError` it always was)."""
    from auction import Offer, OrderBook

    book = OrderBook([Offer(id="o", provider="p", gpu_model="A100", gpus=1, vram_gb=80,
                             region="eu", price=5)])
    with pytest.raises(DuplicateIdError) as e:
        book.add(Offer(id="o", provider="q", gpu_model="A100", gpus=1, vram_gb=80,
                       region="eu", price=6))
    assert isinstance(e.value, DuplicateOrderError)
    assert isinstance(e.value, KeyError)
    assert (e.value.kind, e.value.id, e.value.order_id) == ("order", "o", "o")
    assert str(e.value) == "order id 'o' is already in the book"
    again = pickle.loads(pickle.dumps(e.value))
    assert (type(again), again.kind, again.id, str(again)) == (
        DuplicateOrderError, "order", "o", str(e.value))
