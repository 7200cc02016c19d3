"""Typed face of the compiled module ``crossmargin._core`` (rust/crossmargin-py).

Internal: the public API is the Python package; these are the conversions it calls. One
compiled object per universe (:class:`Engine`: the compiled universe and a thread pool);
a book crosses bound to the universe (:class:`BookView`, from ``GroupedBook.bind``), prices
as one pair of arrays ``(asset_prices, marks)``; configuration objects are read by attribute.
"""

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "BALANCE_TOLERANCE",
    "DAMPENER",
    "DEFAULT_INTEREST",
    "DELEVERAGE",
    "DERIBIT_IM_BASE",
    "DERIBIT_IM_MIN",
    "DERIBIT_MM_BASE",
    "EVENT_KINDS",
    "LIQ_MOVES",
    "LIQ_S_MAX",
    "LIQ_S_MIN",
    "MARKET_KINDS",
    "MAX_AMOUNT",
    "MAX_FACTOR",
    "MAX_PRICE",
    "MAX_QTY",
    "MAX_TOTAL_MINOR",
    "MIN_PRICE",
    "MONITOR_LEVELS",
    "MONITOR_LOG_KINDS",
    "ORDER_SIDES",
    "PORTFOLIO_MODELS",
    "POSITION_SIDES",
    "REQUIREMENT_SHAPES",
    "SCALE",
    "VALUATION_BASES",
    "BookView",
    "CascadeDriver",
    "CascadeShard",
    "CompiledPortfolio",
    "CompiledSpan",
    "CompiledUniverse",
    "Engine",
    "GroupedBook",
    "MerkleSumTree",
    "Monitor",
    "__version__",
    "black76_columns",
    "bsm_columns",
    "encode_arrow_strings",
    "encode_str_objects",
    "funding_rates",
    "huge_pages",
    "leaf_nonce",
    "panic_guard_selftest",
    "set_huge_pages",
    "simd_levels",
    "verify_inclusion",
]

__version__: str

# ---- constants (crossmargin-core's, or the names this module parses) ----------------------
SCALE: int
"""Minor units per asset unit (``money::SCALE``)."""
MAX_AMOUNT: float
"""Largest |amount| of money in asset units (``limits::MAX_AMOUNT``)."""
MAX_TOTAL_MINOR: int
"""Largest Σ |holdings| of one asset a cascade starts from, minor units."""
MAX_PRICE: float
MIN_PRICE: float
MAX_QTY: float
MAX_FACTOR: float
LIQ_S_MIN: float
"""The liquidation-price search range of the price factor (``liqprice::S_MIN`` / ``S_MAX``)."""
LIQ_S_MAX: float
DEFAULT_INTEREST: float
DAMPENER: float
BALANCE_TOLERANCE: float
DERIBIT_IM_BASE: float
DERIBIT_IM_MIN: float
DERIBIT_MM_BASE: float
EVENT_KINDS: tuple[str, ...]
"""Cascade event kinds, in the order of their codes."""
MARKET_KINDS: tuple[str, ...]
REQUIREMENT_SHAPES: tuple[str, ...]
"""A requirement's shapes: continuous (with a deduction), step, size_scaled."""
VALUATION_BASES: tuple[str, ...]
"""What a maintenance requirement is valued at: mark, entry."""
DELEVERAGE: tuple[str, ...]
LIQ_MOVES: tuple[str, ...]
PORTFOLIO_MODELS: tuple[str, ...]
POSITION_SIDES: tuple[str, ...]
ORDER_SIDES: tuple[str, ...]
MONITOR_LEVELS: tuple[str, ...]
"""Risk levels of the monitor, by code: ok, margin_call, liquidation, bankruptcy."""
MONITOR_LOG_KINDS: tuple[str, ...]
"""Kinds of the monitor's audit-log rows, by code."""

# ---- what the constructors and methods read by attribute --------------------------------
_Prices = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
"""One call's ``(asset_prices, marks)``; per scenario or path step: 2-D (rows × symbols)."""

class _AssetSpec(Protocol):
    """``crossmargin.universe.Asset``."""

    @property
    def symbol(self) -> str: ...
    @property
    def price(self) -> float: ...
    @property
    def weight_initial(self) -> float: ...
    @property
    def weight_maint(self) -> float: ...
    @property
    def liability_weight_initial(self) -> float: ...
    @property
    def liability_weight_maint(self) -> float: ...
    @property
    def haircut_tiers(self) -> Sequence[tuple[float, float]] | None: ...
    @property
    def imf_factor(self) -> float: ...
    @property
    def scale_initial_weight_start(self) -> float: ...
    @property
    def total_deposits(self) -> float: ...
    @property
    def bid(self) -> float | None: ...
    @property
    def ask(self) -> float | None: ...

class _MarketSpec(Protocol):
    """``crossmargin.universe.Market`` (its mark and expiry are passed alongside)."""

    @property
    def symbol(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def settle(self) -> str: ...
    @property
    def underlying(self) -> str: ...
    @property
    def contract_size(self) -> float: ...
    @property
    def inverse(self) -> bool: ...
    @property
    def brackets(self) -> Sequence[tuple[float, float, float]]: ...
    @property
    def imf_factor(self) -> float: ...
    @property
    def upnl_weight_initial(self) -> float: ...
    @property
    def upnl_weight_maint(self) -> float: ...
    @property
    def upnl_imf_factor(self) -> float: ...
    @property
    def upnl_cap_initial(self) -> float: ...
    @property
    def option_type(self) -> str | None: ...
    @property
    def strike(self) -> float | None: ...
    @property
    def iv(self) -> float | None: ...
    @property
    def rate(self) -> float: ...
    @property
    def im_base(self) -> float: ...
    @property
    def im_min(self) -> float: ...
    @property
    def im_shape(self) -> str: ...
    @property
    def mm_shape(self) -> str: ...
    @property
    def rate_slope_initial(self) -> float: ...
    @property
    def rate_slope_maint(self) -> float: ...
    @property
    def maint_basis(self) -> str: ...
    @property
    def liquidation_fee(self) -> float: ...
    @property
    def mm_base(self) -> float: ...
    @property
    def order_value(self) -> str: ...
    @property
    def order_open_loss(self) -> bool: ...
    @property
    def order_fee_rate(self) -> float: ...
    @property
    def order_margin_per_order(self) -> float: ...

class _UnderlyingSpec(Protocol):
    """``crossmargin.portfolio.UnderlyingPortfolio``."""

    @property
    def scenarios(self) -> Sequence[tuple[float, float, float]]: ...
    @property
    def short_option_min(self) -> float: ...
    @property
    def option_contingency(self) -> float: ...
    @property
    def futures_offset(self) -> float: ...
    @property
    def delta_rate(self) -> float | None: ...
    @property
    def vol_power(self) -> float: ...
    @property
    def vol_relative(self) -> bool: ...

class _CommoditySpec(Protocol):
    """``crossmargin.span.CombinedCommodity``."""

    @property
    def name(self) -> str: ...
    @property
    def price_scan(self) -> float: ...
    @property
    def vol_scan(self) -> float: ...
    @property
    def extreme_multiple(self) -> float: ...
    @property
    def cover(self) -> float: ...
    @property
    def som_rate(self) -> float: ...
    @property
    def im_ratio(self) -> float: ...
    @property
    def spot_tier(self) -> int | None: ...
    @property
    def spot_spread_rate(self) -> float: ...
    @property
    def spot_outright_rate(self) -> float: ...

class _ContractSpec(Protocol):
    """``crossmargin.span.Contract``."""

    @property
    def market(self) -> str: ...
    @property
    def combined_commodity(self) -> str: ...
    @property
    def tier(self) -> int: ...
    @property
    def risk_array(self) -> Sequence[float] | None: ...
    @property
    def delta(self) -> float | None: ...

class _IntraSpec(Protocol):
    """``crossmargin.span.IntraSpread``: legs ``(tier, ratio, side_a)``."""

    @property
    def combined_commodity(self) -> str: ...
    @property
    def rate(self) -> float: ...
    @property
    def legs(self) -> Sequence[tuple[int, float, bool]]: ...

class _InterSpec(Protocol):
    """``crossmargin.span.InterSpread``: legs ``(combined_commodity, ratio, side_a)``,
    method "wpr" or "scan"."""

    @property
    def rate(self) -> float: ...
    @property
    def method(self) -> str: ...
    @property
    def legs(self) -> Sequence[tuple[str, float, bool]]: ...

class _PortfolioSpec(Protocol):
    """``crossmargin.portfolio.PortfolioConfig``."""

    @property
    def offsets(self) -> Sequence[tuple[str, str, float]]: ...
    @property
    def im_factor(self) -> float: ...
    @property
    def hybrid_floor(self) -> float: ...

class _CascadeRules(Protocol):
    """``crossmargin.cascade.CascadeRules``."""

    @property
    def step_asset_prices(self) -> npt.NDArray[np.float64]: ...
    @property
    def step_marks(self) -> npt.NDArray[np.float64]: ...
    @property
    def liquidity(self) -> list[tuple[str, list[float]]]: ...
    @property
    def decay(self) -> float: ...
    @property
    def liquidation_fee(self) -> float: ...
    @property
    def partial_fraction(self) -> float: ...
    @property
    def target_margin_ratio(self) -> float: ...
    @property
    def min_notional(self) -> float: ...
    @property
    def max_rounds(self) -> int: ...
    @property
    def max_liquidations_per_round(self) -> int: ...
    @property
    def deleverage(self) -> str: ...
    @property
    def insurance_fund(self) -> list[float]: ...

class _CodeColumn(Protocol):
    """``crossmargin.book.SymbolColumn``."""

    @property
    def codes(self) -> npt.NDArray[np.uint32]: ...
    @property
    def n_codes(self) -> int: ...

# ---- the compiled universe, the book ------------------------------------------------------
class _FixedSpec(Protocol):
    """``crossmargin.universe.FixedPoint``."""

    @property
    def value_decimals(self) -> int: ...
    @property
    def price_decimals(self) -> int: ...
    @property
    def weight_decimals(self) -> int: ...
    @property
    def size_decimals(self) -> int: ...
    @property
    def imf_decimals(self) -> int: ...
    @property
    def asset_decimals(self) -> Mapping[str, int]: ...
    @property
    def borrow_rounding(self) -> str: ...

@final
class CompiledUniverse:
    """The universe compiled into flat tables (validated: raises ConfigError); with
    ``arithmetic``, also into its fixed-point form."""

    def __new__(
        cls,
        assets: Sequence[_AssetSpec],
        markets: Sequence[_MarketSpec],
        marks: Sequence[float],
        expiry_years: Sequence[float | None],
        underlying_prices: Mapping[str, float] | None = None,
        arithmetic: _FixedSpec | None = None,
    ) -> CompiledUniverse: ...
    @property
    def is_fixed_point(self) -> bool: ...
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
    """Balances and positions grouped by account (raises BookError). A book without open
    orders is grouped straight into the evaluation kernel's layout and keeps no CSR copy:
    the CSR that account-by-account models read is rebuilt from the input columns (kept by
    reference, never copied; they must not be written to) on the first call that needs it.

    ``balances``: columns ``account``, ``asset`` (a code column), ``qty``; ``positions``:
    ``account``, ``market`` (a code column), ``qty``, ``entry_price``, ``isolated_margin``,
    ``side`` (uint8: 0 both, 1 long, 2 short; empty: all one-way); ``orders`` (optional):
    ``account``, ``market`` (a code column sharing the positions' labels), ``side`` (uint8:
    0 buy, 1 sell), ``qty``, ``price``, ``reduce_only`` (bool).
    """

    def __new__(
        cls,
        balances: Mapping[str, Any],
        positions: Mapping[str, Any],
        orders: Mapping[str, Any] | None = None,
    ) -> GroupedBook: ...
    @property
    def n_accounts(self) -> int: ...
    @property
    def has_sides(self) -> bool: ...
    @property
    def has_orders(self) -> bool: ...
    @property
    def nbytes(self) -> int: ...
    def bind(
        self,
        universe: CompiledUniverse,
        asset_remap: npt.NDArray[np.uint32],
        market_remap: npt.NDArray[np.uint32],
    ) -> BookView:
        """This book bound to ``universe`` (regrouped in universe order when the remaps do
        not keep it)."""
    def accounts(self) -> npt.NDArray[np.int64]:
        """Account ids, ascending: a read-only view of the book's own ids (no copy)."""

@final
class BookView:
    """A grouped book bound to one universe's indices: what every Engine method reads."""

    @property
    def asset_remap(self) -> npt.NDArray[np.uint32]: ...
    @property
    def market_remap(self) -> npt.NDArray[np.uint32]: ...
    @property
    def n_accounts(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def layout_nbytes(self) -> int: ...
    def prepare(self) -> None:
        """Builds the evaluation kernel's layout now (else the first evaluate does)."""

@final
class CompiledPortfolio:
    """Portfolio-margin parameters validated against a universe (raises ConfigError)."""

    def __new__(
        cls,
        universe: CompiledUniverse,
        config: _PortfolioSpec,
        underlyings: Sequence[tuple[str, _UnderlyingSpec]],
    ) -> CompiledPortfolio: ...

@final
class CompiledSpan:
    """SPAN tables validated against a universe (raises ConfigError naming the row)."""

    def __new__(
        cls,
        universe: CompiledUniverse,
        commodities: Sequence[_CommoditySpec],
        contracts: Sequence[_ContractSpec],
        intra: Sequence[_IntraSpec],
        inter: Sequence[_InterSpec],
    ) -> CompiledSpan: ...
    @property
    def commodities(self) -> list[str]:
        """The combined commodities' names, in index order."""

# ---- the engine ---------------------------------------------------------------------------
@final
class Engine:
    """A compiled universe and a rayon pool (``threads=None``: every core); the methods run
    without the GIL and return numpy columns by name."""

    def __new__(cls, universe: CompiledUniverse, threads: int | None = None) -> Engine: ...
    def with_universe(self, universe: CompiledUniverse) -> Engine:
        """The same pool over another compiled universe."""
    @property
    def universe(self) -> CompiledUniverse: ...
    @property
    def threads(self) -> int: ...
    def evaluate(
        self,
        book: BookView,
        prices: _Prices,
        out: dict[str, npt.NDArray[Any]] | None = None,
    ) -> dict[str, npt.NDArray[Any]]:
        """Standard-model margin of every account (into ``out``'s arrays when given; in a
        fixed-point universe with the four int64 ``*_raw`` columns, ``out``'s included)."""
    def evaluate_portfolio(
        self,
        book: BookView,
        prices: _Prices,
        portfolio: CompiledPortfolio,
        model: str,
        out: dict[str, npt.NDArray[Any]] | None = None,
    ) -> dict[str, npt.NDArray[Any]]:
        """Portfolio, delta or hybrid margin of every account (into ``out``'s arrays when
        given)."""
    def evaluate_span(
        self, book: BookView, prices: _Prices, span: CompiledSpan, *, detail: bool
    ) -> dict[str, npt.NDArray[Any]]:
        """SPAN margin of every account and, with ``detail``, the per-commodity rows."""
    def greeks(self, book: BookView, prices: _Prices) -> dict[str, npt.NDArray[Any]]:
        """Greeks per account × underlying."""
    def explain(self, book: BookView, prices: _Prices, account_index: int) -> dict[str, Any]:
        """One account's totals and rows as the standard-model kernel computes them."""
    def liquidation_prices(
        self, book: BookView, prices: _Prices, move_: str
    ) -> dict[str, npt.NDArray[Any]]:
        """Liquidation and bankruptcy price of every position (``market``: object array of
        the markets' symbols)."""
    def stress(
        self, book: BookView, scenario_prices: _Prices, *, keep_matrix: bool
    ) -> dict[str, npt.NDArray[Any]]:
        """Every account under every scenario (rows of ``scenario_prices``)."""
    def efficiency(self, book: BookView, prices: _Prices) -> dict[str, npt.NDArray[Any]]:
        """Isolated vs cross requirement per account."""
    def funding(
        self, book: BookView, prices: _Prices, rates: npt.NDArray[np.float64]
    ) -> dict[str, npt.NDArray[Any]]:
        """Funding payments, per-market totals and the balances after."""
    def solvency(
        self,
        book: BookView,
        prices: _Prices,
        reserves: npt.NDArray[np.float64],
        seed: bytes | None = None,
    ) -> tuple[dict[str, Any], MerkleSumTree | None]:
        """Liabilities and reserves; with ``seed``, the Merkle-sum tree."""
    def take_names(
        self, names: Sequence[object], codes: npt.NDArray[Any], missing: object | None = None
    ) -> npt.NDArray[np.object_]:
        """``names[codes]`` as an object array (codes uint8, uint32, int32 or int64); a code
        outside the names gives ``missing``, or an IndexError naming its row without one."""
    def cascade(self, book: BookView, rules: _CascadeRules) -> dict[str, Any]:
        """A liquidation cascade: events, rounds, the final book (columns and their
        grouping), pools and totals."""
    def cascade_shard(self, book: BookView, rules: _CascadeRules) -> CascadeShard:
        """One partition's half of a sharded cascade."""
    def cascade_driver(self, rules: _CascadeRules) -> CascadeDriver:
        """The global half of a sharded cascade."""

# ---- live monitoring (rust/crossmargin-py/src/monitor.rs) ----------------------------------
@final
class Monitor:
    """A resident book, its prices and results (docs/MODEL.md "Live monitoring"). Changes
    cross as flat columns with universe indices; every call is checked whole before any of
    it applies; work runs on the engine's pool without the GIL."""

    def __new__(
        cls, engine: Engine, book: BookView, prices: _Prices, margin_call: float
    ) -> Monitor: ...
    @staticmethod
    def replay(engine: Engine, book: BookView, log: Mapping[str, npt.NDArray[Any]]) -> Monitor:
        """The monitor a log describes, rebuilt from its starting book."""
    def on_prices(self, prices: _Prices) -> dict[str, npt.NDArray[Any]]:
        """New absolute prices (whole vectors); the crossings."""
    def apply(self, changes: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        """Row changes (new states); the crossings."""
    def fill(
        self, account: int, market: int, side: int, qty: float, price: float
    ) -> tuple[tuple[float, float, float, float, float], dict[str, npt.NDArray[Any]]]:
        """A fill: (qty, entry, realised, cash, isolated) and the crossings."""
    def refresh(self, universe: CompiledUniverse | None = None) -> dict[str, npt.NDArray[Any]]:
        """Every account re-evaluated (under a replacement universe when given)."""
    def riskiest(self, n: int) -> dict[str, npt.NDArray[Any]]:
        """The n riskiest accounts: margin columns, account, level."""
    def snapshot(
        self,
    ) -> tuple[
        dict[str, npt.NDArray[Any]],
        dict[str, npt.NDArray[Any]],
        dict[str, npt.NDArray[Any]],
        dict[str, npt.NDArray[Any]],
    ]:
        """(balances, positions, orders, results) as columns, accounts ascending."""
    def log(self, start: int = 0) -> dict[str, npt.NDArray[Any]]:
        """The audit log's rows from ``start`` on, as columns (codes)."""
    def same_log(self, other: Monitor) -> bool:
        """Whether the two logs are equal bit for bit."""
    @property
    def log_len(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def margin_call(self) -> float: ...
    @property
    def n_accounts(self) -> int: ...
    def prices(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The current (asset prices, marks)."""
    def position(self, account: int, market: int, side: int) -> tuple[float, float, float] | None:
        """(qty, entry, isolated margin) of one position, or None."""
    @property
    def universe(self) -> CompiledUniverse: ...

# ---- sharded cascade (rust/crossmargin-py/src/cascade_step.rs) ----------------------------
# Messages are dicts of numpy arrays; money as lists of ints (minor units).
@final
class CascadeShard:
    """One partition's accounts and ledger during a sharded cascade."""

    @property
    def n_accounts(self) -> int: ...
    def holdings(self) -> list[int]:
        """Balances + isolated margins per asset, minor units."""
    def gross_holdings(self) -> list[int]:
        """Σ |balances and isolated margins| per asset, minor units."""
    def select(self, prices: _Prices) -> dict[str, npt.NDArray[Any]]:
        """This round's liquidation candidates at ``prices`` (asset prices, marks)."""
    def settle(
        self,
        prices: _Prices,
        chosen: npt.NDArray[np.uint32],
        fill_price: npt.NDArray[np.float64],
    ) -> dict[str, Any]:
        """Settles the chosen candidates at the driver's fill prices."""
    def counterparties(
        self, prices: _Prices, market: int, side: float, cover: float
    ) -> dict[str, npt.NDArray[Any]]:
        """This shard's deleveraging counterparties on ``market`` (holders of ``side``), as
        far as a deficit of ``cover`` USD reaches (``CascadeDriver.deficit()``)."""
    def deleverage(
        self, prices: _Prices, market: int, closes: dict[str, Any]
    ) -> dict[str, npt.NDArray[Any]]:
        """Closes the driver's share of this shard's counterparties on ``market``."""
    def final_book(self) -> tuple[dict[str, npt.NDArray[Any]], dict[str, npt.NDArray[Any]]]:
        """The shard's book now: (balances, positions) columns, universe indices, open
        positions only, balances as units (from the ledger)."""

@final
class CascadeDriver:
    """The global side of a sharded cascade (prices, priority, liquidity, fund,
    deleveraging)."""

    def round_prices(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(asset prices, marks) of the round about to run."""
    def plan(
        self, candidates: list[dict[str, Any]]
    ) -> tuple[str, list[npt.NDArray[np.uint32]] | None, npt.NDArray[np.float64] | None]:
        """Candidates of every shard → ("next_step" | "done", None, None) or
        ("settle", [chosen per shard], fill prices)."""
    def settled(self, settlements: list[dict[str, Any]]) -> None: ...
    def pools(self) -> tuple[list[int], list[int]]:
        """(insurance fund, external counterparty) per asset now, minor units."""
    def check_capacity(self, gross: list[list[int]]) -> None:
        """Refuses to start when, for some asset, Σ |balances + isolated margins| over the
        shards (each shard's ``gross_holdings()``) + |insurance fund| exceeds the ledger's
        range."""
    def totals(self, holdings: list[list[int]]) -> list[int]:
        """Σ of every holder per asset now, minor units: the shards' ``holdings()``, the
        insurance fund and the external counterparty."""
    def deficit(self) -> tuple[int, float, float] | None:
        """The next deficit to cover: (market, side of the counterparties, how far their
        ranking must reach in USD), or None."""
    def plan_deleverage(self, counterparties: list[dict[str, Any]]) -> list[dict[str, Any]]: ...
    def deleveraged(self, results: list[dict[str, Any]]) -> None: ...
    def end_round(self) -> None: ...
    def finish(self) -> dict[str, Any]:
        """The event log, round table, pools and totals (the driver cannot be used after)."""

# ---- solvency, options, funding rates -----------------------------------------------------
@final
class MerkleSumTree:
    """The Merkle-sum tree of liabilities (all levels), serving inclusion proofs."""

    @property
    def root_hash(self) -> bytes: ...
    @property
    def total(self) -> int: ...
    @property
    def n_leaves(self) -> int: ...
    def leaf(self, index: int) -> tuple[bytes, int]:
        """(leaf hash, leaf sum) of one leaf."""
    def proof(self, index: int) -> list[tuple[bytes, int]]:
        """Siblings (hash, sum) from the leaf up to the root's children."""

def verify_inclusion(
    account: int,
    liability: int,
    nonce: bytes,
    index: int,
    path: list[tuple[bytes, int]],
    root_hash: bytes,
    total: int,
) -> bool:
    """Recomputes the root from a leaf and its path; False on any mismatch or malformed
    input."""

def leaf_nonce(seed: bytes, account: int) -> bytes:
    """The per-account salt derived from the secret seed."""

def simd_levels() -> tuple[list[str], str]:
    """The SIMD levels this CPU runs (best last) and the one ``CROSSMARGIN_SIMD`` selects."""

def set_huge_pages(on: bool) -> bool:
    """Turns the huge-page advice for large fresh columns on or off; returns the previous
    setting."""

def huge_pages() -> bool:
    """Whether large fresh columns ask for huge pages."""

def encode_arrow_strings(
    offsets: npt.NDArray[np.int32] | npt.NDArray[np.int64],
    data: npt.NDArray[np.uint8],
    validity: npt.NDArray[np.uint8] | None,
    bit_offset: int,
) -> tuple[npt.NDArray[np.uint32], list[str]] | int | None:
    """Dictionary-encodes an Arrow ``string`` / ``large_string`` array from its buffers
    (``offsets`` from the array's offset on, ``len + 1`` of them; the validity bitmap with the
    array's offset in bits): codes over the sorted labels; an int: the first null row; None:
    bytes that are not UTF-8 (or buffers shorter than the offsets name)."""

def encode_str_objects(
    cells: npt.NDArray[np.object_],
) -> tuple[npt.NDArray[np.uint32], list[str]] | int | None:
    """Dictionary-encodes an object column of str: codes over the sorted labels; None when a
    cell is not a str (or not encodable as UTF-8)."""

def black76_columns(
    forward: npt.NDArray[np.float64],
    strike: npt.NDArray[np.float64],
    years: npt.NDArray[np.float64],
    vol: npt.NDArray[np.float64],
    rate: npt.NDArray[np.float64],
    call: npt.NDArray[np.bool_],
) -> dict[str, npt.NDArray[np.float64]]:
    """Black-76 over equal-length arrays: price, delta, gamma, vega, theta."""

def bsm_columns(
    inputs: tuple[
        npt.NDArray[np.float64],
        npt.NDArray[np.float64],
        npt.NDArray[np.float64],
        npt.NDArray[np.float64],
        npt.NDArray[np.float64],
        npt.NDArray[np.float64],
        npt.NDArray[np.bool_],
    ],
) -> dict[str, npt.NDArray[np.float64]]:
    """Generalised Black-Scholes-Merton over equal-length arrays (spot, strike, years, vol,
    rate, carry, call): price, delta, gamma, vega,
    theta, rho, carry_rho, delta_forward, gamma_forward, rho_forward."""

def funding_rates(
    premium: npt.NDArray[np.float64],
    n_samples: int,
    interest: npt.NDArray[np.float64],
    floor: npt.NDArray[np.float64],
    cap: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Rates of ``len(interest)`` markets from row-major premium samples."""

def panic_guard_selftest(message: str) -> None:
    """Panics inside the core's panic guard on purpose; raises CrossmarginError."""
