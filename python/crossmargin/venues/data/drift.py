"""Drift v2 from a JSON rendering of driftpy's decoded accounts: a universe from spot and perp
market snapshots, book rows from ``User`` accounts (docs/MODEL.md "Venue payloads").

Drift's state lives in Solana accounts; driftpy decodes them (``SpotMarketAccount``,
``PerpMarketAccount``, ``UserAccount``). The rendering read here keeps driftpy's field names
and Drift's integer units (tests/fixtures/venues/drift/README.md):

- ``spot_markets`` (params): ``[{market_index, name, decimals, initial_asset_weight,
  maintenance_asset_weight, initial_liability_weight, maintenance_liability_weight (×1e4),
  imf_factor (×1e6), cumulative_deposit_interest, cumulative_borrow_interest (×1e10),
  oracle_price (×1e6)}]`` → an asset per market: price oracle_price / 1e6, weights / 1e4,
  ``imf_factor`` / 1e6 (the model's size discount and premium, docs/MODEL.md "Size discount and
  premium"), keyed by ``name``.
- ``perp_markets`` (params): ``[{market_index, name, quote_spot_market_index,
  margin_ratio_initial, margin_ratio_maintenance (×1e4), imf_factor (×1e6), oracle_price}]`` →
  a perp ``name`` settled in its quote spot market's asset, underlying the name without
  "-PERP", mark oracle_price / 1e6, one bracket (∞, initial ratio, maintenance ratio) and the
  imf factor: the inputs of the ``crossmargin.venues.drift_v2`` preset.
- a user (accounts: one ``AUTHORITY-SUBACCOUNT.json`` each): ``spot_positions[]``
  ``{market_index, scaled_balance, balance_type}`` → balance = scaled_balance × cumulative
  interest (deposit or borrow) / 10^(19 − decimals) tokens / 10^decimals, negative for a
  "Borrow"; ``perp_positions[]`` ``{market_index, base_asset_amount (×1e9),
  quote_asset_amount, quote_entry_amount (×1e6)}`` → qty base / 1e9, entry −quote_entry /
  base, and (quote_asset_amount − quote_entry_amount) / 1e6 added to the quote asset's
  balance (fees and settled P&L: the engine's equity is then Drift's base × oracle +
  quote_asset_amount). Unsettled funding (``last_cumulative_funding_rate``) is not read.

:func:`accounts` needs the spot markets (``params``) for the interest indices and decimals.
Drift's exact fixed-point evaluation (integer weights, rounding) is not this module's: it
maps payloads onto the standard model, as the preset does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from crossmargin.universe import Asset, Market, Universe
from crossmargin.venues.data.payload import (
    ACCOUNTS,
    AccountIds,
    Imported,
    Node,
    Rows,
    payload,
    reported_table,
)
from crossmargin.venues.data.payload import (
    PARAMS as PARAMS_KIND,
)

VENUE = "drift"
INF = math.inf
#: The parameter payloads :func:`universe` reads.
PARAMS = ("spot_markets", "perp_markets")
WEIGHT, IMF, PRICE, BASE, QUOTE = 1e4, 1e6, 1e6, 1e9, 1e6
BALANCE_TYPES = ("Deposit", "Borrow")


def _markets(params: Mapping[str, Any], name: str) -> dict[int, Node]:
    node = payload(params, name, VENUE, PARAMS_KIND)
    rows = node.list(name) if isinstance(node.value, Mapping) else list(node.items())
    out: dict[int, Node] = {}
    for row in rows:
        index = row.integer("market_index")
        if index in out:
            raise row.error(f"market_index {index} appears twice", "market_index")
        out[index] = row
    return out


def universe(
    params: Mapping[str, Any],
    *,
    marks: Mapping[str, float] | None = None,
    symbols: Sequence[str] | None = None,
    prices: Mapping[str, float] | None = None,
) -> Universe:
    """A :class:`~crossmargin.Universe` from Drift market snapshots (module docstring):
    every spot market an asset, every perp market (or ``symbols``) a perp; ``marks`` /
    ``prices`` override the oracle prices. An unknown perp, a perp whose quote spot market is
    missing, or a missing field is a ``ConfigError`` naming the payload and the field.

    Example::

        from crossmargin.venues.data import drift, payload
        u = drift.universe(payload.read_params("tests/fixtures/venues/drift/params"))
    """
    # Not routed through venues.drift_universe (the exact fixed-point form): the payload has
    # no total deposits (the scaled initial weight needs them), `marks` / `prices` override
    # in float USD where drift_universe takes integer oracle prices, and each perp settles in
    # its own quote market; this stays the float drift_v2 preset's inputs.
    spots = _markets(params, "spot_markets")
    perps = _markets(params, "perp_markets")
    usd = {k: float(v) for k, v in (prices or {}).items()}
    assets = []
    for i in sorted(spots):
        s = spots[i]
        sym = s.text("name")
        assets.append(
            Asset(
                sym,
                usd.get(sym, s.num("oracle_price") / PRICE),
                s.num("initial_asset_weight") / WEIGHT,
                s.num("maintenance_asset_weight") / WEIGHT,
                s.num("initial_liability_weight") / WEIGHT,
                s.num("maintenance_liability_weight") / WEIGHT,
                imf_factor=s.num("imf_factor") / IMF,
            )
        )
    by_name = {perps[i].text("name"): perps[i] for i in sorted(perps)}
    chosen = list(symbols) if symbols is not None else list(by_name)
    mark = {k: float(v) for k, v in (marks or {}).items()}
    markets = []
    for sym in chosen:
        if sym not in by_name:
            node = payload(params, "perp_markets", VENUE, PARAMS_KIND)
            raise node.error(f"unknown perp market {sym!r}", "name")
        p = by_name[sym]
        quote = p.integer("quote_spot_market_index")
        if quote not in spots:
            raise p.error(f"no spot market {quote} (its quote)", "quote_spot_market_index")
        markets.append(
            Market(
                sym,
                "perp",
                spots[quote].text("name"),
                sym.removesuffix("-PERP"),
                mark.get(sym, p.num("oracle_price") / PRICE),
                [
                    (
                        INF,
                        p.num("margin_ratio_initial") / WEIGHT,
                        p.num("margin_ratio_maintenance") / WEIGHT,
                    )
                ],
                imf_factor=p.num("imf_factor") / IMF,
            )
        )
    return Universe(assets, markets)


def accounts(payloads: Mapping[str, Mapping[str, Any]], params: Mapping[str, Any]) -> Imported:
    """Book rows from Drift users (``{account name: {"": user}}``, the layout
    :func:`~crossmargin.venues.data.payload.read_accounts` gives ``NAME.json`` files), with
    the spot and perp market snapshots of ``params`` (module docstring). A position in a
    market missing from ``params`` or an unknown ``balance_type`` is a ``BookError`` naming
    the row.

    Example::

        from crossmargin.venues.data import drift, payload
        params = payload.read_params("tests/fixtures/venues/drift/params")
        acc = drift.accounts(payload.read_accounts("tests/fixtures/venues/drift/accounts"), params)
    """
    spots = _markets(params, "spot_markets")
    perps = _markets(params, "perp_markets")
    ids = AccountIds()
    rows = Rows()
    reported: dict[int, dict[str, float]] = {}
    for name in sorted(payloads):
        a = ids(name)
        reported[a] = {}
        p = payloads[name]
        if "" in p:  # NAME.json
            user = Node(p[""], f"{VENUE} {name}.json", ACCOUNTS)
        else:  # NAME/user.json
            user = payload(p, "user", f"{VENUE} {name}", ACCOUNTS)
        tokens_of: dict[str, float] = {}  # spot tokens per asset
        quote_of: dict[str, int] = {}  # perps' quote beyond entry per asset, exact (×1e6)
        for sp in user.list("spot_positions"):
            index = sp.integer("market_index")
            if index not in spots:
                raise sp.error(f"no spot market {index} in spot_markets.json", "market_index")
            m = spots[index]
            kind = sp.text("balance_type")
            if kind not in BALANCE_TYPES:
                raise sp.error(f"{kind!r} is not Deposit or Borrow", "balance_type")
            interest = m.integer(
                "cumulative_deposit_interest" if kind == "Deposit" else "cumulative_borrow_interest"
            )
            decimals = m.integer("decimals")
            scaled = sp.integer("scaled_balance")
            # driftpy get_token_amount: deposits floor, borrows ceil, in mint units.
            num, den = scaled * interest, 10 ** (19 - decimals)
            tokens = num // den if kind == "Deposit" else -(-num // den)
            qty = tokens / 10**decimals
            sym = m.text("name")
            if sym in tokens_of:
                raise sp.error(f"a second position in spot market {index}", "market_index")
            tokens_of[sym] = qty if kind == "Deposit" else -qty
        for pp in user.list("perp_positions"):
            index = pp.integer("market_index")
            if index not in perps:
                raise pp.error(f"no perp market {index} in perp_markets.json", "market_index")
            m = perps[index]
            quote_asset = spots[m.integer("quote_spot_market_index")].text("name")
            base = pp.integer("base_asset_amount")
            quote = pp.integer("quote_asset_amount")
            entry_quote = pp.integer("quote_entry_amount") if base != 0 else 0
            quote_of[quote_asset] = quote_of.get(quote_asset, 0) + quote - entry_quote
            if base == 0:
                continue
            entry = -entry_quote / QUOTE / (base / BASE)
            if not entry > 0:
                raise pp.error(
                    f"quote_entry_amount {entry_quote} gives entry price {entry} for base {base}",
                    "quote_entry_amount",
                )
            rows.position(a, m.text("name"), base / BASE, entry)
        # One row per asset in name order; integers summed exactly, so that neither the
        # positions' order nor the float sum's order changes a bit.
        for asset in sorted(set(tokens_of) | set(quote_of)):
            rows.balance(a, asset, tokens_of.get(asset, 0.0) + quote_of.get(asset, 0) / QUOTE)
    balances, positions = rows.tables()
    return Imported(VENUE, balances, positions, ids.table(), reported_table(reported, ()), {})


__all__ = ["PARAMS", "VENUE", "accounts", "universe"]
