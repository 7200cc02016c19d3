"""Plain-Python reference of funding and solvency: the same rules as
rust/crossmargin-core/src/{money,funding,solvency}.rs, written to be read, with hashlib.

The differential tests demand *identical* integers (minor units, hashes), so the floating
steps happen in the same order as in the core: a risk engineer can follow every number here.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence

from crossmargin import _core
from crossmargin.book import Book
from crossmargin.exceptions import ConfigError, InternalError, PriceError
from crossmargin.reference.margin import account_rows
from crossmargin.reference.prices import PriceOverrides, resolve
from crossmargin.universe import Universe

# The core's constants: minor units per unit (money::SCALE), Binance's dampener on I − P,
# balanced open interest (funding::BALANCE_TOLERANCE), the largest amount the ledger holds
# (limits::MAX_AMOUNT).
SCALE: int = _core.SCALE
DAMPENER: float = _core.DAMPENER
BALANCE_TOLERANCE: float = _core.BALANCE_TOLERANCE
MAX_AMOUNT: float = _core.MAX_AMOUNT
ZERO_NODE = (bytes(32), 0)


# ---- money -----------------------------------------------------------------------------
def to_minor(x: float) -> int:
    """Asset units → minor units (10⁻⁸), x·10⁸ rounded half to even (Python's round)."""
    if not math.isfinite(x) or abs(x) > MAX_AMOUNT:
        raise PriceError(f"{x} cannot be an amount (beyond the ledger)", field="amount")
    return round(x * float(SCALE))


def weight_bits(n: int) -> int:
    return min(52, max(75 - (max(n, 1) - 1).bit_length(), 0))


def allocate(total: int, weights: Sequence[float]) -> list[int]:
    """Largest-remainder split of an integer total, pro rata to weights (quantised to
    integers of ``weight_bits`` bits); ties go to the lower index."""
    n = len(weights)
    if total == 0:
        return [0] * n
    w_max = max(weights, default=0.0)
    if w_max == 0.0:
        raise InternalError("cannot split over zero weights")
    scale = float(1 << weight_bits(n))
    units = [round(w / w_max * scale) for w in weights]
    big = sum(units)
    t = abs(total)
    parts = [t * u // big for u in units]
    remainders = [t * u % big for u in units]
    left = t - sum(parts)
    for i in sorted(range(n), key=lambda i: (-remainders[i], i))[:left]:
        parts[i] += 1
    sign = 1 if total > 0 else -1
    return [sign * p for p in parts]


# ---- funding rate ----------------------------------------------------------------------
def average_premium(samples: Sequence[float]) -> float:
    """Binance's time-weighted average: sample i (1-based) weighs i."""
    num = den = 0.0
    for i, p in enumerate(samples, start=1):
        num += i * p
        den += i
    return num / den if den else 0.0


def funding_rate(
    premium: float, interest: float = 0.0001, floor: float = -math.inf, cap: float = math.inf
) -> float:
    """F = P + clamp(I − P, −0.05%, 0.05%) (F = I inside the dampener), within [floor, cap]."""
    gap = interest - premium
    f = interest if abs(gap) <= DAMPENER else premium + math.copysign(DAMPENER, gap)
    return min(max(f, floor), cap)


# ---- funding payments ------------------------------------------------------------------
def _positions_by_market(universe: Universe, book: Book) -> dict[int, list[tuple[int, float]]]:
    """market index → [(account, qty)] in ascending account."""
    _, market_of_code = (x.tolist() for x in book.remaps(universe))
    p = book.positions
    out: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for account, code, qty in zip(
        p["account"].tolist(), p["market"].codes.tolist(), p["qty"].tolist(), strict=True
    ):
        out[market_of_code[code]].append((account, qty))
    for rows in out.values():
        rows.sort()
    return out


def market_funding(
    contract_size: float, inverse: bool, rate: float, mark: float, qty: list[float]
) -> tuple[list[int], int]:
    """Payments (minor units) of one market's positions and of the external counterparty."""
    net = gross = 0.0
    for q in qty:
        net += q
        gross += abs(q)
    cp_qty = 0.0 if abs(net) <= BALANCE_TOLERANCE * gross else -net
    pays = [0] * len(qty)
    if rate == 0.0 or gross == 0.0:
        return pays, 0

    def owed(q: float) -> int:
        if inverse:
            notional = abs(q) * contract_size / mark
        else:
            notional = abs(q) * contract_size * mark
        return to_minor(notional * abs(rate))

    payer_sign = 1.0 if rate > 0 else -1.0
    pot = 0
    receivers, weights = [], []
    for i, q in enumerate(qty):
        if q * payer_sign > 0:
            pays[i] = -owed(q)
            pot += -pays[i]
        elif q != 0:
            receivers.append(i)
            weights.append(abs(q))
    counterparty = 0
    if cp_qty * payer_sign > 0:
        counterparty = -owed(cp_qty)
        pot += -counterparty
    elif cp_qty != 0:
        weights.append(abs(cp_qty))
    shares = allocate(pot, weights)
    for i, s in zip(receivers, shares, strict=False):
        pays[i] = s
    if len(shares) > len(receivers):
        counterparty = shares[-1]
    return pays, counterparty


def apply_funding(
    universe: Universe, book: Book, rates: Sequence[float], prices: PriceOverrides = None
) -> tuple[dict[tuple[int, str], int], dict[str, int]]:
    """({(account, market): payment minor}, {market: counterparty payment minor})."""
    _, marks = resolve(universe, prices)
    payments: dict[tuple[int, str], int] = {}
    counterparty: dict[str, int] = {}
    for k, rows in _positions_by_market(universe, book).items():
        m = universe.markets[k]
        pays, cp = market_funding(
            m.contract_size, m.inverse, rates[k], marks[k], [q for _, q in rows]
        )
        for (account, _), pay in zip(rows, pays, strict=True):
            payments[(account, m.symbol)] = pay
        if cp:
            counterparty[m.symbol] = cp
    return payments, counterparty


# ---- liabilities -----------------------------------------------------------------------
def position_claim(universe: Universe, k: int, qty: float, entry: float, mark: float) -> float:
    """uPnL in the settle asset (an option: its value q·cs·mark)."""
    m = universe.markets[k]
    size = qty * m.contract_size
    if m.kind == "option":
        return size * mark
    if m.inverse:
        return 0.0 if qty == 0.0 else size * (1.0 / entry - 1.0 / mark)
    return size * (mark - entry)


def liabilities(
    universe: Universe, book: Book, prices: PriceOverrides = None
) -> tuple[dict[int, float], dict[int, int], list[int], list[int]]:
    """({account: equity}, {account: liability minor}, claims minor per asset, debts minor
    per asset)."""
    asset_prices, marks = resolve(universe, prices)
    # Each account's balances per asset (duplicate rows: their exact sum) and positions.
    accounts = account_rows(universe, book)
    equity: dict[int, float] = {}
    liability: dict[int, int] = {}
    per_asset_claims = [0] * len(universe.assets)
    per_asset_debts = [0] * len(universe.assets)
    for account in sorted(accounts):
        c = accounts[account].balances
        for k, qty, entry, iso in sorted(accounts[account].positions):
            settle = universe.asset_index[universe.markets[k].settle]
            c[settle] += position_claim(universe, k, qty, entry, marks[k]) + iso
        e = 0.0
        for i in sorted(c):
            e += c[i] * asset_prices[i]
            m = to_minor(c[i])
            if m > 0:
                per_asset_claims[i] += m
            else:
                per_asset_debts[i] -= m
        equity[account] = e
        liability[account] = max(to_minor(e), 0)
    return equity, liability, per_asset_claims, per_asset_debts


# ---- Merkle-sum tree -------------------------------------------------------------------
def leaf_nonce(seed: bytes, account: int) -> bytes:
    return hashlib.sha256(
        b"crossmargin/nonce" + seed + account.to_bytes(8, "big", signed=True)
    ).digest()


def leaf(account: int, liability: int, nonce: bytes) -> tuple[bytes, int]:
    data = b"\x00" + account.to_bytes(8, "big", signed=True) + liability.to_bytes(16, "big") + nonce
    return hashlib.sha256(data).digest(), liability


def parent(left: tuple[bytes, int], right: tuple[bytes, int]) -> tuple[bytes, int]:
    total = left[1] + right[1]
    if total >= 1 << 128:
        raise ConfigError("the sum of liabilities overflows u128", field="liabilities")
    data = b"\x01" + left[0] + left[1].to_bytes(16, "big") + right[0] + right[1].to_bytes(16, "big")
    return hashlib.sha256(data).digest(), total


def merkle_root(liability: dict[int, int], seed: bytes) -> tuple[bytes, int]:
    """Root (hash, sum) over accounts in ascending id; odd levels padded with ZERO_NODE."""
    level = [leaf(a, liability[a], leaf_nonce(seed, a)) for a in sorted(liability)]
    if not level:
        return ZERO_NODE
    while len(level) > 1:
        if len(level) % 2:
            level.append(ZERO_NODE)
        level = [parent(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def verify(
    account: int,
    liability: int,
    nonce: bytes,
    index: int,
    path: Sequence[tuple[bytes, int]],
    root_hash: bytes,
    total: int,
) -> bool:
    """Recompute the root from a leaf and its siblings."""
    if not 0 <= liability < 1 << 128 or index < 0 or index >> len(path) or len(path) >= 128:
        return False
    node = leaf(account, liability, nonce)
    for level, (h, s) in enumerate(path):
        if s < 0 or s >= 1 << 128:
            return False
        try:
            node = parent(node, (h, s)) if (index >> level) & 1 == 0 else parent((h, s), node)
        except ConfigError:  # the sum overflows u128
            return False
    return node == (root_hash, total)


__all__ = [
    "allocate",
    "apply_funding",
    "average_premium",
    "funding_rate",
    "leaf",
    "leaf_nonce",
    "liabilities",
    "market_funding",
    "merkle_root",
    "parent",
    "to_minor",
    "verify",
    "weight_bits",
]
