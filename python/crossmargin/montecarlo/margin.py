"""A margin rule that rises with realised volatility (docs/MONTECARLO.md, "Vol-scaled
margin").

For a path with realised volatility σ_u of underlying u (annualised, zero-mean, over the
path's first ``window`` steps or all of them) every market on u has its margin rates scaled
by

    k_u = min(cap, max(1, σ_u / σ_ref,u))

rounded *up* to a multiple of ``step`` (so paths share compiled universes, and the rounding
never lowers the margin). The rates scaled are every bracket's initial and maintenance rate
(capped at 1: a rate is a fraction of notional) and an option market's Deribit margin
parameters (``im_base``, ``im_min``, ``mm_base``); scaling both keeps initial ≥ maintenance.
The universe is rebuilt with ``dataclasses.replace`` on its markets, so it goes through the
same validation as any other.

Using the path's own realised volatility makes this an idealised rule — the venue sees the
regime of the whole horizon at its start (``window`` shortens what it sees). It measures what
such a rule could at best buy in bad debt for the liquidations it adds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from crossmargin._validate import bounded, integer, mapping
from crossmargin.exceptions import ConfigError
from crossmargin.universe import Market, Universe

if TYPE_CHECKING:
    from crossmargin.montecarlo.paths import PathSet


@dataclass(frozen=True)
class VolScaledMargin:
    """Margin × min(cap, max(1, σ_realised / σ_reference)) per underlying (module docstring).

    ``reference_vol``: annualised volatility per underlying (a mapping), or one number for
    every underlying of the paths."""

    reference_vol: float | Mapping[str, float]
    cap: float = 3.0
    step: float = 0.05
    window: int | None = None

    def __post_init__(self) -> None:
        f = "margin.reference_vol"
        if isinstance(self.reference_vol, Mapping):
            for k, v in mapping(self.reference_vol, f, "underlying → volatility").items():
                bounded(v, f"{f}[{k}]", 0.0, lo_open=True)
        else:
            bounded(self.reference_vol, f, 0.0, lo_open=True)
        bounded(self.cap, "margin.cap", 1.0)
        bounded(self.step, "margin.step", 0.0, lo_open=True)
        if self.window is not None:
            integer(self.window, "margin.window", 1, 10**9)

    def _reference(self, underlyings: tuple[str, ...]) -> np.ndarray:
        if isinstance(self.reference_vol, Mapping):
            missing = [u for u in underlyings if u not in self.reference_vol]
            if missing:
                f = f"margin.reference_vol[{missing[0]}]"
                raise ConfigError(f"{f}: missing (the paths move {missing[0]})", field=f)
            return np.array([float(self.reference_vol[u]) for u in underlyings])
        return np.full(len(underlyings), float(self.reference_vol))

    def multipliers(self, paths: PathSet) -> np.ndarray:
        """k per path and underlying (paths × underlyings), rounded up to ``step``."""
        r = paths.log_returns()
        w = paths.n_steps if self.window is None else min(self.window, paths.n_steps)
        years = float(paths.times[w - 1])
        sigma = np.sqrt((r[:, :w, :] ** 2).sum(axis=1) / years)
        k = np.clip(sigma / self._reference(paths.underlyings), 1.0, float(self.cap))
        s = float(self.step)
        # Round up to the grid, with a tolerance so that 1.0 stays 1.0.
        return np.minimum(np.ceil(k / s - 1e-9) * s, float(self.cap))

    def describe(self) -> str:
        ref = (
            ", ".join(f"{k} {v:g}" for k, v in self.reference_vol.items())
            if isinstance(self.reference_vol, Mapping)
            else f"{self.reference_vol:g}"
        )
        window = "" if self.window is None else f", window {self.window}"
        return f"vol-scaled (ref {ref}, cap {self.cap:g}{window})"


def _scaled_market(m: Market, k: float) -> Market:
    if k == 1.0:
        return m
    brackets = [(b, min(imr * k, 1.0), min(mmr * k, 1.0)) for b, imr, mmr in m.brackets]
    changes: dict[str, Any] = {"brackets": brackets}
    if m.is_option:
        changes.update(im_base=m.im_base * k, im_min=m.im_min * k, mm_base=m.mm_base * k)
    return dataclasses.replace(m, **changes)


def scale_universe(universe: Universe, factors: Mapping[str, float]) -> Universe:
    """``universe`` with the margin rates of every market on underlying u scaled by
    ``factors[u]`` (see the module docstring); underlyings not given keep theirs."""
    for u, k in factors.items():
        if not (math.isfinite(k) and k > 0):
            raise ConfigError(f"margin multiplier[{u}]: {k} must be finite and > 0", field=u)
    if all(k == 1.0 for k in factors.values()):
        return universe
    markets = [_scaled_market(m, float(factors.get(m.underlying, 1.0))) for m in universe.markets]
    return dataclasses.replace(universe, markets=markets)


__all__ = ["VolScaledMargin", "scale_universe"]
