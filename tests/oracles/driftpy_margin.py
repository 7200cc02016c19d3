"""driftpy's own margin functions on accounts given as JSON (stdin) → JSON (stdout).

Runs in a virtualenv of its own with a pinned driftpy (it pins numpy < 2; .ci/test makes it),
so the differential test in tests/test_venues.py can run crossmargin and driftpy side by
side without sharing a process. Input: {"spot": {symbol: [wi, wm, li, lm, imf]}, "perp":
[imr, mmr, imf], "price": {symbol: usd}, "accounts": [{"balances": [[symbol, qty]],
"positions": [[underlying, base, entry]]}]}. Output: per account [total collateral initial,
maintenance, margin requirement initial, maintenance], composed from driftpy's
``calculate_asset_weight``, ``calculate_liability_weight`` and
``calculate_market_margin_ratio``.

driftpy computes in Drift's fixed point (weights in 1e-4); its precision constants are raised
(weights and ratios in 1e-10, sizes in 1e15 with the imf factor scaled to match) so that
on-chain rounding stays below the test's tolerance — the formulas are driftpy's.
"""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import driftpy.math.margin as margin
import driftpy.types as types

HP = 10**10
DECIMALS = 6


def main() -> None:
    spec = json.load(sys.stdin)
    margin.SPOT_WEIGHT_PRECISION = HP
    margin.MARGIN_PRECISION = HP
    margin.AMM_RESERVE_PRECISION = 10**15
    cat = margin.MarginCategory
    spot = {
        s: SimpleNamespace(
            decimals=DECIMALS,
            imf_factor=imf * 1e6 / 1_000.0,  # raw 1e-6 units, ÷1000 for the 1e15 size scale
            initial_asset_weight=round(wi * HP),
            maintenance_asset_weight=round(wm * HP),
            initial_liability_weight=round(li * HP),
            maintenance_liability_weight=round(lm * HP),
            scale_initial_asset_weight_start=0,
        )
        for s, (wi, wm, li, lm, imf) in spec["spot"].items()
    }
    imr, mmr, imf = spec["perp"]
    perp = SimpleNamespace(
        status=types.MarketStatus.Active(),
        margin_ratio_initial=round(imr * HP),
        margin_ratio_maintenance=round(mmr * HP),
        high_leverage_margin_ratio_initial=0,
        high_leverage_margin_ratio_maintenance=0,
        imf_factor=imf * 1e6,
    )
    price = spec["price"]
    out = []
    for acct in spec["accounts"]:
        tc = {cat.INITIAL: 0.0, cat.MAINTENANCE: 0.0}
        req = {cat.INITIAL: 0.0, cat.MAINTENANCE: 0.0}
        for s, q in acct["balances"]:
            amount = abs(q) * 10**DECIMALS
            for c in cat:
                if q > 0:
                    w = margin.calculate_asset_weight(amount, 0, spot[s], c) / HP
                    tc[c] += q * price[s] * w
                else:
                    w = margin.calculate_liability_weight(amount, spot[s], c) / HP
                    req[c] += -q * price[s] * w
        for underlying, base, entry in acct["positions"]:
            mark = price[underlying]
            for c in cat:
                ratio = margin.calculate_market_margin_ratio(perp, abs(base) * 1e9, c) / HP
                req[c] += abs(base) * mark * ratio
                tc[c] += base * (mark - entry)  # unrealized P&L weight 1
        out.append([tc[cat.INITIAL], tc[cat.MAINTENANCE], req[cat.INITIAL], req[cat.MAINTENANCE]])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
