"""Price paths for Monte Carlo stress (docs/MONTECARLO.md, "Price paths").

A :class:`PathSet` holds, per path and step, the *cumulative* fractional move of each
underlying from today's prices — exactly the shape ``CascadeConfig(path=[{underlying: move},
...])`` takes. :func:`simulate` draws one from a model:

- :class:`Normal`: correlated Gaussian log-returns (geometric Brownian motion);
- :class:`StudentT`: multivariate Student-t log-returns scaled to unit variance;
- :class:`GarchT`: GARCH(1,1) variance (Bollerslev 1986) with Student-t innovations;
- :class:`MertonJump`: Gaussian diffusion plus compound-Poisson log-normal jumps (Merton 1976);
- :class:`Bootstrap`: rows of a user's returns table drawn with replacement;
- :class:`FilteredHistorical`: filtered historical simulation (Barone-Adesi, Giannopoulos &
  Vosper 1999): a GARCH(1,1) fitted to each column, standardised residuals resampled by row
  and re-scaled by the simulated variance.

Volatilities are annualised (365-day years: crypto trades every day), the horizon is a
duration (``"1d"``, ``"24h"``, ``"30m"``, ``"1w"``) or a float in years.

**Determinism.** Path ``i`` of seed ``s`` is drawn from its own generator,
``PCG64(SeedSequence(s, spawn_key=(i,)))`` — the i-th child of ``SeedSequence(s).spawn`` —
so a path is the same whatever the number of paths, the threads or the order of generation.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crossmargin._validate import array, bounded, integer, mapping, show
from crossmargin.exceptions import ConfigError, ConfigTypeError

if TYPE_CHECKING:
    import pyarrow as pa

    from crossmargin.table import Table

YEAR_SECONDS = 365.0 * 86400.0
UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
UNITS["y"] = YEAR_SECONDS
# A cumulative log move is floored here (a price 1e-12 of today's): the cascade needs > −100 %.
MIN_LOG_MOVE = math.log(1e-12)
PATHSET_FORMAT = "crossmargin.montecarlo.paths/1"


def duration_years(value: Any, field: str) -> float:
    """``"1d"``, ``"24h"``, ``"90s"``, ``"1w"``, ``"0.5y"`` or a number of years, as years."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]+)\s*", value)
        if not m or m.group(2) not in UNITS:
            raise ConfigError(
                f"{field}: {value!r} is not a duration like 1d, 24h, 30m, 1w (units: "
                f"{', '.join(UNITS)})",
                field=field,
            )
        years = float(m.group(1)) * UNITS[m.group(2)] / YEAR_SECONDS
    else:
        years = bounded(value, field, 0.0, lo_open=True)
    if not (math.isfinite(years) and years > 0):
        raise ConfigError(f"{field}: {value!r} must be a positive duration", field=field)
    return years


# ---- parameters --------------------------------------------------------------------------
def _names_and_values(
    values: Any, field: str, lo: float | None = 0.0
) -> tuple[list[str], list[float]]:
    m = mapping(values, field, "underlying → value")
    if not m:
        raise ConfigError(f"{field}: needs one or more underlyings", field=field)
    names = list(m)
    vals = [bounded(m[k], f"{field}[{k}]", lo) for k in names]
    return names, vals


def _per_name(
    value: Any,
    names: Sequence[str],
    field: str,
    lo: float | None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> np.ndarray:
    """A scalar for every underlying, or a mapping underlying → value."""
    if isinstance(value, Mapping):
        mapping(value, field, "underlying → value")
        unknown = [k for k in value if k not in names]
        if unknown:
            raise ConfigError(f"{field}[{unknown[0]}]: not one of {', '.join(names)}", field=field)
        missing = [k for k in names if k not in value]
        if missing:
            raise ConfigError(f"{field}[{missing[0]}]: missing", field=f"{field}[{missing[0]}]")
        return np.array(
            [
                bounded(value[k], f"{field}[{k}]", lo, hi, lo_open=lo_open, hi_open=hi_open)
                for k in names
            ]
        )
    x = bounded(value, field, lo, hi, lo_open=lo_open, hi_open=hi_open)
    return np.full(len(names), x)


def correlation_factor(corr: Any, names: Sequence[str], field: str = "corr") -> np.ndarray:
    """The lower Cholesky factor of a correlation matrix given as a k × k array (rows in
    ``names`` order), a mapping ``{("BTC", "ETH"): 0.8}`` / ``{"BTC/ETH": 0.8}`` (pairs not
    given are 0), or None (independent). It must be symmetric with a unit diagonal, entries
    in [−1, 1], and positive definite."""
    k = len(names)
    if corr is None:
        return np.eye(k)
    if isinstance(corr, Mapping):
        c = np.eye(k)
        index = {n: i for i, n in enumerate(names)}
        for key, value in corr.items():
            pair = tuple(key.split("/")) if isinstance(key, str) else tuple(key)
            if len(pair) != 2 or any(p not in index for p in pair):
                raise ConfigError(
                    f"{field}[{show(key)}]: expected a pair of underlyings of {', '.join(names)}",
                    field=f"{field}[{show(key)}]",
                )
            i, j = index[pair[0]], index[pair[1]]
            v = bounded(value, f"{field}[{pair[0]}/{pair[1]}]", -1.0, 1.0)
            if i == j and v != 1.0:
                raise ConfigError(f"{field}[{key}]: a diagonal entry must be 1", field=field)
            c[i, j] = c[j, i] = v
    else:
        c = array(corr, field)
        if c.shape != (k, k):
            raise ConfigError(
                f"{field}: expected a {k} × {k} matrix for {', '.join(names)}, got shape {c.shape}",
                field=field,
            )
    if not np.all(np.isfinite(c)):
        raise ConfigError(f"{field}: entries must be finite", field=field)
    if not np.allclose(c, c.T, rtol=0, atol=1e-12):
        raise ConfigError(f"{field}: the matrix is not symmetric", field=field)
    if not np.allclose(np.diag(c), 1.0, rtol=0, atol=1e-12):
        raise ConfigError(f"{field}: the diagonal must be 1", field=field)
    if np.any(np.abs(c) > 1.0 + 1e-12):
        raise ConfigError(f"{field}: entries must be in [-1, 1]", field=field)
    try:
        return np.asarray(np.linalg.cholesky(c))
    except np.linalg.LinAlgError:
        smallest = float(np.linalg.eigvalsh(c).min())
        raise ConfigError(
            f"{field}: the correlation matrix is not positive definite (smallest eigenvalue "
            f"{smallest:.3g})",
            field=field,
        ) from None


@dataclass(frozen=True)
class _Gaussian:
    """Shared fields: annualised volatility per underlying, correlation, annualised drift."""

    vol: Mapping[str, float]
    corr: Any = None
    drift: float | Mapping[str, float] = 0.0

    def _base(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        names, vals = _names_and_values(self.vol, "vol")
        chol = correlation_factor(self.corr, names)
        mu = _per_name(self.drift, names, "drift", None)
        return names, np.array(vals), chol, mu

    @property
    def underlyings(self) -> tuple[str, ...]:
        return tuple(mapping(self.vol, "vol", "underlying → volatility"))


@dataclass(frozen=True)
class Normal(_Gaussian):
    """Correlated geometric Brownian motion: per step, log-return = (μ − σ²/2)Δt + σ√Δt·z
    with z ~ N(0, C)."""

    def _prepare(self, dt: float) -> Callable[[np.random.Generator, int], np.ndarray]:
        names, sigma, chol, mu = self._base()
        drift = (mu - sigma**2 / 2) * dt
        scale = sigma * math.sqrt(dt)

        def draw(rng: np.random.Generator, steps: int) -> np.ndarray:
            z = rng.standard_normal((steps, len(names))) @ chol.T
            return np.asarray(drift + scale * z)

        return draw

    def describe(self) -> dict[str, Any]:
        return {"model": "normal", **_fields(self)}


def _t_scale(df: float) -> float:
    return math.sqrt((df - 2.0) / df)


@dataclass(frozen=True)
class StudentT(_Gaussian):
    """Multivariate Student-t log-returns with ``df`` > 2 degrees of freedom, scaled to unit
    variance: z = √((ν−2)/ν) · L·g / √(W/ν), g ~ N(0, I), W ~ χ²_ν shared by the
    underlyings of a step (joint tails); log-return = (μ − σ²/2)Δt + σ√Δt·z."""

    df: float = 4.0

    def _prepare(self, dt: float) -> Callable[[np.random.Generator, int], np.ndarray]:
        names, sigma, chol, mu = self._base()
        df = bounded(self.df, "df", 2.0, lo_open=True)
        drift = (mu - sigma**2 / 2) * dt
        scale = sigma * math.sqrt(dt) * _t_scale(df)

        def draw(rng: np.random.Generator, steps: int) -> np.ndarray:
            g = rng.standard_normal((steps, len(names))) @ chol.T
            w = rng.chisquare(df, steps)
            return np.asarray(drift + scale * g / np.sqrt(w / df)[:, None])

        return draw

    def describe(self) -> dict[str, Any]:
        return {"model": "t", **_fields(self)}


@dataclass(frozen=True)
class GarchT(_Gaussian):
    """GARCH(1,1) per underlying at the step frequency (Bollerslev 1986): h_t = ω + α·ε²_{t−1}
    + β·h_{t−1}, ε_t = √h_t·z_t, z_t multivariate Student-t (``df``) with unit variance and
    correlation ``corr``. ``vol`` is the long-run annualised volatility (ω = σ²Δt(1 − α − β),
    variance targeting), ``initial_vol`` today's conditional one (default: the long-run).
    ``alpha``, ``beta`` are per step (α + β < 1: the persistence); log-return = μΔt − h_t/2 +
    ε_t."""

    alpha: float | Mapping[str, float] = 0.08
    beta: float | Mapping[str, float] = 0.90
    df: float = 6.0
    initial_vol: Mapping[str, float] | None = None

    def _prepare(self, dt: float) -> Callable[[np.random.Generator, int], np.ndarray]:
        names, sigma, chol, mu = self._base()
        a = _per_name(self.alpha, names, "alpha", 0.0, 1.0)
        b = _per_name(self.beta, names, "beta", 0.0, 1.0)
        if np.any(a + b >= 1.0):
            i = int(np.argmax(a + b >= 1.0))
            raise ConfigError(
                f"alpha[{names[i]}] + beta[{names[i]}]: {a[i] + b[i]:g} must be < 1 "
                "(a stationary variance)",
                field="beta",
            )
        df = bounded(self.df, "df", 2.0, lo_open=True)
        h_long = sigma**2 * dt
        omega = h_long * (1.0 - a - b)
        if self.initial_vol is None:
            h0 = h_long.copy()
        else:
            h0 = _per_name(self.initial_vol, names, "initial_vol", 0.0) ** 2 * dt
        mu_dt = mu * dt
        ts = _t_scale(df)
        k = len(names)

        def draw(rng: np.random.Generator, steps: int) -> np.ndarray:
            g = rng.standard_normal((steps, k)) @ chol.T
            w = rng.chisquare(df, steps)
            z = ts * g / np.sqrt(w / df)[:, None]
            out = np.empty((steps, k))
            h = h0.copy()
            for t in range(steps):
                eps = np.sqrt(h) * z[t]
                out[t] = mu_dt - h / 2 + eps
                h = omega + a * eps**2 + b * h
            return out

        return draw

    def describe(self) -> dict[str, Any]:
        return {"model": "garch-t", **_fields(self)}


@dataclass(frozen=True)
class MertonJump(_Gaussian):
    """Merton (1976) jump diffusion: Gaussian diffusion (as :class:`Normal`) plus N ~
    Poisson(λΔt) jumps per step whose log sizes are N(``jump_mean``, ``jump_vol``²);
    ``intensity`` λ is per year. ``common_jumps``: the underlyings jump together (one
    Poisson count per step, sizes correlated by ``corr``), else independently. The drift is
    compensated (−λk, k = e^{μ_J + δ²/2} − 1), so E[S_T] = S_0·e^{μT}."""

    intensity: float = 10.0
    jump_mean: float | Mapping[str, float] = -0.03
    jump_vol: float | Mapping[str, float] = 0.04
    common_jumps: bool = True

    def _prepare(self, dt: float) -> Callable[[np.random.Generator, int], np.ndarray]:
        names, sigma, chol, mu = self._base()
        lam = bounded(self.intensity, "intensity", 0.0)
        mj = _per_name(self.jump_mean, names, "jump_mean", None)
        sj = _per_name(self.jump_vol, names, "jump_vol", 0.0)
        if not isinstance(self.common_jumps, bool):
            raise ConfigTypeError(
                f"common_jumps: {show(self.common_jumps)} must be true or false",
                field="common_jumps",
            )
        kappa = np.expm1(mj + sj**2 / 2)
        drift = (mu - sigma**2 / 2 - lam * kappa) * dt
        scale = sigma * math.sqrt(dt)
        k = len(names)
        common = self.common_jumps

        def draw(rng: np.random.Generator, steps: int) -> np.ndarray:
            z = rng.standard_normal((steps, k)) @ chol.T
            if common:
                n = rng.poisson(lam * dt, steps).astype(np.float64)[:, None]
                e = rng.standard_normal((steps, k)) @ chol.T
            else:
                n = rng.poisson(lam * dt, (steps, k)).astype(np.float64)
                e = rng.standard_normal((steps, k))
            jumps = n * mj + np.sqrt(n) * sj * e
            return np.asarray(drift + scale * z + jumps)

        return draw

    def describe(self) -> dict[str, Any]:
        return {"model": "jump", **_fields(self)}


def _fields(model: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in model.__dict__.items():
        if k.startswith("_") or k == "returns":
            continue
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, Mapping):
            v = {"/".join(x) if isinstance(x, tuple) else str(x): y for x, y in v.items()}
        out[k] = v
    return out


# ---- returns tables ----------------------------------------------------------------------
TIME_COLUMNS = ("timestamp", "time", "date", "datetime")


def read_returns(
    returns: Any, columns: Sequence[str] | None = None, kind: str = "log"
) -> tuple[list[str], np.ndarray, float | None]:
    """A returns table as (underlyings, T × k log-returns, frequency in years or None).

    ``returns``: a Parquet or CSV path (read with pyarrow), a pandas / polars DataFrame, an
    Arrow table, a mapping column → array, or ``(names, 2-D array)``. Numeric columns are
    underlyings; a ``timestamp`` / ``time`` / ``date`` column gives the frequency (the median
    spacing). ``kind="simple"`` converts simple returns to log-returns."""
    field = "returns"
    freq: float | None = None
    cols: dict[str, Any]
    names: list[str]
    if isinstance(returns, str | Path):
        from crossmargin.io import is_csv

        p = Path(returns)
        if not p.is_file():
            raise ConfigError(f"returns: {p}: no such file", field=field)
        import pyarrow as pa
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        try:
            if p.name.lower().endswith(".csv.gz"):
                with pa.input_stream(p, compression="gzip") as stream:
                    tbl = pcsv.read_csv(stream)
            elif is_csv(p):
                tbl = pcsv.read_csv(p)
            else:
                tbl = pq.read_table(p)
        except Exception as e:  # pyarrow raises several unrelated types for unreadable files
            raise ConfigError(f"returns: {p}: cannot read: {e}", field=field) from None
        cols = {n: tbl.column(n).to_numpy(zero_copy_only=False) for n in tbl.column_names}
    elif isinstance(returns, tuple) and len(returns) == 2:
        given, values = returns
        a = array(values, field)
        if a.ndim != 2 or a.shape[1] != len(given):
            raise ConfigError(
                f"returns: expected a T × {len(given)} array for {list(given)}, got {a.shape}",
                field=field,
            )
        cols = {str(n): a[:, i] for i, n in enumerate(given)}
    elif isinstance(returns, Mapping):
        cols = dict(returns)
    elif hasattr(returns, "to_arrow") or hasattr(returns, "column_names"):
        tbl = returns.to_arrow() if hasattr(returns, "to_arrow") else returns
        cols = {n: tbl.column(n).to_numpy(zero_copy_only=False) for n in tbl.column_names}
    elif hasattr(returns, "columns") and hasattr(returns, "__getitem__"):  # pandas
        cols = {str(c): returns[c].to_numpy() for c in returns.columns}
    else:
        raise ConfigTypeError(
            f"returns: {type(returns).__name__} is not a returns table (a Parquet/CSV path, a "
            "DataFrame, an Arrow table, a mapping of columns or (names, array))",
            field=field,
        )
    time_col = next((c for c in TIME_COLUMNS if c in cols), None)
    if time_col is not None:
        t = np.asarray(cols.pop(time_col))
        if len(t) > 1:
            try:
                ts = t.astype("datetime64[ns]").astype(np.int64) / 1e9
            except (TypeError, ValueError):
                ts = np.asarray(t, dtype=np.float64)
            spacing = float(np.median(np.diff(ts)))
            if spacing > 0:
                freq = spacing / YEAR_SECONDS
    if columns is not None:
        missing = [c for c in columns if c not in cols]
        if missing:
            raise ConfigError(f"returns: no column {missing[0]!r}", field=f"returns[{missing[0]}]")
        cols = {c: cols[c] for c in columns}
    names = []
    data: list[np.ndarray] = []
    for name, v in cols.items():
        a = np.asarray(v)
        if a.dtype.kind not in "fiu":
            if columns is not None:
                raise ConfigTypeError(
                    f"returns[{name}]: not numeric ({a.dtype})", field=f"returns[{name}]"
                )
            continue
        names.append(str(name))
        data.append(a.astype(np.float64))
    if not names:
        raise ConfigError("returns: the table has no numeric return columns", field=field)
    x = np.column_stack(data)
    if len(x) == 0:
        raise ConfigError("returns: the table is empty (no rows)", field=field)
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        r, c = (int(v) for v in bad[0])
        raise ConfigError(
            f"returns[{names[c]}] row {r}: {x[r, c]} is not a finite return",
            field=f"returns[{names[c]}]",
        )
    if kind == "simple":
        if np.any(x <= -1.0):
            r, c = (int(v) for v in np.argwhere(x <= -1.0)[0])
            raise ConfigError(
                f"returns[{names[c]}] row {r}: a simple return must be > -1",
                field=f"returns[{names[c]}]",
            )
        x = np.log1p(x)
    elif kind != "log":
        raise ConfigError(f"kind: {kind!r} is not one of log, simple", field="kind")
    return names, x, freq


# ---- GARCH(1,1) quasi-maximum likelihood ------------------------------------------------
@dataclass(frozen=True)
class GarchFit:
    """A GARCH(1,1) fitted by Gaussian quasi-maximum likelihood with variance targeting
    (ω = s²(1 − α − β), s² the sample variance of the de-meaned returns): per column
    ``omega``, ``alpha``, ``beta``, the conditional variances ``h`` (T), the standardised
    residuals ``z`` = (r − mean)/√h and the next period's variance ``h_next``."""

    mean: float
    omega: float
    alpha: float
    beta: float
    h: np.ndarray
    z: np.ndarray
    h_next: float

    @property
    def persistence(self) -> float:
        return self.alpha + self.beta


def _garch_variance(r2: np.ndarray, v: float, a: float, b: float) -> np.ndarray:
    """h_t = ω + a·r²_{t−1} + b·h_{t−1}, h_0 = v, ω = v(1 − a − b), for all t at once:
    h_t = v + a·Σ_{j<t} b^{t−1−j}(r²_j − v) (an FFT convolution with the kernel b^j)."""
    n = len(r2)
    x = r2[:-1] - v
    if n == 1 or a == 0.0:
        return np.full(n, v)
    kernel = b ** np.arange(n - 1, dtype=np.float64)
    size = 1 << (2 * (n - 1) - 1).bit_length()
    conv = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(kernel, size), size)[: n - 1]
    h = np.empty(n)
    h[0] = v
    h[1:] = v + a * conv
    return np.maximum(h, v * 1e-12)


def _nelder_mead(
    f: Callable[[np.ndarray], float],
    x0: np.ndarray,
    step: float = 0.5,
    tol: float = 1e-9,
    max_iter: int = 600,
) -> np.ndarray:
    """A plain Nelder–Mead simplex minimiser (Nelder & Mead 1965)."""
    k = len(x0)
    pts = [x0] + [x0 + step * np.eye(k)[i] for i in range(k)]
    vals = [f(p) for p in pts]
    for _ in range(max_iter):
        order = np.argsort(vals)
        pts = [pts[i] for i in order]
        vals = [vals[i] for i in order]
        if abs(vals[-1] - vals[0]) <= tol * (abs(vals[0]) + tol):
            break
        centroid = np.mean(pts[:-1], axis=0)
        xr = centroid + (centroid - pts[-1])
        fr = f(xr)
        if fr < vals[0]:
            xe = centroid + 2.0 * (centroid - pts[-1])
            fe = f(xe)
            pts[-1], vals[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < vals[-2]:
            pts[-1], vals[-1] = xr, fr
        else:
            xc = centroid + 0.5 * (pts[-1] - centroid)
            fc = f(xc)
            if fc < vals[-1]:
                pts[-1], vals[-1] = xc, fc
            else:
                pts = [pts[0] + 0.5 * (p - pts[0]) for p in pts]
                vals = [f(p) for p in pts]
    return pts[int(np.argmin(vals))]


def fit_garch(r: Any, field: str = "returns") -> GarchFit:
    """GARCH(1,1) by Gaussian QMLE with variance targeting (see :class:`GarchFit`)."""
    x = np.asarray(r, dtype=np.float64).reshape(-1)
    if len(x) < 10:
        raise ConfigError(
            f"{field}: a GARCH fit needs 10 or more returns, got {len(x)}", field=field
        )
    mean = float(x.mean())
    e = x - mean
    r2 = e * e
    v = float(r2.mean())
    if v <= 0:
        raise ConfigError(f"{field}: the returns do not vary", field=field)

    def unpack(theta: np.ndarray) -> tuple[float, float]:
        p = 0.9999 / (1.0 + math.exp(-float(theta[0])))
        s = 1.0 / (1.0 + math.exp(-float(theta[1])))
        return p * s, p * (1.0 - s)

    def nll(theta: np.ndarray) -> float:
        a, b = unpack(theta)
        h = _garch_variance(r2, v, a, b)
        return float(0.5 * np.sum(np.log(h) + r2 / h))

    best = min(
        (
            np.array([math.log(p / (1 - p)), math.log(s / (1 - s))])
            for p in (0.5, 0.9, 0.98)
            for s in (0.05, 0.2)
        ),
        key=nll,
    )
    a, b = unpack(_nelder_mead(nll, best))
    h = _garch_variance(r2, v, a, b)
    omega = v * (1.0 - a - b)
    return GarchFit(mean, omega, a, b, h, e / np.sqrt(h), omega + a * r2[-1] + b * h[-1])


# ---- historical models -------------------------------------------------------------------
@dataclass(frozen=True)
class Bootstrap:
    """Rows of a returns table (one row = one period's returns of every underlying, so
    cross-correlation is kept) drawn with replacement. ``frequency`` (a duration, or None:
    from the table's timestamp column) is the table's period; a step must be a whole number
    m of periods (its return is the sum of m drawn rows) or a whole fraction 1/k of one
    (each sub-step draws its own row scaled by √(1/k)). ``kind``: ``"log"`` or
    ``"simple"`` returns.

    ``block`` (None: rows drawn independently) is the mean block length, in rows, of the
    stationary bootstrap (Politis & Romano 1994): the draws walk the table forward from a
    random row, and each next row starts a new block at a random row with probability
    1/block, else continues with the following row (the table wraps around). Blocks keep the
    table's autocorrelation and volatility clustering up to about ``block`` rows, which
    independent draws destroy; the resampled series stays stationary. A number ≥ 1
    (``block=1`` is the independent bootstrap with its own random stream).

    >>> mc.Bootstrap("hourly.parquet", frequency="1h", block=24)   # doctest: +SKIP
    """

    returns: Any
    frequency: str | float | None = None
    columns: Sequence[str] | None = None
    kind: str = "log"
    block: float | None = None
    _data: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.block is not None:
            object.__setattr__(self, "block", bounded(self.block, "block", 1.0, float(2**53)))

    def _load(self) -> tuple[list[str], np.ndarray, float]:
        if self._data is None:
            names, x, freq = read_returns(self.returns, self.columns, self.kind)
            if self.frequency is not None:
                freq = duration_years(self.frequency, "frequency")
            if freq is None:
                raise ConfigError(
                    "frequency: the returns table has no timestamp column; give frequency= "
                    "(e.g. '1h' or '1d')",
                    field="frequency",
                )
            object.__setattr__(self, "_data", (names, x, freq))
        out: tuple[list[str], np.ndarray, float] = self._data
        return out

    @property
    def underlyings(self) -> tuple[str, ...]:
        return tuple(self._load()[0])

    def _filtered(self) -> tuple[np.ndarray, np.ndarray | None, Any]:
        """(residual rows to resample, None = no variance filter, GARCH parameters)."""
        return self._load()[1], None, None

    def _prepare(self, dt: float) -> Callable[[np.random.Generator, int], np.ndarray]:
        _, _, freq = self._load()
        z, h_next, params = self._filtered()
        m, k = _ratio(dt, freq)
        n_rows, width = z.shape
        mean = self._mean()

        block = self.block

        def draw(rng: np.random.Generator, steps: int) -> np.ndarray:
            periods = math.ceil(steps * m / k) if k > 1 else steps * m
            if block is None:
                at = rng.integers(0, n_rows, (periods, k))
            else:
                at = stationary_indices(rng, n_rows, periods * k, block).reshape(periods, k)
            rows = z[at]  # periods × sub-steps × width
            if h_next is None:
                sub = rows / math.sqrt(k)
            else:
                omega, alpha, beta = params
                sub = np.empty_like(rows)
                h = h_next.copy()
                for t in range(periods):
                    sub[t] = np.sqrt(h / k) * rows[t]
                    eps = sub[t].sum(axis=0)
                    h = omega + alpha * eps**2 + beta * h
                sub = sub + mean / k
            flat = sub.reshape(periods * k, width)
            if m > 1:
                return np.asarray(flat[: steps * m].reshape(steps, m, width).sum(axis=1))
            return np.asarray(flat[:steps])

        return draw

    def _mean(self) -> np.ndarray:
        return np.zeros(len(self._load()[0]))

    def describe(self) -> dict[str, Any]:
        names, x, freq = self._load()
        src = str(self.returns) if isinstance(self.returns, str | Path) else "in memory"
        return {
            "model": "bootstrap",
            "returns": src,
            "rows": len(x),
            "frequency_years": freq,
            "kind": self.kind,
            "block": self.block,
            "underlyings": names,
        }


def stationary_indices(
    rng: np.random.Generator, n_rows: int, count: int, block: float
) -> np.ndarray:
    """``count`` row indices of the stationary bootstrap (Politis & Romano 1994, "The
    stationary bootstrap", JASA 89(428)): a block starts at a uniform row, each next index
    starts a new block with probability 1/``block`` and otherwise is the previous one + 1,
    modulo ``n_rows`` (block lengths are geometric with mean ``block``)."""
    starts = rng.integers(0, n_rows, count)
    new = rng.random(count) < 1.0 / block
    if count:
        new[0] = True
    first = np.flatnonzero(new)
    block_of = np.cumsum(new) - 1
    offset = np.arange(count) - first[block_of]
    return np.asarray((starts[first][block_of] + offset) % n_rows)


@dataclass(frozen=True)
class FilteredHistorical(Bootstrap):
    """Filtered historical simulation (Barone-Adesi, Giannopoulos & Vosper 1999): a GARCH(1,1)
    fitted per column (:func:`fit_garch`), whole rows of standardised residuals resampled,
    each scaled by the column's simulated conditional volatility, starting from the variance
    the fit forecasts for the period after the table."""

    def _fits(self) -> list[GarchFit]:
        names, x, _ = self._load()
        return [fit_garch(x[:, i], f"returns[{n}]") for i, n in enumerate(names)]

    def _filtered(self) -> tuple[np.ndarray, np.ndarray | None, Any]:
        fits = self._fits()
        z = np.column_stack([f.z for f in fits])
        h = np.array([f.h_next for f in fits])
        params = tuple(np.array([getattr(f, p) for f in fits]) for p in ("omega", "alpha", "beta"))
        object.__setattr__(self, "_fit_cache", fits)
        return z, h, params

    def _mean(self) -> np.ndarray:
        fits = getattr(self, "_fit_cache", None) or self._fits()
        return np.array([f.mean for f in fits])

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        fits = getattr(self, "_fit_cache", None) or self._fits()
        d["model"] = "fhs"
        d["garch"] = {
            n: {"omega": f.omega, "alpha": f.alpha, "beta": f.beta}
            for n, f in zip(d["underlyings"], fits, strict=True)
        }
        return d


def _ratio(dt: float, freq: float) -> tuple[int, int]:
    """A step of ``dt`` years as (m, k): m periods of ``freq`` per step, or 1/k of one."""
    r = dt / freq
    if r >= 1.0 - 1e-9:
        m = round(r)
        if abs(r - m) <= 1e-6 * r:
            return m, 1
    else:
        k = round(1.0 / r)
        if k >= 1 and abs(1.0 / r - k) <= 1e-6 / r:
            return 1, k
    raise ConfigError(
        f"steps: a step of {dt * YEAR_SECONDS:g} s is neither a whole number of the returns' "
        f"periods ({freq * YEAR_SECONDS:g} s) nor a whole fraction of one",
        field="steps",
    )


Model = Normal | StudentT | GarchT | MertonJump | Bootstrap | FilteredHistorical
MODELS: tuple[type, ...] = (Normal, StudentT, GarchT, MertonJump, Bootstrap, FilteredHistorical)


# ---- the path set ------------------------------------------------------------------------
@dataclass(frozen=True)
class PathSet:
    """Cumulative moves per path, step and underlying (``moves[p, t, j]`` = S_t/S_0 − 1 of
    underlying ``underlyings[j]`` at the end of step t), the step ``times`` in years, and how
    the paths were made (``meta``: model, seed, horizon...). Save with :meth:`save` and
    reload with :meth:`load` to compare policies on common random numbers."""

    moves: np.ndarray
    underlyings: tuple[str, ...]
    times: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        m = np.asarray(self.moves, dtype=np.float64)
        if m.ndim != 3:
            raise ConfigError(
                f"paths: moves must be paths × steps × underlyings, got {m.ndim} dimensions",
                field="paths",
            )
        if m.shape[1] == 0:
            raise ConfigError("paths: needs one or more steps", field="paths")
        if m.shape[2] != len(self.underlyings):
            raise ConfigError(
                f"paths: {m.shape[2]} columns of moves for {len(self.underlyings)} underlyings",
                field="paths.underlyings",
            )
        bad = np.argwhere(~(np.isfinite(m) & (m > -1.0)))
        if len(bad):
            p, t, j = (int(v) for v in bad[0])
            f = f"paths[{p}][{t}][{self.underlyings[j]}]"
            raise ConfigError(f"{f}: {m[p, t, j]} must be a finite move above -100%", field=f)
        times = np.asarray(self.times, dtype=np.float64).reshape(-1)
        if len(times) != m.shape[1]:
            raise ConfigError(
                f"paths.times: {len(times)} times for {m.shape[1]} steps", field="paths.times"
            )
        m.setflags(write=False)
        object.__setattr__(self, "moves", m)
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "underlyings", tuple(str(u) for u in self.underlyings))

    # ---- facts -------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.moves.shape[0])

    @property
    def n_paths(self) -> int:
        return len(self)

    @property
    def n_steps(self) -> int:
        return int(self.moves.shape[1])

    def path(self, i: int) -> list[dict[str, float]]:
        """Path ``i`` as ``CascadeConfig(path=...)`` takes it."""
        rows = self.moves[i]
        return [dict(zip(self.underlyings, map(float, r), strict=True)) for r in rows]

    def log_returns(self) -> np.ndarray:
        """Per-step log-returns, paths × steps × underlyings."""
        lm = np.log1p(self.moves)
        return np.diff(lm, axis=1, prepend=0.0)

    def realised_vol(self) -> np.ndarray:
        """Annualised realised volatility per path and underlying: √(Σ r_t² / T) (zero-mean
        estimator over the path, T the horizon in years)."""
        r = self.log_returns()
        horizon = float(self.times[-1])
        return np.asarray(np.sqrt((r**2).sum(axis=1) / horizon))

    def subset(self, index: Any) -> PathSet:
        """The paths at ``index`` (a slice, indices or a mask), their numbers kept in meta."""
        idx = np.arange(len(self))[index]
        first = np.asarray(self.meta.get("path_ids", np.arange(len(self))))[idx]
        return PathSet(
            self.moves[idx],
            self.underlyings,
            self.times,
            {**self.meta, "path_ids": [int(x) for x in first]},
        )

    @property
    def path_ids(self) -> np.ndarray:
        """Each path's number (its seed's spawn key): 0..n−1 unless made from a subset."""
        ids = self.meta.get("path_ids")
        return np.arange(len(self)) if ids is None else np.asarray(ids, dtype=np.int64)

    def __repr__(self) -> str:
        model = (
            self.meta.get("model", {}).get("model", "?")
            if isinstance(self.meta.get("model"), dict)
            else "?"
        )
        return (
            f"PathSet(paths={len(self)}, steps={self.n_steps}, underlyings="
            f"{list(self.underlyings)}, model={model})"
        )

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def from_moves(
        cls,
        paths: Any,
        underlyings: Sequence[str] | None = None,
        horizon: str | float = "1d",
        meta: Mapping[str, Any] | None = None,
    ) -> PathSet:
        """Paths a user made: a paths × steps × underlyings array of cumulative moves (with
        ``underlyings``), or a list of paths, each a list of ``{underlying: move}`` steps (as
        ``CascadeConfig.path``). Every path needs the same number of steps and the same
        underlyings at every step; the steps are spread evenly over ``horizon``."""
        if isinstance(paths, np.ndarray):
            if underlyings is None:
                raise ConfigError("underlyings: needed with an array of moves", field="underlyings")
            moves = array(paths, "paths")
            names = list(underlyings)
        else:
            if isinstance(paths, str | bytes | Mapping) or not isinstance(paths, Sequence):
                raise ConfigTypeError(
                    f"paths: expected a list of paths, got {type(paths).__name__}", field="paths"
                )
            if not len(paths):
                raise ConfigError("paths: needs one or more paths", field="paths")
            first = paths[0]
            if not isinstance(first, Sequence) or not len(first):
                raise ConfigError("paths[0]: needs one or more steps", field="paths[0]")
            names = (
                list(underlyings)
                if underlyings is not None
                else list(mapping(first[0], "paths[0][0]", "underlying → move"))
            )
            n_steps = len(first)
            moves = np.empty((len(paths), n_steps, len(names)))
            for p, path in enumerate(paths):
                if isinstance(path, str | bytes | Mapping) or not isinstance(path, Sequence):
                    raise ConfigTypeError(
                        f"paths[{p}]: expected a list of steps, got {type(path).__name__}",
                        field=f"paths[{p}]",
                    )
                if len(path) != n_steps:
                    raise ConfigError(
                        f"paths[{p}]: {len(path)} steps, but paths[0] has {n_steps}; every "
                        "path needs the same number of steps",
                        field=f"paths[{p}]",
                    )
                for t, step in enumerate(path):
                    f = f"paths[{p}][{t}]"
                    mapping(step, f, "underlying → move")
                    if set(step) != set(names):
                        raise ConfigError(
                            f"{f}: moves {sorted(step)}, expected {sorted(names)}", field=f
                        )
                    for j, n in enumerate(names):
                        moves[p, t, j] = bounded(step[n], f"{f}[{n}]", -1.0, lo_open=True)
        if moves.ndim != 3:
            raise ConfigError(
                f"paths: expected paths × steps × underlyings, got shape {moves.shape}",
                field="paths",
            )
        years = duration_years(horizon, "horizon")
        times = years * np.arange(1, moves.shape[1] + 1) / moves.shape[1]
        return cls(moves, tuple(names), times, {"model": {"model": "given"}, **(meta or {})})

    # ---- storage -----------------------------------------------------------------------
    def to_table(self) -> Table:
        """Long format: one row per path and step (path, step, time_years, one column of
        cumulative moves per underlying)."""
        from crossmargin.table import Table

        n, s = len(self), self.n_steps
        cols: dict[str, Any] = {
            "path": np.repeat(self.path_ids, s),
            "step": np.tile(np.arange(s, dtype=np.int64), n),
            "time_years": np.tile(self.times, n),
        }
        for j, u in enumerate(self.underlyings):
            cols[u] = self.moves[:, :, j].reshape(-1)
        return Table(cols)

    def _meta_json(self) -> str:
        return json.dumps(
            {"format": PATHSET_FORMAT, "underlyings": list(self.underlyings), **self.meta},
            default=_json_default,
        )

    def to_arrow(self) -> pa.Table:
        tbl = self.to_table().to_arrow()
        return tbl.replace_schema_metadata({b"crossmargin.montecarlo": self._meta_json()})

    def save(self, path: str | Path) -> Path:
        """``.npz`` (numpy, compressed) or ``.parquet`` (the long table of :meth:`to_table`
        with the metadata in the schema)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.suffix == ".npz":
            np.savez_compressed(
                p, moves=self.moves, times=self.times, meta=np.array(self._meta_json())
            )
        elif p.suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(self.to_arrow(), str(p))
        else:
            raise ConfigError(f"path: {p.name}: save as .npz or .parquet", field="path")
        return p

    @classmethod
    def load(cls, path: str | Path) -> PathSet:
        """A path set written by :meth:`save` (or any long table of path, step and one column
        per underlying; every path must have the same steps)."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"paths: {p}: no such file", field="paths")
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                meta.pop("format", None)
                names = meta.pop("underlyings")
                return cls(z["moves"], tuple(names), z["times"], meta)
        import pyarrow.parquet as pq

        try:
            tbl = pq.read_table(p)
        except Exception as e:  # pyarrow raises several unrelated types for unreadable files
            raise ConfigError(f"paths: {p}: cannot read: {e}", field="paths") from None
        raw = (tbl.schema.metadata or {}).get(b"crossmargin.montecarlo")
        meta = json.loads(raw) if raw else {}
        meta.pop("format", None)
        names = meta.pop("underlyings", None) or [
            c for c in tbl.column_names if c not in ("path", "step", "time_years")
        ]
        for c in ("path", "step", *names):
            if c not in tbl.column_names:
                raise ConfigError(f"paths: {p}: no column {c!r}", field="paths")
        pid = tbl.column("path").to_numpy()
        step = tbl.column("step").to_numpy()
        order = np.lexsort((step, pid))
        pid, step = pid[order], step[order]
        ids, counts = np.unique(pid, return_counts=True)
        if len(ids) == 0:
            raise ConfigError(f"paths: {p}: no paths", field="paths")
        if np.any(counts != counts[0]):
            i = int(np.argmax(counts != counts[0]))
            raise ConfigError(
                f"paths[{int(ids[i])}]: {int(counts[i])} steps, but path {int(ids[0])} has "
                f"{int(counts[0])}; every path needs the same number of steps",
                field=f"paths[{int(ids[i])}]",
            )
        s = int(counts[0])
        if not np.array_equal(step.reshape(len(ids), s), np.tile(np.arange(s), (len(ids), 1))):
            raise ConfigError(f"paths: {p}: steps must be 0..{s - 1} on every path", field="paths")
        moves = np.stack(
            [
                tbl.column(n).to_numpy().astype(np.float64)[order].reshape(len(ids), s)
                for n in names
            ],
            axis=2,
        )
        if "time_years" in tbl.column_names:
            times = tbl.column("time_years").to_numpy()[order][:s]
        else:
            times = np.arange(1, s + 1) / s / 365.0
        meta["path_ids"] = [int(x) for x in ids]
        return cls(moves, tuple(names), times, meta)


def _json_default(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return str(x)


def calibrate(
    returns: Any, frequency: str | float | None = None, columns: Sequence[str] | None = None
) -> tuple[dict[str, float], np.ndarray]:
    """(annualised volatility per column, correlation matrix) of a returns table (read as
    :func:`read_returns`): the parameters of :class:`Normal` and its kin fitted to history."""
    names, x, freq = read_returns(returns, columns)
    if frequency is not None:
        freq = duration_years(frequency, "frequency")
    if freq is None:
        raise ConfigError(
            "frequency: the returns table has no timestamp column; give its period (e.g. 1h)",
            field="frequency",
        )
    if len(x) < 2:
        raise ConfigError("returns: needs two or more rows to calibrate", field="returns")
    vol = x.std(axis=0, ddof=1) / math.sqrt(freq)
    corr = np.corrcoef(x.T).reshape(len(names), len(names)) if len(names) > 1 else np.eye(1)
    return dict(zip(names, map(float, vol), strict=True)), corr


def path_rng(seed: int, i: int) -> np.random.Generator:
    """The generator of path ``i``: the i-th spawned child of ``SeedSequence(seed)``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(i,))))


def simulate(
    model: Model,
    *,
    n_paths: int,
    horizon: str | float = "1d",
    steps: int = 24,
    seed: int | None = 0,
    first_path: int = 0,
) -> PathSet:
    """``n_paths`` paths of ``steps`` equal steps over ``horizon`` from ``model``; path ids
    ``first_path ..``. ``seed=None`` draws fresh entropy (recorded in ``meta["seed"]``)."""
    if not isinstance(model, MODELS):
        raise ConfigTypeError(
            f"model: {type(model).__name__} is not a path model (Normal, StudentT, GarchT, "
            "MertonJump, Bootstrap, FilteredHistorical)",
            field="model",
        )
    n_paths = integer(n_paths, "n_paths", 1, 10**9)
    steps = integer(steps, "steps", 1, 10**7)
    first_path = integer(first_path, "first_path", 0, 2**63 - 1)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
    seed = integer(seed, "seed", 0, 2**128 - 1)
    years = duration_years(horizon, "horizon")
    dt = years / steps
    draw = model._prepare(dt)
    names = list(model.underlyings)
    moves = np.empty((n_paths, steps, len(names)))
    for p in range(n_paths):
        r = draw(path_rng(seed, first_path + p), steps)
        moves[p] = np.expm1(np.maximum(np.cumsum(r, axis=0), MIN_LOG_MOVE))
    meta = {
        "model": model.describe(),
        "seed": seed,
        "horizon": horizon if isinstance(horizon, str) else float(horizon),
        "horizon_years": years,
        "steps": steps,
        "path_ids": list(range(first_path, first_path + n_paths)),
    }
    times = years * np.arange(1, steps + 1) / steps
    if isinstance(model, Bootstrap) and _ratio(dt, model._load()[2])[1] > 1:
        meta["note"] = "steps shorter than the returns' period: sub-steps scaled by sqrt(1/k)"
    return PathSet(moves, tuple(names), times, meta)


__all__ = [
    "MODELS",
    "Bootstrap",
    "FilteredHistorical",
    "GarchFit",
    "GarchT",
    "MertonJump",
    "Model",
    "Normal",
    "PathSet",
    "StudentT",
    "calibrate",
    "duration_years",
    "fit_garch",
    "path_rng",
    "read_returns",
    "simulate",
]
