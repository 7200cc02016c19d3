"""Plain-Python options and portfolio margin: the oracle of the Rust core's options.rs and
portfolio.rs, written to be read next to docs/MODEL.md ("Options" and "Portfolio
margin"). Every scenario revalues every position in full; nothing is precomputed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from crossmargin.universe import Market, Universe

VOL_FLOOR = 1e-4


# ---- Black-76 ----------------------------------------------------------------------------
def norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def norm_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def black76(
    forward: float, strike: float, years: float, vol: float, rate: float, call: bool
) -> tuple[float, float, float, float, float]:
    """(price, delta, gamma, vega, theta) — Black (1976); greeks as in Haug (2007) §1.1.7."""
    df = math.exp(-rate * years)
    sd = vol * math.sqrt(years)
    if not (sd > 0 and forward > 0 and strike > 0):
        intrinsic = max(forward - strike, 0.0) if call else max(strike - forward, 0.0)
        itm = forward > strike if call else forward < strike
        delta = (df if call else -df) if itm else 0.0
        return df * intrinsic, delta, 0.0, 0.0, rate * df * intrinsic
    d1 = (math.log(forward / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    if call:
        price = df * (forward * norm_cdf(d1) - strike * norm_cdf(d2))
        delta = df * norm_cdf(d1)
    else:
        price = df * (strike * norm_cdf(-d2) - forward * norm_cdf(-d1))
        delta = -df * norm_cdf(-d1)
    gamma = df * norm_pdf(d1) / (forward * sd)
    vega = df * forward * norm_pdf(d1) * math.sqrt(years)
    theta = -df * forward * norm_pdf(d1) * vol / (2.0 * math.sqrt(years)) + rate * price
    return max(price, 0.0), delta, gamma, vega, theta


def bsm(
    spot: float, strike: float, years: float, vol: float, rate: float, carry: float, call: bool
) -> dict[str, float]:
    """Generalised Black-Scholes-Merton (Haug 2007, §1.1.6; greeks §2.1): price and greeks
    with respect to the spot (rho with the carry yield r − b fixed, carry_rho = ∂V/∂b) and
    the forward F = S·e^{bT} (delta_forward, gamma_forward, rho_forward = −T·V)."""
    t, w = years, (1.0 if call else -1.0)
    df, cf, grow = math.exp(-rate * t), math.exp((carry - rate) * t), math.exp(carry * t)
    sd = vol * math.sqrt(t)
    if not (sd > 0 and spot > 0 and strike > 0):
        itm = w * (spot * grow - strike) > 0
        n1 = n2 = 1.0 if itm else 0.0
        price = w * (spot * cf - strike * df) if itm else 0.0
        theta = -w * (carry - rate) * spot * cf - w * rate * strike * df if itm else 0.0
        gamma = vega = 0.0
    else:
        d1 = (math.log(spot / strike) + (carry + 0.5 * vol * vol) * t) / sd
        d2 = d1 - sd
        n1, n2 = norm_cdf(w * d1), norm_cdf(w * d2)
        price = max(w * (spot * cf * n1 - strike * df * n2), 0.0)
        theta = (
            -spot * cf * norm_pdf(d1) * vol / (2.0 * math.sqrt(t))
            - w * (carry - rate) * spot * cf * n1
            - w * rate * strike * df * n2
        )
        gamma = cf * norm_pdf(d1) / (spot * sd)
        vega = spot * cf * norm_pdf(d1) * math.sqrt(t)
    return {
        "price": price,
        "delta": w * cf * n1,
        "gamma": gamma,
        "vega": vega,
        "theta": theta,
        "rho": w * t * strike * df * n2,
        "carry_rho": w * t * spot * cf * n1,
        "delta_forward": w * df * n1,
        "gamma_forward": gamma / (grow * grow),
        "rho_forward": -t * price,
    }


def option_value(universe: Universe, k: int, spot: float, iv: float) -> float:
    """Model value in settle units per unit of underlying (coin for inverse options)."""
    m = universe.markets[k]
    price = black76(
        spot, m.strike, universe.option_years(m.symbol), max(iv, VOL_FLOOR), m.rate,  # type: ignore[arg-type]
        m.option_type == "call",
    )[0]  # fmt: skip
    return price / spot if m.inverse else price


# ---- standard margin of an option (Deribit) ----------------------------------------------
def option_numbers(
    m: Market, qty: float, entry: float, mark: float, settle_price: float, spot: float
) -> tuple[float, float, float, float]:
    """(value, uPnL, initial, maintenance) in USD. Value = q·cs·mark; a short needs, per
    contract, IM = max(im_base − OTM/S, im_min)·S + mark and MM = mm_base·S + mark, with S in
    settle units (1 for an inverse option: one coin of underlying is one coin)."""
    size = qty * m.contract_size
    value = size * mark * settle_price
    upnl = size * (mark - entry) * settle_price if qty != 0 else 0.0
    if size >= 0:
        return value, upnl, 0.0, 0.0
    strike = float(m.strike)  # type: ignore[arg-type]
    otm = max(strike - spot if m.option_type == "call" else spot - strike, 0.0)
    s = 1.0 if m.inverse else spot
    im = max(m.im_base - otm / spot, m.im_min) * s + mark
    mm = m.mm_base * s + mark
    return value, upnl, -size * im * settle_price, -size * mm * settle_price


# ---- one account under a portfolio model ---------------------------------------------------
@dataclass
class Exposure:
    """What an account holds on one underlying."""

    positions: list[tuple[int, float, float]] = field(default_factory=list)  # (k, qty, entry)
    balances: list[tuple[int, float]] = field(default_factory=list)  # (asset, qty)


def position_value(
    universe: Universe, k: int, qty: float, entry: float, mark: float, settle_price: float,
    spot: float, iv: float,
) -> float:  # fmt: skip
    """USD value of a cross position as it enters equity: uPnL for perps and futures, q·cs·v
    for options (v the model value at ``spot`` and ``iv``)."""
    m = universe.markets[k]
    size = qty * m.contract_size
    if m.is_option:
        return size * option_value(universe, k, spot, iv) * settle_price
    if m.inverse:
        return size * (1.0 / entry - 1.0 / mark) * settle_price
    return size * (mark - entry) * settle_price


def scenario_pnl(
    universe: Universe, name: str, exposure: Exposure, move: float, vol_move: float,
    vol_power: float, vol_relative: bool, assets: list[float], marks: list[float], spot: float,
) -> float:  # fmt: skip
    """USD P&L of an account's exposure to one underlying when its price moves by ``move``
    and volatilities by ``vol_move``: marks and the underlying scale by (1 + move), so does
    the settle asset when it is the underlying's asset; options are revalued with Black-76
    (a model-to-model difference, also for options with an explicit mark)."""
    pnl = 0.0
    for i, qty in exposure.balances:
        pnl += qty * assets[i] * move
    for k, qty, entry in exposure.positions:
        m = universe.markets[k]
        settle = universe.asset_index[m.settle]
        p0 = assets[settle]
        p1 = p0 * (1 + move) if m.settle == name else p0
        iv0 = m.iv or 0.0
        iv1 = iv0
        if m.is_option:
            days = universe.option_years(m.symbol) * 365.0
            scale = (30.0 / max(days, 1.0)) ** vol_power if vol_power else 1.0
            iv1 = iv0 * (1 + vol_move * scale) if vol_relative else iv0 + vol_move * scale
        before = position_value(universe, k, qty, entry, marks[k], p0, spot, iv0)
        after = position_value(
            universe, k, qty, entry, marks[k] * (1 + move), p1, spot * (1 + move), iv1
        )
        pnl += after - before
    return pnl


def dollar_delta(
    universe: Universe, name: str, exposure: Exposure, assets: list[float], marks: list[float],
    spot: float,
) -> float:  # fmt: skip
    """USD change per unit relative move of the underlying (analytic, per position)."""
    total = 0.0
    for i, qty in exposure.balances:
        total += qty * assets[i]
    for k, qty, entry in exposure.positions:
        m = universe.markets[k]
        cs, p, mark = m.contract_size, assets[universe.asset_index[m.settle]], marks[k]
        g = 1.0 if m.settle == name else 0.0
        if m.is_option:
            price, delta = black76(
                spot, m.strike, universe.option_years(m.symbol), m.iv, m.rate,  # type: ignore[arg-type]
                m.option_type == "call",
            )[:2]  # fmt: skip
            if m.inverse:
                total += qty * cs * p * (delta - (1 - g) * price / spot)
            else:
                total += qty * cs * p * (delta * spot + g * price)
        elif m.inverse:
            total += qty * cs * p * ((1 - g) / mark + g / entry)
        else:
            total += qty * cs * p * (mark * (1 + g) - g * entry)
    return total


def option_greeks(
    universe: Universe, exposure: Exposure, assets: list[float], spot: float
) -> tuple[float, float, float, float]:
    """(gamma, vega, theta, rho) in USD of the options, × settle price (÷ spot when
    inverse); rho with the forward fixed, −T·V."""
    gamma = vega = theta = rho = 0.0
    for k, qty, _ in exposure.positions:
        m = universe.markets[k]
        if not m.is_option:
            continue
        p = assets[universe.asset_index[m.settle]]
        conv = m.contract_size * (p / spot if m.inverse else p)
        years = universe.option_years(m.symbol)
        price, _, g, v, t = black76(
            spot, m.strike, years, m.iv, m.rate,  # type: ignore[arg-type]
            m.option_type == "call",
        )  # fmt: skip
        gamma += qty * g * conv
        vega += qty * v * conv
        theta += qty * t * conv
        rho += qty * (-years * price) * conv
    return gamma, vega, theta, rho


def vega_per_move(universe: Universe, exposure: Exposure, assets: list[float], spot: float,
                  vol_power: float, vol_relative: bool) -> float:  # fmt: skip
    """USD vega per unit of the underlying's vol move (× iv when relative, × term scale)."""
    total = 0.0
    for k, qty, _ in exposure.positions:
        m = universe.markets[k]
        if not m.is_option:
            continue
        p = assets[universe.asset_index[m.settle]]
        conv = m.contract_size * (p / spot if m.inverse else p)
        years = universe.option_years(m.symbol)
        v = black76(spot, m.strike, years, m.iv, m.rate, m.option_type == "call")[3]  # type: ignore[arg-type]
        scale = (30.0 / max(years * 365.0, 1.0)) ** vol_power if vol_power else 1.0
        total += qty * v * conv * scale * (m.iv if vol_relative else 1.0)  # type: ignore[operator]
    return total


def underlying_charges(
    universe: Universe, model: str, exposures: dict[str, Exposure], assets: list[float],
    marks: list[float], spots: dict[str, float],
) -> float:  # fmt: skip
    """Σ over underlyings with parameters of (charge − credits + short-option minimum)."""
    cfg = universe.portfolio
    charge: dict[str, float] = {}
    delta: dict[str, float] = {}
    short_min: dict[str, float] = {}
    for name, ex in exposures.items():
        p = cfg.for_underlying(name)
        if p is None:
            continue
        s = spots[name]
        delta[name] = dollar_delta(universe, name, ex, assets, marks, s)
        if model == "delta":
            gamma = option_greeks(universe, ex, assets, s)[0]
            full = [abs(x) for x, _, w in p.scenarios if w >= 1.0] or [
                abs(x) for x, _, _ in p.scenarios
            ]
            price_range = max(full)
            vol_range = max(abs(v) for _, v, _ in p.scenarios)
            vega = vega_per_move(universe, ex, assets, s, p.vol_power, p.vol_relative)
            charge[name] = (
                abs(delta[name]) * p.delta_rate
                + 0.5 * max(-gamma * s * s, 0.0) * price_range**2
                + abs(vega) * vol_range
            )
        else:
            worst = 0.0
            for move, vol_move, weight in p.scenarios:
                pnl = scenario_pnl(
                    universe,
                    name,
                    ex,
                    move,
                    vol_move,
                    p.vol_power,
                    p.vol_relative,
                    assets,
                    marks,
                    s,
                )
                worst = max(worst, -weight * pnl)
            charge[name] = worst
        short_min[name] = sum(
            -qty * universe.markets[k].contract_size * p.short_option_min * s
            for k, qty, _ in ex.positions
            if universe.markets[k].is_option and qty < 0
        )
        # Deribit's contingencies: every option, long or short, and offsetting futures.
        short_min[name] += sum(
            abs(qty) * universe.markets[k].contract_size * p.option_contingency * s
            for k, qty, _ in ex.positions
            if universe.markets[k].is_option
        )
        longs = shorts = 0.0
        for k, qty, entry in ex.positions:
            if not universe.markets[k].is_option:
                one = Exposure(positions=[(k, qty, entry)])
                dd = dollar_delta(universe, name, one, assets, marks, s)
                longs, shorts = longs + max(dd, 0.0), shorts + max(-dd, 0.0)
        short_min[name] += p.futures_offset * min(longs, shorts)
    # Inter-underlying credits: opposite net deltas; matched delta earns rate × charge share.
    free = dict(delta)
    for a, b, rate in cfg.offsets:
        if a not in charge or b not in charge or free[a] * free[b] >= 0:
            continue
        matched = min(abs(free[a]), abs(free[b]))
        credit_a = rate * charge[a] * matched / abs(free[a])
        credit_b = rate * charge[b] * matched / abs(free[b])
        charge[a] -= credit_a
        charge[b] -= credit_b
        free[a] -= math.copysign(matched, free[a])
        free[b] -= math.copysign(matched, free[b])
    return sum(charge[n] + short_min[n] for n in charge)


__all__ = [
    "Exposure",
    "account_greeks",
    "black76",
    "dollar_delta",
    "norm_cdf",
    "option_greeks",
    "option_numbers",
    "option_value",
    "scenario_pnl",
    "underlying_charges",
]


# ---- accounts --------------------------------------------------------------------------------
def account_greeks(
    universe: Universe, acct: Any, assets: list[float], marks: list[float],
    spots: dict[str, float],
) -> dict[str, tuple[float, float, float, float, float]]:  # fmt: skip
    """{underlying: (delta in underlying units, gamma, vega, theta, rho)} in universe order; every
    position (cross or isolated) and every balance of the asset named like the underlying."""
    exposures: dict[str, Exposure] = {}
    for i, qty in acct.balances.items():
        symbol = universe.assets[i].symbol
        if symbol in universe.underlyings:
            exposures.setdefault(symbol, Exposure()).balances.append((i, qty))
    for k, qty, entry, _ in acct.positions:
        if qty != 0:
            name = universe.markets[k].underlying
            exposures.setdefault(name, Exposure()).positions.append((k, qty, entry))
    out = {}
    for name in universe.underlyings:
        if name in exposures:
            ex, s = exposures[name], spots[name]
            delta = dollar_delta(universe, name, ex, assets, marks, s) / s
            out[name] = (delta, *option_greeks(universe, ex, assets, s))
    return out
