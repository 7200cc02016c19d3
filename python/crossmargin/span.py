"""CME SPAN parameter tables and results (docs/MODEL.md "SPAN").

A :class:`SpanConfig` holds what a clearing house publishes each day, as tables:

- ``commodities``: one :class:`CombinedCommodity` per combined commodity (scan ranges for
  arrays the engine computes, short-option minimum rate, initial/maintenance ratio,
  spot-month charge rates);
- ``contracts``: one :class:`Contract` per market in SPAN — its combined commodity and tier,
  and optionally its published 16-value risk array (loss per long contract, USD, loss
  positive, CME's scenario order) with its composite delta; without them the engine computes
  both from the commodity's scan ranges (Black-76 on the universe's prices);
- ``intra``: :class:`IntraSpread` rows (calendar spreads between tiers, charge per spread)
  in priority order;
- ``inter``: :class:`InterSpread` rows (spreads between combined commodities, credit rate)
  in priority order.

Evaluate with :meth:`crossmargin.Engine.span`. Load from TOML with :meth:`SpanConfig.from_toml`
(a ``[span]`` table, docs/UNIVERSE_TOML.md "SPAN tables") and read a contract table in the
risk-array layout (CSV or Parquet: ``market, combined_commodity, tier, delta, a1 … a16``) with
:func:`read_contracts`. The core validates every table against the universe and names the
row and field of any error (ConfigError), e.g. ``span.contracts[3].risk_array[7]``.

Source of the method: CME Group, "CME SPAN Methodology Overview",
https://www.cmegroup.com/clearing/risk-management/span-overview.html.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from crossmargin import _core
from crossmargin.exceptions import ConfigError, TableError
from crossmargin.result import MarginResult
from crossmargin.table import Table

N_SCENARIOS = 16
ARRAY_COLUMNS = tuple(f"a{i}" for i in range(1, N_SCENARIOS + 1))
SIDES = ("A", "B")


def _float(value: Any, f: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{f}: {value!r} must be a number", field=f)
    return float(value)


def _int(value: Any, f: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ConfigError(f"{f}: {value!r} must be a whole number", field=f)
    if not 0 <= value < 2**32:
        raise ConfigError(f"{f}: {value!r} must be in [0, 2^32)", field=f)
    return int(value)


def _side(value: Any, f: str) -> bool:
    if value not in SIDES:
        raise ConfigError(f"{f}: {value!r} is not one of A, B", field=f)
    return bool(value == "A")


@dataclass(frozen=True)
class CombinedCommodity:
    """A combined commodity's parameters.

    ``price_scan``: price scan range as a fraction of the underlying price (for arrays the
    engine computes; 0 when every contract brings its array); ``vol_scan``: volatility scan
    range in volatility points; ``extreme_multiple`` and ``cover``: the two extreme moves
    (± multiple × price scan) count at the cover fraction; ``som_rate``: short-option
    minimum, USD per short option; ``im_ratio``: initial = im_ratio × maintenance;
    ``spot_tier`` with ``spot_spread_rate`` / ``spot_outright_rate``: spot-month charge, USD
    per unit of spot-tier delta used in spreads / left outright.
    """

    name: str
    price_scan: float = 0.0
    vol_scan: float = 0.0
    extreme_multiple: float = 2.0
    cover: float = 0.35
    som_rate: float = 0.0
    im_ratio: float = 1.0
    spot_tier: int | None = None
    spot_spread_rate: float = 0.0
    spot_outright_rate: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", str(self.name))
        for name in (
            "price_scan",
            "vol_scan",
            "extreme_multiple",
            "cover",
            "som_rate",
            "im_ratio",
            "spot_spread_rate",
            "spot_outright_rate",
        ):
            f = f"span.commodities[{self.name}].{name}"
            object.__setattr__(self, name, _float(getattr(self, name), f))
        if self.spot_tier is not None:
            f = f"span.commodities[{self.name}].spot_tier"
            object.__setattr__(self, "spot_tier", _int(self.spot_tier, f))


@dataclass(frozen=True)
class Contract:
    """A market's place in SPAN: combined commodity, tier, and optionally its published
    ``risk_array`` (16 losses per long contract, USD) and composite ``delta``."""

    market: str
    combined_commodity: str
    tier: int = 1
    risk_array: Sequence[float] | None = None
    delta: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "market", str(self.market))
        object.__setattr__(self, "combined_commodity", str(self.combined_commodity))
        f = f"span.contracts[{self.market}]"
        object.__setattr__(self, "tier", _int(self.tier, f"{f}.tier"))
        if self.risk_array is not None:
            if isinstance(self.risk_array, str | bytes) or not hasattr(self.risk_array, "__iter__"):
                raise ConfigError(f"{f}.risk_array: expected 16 numbers", field=f"{f}.risk_array")
            arr = tuple(_float(x, f"{f}.risk_array[{i}]") for i, x in enumerate(self.risk_array))
            object.__setattr__(self, "risk_array", arr)
        if self.delta is not None:
            object.__setattr__(self, "delta", _float(self.delta, f"{f}.delta"))


class Leg(NamedTuple):
    """One spread leg: a tier (intra) or a combined commodity (inter), its delta ratio, and
    its side (``side_a``: True for side A; legs on one side hold delta of one sign)."""

    on: Any
    ratio: float
    side_a: bool


def _legs(legs: Sequence[Any], f: str, kind: type) -> tuple[Leg, ...]:
    out = []
    for j, leg in enumerate(legs):
        g = f"{f}.legs[{j}]"
        if isinstance(leg, Leg):
            out.append(leg)
            continue
        if isinstance(leg, Mapping):
            name = "tier" if kind is int else "combined_commodity"
            on, ratio, side = leg.get(name), leg.get("ratio", 1.0), leg.get("side", "A")
        else:
            try:
                on, ratio, side = leg
            except (TypeError, ValueError):
                raise ConfigError(f"{g}: expected (leg, ratio, side)", field=g) from None
        if on is None:
            raise ConfigError(f"{g}: names no leg", field=g)
        target: int | str = _int(on, f"{g}.tier") if kind is int else str(on)
        out.append(Leg(target, _float(ratio, f"{g}.ratio"), _side(side, f"{g}.side")))
    return tuple(out)


@dataclass(frozen=True)
class IntraSpread:
    """A calendar spread of one combined commodity: ``legs`` as ``(tier, ratio, side)``
    (side "A" or "B"), charging ``rate`` USD per spread formed."""

    combined_commodity: str
    rate: float
    legs: Sequence[Any]

    def __post_init__(self) -> None:
        f = f"span.intra[{self.combined_commodity}]"
        object.__setattr__(self, "rate", _float(self.rate, f"{f}.rate"))
        object.__setattr__(self, "legs", _legs(self.legs, f, int))


INTER_METHODS = ("wpr", "scan")


@dataclass(frozen=True)
class InterSpread:
    """A spread between combined commodities: ``legs`` as ``(combined_commodity, ratio,
    side)``. ``method="wpr"`` (CME's weighted price risk): each leg is credited ``rate`` ×
    its weighted price risk per unit of delta spread. ``method="scan"`` (CME's scanning-based
    spreads): the legs' shares in the spread are scanned together, each scenario's losses
    less ``rate`` × its gains, and that charge replaces the shares' own scans."""

    rate: float
    legs: Sequence[Any]
    method: str = "wpr"

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", _float(self.rate, "span.inter.rate"))
        object.__setattr__(self, "legs", _legs(self.legs, "span.inter", str))
        if self.method not in INTER_METHODS:
            raise ConfigError(
                f"span.inter.method: {self.method!r} is not one of wpr, scan",
                field="span.inter.method",
            )


@dataclass(frozen=True)
class SpanConfig:
    """SPAN tables: combined commodities, contracts, intra and inter spreads (in priority
    order). See the module docstring; :meth:`compile` validates them against a universe."""

    commodities: Sequence[CombinedCommodity]
    contracts: Sequence[Contract]
    intra: Sequence[IntraSpread] = ()
    inter: Sequence[InterSpread] = ()
    _cache: dict[int, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("commodities", "contracts", "intra", "inter"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def compile(self, universe: _core.CompiledUniverse) -> _core.CompiledSpan:
        """These tables validated against a compiled universe (``Universe.compiled``);
        cached per universe object."""
        key = id(universe)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is universe:
            return hit[1]  # type: ignore[no-any-return]
        compiled = _core.CompiledSpan(
            universe,
            list(self.commodities),
            list(self.contracts),
            list(self.intra),
            list(self.inter),
        )
        self._cache[key] = (universe, compiled)
        return compiled

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base: Path | None = None) -> SpanConfig:
        """The TOML layout (docs/UNIVERSE_TOML.md "SPAN tables"): ``[[span.commodities]]``,
        ``[[span.contracts]]`` (or ``contracts_file = "arrays.csv"``, read with
        :func:`read_contracts` relative to ``base``), ``[[span.intra]]`` and
        ``[[span.inter]]``; legs as inline tables ``{tier = 2, ratio = 1, side = "A"}`` or
        ``{combined_commodity = "C", ratio = 2, side = "A"}``."""
        known = {"commodities", "contracts", "contracts_file", "intra", "inter"}
        for key in data:
            if key not in known:
                raise ConfigError(f"span.{key}: unknown field", field=f"span.{key}")

        def rows(name: str) -> list[Mapping[str, Any]]:
            value = data.get(name, [])
            if not isinstance(value, list) or not all(isinstance(r, Mapping) for r in value):
                raise ConfigError(f"span.{name}: expected an array of tables", field=f"span.{name}")
            return value

        def build(kind: Any, name: str) -> list[Any]:
            out = []
            for i, row in enumerate(rows(name)):
                try:
                    out.append(kind(**row))
                except TypeError as e:
                    f = f"span.{name}[{i}]"
                    raise ConfigError(f"{f}: {e}", field=f) from None
            return out

        contracts = build(Contract, "contracts")
        if "contracts_file" in data:
            path = Path(str(data["contracts_file"]))
            contracts += read_contracts(path if base is None or path.is_absolute() else base / path)
        return cls(
            build(CombinedCommodity, "commodities"),
            contracts,
            build(IntraSpread, "intra"),
            build(InterSpread, "inter"),
        )

    @classmethod
    def from_toml(cls, path: str | Path) -> SpanConfig:
        """The ``[span]`` table of a TOML file (a universe file or a file of its own)."""
        p = Path(path)
        with p.open("rb") as fh:
            data = tomllib.load(fh)
        if "span" not in data:
            raise ConfigError(f"{p}: no [span] table", field="span")
        return cls.from_dict(data["span"], base=p.parent)


def read_contracts(path: str | Path) -> list[Contract]:
    """A contract table in the risk-array layout, CSV or Parquet: columns ``market``,
    ``combined_commodity``, ``tier`` (optional, default 1), ``delta`` and ``a1`` … ``a16``
    (losses per long contract in CME's scenario order; all empty: the engine computes the
    array). A missing column is a TableError naming it; a row with some but not all 16
    values is a ConfigError naming the row when compiled."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    p = Path(path)
    table = pq.read_table(p) if p.suffix == ".parquet" else pacsv.read_csv(p)
    names = set(table.column_names)
    for col in ("market", "combined_commodity"):
        if col not in names:
            raise TableError(f"{p}: missing column {col!r}", column=col)
    present = [c for c in ARRAY_COLUMNS if c in names]
    if present and len(present) != N_SCENARIOS:
        missing = next(c for c in ARRAY_COLUMNS if c not in names)
        raise TableError(f"{p}: missing column {missing!r} (a risk array has 16)", column=missing)
    data = table.to_pydict()
    n = table.num_rows
    out = []
    for i in range(n):
        values = [data[c][i] for c in present]
        given = [v for v in values if v is not None]
        array = None
        if given:
            array = [math.nan if v is None else float(v) for v in values]
        delta = data["delta"][i] if "delta" in names else None
        out.append(
            Contract(
                data["market"][i],
                data["combined_commodity"][i],
                int(data["tier"][i]) if "tier" in names and data["tier"][i] is not None else 1,
                array,
                None if delta is None else float(delta),
            )
        )
    return out


class SpanResult:
    """SPAN of every account: ``accounts`` (a :class:`~crossmargin.MarginResult`: ``mm`` is
    the sum of the commodities' risk plus the standard requirement of positions outside
    SPAN, ``im`` the same with each commodity's initial ratio) and ``commodities`` (a
    :class:`~crossmargin.Table`, one row per account × combined commodity held: scan,
    intra, spot, inter, som, risk, initial, nov and ``total`` = risk − nov, CME's total
    requirement against cash)."""

    __slots__ = ("accounts", "commodities")

    def __init__(self, accounts: MarginResult, commodities: Table) -> None:
        self.accounts = accounts
        self.commodities = commodities

    def __repr__(self) -> str:
        return f"SpanResult({len(self.accounts)} accounts, {len(self.commodities)} commodity rows)"


COMMODITY_COLUMNS = ("scan", "intra", "spot", "inter", "som", "risk", "initial", "nov")


def result(accounts: np.ndarray, names: Sequence[str], cols: Mapping[str, Any]) -> SpanResult:
    """A :class:`SpanResult` from the engine's columns (``Engine.span``)."""
    margin = {k: v for k, v in cols.items() if not k.startswith("commodity_")}
    idx = cols["commodity_account_index"]
    cc = np.array(list(names), dtype=object)
    table: dict[str, Any] = {
        "account": accounts[idx],
        "combined_commodity": cc[cols["commodity_index"]]
        if len(cc)
        else np.array([], dtype=object),
    }
    for name in COMMODITY_COLUMNS:
        table[name] = cols[f"commodity_{name}"]
    table["total"] = table["risk"] - table["nov"]
    return SpanResult(MarginResult({"account": accounts, **margin}), Table(table))


__all__ = [
    "ARRAY_COLUMNS",
    "COMMODITY_COLUMNS",
    "INTER_METHODS",
    "N_SCENARIOS",
    "CombinedCommodity",
    "Contract",
    "InterSpread",
    "IntraSpread",
    "Leg",
    "SpanConfig",
    "SpanResult",
    "read_contracts",
]
