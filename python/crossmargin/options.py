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
from crossmargin.exceptions import PriceError
from crossmargin.table import Table

OPTION_TYPES = ("call", "put")


def _is_call(kind: Any) -> np.ndarray:
    k = np.asarray(kind)
    if k.dtype == np.bool_:
        return k
    labels = k.astype(str)
    bad = ~np.isin(labels, OPTION_TYPES)
    if bad.any():
        raise PriceError(
            f"kind: {str(labels[bad].flat[0])!r} is not one of call, put", field="kind"
        )
    return labels == "call"


# Lower bound of each input (all must be finite): a forward, strike, time or volatility
# below 0 has no meaning; a rate may be negative.
_LOWER = {"forward": 0.0, "strike": 0.0, "years": 0.0, "vol": 0.0, "rate": -np.inf}


def _inputs(values: tuple[Any, ...]) -> list[np.ndarray]:
    out = []
    for name, x in zip(_LOWER, values, strict=True):
        try:
            a = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise PriceError(f"{name}: expected numbers", field=name) from None
        bad = ~np.isfinite(a) | (a < _LOWER[name])
        if bad.any():
            i = int(np.argmax(bad.reshape(-1)))
            need = "finite" if name == "rate" else "finite and ≥ 0"
            f = f"{name}[{i}]"
            raise PriceError(f"{f}: {a.reshape(-1)[i]} must be {need}", field=f)
        out.append(a)
    return out


def black76(
    forward: Any, strike: Any, years: Any, vol: Any, rate: Any = 0.0, kind: Any = "call"
) -> Table:
    """Black-76 price and greeks, vectorised with numpy broadcasting.

    ``kind`` is ``"call"`` / ``"put"`` (or an array of them, or booleans: True = call).
    Returns a :class:`~crossmargin.Table` of 1-d columns price, delta, gamma, vega, theta
    over the flattened broadcast of the inputs. Every input must be finite, and all but
    ``rate`` ≥ 0; otherwise :class:`~crossmargin.exceptions.PriceError` names the argument
    and its (flattened) index, e.g. ``forward[3]``.
    """
    floats = _inputs((forward, strike, years, vol, rate))
    try:
        arrays = np.broadcast_arrays(*floats, _is_call(kind))
    except ValueError as e:
        raise PriceError(f"black76: the inputs do not broadcast together ({e})") from None
    flat = [np.ascontiguousarray(a.reshape(-1)) for a in arrays]
    return Table(_core.black76_columns(*flat))


__all__ = ["OPTION_TYPES", "black76"]
