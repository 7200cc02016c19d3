"""Helpers of the crossmargin test suite: the hand-written ``small`` universe and builders
of books and results from rows. The hypothesis strategies and the result assertions are
public, in :mod:`crossmargin.testing`; fixtures are in ``conftest.py``.

``small`` is a hand-written universe whose numbers are easy to check by hand:

===========  =======  ===========================================================
asset        price    weights (initial / maint), liabilities, tiers
===========  =======  ===========================================================
USDT         1        1 / 1, liabilities 1 / 1
USDC         1        0.98 / 0.99, liabilities 1 / 1
BTC          50,000   0.9 / 0.95, liabilities 1.2 / 1.1,
                      haircut tiers: 100% to 1M USD, 80% to 2M, 50% above
ETH          2,000    0.8 / 0.9, liabilities 1.3 / 1.15
===========  =======  ===========================================================

=========  =======  ======  =================================================
market     settle   mark    brackets (bound, imr, mmr), other
=========  =======  ======  =================================================
BTCUSDT    USDT     50,000  (50k, 2%, 1%), (250k, 4%, 2%), (inf, 10%, 5%)
ETHUSDT    USDT     2,000   (10k, 5%, 2.5%), (inf, 10%, 5%);
                            upnl weights 0.5 / 0.8
BTCUSD     BTC      50,000  inverse, contract 100 USD;
                            (10 BTC, 1%, 0.5%), (inf, 2%, 1%)
=========  =======  ======  =================================================
"""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path
from typing import Any

import crossmargin as cm
from crossmargin import reference


# ---- the hand-written universe -------------------------------------------------------
def make_small_universe() -> cm.Universe:
    return cm.Universe(
        assets=[
            cm.Asset("USDT", 1.0),
            cm.Asset("USDC", 1.0, weight_initial=0.98, weight_maint=0.99),
            cm.Asset(
                "BTC",
                50_000.0,
                weight_initial=0.9,
                weight_maint=0.95,
                liability_weight_initial=1.2,
                liability_weight_maint=1.1,
                haircut_tiers=[(1_000_000.0, 1.0), (2_000_000.0, 0.8), (math.inf, 0.5)],
            ),
            cm.Asset(
                "ETH",
                2_000.0,
                weight_initial=0.8,
                weight_maint=0.9,
                liability_weight_initial=1.3,
                liability_weight_maint=1.15,
            ),
        ],
        markets=[
            cm.Market(
                "BTCUSDT",
                "perp",
                "USDT",
                "BTC",
                50_000.0,
                [(50_000.0, 0.02, 0.01), (250_000.0, 0.04, 0.02), (math.inf, 0.1, 0.05)],
            ),
            cm.Market(
                "ETHUSDT",
                "perp",
                "USDT",
                "ETH",
                2_000.0,
                [(10_000.0, 0.05, 0.025), (math.inf, 0.1, 0.05)],
                upnl_weight_initial=0.5,
                upnl_weight_maint=0.8,
            ),
            cm.Market(
                "BTCUSD",
                "perp",
                "BTC",
                "BTC",
                50_000.0,
                [(10.0, 0.01, 0.005), (math.inf, 0.02, 0.01)],
                contract_size=100.0,
                inverse=True,
            ),
        ],
    )


# ---- helpers -------------------------------------------------------------------------
def balances(*rows: tuple[int, Any, float]) -> dict[str, list[Any]]:
    """Balance columns from ``(account, asset, qty)`` rows."""
    return {
        "account": [r[0] for r in rows],
        "asset": [r[1] for r in rows],
        "qty": [r[2] for r in rows],
    }


def positions(*rows: tuple[Any, ...]) -> dict[str, list[Any]]:
    """Position columns from ``(account, market, qty, entry_price[, isolated_margin])``."""
    return {
        "account": [r[0] for r in rows],
        "market": [r[1] for r in rows],
        "qty": [r[2] for r in rows],
        "entry_price": [r[3] for r in rows],
        "isolated_margin": [r[4] if len(r) > 4 else 0.0 for r in rows],
    }


def book(
    bal: list[tuple[Any, ...]] | None = None, pos: list[tuple[Any, ...]] | None = None
) -> cm.Book:
    return cm.Book.from_arrays(balances(*bal) if bal else None, positions(*pos) if pos else None)


def evaluate_both(
    universe: cm.Universe, b: cm.Book, prices: Any = None
) -> tuple[cm.MarginResult, cm.MarginResult]:
    """(engine result, reference result) of one book."""
    return cm.Engine(universe, threads=1).evaluate(b, prices=prices), reference.evaluate(
        universe, b, prices=prices
    )


def one(result: cm.MarginResult) -> dict[str, Any]:
    """The single row of a one-account result as a dict of Python scalars."""
    assert len(result) == 1, f"expected one account, got {len(result)}"
    return {c: result[c][0].item() for c in result.columns}


def run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The console script ``script`` with ``args`` in a separate process (plain output)."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [script, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
