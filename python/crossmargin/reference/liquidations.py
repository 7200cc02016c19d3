"""The pure-Python reference cascade: the rules of docs/MODEL.md, "Liquidation
cascades", written out as plain loops.

It is the oracle of the differential tests (``tests/test_cascade_differential.py``) for
:meth:`crossmargin.Engine.cascade`. Inputs and outputs are the engine's: a universe, a book
and a :class:`~crossmargin.cascade.CascadeConfig` in; a
:class:`~crossmargin.cascade.CascadeResult` out (the same event and round tables, final book,
totals and ledger), with the ledger's integer minor units as Python ints besides.

What it reuses, and what it does not:

- the margin arithmetic of one account or one position is ``crossmargin.reference``'s
  (``evaluate_account``, ``position_numbers``), docs/MODEL.md "Standard cross margin";
- a shock or path step → price vectors is the reference's own
  (:func:`crossmargin.reference.prices.moved_prices`); the insurance fund → units per
  asset is ``crossmargin.cascade``'s input plumbing (``insurance_by_asset``);
- every rule of the cascade itself (selection, priority, netting, liquidity, fills, fees,
  isolated margins, bankruptcy, deficit attribution, ADL and socialised loss, displacement,
  path steps, max_rounds) is re-implemented below, each with the rule it follows quoted.

Where the documented rules leave a detail open (an order of operations, a rounding), this
module does what the Rust core does and says so: floating-point operations are written in
the core's order so that the two agree to rounding, and to the bit where it matters (every
amount that becomes minor units).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from crossmargin import _core
from crossmargin.book import POSITION_SIDES, Book
from crossmargin.cascade.model import (
    EVENT_KINDS,
    CascadeConfig,
    CascadeResult,
    DepthCurve,
    Liquidity,
    NoImpact,
    SqrtImpact,
    insurance_by_asset,
)
from crossmargin.exceptions import BookError, ConfigError, PriceError
from crossmargin.reference import margin as ref
from crossmargin.reference.portfolio import option_numbers
from crossmargin.reference.prices import moved_prices, underlying_spots
from crossmargin.reference.solvency import allocate
from crossmargin.table import Table
from crossmargin.universe import Universe

# ---- money: integer minor units ----------------------------------------------------------
# "Balances and isolated margins are held in integer minor units (1e-8 of the asset, x·10⁸
# rounded half to even ...)" (docs/MODEL.md "Ledger and conservation"): the core's
# money::SCALE, as a float.
SCALE = float(_core.SCALE)

# An isolated position with its margin used up stays isolated: the margin kernel reads its
# margin as the smallest positive double (the core's `State::iso_mirror`).
_STILL_ISOLATED = sys.float_info.min


def to_minor(amount: float) -> int:
    """``amount`` in minor units: x·10⁸ rounded half to even (crossmargin.money's rule, as
    Python's ``round``); like the core's ``as i128`` NaN → 0 and ±inf saturates."""
    x = amount * SCALE
    if math.isnan(x):
        return 0
    if math.isinf(x):
        return (2**127 - 1) if x > 0 else -(2**127)
    return round(x)


def to_units(minor: int) -> float:
    """Minor units → asset units (``minor as f64 / 1e8``)."""
    return float(minor) / SCALE


def usd_to_minor(usd: float, price: float) -> int:
    """A USD amount in minor units of an asset priced at ``price`` (0 when unpriced)."""
    return to_minor(usd / price) if price > 0.0 else 0


def signum(x: float) -> float:
    """Rust's ``f64::signum``: ±1 by the sign bit (so ``signum(0.0) == 1.0``)."""
    return math.copysign(1.0, x)


# ---- the book a cascade works on -----------------------------------------------------------
@dataclass
class _Position:
    market: int
    qty: float
    entry: float
    isolated: bool
    iso_minor: int  # the isolated margin, minor units of the settle asset
    side: str = "both"  # "a hedge leg is liquidated as its own position"


@dataclass
class _Account:
    id: int
    # universe asset index → minor units, in ascending asset index (the core's row order)
    balances: dict[int, int]
    positions: list[_Position]  # in the canonical order: ascending universe index


@dataclass
class _Pools:
    """The holders outside the accounts, per asset (docs/MODEL.md "Ledger and conservation")."""

    insurance: list[int]
    external: list[int]


@dataclass
class _Prices:
    assets: list[float]
    marks: list[float]
    spots: dict[str, float] = field(default_factory=dict)  # underlying prices (options)

    @classmethod
    def of(cls, universe: Universe, assets: list[float], marks: list[float]) -> _Prices:
        return cls(assets, marks, underlying_spots(universe, assets, marks))


def _settle(universe: Universe, market: int) -> int:
    return universe.asset_index[universe.markets[market].settle]


def _load(universe: Universe, book: Book) -> list[_Account]:
    """The book as the cascade holds it: accounts in ascending id; duplicate balance rows
    merged into their exact sum (math.fsum, docs/MODEL.md "Canonical order") before rounding
    to minor units; a zero balance of every settle asset the account trades in, so realised
    P&L always has somewhere to go."""
    asset_of_code, market_of_code = (x.tolist() for x in book.remaps(universe))
    parts: dict[int, dict[int, list[float]]] = {}  # account → book code → its rows' qty
    b = book.balances
    rows = zip(b["account"].tolist(), b["asset"].codes.tolist(), b["qty"].tolist(), strict=True)
    for account, code, qty in rows:
        parts.setdefault(account, {}).setdefault(code, []).append(qty)
    by_code = {a: {c: math.fsum(q) for c, q in codes.items()} for a, codes in parts.items()}

    positions: dict[int, list[tuple[int, int, _Position]]] = {}
    p = book.positions
    for r, (account, code, qty, entry, iso, side) in enumerate(
        zip(
            p["account"].tolist(),
            p["market"].codes.tolist(),
            p["qty"].tolist(),
            p["entry_price"].tolist(),
            p["isolated_margin"].tolist(),
            p["side"].tolist(),
            strict=True,
        )
    ):
        # "0 or NaN = cross; > 0 = isolated with that margin" (docs/MODEL.md "Book").
        isolated = iso > 0.0
        pos = _Position(
            market_of_code[code],
            qty,
            entry,
            isolated,
            to_minor(iso) if isolated else 0,
            POSITION_SIDES[int(side)],
        )
        # "each account's rows in ascending universe index" (docs/MODEL.md)
        positions.setdefault(account, []).append((market_of_code[code], r, pos))

    accounts = []
    for account in book.accounts.tolist():
        minor: dict[int, int] = {}
        for code, qty in by_code.get(account, {}).items():
            i = asset_of_code[code]
            minor[i] = minor.get(i, 0) + to_minor(qty)
        rows_of = sorted(positions.get(account, []), key=lambda t: (t[0], t[1]))
        for _, _, pos in rows_of:
            minor.setdefault(_settle(universe, pos.market), 0)
        accounts.append(
            _Account(account, dict(sorted(minor.items())), [pos for _, _, pos in rows_of])
        )
    return accounts


def _totals(universe: Universe, accounts: list[_Account], pools: _Pools) -> list[int]:
    """Σ of every holder per asset: balances, isolated margins, insurance fund, external."""
    t = [0] * len(universe.assets)
    for a in accounts:
        for i, m in a.balances.items():
            t[i] += m
        for p in a.positions:
            t[_settle(universe, p.market)] += p.iso_minor
    for i in range(len(t)):
        t[i] += pools.insurance[i] + pools.external[i]
    return t


# "The cascade checks that its holdings and positions fit the i128 ledger before it starts"
# (docs/MODEL.md "Ledger and conservation"): Python ints cannot overflow, the core's can.
MAX_AMOUNT: float = _core.MAX_AMOUNT  # units of an asset (crossmargin_core::limits)


def _check_ledger_range(
    universe: Universe,
    accounts: list[_Account],
    fund: list[float],
    pools: _Pools,
    step_marks: list[list[float]],
) -> None:
    for i, x in enumerate(fund):
        if abs(x) > MAX_AMOUNT:
            f = f"cascade.insurance_fund[{universe.assets[i].symbol}]"
            raise ConfigError(f"{f}: {x} is beyond ±1e28 units (the ledger's range)", field=f)
    held = [abs(pools.insurance[i]) + abs(pools.external[i]) for i in range(len(fund))]
    for a in accounts:
        for i, minor in a.balances.items():
            held[i] += abs(minor)
        for p in a.positions:
            held[_settle(universe, p.market)] += abs(p.iso_minor)
    for i, total in enumerate(held):
        if total > _core.MAX_TOTAL_MINOR:
            f = f"cascade.holdings[{universe.assets[i].symbol}]"
            raise PriceError(
                f"{f}: Σ |balances + isolated margins + insurance fund| exceeds the ledger's "
                "range (1e28 units)",
                field=f,
            )
    for a in accounts:
        for p in a.positions:
            m = universe.markets[p.market]
            size = abs(p.qty * m.contract_size)
            inverse = m.inverse and not m.is_option
            prices = [marks[p.market] for marks in step_marks] + ([p.entry] if p.entry > 0 else [])
            worst = max(size / x if inverse else size * x for x in prices)
            if not worst <= MAX_AMOUNT / 100:
                raise BookError(
                    f"positions: account {a.id} in {m.symbol}: a position worth {worst:e} settle "
                    "units is beyond what the cascade's ledger holds (1e26)",
                    table="positions",
                    column="qty",
                )


# ---- margin, through crossmargin.reference ---------------------------------------------------
def _iso_margin(p: _Position) -> float:
    """The isolated margin as the margin kernel reads it (> 0 = isolated)."""
    return max(to_units(p.iso_minor), _STILL_ISOLATED) if p.isolated else 0.0


def _evaluate(universe: Universe, acct: _Account, prices: _Prices) -> ref.AccountNumbers:
    view = ref.AccountRows(
        balances={i: to_units(m) for i, m in acct.balances.items()},
        positions=[(p.market, p.qty, p.entry, _iso_margin(p)) for p in acct.positions],
    )
    return ref.evaluate_account(universe, view, prices.assets, prices.marks, prices.spots)


def _position(universe: Universe, p: _Position, prices: _Prices) -> tuple[float, float]:
    """(the equity it adds, maintenance requirement) of one position, USD: uPnL for a perp
    or future, its value for an option."""
    market = universe.markets[p.market]
    settle_price = prices.assets[_settle(universe, p.market)]
    mark = prices.marks[p.market]
    if market.is_option:
        value, _upnl, _im, mm = option_numbers(
            market, p.qty, p.entry, mark, settle_price, prices.spots[market.underlying]
        )
        return value, mm
    upnl, _im, mm = ref.position_numbers(market, p.qty, p.entry, mark, settle_price)
    return upnl, mm


def _cross_equity(
    universe: Universe, acct: _Account, prices: _Prices
) -> tuple[float, ref.AccountNumbers]:
    """ "Its cross equity (equity minus its isolated positions' margin + uPnL)"."""
    n = _evaluate(universe, acct, prices)
    isolated = 0.0
    for p in acct.positions:
        if p.isolated:
            upnl, _ = _position(universe, p, prices)
            isolated += _iso_margin(p) * prices.assets[_settle(universe, p.market)] + upnl
    equity = n.equity - isolated
    # "within 1e-10 relative of zero it counts as zero, the subtraction's rounding" (an
    # emptied wallet beside an isolated position leaves residue of either sign).
    if abs(equity) <= 1e-10 * (abs(n.equity) + abs(isolated)):
        equity = 0.0
    return equity, n


def _ratio(requirement: float, equity: float) -> float:
    """Requirement over the equity securing it; +inf when that equity is ≤ 0."""
    if requirement <= 0.0:
        return 0.0
    if equity <= 0.0:
        return math.inf
    return requirement / equity


# ---- (2)–(4): who needs action, what is closed, in which order -------------------------------
@dataclass
class _Order:
    pos: int  # index into the account's positions
    fraction: float
    kind: str  # "liquidation" | "isolated"


@dataclass
class _Candidate:
    account: int  # index into the accounts list
    risk: float
    orders: list[_Order] = field(default_factory=list)


@dataclass(frozen=True)
class _Slicing:
    fraction: float  # partial_fraction
    target_ratio: float  # target_margin_ratio, 0 = off
    min_notional: float  # USD


def _slice(rule: _Slicing, notional: float, mm: float, requirement: float, equity: float) -> float:
    """ "A slice is partial_fraction of the position, or more when target_margin_ratio is set:
    at least f with requirement − f·(the position's requirement) ≤ target × equity at the
    round's marks; and the whole position when its notional, or what the slice would leave
    of it, is below min_notional USD"."""
    f = rule.fraction
    if rule.target_ratio > 0.0 and mm > 0.0:
        f = max(f, (requirement - rule.target_ratio * equity) / mm)
    if notional < rule.min_notional or notional * (1.0 - f) < rule.min_notional:
        f = 1.0
    return min(max(f, rule.fraction), 1.0)


def _select(
    universe: Universe, accounts: list[_Account], a: int, prices: _Prices, rule: _Slicing
) -> _Candidate | None:
    acct = accounts[a]
    cross_eq, n = _cross_equity(universe, acct, prices)
    # (2) "An account needs action when its cross pool is below maintenance, an isolated
    # position is below its own maintenance, or its cross equity ... is negative."
    liquidatable = n.adj_equity_maint < n.mm or n.isolated_liquidatable
    if not liquidatable and cross_eq >= 0.0:
        return None
    orders: list[_Order] = []
    risk = 0.0
    largest: tuple[float, int, float] | None = None  # (its mm, position, notional USD)
    open_cross: list[int] = []
    for j, p in enumerate(acct.positions):
        if p.qty == 0.0:
            continue
        upnl, mm = _position(universe, p, prices)
        if p.isolated:
            # (3) "every isolated position below maintenance closes a slice of itself, or all
            # of itself when its own equity is ≤ 0"
            equity = _iso_margin(p) * prices.assets[_settle(universe, p.market)] + upnl
            if equity < mm:
                # the position is its own pool: requirement = its mm, against its own equity
                notional = _notional_usd(universe, p, prices)
                fraction = 1.0 if equity <= 0.0 else _slice(rule, notional, mm, mm, equity)
                orders.append(_Order(j, fraction, "isolated"))
                risk = max(risk, _ratio(mm, equity))
        else:
            open_cross.append(j)
            # "the position with the largest maintenance requirement (ties: lowest row)"
            if largest is None or mm > largest[0]:
                largest = (mm, j, _notional_usd(universe, p, prices))
    adj, mm = n.adj_equity_maint, n.mm
    # (3) "... or every cross position when adjusted maintenance equity or cross equity is ≤ 0"
    gone = adj <= 0.0 or cross_eq <= 0.0
    if adj < mm or cross_eq < 0.0:
        # (4) priority: "the highest ratio of maintenance requirement to the equity securing
        # it (+inf when that equity is ≤ 0)" over the pool and every isolated position.
        risk = max(risk, math.inf if gone else _ratio(mm, adj))
        if gone:
            orders.extend(_Order(j, 1.0, "liquidation") for j in open_cross)
        elif largest is not None:
            # the pool: requirement = the pool's mm, against its adjusted maintenance equity
            pos_mm, j, notional = largest
            orders.append(_Order(j, _slice(rule, notional, pos_mm, mm, adj), "liquidation"))
    # A pool with negative equity and nothing left to close still needs its bankruptcy settled.
    needs_closeout = cross_eq < 0.0 and not open_cross
    if not orders and not needs_closeout:
        return None
    return _Candidate(a, risk, orders)


# ---- (5): liquidity models ------------------------------------------------------------------
def _walk(points: list[tuple[float, float]], q: float) -> tuple[float, float]:
    """Walks a depth curve for ``q`` USD: (notional-weighted average distance, distance
    reached). Linear between points, a flat stretch is a gap; beyond the last point the curve
    continues with its average slope. Both capped at 99%."""
    d0 = c0 = 0.0
    area = 0.0  # ∫ distance d(notional)
    for d1, c1 in points:
        dc = c1 - c0
        if dc > 0.0:
            if q <= c1:
                d = d0 + (d1 - d0) * (q - c0) / dc
                area += 0.5 * (d0 + d) * (q - c0)
                return min(area / q, 0.99), min(d, 0.99)
            area += 0.5 * (d0 + d1) * dc
        d0, c0 = d1, c1
    slope = d0 / c0
    d = d0 + slope * (q - c0)
    area += 0.5 * (d0 + d) * (q - c0)
    return min(area / q, 0.99), min(d, 0.99)


def execute(model: Liquidity, mark: float, flow: float) -> tuple[float, float]:
    """Where a net flow of ``flow`` USD (> 0 buys, < 0 sells) fills: (price, the mark's new
    displacement, relative)."""
    side = signum(flow)
    q = abs(flow)
    if q == 0.0 or isinstance(model, NoImpact):
        return mark, 0.0
    if isinstance(model, SqrtImpact):
        # I = Y·σ·sqrt(Q/V), capped below 100%; a fraction `permanent` stays in the mark.
        impact = min(model.y * model.sigma * math.sqrt(q / model.daily_volume), 0.99)
        return mark * (1.0 + side * impact), side * impact * model.permanent
    if isinstance(model, DepthCurve):
        avg, reached = _walk([(float(d), float(c)) for d, c in model.points], q)
        return mark * (1.0 + side * avg), side * reached
    raise ConfigError(f"cascade.liquidity: {model!r} is not a liquidity model")


def _models(
    universe: Universe, spec: Liquidity | Mapping[str, Liquidity] | None
) -> list[Liquidity]:
    """One model per market: per symbol from a mapping, else the one given; default
    SqrtImpact()."""
    out: list[Liquidity] = []
    for m in universe.markets:
        if isinstance(spec, Mapping):
            out.append(spec.get(m.symbol, SqrtImpact()))
        else:
            out.append(spec if spec is not None else SqrtImpact())
    return out


# ---- (6): fills ------------------------------------------------------------------------------
@dataclass
class _Event:
    account: int  # index into the accounts list
    market: int  # −1: account-level (bankruptcy takeover)
    qty: float
    price: float
    notional_usd: float
    fee_usd: float
    bad_debt_usd: float
    kind: str
    side: str = ""  # the position's side; "" for an account-level event


def _release_isolated(universe: Universe, acct: _Account, p: _Position) -> None:
    """ "A fully closed isolated position hands its margin back to the wallet.\""""
    acct.balances[_settle(universe, p.market)] += p.iso_minor
    p.iso_minor = 0
    p.isolated = False


def _close(
    universe: Universe,
    accounts: list[_Account],
    pools: _Pools,
    prices: _Prices,
    fee_rate: float,
    a: int,
    order: _Order,
    price: float,
) -> list[tuple[_Event, tuple[int, float, float] | None]]:
    """ "A fill closes −x of a position of q at price p" (docs/MODEL.md "Fills and fees"); the
    events, each with the (market, side, USD) bad-debt piece it caused, if any."""
    acct = accounts[a]
    p = acct.positions[order.pos]
    q = p.qty
    if q == 0.0:
        return []
    k = p.market
    market = universe.markets[k]
    settle = _settle(universe, k)
    sp = prices.assets[settle]
    cs, entry = market.contract_size, p.entry
    full = order.fraction >= 1.0
    x = -q if full else -q * order.fraction
    # Realised P&L (settle units): linear −x·cs·(p − entry), inverse −x·cs·(1/entry − 1/p);
    # an option is sold or bought back at its premium, −x·cs·p (its entry premium is already
    # in the balances). It moves from the external counterparty to the account.
    if market.is_option:
        realized = to_minor(-x * cs * price)
    elif market.inverse:
        realized = to_minor(-x * cs * (1.0 / entry - 1.0 / price))
    else:
        realized = to_minor(-x * cs * (price - entry))
    pools.external[settle] -= realized
    p.qty = 0.0 if full else q + x
    inverse_notional = market.inverse and not market.is_option
    notional = abs(x) * cs / price if inverse_notional else abs(x) * cs * price
    # "The fee, rate × closed notional at p, goes to the insurance fund but never exceeds what
    # is left: the cross equity after the fill, or the isolated position's margin + remaining
    # uPnL."
    nominal_fee = to_minor(fee_rate * notional)
    if p.isolated:
        p.iso_minor += realized
        rest, _ = _position(universe, p, prices)  # the remaining uPnL, at the round's mark
        available = p.iso_minor + usd_to_minor(rest, sp)
        fee = min(nominal_fee, max(available, 0))
        p.iso_minor -= fee
    else:
        acct.balances[settle] += realized
        cross_eq, _ = _cross_equity(universe, acct, prices)
        fee = max(min(nominal_fee, usd_to_minor(max(cross_eq, 0.0), sp)), 0)
        acct.balances[settle] -= fee
    pools.insurance[settle] += fee
    kind = "isolated" if p.isolated else order.kind
    out: list[tuple[_Event, tuple[int, float, float] | None]] = [
        (_Event(a, k, x, price, notional * sp, to_units(fee) * sp, 0.0, kind, p.side), None)
    ]
    if p.isolated:
        if p.qty == 0.0:
            if p.iso_minor < 0:
                # "a negative margin is the fund's loss (bad debt, event `bankruptcy` in that
                # market)", tagged with the side of the closed position.
                deficit = -p.iso_minor
                pools.insurance[settle] -= deficit
                p.iso_minor = 0
                p.isolated = False
                usd = to_units(deficit) * sp
                out.append(
                    (
                        _Event(a, k, 0.0, price, 0.0, 0.0, usd, "bankruptcy", p.side),
                        (k, signum(q), usd),
                    )
                )
            else:
                _release_isolated(universe, acct, p)
        elif p.iso_minor <= 0:
            # "A slice that uses an isolated margin up closes the rest at the same price."
            rest_order = _Order(order.pos, 1.0, "isolated")
            out.extend(_close(universe, accounts, pools, prices, fee_rate, a, rest_order, price))
    return out


# ---- past the fund: ADL and socialised loss ----------------------------------------------------
@dataclass
class _Counterparty:
    account: int
    pos: int
    upnl: float
    score: float


def _notional_usd(universe: Universe, p: _Position, prices: _Prices) -> float:
    """|q|·cs·mark (linear) or |q|·cs/mark (inverse), in USD; an option's: |its value|."""
    market = universe.markets[p.market]
    if market.is_option:
        return abs(_position(universe, p, prices)[0])
    size = abs(p.qty * market.contract_size)
    mark = prices.marks[p.market]
    coin = size / mark if market.inverse else size * mark
    return coin * prices.assets[_settle(universe, p.market)]


def _counterparties(
    universe: Universe, accounts: list[_Account], prices: _Prices, k: int, side: float
) -> list[_Counterparty]:
    """Profitable positions in market ``k`` on ``side``, ranked "profit % × effective
    leverage (profit % = uPnL / entry notional, leverage = the account's total notional / its
    cross equity, ties by account id)", best first."""
    market = universe.markets[k]
    sp = prices.assets[_settle(universe, k)]
    found: list[_Counterparty] = []
    if market.is_option:
        return found  # options are not deleveraged: a premium is not a profit on a price
    for a, acct in enumerate(accounts):
        for j, p in enumerate(acct.positions):
            if p.market != k or not p.qty * side > 0.0:
                continue
            upnl, _ = _position(universe, p, prices)
            if upnl <= 0.0:
                continue
            equity, _ = _cross_equity(universe, acct, prices)
            total_notional = 0.0
            for other in acct.positions:  # every position, isolated ones included
                total_notional += _notional_usd(universe, other, prices)
            size = abs(p.qty) * market.contract_size
            entry_notional = (size / p.entry if market.inverse else size * p.entry) * sp
            leverage = total_notional / equity if equity > 0.0 else math.inf
            found.append(_Counterparty(a, j, upnl, upnl / entry_notional * leverage))
    found.sort(key=lambda c: (-c.score, accounts[c.account].id))
    return found


def _deleverage(
    universe: Universe,
    accounts: list[_Account],
    pools: _Pools,
    prices: _Prices,
    how: str,
    k: int,
    side: float,
    amount: float,
) -> list[_Event]:
    """Covers ``amount`` USD of market ``k``'s deficit from profitable positions opposite to
    ``side`` (the side of the bankrupt positions)."""
    market = universe.markets[k]
    settle = _settle(universe, k)
    sp = prices.assets[settle]
    cps = _counterparties(universe, accounts, prices, k, -side)
    out: list[_Event] = []
    if how == "adl":
        # "`adl` closes them in rank order ... at their entry price, the accrued profit of the
        # closed part going to the fund, until the share is covered"
        remaining = amount
        for cp in cps:
            if remaining <= 0.0:
                break
            take = min(remaining, cp.upnl)
            share = take / cp.upnl
            p = accounts[cp.account].positions[cp.pos]
            q = p.qty
            x = -q if share >= 1.0 else -q * share
            minor = usd_to_minor(take, sp)
            pools.external[settle] -= minor  # the profit was the external side's to pay
            pools.insurance[settle] += minor
            p.qty = 0.0 if share >= 1.0 else q + x
            if p.qty == 0.0 and p.isolated:
                _release_isolated(universe, accounts[cp.account], p)
            cs = market.contract_size
            notional = (abs(x) * cs / p.entry if market.inverse else abs(x) * cs * p.entry) * sp
            out.append(
                _Event(
                    cp.account, k, x, p.entry, notional, 0.0, to_units(minor) * sp, "adl", p.side
                )
            )
            remaining -= take
    elif how == "socialized_loss":
        # "`socialized_loss` takes the share from their settle balances pro rata to uPnL
        # (largest-remainder split in minor units, never more than each uPnL)"
        weights = [c.upnl for c in cps]
        total_upnl = 0.0
        for w in weights:
            total_upnl += w
        cover = min(amount, total_upnl)
        parts = allocate(usd_to_minor(cover, sp), weights) if cps else []
        for cp, part in zip(cps, parts, strict=True):
            if part == 0:
                continue
            accounts[cp.account].balances[settle] -= part
            pools.insurance[settle] += part
            out.append(
                _Event(
                    cp.account,
                    k,
                    0.0,
                    prices.marks[k],
                    0.0,
                    0.0,
                    to_units(part) * sp,
                    "socialized_loss",
                    accounts[cp.account].positions[cp.pos].side,
                )
            )
    return out


def _fund_usd(pools: _Pools, asset_prices: list[float]) -> float:
    total = 0.0
    for m, price in zip(pools.insurance, asset_prices, strict=True):
        total += to_units(m) * price
    return total


def _deficits(
    pieces: list[tuple[int, float, float]], deficit: float
) -> list[tuple[int, float, float]]:
    """ "the deficit is split over that round's (market, side) bad-debt attributions", pro
    rata, markets in index order (then short side before long)."""
    total = 0.0
    for piece in pieces:
        total += piece[2]
    if total <= 0.0:
        return []
    by: dict[tuple[int, float], float] = {}
    for k, side, w in pieces:
        by[(k, side)] = by[(k, side)] + w if (k, side) in by else w
    return [(k, side, deficit * w / total) for (k, side), w in sorted(by.items())]


@dataclass
class _Tally:
    notional: float = 0.0
    fees: float = 0.0
    bad_debt: float = 0.0

    def add(self, e: _Event) -> None:
        self.notional += e.notional_usd
        self.fees += e.fee_usd
        self.bad_debt += e.bad_debt_usd


# ---- the driver --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReferenceCascadeResult(CascadeResult):
    """:class:`~crossmargin.cascade.CascadeResult` plus the ledger in exact minor units."""

    totals_before: list[int] = field(default_factory=list)
    totals_after: list[int] = field(default_factory=list)
    insurance_minor: list[int] = field(default_factory=list)
    external_minor: list[int] = field(default_factory=list)


def cascade(universe: Universe, book: Book, config: CascadeConfig) -> ReferenceCascadeResult:
    """Runs ``config`` on ``book`` by the rules of docs/MODEL.md, "Liquidation
    cascades"; the same outputs as :meth:`crossmargin.Engine.cascade`."""
    u = universe
    nm = len(u.markets)
    # "A shock {key: move} is a one-step path; a path is a list of moves, each cumulative from
    # today's prices."
    steps = list(config.path) if config.path is not None else [config.shock or {}]
    if not steps:
        raise ConfigError("cascade.path: needs one or more steps", field="cascade.path")
    step_prices = []
    for moves in steps:
        step_prices.append(moved_prices(u, moves))
    models = _models(u, config.liquidity)
    # Event mode is round mode with one account a round.
    per_round = 1 if config.mode == "events" else int(config.max_liquidations_per_round)
    rule = _Slicing(
        config.partial_fraction, float(config.target_margin_ratio or 0.0), config.min_notional
    )

    accounts = _load(u, book)
    fund_units = insurance_by_asset(u, config.insurance_fund)
    pools = _Pools([to_minor(x) for x in fund_units], [0] * len(u.assets))
    _check_ledger_range(u, accounts, fund_units, pools, [m for _, m in step_prices])
    totals_before = _totals(u, accounts, pools)

    factor = [1.0] * nm  # each mark = its step's mark × factor
    step = 0
    round_no = 0
    events: list[tuple[int, int, _Event]] = []  # (round, step, event)
    rounds: list[dict[str, float | int]] = []
    round_marks: list[list[float]] = []
    bad_debt = fees = 0.0
    truncated_steps: list[int] = []
    step_rounds = 0  # rounds of the current step
    while True:
        # "Within a step the marks are step mark × (1 + d)"; "Collateral follows the step's
        # prices only".
        step_assets, step_marks = step_prices[step]
        prices = _Prices.of(u, step_assets, [step_marks[k] * factor[k] for k in range(nm)])

        # (1)–(3) evaluate everyone, select who needs action and what to close.
        candidates = []
        for a in range(len(accounts)):
            c = _select(u, accounts, a, prices, rule)
            if c is not None:
                candidates.append(c)
        # "max_rounds bounds the rounds of each step": a step cut short while someone still
        # needs action is recorded (truncated_steps) and the path goes on.
        cut = bool(candidates) and step_rounds >= config.max_rounds
        if cut:
            truncated_steps.append(step)
        if not candidates or cut:
            # "Rounds repeat until no account needs action; then the path's next step applies"
            # (the displacement carries over).
            if step + 1 < len(step_prices):
                step += 1
                step_rounds = 0
                continue
            break
        # (4) riskiest first, ties by ascending account id; keep the first N.
        candidates.sort(key=lambda c: (-c.risk, accounts[c.account].id))
        if per_round > 0:
            candidates = candidates[:per_round]

        # (5) "Each market's orders are netted into one USD flow (linear: qty·cs·mark·settle
        # price; inverse: qty·cs/mark·settle price) and filled once".
        flow = [0.0] * nm
        for c in candidates:
            for o in c.orders:
                p = accounts[c.account].positions[o.pos]
                k = p.market
                x = -p.qty * o.fraction
                sp = prices.assets[_settle(u, k)]
                cs = u.markets[k].contract_size
                # an option trades at its premium: qty·cs·mark·settle price
                inverse = u.markets[k].inverse and not u.markets[k].is_option
                flow[k] += (
                    x * cs / prices.marks[k] * sp if inverse else x * cs * prices.marks[k] * sp
                )
        fills = [execute(models[k], prices.marks[k], flow[k]) for k in range(nm)]

        # (6) fills settle in priority order; (7) bankruptcy takeover.
        tally = _Tally()  # the round's liquidated notional, fees and bad debt (settlement events)
        pieces: list[tuple[int, float, float]] = []  # (market, side, USD) of this round's bad debt

        for c in candidates:
            a = c.account
            acct = accounts[a]
            closed: list[tuple[int, float, float]] = []  # cross fills: (market, side, notional)
            for o in c.orders:
                price = fills[acct.positions[o.pos].market][0]
                for e, piece in _close(
                    u, accounts, pools, prices, config.liquidation_fee, a, o, price
                ):
                    if e.kind != "isolated" and e.market >= 0 and e.bad_debt_usd == 0.0:
                        closed.append((e.market, -signum(e.qty), e.notional_usd))
                    tally.add(e)
                    events.append((round_no, step, e))
                    if piece is not None:
                        pieces.append(piece)
            # "When an account has no open cross position left and its cross equity is
            # negative, the insurance fund takes over all its balances (assets and debts
            # alike); the deficit is bad debt (event bankruptcy, market ""), attributed to the
            # markets the account closed in that round pro rata to closed notional and tagged
            # with the side of each closed position."
            cross_eq, _ = _cross_equity(u, acct, prices)
            open_cross = any(not p.isolated and p.qty != 0.0 for p in acct.positions)
            if not open_cross and cross_eq < 0.0:
                for i in acct.balances:
                    pools.insurance[i] += acct.balances[i]
                    acct.balances[i] = 0
                e = _Event(a, -1, 0.0, 0.0, 0.0, 0.0, -cross_eq, "bankruptcy")
                tally.add(e)
                events.append((round_no, step, e))
                total = 0.0
                for _, _, w in closed:
                    total += w
                if total > 0.0:
                    pieces.extend((k, side, -cross_eq * w / total) for k, side, w in closed)

        # "When the fund's USD value is negative after a round, the deficit is split over that
        # round's (market, side) bad-debt attributions and covered per market from profitable
        # positions on the other side"; `none` leaves the fund negative.
        fund = _fund_usd(pools, prices.assets)
        if fund < 0.0 and config.deleverage != "none":
            for k, side, amount in _deficits(pieces, -fund):
                for e in _deleverage(
                    u, accounts, pools, prices, config.deleverage, k, side, amount
                ):
                    events.append((round_no, step, e))  # not in the round's tallies

        bad_debt += tally.bad_debt
        fees += tally.fees
        rounds.append(
            {
                "round": round_no,
                "step": step,
                "accounts_liquidated": len(candidates),
                "liquidated_notional_usd": tally.notional,
                "fees_usd": tally.fees,
                "bad_debt_usd": tally.bad_debt,
                "cumulative_bad_debt_usd": bad_debt,
                "insurance_fund_usd": _fund_usd(pools, prices.assets),
            }
        )
        round_marks.append(list(prices.marks))
        # (8) "a round's flow moves the mark to where it filled (f ← f·(1 + the fill's
        # displacement)), then f ← f + (1 − f)·decay, never below 1e-12"
        for k in range(nm):
            walked = factor[k] * (1.0 + fills[k][1])
            factor[k] = max(walked + (1.0 - walked) * config.decay, 1e-12)
        round_no += 1
        step_rounds += 1

    final_asset_prices = step_prices[step][0]
    return _result(
        u, accounts, pools, events, rounds, round_marks, totals_before, final_asset_prices,
        bad_debt, fees, tuple(truncated_steps),
    )  # fmt: skip


def _result(
    u: Universe,
    accounts: list[_Account],
    pools: _Pools,
    events: list[tuple[int, int, _Event]],
    rounds: list[dict[str, float | int]],
    round_marks: list[list[float]],
    totals_before: list[int],
    final_asset_prices: list[float],
    bad_debt: float,
    fees: float,
    truncated_steps: tuple[int, ...],
) -> ReferenceCascadeResult:
    """The engine's output tables from the reference's state."""
    names = [m.symbol for m in u.markets]
    event_table = Table(
        {
            "round": np.array([r for r, _, _ in events], dtype=np.uint32),
            "step": np.array([s for _, s, _ in events], dtype=np.uint32),
            "account": np.array([accounts[e.account].id for _, _, e in events], dtype=np.int64),
            "market": np.array(
                [names[e.market] if e.market >= 0 else "" for _, _, e in events], dtype=object
            ),
            "qty": np.array([e.qty for _, _, e in events], dtype=np.float64),
            "price": np.array([e.price for _, _, e in events], dtype=np.float64),
            "notional_usd": np.array([e.notional_usd for _, _, e in events], dtype=np.float64),
            "fee_usd": np.array([e.fee_usd for _, _, e in events], dtype=np.float64),
            "bad_debt_usd": np.array([e.bad_debt_usd for _, _, e in events], dtype=np.float64),
            "kind": np.array([e.kind for _, _, e in events], dtype=object),
            "side": np.array([e.side for _, _, e in events], dtype=object),
        }
    )
    assert all(e.kind in EVENT_KINDS for _, _, e in events)
    columns: dict[str, np.ndarray] = {}
    for name in ("round", "step", "accounts_liquidated"):
        columns[name] = np.array([r[name] for r in rounds], dtype=np.uint32)
    for name in (
        "liquidated_notional_usd", "fees_usd", "bad_debt_usd", "cumulative_bad_debt_usd",
        "insurance_fund_usd",
    ):  # fmt: skip
        columns[name] = np.array([r[name] for r in rounds], dtype=np.float64)
    marks = np.array(round_marks, dtype=np.float64).reshape(len(rounds), len(u.markets))
    for k, name in enumerate(names):
        columns[f"mark_{name}"] = marks[:, k]

    # The final book: every balance row (zeros included), open positions only.
    bal: dict[str, list[float | int]] = {"account": [], "asset": [], "qty": []}
    pos: dict[str, list[float | int]] = {
        "account": [], "market": [], "qty": [], "entry_price": [], "isolated_margin": [],
    }  # fmt: skip
    for acct in accounts:
        for i, m in acct.balances.items():
            bal["account"].append(acct.id)
            bal["asset"].append(i)
            bal["qty"].append(to_units(m))
    for acct in accounts:
        for p in acct.positions:
            if p.qty != 0.0:
                pos["account"].append(acct.id)
                pos["market"].append(p.market)
                pos["qty"].append(p.qty)
                pos["entry_price"].append(p.entry)
                pos["isolated_margin"].append(to_units(p.iso_minor) if p.isolated else 0.0)
    final_book = Book.from_arrays(
        {
            "account": np.array(bal["account"], dtype=np.int64),
            "asset": np.array(bal["asset"], dtype=np.uint32),
            "qty": np.array(bal["qty"], dtype=np.float64),
        },
        {
            "account": np.array(pos["account"], dtype=np.int64),
            "market": np.array(pos["market"], dtype=np.uint32),
            "qty": np.array(pos["qty"], dtype=np.float64),
            "entry_price": np.array(pos["entry_price"], dtype=np.float64),
            "isolated_margin": np.array(pos["isolated_margin"], dtype=np.float64),
        },
    )

    totals_after = _totals(u, accounts, pools)
    fund = 0.0
    for m, price in zip(pools.insurance, final_asset_prices, strict=True):
        fund += m / SCALE * price
    ledger = Table(
        {
            "asset": np.array([a.symbol for a in u.assets], dtype=object),
            "total_before": np.array([t / SCALE for t in totals_before]),
            "total_after": np.array([t / SCALE for t in totals_after]),
            "insurance_fund": np.array([t / SCALE for t in pools.insurance]),
            "external": np.array([t / SCALE for t in pools.external]),
        }
    )
    return ReferenceCascadeResult(
        events=event_table,
        rounds=Table(columns),
        final_book=final_book,
        bad_debt=bad_debt,
        fees=fees,
        insurance_fund=fund,
        uncovered_bad_debt=max(-fund, 0.0),
        truncated=bool(truncated_steps),
        truncated_steps=truncated_steps,
        ledger=ledger,
        _totals=(list(totals_before), list(totals_after)),
        totals_before=list(totals_before),
        totals_after=list(totals_after),
        insurance_minor=list(pools.insurance),
        external_minor=list(pools.external),
    )


__all__ = ["ReferenceCascadeResult", "cascade", "execute", "to_minor"]
