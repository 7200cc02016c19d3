"""Plain-Python CME SPAN: the oracle of the Rust core's span module, written to be read next
to docs/MODEL.md ("SPAN"). Every engine-computed risk array is a full revaluation of the
position in each scenario; nothing is precomputed or shared between accounts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crossmargin.book import Book
from crossmargin.reference import portfolio as pm
from crossmargin.reference.margin import (
    account_rows,
    evaluate_account,
    margin_ratio,
    position_numbers,
)
from crossmargin.reference.prices import PriceOverrides, resolve, underlying_spots
from crossmargin.span import SpanConfig
from crossmargin.table import Table
from crossmargin.universe import Universe

N = 16


def scenarios(price_scan: float, vol_scan: float, multiple: float, cover: float) -> list:
    """CME's 16 scenarios (price move, vol move, weight): unchanged, +1/3, −1/3, +2/3, −2/3,
    +3/3, −3/3 of the scan range, each with volatility up then down; then ± multiple × the
    range at the cover fraction."""
    out = []
    for frac in (0.0, 1 / 3, -1 / 3, 2 / 3, -2 / 3, 1.0, -1.0):
        out += [(frac * price_scan, vol_scan, 1.0), (frac * price_scan, -vol_scan, 1.0)]
    out += [(multiple * price_scan, 0.0, cover), (-multiple * price_scan, 0.0, cover)]
    return out


@dataclass
class Holding:
    """One account's positions in one combined commodity."""

    loss: list[float] = field(default_factory=lambda: [0.0] * N)
    delta: dict[int, float] = field(default_factory=dict)  # tier → composite delta
    short_calls: float = 0.0
    short_puts: float = 0.0
    nov: float = 0.0


def spread(legs: list[tuple[Any, float, bool]], delta: dict[Any, float]) -> float:
    """Spreads formed on ``delta`` by ``legs`` (leg, ratio, side A): legs of one side must hold
    delta of one sign, the other side the opposite sign; their delta is used up."""
    first, _, first_a = legs[0]
    d0 = delta.get(first, 0.0)
    if d0 == 0.0:
        return 0.0
    n = math.inf
    for leg, ratio, side_a in legs:
        d = delta.get(leg, 0.0)
        want = math.copysign(1.0, d0) if side_a == first_a else -math.copysign(1.0, d0)
        if d == 0.0 or math.copysign(1.0, d) != want:
            return 0.0
        n = min(n, abs(d) / ratio)
    for leg, ratio, _ in legs:
        d = delta[leg]
        delta[leg] = 0.0 if abs(d) / ratio == n else d - math.copysign(n * ratio, d)
    return n


def scan_and_price_risk(loss: list[float]) -> tuple[float, float]:
    """Scan risk = the worst scenario (≥ 0); price risk = scan − time risk (mean of scenarios
    1, 2) − volatility risk (half the gap to the worst scenario's other-volatility pair)."""
    worst = max(loss)
    at = loss.index(worst)
    scan = max(worst, 0.0)
    if scan == 0.0:
        return 0.0, 0.0
    pair = at ^ 1 if at < 14 else at
    time = 0.5 * (loss[0] + loss[1])
    vol = 0.5 * (worst - loss[pair])
    return scan, min(max(scan - time - vol, 0.0), scan)


def evaluate(
    universe: Universe, book: Book, config: SpanConfig, prices: PriceOverrides = None
) -> tuple[Table, Table]:
    """(accounts, commodities) as :meth:`crossmargin.Engine.span` returns them."""
    a, m = resolve(universe, prices)
    spots = underlying_spots(universe, a, m)
    ccs = {c.name: c for c in config.commodities}
    names = [c.name for c in config.commodities]
    contract = {c.market: c for c in config.contracts}
    acc_rows, cc_rows = [], []
    for account_id, acct in sorted(account_rows(universe, book).items()):
        std = evaluate_account(universe, acct, a, m, spots)
        outside = [0.0, 0.0]
        held: dict[str, Holding] = {}
        for k, qty, entry, isolated in acct.positions:
            mk = universe.markets[k]
            if isolated > 0:
                continue
            settle = a[universe.asset_index[mk.settle]]
            c = contract.get(mk.symbol)
            if c is None:
                if mk.is_option:
                    _, _, im, mm = pm.option_numbers(
                        mk, qty, entry, m[k], settle, spots[mk.underlying]
                    )
                else:
                    _, im, mm = position_numbers(mk, qty, entry, m[k], settle)
                outside[0] += im
                outside[1] += mm
                continue
            h = held.setdefault(c.combined_commodity, Holding())
            if qty == 0:
                continue
            if c.risk_array is not None:
                for s in range(N):
                    h.loss[s] += qty * c.risk_array[s]
                delta = qty * c.delta  # type: ignore[operator]
            else:
                cc = ccs[c.combined_commodity]
                ex = pm.Exposure(positions=[(k, qty, entry)])
                spot = spots[mk.underlying]
                grid = scenarios(cc.price_scan, cc.vol_scan, cc.extreme_multiple, cc.cover)
                for s, (move, vol, weight) in enumerate(grid):
                    pnl = pm.scenario_pnl(
                        universe, mk.underlying, ex, move, vol, 0.0, False, a, m, spot
                    )
                    h.loss[s] -= weight * pnl
                delta = pm.dollar_delta(universe, mk.underlying, ex, a, m, spot) / spot
            h.delta[c.tier] = h.delta.get(c.tier, 0.0) + delta
            if mk.is_option:
                h.nov += pm.option_numbers(mk, qty, entry, m[k], settle, spots[mk.underlying])[0]
                if qty < 0:
                    if mk.option_type == "call":
                        h.short_calls -= qty
                    else:
                        h.short_puts -= qty
        out: dict[str, dict[str, float]] = {}
        net: dict[str, float] = {}
        wfpr: dict[str, float] = {}
        for name in sorted(held, key=names.index):
            h, cc = held[name], ccs[name]
            scan, price_risk = scan_and_price_risk(h.loss)
            used: dict[int, float] = {}
            intra = 0.0
            for sp in config.intra:
                if sp.combined_commodity != name:
                    continue
                legs = list(sp.legs)
                n = spread(legs, h.delta)
                intra += sp.rate * n
                for tier, ratio, _ in legs:
                    used[tier] = used.get(tier, 0.0) + n * ratio
            spot_charge = 0.0
            if cc.spot_tier is not None:
                spot_charge = cc.spot_spread_rate * used.get(
                    cc.spot_tier, 0.0
                ) + cc.spot_outright_rate * abs(h.delta.get(cc.spot_tier, 0.0))
            net[name] = sum(h.delta.get(t, 0.0) for t in sorted(h.delta))
            wfpr[name] = price_risk / abs(net[name]) if net[name] != 0 else 0.0
            out[name] = {
                "scan": scan,
                "intra": intra,
                "spot": spot_charge,
                "inter": 0.0,
                "som": cc.som_rate * max(h.short_calls, h.short_puts),
                "nov": h.nov,
            }
        if len(out) > 1:
            net0 = {name: abs(d) for name, d in net.items()}
            for inter in config.inter:
                legs = list(inter.legs)
                if any(leg not in out for leg, _, _ in legs):
                    continue
                n = spread(legs, net)
                if n == 0:
                    continue
                if inter.method == "wpr":
                    for leg, ratio, _ in legs:
                        out[leg]["inter"] += inter.rate * n * ratio * wfpr[leg]
                    continue
                # Scanning-based: each leg's share f of its array, scanned together; per
                # scenario the losses less rate × the gains; the charge replaces the shares'
                # scans f × scan, split in proportion to them.
                f = {leg: n * ratio / net0[leg] for leg, ratio, _ in legs}
                worst = 0.0
                for s in range(N):
                    parts = [f[leg] * held[leg].loss[s] for leg, _, _ in legs]
                    loss = sum(x for x in parts if x > 0)
                    gain = sum(x for x in parts if x <= 0)
                    worst = max(worst, loss + inter.rate * gain)
                shares = {leg: f[leg] * out[leg]["scan"] for leg, _, _ in legs}
                total = sum(shares.values())
                for leg, _, _ in legs:
                    part = worst * shares[leg] / total if total > 0 else 0.0
                    out[leg]["inter"] += shares[leg] - part
        im, mm = outside
        for name, o in out.items():
            o["risk"] = max(o["scan"] + o["intra"] + o["spot"] - o["inter"], o["som"])
            o["initial"] = ccs[name].im_ratio * o["risk"]
            o["total"] = o["risk"] - o["nov"]
            im += o["initial"]
            mm += o["risk"]
            cc_rows.append({"account": account_id, "combined_commodity": name, **o})
        acc_rows.append(
            {
                "account": account_id,
                "equity": std.equity,
                "upnl": std.upnl,
                "adj_equity_initial": std.adj_equity_initial,
                "adj_equity_maint": std.adj_equity_maint,
                "im": im,
                "mm": mm,
                "free_collateral": std.adj_equity_initial - im,
                "margin_ratio": margin_ratio(std.adj_equity_maint, mm),
                "liquidatable": std.adj_equity_maint < mm or std.isolated_liquidatable,
                "bankrupt": std.equity < 0,
            }
        )
    return _table(acc_rows, ACCOUNT_COLUMNS), _table(cc_rows, COMMODITY_COLUMNS)


ACCOUNT_COLUMNS = ("account", "equity", "upnl", "adj_equity_initial", "adj_equity_maint", "im",
                   "mm", "free_collateral", "margin_ratio", "liquidatable", "bankrupt")  # fmt: skip
COMMODITY_COLUMNS = ("account", "combined_commodity", "scan", "intra", "spot", "inter", "som",
                     "nov", "risk", "initial", "total")  # fmt: skip


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> Table:
    return Table({k: np.array([r[k] for r in rows]) for k in columns})


__all__ = ["evaluate", "scan_and_price_risk", "scenarios", "spread"]
