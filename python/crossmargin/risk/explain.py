"""Why an account stands where it does: each balance's weighted value, each position's
notional, bracket, requirement and uPnL, and which margin test failed.

The numbers are the Rust kernel's own, recorded row by row while it evaluates the account
(``crossmargin_core::explain``), so the totals are bit-for-bit those of
:meth:`crossmargin.Engine.evaluate` (standard model) and the rows add up to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from crossmargin import _core
from crossmargin.book import Book
from crossmargin.exceptions import BookTypeError, UnknownAccountError
from crossmargin.prices import PriceOverrides, resolve
from crossmargin.table import Table, Tabular
from crossmargin.universe import Universe


@dataclass(frozen=True)
class Check:
    """One margin test: ``value`` compared with ``threshold`` (passes when value ≥ it)."""

    name: str
    value: float
    threshold: float
    passed: bool
    meaning: str


@dataclass(frozen=True)
class Explanation(Tabular):
    """One account: its totals (``margin``, the fields of a MarginResult row), its rows
    (``balances``, ``positions``: Tables in the kernel's order, universe order) and the
    margin tests (``checks``).

    Tables (the result protocol, :mod:`crossmargin.table`): **main** ``"positions"`` (each
    position's notional, bracket, requirement and uPnL); also ``"balances"`` and
    ``"checks"`` (name, value, threshold, passed, meaning).
    """

    _TABLES = ("positions", "balances")

    account: int
    margin: dict[str, Any]
    balances: Table
    positions: Table
    checks: tuple[Check, ...]

    @property
    def tables(self) -> dict[str, Table]:
        return {
            "positions": self.positions,
            "balances": self.balances,
            "checks": Table(
                {
                    "name": np.array([c.name for c in self.checks], dtype=object),
                    "value": np.array([c.value for c in self.checks], dtype=np.float64),
                    "threshold": np.array([c.threshold for c in self.checks], dtype=np.float64),
                    "passed": np.array([c.passed for c in self.checks], dtype=bool),
                    "meaning": np.array([c.meaning for c in self.checks], dtype=object),
                }
            ),
        }

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: totals, rows as lists of records, checks."""

        def records(t: Table) -> list[dict[str, Any]]:
            cols = {k: t[k].tolist() for k in t}
            return [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]

        return {
            "account": self.account,
            "margin": self.margin,
            "balances": records(self.balances),
            "positions": records(self.positions),
            "checks": [c.__dict__ for c in self.checks],
        }

    def __str__(self) -> str:
        m = self.margin
        out = [f"account {self.account}"]
        out.append(
            f"  equity {m['equity']:,.2f}  upnl {m['upnl']:,.2f}  adj_equity "
            f"initial {m['adj_equity_initial']:,.2f} / maint {m['adj_equity_maint']:,.2f}  "
            f"im {m['im']:,.2f}  mm {m['mm']:,.2f}"
        )
        if len(self.balances):
            out.append("  balances (asset, qty, price, value, collateral initial / maint):")
            b = self.balances
            for i in range(len(b)):
                out.append(
                    f"    {b.asset[i]:<10} {b.qty[i]:>16,.8g} {b.price[i]:>14,.6g} "
                    f"{b.value[i]:>16,.2f} {b.collateral_initial[i]:>16,.2f} / "
                    f"{b.collateral_maint[i]:,.2f}"
                )
        if len(self.positions):
            out.append(
                "  positions (market, qty, entry, mark, notional, bracket, upnl, im, mm, margin):"
            )
            p = self.positions
            for i in range(len(p)):
                bracket = "option" if p.bracket[i] < 0 else f"#{p.bracket[i]}"
                iso = (
                    f"isolated {p.isolated_margin[i]:,.2f}" if p.isolated_margin[i] > 0 else "cross"
                )
                out.append(
                    f"    {p.market[i]:<12} {p.qty[i]:>12,.6g} {p.entry_price[i]:>12,.6g} "
                    f"{p.mark[i]:>12,.6g} {p.notional[i]:>14,.2f} {bracket:>7} "
                    f"{p.upnl[i]:>12,.2f} {p.im[i]:>12,.2f} {p.mm[i]:>12,.2f} {iso}"
                )
        out.append("  checks:")
        for c in self.checks:
            mark = "ok  " if c.passed else "FAIL"
            out.append(f"    [{mark}] {c.name}: {c.value:,.2f} vs {c.threshold:,.2f} — {c.meaning}")
        return "\n".join(out)


def explain(
    engine: _core.Engine,
    universe: Universe,
    book: Book,
    view: _core.BookView,
    account: int,
    prices: PriceOverrides = None,
) -> Explanation:
    """The explanation of ``account`` under the standard model (see the module docstring):
    ``book`` bound to ``universe`` (which ``engine`` holds compiled) as ``view``; the
    implementation of :meth:`crossmargin.Engine.explain`."""
    if isinstance(account, bool) or not isinstance(account, int | np.integer):
        raise BookTypeError(
            f"account: {account!r} is not an account id (an integer)", column="account"
        )
    ids = book.accounts
    i = int(np.searchsorted(ids, account))
    if i >= len(ids) or ids[i] != account:
        raise UnknownAccountError(f"account {account} is not in the book", column="account")
    u = universe
    out = engine.explain(view, resolve(u, prices), i)
    assets = np.array([a.symbol for a in u.assets] or [""], dtype=object)
    markets = np.array([m.symbol for m in u.markets] or [""], dtype=object)
    bal = {k: np.asarray(v) for k, v in out["balances"].items()}
    pos = {k: np.asarray(v) for k, v in out["positions"].items()}
    bal["asset"] = assets[bal["asset"].astype(np.intp)] if len(bal["qty"]) else bal["asset"]
    pos["market"] = markets[pos["market"].astype(np.intp)] if len(pos["qty"]) else pos["market"]
    margin = dict(out["margin"])
    return Explanation(int(account), margin, Table(bal), Table(pos), _checks(margin, Table(pos)))


def _checks(m: dict[str, Any], pos: Table) -> tuple[Check, ...]:
    checks = [
        Check(
            "maintenance",
            m["adj_equity_maint"],
            m["mm"],
            not m["adj_equity_maint"] < m["mm"],
            "cross pool: adj_equity_maint < mm makes the account liquidatable (mm holds the "
            "closing-fee reserves, margin['fee_reserve'])",
        ),
        Check(
            "initial",
            m["adj_equity_initial"],
            m["im"],
            not m["adj_equity_initial"] < m["im"],
            "cross pool: free_collateral < 0 blocks new risk (not a liquidation)",
        ),
    ]
    for i in np.flatnonzero(pos["isolated_margin"] > 0) if len(pos) else []:
        own = float(pos["isolated_margin"][i] + pos["equity"][i])
        checks.append(
            Check(
                f"isolated {pos['market'][i]}",
                own,
                float(pos["mm"][i]),
                not bool(pos["isolated_below_maintenance"][i]),
                "isolated margin + its uPnL (an option: its value) < its mm (with its fee "
                "reserve) liquidates it",
            )
        )
    checks.append(
        Check(
            "bankruptcy",
            m["equity"],
            0.0,
            not m["bankrupt"],
            "equity < 0: the account owes more than it holds",
        )
    )
    return tuple(checks)


__all__ = ["Check", "Explanation", "explain"]
