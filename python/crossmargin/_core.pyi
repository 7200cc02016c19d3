"""Typed face of the compiled module ``crossmargin._core`` (rust/crossmargin-py).

Internal: the public API is the Python package; these are the conversions it calls.
"""

from typing import Any, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "CascadeDriver",
    "CascadeShard",
    "CompiledPortfolio",
    "CompiledUniverse",
    "GroupedBook",
    "MerkleSumTree",
    "ThreadPool",
    "__version__",
    "apply_funding",
    "black76_columns",
    "efficiency_columns",
    "evaluate_portfolio",
    "evaluate_standard",
    "explain_account",
    "funding_rates",
    "greeks_columns",
    "leaf_nonce",
    "liquidation_price_columns",
    "panic_guard_selftest",
    "run_cascade",
    "solvency",
    "stress_columns",
    "verify_inclusion",
]

__version__: str

@final
class CompiledUniverse:
    """The universe compiled into flat tables (validated: raises ConfigError)."""

    def __new__(
        cls,
        assets: list[tuple[Any, ...]],
        markets: list[tuple[Any, ...]],
        underlying_prices: list[tuple[str, float]] | None = None,
    ) -> CompiledUniverse: ...
    @property
    def underlying_prices(self) -> list[float]: ...
    @property
    def n_assets(self) -> int: ...
    @property
    def n_markets(self) -> int: ...
    @property
    def underlyings(self) -> list[str]: ...
    @property
    def market_underlying(self) -> list[int]: ...
    def brackets(self, market: int) -> list[tuple[float, float, float, float, float]]: ...

@final
class GroupedBook:
    """Balances and positions grouped by account into CSR arrays (raises BookError)."""

    def __new__(
        cls,
        bal_account: npt.NDArray[np.int64],
        bal_code: npt.NDArray[np.uint32],
        bal_qty: npt.NDArray[np.float64],
        pos_account: npt.NDArray[np.int64],
        pos_code: npt.NDArray[np.uint32],
        pos_qty: npt.NDArray[np.float64],
        pos_entry: npt.NDArray[np.float64],
        pos_isolated: npt.NDArray[np.float64],
        n_asset_codes: int,
        n_market_codes: int,
    ) -> GroupedBook: ...
    @property
    def n_accounts(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    def in_universe_order(
        self,
        asset_remap: npt.NDArray[np.uint32],
        market_remap: npt.NDArray[np.uint32],
        n_assets: int,
        n_markets: int,
    ) -> GroupedBook | None: ...
    def accounts(self) -> npt.NDArray[np.int64]: ...

@final
class ThreadPool:
    """A fixed-size rayon pool; ``threads=None`` uses every core."""

    def __new__(cls, threads: int | None = None) -> ThreadPool: ...
    @property
    def threads(self) -> int: ...

def explain_account(
    universe: CompiledUniverse,
    book: GroupedBook,
    asset_remap: npt.NDArray[np.uint32],
    market_remap: npt.NDArray[np.uint32],
    asset_prices: npt.NDArray[np.float64],
    marks: npt.NDArray[np.float64],
    account_index: int,
) -> dict[str, Any]:
    """One account's totals and rows as the standard-model kernel computes them."""

def evaluate_standard(
    pool: ThreadPool,
    universe: CompiledUniverse,
    book: GroupedBook,
    asset_remap: npt.NDArray[np.uint32],
    market_remap: npt.NDArray[np.uint32],
    asset_prices: npt.NDArray[np.float64],
    marks: npt.NDArray[np.float64],
) -> dict[str, npt.NDArray[Any]]: ...

# ---- liquidation prices, stress, capital efficiency (rust/crossmargin-py/src/risk.rs) ----
def liquidation_price_columns(
    pool: ThreadPool,
    universe: CompiledUniverse,
    book: GroupedBook,
    asset_remap: npt.NDArray[np.uint32],
    market_remap: npt.NDArray[np.uint32],
    asset_prices: npt.NDArray[np.float64],
    marks: npt.NDArray[np.float64],
    move_: str,
) -> dict[str, npt.NDArray[Any]]: ...
def stress_columns(
    pool: ThreadPool,
    universe: CompiledUniverse,
    book: GroupedBook,
    asset_remap: npt.NDArray[np.uint32],
    market_remap: npt.NDArray[np.uint32],
    n_scenarios: int,
    scenario_asset_prices: npt.NDArray[np.float64],
    scenario_marks: npt.NDArray[np.float64],
    keep_matrix: bool,
) -> dict[str, npt.NDArray[Any]]: ...
def efficiency_columns(
    pool: ThreadPool,
    universe: CompiledUniverse,
    book: GroupedBook,
    asset_remap: npt.NDArray[np.uint32],
    market_remap: npt.NDArray[np.uint32],
    asset_prices: npt.NDArray[np.float64],
    marks: npt.NDArray[np.float64],
) -> dict[str, npt.NDArray[Any]]: ...

@final
class CompiledPortfolio:
    """Portfolio-margin parameters validated against a universe (raises ConfigError)."""

    def __new__(
        cls,
        universe: CompiledUniverse,
        underlyings: list[tuple[str, list[tuple[float, float, float]], float, float, float, bool]],
        offsets: list[tuple[str, str, float]],
        im_factor: float,
        hybrid_floor: float,
    ) -> CompiledPortfolio: ...

def black76_columns(
    forward: npt.NDArray[np.float64],
    strike: npt.NDArray[np.float64],
    years: npt.NDArray[np.float64],
    vol: npt.NDArray[np.float64],
    rate: npt.NDArray[np.float64],
    call: npt.NDArray[np.bool_],
) -> dict[str, npt.NDArray[np.float64]]: ...
def evaluate_portfolio(
    pool: ThreadPool,
    universe: CompiledUniverse,
    portfolio: CompiledPortfolio,
    book: GroupedBook,
    asset_remap: npt.NDArray[np.uint32],
    market_remap: npt.NDArray[np.uint32],
    asset_prices: npt.NDArray[np.float64],
    marks: npt.NDArray[np.float64],
    model: str,
) -> dict[str, npt.NDArray[Any]]: ...
def greeks_columns(
    pool: ThreadPool,
    universe: CompiledUniverse,
    book: GroupedBook,
    asset_remap: npt.NDArray[np.uint32],
    market_remap: npt.NDArray[np.uint32],
    asset_prices: npt.NDArray[np.float64],
    marks: npt.NDArray[np.float64],
) -> dict[str, npt.NDArray[Any]]: ...
def run_cascade(
    pool: ThreadPool,
    universe: CompiledUniverse,
    book: GroupedBook,
    asset_remap: npt.NDArray[np.uint32],
    market_remap: npt.NDArray[np.uint32],
    step_asset_prices: npt.NDArray[np.float64],
    step_marks: npt.NDArray[np.float64],
    liquidity_models: list[tuple[str, list[float]]],
    decay: float,
    liquidation_fee: float,
    partial_fraction: float,
    target_margin_ratio: float,
    min_notional: float,
    max_rounds: int,
    max_liquidations_per_round: int,
    deleverage: str,
    insurance_fund: list[float],
) -> dict[str, Any]: ...

# ---- sharded cascade (rust/crossmargin-py/src/cascade_step.rs) ----------------------------
# Messages are dicts of numpy arrays; money as lists of ints (minor units).
@final
class CascadeShard:
    """One partition's accounts and ledger during a sharded cascade."""

    def __new__(
        cls,
        universe: CompiledUniverse,
        book: GroupedBook,
        asset_remap: npt.NDArray[np.uint32],
        market_remap: npt.NDArray[np.uint32],
    ) -> CascadeShard: ...
    @property
    def n_accounts(self) -> int: ...
    def holdings(self) -> list[int]: ...
    def gross_holdings(self) -> list[int]: ...
    def select(
        self,
        assets: npt.NDArray[np.float64],
        marks: npt.NDArray[np.float64],
        partial_fraction: float,
        target_margin_ratio: float,
        min_notional: float,
    ) -> dict[str, npt.NDArray[Any]]: ...
    def settle(
        self,
        assets: npt.NDArray[np.float64],
        marks: npt.NDArray[np.float64],
        chosen: npt.NDArray[np.uint32],
        fill_price: npt.NDArray[np.float64],
        fee_rate: float,
    ) -> dict[str, Any]: ...
    def counterparties(
        self,
        assets: npt.NDArray[np.float64],
        marks: npt.NDArray[np.float64],
        market: int,
        side: float,
    ) -> dict[str, npt.NDArray[Any]]: ...
    def deleverage(
        self,
        assets: npt.NDArray[np.float64],
        marks: npt.NDArray[np.float64],
        how: str,
        market: int,
        closes: dict[str, Any],
    ) -> dict[str, npt.NDArray[Any]]: ...
    def final_book(self) -> tuple[dict[str, npt.NDArray[Any]], dict[str, npt.NDArray[Any]]]: ...

@final
class CascadeDriver:
    """The global side of a sharded cascade (same arguments as run_cascade, less the pool,
    the book and its remaps)."""

    def __new__(
        cls,
        universe: CompiledUniverse,
        step_asset_prices: npt.NDArray[np.float64],
        step_marks: npt.NDArray[np.float64],
        liquidity_models: list[tuple[str, list[float]]],
        decay: float,
        liquidation_fee: float,
        partial_fraction: float,
        target_margin_ratio: float,
        min_notional: float,
        max_rounds: int,
        max_liquidations_per_round: int,
        deleverage: str,
        insurance_fund: list[float],
    ) -> CascadeDriver: ...
    def round_prices(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    def plan(
        self, candidates: list[dict[str, Any]]
    ) -> tuple[str, list[npt.NDArray[np.uint32]] | None, npt.NDArray[np.float64] | None]: ...
    def settled(self, settlements: list[dict[str, Any]]) -> None: ...
    def pools(self) -> tuple[list[int], list[int]]: ...
    def deficit(self) -> tuple[int, float] | None: ...
    def plan_deleverage(self, counterparties: list[dict[str, Any]]) -> list[dict[str, Any]]: ...
    def deleveraged(self, results: list[dict[str, Any]]) -> None: ...
    def end_round(self) -> None: ...
    def finish(self) -> dict[str, Any]: ...

# ---- funding and solvency (rust/crossmargin-py/src/{funding,solvency}.rs) ----------------
def funding_rates(
    premium: npt.NDArray[np.float64],
    n_samples: int,
    interest: npt.NDArray[np.float64],
    floor: npt.NDArray[np.float64],
    cap: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]: ...
def apply_funding(
    pool: ThreadPool,
    universe: CompiledUniverse,
    book: GroupedBook,
    asset_remap: npt.NDArray[np.uint32],
    market_remap: npt.NDArray[np.uint32],
    asset_prices: npt.NDArray[np.float64],
    marks: npt.NDArray[np.float64],
    rates: npt.NDArray[np.float64],
) -> dict[str, npt.NDArray[Any]]: ...

@final
class MerkleSumTree:
    """The Merkle-sum tree of liabilities (all levels), serving inclusion proofs."""

    @property
    def root_hash(self) -> bytes: ...
    @property
    def total(self) -> int: ...
    @property
    def n_leaves(self) -> int: ...
    def leaf(self, index: int) -> tuple[bytes, int]: ...
    def proof(self, index: int) -> list[tuple[bytes, int]]: ...

def solvency(
    pool: ThreadPool,
    universe: CompiledUniverse,
    book: GroupedBook,
    asset_remap: npt.NDArray[np.uint32],
    market_remap: npt.NDArray[np.uint32],
    asset_prices: npt.NDArray[np.float64],
    marks: npt.NDArray[np.float64],
    reserves: npt.NDArray[np.float64],
    seed: bytes | None = None,
) -> tuple[dict[str, Any], MerkleSumTree | None]: ...
def verify_inclusion(
    account: int,
    liability: int,
    nonce: bytes,
    index: int,
    path: list[tuple[bytes, int]],
    root_hash: bytes,
    total: int,
) -> bool: ...
def leaf_nonce(seed: bytes, account: int) -> bytes: ...
def panic_guard_selftest(message: str) -> None:
    """Panics inside the core's panic guard on purpose; raises CrossmarginError."""
