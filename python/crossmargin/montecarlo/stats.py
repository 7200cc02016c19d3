"""Tail estimators with their confidence intervals (docs/MONTECARLO.md, "Estimators").

Everything here works on a 1-D sample of losses ``x`` (n values, larger = worse):

- :func:`var`: the empirical quantile at level α, ``x_(⌈nα⌉)`` (the ⌈nα⌉-th smallest value:
  the smallest sample value v with F̂(v) ≥ α, the inverse of the empirical CDF). Its CI is the
  distribution-free order-statistic interval: the number of sample values below the true
  quantile is Binomial(n, α), so ``[x_(l), x_(u)]`` covers it with probability ≥ 1 − β for
  the l, u chosen from that binomial (an end beyond the sample is ±inf).
- :func:`es`: expected shortfall ES_α = (1/(1−α))∫_α^1 q_u du (Acerbi & Tasche 2002),
  estimated by the mean of the n(1−α) largest values (the boundary value weighted by the
  fractional part). CI: asymptotic normal, SE = sd((X − VaR)⁺) / ((1 − α)√n) (the
  influence function of ES), or a percentile bootstrap.
- :func:`exceedance`: P(X > t) with a Wilson score interval (Wilson 1927), which stays
  inside [0, 1] and is not degenerate at 0 or n exceedances.

An estimate built on fewer than :data:`MIN_TAIL` tail observations issues a
:class:`TailWarning`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

from crossmargin._validate import bounded, integer
from crossmargin.exceptions import ConfigError

# Fewer tail observations than this and a quantile estimate is not worth its digits.
MIN_TAIL = 10


class TailWarning(UserWarning):
    """Too few simulated paths for the quantile asked for: fewer than ``MIN_TAIL`` (10)
    observations beyond it. The estimate is reported with its (wide or unbounded) interval;
    simulate more paths."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its two-sided confidence interval at ``confidence``."""

    value: float
    lower: float
    upper: float
    confidence: float
    n: int
    tail: float
    """The expected number of observations beyond the quantile, n(1 − α)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "lower": self.lower,
            "upper": self.upper,
            "confidence": self.confidence,
            "n": self.n,
            "tail_observations": self.tail,
        }


def _sample(x: Any, field: str = "losses") -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if not len(a):
        raise ConfigError(f"{field}: needs one or more values", field=field)
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"{field}: values must be finite", field=field)
    return a


def _level(level: Any, field: str = "level") -> float:
    return bounded(level, field, 0.0, 1.0, lo_open=True, hi_open=True)


def _tail_check(n: int, level: float, what: str, stacklevel: int) -> float:
    tail = n * (1.0 - level)
    if tail < MIN_TAIL:
        warnings.warn(
            TailWarning(
                f"{what} at {level:.4g}: {n} paths leave {tail:.3g} observations beyond the "
                f"quantile (fewer than {MIN_TAIL}); the estimate is unreliable, simulate at least "
                f"{math.ceil(MIN_TAIL / (1.0 - level))} paths"
            ),
            stacklevel=stacklevel,
        )
    return tail


def binomial_cdf(n: int, p: float) -> np.ndarray:
    """P(Binomial(n, p) ≤ k) for k = 0..n (log-space pmf recurrence, then a cumulative sum)."""
    if p <= 0.0:
        return np.ones(n + 1)
    if p >= 1.0:
        out = np.zeros(n + 1)
        out[-1] = 1.0
        return out
    k = np.arange(n, dtype=np.float64)
    steps = np.log((n - k) / (k + 1.0)) + math.log(p / (1.0 - p))
    logpmf = np.concatenate([[n * math.log1p(-p)], n * math.log1p(-p) + np.cumsum(steps)])
    pmf = np.exp(logpmf - logpmf.max())
    cdf = np.cumsum(pmf)
    return np.asarray(np.minimum(cdf / cdf[-1], 1.0))


def order_statistic_ci(n: int, level: float, confidence: float) -> tuple[int, int]:
    """1-based ranks (l, u) with P(x_(l) ≤ q_level ≤ x_(u)) ≥ confidence for a continuous
    distribution; l = 0 means −inf and u = n + 1 means +inf (the sample is too small)."""
    beta = 1.0 - confidence
    cdf = binomial_cdf(n, level)  # cdf[k] = P(B ≤ k), B = values below the quantile
    # Lower: the largest l with P(B ≤ l − 1) ≤ β/2, so that P(x_(l) ≤ q) = P(B ≥ l) ≥ 1 − β/2.
    ok = np.flatnonzero(cdf <= beta / 2)
    lo = int(ok[-1]) + 1 if len(ok) else 0
    # Upper: the smallest u with P(B ≤ u − 1) ≥ 1 − β/2, so that P(x_(u) ≥ q) ≥ 1 − β/2.
    ok = np.flatnonzero(cdf >= 1.0 - beta / 2)
    hi = int(ok[0]) + 1 if len(ok) else n + 1
    return lo, min(hi, n + 1)


def quantile_rank(n: int, level: float) -> int:
    """The 1-based rank of the empirical α-quantile, ⌈nα⌉ (at least 1)."""
    # Guard n·α landing a hair above an integer by rounding error (n = 1000, α = 0.999).
    r = n * level
    k = math.ceil(r - 1e-9 * max(1.0, r))
    return min(max(k, 1), n)


def var(
    x: Any,
    level: float = 0.99,
    confidence: float = 0.95,
    *,
    what: str = "VaR",
    stacklevel: int = 2,
) -> Estimate:
    """Value at risk: the empirical ``level``-quantile with its order-statistic CI."""
    a = np.sort(_sample(x))
    level = _level(level)
    confidence = _level(confidence, "confidence")
    n = len(a)
    tail = _tail_check(n, level, what, stacklevel + 1)
    k = quantile_rank(n, level)
    lo, hi = order_statistic_ci(n, level, confidence)
    lower = float(a[lo - 1]) if lo >= 1 else -math.inf
    upper = float(a[hi - 1]) if hi <= n else math.inf
    return Estimate(float(a[k - 1]), lower, upper, confidence, n, tail)


def _es_point(a_sorted: np.ndarray, level: float) -> float:
    n = len(a_sorted)
    m = n * (1.0 - level)  # tail mass in observations
    whole = math.floor(m + 1e-9 * max(1.0, m))
    frac = max(m - whole, 0.0)
    total = float(a_sorted[n - whole :].sum()) if whole else 0.0
    if frac > 0 and whole < n:
        total += frac * float(a_sorted[n - whole - 1])
    return total / m


def es(
    x: Any,
    level: float = 0.99,
    confidence: float = 0.95,
    *,
    method: Literal["asymptotic", "bootstrap"] = "asymptotic",
    n_boot: int = 1000,
    seed: int = 0,
    what: str = "ES",
    stacklevel: int = 2,
) -> Estimate:
    """Expected shortfall at ``level`` with an asymptotic (default) or bootstrap CI."""
    a = np.sort(_sample(x))
    level = _level(level)
    confidence = _level(confidence, "confidence")
    n = len(a)
    tail = _tail_check(n, level, what, stacklevel + 1)
    point = _es_point(a, level)
    if method == "asymptotic":
        q = float(a[quantile_rank(n, level) - 1])
        excess = np.maximum(a - q, 0.0)
        se = float(excess.std(ddof=1)) / ((1.0 - level) * math.sqrt(n)) if n > 1 else math.inf
        z = NormalDist().inv_cdf(0.5 + confidence / 2)
        return Estimate(point, point - z * se, point + z * se, confidence, n, tail)
    if method != "bootstrap":
        raise ConfigError(f"method: {method!r} is not one of asymptotic, bootstrap", field="method")
    n_boot = integer(n_boot, "n_boot", 10, 10**7)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
    boots = np.empty(n_boot)
    for b in range(n_boot):
        boots[b] = _es_point(np.sort(a[rng.integers(0, n, n)]), level)
    lo, hi = np.quantile(boots, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Estimate(point, float(lo), float(hi), confidence, n, tail)


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k / n."""
    if n <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def exceedance(x: Any, threshold: float, confidence: float = 0.95) -> Estimate:
    """P(X > threshold) with its Wilson interval."""
    a = _sample(x)
    k = int(np.count_nonzero(a > threshold))
    lo, hi = wilson(k, len(a), confidence)
    return Estimate(k / len(a), lo, hi, confidence, len(a), float(k))


def exceedance_curve(x: Any, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds, P̂(X > threshold)) at the sample's distinct values (at most ``points``
    of them, spread over its range of ranks), for plots."""
    a = np.sort(_sample(x))
    n = len(a)
    idx = np.unique(np.linspace(0, n - 1, min(points, n)).round().astype(np.int64))
    t = a[idx]
    p = 1.0 - np.searchsorted(a, t, side="right") / n
    return t, p


__all__ = [
    "MIN_TAIL",
    "Estimate",
    "TailWarning",
    "binomial_cdf",
    "es",
    "exceedance",
    "exceedance_curve",
    "order_statistic_ci",
    "quantile_rank",
    "var",
    "wilson",
]
