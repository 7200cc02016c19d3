"""European options: the vectorised Black-76 pricer (one Rust loop over numpy arrays).

Black (1976), "The pricing of commodity contracts": on a forward ``F`` with strike ``K``,
``T`` years, volatility ``σ`` and rate ``r``, a call is worth ``e^{−rT}(F·N(d1) − K·N(d2))``
and a put ``e^{−rT}(K·N(−d2) − F·N(−d1))``. Greeks are per unit of underlying: ``delta``
(∂V/∂F), ``gamma`` (∂²V/∂F²), ``vega`` (∂V/∂σ, per 1.00 of volatility) and ``theta`` (value
change per year of calendar time, −∂V/∂T).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crossmargin import _core
from crossmargin.table import Table

OPTION_TYPES = ("call", "put")


def _is_call(kind: Any) -> np.ndarray:
    k = np.asarray(kind)
    if k.dtype == np.bool_:
        return k
    labels = k.astype(str)
    bad = ~np.isin(labels, OPTION_TYPES)
    if bad.any():
        raise ValueError(f"kind: {labels[bad].flat[0]!r} is not one of call, put")
    return labels == "call"


def black76(
    forward: Any, strike: Any, years: Any, vol: Any, rate: Any = 0.0, kind: Any = "call"
) -> Table:
    """Black-76 price and greeks, vectorised with numpy broadcasting.

    ``kind`` is ``"call"`` / ``"put"`` (or an array of them, or booleans: True = call).
    Returns a :class:`~crossmargin.Table` of 1-d columns price, delta, gamma, vega, theta
    over the flattened broadcast of the inputs.
    """
    floats = [np.asarray(x, dtype=np.float64) for x in (forward, strike, years, vol, rate)]
    arrays = np.broadcast_arrays(*floats, _is_call(kind))
    flat = [np.ascontiguousarray(a.reshape(-1)) for a in arrays]
    return Table(_core.black76_columns(*flat))


__all__ = ["OPTION_TYPES", "black76"]
