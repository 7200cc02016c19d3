"""Typed face of the compiled module ``crossmargin._core`` (rust/crossmargin-py).

Internal: the public API is the Python package; these are the conversions it calls.
"""

from typing import Any, final

import numpy as np
import numpy.typing as npt

__all__ = ["CompiledUniverse", "GroupedBook", "ThreadPool", "__version__", "evaluate_standard"]

__version__: str

@final
class CompiledUniverse:
    """The universe compiled into flat tables (validated: raises ConfigError)."""

    def __new__(
        cls, assets: list[tuple[Any, ...]], markets: list[tuple[Any, ...]]
    ) -> CompiledUniverse: ...
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
    def accounts(self) -> npt.NDArray[np.int64]: ...

@final
class ThreadPool:
    """A fixed-size rayon pool; ``threads=None`` uses every core."""

    def __new__(cls, threads: int | None = None) -> ThreadPool: ...
    @property
    def threads(self) -> int: ...

def evaluate_standard(
    pool: ThreadPool,
    universe: CompiledUniverse,
    book: GroupedBook,
    asset_remap: npt.NDArray[np.uint32],
    market_remap: npt.NDArray[np.uint32],
    asset_prices: npt.NDArray[np.float64],
    marks: npt.NDArray[np.float64],
) -> dict[str, npt.NDArray[Any]]: ...
