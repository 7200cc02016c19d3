"""European options: the vectorised Black-76 and generalised Black-Scholes-Merton pricers
(one Rust loop over numpy arrays each).

Black (1976), "The pricing of commodity contracts": on a forward ``F`` with strike ``K``,
``T`` years, volatility ``σ`` and rate ``r``, a call is worth ``e^{−rT}(F·N(d1) − K·N(d2))``
and a put ``e^{−rT}(K·N(−d2) − F·N(−d1))``. Greeks are per unit of underlying: ``delta``
(∂V/∂F), ``gamma`` (∂²V/∂F²), ``vega`` (∂V/∂σ, per 1.00 of volatility) and ``theta`` (value
change per year of calendar time, −∂V/∂T).

:func:`bsm` is the generalised Black-Scholes-Merton model with a cost of carry ``b`` (Haug,
"The Complete Guide to Option Pricing Formulas", 2nd ed., §1.1.6): ``b = r`` for a stock,
``r − q`` for an index with dividend yield q, ``r − r_f`` for a currency, ``0`` for a futures
option (where it is Black-76). Its greeks are given with respect to the spot and to the
forward ``F = S·e^{bT}``; docs/MODEL.md "Options" lists them.
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
_SIGNED = ("rate", "carry")


def _inputs(values: tuple[Any, ...], names: tuple[str, ...] = tuple(_LOWER)) -> list[np.ndarray]:
    out = []
    for name, x in zip(names, values, strict=True):
        lower = -np.inf if name in _SIGNED else 0.0
        try:
            a = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise PriceError(f"{name}: expected numbers", field=name) from None
        bad = ~np.isfinite(a) | (a < lower)
        if bad.any():
            i = int(np.argmax(bad.reshape(-1)))
            need = "finite" if name in _SIGNED else "finite and ≥ 0"
            f = f"{name}[{i}]"
            raise PriceError(f"{f}: {a.reshape(-1)[i]} must be {need}", field=f)
        out.append(a)
    return out


# Days per year of ``theta_day`` (Haug §2.1 quotes theta per day as theta / 365).
DAYS_PER_YEAR = 365.0


def bsm(
    spot: Any,
    strike: Any,
    years: Any,
    vol: Any,
    rate: Any = 0.0,
    carry: Any = None,
    kind: Any = "call",
) -> Table:
    """Generalised Black-Scholes-Merton price and greeks, vectorised with numpy broadcasting.

    Parameters:
        spot: price of the underlying S (for a futures option, the futures price).
        strike, years, vol: strike K, years to expiry T and volatility σ (≥ 0).
        rate: the risk-free rate r (continuously compounded; may be negative).
        carry: the cost of carry b (default ``rate``: a non-dividend stock): ``rate − q``
            for an index, ``rate − r_foreign`` for a currency, ``0`` for a futures option.
        kind: ``"call"`` / ``"put"`` (or an array of them, or booleans: True = call).

    Returns:
        A :class:`~crossmargin.Table` over the flattened broadcast of the inputs with
        ``price``; with respect to the spot ``delta`` (∂V/∂S), ``gamma`` (∂²V/∂S²),
        ``vega`` (∂V/∂σ per 1.00 of volatility), ``theta`` (−∂V/∂T per year),
        ``theta_day`` (theta / 365), ``rho`` (∂V/∂r with the carry yield r − b fixed),
        ``carry_rho`` (∂V/∂b, Haug's cost-of-carry sensitivity) and ``dividend_rho``
        (∂V/∂q = −carry_rho, the foreign-rate rho for a currency); with respect to the
        forward F = S·e^{bT}: ``delta_forward``, ``gamma_forward`` and ``rho_forward``
        (∂V/∂r with F fixed, −T·V).

    Raises:
        PriceError: an input is not finite (or, but for ``rate`` and ``carry``, negative),
            naming the argument and its flattened index, e.g. ``spot[3]``.

    Example:
        >>> from crossmargin.options import bsm
        >>> round(float(bsm(60.0, 65.0, 0.25, 0.30, 0.08).price[0]), 4)  # Haug §1.1.1
        2.1334
    """
    if carry is None:
        carry = rate
    floats = _inputs((spot, strike, years, vol, rate), names=("spot", *tuple(_LOWER)[1:]))
    (b,) = _inputs((carry,), names=("carry",))
    try:
        arrays = np.broadcast_arrays(*floats, b, _is_call(kind))
    except ValueError as e:
        raise PriceError(f"bsm: the inputs do not broadcast together ({e})") from None
    flat = [np.ascontiguousarray(a.reshape(-1)) for a in arrays]
    cols = _core.bsm_columns(tuple(flat))  # type: ignore[arg-type]
    out = {name: cols[name] for name in ("price", "delta", "gamma", "vega", "theta")}
    out["theta_day"] = cols["theta"] / DAYS_PER_YEAR
    out["rho"] = cols["rho"]
    out["carry_rho"] = cols["carry_rho"]
    out["dividend_rho"] = -cols["carry_rho"]
    for name in ("delta_forward", "gamma_forward", "rho_forward"):
        out[name] = cols[name]
    return Table(out)


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


__all__ = ["DAYS_PER_YEAR", "OPTION_TYPES", "black76", "bsm"]
