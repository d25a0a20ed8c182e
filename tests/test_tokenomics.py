"""Tokenomics: oracle conversion, Render and Akash burn-and-mint, emissions, issuance control.

Goldens come from docs/MARKETS facts (Render's 5% fee and year-1 emission, the Akash testnet's
collateral-ratio example, io.net's capped decaying schedule); properties check rounding
directions, the breaker, schedules against an independent exact computation, and the supply
identity S(t+1) = S(t) + minted - burned over random sequences of ledger operations.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from auction.errors import AuctionOverflowError
from auction.settlement.ledger import (
    Account,
    AccountKind,
    Currency,
    InsufficientFundsError,
    InvalidSettlementError,
    Ledger,
    TxKind,
    transfer,
)
from auction.settlement.rewards import reward_transaction, split_rewards
from auction.settlement.tokenomics import (
    BmeParams,
    BmeState,
    BreakerStatus,
    CappedSupply,
    DecayingEmission,
    DemandController,
    FixedEmission,
    InvalidTokenomicsError,
    MintingHaltedError,
    OraclePrice,
    YearlyEmission,
    bme_mint_transaction,
    bme_redeem_transaction,
    burn_transaction,
    convert,
    mint_transaction,
    render_burn,
    render_burn_transaction,
    round_rational,
    tokens_for_credit,
)

RENDER_USD = OraclePrice("RENDER", "USD", "5", base_decimals=8, quote_decimals=6)
AKT = 10**6  # uakt per AKT, and uact per ACT


def akt_price(p: str | int | Fraction) -> OraclePrice:
    return OraclePrice("AKT", "ACT", p, base_decimals=6, quote_decimals=6)


prices = st.fractions(min_value=Fraction(1, 10**4), max_value=10**4, max_denominator=10**6)
decimals = st.integers(0, 18)
amounts = st.integers(0, 10**24)


# -- rounding and conversion --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "down", "up", "half_even"),
    [
        (Fraction(5, 2), 2, 3, 2),
        (Fraction(7, 2), 3, 4, 4),
        (Fraction(7, 3), 2, 3, 2),
        (Fraction(8, 3), 2, 3, 3),
        (Fraction(4), 4, 4, 4),
        (Fraction(0), 0, 0, 0),
        (Fraction(-5, 2), -3, -2, -2),
    ],
)
def test_round_rational(value: Fraction, down: int, up: int, half_even: int) -> None:
    assert round_rational(value, "down") == down
    assert round_rational(value, "up") == up
    assert round_rational(value, "half-even") == half_even


def test_round_rational_refuses_unknown_mode() -> None:
    with pytest.raises(InvalidTokenomicsError, match="rounding") as e:
        round_rational(Fraction(1, 2), "nearest")  # type: ignore[arg-type]
    assert e.value.field == "rounding"


def test_convert_golden() -> None:
    # 1 RENDER (10**8 units) at 7.25 USD is 7.25 USD: 7_250_000 micro-dollars, exact
    p = OraclePrice("RENDER", "USD", "7.25", base_decimals=8, quote_decimals=6)
    assert p.unit_rate == Fraction(725, 10**4)
    assert convert(10**8, p, rounding="down") == 7_250_000
    # 1 unit (1e-8 RENDER) is 0.0725 micro-dollars: down 0, up 1, half-even 0
    assert [convert(1, p, rounding=r) for r in ("down", "up", "half-even")] == [0, 1, 0]
    # back: 1 micro-dollar buys 1/0.0725 = 13.79... RENDER units
    inv = p.inverse()
    assert (inv.base, inv.quote, inv.base_decimals, inv.quote_decimals) == ("USD", "RENDER", 6, 8)
    assert [convert(1, inv, rounding=r) for r in ("down", "up", "half-even")] == [13, 14, 14]
    assert str(p) == "1 RENDER = 29/4 USD"


def test_oracle_price_from_currencies() -> None:
    p = OraclePrice.of(Currency("AKT", 6), Currency("ACT", 6), Decimal("0.46"))
    assert p == akt_price("0.46")
    assert p.price == Fraction(23, 50)


@given(amount=amounts, price=prices, bd=decimals, qd=decimals)
def test_convert_rounding_directions(amount: int, price: Fraction, bd: int, qd: int) -> None:
    p = OraclePrice("TOK", "USD", price, base_decimals=bd, quote_decimals=qd)
    exact = amount * price * Fraction(10**qd, 10**bd)
    down = convert(amount, p, rounding="down")
    up = convert(amount, p, rounding="up")
    even = convert(amount, p, rounding="half-even")
    assert down <= exact <= up
    assert up - down == (0 if exact.denominator == 1 else 1)
    assert abs(even - exact) <= Fraction(1, 2)
    # a round trip rounding down never gains
    assert convert(down, p.inverse(), rounding="down") <= amount


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"price": 7.25}, "price"),
        ({"price": True}, "price"),
        ({"price": 0}, "price"),
        ({"price": "-1"}, "price"),
        ({"price": "abc"}, "price"),
        ({"price": Decimal("NaN")}, "price"),
        ({"quote": "RENDER"}, "quote"),
        ({"base": ""}, "base"),
        ({"base": " X"}, "base"),
        ({"base_decimals": -1}, "base_decimals"),
        ({"quote_decimals": 37}, "quote_decimals"),
        ({"quote_decimals": 6.0}, "quote_decimals"),
    ],
)
def test_oracle_price_validation(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"base": "RENDER", "quote": "USD", "price": "5"} | kwargs
    with pytest.raises(InvalidTokenomicsError) as e:
        OraclePrice(**args)  # type: ignore[arg-type]
    assert e.value.field == field
    assert isinstance(e.value, InvalidSettlementError)


def test_convert_refuses_bad_amounts() -> None:
    for bad in (-1, 1.0, True, "3"):
        with pytest.raises(InvalidTokenomicsError) as e:
            convert(bad, RENDER_USD, rounding="down")  # type: ignore[arg-type]
        assert e.value.field == "amount"
    with pytest.raises(InvalidTokenomicsError, match="OraclePrice"):
        convert(1, Fraction(5), rounding="down")  # type: ignore[arg-type]


# -- Render: burn the job's value after a 5% fee ----------------------------------------------
def test_render_burn_golden_five_percent_fee() -> None:
    # a 100 USD job at 5 USD per RENDER: 20 RENDER paid, 1 RENDER (5%) kept, 19 burned
    b = render_burn(100 * 10**6, RENDER_USD)
    assert (b.paid, b.fee, b.burned) == (20 * 10**8, 1 * 10**8, 19 * 10**8)
    assert b.token == "RENDER"
    # at 7.25 USD the job is 13.793103448... RENDER: paid rounds up, the fee down
    b = render_burn(100 * 10**6, OraclePrice("RENDER", "USD", "7.25", base_decimals=8,
                                             quote_decimals=6))
    assert (b.paid, b.fee, b.burned) == (1_379_310_345, 68_965_517, 1_310_344_828)
    # the rate may be given as a percentage, a Fraction or a Decimal
    for rate in ("5%", Fraction(1, 20), Decimal("0.05"), "500bps"):
        assert render_burn(100 * 10**6, RENDER_USD, fee_rate=rate).fee == 10**8


@given(job=st.integers(0, 10**15), price=prices, fee=st.fractions(0, 1, max_denominator=1000))
def test_render_burn_rounds_for_the_protocol(job: int, price: Fraction, fee: Fraction) -> None:
    p = OraclePrice("RENDER", "USD", price, base_decimals=8, quote_decimals=6)
    b = render_burn(job, p, fee_rate=fee)
    assert p.value(b.paid) >= job  # the protocol is never short
    assert b.paid == 0 or p.value(b.paid - 1) < job  # ... and takes the least that covers it
    assert b.fee + b.burned == b.paid
    assert b.fee == b.paid * fee.numerator // fee.denominator


def test_render_burn_validation() -> None:
    for rate in ("1.5", -1, 0.05):
        with pytest.raises(InvalidTokenomicsError) as e:
            render_burn(1, RENDER_USD, fee_rate=rate)  # type: ignore[arg-type]
        assert e.value.field == "fee_rate"
    with pytest.raises(InvalidTokenomicsError) as e:
        render_burn(-5, RENDER_USD)
    assert e.value.field == "job_price"


def test_render_burn_transaction_moves_supply_by_the_burn() -> None:
    ledger = Ledger()
    tenant = Account(AccountKind.TENANT, "studio")
    ledger.post(mint_transaction("buy", tenant, "RENDER", 30 * 10**8))
    b = render_burn(100 * 10**6, RENDER_USD)
    ledger.post(render_burn_transaction("job-1", b, tenant=tenant))
    assert ledger.balance(tenant, "RENDER") == 10 * 10**8
    assert ledger.balance(Account(AccountKind.PROTOCOL_FEES), "RENDER") == 10**8
    assert ledger.burned("RENDER") == 19 * 10**8
    assert ledger.supply("RENDER") == 30 * 10**8 - 19 * 10**8
    # the fee may go to the treasury instead; a tenant short of tokens is refused whole
    treasury = Account(AccountKind.TREASURY)
    tx = render_burn_transaction("job-2", b, tenant=tenant, fee_account=treasury)
    with pytest.raises(InsufficientFundsError):
        ledger.post(tx)
    assert ledger.supply("RENDER") == 11 * 10**8
    ledger.post(mint_transaction("buy-2", tenant, "RENDER", 10 * 10**8))
    ledger.post(tx)
    assert ledger.balance(treasury, "RENDER") == 10**8


# -- Akash: burn-mint equilibrium ----------------------------------------------------------------
def test_bme_mint_spread_golden() -> None:
    # 1000 AKT at 2 USD: 2000 ACT less 25 bps = 1995 ACT
    state, mint = BmeState().mint_credit(1000 * AKT, akt_price(2))
    assert (mint.tokens, mint.credit, mint.status) == (1000 * AKT, 1995 * AKT, "healthy")
    assert (state.vault, state.outstanding) == (1000 * AKT, 1995 * AKT)
    # burning credit back costs 0 bps: 1995 ACT at 2.5 USD is 798 AKT, all re-minted
    state2, red = state.redeem_credit(1995 * AKT, akt_price("2.5"))
    assert (red.tokens, red.reminted, red.new_issuance) == (798 * AKT, 798 * AKT, 0)
    assert (state2.vault, state2.outstanding) == (202 * AKT, 0)
    # at 1 USD the vault is short: 1000 AKT re-minted, 995 AKT new issuance
    _, red = state.redeem_credit(1995 * AKT, akt_price(1))
    assert (red.tokens, red.reminted, red.new_issuance) == (1995 * AKT, 1000 * AKT, 995 * AKT)


@pytest.mark.parametrize(
    ("price", "status"),
    [("0.46", "healthy"), ("0.44", "warning"), ("0.42", "warning"), ("0.41", "halted")],
)
def test_breaker_testnet_example(price: str, status: str) -> None:
    # the Akash testnet plan: 205 AKT in the vault backing 95 ACT; halt below 0.4170 USD
    state = BmeState(vault=205 * AKT, outstanding=95 * AKT)
    p = akt_price(price)
    assert state.collateral_ratio(p) == Fraction(205) * Fraction(price) / 95
    assert state.status(p) == status
    if status == "halted":
        with pytest.raises(MintingHaltedError) as e:
            state.mint_credit(10 * AKT, p)
        assert e.value.threshold == Fraction(9, 10)
        assert e.value.ratio == state.collateral_ratio(p)
    else:
        assert state.mint_credit(10 * AKT, p)[1].status == status
    # burning credit into the token is always allowed
    assert state.redeem_credit(10 * AKT, p)[1].status == status


def test_breaker_thresholds_are_inclusive_below() -> None:
    params = BmeParams()
    assert params.status_of(None) is BreakerStatus.HEALTHY
    assert params.status_of(Fraction(95, 100)) is BreakerStatus.HEALTHY
    assert params.status_of(Fraction(95, 100) - Fraction(1, 10**9)) is BreakerStatus.WARNING
    assert params.status_of(Fraction(90, 100)) is BreakerStatus.WARNING
    assert params.status_of(Fraction(90, 100) - Fraction(1, 10**9)) is BreakerStatus.HALTED


@given(credit=st.integers(1, 10**15), price=prices, spread=st.integers(0, 9999))
def test_tokens_for_credit_is_the_least_burn(credit: int, price: Fraction, spread: int) -> None:
    params = BmeParams(mint_spread_bps=spread)
    p = akt_price(price)
    t = tokens_for_credit(credit, p, params)
    assert params.credit_for(t, p) >= credit
    assert params.credit_for(t - 1, p) < credit


@given(tokens=st.integers(1, 10**15), price=prices)
def test_bme_rounds_down_on_both_sides(tokens: int, price: Fraction) -> None:
    p = akt_price(price)
    params = BmeParams()
    credit = params.credit_for(tokens, p)
    assert credit <= p.value(tokens) * Fraction(9975, 10000) < credit + 1
    # a round trip never gains: it loses the spread and at most a unit per rounding
    assert params.tokens_for(credit, p) <= tokens


def test_bme_validation() -> None:
    state = BmeState(outstanding=10)
    with pytest.raises(InvalidTokenomicsError, match="exceeds the credit outstanding"):
        state.redeem_credit(11, akt_price(1))
    with pytest.raises(InvalidTokenomicsError, match="buys no credit") as e:
        BmeState().mint_credit(1, akt_price("0.5"))
    assert e.value.field == "tokens"
    with pytest.raises(InvalidTokenomicsError, match="AKT in ACT") as e:
        BmeState().mint_credit(10, RENDER_USD)
    assert e.value.field == "price"
    for kwargs, field in [
        ({"mint_spread_bps": 10_000}, "mint_spread_bps"),
        ({"redeem_spread_bps": -1}, "redeem_spread_bps"),
        ({"warn_ratio": "0.8"}, "warn_ratio"),
        ({"halt_ratio": 0.9}, "halt_ratio"),
        ({"credit": "AKT"}, "credit"),
    ]:
        with pytest.raises(InvalidTokenomicsError) as e:
            BmeParams(**kwargs)  # type: ignore[arg-type]
        assert e.value.field == field
    with pytest.raises(InvalidTokenomicsError):
        BmeState(vault=-1)


def test_bme_transactions_post() -> None:
    ledger = Ledger()
    tenant = Account(AccountKind.TENANT, "lab")
    provider = Account(AccountKind.PROVIDER, "gpu-farm")
    ledger.post(mint_transaction("buy", tenant, "AKT", 1000 * AKT))
    state, mint = BmeState().mint_credit(1000 * AKT, akt_price(2))
    ledger.post(bme_mint_transaction("mint-1", mint, account=tenant))
    assert ledger.balance(tenant, "AKT") == 0
    assert ledger.balance(tenant, "ACT") == 1995 * AKT
    assert (ledger.supply("AKT"), ledger.supply("ACT")) == (0, 1995 * AKT)
    ledger.post(transfer("lease", tenant, provider, "ACT", 1995 * AKT))
    state, red = state.redeem_credit(1995 * AKT, akt_price(1))
    ledger.post(bme_redeem_transaction("redeem-1", red, account=provider))
    assert ledger.balance(provider, "AKT") == 1995 * AKT
    assert (ledger.supply("AKT"), ledger.supply("ACT")) == (1995 * AKT, 0)
    assert (ledger.minted("AKT"), ledger.burned("AKT")) == (2995 * AKT, 1000 * AKT)
    assert [tx.meta.kind for tx in ledger.journal] == [
        TxKind.MINT, TxKind.BME_MINT, TxKind.TRANSFER, TxKind.BME_REDEEM]
    burn = burn_transaction("b", tenant, "ACT", 1)
    render = render_burn_transaction("r", render_burn(10**6, akt_price(2)), tenant=tenant)
    assert (burn.meta.kind, render.meta.kind) == (TxKind.BURN, TxKind.BURN)


# -- emission schedules -----------------------------------------------------------------------
def test_render_year_one_golden() -> None:
    """Render's year-1 emission, 9,126,804 tokens, to the token in any epoch length."""
    monthly = DecayingEmission(9_126_804, 0, 12)
    assert monthly.schedule(12).tolist() == [760_567] * 12
    weekly = DecayingEmission(9_126_804, 0, 52)
    s = weekly.schedule(52)
    assert int(s.sum()) == weekly.cumulative(52) == 9_126_804
    # 9,126,804 = 52 x 175,515 + 24: 24 weeks get one token more, spread over the year
    assert sorted(set(s.tolist())) == [175_515, 175_516]
    assert int((s == 175_516).sum()) == 24
    assert s[:3].tolist() == [175_515, 175_515, 175_516]  # floor(175,515.46 k) steps
    daily = YearlyEmission([9_126_804], 365)
    assert int(daily.schedule(400).sum()) == 9_126_804
    assert daily.schedule(400)[365:].tolist() == [0] * 35


def test_io_net_capped_decaying_schedule() -> None:
    """io.net: 40M (8% of 500M) in year 1, falling 12% a year, hourly, supply capped at 800M."""
    inner = DecayingEmission(40_000_000, Fraction(12, 100), 8760, years=20)
    assert inner.cumulative(8760) == 40_000_000
    assert inner.cumulative(2 * 8760) == 40_000_000 + 35_200_000
    # 20 uncapped years would emit floor(40M (1 - 0.88**20) / 0.12) = 307,479,068
    assert inner.cumulative(20 * 8760) == 307_479_068
    assert inner.emission(20 * 8760) == 0
    capped = CappedSupply(800_000_000, inner, initial_supply=500_000_000)
    s = capped.schedule(21 * 8760)
    assert int(s.sum()) == capped.budget == 300_000_000
    last = int(np.flatnonzero(s)[-1])
    assert divmod(last, 8760) == (18, 115)  # the cap binds in year 19, hour 116
    assert s[last] < s[last - 1]  # the last epoch gets just the remainder
    assert s[last] == 300_000_000 - inner.cumulative(last)


def exact_cumulative(a: int, decay: Fraction, per: int, k: int) -> Fraction:
    """Independent reference: add each epoch's exact rate one by one."""
    total, rate = Fraction(0), Fraction(a, per)
    for epoch in range(k):
        if epoch and epoch % per == 0:
            rate *= 1 - decay
        total += rate
    return total


@given(
    a=st.integers(0, 10**12),
    decay=st.fractions(0, Fraction(99, 100), max_denominator=100),
    per=st.integers(1, 13),
    n=st.integers(0, 60),
    start=st.integers(0, 30),
)
def test_decaying_emission_matches_exact_floor(
    a: int, decay: Fraction, per: int, n: int, start: int
) -> None:
    sched = DecayingEmission(a, decay, per)
    cum = sched.cumulative_schedule(start + n)
    for k in range(start + n + 1):  # no drift: the cumulative total is the exact total, floored
        assert cum[k] == int(exact_cumulative(a, decay, per, k))
    s = sched.schedule(n, start=start)
    assert s.dtype == np.int64
    assert s.tolist() == np.diff(cum[start:]).tolist()
    assert int(s.sum()) == sched.cumulative(start + n) - sched.cumulative(start)
    # within a year every epoch gets the floor or the ceiling of the year's rate
    for k in range(start, start + n):
        rate = Fraction(a, per) * (1 - decay) ** (k // per)
        assert int(rate) <= s[k - start] <= -(-rate // 1)
        assert sched.emission(k) == s[k - start]


@given(
    per_epoch=st.integers(0, 10**9),
    cap=st.integers(0, 10**11),
    initial=st.integers(0, 10**11),
    n=st.integers(0, 300),
)
def test_capped_supply_never_exceeds_the_cap(
    per_epoch: int, cap: int, initial: int, n: int
) -> None:
    initial = min(initial, cap)
    capped = CappedSupply(cap, FixedEmission(per_epoch), initial_supply=initial)
    s = capped.schedule(n)
    assert (s >= 0).all()
    assert initial + int(s.sum()) == min(cap, initial + per_epoch * n)
    assert (np.cumsum(s) + initial <= cap).all()


def test_schedule_overflow_and_validation() -> None:
    with pytest.raises(AuctionOverflowError):
        FixedEmission(2**63).schedule(2)
    with pytest.raises(AuctionOverflowError):
        FixedEmission(2**62).cumulative_schedule(3)
    assert FixedEmission(2**62).cumulative(3) == 3 * 2**62  # scalars are exact Python ints
    # a level or ended schedule has no horizon; a decaying one is exact for 1000 years
    assert DecayingEmission(10, 0, 1).emission(10**6) == 10
    assert DecayingEmission(10, "0.01", 1, years=5).emission(10**6) == 0
    assert DecayingEmission(10**9, "0.01", 1).cumulative(1000) == 99_995_682_875
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: DecayingEmission(10, 1, 12), "decay"),
        (lambda: DecayingEmission(10, 0.1, 12), "decay"),
        (lambda: DecayingEmission(10, 0, 0), "epochs_per_year"),
        (lambda: DecayingEmission(-1, 0, 12), "initial_per_year"),
        (lambda: FixedEmission(1.5), "per_epoch"),  # type: ignore[arg-type]
        (lambda: YearlyEmission([1, -2], 12), "per_year[1]"),
        (lambda: CappedSupply(10, FixedEmission(1), initial_supply=11), "initial_supply"),
        (lambda: CappedSupply(10, 3), "inner"),  # type: ignore[arg-type]
        (lambda: FixedEmission(1).schedule(-1), "n_epochs"),
        (lambda: FixedEmission(1).schedule(2, start=2**63), "start"),
        (lambda: FixedEmission(1).emission(-1), "epoch"),
        (lambda: DecayingEmission(10, "0.01", 1).emission(1001), "epoch"),
        (lambda: DecayingEmission(10, 0, 1, years=1001), "years"),
    ]
    for make, field in cases:
        with pytest.raises(InvalidTokenomicsError) as e:
            make()
        assert e.value.field == field


# -- demand-responsive issuance -----------------------------------------------------------------
CONTROLLER = DemandController(
    target_revenue=1_000_000, gain=Fraction(1, 2), min_issuance=100, max_issuance=10_000
)


def test_controller_golden() -> None:
    # revenue at target holds; 50% below raises 25%; 2x target lowers 50%; bounds clamp
    assert CONTROLLER.run(1000, [1_000_000, 500_000, 2_000_000, 0, 10**9]).tolist() == [
        1000, 1000, 1250, 625, 937, 100
    ]
    assert CONTROLLER.next_issuance(9000, 0) == 10_000
    assert CONTROLLER.next_issuance(1001, 1_100_000) == 950  # 950.95 rounds down


@given(
    issuance=st.integers(0, 10**6),
    r1=st.integers(0, 10**7),
    r2=st.integers(0, 10**7),
    gain=st.fractions(0, 5, max_denominator=100),
    lo=st.integers(0, 1000),
    span=st.integers(0, 10**6),
)
def test_controller_is_monotone_and_bounded(
    issuance: int, r1: int, r2: int, gain: Fraction, lo: int, span: int
) -> None:
    c = DemandController(target_revenue=1_000_000, gain=gain, min_issuance=lo,
                         max_issuance=lo + span)
    lo_r, hi_r = sorted((r1, r2))
    a, b = c.next_issuance(issuance, lo_r), c.next_issuance(issuance, hi_r)
    assert b <= a  # higher revenue never raises issuance
    assert lo <= b
    assert a <= lo + span
    raw = issuance * (1 + gain * Fraction(1_000_000 - lo_r, 1_000_000))
    assert a == min(max(int(raw // 1), lo), lo + span)


def test_controller_validation() -> None:
    base: dict[str, object] = {"target_revenue": 1, "gain": 1, "min_issuance": 0,
                               "max_issuance": 1}
    changes: list[tuple[dict[str, object], str]] = [
        ({"target_revenue": 0}, "target_revenue"),
        ({"gain": -1}, "gain"),
        ({"gain": 0.5}, "gain"),
        ({"min_issuance": 2}, "max_issuance"),
    ]
    for change, field in changes:
        with pytest.raises(InvalidTokenomicsError) as e:
            DemandController(**(base | change))  # type: ignore[arg-type]
        assert e.value.field == field
    with pytest.raises(InvalidTokenomicsError) as e:
        CONTROLLER.run(10, [1])
    assert e.value.field == "initial"
    with pytest.raises(InvalidTokenomicsError) as e:
        CONTROLLER.run(1000, [1.5])
    assert e.value.field == "revenue"


# -- supply identity --------------------------------------------------------------------------
TENANT = Account(AccountKind.TENANT, "t")
PROVIDERS = [Account(AccountKind.PROVIDER, f"p{i}") for i in range(3)]
POOL = Account(AccountKind.EMISSIONS_POOL)
OPS = ("emit", "payout", "deposit", "render", "bme_mint", "bme_redeem", "lease", "burn")


EVERY_OP = [
    ("deposit", 10**10 + 1, "2"),  # odd: AKT
    ("bme_mint", 5 * 10**9, "2"),
    ("lease", 10**8, "2"),
    ("bme_redeem", 10**7, "7"),
    ("emit", 0, "2"),
    ("payout", 0x030201, "2"),
    ("deposit", 10**12, "2"),  # even: RENDER
    ("render", 10**9, "0.3"),
    ("burn", 10**6, "2"),
    ("burn", 10**13, "2"),  # more than the tenant holds: refused
]


@example(steps=EVERY_OP)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(OPS), st.integers(0, 10**12), st.sampled_from(["0.3", "2", "7"])),
        max_size=25,
    )
)
def test_supply_identity_over_random_sequences(steps: list[tuple[str, int, str]]) -> None:
    """S(t+1) = S(t) + minted(t) - burned(t) in every currency, exactly, after every step;
    a refused transaction changes nothing."""
    ledger = Ledger()
    state = BmeState()
    emission = DecayingEmission(9_126_804 * 10**8, Fraction(35, 100), 52)
    currencies = ("RENDER", "AKT", "ACT")
    for t, (op, x, price) in enumerate(steps):
        tid = f"{t}-{op}"
        minted = dict.fromkeys(currencies, 0)
        burned = dict.fromkeys(currencies, 0)
        akt = akt_price(price)
        tx = None
        if op == "emit":
            minted["RENDER"] = emission.emission(t)
            tx = mint_transaction(tid, POOL, "RENDER", minted["RENDER"])
        elif op == "payout":
            pool = ledger.balance(POOL, "RENDER")
            weights = {p.owner: (x >> (8 * i)) % 7 for i, p in enumerate(PROVIDERS)}
            if pool and any(weights.values()):
                tx = reward_transaction(tid, split_rewards(pool, weights), currency="RENDER")
        elif op == "deposit":
            cur = currencies[x % 2]
            minted[cur] = x
            tx = mint_transaction(tid, TENANT, cur, x)
        elif op == "render":
            b = render_burn(x % 10**10, OraclePrice("RENDER", "USD", price, base_decimals=8,
                                                    quote_decimals=6))
            burned["RENDER"] = b.burned
            tx = render_burn_transaction(tid, b, tenant=TENANT)
        elif op == "bme_mint":
            try:
                new_state, mint = state.mint_credit(x % 10**10 + AKT, akt)
            except MintingHaltedError:
                continue
            burned["AKT"], minted["ACT"] = mint.tokens, mint.credit
            tx = bme_mint_transaction(tid, mint, account=TENANT)
        elif op == "bme_redeem":
            have = ledger.balance(PROVIDERS[0], "ACT")
            if have == 0:
                continue
            try:
                new_state, red = state.redeem_credit(x % have + 1, akt)
            except InvalidTokenomicsError:  # too little credit to buy one token unit
                continue
            burned["ACT"], minted["AKT"] = red.credit, red.tokens
            tx = bme_redeem_transaction(tid, red, account=PROVIDERS[0])
        elif op == "lease":
            tx = transfer(tid, TENANT, PROVIDERS[0], "ACT", x % 10**9)
        else:
            burned["RENDER"] = x
            tx = burn_transaction(tid, TENANT, "RENDER", x)
        if tx is None:
            continue
        before = {c: ledger.supply(c) for c in currencies}
        try:
            ledger.post(tx)
        except InsufficientFundsError:
            assert {c: ledger.supply(c) for c in currencies} == before
            continue
        if op in ("bme_mint", "bme_redeem"):
            state = new_state
        for c in currencies:
            assert ledger.supply(c) == before[c] + minted[c] - burned[c]
    for c in currencies:
        assert ledger.supply(c) == ledger.minted(c) - ledger.burned(c)
    # the BME state agrees with the ledger: credit outstanding is the credit supply
    assert state.outstanding == ledger.supply("ACT")
