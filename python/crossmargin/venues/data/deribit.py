"""Deribit futures from Deribit's own payloads: a universe from ``public/get_instruments`` with
the margin rule of the Deribit preset, book rows from ``private/get_account_summary`` and
``private/get_positions`` (docs/MODEL.md "Venue payloads").

Parameters (a JSON-RPC response ``{"result": [...]}`` or its ``result``; may come in parts,
``instruments.BTC.json``, ``instruments.ETH.json``):

- ``instruments`` (``public/get_instruments``): ``result[]`` → the futures (``kind`` "future";
  ``settlement_period`` "perpetual" → perp, else future), settle ``settlement_currency``,
  underlying ``base_currency``, inverse when ``instrument_type`` is "reversed". Deribit counts a
  future's ``size`` in USD (its ``contract_size``, 10 USD for BTC, is the order step), so a
  contract of the model is 1 USD and the book's qty is ``size``. Margin: the preset's rule
  (docs/MODEL.md "Venue presets", Deribit futures: IM 2 % + 0.5 % per 100 coins, MM 1.5 % +
  0.5 % per 100 coins of position, a size-scaled rate on the coin notional, exact), or
  ``im_base`` / ``mm_base`` / ``slope`` given to :func:`universe`. Linear (USDC) futures,
  options and combos are not read.
- ``ticker`` (optional, ``public/ticker`` results, a list or one): marks (``mark_price``);
  ``marks=`` (e.g. :attr:`Imported.marks`, the positions' ``mark_price``) wins.

Asset prices (USD): ``prices=``, else a settle coin at its first inverse market's mark.

Accounts (``accounts``: account name → payloads):

- ``account_summary`` (``private/get_account_summary``, one currency) or ``account_summaries``
  (``private/get_account_summaries``: ``summaries[]``): each currency's ``balance`` is its
  balance (Deribit's ``equity`` = ``balance`` + ``futures_session_upl`` +
  ``futures_session_rpl`` + ``options_value``: the session's P&L not yet settled into the
  balance). Reported per account and currency: ``equity``, ``balance``, ``margin_balance``,
  ``initial_margin``, ``maintenance_margin`` as columns ``equity_BTC``, ….
- ``positions`` (``private/get_positions``): a future's qty is ``size`` (USD, signed: negative
  when ``direction`` is "sell"), entry ``average_price``, mark ``mark_price``. Reported: Σ
  ``initial_margin``, ``maintenance_margin`` and ``total_profit_loss`` per settle currency
  (``position_initial_margin_BTC``, …; the currency is the instrument name's prefix). An option
  or combo position is a ``BookError`` naming the row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from crossmargin.exceptions import ConfigError
from crossmargin.universe import Asset, Market, Universe
from crossmargin.venues.data.payload import (
    ACCOUNTS,
    AccountReader,
    Imported,
    Node,
    optional_payload,
    payload_parts,
)
from crossmargin.venues.presets import (
    DERIBIT_IM_BASE,
    DERIBIT_MM_BASE,
    DERIBIT_SLOPE,
)

VENUE = "deribit"
#: The parameter payloads :func:`universe` reads (required first).
PARAMS = ("instruments", "ticker")
#: The account payloads :func:`accounts` reads.
ACCOUNT_PAYLOADS = ("account_summary", "account_summaries", "positions")
SUMMARY = ("equity", "balance", "margin_balance", "initial_margin", "maintenance_margin")
POSITION = ("initial_margin", "maintenance_margin", "total_profit_loss")
DIRECTIONS = {"buy": 1.0, "sell": -1.0, "zero": 0.0}


def _rows(node: Node) -> list[Node]:
    """A JSON-RPC ``result`` list (or a bare list, or one object)."""
    body = node["result"] if isinstance(node.value, Mapping) and node.has("result") else node
    return list(body.items()) if isinstance(body.value, list) else [body]


def universe(
    params: Mapping[str, Any],
    *,
    marks: Mapping[str, float] | None = None,
    symbols: Sequence[str] | None = None,
    prices: Mapping[str, float] | None = None,
    im_base: float = DERIBIT_IM_BASE,
    mm_base: float = DERIBIT_MM_BASE,
    slope: float = DERIBIT_SLOPE,
) -> Universe:
    """A :class:`~crossmargin.Universe` of Deribit's inverse futures (module docstring).

    ``symbols`` selects instruments (default: every inverse future with a mark); ``im_base``,
    ``mm_base`` (fractions) and ``slope`` (rate per coin of position) set the size-scaled rule.
    An unknown instrument, a linear future, an option, one without a mark, or a missing field
    is a ``ConfigError`` naming the payload and the field.

    Example::

        from crossmargin.venues.data import deribit, payload
        params = payload.read_params("tests/fixtures/venues/deribit/params")
        u = deribit.universe(params, marks={"BTC-PERPETUAL": 7476.65})
    """
    parts = payload_parts(params, "instruments", VENUE)
    specs: dict[str, Node] = {}
    for part in parts:
        for row in _rows(part):
            specs[row.text("instrument_name")] = row
    mark: dict[str, float] = {}
    for part in payload_parts(params, "ticker", VENUE, required=False):
        for row in _rows(part):
            if row.has("mark_price"):
                mark[row.text("instrument_name")] = row.num("mark_price")
    mark.update({k: float(v) for k, v in (marks or {}).items()})

    def readable(spec: Node) -> bool:
        return spec.text("kind") == "future" and spec.text("instrument_type") == "reversed"

    chosen = (
        list(symbols)
        if symbols is not None
        else [s for s, spec in specs.items() if readable(spec) and s in mark]
    )
    # Size-scaled rates (docs/MODEL.md "Requirement shapes"): rate = base + slope × size in
    # coin, exact, as the deribit preset.
    brackets = [(math.inf, im_base, mm_base)]
    markets = []
    for s in chosen:
        if s not in specs:
            raise parts[0].error(f"unknown instrument {s!r}", "result")
        spec = specs[s]
        kind = spec.text("kind")
        if kind != "future":
            raise spec.error(f"{s}: kind {kind!r} is not read (futures only)", "kind")
        if spec.text("instrument_type") != "reversed":
            raise spec.error(
                f"{s}: a linear future has no margin rule here (inverse futures only)",
                "instrument_type",
            )
        if s not in mark:
            raise ConfigError(
                f"{VENUE}: no mark for {s!r} (give ticker.json or marks=)",
                field=f"markets[{s}].mark",
            )
        period = spec.text("settlement_period") if spec.has("settlement_period") else ""
        markets.append(
            Market(
                s,
                "perp" if period == "perpetual" else "future",
                spec.text("settlement_currency"),
                spec.text("base_currency"),
                mark[s],
                brackets,
                contract_size=1.0,
                inverse=True,
                im_shape="size_scaled",
                mm_shape="size_scaled",
                rate_slope_initial=slope,
                rate_slope_maint=slope,
            )
        )
    usd = {k: float(v) for k, v in (prices or {}).items()}
    names: list[str] = []
    for m in markets:
        if m.settle not in names:
            names.append(m.settle)
    names += [c for c in usd if c not in names]
    assets = []
    for a in names:
        inv = [m for m in markets if m.settle == a]
        px = usd[a] if a in usd else (float(inv[0].mark) if inv else 1.0)  # type: ignore[arg-type]
        assets.append(Asset(a, px))
    return Universe(assets, markets)


def _summaries(p: Mapping[str, Any], where: str) -> list[Node]:
    one = optional_payload(p, "account_summary", where, ACCOUNTS)
    many = optional_payload(p, "account_summaries", where, ACCOUNTS)
    out = [] if one is None else _rows(one)
    if many is not None:
        body = many["result"] if many.has("result") else many
        out += body.list("summaries")
    return out


def accounts(payloads: Mapping[str, Mapping[str, Any]]) -> Imported:
    """Book rows from Deribit account payloads: ``{account name: {"account_summary": ...,
    "positions": ...}}`` (module docstring).

    Example::

        from crossmargin.venues.data import deribit, payload
        acc = deribit.accounts(payload.read_accounts("tests/fixtures/venues/deribit/accounts"))
    """
    reader = AccountReader(VENUE, payloads)
    rows, marks = reader.rows, reader.marks
    for acc in reader:
        a, rep = acc.id, acc.reported
        summaries = _summaries(acc.payloads, acc.where)
        pos = acc.optional("positions")
        if not summaries and pos is None:
            acc.require("positions")  # raises, naming what is missing
        for s in summaries:
            ccy = s.text("currency")
            rows.balance(a, ccy, s.num("balance"))
            for key in SUMMARY:
                if s.has(key):
                    rep[f"{key}_{ccy}"] = s.num(key)
        for q in [] if pos is None else _rows(pos):
            inst = q.text("instrument_name")
            kind = q.text("kind")
            if kind != "future":
                raise q.error(f"{inst}: kind {kind!r} is not read (futures only)", "kind")
            ccy = inst.split("-")[0].split("_")[0]
            if q.has("mark_price"):
                marks[inst] = q.num("mark_price")
            for key in POSITION:
                col = f"position_{key}_{ccy}"
                rep[col] = rep.get(col, 0.0) + q.opt_num(key, 0.0)
            size = q.num("size")
            if size == 0:
                continue
            direction = (
                q.text("direction") if q.has("direction") else ("buy" if size > 0 else "sell")
            )
            if direction not in DIRECTIONS:
                raise q.error(f"{direction!r} is not buy, sell or zero", "direction")
            qty = abs(size) * DIRECTIONS[direction]
            if qty == 0:
                raise q.error(f"size {size} with direction 'zero'", "direction")
            rows.position(a, inst, qty, q.num("average_price"))
    return reader.imported()


__all__ = ["ACCOUNT_PAYLOADS", "PARAMS", "VENUE", "accounts", "universe"]
