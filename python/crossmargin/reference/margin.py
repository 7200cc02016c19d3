"""The pure-Python reference engine: the same rules as the Rust core, written to be read.

It is the test oracle (differential tests demand agreement to 1e-9 relative) and the
pure-Python baseline of the benchmarks. It favours plain loops and named steps over speed;
a risk engineer checks any number by reading it next to docs/MODEL.md "Standard cross margin".
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crossmargin.book import Book
from crossmargin.exceptions import ConfigError, InternalError
from crossmargin.reference import fixed
from crossmargin.reference import portfolio as pm  # options and portfolio margin
from crossmargin.reference.portfolio import option_numbers
from crossmargin.reference.prices import PriceOverrides, resolve, underlying_spots
from crossmargin.result import MarginResult, in_units
from crossmargin.table import Table
from crossmargin.universe import Asset, Market, Universe


# ---- rules -----------------------------------------------------------------------------
def bracket_requirement(
    brackets: tuple[tuple[float, float, float], ...],
    notional: float,
    shapes: tuple[str, str] = ("continuous", "continuous"),
) -> tuple[float, float]:
    """(initial, maintenance) requirement of a position of ``notional``.

    Binance USDⓈ-M, "Leverage and Margin": maintenance = notional × mmr − maintenance
    amount, the amount of bracket k being floor_k × (mmr_k − mmr_{k−1}) + amount_{k−1};
    the same rule builds an initial amount from the initial rates. Beyond the last bound
    the last bracket applies. A mode whose shape is not ``"continuous"`` has no amount: the
    whole notional at its bracket's rate (docs/MODEL.md "Requirement shapes").
    """
    cum_im = cum_mm = 0.0
    for k, (bound, imr, mmr) in enumerate(brackets):
        if k > 0:
            floor, prev_imr, prev_mmr = brackets[k - 1]
            if shapes[0] == "continuous":
                cum_im += floor * (imr - prev_imr)
            if shapes[1] == "continuous":
                cum_mm += floor * (mmr - prev_mmr)
        if notional <= bound or k == len(brackets) - 1:
            return notional * imr - cum_im, notional * mmr - cum_mm
    raise InternalError("a market has at least one bracket")


def shaped_requirement(market: Market, qty: float, notional: float) -> tuple[float, float]:
    """(initial, maintenance) requirement of ``qty`` contracts worth ``notional`` (settle
    units) by the market's shapes: brackets, the size-scaled rate base + slope × size (size
    in underlying units: |qty × cs|, or the coin notional of an inverse market; Deribit), then
    at least the size premium on the first bracket's rate."""
    shapes = (market.im_shape, market.mm_shape)
    im, mm = bracket_requirement(tuple(market.brackets), notional, shapes)
    size = notional if market.inverse else abs(qty * market.contract_size)
    if market.im_shape == "size_scaled":
        im = notional * (market.brackets[0][1] + market.rate_slope_initial * size)
    if market.mm_shape == "size_scaled":
        mm = notional * (market.brackets[0][2] + market.rate_slope_maint * size)
    if market.imf_factor > 0.0:
        base_imr, base_mmr = market.brackets[0][1], market.brackets[0][2]
        signed = qty * market.contract_size
        im = max(im, notional * size_premium_weight(base_imr, market.imf_factor, signed))
        mm = max(mm, notional * size_premium_weight(base_mmr, market.imf_factor, signed))
    return im, mm


def bankruptcy_price(market: Market, qty: float, mark: float, pool: float) -> float:
    """The price at which a pool worth ``pool`` settle units at ``mark`` (this position's
    uPnL in it in full) is worth the closing fee there, only this mark moving: linear
    pool + S·(x − M) = f·|S|·x, inverse pool + S·(1/M − 1/x) = f·|S|/x (S = qty × cs).
    NaN when no positive price is (docs/MODEL.md "Liquidation-fee reserve")."""
    f, s = market.liquidation_fee, qty * market.contract_size
    if s == 0.0:
        return math.nan
    if market.inverse:
        denominator = pool + s / mark
        x = (s + f * abs(s)) / denominator if denominator != 0.0 else math.inf
    else:
        x = (s * mark - pool) / (s - f * abs(s))
    return x if math.isfinite(x) and x > 0 else math.nan


def fee_reserve(market: Market, qty: float, mark: float, pool: float) -> float:
    """Closing fee at the bankruptcy price, settle units: f × notional there; 0 without one
    (the pool covers every price, or the position is worthless at every price)."""
    if market.liquidation_fee == 0.0 or qty == 0.0:
        return 0.0
    x = bankruptcy_price(market, qty, mark, pool)
    if math.isnan(x):
        return 0.0
    s = abs(qty * market.contract_size)
    return market.liquidation_fee * (s / x if market.inverse else s * x)


def tiered_value(tiers: Sequence[tuple[float, float]] | None, value: float) -> float:
    """USD value after OKX/Bybit-style tiered haircuts: each slice at its tier's rate;
    above a finite last bound nothing counts."""
    if not tiers:
        return value
    total, lower = 0.0, 0.0
    for bound, rate in tiers:
        if value <= bound:
            return total + (value - lower) * rate
        total += (bound - lower) * rate
        lower = bound
    return total


def size_discounted_weight(weight: float, imf: float, size: float) -> float:
    """Drift v2 size discount: min(w, 1.1 / (1 + imf·sqrt(size)))."""
    if imf == 0.0:
        return weight
    return min(weight, 1.1 / (1.0 + imf * math.sqrt(abs(size))))


def size_premium_weight(weight: float, imf: float, size: float) -> float:
    """Drift v2 size premium: max(w, 0.8·w + imf·sqrt(size))."""
    if imf == 0.0:
        return weight
    return max(weight, 0.8 * weight + imf * math.sqrt(abs(size)))


def position_numbers(
    market: Market, qty: float, entry: float, mark: float, settle_price: float
) -> tuple[float, float, float]:
    """(uPnL, initial requirement, maintenance requirement) in USD; maintenance on the
    notional at the entry price where ``maint_basis`` is ``"entry"`` (Bybit)."""
    size = qty * market.contract_size

    def notional_at(price: float) -> float:
        if qty == 0.0:
            return 0.0
        # Coin-settled: notional in the settle coin.
        return abs(size) / price if market.inverse else abs(size) * price

    if market.inverse:
        upnl = size * (1.0 / entry - 1.0 / mark) if qty != 0.0 else 0.0
    else:
        upnl = size * (mark - entry)
    im, mm = shaped_requirement(market, qty, notional_at(mark))
    if market.maint_basis == "entry":
        mm = shaped_requirement(market, qty, notional_at(entry))[1]
    return upnl * settle_price, im * settle_price, mm * settle_price


# ---- one account -----------------------------------------------------------------------
@dataclass
class AccountRows:
    """One account's rows in universe indices (see :func:`account_rows`): ``sides`` holds
    each position's side ("both", "long", "short"), ``orders`` its open orders as (market,
    signed qty: > 0 buy, price, reduce_only)."""

    balances: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    positions: list[tuple[int, float, float, float]] = field(default_factory=list)
    sides: list[str] = field(default_factory=list)
    orders: list[tuple[int, float, float, bool]] = field(default_factory=list)


@dataclass
class AccountNumbers:
    equity: float = 0.0
    upnl: float = 0.0
    adj_equity_initial: float = 0.0
    adj_equity_maint: float = 0.0
    im: float = 0.0
    mm: float = 0.0
    isolated_liquidatable: bool = False
    fee_reserve: float = 0.0


def evaluate_account(
    universe: Universe,
    acct: AccountRows,
    asset_prices: list[float],
    marks: list[float],
    spots: dict[str, float] | None = None,
) -> AccountNumbers:
    """The standard model; ``spots`` (underlying prices) are needed only by options."""
    out = AccountNumbers()
    held, owed = side_factors(universe, acct, marks)
    for i, qty in acct.balances.items():
        asset: Asset = universe.assets[i]
        out.equity += qty * asset_prices[i]
        value = qty * asset_prices[i] * held[i]
        if qty > 0:
            discounted = tiered_value(asset.haircut_tiers, value)
            initial = scaled_initial_weight(asset, asset_prices[i])
            out.adj_equity_initial += discounted * size_discounted_weight(
                initial, asset.imf_factor, qty
            )
            out.adj_equity_maint += discounted * size_discounted_weight(
                asset.weight_maint, asset.imf_factor, qty
            )
        elif qty < 0:
            out.adj_equity_initial += value * size_premium_weight(
                asset.liability_weight_initial, asset.imf_factor, qty
            )
            out.adj_equity_maint += value * size_premium_weight(
                asset.liability_weight_maint, asset.imf_factor, qty
            )

    for k, qty, entry, isolated in acct.positions:
        market = universe.markets[k]
        settle_price = asset_prices[universe.asset_index[market.settle]]
        if market.is_option:
            # An option enters equity at its value q·cs·mark; uPnL is only reported.
            assert spots is not None, "options need the underlying prices"
            value, upnl, im, mm = option_numbers(
                market, qty, entry, marks[k], settle_price, spots[market.underlying]
            )
            out.upnl += upnl
            out.equity += value
            if isolated > 0:
                margin = isolated * settle_price
                out.equity += margin
                out.isolated_liquidatable |= margin + value < mm
            else:
                s = universe.asset_index[market.settle]
                out.adj_equity_initial += value * held[s]
                out.adj_equity_maint += value * held[s]
                out.im += im * owed[s]
                out.mm += mm * owed[s]
            continue
        upnl, im, mm = position_numbers(market, qty, entry, marks[k], settle_price)
        out.upnl += upnl
        out.equity += upnl
        if isolated > 0:
            # Isolated: its own margin against its own maintenance, outside the pool; the
            # closing fee at its bankruptcy price reserved beside.
            margin = isolated * settle_price
            out.equity += margin
            reserve = fee_reserve(market, qty, marks[k], isolated + upnl / settle_price)
            if margin + upnl < mm + reserve * settle_price:
                out.isolated_liquidatable = True
        else:
            s = universe.asset_index[market.settle]
            h, o = held[s], owed[s]
            in_settle = upnl / settle_price if settle_price > 0 else 0.0
            out.adj_equity_initial += upnl_collateral(market, upnl, in_settle, initial=True) * h
            out.adj_equity_maint += upnl_collateral(market, upnl, in_settle, initial=False) * h
            out.im += im * o
            out.mm += mm * o
    # Closing-fee reserves of cross positions, on the pool as it stands (docs/MODEL.md
    # "Liquidation-fee reserve").
    pool_usd = out.adj_equity_maint
    for k, qty, entry, isolated in acct.positions:
        market = universe.markets[k]
        if isolated > 0 or market.is_option or market.liquidation_fee == 0.0 or qty == 0.0:
            continue
        s = universe.asset_index[market.settle]
        held_price, owed_price = asset_prices[s] * held[s], asset_prices[s] * owed[s]
        if held_price <= 0:
            continue
        upnl, _, _ = position_numbers(market, qty, entry, marks[k], 1.0)
        counted = min(upnl, 0.0) + max(upnl, 0.0) * market.upnl_weight_maint
        pool = pool_usd / held_price - counted + upnl
        reserve = fee_reserve(market, qty, marks[k], pool) * owed_price
        out.mm += reserve
        out.fee_reserve += reserve
    out.im += order_margin(universe, acct, asset_prices, marks, owed)
    return out


def side_factors(
    universe: Universe, acct: AccountRows, marks: list[float]
) -> tuple[list[float], list[float]]:
    """Per asset, the factor (of its price) its holding counts at and the one requirements in
    it convert at: the bid (a net holding ≥ 0: balance + uPnL or option value of the cross
    positions settled in it) or the ask (a net debt); requirements at the ask. Binance
    Multi-Assets: Σ min(asset equity × bid rate, asset equity × ask rate)."""
    held, owed = [], []
    for i, a in enumerate(universe.assets):
        bid = 1.0 if a.bid is None else a.bid / a.price
        ask = 1.0 if a.ask is None else a.ask / a.price
        if a.bid is None and a.ask is None:
            held.append(1.0)
            owed.append(1.0)
            continue
        net = acct.balances.get(i, 0.0)
        for k, qty, entry, isolated in acct.positions:
            m = universe.markets[k]
            if isolated > 0 or m.settle != a.symbol:
                continue
            if m.is_option:
                net += qty * m.contract_size * marks[k]
            elif m.inverse:
                net += qty * m.contract_size * (1 / entry - 1 / marks[k]) if qty != 0 else 0.0
            else:
                net += qty * m.contract_size * (marks[k] - entry)
        held.append(bid if net >= 0 else ask)
        owed.append(ask)
    return held, owed


def _initial(market: Market, notional: float, qty: float) -> float:
    """Initial requirement of ``qty`` contracts worth ``notional`` (settle units): the
    market's initial requirement shape (:func:`shaped_requirement`)."""
    return shaped_requirement(market, qty, notional)[0]


def order_margin(
    universe: Universe,
    acct: AccountRows,
    asset_prices: list[float],
    marks: list[float],
    owed: list[float] | None = None,
) -> float:
    """What an account's open orders add to its initial requirement, USD (docs/MODEL.md
    "Open orders"). Per market and leg (a hedged market: buys with the long leg, sells
    with the short leg; else every order with the net position): the initial requirement of
    the worst case max(|P·mark + Σ bid values|, |P·mark − Σ ask values|) above the
    position's own; plus each non-reduce-only order's open loss and two-way fee when the
    market's rule has them, and a fixed amount per order (reduce-only ones included).
    Requirements convert at ``owed`` (the settle asset's ask factor, :func:`side_factors`)."""
    total = 0.0
    markets = sorted({k for k, *_ in acct.orders})
    for k in markets:
        m = universe.markets[k]
        mark = marks[k]
        s = universe.asset_index[m.settle]
        settle_price = asset_prices[s] * (1.0 if owed is None else owed[s])
        cs = m.contract_size

        def notional(qty: float, price: float, m: Market = m, cs: float = cs) -> float:
            return abs(qty) * cs / price if m.inverse else abs(qty) * cs * price

        legs = {
            side: qty
            for (kk, qty, _, _), side in zip(acct.positions, acct.sides, strict=True)
            if kk == k
        }
        hedged = any(side != "both" for side in legs)
        # leg → [position qty, bid qty, ask qty, bid value, ask value]
        book: dict[str, list[float]] = {}
        extra = 0.0
        orders = [o for o in acct.orders if o[0] == k]
        for _, qty, price, reduce_only in orders:
            if reduce_only:
                continue
            leg = ("long" if qty > 0 else "short") if hedged else "both"
            row = book.setdefault(leg, [legs.get(leg, 0.0), 0.0, 0.0, 0.0, 0.0])
            value = notional(qty, mark if m.order_value == "mark" else price)
            if qty > 0:
                row[1] += qty
                row[3] += value
            else:
                row[2] += -qty
                row[4] += value
            if m.order_open_loss:
                # Binance: qty × |min(0, dir × (mark − price))|, in settle units.
                if m.inverse:
                    pnl = qty * cs * (1.0 / price - 1.0 / mark)
                else:
                    pnl = qty * cs * (mark - price)
                extra += max(0.0, -pnl)
            if m.order_fee_rate > 0.0:
                # Bybit: fee × (value at the order price + value at its bankruptcy price).
                opened = notional(qty, price)
                rate = _initial(m, opened, qty) / opened
                direction = 1.0 if qty > 0 else -1.0
                # Value at the bankruptcy price: price × (1 − d·rate), inverse
                # price / (1 + d·rate) (value × (1 + d·rate)); none past a 100 % rate.
                factor = 1.0 + direction * rate if m.inverse else 1.0 - direction * rate
                extra += m.order_fee_rate * (opened + opened * max(0.0, factor))
        worst_case = 0.0
        for position, bids, asks, bid_value, ask_value in book.values():
            value = (1.0 if position >= 0 else -1.0) * notional(position, mark)
            worst = max(abs(value + bid_value), abs(value - ask_value))
            worst_qty = max(abs(position + bids), abs(position - asks))
            own = _initial(m, abs(value), position)
            worst_case += max(0.0, _initial(m, worst, worst_qty) - own)
        per_order = m.order_margin_per_order * len(orders)
        total += (worst_case + extra + per_order) * settle_price
    return total


def margin_ratio(adj_equity_maint: float, mm: float) -> float:
    if mm == 0.0:
        return 0.0
    if adj_equity_maint <= 0.0:
        return math.inf
    return mm / adj_equity_maint


def scaled_initial_weight(asset: Asset, price: float) -> float:
    """Drift's scaled initial asset weight (state/spot_market.rs
    ``get_scaled_initial_asset_weight``): once the venue's total deposits are worth
    ``scale_initial_weight_start`` or more, the initial weight × start / their value."""
    start, value = asset.scale_initial_weight_start, asset.total_deposits * price
    if start > 0 and value >= start:
        return asset.weight_initial * start / value
    return asset.weight_initial


def upnl_collateral(market: Market, upnl: float, in_settle: float, *, initial: bool) -> float:
    """A position's uPnL in adjusted equity: a loss in full; a profit × its uPnL weight, at
    initial margin size-discounted by the profit in settle units (``upnl_imf_factor``,
    Drift's ``unrealized_pnl_imf_factor``) and at most ``upnl_cap_initial``."""
    if upnl <= 0:
        return upnl
    if not initial:
        return upnl * market.upnl_weight_maint
    w = size_discounted_weight(market.upnl_weight_initial, market.upnl_imf_factor, in_settle)
    return min(upnl * w, market.upnl_cap_initial)


# ---- the book --------------------------------------------------------------------------
def account_rows(universe: Universe, book: Book) -> dict[int, AccountRows]:
    """Each account's balances (per universe asset) and positions (universe market, qty,
    entry, isolated margin), in input order. Duplicate balance rows of one (account, asset)
    are merged into their exact sum, correctly rounded (``math.fsum``; docs/MODEL.md
    "Canonical order")."""
    asset_of_code, market_of_code = (x.tolist() for x in book.remaps(universe))
    accounts: dict[int, AccountRows] = defaultdict(AccountRows)
    rows: dict[int, dict[int, list[float]]] = defaultdict(dict)  # account → asset → rows
    b = book.balances
    for account, code, qty in zip(
        b["account"].tolist(), b["asset"].codes.tolist(), b["qty"].tolist(), strict=True
    ):
        rows[account].setdefault(asset_of_code[code], []).append(qty)
    # Duplicate balance rows merge into their exact sum (docs/MODEL.md "Canonical order").
    for account, by_asset in rows.items():
        for i, parts in by_asset.items():
            accounts[account].balances[i] = math.fsum(parts)
    p = book.positions
    side_names = ("both", "long", "short")
    for account, code, qty, entry, iso, side in zip(
        p["account"].tolist(),
        p["market"].codes.tolist(),
        p["qty"].tolist(),
        p["entry_price"].tolist(),
        p["isolated_margin"].tolist(),
        p["side"].tolist(),
        strict=True,
    ):
        isolated = 0.0 if math.isnan(iso) else iso
        accounts[account].positions.append((market_of_code[code], qty, entry, isolated))
        accounts[account].sides.append(side_names[side])
    o = book.orders
    if o is not None:
        for account, code, side, qty, price, reduce_only in zip(
            o["account"].tolist(),
            o["market"].codes.tolist(),
            o["side"].tolist(),
            o["qty"].tolist(),
            o["price"].tolist(),
            o["reduce_only"].tolist(),
            strict=True,
        ):
            signed = qty if side == 0 else -qty
            accounts[account].orders.append((market_of_code[code], signed, price, reduce_only))
    return accounts


def portfolio_account(
    universe: Universe, acct: Any, assets: list[float], marks: list[float],
    spots: dict[str, float], model: str,
) -> Any:  # fmt: skip
    """One account under "portfolio", "delta" or "hybrid".

    adj_equity: assets that move in the scenarios (the asset named like an underlying with
    parameters) at full value, other collateral at its standard weights, cross uPnL and
    option values unweighted. Requirement: Σ underlying charges (see underlying_charges),
    × im_factor for the initial one, plus the standard requirement of cross positions on
    underlyings without parameters; hybrid: at least hybrid_floor × the standard one.
    """
    cfg = universe.portfolio
    standard = evaluate_account(universe, acct, assets, marks, spots)
    out = AccountNumbers(
        equity=standard.equity,
        upnl=standard.upnl,
        isolated_liquidatable=standard.isolated_liquidatable,
    )
    exposures: dict[str, pm.Exposure] = {}
    for i, qty in acct.balances.items():
        asset = universe.assets[i]
        value = qty * assets[i]
        if asset.symbol in universe.underlyings and cfg.for_underlying(asset.symbol):
            exposures.setdefault(asset.symbol, pm.Exposure()).balances.append((i, qty))
            out.adj_equity_initial += value
            out.adj_equity_maint += value
        elif qty > 0:
            discounted = tiered_value(asset.haircut_tiers, value)
            out.adj_equity_initial += discounted * size_discounted_weight(
                scaled_initial_weight(asset, assets[i]), asset.imf_factor, qty
            )
            out.adj_equity_maint += discounted * size_discounted_weight(
                asset.weight_maint, asset.imf_factor, qty
            )
        elif qty < 0:
            out.adj_equity_initial += value * size_premium_weight(
                asset.liability_weight_initial, asset.imf_factor, qty
            )
            out.adj_equity_maint += value * size_premium_weight(
                asset.liability_weight_maint, asset.imf_factor, qty
            )
    unconfigured_im = unconfigured_mm = 0.0
    for k, qty, entry, isolated in acct.positions:
        if isolated > 0:
            continue  # outside the pool, as in the standard model
        m = universe.markets[k]
        settle_price = assets[universe.asset_index[m.settle]]
        if m.is_option:
            contribution, _, im, mm = option_numbers(
                m, qty, entry, marks[k], settle_price, spots[m.underlying]
            )
        else:
            contribution, im, mm = position_numbers(m, qty, entry, marks[k], settle_price)
        out.adj_equity_initial += contribution
        out.adj_equity_maint += contribution
        if cfg.for_underlying(m.underlying) is None:
            unconfigured_im += im
            unconfigured_mm += mm
        elif qty != 0:
            exposures.setdefault(m.underlying, pm.Exposure()).positions.append((k, qty, entry))
    charges = pm.underlying_charges(universe, model, exposures, assets, marks, spots)
    out.mm = unconfigured_mm + charges
    out.im = unconfigured_im + cfg.im_factor * charges
    if model == "hybrid":
        out.im = max(out.im, cfg.hybrid_floor * standard.im)
        out.mm = max(out.mm, cfg.hybrid_floor * standard.mm)
    return out


def evaluate(
    universe: Universe,
    book: Book,
    prices: PriceOverrides = None,
    model: str = "standard",
    unit: str | None = None,
) -> MarginResult:
    """Margin of every account, by plain loops. Same fields and row order as
    :meth:`crossmargin.Engine.evaluate`; ``model`` and ``unit`` as there (portfolio models:
    :func:`portfolio_account`, with :mod:`crossmargin.reference.portfolio`)."""
    asset_prices, marks = resolve(universe, prices)
    spots = underlying_spots(universe, asset_prices, marks)
    accounts = account_rows(universe, book)
    if universe.arithmetic is not None and model == "standard":
        return fixed.evaluate(universe, accounts, asset_prices, marks)
    if model != "standard":
        # The scenario pool: one price per asset, no closing-fee reserve (refused, by name).
        for a in universe.assets:
            if (a.bid is not None and a.bid != a.price) or (a.ask is not None and a.ask != a.price):
                raise ConfigError(
                    f"assets[{a.symbol}].bid: the portfolio model has no two-sided valuation",
                    field=f"assets[{a.symbol}].bid",
                )
        for m in universe.markets:
            if m.liquidation_fee > 0:
                raise ConfigError(
                    f"markets[{m.symbol}].liquidation_fee: the portfolio model has no "
                    "closing-fee reserve",
                    field=f"markets[{m.symbol}].liquidation_fee",
                )
    rows = []
    for account_id in sorted(accounts):
        if model == "standard":
            n = evaluate_account(universe, accounts[account_id], asset_prices, marks, spots)
        else:
            n = portfolio_account(universe, accounts[account_id], asset_prices, marks, spots, model)
        rows.append(
            (
                account_id,
                n.equity,
                n.upnl,
                n.adj_equity_initial,
                n.adj_equity_maint,
                n.im,
                n.mm,
                n.adj_equity_initial - n.im,
                margin_ratio(n.adj_equity_maint, n.mm),
                n.adj_equity_maint < n.mm or n.isolated_liquidatable,
                n.equity < 0.0,
            )
        )
    names = (
        "account", "equity", "upnl", "adj_equity_initial", "adj_equity_maint", "im", "mm",
        "free_collateral", "margin_ratio", "liquidatable", "bankrupt",
    )  # fmt: skip
    dtypes = [np.int64] + [np.float64] * 8 + [np.bool_, np.bool_]
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    out = {n: np.array(c, dtype=d) for n, c, d in zip(names, cols, dtypes, strict=True)}
    if unit is not None:
        # USD ÷ the unit asset's ask (docs/MODEL.md "Two-sided valuation").
        out = in_units(out, universe.ask_price(unit, asset_prices))
    return MarginResult(out)


def greeks(universe: Universe, book: Book, prices: PriceOverrides = None) -> Table:
    """Greeks per account × underlying, as :meth:`crossmargin.Engine.greeks`."""
    a, m = resolve(universe, prices)
    spots = underlying_spots(universe, a, m)
    rows = []
    for account_id, acct in sorted(account_rows(universe, book).items()):
        for name, (delta, gamma, vega, theta, rho) in pm.account_greeks(
            universe, acct, a, m, spots
        ).items():
            rows.append((account_id, name, delta, gamma, vega, theta, theta / 365.0, rho))
    cols = list(zip(*rows, strict=True)) if rows else [()] * 8
    return Table(
        {
            "account": np.array(cols[0], dtype=np.int64),
            "underlying": np.array(cols[1], dtype=object),
            **{
                n: np.array(c, dtype=np.float64)
                for n, c in zip(
                    ("delta", "gamma", "vega", "theta", "theta_day", "rho"), cols[2:], strict=True
                )
            },
        }
    )


__all__ = [
    "account_rows",
    "bankruptcy_price",
    "bracket_requirement",
    "evaluate",
    "evaluate_account",
    "fee_reserve",
    "greeks",
    "margin_ratio",
    "order_margin",
    "portfolio_account",
    "position_numbers",
    "scaled_initial_weight",
    "shaped_requirement",
    "side_factors",
    "size_discounted_weight",
    "size_premium_weight",
    "tiered_value",
    "upnl_collateral",
]
