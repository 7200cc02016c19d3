"""Policies compared on the same paths (common random numbers): one call, one table.

A :class:`Policy` changes some of the cascade's rules — liquidation fee, partial fraction,
deleveraging (ADL, socialised loss or none), the insurance fund — and may add a
:class:`~crossmargin.montecarlo.margin.VolScaledMargin` rule. :func:`compare_policies` runs
each on the same :class:`~crossmargin.montecarlo.paths.PathSet`, so the differences between
rows are the policies' and not sampling noise between independent draws.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from crossmargin.cascade import CascadeConfig
from crossmargin.exceptions import ConfigError, ConfigTypeError
from crossmargin.montecarlo.margin import VolScaledMargin
from crossmargin.montecarlo.run import MonteCarloResult, run
from crossmargin.montecarlo.stats import TailWarning
from crossmargin.table import Table

if TYPE_CHECKING:
    from crossmargin.book import Book
    from crossmargin.engine import Engine
    from crossmargin.montecarlo.paths import PathSet
    from crossmargin.prices import PriceOverrides

RULES = ("liquidation_fee", "partial_fraction", "deleverage", "insurance_fund")


@dataclass(frozen=True)
class Policy:
    """Changes to the base cascade rules (None keeps the base's), a margin rule, and any
    other ``CascadeConfig`` field in ``cascade`` (e.g. ``{"target_margin_ratio": 0.8}``)."""

    liquidation_fee: float | None = None
    partial_fraction: float | None = None
    deleverage: str | None = None
    insurance_fund: float | Mapping[str, float] | None = None
    margin: VolScaledMargin | None = None
    cascade: Mapping[str, Any] = field(default_factory=dict)

    def config(self, base: CascadeConfig, name: str = "") -> CascadeConfig:
        """``base`` with this policy's rules (checked by CascadeConfig)."""
        changes = {k: getattr(self, k) for k in RULES if getattr(self, k) is not None}
        fields = {f.name for f in dataclasses.fields(CascadeConfig)}
        for k, v in self.cascade.items():
            if k not in fields or k in ("shock", "path"):
                f = f"policies[{name}].cascade[{k}]"
                raise ConfigError(f"{f}: not a CascadeConfig rule", field=f)
            changes[k] = v
        return dataclasses.replace(base, **changes)


def _policy(name: str, spec: Any) -> Policy:
    if isinstance(spec, Policy):
        if spec.margin is not None and not isinstance(spec.margin, VolScaledMargin):
            f = f"policies[{name}].margin"
            raise ConfigTypeError(f"{f}: expected VolScaledMargin", field=f)
        return spec
    if isinstance(spec, Mapping):
        known = {f.name for f in dataclasses.fields(Policy)}
        for k in spec:
            if k not in known:
                f = f"policies[{name}].{k}"
                raise ConfigError(f"{f}: not a policy field ({', '.join(sorted(known))})", field=f)
        return _policy(name, Policy(**spec))
    raise ConfigTypeError(
        f"policies[{name}]: expected a Policy or a mapping of its fields, got "
        f"{type(spec).__name__}",
        field=f"policies[{name}]",
    )


def compare_policies(
    engine: Engine,
    book: Book,
    paths: PathSet,
    policies: Mapping[str, Policy | Mapping[str, Any]],
    *,
    base: CascadeConfig | None = None,
    levels: Sequence[float] = (0.99,),
    fund_target: float = 0.01,
    confidence: float = 0.95,
    screen: bool = True,
    threads: int | None = None,
    prices: PriceOverrides = None,
    results: dict[str, MonteCarloResult] | None = None,
) -> Table:
    """Every policy on the same paths; one row per policy (in the order given) with its
    rules, P(fund exhausted) with CI, mean bad debt, VaR / ES of bad debt at ``levels``, the
    fund size for ``fund_target``, mean liquidated notional and accounts, paths with
    deleveraging, and the mean margin multiplier. Pass a dict as ``results`` to get each
    policy's :class:`MonteCarloResult` too."""
    if not isinstance(policies, Mapping) or not policies:
        raise ConfigError("policies: expected a non-empty mapping name → Policy", field="policies")
    base = CascadeConfig() if base is None else base
    specs = {str(k): _policy(str(k), v) for k, v in policies.items()}
    configs = {k: p.config(base, k) for k, p in specs.items()}
    rows: list[dict[str, Any]] = []
    for name, pol in specs.items():
        cfg = configs[name]
        r = run(
            engine,
            book,
            paths,
            cfg,
            screen=screen,
            threads=threads,
            prices=prices,
            margin=pol.margin,
        )
        if results is not None:
            results[name] = r
        ex = r.exhaustion_probability(confidence=confidence)
        x = np.asarray(r.paths.bad_debt_usd)
        row: dict[str, Any] = {
            "policy": name,
            "liquidation_fee": cfg.liquidation_fee,
            "partial_fraction": cfg.partial_fraction,
            "deleverage": cfg.deleverage,
            "insurance_fund_usd": r.insurance_fund,
            "margin": pol.margin.describe() if pol.margin is not None else "",
            "p_fund_exhausted": ex.value,
            "p_fund_exhausted_lower": ex.lower,
            "p_fund_exhausted_upper": ex.upper,
            "mean_bad_debt_usd": float(x.mean()),
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TailWarning)  # warned once below
            for lv in levels:
                tag = f"{lv * 100:g}".replace(".", "_")
                v, e = r.var(lv, confidence=confidence), r.es(lv, confidence=confidence)
                row[f"var_{tag}_usd"], row[f"es_{tag}_usd"] = v.value, e.value
            f = r.fund_size(fund_target, confidence)
        row[f"fund_size_{fund_target:g}_usd"] = f.value
        row["mean_liquidated_notional_usd"] = float(
            np.asarray(r.paths.liquidated_notional_usd).mean()
        )
        row["mean_accounts_liquidated"] = float(np.asarray(r.paths.accounts_liquidated).mean())
        row["paths_deleveraged"] = int((np.asarray(r.paths.deleverage_events) > 0).sum())
        row["mean_margin_multiplier"] = float(np.asarray(r.paths.margin_multiplier).mean())
        row["paths_skipped"] = int(np.asarray(r.paths.skipped).sum())
        rows.append(row)
    n = len(paths)
    tail = min([n * (1 - lv) for lv in levels] + [n * fund_target])
    if tail < 10:
        warnings.warn(
            TailWarning(
                f"compare_policies: {n} paths leave {tail:.3g} observations in the smallest "
                "tail asked for (fewer than 10); its estimates are unreliable"
            ),
            stacklevel=2,
        )
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    return Table(
        {
            k: np.array(v, dtype=object)
            if isinstance(v[0], str)
            else np.array(v, dtype=np.float64 if isinstance(v[0], float) else None)
            for k, v in cols.items()
        }
    )


__all__ = ["Policy", "compare_policies"]
