"""The standard model in a universe's fixed-point arithmetic, by plain integer loops
(docs/MODEL.md "Fixed-point arithmetic"; the Rust core's ``fixed`` module). Every amount is an
integer in its declared unit; ``//`` below is applied to non-negative numbers or written
out as :func:`trunc` (toward zero) or :func:`floor` (toward −∞), the rounding Drift v2
uses at that step (drift-labs/protocol-v2 programs/drift/src/math/margin.rs and the
functions it calls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crossmargin.exceptions import ConfigError
from crossmargin.result import MarginResult
from crossmargin.universe import FixedPoint, Universe


def trunc(a: int, b: int) -> int:
    """a / b toward zero (Rust's integer ``/``), b > 0."""
    return a // b if a >= 0 else -((-a) // b)


def floor(a: int, b: int) -> int:
    """a / b toward −∞, b > 0."""
    return a // b


def units(x: float, decimals: int) -> int:
    """A float as a whole number of 10^-decimals units (round to nearest)."""
    return round(x * 10**decimals)


def root(size: int, size_decimals: int) -> int:
    """isqrt(size × 10^k + 1), k making the exponent even (Drift:
    ``((size * 10) + 1).nth_root(2)``)."""
    return math.isqrt(size * 10 ** (size_decimals % 2) + 1)


def size_discount(fp: FixedPoint, size: int, imf: int, weight: int) -> int:
    """margin.rs ``calculate_size_discount_asset_weight``: min(w, 1.1·one / (1 + root·imf))."""
    if imf == 0:
        return weight
    imf_one, root_one = 10**fp.imf_decimals, 10 ** ((fp.size_decimals + 1) // 2)
    num = (imf_one + imf_one // 10) * 10**fp.weight_decimals
    return min(weight, num // (imf_one + root(size, fp.size_decimals) * imf // root_one))


def size_premium(fp: FixedPoint, size: int, imf: int, weight: int) -> int:
    """margin.rs ``calculate_size_premium_liability_weight`` (bounded): max(w, 0.8·w + term)."""
    if imf == 0:
        return weight
    den = 10 ** ((fp.size_decimals + 1) // 2) * 10**fp.imf_decimals // 10**fp.weight_decimals
    return max(weight, weight - weight // 5 + root(size, fp.size_decimals) * imf // den)


def to_size(amount: int, from_decimals: int, size_decimals: int) -> int:
    if from_decimals > size_decimals:
        return amount // 10 ** (from_decimals - size_decimals)
    return amount * 10 ** (size_decimals - from_decimals)


@dataclass
class Raw:
    """One account's raw numbers: equity, upnl, total collateral and requirement per mode,
    the weighted borrows inside the requirement, isolated liquidation."""

    equity: int = 0
    upnl: int = 0
    tc: list[int] = field(default_factory=lambda: [0, 0])
    req: list[int] = field(default_factory=lambda: [0, 0])
    borrows: list[int] = field(default_factory=lambda: [0, 0])
    iso: bool = False


def account(u: Universe, acct: Any, asset_prices: list[float], marks: list[float]) -> Raw:
    """One account under the fixed-point rules."""
    fp = u.arithmetic
    assert fp is not None
    w_one = 10**fp.weight_decimals
    p_one = 10**fp.price_decimals
    price = [units(p, fp.price_decimals) for p in asset_prices]
    mark = [units(p, fp.price_decimals) for p in marks]
    out = Raw()
    for i, qty in acct.balances.items():
        a = u.assets[i]
        d = fp.asset_decimals[a.symbol]
        amount = units(qty, d)
        if amount == 0:
            continue
        div = 10 ** (d + fp.price_decimals - fp.value_decimals)
        # spot_balance.rs get_strict_token_value: a borrow floors (its magnitude rounds up)
        up = amount < 0 and fp.borrow_rounding == "up"
        value = floor(amount * price[i], div) if up else trunc(amount * price[i], div)
        out.equity += value
        size = to_size(abs(amount), d, fp.size_decimals)
        imf = units(a.imf_factor, fp.imf_decimals)
        w = lambda x: units(x, fp.weight_decimals)  # noqa: E731
        for m, (aw, lw) in enumerate(
            ((a.weight_initial, a.liability_weight_initial),
             (a.weight_maint, a.liability_weight_maint))
        ):  # fmt: skip
            if amount > 0:
                weight = w(aw)
                start = units(a.scale_initial_weight_start, fp.value_decimals)
                if m == 0 and start > 0:  # spot_market.rs get_scaled_initial_asset_weight
                    deposits = trunc(units(a.total_deposits, d) * price[i], div)
                    if deposits >= start:
                        weight = weight * start // deposits
                weight = size_discount(fp, size, imf, weight)
                out.tc[m] += trunc(value * weight, w_one)
            else:
                liability = trunc(value * size_premium(fp, size, imf, w(lw)), w_one)
                out.req[m] -= liability
                out.borrows[m] -= liability
    bd = 10 ** (fp.size_decimals + fp.price_decimals - fp.value_decimals)
    for k, qty, entry, isolated in acct.positions:
        mk = u.markets[k]
        s = u.asset_index[mk.settle]
        quote = price[s]
        base = units(qty * mk.contract_size, fp.size_decimals)
        cost = trunc(base * units(entry, fp.price_decimals), bd)  # −quote_asset_amount
        value = trunc(base * mark[k], bd)
        pnl = value - cost
        liability = trunc(abs(value) * quote, p_one)
        upnl = trunc(pnl * quote, p_one)
        out.equity += upnl
        out.upnl += upnl
        imf = units(mk.imf_factor, fp.imf_decimals)
        (_, imr, mmr), = mk.brackets  # fmt: skip
        req, weighted = [0, 0], [0, 0]
        for m, (rate, uw) in enumerate(
            ((imr, mk.upnl_weight_initial), (mmr, mk.upnl_weight_maint))
        ):
            ratio = size_premium(fp, abs(base), imf, units(rate, fp.weight_decimals))
            req[m] = trunc(liability * ratio, w_one)
            # perp_market.rs get_unrealized_asset_weight, then margin.rs: weight, then quote
            weight = w_one
            if pnl > 0:
                weight = units(uw, fp.weight_decimals)
                if m == 0 and weight > 0:
                    size = to_size(pnl, fp.value_decimals, fp.size_decimals)
                    weight = size_discount(
                        fp, size, units(mk.upnl_imf_factor, fp.imf_decimals), weight
                    )
            x = trunc(pnl * weight, w_one)
            x = trunc(x * quote, p_one)
            if m == 0 and math.isfinite(mk.upnl_cap_initial):
                x = min(x, units(mk.upnl_cap_initial, fp.value_decimals))
            weighted[m] = x
        if isolated > 0:
            ds = fp.asset_decimals[mk.settle]
            margin = trunc(
                units(isolated, ds) * quote, 10 ** (ds + fp.price_decimals - fp.value_decimals)
            )
            out.equity += margin
            out.iso |= margin + weighted[1] < req[1]
        else:
            for m in (0, 1):
                out.req[m] += req[m]
                out.tc[m] += weighted[m]
    return out


def evaluate(
    u: Universe, accounts: dict[int, Any], asset_prices: list[float], marks: list[float]
) -> MarginResult:
    """Every account (ascending id): the standard columns from the raw totals
    (``adj_equity_m`` = total collateral − weighted borrows, ``im``/``mm`` = requirement −
    weighted borrows) and the raw int64 columns."""
    assert u.arithmetic is not None
    one = 10.0**u.arithmetic.value_decimals
    cols: dict[str, list] = {n: [] for n in (
        "account", "equity", "upnl", "adj_equity_initial", "adj_equity_maint", "im", "mm",
        "free_collateral", "margin_ratio", "liquidatable", "bankrupt",
        "total_collateral_initial_raw", "total_collateral_maint_raw",
        "margin_requirement_initial_raw", "margin_requirement_maint_raw")}  # fmt: skip
    for account_id in sorted(accounts):
        n = account(u, accounts[account_id], asset_prices, marks)
        tc, req, b = n.tc, n.req, n.borrows
        if any(abs(x) >= 2**63 for x in (n.equity, n.upnl, *tc, *req)):
            raise ConfigError(
                f"arithmetic: account {account_id}: a value leaves the fixed-point range "
                "(|raw| < 2^63)",
                field="arithmetic",
            )
        adj_m, mm = (tc[1] - b[1]) / one, (req[1] - b[1]) / one
        ratio = 0.0 if mm == 0 else (math.inf if adj_m <= 0 else mm / adj_m)
        for name, x in (
            ("account", account_id), ("equity", n.equity / one), ("upnl", n.upnl / one),
            ("adj_equity_initial", (tc[0] - b[0]) / one), ("adj_equity_maint", adj_m),
            ("im", (req[0] - b[0]) / one), ("mm", mm), ("free_collateral", (tc[0] - req[0]) / one),
            ("margin_ratio", ratio), ("liquidatable", tc[1] < req[1] or n.iso),
            ("bankrupt", n.equity < 0),
            ("total_collateral_initial_raw", tc[0]), ("total_collateral_maint_raw", tc[1]),
            ("margin_requirement_initial_raw", req[0]), ("margin_requirement_maint_raw", req[1]),
        ):  # fmt: skip
            cols[name].append(x)
    ints = {"account", *[c for c in cols if c.endswith("_raw")]}
    bools = {"liquidatable", "bankrupt"}
    return MarginResult(
        {
            c: np.array(v, dtype=np.int64 if c in ints else np.bool_ if c in bools else np.float64)
            for c, v in cols.items()
        }
    )
