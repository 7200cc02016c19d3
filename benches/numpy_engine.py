"""A careful vectorised NumPy implementation of docs/MODEL.md "Standard cross margin".

This is the "good NumPy engineer" baseline the benchmarks compare the Rust engine with:
the same rules as :mod:`crossmargin.reference`, but over whole columns at once. There are
no Python loops over rows or accounts; the only loops run over the handful of assets,
markets and brackets when the universe is compiled.

How the rules become array operations:

- account ids → dense indices by a direct lookup table when the ids are dense (the usual
  case: one scatter, one cumsum, one gather), else ``np.unique(return_inverse=True)``;
  per-account sums are ``np.bincount(dense, weights=..., minlength=n)``;
- duplicate (account, asset) balance rows are summed first (a scatter of row numbers into a
  dense (account, asset) slot table finds them in O(rows); sparse universes fall back to
  ``np.unique``), as the reference's per-account dict does;
- bracket and haircut-tier lookups use ONE ``np.searchsorted`` for all markets (assets):
  every group's bounds are flattened (CSR, with offsets) and sorted together; a small
  prefix-count table ``count[group, p]`` (groups × bounds, a few hundred integers) turns the
  global position ``p`` of a value into "how many bounds of its own group lie below it",
  which is the index of the first bracket whose bound is ≥ the value;
- continuity amounts (Binance "maintenance amount") and cumulative tier values are computed
  once per universe with the same floating-point steps as the reference, so the per-row
  formulas ``notional × rate − cum`` and ``base + (value − lower) × rate`` match it;
- the imf size discount / premium, inverse markets and non-unit uPnL weights are applied
  only to the rows that need them (``np.flatnonzero`` on a per-asset/market flag).

Entry points: :class:`NumpyEngine` (compile the universe once, ``prepare(book)`` once per
book, ``evaluate_prepared`` many times, or ``evaluate(book)`` for both) and the function
:func:`evaluate` with the signature of ``crossmargin.reference.evaluate``. Results are a
dict of numpy arrays named like :class:`crossmargin.MarginResult`'s columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from crossmargin.book import Book
from crossmargin.prices import PriceOverrides, resolve
from crossmargin.result import MARGIN_COLUMNS
from crossmargin.universe import Universe

INITIAL, MAINT = 0, 1


# ---- segmented lookups -----------------------------------------------------------------
class SegmentedBounds:
    """Sorted bound arrays of several groups (markets or assets), flattened with offsets.

    :meth:`rank` answers, for each row, how many bounds of the row's own group are strictly
    below its value (= the index of the first bound ≥ the value, as ``side="left"``) with a
    single ``np.searchsorted`` over all groups' bounds plus one gather from a prefix-count
    table. NaN values rank past every bound, like a comparison ``value <= bound`` that fails.
    """

    def __init__(self, groups: list[np.ndarray]) -> None:
        lengths = np.array([len(g) for g in groups], dtype=np.intp)
        self.n_groups = len(groups)
        self.lengths = lengths
        self.offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.intp)
        flat = (
            np.concatenate([np.asarray(g, dtype=np.float64) for g in groups])
            if groups
            else np.empty(0)
        )
        self.flat = flat
        owner = np.repeat(np.arange(self.n_groups, dtype=np.intp), lengths)
        order = np.argsort(flat, kind="stable")
        self.sorted = flat[order]
        width = len(flat) + 1
        hits = np.zeros((max(self.n_groups, 1), width), dtype=np.intp)
        hits[owner[order], np.arange(1, width)] = 1
        # prefix[g, p]: how many of the p smallest bounds (over all groups) belong to g.
        self._prefix = np.cumsum(hits, axis=1).ravel()
        self._width = width

        # Most values sit in their group's first tier: only the others are searched.
        if not (lengths > 0).all():
            raise ValueError("every group needs at least one bound")
        self.first = flat[self.offsets[:-1]]

    def rank(self, group: np.ndarray, x: np.ndarray) -> np.ndarray:
        above = ~(x <= self.first[group])  # NaN counts as above every bound
        r = np.flatnonzero(above)
        k = np.zeros(len(x), dtype=np.intp)
        if len(r):
            xr = x[r]
            p = np.searchsorted(self.sorted, xr, side="left")
            k[r] = p if self.n_groups == 1 else self._prefix[group[r] * self._width + p]
        return k

    def locate(self, group: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Flat index of the first bound ≥ x in the row's group, the group's last bound
        when x is beyond every bound (brackets: the last bracket applies)."""
        j = np.take(self.offsets, group)
        above = ~(x <= np.take(self.first, group))
        r = np.flatnonzero(above)
        if len(r):
            gr = group[r]
            p = np.searchsorted(self.sorted, x[r], side="left")
            k = p if self.n_groups == 1 else np.take(self._prefix, gr * self._width + p)
            j[r] += np.minimum(k, np.take(self.lengths, gr) - 1)
        return j


# ---- the universe as flat tables -------------------------------------------------------
def _bracket_amounts(brackets: tuple[tuple[float, float, float], ...]) -> tuple[list[float], ...]:
    """Continuity amounts per bracket, by the reference's running sums (same rounding)."""
    cum_im = cum_mm = 0.0
    out_im, out_mm = [], []
    for k, (_bound, imr, mmr) in enumerate(brackets):
        if k > 0:
            floor, prev_imr, prev_mmr = brackets[k - 1]
            cum_im += floor * (imr - prev_imr)
            cum_mm += floor * (mmr - prev_mmr)
        out_im.append(cum_im)
        out_mm.append(cum_mm)
    return out_im, out_mm


def _tier_rows(tiers: tuple[tuple[float, float], ...]) -> tuple[list[float], ...]:
    """(lower bound, rate, value below the tier) per tier, and the capped total."""
    lower, total = 0.0, 0.0
    lowers, rates, bases = [], [], []
    for bound, rate in tiers:
        lowers.append(lower)
        rates.append(rate)
        bases.append(total)
        total += (bound - lower) * rate
        lower = bound
    return lowers, rates, bases, [total]


class CompiledUniverse:
    """Per-asset and per-market parameters as arrays; bracket and tier tables flattened."""

    def __init__(self, universe: Universe) -> None:
        self.universe = universe
        assets, markets = universe.assets, universe.markets
        na, nm = len(assets), len(markets)
        self.n_assets, self.n_markets = na, nm

        # Collateral weight by (asset, sign): row index = asset + na·(qty > 0).
        self.weight = np.array(
            [
                [a.liability_weight_initial for a in assets] + [a.weight_initial for a in assets],
                [a.liability_weight_maint for a in assets] + [a.weight_maint for a in assets],
            ],
            dtype=np.float64,
        ).reshape(2, 2 * na)
        self.asset_imf = np.array([a.imf_factor for a in assets], dtype=np.float64)
        self.has_asset_imf = self.asset_imf != 0.0

        # Haircut tiers of the assets that have them.
        tiered = [i for i, a in enumerate(assets) if a.haircut_tiers]
        self.tier_group = np.full(na, -1, dtype=np.intp)
        self.tier_group[tiered] = np.arange(len(tiered), dtype=np.intp)
        self.has_tiers = self.tier_group >= 0
        self.tiers: SegmentedBounds | None = None
        if tiered:
            rows = [_tier_rows(tuple(assets[i].haircut_tiers or ())) for i in tiered]
            self.tiers = SegmentedBounds(
                [np.array([b for b, _ in assets[i].haircut_tiers or ()]) for i in tiered]
            )
            self.tier_lower = np.concatenate([r[0] for r in rows])
            self.tier_rate = np.concatenate([r[1] for r in rows])
            self.tier_base = np.concatenate([r[2] for r in rows])
            self.tier_cap = np.concatenate([r[3] for r in rows])

        # Markets.
        self.contract_size = np.array([m.contract_size for m in markets], dtype=np.float64)
        self.inverse = np.array([m.inverse for m in markets], dtype=bool)
        self.any_inverse = bool(self.inverse.any())
        self.settle = np.array([universe.asset_index[m.settle] for m in markets], dtype=np.intp)
        self.market_imf = np.array([m.imf_factor for m in markets], dtype=np.float64)
        self.has_market_imf = self.market_imf > 0.0
        self.upnl_weight = np.array(
            [[m.upnl_weight_initial for m in markets], [m.upnl_weight_maint for m in markets]],
            dtype=np.float64,
        ).reshape(2, nm)
        self.unit_upnl_weight = bool((self.upnl_weight == 1.0).all())
        self.base_rate = np.array(
            [[m.brackets[0][1] for m in markets], [m.brackets[0][2] for m in markets]],
            dtype=np.float64,
        ).reshape(2, nm)
        self.brackets = SegmentedBounds([np.array([b[0] for b in m.brackets]) for m in markets])
        amounts = [_bracket_amounts(tuple(m.brackets)) for m in markets]
        self.bracket_rate = np.array(
            [
                [b[1] for m in markets for b in m.brackets],
                [b[2] for m in markets for b in m.brackets],
            ],
            dtype=np.float64,
        ).reshape(2, -1)
        self.bracket_cum = np.array(
            [[x for a in amounts for x in a[0]], [x for a in amounts for x in a[1]]],
            dtype=np.float64,
        ).reshape(2, -1)

    def tiered_value(self, asset: np.ndarray, value: np.ndarray) -> np.ndarray:
        """Haircut-tiered USD value of positive balances of tiered assets."""
        assert self.tiers is not None
        g = self.tier_group[asset]
        k = self.tiers.rank(g, value)
        n_tiers = self.tiers.lengths[g]
        j = self.tiers.offsets[g] + np.minimum(k, n_tiers - 1)
        inside = self.tier_base[j] + (value - self.tier_lower[j]) * self.tier_rate[j]
        return np.where(k < n_tiers, inside, self.tier_cap[g])

    def bracket_requirement(
        self, market: np.ndarray, notional: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(initial, maintenance) bracket requirement in settle-asset units."""
        j = self.brackets.locate(market, notional)
        im = notional * np.take(self.bracket_rate[INITIAL], j) - np.take(
            self.bracket_cum[INITIAL], j
        )
        mm = notional * np.take(self.bracket_rate[MAINT], j) - np.take(self.bracket_cum[MAINT], j)
        return im, mm


# ---- the book as dense-indexed columns -------------------------------------------------
def dense_accounts(*columns: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sorted unique ids over all columns and each column's rows as dense indices."""
    total = sum(len(c) for c in columns)
    if total == 0:
        return np.empty(0, dtype=np.int64), [np.empty(0, dtype=np.intp) for _ in columns]
    present_cols = [c for c in columns if len(c)]
    lo = min(int(c.min()) for c in present_cols)
    hi = max(int(c.max()) for c in present_cols)
    span = hi - lo + 1
    if span <= 2 * total + 1024:
        # Dense ids: a direct table id − lo → dense index.
        base = np.int64(lo)
        offs = [c - base for c in columns]
        present = np.zeros(span, dtype=bool)
        for o in offs:
            present[o] = True
        accounts = np.flatnonzero(present).astype(np.int64) + base
        table = np.cumsum(present, dtype=np.intp)
        table -= 1
        return accounts, [table[o] for o in offs]
    accounts, inverse = np.unique(np.concatenate(columns), return_inverse=True)
    inverse = inverse.astype(np.intp, copy=False)
    out, start = [], 0
    for c in columns:
        out.append(inverse[start : start + len(c)])
        start += len(c)
    return accounts, out


def _sum_duplicates(
    acct: np.ndarray, asset: np.ndarray, qty: np.ndarray, n_accounts: int, n_assets: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sums (account, asset) duplicate rows in input order; keeps rows without duplicates
    as they are (no copy when there is none)."""
    n = len(qty)
    if n == 0:
        return acct, asset, qty
    key = acct * n_assets + asset
    slots = n_accounts * n_assets
    rows = np.arange(n, dtype=np.intp)
    if slots <= 8 * n + 4096:
        slot = np.empty(slots, dtype=np.intp)
        slot[key] = rows  # the last row of each key wins
        last = slot[key]
        if (last == rows).all():
            return acct, asset, qty
        keep = np.flatnonzero(last == rows)
        summed = _sum(last, qty, n)[keep]
        return acct[keep], asset[keep], summed
    uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    if len(uniq) == n:
        return acct, asset, qty
    summed = np.bincount(inverse, weights=qty, minlength=len(uniq))
    return acct[first], asset[first], summed


@dataclass(frozen=True)
class PreparedBook:
    """The book's columns with dense account indices and universe indices (what a NumPy
    implementation would cache between calls, like the engine's grouping)."""

    accounts: np.ndarray
    b_acct: np.ndarray
    b_asset: np.ndarray
    b_qty: np.ndarray
    p_acct: np.ndarray
    p_market: np.ndarray
    p_qty: np.ndarray
    p_entry: np.ndarray
    p_isolated: np.ndarray  # 0 for cross, > 0 for isolated
    isolated_rows: np.ndarray

    @property
    def any_isolated(self) -> bool:
        return len(self.isolated_rows) > 0

    @property
    def n_accounts(self) -> int:
        return len(self.accounts)


def prepare(universe: Universe, book: Book) -> PreparedBook:
    b, p = book.balances, book.positions
    asset_remap, market_remap = book.remaps(universe)
    accounts, (b_acct, p_acct) = dense_accounts(b["account"], p["account"])
    b_asset = asset_remap.astype(np.intp)[b["asset"].codes]
    b_acct, b_asset, b_qty = _sum_duplicates(
        b_acct, b_asset, b["qty"], len(accounts), len(universe.assets)
    )
    iso = p["isolated_margin"]
    isolated = iso > 0.0  # NaN and 0 mean cross
    return PreparedBook(
        accounts=accounts,
        b_acct=b_acct,
        b_asset=b_asset,
        b_qty=b_qty,
        p_acct=p_acct,
        p_market=market_remap.astype(np.intp)[p["market"].codes],
        p_qty=p["qty"],
        p_entry=p["entry_price"],
        p_isolated=np.where(isolated, iso, 0.0),
        isolated_rows=np.flatnonzero(isolated),
    )


# ---- evaluation ------------------------------------------------------------------------
def _sum(acct: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """Per-account sums (float64 even when there are no rows)."""
    if len(acct) == 0:
        return np.zeros(n)
    return np.bincount(acct, weights=weights, minlength=n)


def _balances(
    t: CompiledUniverse, bk: PreparedBook, asset_prices: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(equity, adj_equity_initial, adj_equity_maint) of the balances, per account."""
    n = bk.n_accounts
    a, q, acct = bk.b_asset, bk.b_qty, bk.b_acct
    value = q * asset_prices[a]
    equity = _sum(acct, value, n)
    positive = q > 0.0
    # What the weight multiplies: the tiered value for positive balances, else the value.
    base = value
    if t.tiers is not None:
        r = np.flatnonzero(positive & t.has_tiers[a])
        if len(r):
            base = value.copy()
            base[r] = t.tiered_value(a[r], value[r])
    sel = a + t.n_assets * positive
    r_imf = np.flatnonzero(t.has_asset_imf[a]) if t.has_asset_imf.any() else None
    if r_imf is not None and len(r_imf):
        imf = t.asset_imf[a[r_imf]]
        sq = imf * np.sqrt(np.abs(q[r_imf]))
        pos_imf = positive[r_imf]
        discount_cap = 1.1 / (1.0 + sq)
    adj = []
    for mode in (INITIAL, MAINT):
        w = t.weight[mode][sel]
        if r_imf is not None and len(r_imf):
            wr = w[r_imf]
            w[r_imf] = np.where(
                pos_imf, np.minimum(wr, discount_cap), np.maximum(wr, 0.8 * wr + sq)
            )
        adj.append(_sum(acct, base * w, n))
    return equity, adj[0], adj[1]


def _positions(
    t: CompiledUniverse, bk: PreparedBook, asset_prices: np.ndarray, marks: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-account position sums: equity part, upnl, adj parts, im, mm, isolated flag."""
    n = bk.n_accounts
    m, q, e, acct = bk.p_market, bk.p_qty, bk.p_entry, bk.p_acct
    size = q * t.contract_size[m]
    mark = marks[m]
    notional = np.abs(size) * mark
    upnl = size * (mark - e)
    if t.any_inverse:
        r = np.flatnonzero(t.inverse[m])
        if len(r):
            s, mk, qr = size[r], mark[r], q[r]
            notional[r] = np.abs(s) / mk
            with np.errstate(divide="ignore", invalid="ignore"):
                upnl[r] = np.where(qr != 0.0, s * (1.0 / e[r] - 1.0 / mk), 0.0)
    im, mm = t.bracket_requirement(m, notional)
    if t.has_market_imf.any():
        r = np.flatnonzero(t.has_market_imf[m])
        if len(r):
            mr = m[r]
            sq = t.market_imf[mr] * np.sqrt(np.abs(size[r]))
            for req, mode in ((im, INITIAL), (mm, MAINT)):
                base = t.base_rate[mode][mr]
                rate = np.maximum(base, 0.8 * base + sq)
                req[r] = np.maximum(req[r], notional[r] * rate)
    settle_price = asset_prices[t.settle][m]
    upnl *= settle_price
    im *= settle_price
    mm *= settle_price

    out: dict[str, np.ndarray] = {"upnl": _sum(acct, upnl, n)}
    flagged = np.zeros(n, dtype=bool)
    cross_upnl = upnl
    if bk.any_isolated:
        # Isolated rows (a few percent): own margin against own maintenance, then zeroed
        # out of the cross pool in place (cheaper than np.where over every row).
        r = bk.isolated_rows
        ra = acct[r]
        margin = bk.p_isolated[r] * settle_price[r]
        out["equity"] = out["upnl"] + _sum(ra, margin, n)
        flagged[ra[margin + upnl[r] < mm[r]]] = True
        cross_upnl = upnl.copy()
        cross_upnl[r] = 0.0
        im[r] = 0.0
        mm[r] = 0.0
    else:
        out["equity"] = out["upnl"]
    if t.unit_upnl_weight:
        # min(u, 0) + max(u, 0)·1 == u exactly.
        adj = out["upnl"] if cross_upnl is upnl else _sum(acct, cross_upnl, n)
        out["adj_initial"] = out["adj_maint"] = adj
    else:
        loss = np.minimum(cross_upnl, 0.0)
        gain = np.maximum(cross_upnl, 0.0)
        for key, mode in (("adj_initial", INITIAL), ("adj_maint", MAINT)):
            w = t.upnl_weight[mode][m]
            out[key] = _sum(acct, loss + gain * w, n)
    out["im"] = _sum(acct, im, n)
    out["mm"] = _sum(acct, mm, n)
    out["isolated_liquidatable"] = flagged
    return out


class NumpyEngine:
    """Compile a universe once; evaluate books with whole-column NumPy operations."""

    def __init__(self, universe: Universe) -> None:
        self.universe = universe
        self.tables = CompiledUniverse(universe)

    def prepare(self, book: Book) -> PreparedBook:
        """Dense account indices, universe indices, duplicate balances summed."""
        return prepare(self.universe, book)

    def evaluate(self, book: Book, prices: PriceOverrides = None) -> dict[str, np.ndarray]:
        """From the book's raw long columns (the mapping is part of the work)."""
        return self.evaluate_prepared(self.prepare(book), prices)

    def evaluate_prepared(
        self, bk: PreparedBook, prices: PriceOverrides = None
    ) -> dict[str, np.ndarray]:
        asset_prices, marks = resolve(self.universe, prices)
        t = self.tables
        equity, adj_i, adj_m = _balances(t, bk, asset_prices)
        pos = _positions(t, bk, asset_prices, marks)
        equity = equity + pos["equity"]
        adj_i = adj_i + pos["adj_initial"]
        adj_m = adj_m + pos["adj_maint"]
        im, mm = pos["im"], pos["mm"]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(mm == 0.0, 0.0, np.where(adj_m <= 0.0, np.inf, mm / adj_m))
        cols = {
            "account": bk.accounts,
            "equity": equity,
            "upnl": pos["upnl"],
            "adj_equity_initial": adj_i,
            "adj_equity_maint": adj_m,
            "im": im,
            "mm": mm,
            "free_collateral": adj_i - im,
            "margin_ratio": ratio,
            "liquidatable": (adj_m < mm) | pos["isolated_liquidatable"],
            "bankrupt": equity < 0.0,
        }
        assert tuple(cols) == MARGIN_COLUMNS
        return cols


def evaluate(
    universe: Universe, book: Book, prices: PriceOverrides = None
) -> dict[str, np.ndarray]:
    """Same rules, fields and row order as ``crossmargin.reference.evaluate``."""
    return NumpyEngine(universe).evaluate(book, prices)


__all__ = [
    "CompiledUniverse",
    "NumpyEngine",
    "PreparedBook",
    "SegmentedBounds",
    "dense_accounts",
    "evaluate",
    "prepare",
]
