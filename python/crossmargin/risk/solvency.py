"""Solvency: exchange reserves vs customer liabilities, and a Merkle-sum proof of liabilities.

**Liabilities.** An account's net claim on an asset is its balance plus, for positions
settled in that asset, uPnL (an option: its value) and isolated margin. Its liability is
max(equity, 0) in USD minor units (10⁻⁸ USD): debts net against the same account's other
claims; an account with negative equity counts 0 and is reported in
``negative_equity_accounts`` / ``negative_equity_deficit``.

**Coverage** = Σ reserves·price·weight_maint (reserves at the asset's maintenance collateral
weight: its haircut) / Σ liabilities, at the call's prices and under ``stress`` (moves by
underlying, asset or market, e.g. ``{"BTC": -0.3}``). The per-asset table also gives the
Binance-style reserve ratio: reserves / (customer claims − customer debts) of that asset.

**Merkle-sum tree** (rust/crossmargin-core/src/solvency.rs; Maxwell's tree with the fix of
Hu, Zhang & Guo, https://eprint.iacr.org/2018/1139)::

    leaf  = SHA-256(0x00 ‖ account i64 BE ‖ liability u128 BE ‖ nonce)
    nonce = SHA-256("crossmargin/nonce" ‖ seed ‖ account i64 BE)
    node  = SHA-256(0x01 ‖ left.hash ‖ left.sum u128 BE ‖ right.hash ‖ right.sum u128 BE)
    sum   = left.sum + right.sum        (odd levels padded with 32 zero bytes, sum 0)

Leaves are in ascending account id. Each customer gets :meth:`SolvencyResult.proof` (JSON)
and checks it with :func:`verify` against the published root hash and total.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossmargin import _core
from crossmargin._validate import mapping, number
from crossmargin.book import Book
from crossmargin.exceptions import ConfigError, ConfigTypeError, PriceError, UnknownAccountError
from crossmargin.prices import PriceOverrides, repriced, resolve, shocked
from crossmargin.table import Table, Tabular
from crossmargin.universe import Universe

#: USD minor units per USD (and asset minor units per asset unit): crossmargin-core's
#: ``money::SCALE``.
SCALE: int = _core.SCALE
_U128 = 1 << 128


@dataclass(frozen=True)
class InclusionProof:
    """One account's proof: its leaf (account, liability in USD minor units, nonce) and the
    siblings (hash hex, sum) from the leaf up; ``index`` is the leaf's position (bit l: the
    node at level l is a right child)."""

    account: int
    liability: int
    nonce: str
    index: int
    path: tuple[tuple[str, int], ...]
    root_hash: str
    total: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "liability": self.liability,
            "nonce": self.nonce,
            "index": self.index,
            "path": [{"hash": h, "sum": s} for h, s in self.path],
            "root_hash": self.root_hash,
            "total": self.total,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InclusionProof:
        return cls(
            account=d["account"],
            liability=d["liability"],
            nonce=d["nonce"],
            index=d["index"],
            path=tuple((step["hash"], step["sum"]) for step in d["path"]),
            root_hash=d.get("root_hash", ""),
            total=d.get("total", 0),
        )

    @classmethod
    def from_json(cls, text: str) -> InclusionProof:
        return cls.from_dict(json.loads(text))


def _uint(x: Any, bound: int) -> int | None:
    if isinstance(x, bool) or not isinstance(x, int) or x < 0 or x >= bound:
        return None
    return x


def _hex32(x: Any) -> bytes | None:
    if isinstance(x, bytes | bytearray):
        return bytes(x) if len(x) == 32 else None
    if not isinstance(x, str) or len(x) != 64:
        return None
    try:
        return bytes.fromhex(x)
    except ValueError:
        return None


def verify(
    proof: InclusionProof | Mapping[str, Any] | str, root_hash: str | bytes, total: int
) -> bool:
    """True when ``proof`` leads to ``root_hash`` with sum ``total``. Any changed hash, sum,
    nonce, account, liability or index, a negative or ≥ 2¹²⁸ number, a sum overflow or a
    malformed proof gives False."""
    try:
        if isinstance(proof, str):
            proof = InclusionProof.from_json(proof)
        elif isinstance(proof, Mapping):
            proof = InclusionProof.from_dict(proof)
        path = [(_hex32(h), _uint(s, _U128)) for h, s in proof.path]
    except (KeyError, TypeError, ValueError):
        return False
    account = proof.account
    if isinstance(account, bool) or not isinstance(account, int):
        return False
    if not -(1 << 63) <= account < (1 << 63):
        return False
    liability, index, tot = (_uint(x, _U128) for x in (proof.liability, proof.index, total))
    nonce, root = _hex32(proof.nonce), _hex32(root_hash)
    if liability is None or index is None or tot is None or nonce is None or root is None:
        return False
    steps: list[tuple[bytes, int]] = []
    for h, s in path:
        if h is None or s is None:
            return False
        steps.append((h, s))
    return bool(_core.verify_inclusion(account, liability, nonce, index, steps, root, tot))


class SolvencyResult(Tabular):
    """Coverage of customer liabilities by reserves, and the Merkle-sum tree.

    Attributes: ``root_hash`` (hex), ``total_liabilities`` (USD) and
    ``total_liabilities_minor`` (int, the root's sum), ``coverage`` (weighted reserves /
    liabilities; inf without liabilities), ``assets`` (per-asset table), ``accounts``
    (per-account ``equity``, ``liability`` in USD, ``liability_minor``: uint64, or Python ints
    when one exceeds 2⁶⁴),
    ``negative_equity_accounts``, ``negative_equity_deficit`` (USD), and under ``stress``:
    ``coverage_stressed``, ``total_liabilities_stressed``, ``assets_stressed`` (else None).
    ``seed`` is the secret the nonces derive from (keep it private).

    Tables (the result protocol, :mod:`crossmargin.table`): **main** ``"accounts"``; also
    ``"assets"`` and, under ``stress``, ``"assets_stressed"``.
    """

    _TABLES = ("accounts", "assets", "assets_stressed")

    def __init__(
        self,
        tree: Any,
        accounts: Table,
        assets: Table,
        coverage: float,
        negative: tuple[int, float],
        stressed: tuple[float, float, Table] | None,
        seed: bytes,
    ) -> None:
        self._tree = tree
        self.accounts = accounts
        self.assets = assets
        self.root_hash: str = bytes(tree.root_hash).hex()
        self.total_liabilities_minor: int = int(tree.total)
        self.total_liabilities: float = self.total_liabilities_minor / SCALE
        self.coverage = coverage
        self.negative_equity_accounts, self.negative_equity_deficit = negative
        self.coverage_stressed: float | None = None
        self.total_liabilities_stressed: float | None = None
        self.assets_stressed: Table | None = None
        if stressed is not None:
            self.coverage_stressed, self.total_liabilities_stressed, self.assets_stressed = stressed
        self.seed = seed

    def proof(self, account: int) -> InclusionProof:
        """The inclusion proof of one account; an account the book does not hold raises
        :class:`~crossmargin.exceptions.UnknownAccountError` (a ``BookError`` and a
        ``KeyError``)."""
        ids = self.accounts.account
        i = int(np.searchsorted(ids, account))
        if i >= len(ids) or ids[i] != account:
            raise UnknownAccountError(f"account {account} is not in the book", column="account")
        leaf_sum = int(self._tree.leaf(i)[1])
        return InclusionProof(
            account=int(account),
            liability=leaf_sum,
            nonce=bytes(_core.leaf_nonce(self.seed, int(account))).hex(),
            index=i,
            path=tuple((bytes(h).hex(), int(s)) for h, s in self._tree.proof(i)),
            root_hash=self.root_hash,
            total=self.total_liabilities_minor,
        )

    def summary(self) -> dict[str, Any]:
        return {
            "accounts": len(self.accounts),
            "root_hash": self.root_hash,
            "total_liabilities": self.total_liabilities,
            "weighted_reserves_usd": float(self.assets.weighted_reserves_usd.sum()),
            "coverage": self.coverage,
            "coverage_stressed": self.coverage_stressed,
            "negative_equity_accounts": self.negative_equity_accounts,
            "negative_equity_deficit": self.negative_equity_deficit,
        }

    def __repr__(self) -> str:
        return (
            f"SolvencyResult(accounts={len(self.accounts)}, coverage={self.coverage:.4g}, "
            f"root_hash={self.root_hash[:16]}…)"
        )


def reserve_vector(universe: Universe, exchange_assets: Mapping[str, float] | None) -> np.ndarray:
    out = np.zeros(len(universe.assets))
    if exchange_assets is None:
        return out
    # Types here (a bool or text is not a quantity); the core checks finite and ≥ 0.
    for sym, q in mapping(exchange_assets, "exchange_assets", "asset → quantity").items():
        if sym not in universe.asset_index:
            raise ConfigError(
                f"exchange_assets[{sym}]: unknown asset", field=f"exchange_assets[{sym}]"
            )
        out[universe.asset_index[sym]] = number(q, f"exchange_assets[{sym}]")
    return out


def stressed_prices(
    universe: Universe, moves: Mapping[str, float], prices: PriceOverrides = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fractional moves (``{"BTC": -0.3}``: −30%) by underlying, asset or market, from the
    call's prices (``prices=``, else the universe's) → (asset prices, marks): the one shock
    rule, crossmargin.prices.shocked."""
    mapping(moves, "stress", "symbol → move", PriceError)
    return shocked(repriced(universe, prices), moves, "stress", PriceError)


def _run(
    engine: _core.Engine,
    universe: Universe,
    view: _core.BookView,
    prices: PriceOverrides,
    reserves: np.ndarray,
    seed: bytes | None,
) -> tuple[dict[str, Any], Any, np.ndarray]:
    asset_prices, marks = resolve(universe, prices)
    cols, tree = engine.solvency(view, (asset_prices, marks), reserves, seed)
    return cols, tree, asset_prices


def _asset_table(
    universe: Universe, cols: dict[str, Any], prices: np.ndarray, reserves: np.ndarray
) -> Table:
    claims = np.array([c / SCALE for c in cols["claims_minor"]], dtype=np.float64)
    debts = np.array([d / SCALE for d in cols["debts_minor"]], dtype=np.float64)
    net = np.array(
        [(c - d) / SCALE for c, d in zip(cols["claims_minor"], cols["debts_minor"], strict=True)],
        dtype=np.float64,
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(net > 0, reserves / np.where(net > 0, net, 1.0), math.inf)
    return Table(
        {
            "asset": np.array([a.symbol for a in universe.assets], dtype=object),
            "price": prices,
            "weight": np.array([a.weight_maint for a in universe.assets], dtype=np.float64),
            "reserves": reserves,
            "reserves_usd": cols["reserves_usd"],
            "weighted_reserves_usd": cols["weighted_reserves_usd"],
            "claims": claims,
            "debts": debts,
            "net_liabilities": net,
            "net_liabilities_usd": net * prices,
            "reserve_ratio": ratio,
        }
    )


def _coverage(weighted: float, total_minor: int) -> float:
    return weighted / (total_minor / SCALE) if total_minor > 0 else math.inf


def solvency(
    engine: _core.Engine,
    universe: Universe,
    book: Book,
    view: _core.BookView,
    exchange_assets: Mapping[str, float] | None = None,
    stress: Mapping[str, float] | None = None,
    prices: PriceOverrides = None,
    seed: bytes | str | None = None,
) -> SolvencyResult:
    """The implementation of :meth:`crossmargin.Engine.solvency`: ``book`` bound to
    ``universe`` (which ``engine`` holds compiled) as ``view``. ``seed`` (bytes, or str
    encoded as UTF-8) derives every account's nonce; None draws 32 random bytes."""
    u = universe
    reserves = reserve_vector(u, exchange_assets)
    if seed is None:
        seed = os.urandom(32)
    elif isinstance(seed, str):
        seed = seed.encode()
    elif not isinstance(seed, bytes | bytearray):
        raise ConfigTypeError(
            f"seed: expected bytes or str, got {type(seed).__name__}", field="seed"
        )
    seed = bytes(seed)
    cols, tree, asset_prices = _run(engine, u, view, prices, reserves, seed)
    assets = _asset_table(u, cols, asset_prices, reserves)
    liability_minor = cols["liability_minor"]
    if isinstance(liability_minor, list):  # beyond 2^64 minor units: exact Python ints
        liability_minor = np.array(liability_minor, dtype=object)
    accounts = Table(
        {
            "account": book.accounts,
            "equity": cols["equity"],
            "liability": np.asarray(liability_minor / SCALE, dtype=np.float64),
            "liability_minor": liability_minor,
        }
    )
    coverage = _coverage(float(assets.weighted_reserves_usd.sum()), int(cols["total_minor"]))
    stressed = None
    if stress is not None:
        s_cols, _, s_prices = _run(
            engine, u, view, stressed_prices(u, stress, prices), reserves, None
        )
        s_assets = _asset_table(u, s_cols, s_prices, reserves)
        s_total = int(s_cols["total_minor"])
        stressed = (
            _coverage(float(s_assets.weighted_reserves_usd.sum()), s_total),
            s_total / SCALE,
            s_assets,
        )
    negative = (int(cols["negative_accounts"]), int(cols["deficit_minor"]) / SCALE)
    return SolvencyResult(tree, accounts, assets, coverage, negative, stressed, seed)


__all__ = [
    "SCALE",
    "InclusionProof",
    "SolvencyResult",
    "reserve_vector",
    "solvency",
    "stressed_prices",
    "verify",
]
