//! SPAN parameter tables (docs/MODEL.md "SPAN"): combined commodities, the contract table
//! (market → combined commodity, tier, and a published risk array or none), intra-commodity
//! spreads by tier and inter-commodity spreads, validated once against a universe and
//! compiled into flat indices.

use crate::error::{CoreError, Result};
use crate::limits::MAX_FACTOR;
use crate::portfolio::{PortfolioParams, Scenario, UnderlyingParams};
use crate::universe::Universe;

/// SPAN's standard number of risk scenarios.
pub const N_SCENARIOS: usize = 16;

/// Marks "none" in the per-market index tables.
pub const NONE: u32 = u32::MAX;

/// One combined commodity's parameters, as a clearing house publishes them.
#[derive(Debug, Clone, PartialEq)]
pub struct CommodityInput {
    pub name: String,
    /// Price scan range as a fraction of the underlying price, for risk arrays the engine
    /// computes (0: every contract of the commodity must bring its own array).
    pub price_scan: f64,
    /// Volatility scan range in volatility points (0.04 = 4 vols).
    pub vol_scan: f64,
    /// Extreme moves: this multiple of the price scan range ...
    pub extreme_multiple: f64,
    /// ... counted at this cover fraction.
    pub cover: f64,
    /// Short-option minimum per short option contract (USD).
    pub som_rate: f64,
    /// Initial = im_ratio × maintenance.
    pub im_ratio: f64,
    /// Spot-month charge: the tier that is the spot month (None: no charge), USD per unit
    /// of delta used in intra-commodity spreads and per unit of remaining (outright) delta.
    pub spot_tier: Option<u32>,
    pub spot_spread_rate: f64,
    pub spot_outright_rate: f64,
}

/// One row of the contract table: a market's combined commodity and tier, and optionally
/// its published risk array (16 losses per long contract, USD, loss positive) and composite
/// delta; without them the engine computes both from the commodity's scan ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractInput {
    pub market: String,
    pub commodity: String,
    pub tier: u32,
    pub risk_array: Option<Vec<f64>>,
    pub delta: Option<f64>,
}

/// One leg of a spread: a tier (intra) or a combined commodity (inter), the delta ratio,
/// and the side (A or B: legs on the same side must hold delta of the same sign, legs on
/// opposite sides of opposite signs).
#[derive(Debug, Clone, PartialEq)]
pub struct LegInput<T> {
    pub on: T,
    pub ratio: f64,
    pub side_a: bool,
}

/// An intra-commodity (calendar) spread: USD charge per spread formed.
#[derive(Debug, Clone, PartialEq)]
pub struct IntraInput {
    pub commodity: String,
    pub rate: f64,
    pub legs: Vec<LegInput<u32>>,
}

/// How an inter-commodity spread credits its legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterMethod {
    /// CME "WPR": each leg earns rate × spreads × ratio × its weighted price risk.
    WeightedPriceRisk,
    /// CME "scanning based": the legs' shares in the spread are scanned together, in each
    /// scenario the losses less rate × the gains; the legs' own scans of those shares give
    /// way to that one charge.
    Scanned,
}

impl InterMethod {
    pub const NAMES: [&'static str; 2] = ["wpr", "scan"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "wpr" => Some(InterMethod::WeightedPriceRisk),
            "scan" => Some(InterMethod::Scanned),
            _ => None,
        }
    }
}

/// An inter-commodity spread: credit rate and legs.
#[derive(Debug, Clone, PartialEq)]
pub struct InterInput {
    pub rate: f64,
    pub legs: Vec<LegInput<String>>,
    pub method: InterMethod,
}

/// A compiled combined commodity.
#[derive(Debug, Clone, PartialEq)]
pub struct Commodity {
    pub name: String,
    /// Its tier slots: `tier_offset..tier_offset + tiers.len()`; `tiers` holds the tier numbers.
    pub tier_offset: usize,
    pub tiers: Vec<u32>,
    pub som_rate: f64,
    pub im_ratio: f64,
    /// Spot-month tier slot (global), spread rate, outright rate.
    pub spot: Option<(usize, f64, f64)>,
    /// Intra-commodity spreads of this commodity: `intra[intra_range.0..intra_range.1]`.
    pub intra_range: (usize, usize),
}

/// A compiled spread: legs as (slot, ratio, side A), rate; `scanned` for CME's scanning-based
/// inter-commodity spreads.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    pub rate: f64,
    pub legs: Vec<(usize, f64, bool)>,
    pub scanned: bool,
}

/// SPAN parameters validated against one universe.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanParams {
    pub commodities: Vec<Commodity>,
    /// Per market: combined commodity index (NONE: outside SPAN, standard requirement),
    /// global tier slot, index into `given` (NONE: the engine computes its array).
    pub market_commodity: Vec<u32>,
    pub market_slot: Vec<u32>,
    pub market_given: Vec<u32>,
    /// Published arrays, 16 losses per long contract each, and their composite deltas.
    pub given: Vec<[f64; N_SCENARIOS]>,
    pub given_delta: Vec<f64>,
    pub n_slots: usize,
    /// Intra spreads (slots are global tier slots), grouped by commodity in table order.
    pub intra: Vec<Spread>,
    /// Inter spreads (slots are commodity indices), in priority order.
    pub inter: Vec<Spread>,
    /// The scan scenarios of underlyings whose markets get engine-computed arrays.
    pub scenarios: Option<PortfolioParams>,
}

fn check(field: impl Fn() -> String, x: f64, lo: f64, hi: f64) -> Result<()> {
    if !x.is_finite() || x < lo || x > hi {
        return Err(CoreError::config(field(), format!("{x} must be finite and in [{lo}, {hi}]")));
    }
    Ok(())
}

/// CME's 16 scenarios for a price scan range (fraction) and volatility scan range (vol
/// points): unchanged, ±1/3, ±2/3, ±3/3 of the range, each with volatility up then down,
/// then the two extreme moves (± `multiple` × range, volatility unchanged) at `cover`.
pub fn span16(price_scan: f64, vol_scan: f64, multiple: f64, cover: f64) -> Vec<Scenario> {
    let mut out = Vec::with_capacity(N_SCENARIOS);
    for frac in [0.0, 1.0 / 3.0, -1.0 / 3.0, 2.0 / 3.0, -2.0 / 3.0, 1.0, -1.0] {
        for vol in [vol_scan, -vol_scan] {
            out.push(Scenario { price: frac * price_scan, vol, weight: 1.0 });
        }
    }
    for sign in [1.0, -1.0] {
        out.push(Scenario { price: sign * multiple * price_scan, vol: 0.0, weight: cover });
    }
    out
}

impl SpanParams {
    /// Validates the tables against `u`; every error names the table, row and field.
    pub fn new(
        u: &Universe,
        commodities: Vec<CommodityInput>,
        contracts: Vec<ContractInput>,
        intra: Vec<IntraInput>,
        inter: Vec<InterInput>,
    ) -> Result<Self> {
        let cc_index = |name: &str, field: String| -> Result<usize> {
            commodities
                .iter()
                .position(|c| c.name == name)
                .ok_or_else(|| CoreError::config(field, format!("unknown combined commodity '{name}'")))
        };
        for (i, c) in commodities.iter().enumerate() {
            let f = |name: &str| format!("span.commodities[{}].{name}", c.name);
            if commodities[..i].iter().any(|d| d.name == c.name) {
                return Err(CoreError::config(
                    format!("span.commodities[{i}].name"),
                    format!("'{}' given twice", c.name),
                ));
            }
            check(|| f("price_scan"), c.price_scan, 0.0, 1.0)?;
            check(|| f("vol_scan"), c.vol_scan, 0.0, MAX_FACTOR)?;
            check(|| f("extreme_multiple"), c.extreme_multiple, 0.0, MAX_FACTOR)?;
            check(|| f("cover"), c.cover, 0.0, 1.0)?;
            check(|| f("som_rate"), c.som_rate, 0.0, crate::limits::MAX_AMOUNT)?;
            check(|| f("im_ratio"), c.im_ratio, 0.0, MAX_FACTOR)?;
            check(|| f("spot_spread_rate"), c.spot_spread_rate, 0.0, crate::limits::MAX_AMOUNT)?;
            check(|| f("spot_outright_rate"), c.spot_outright_rate, 0.0, crate::limits::MAX_AMOUNT)?;
        }

        let nm = u.n_markets();
        let mut market_commodity = vec![NONE; nm];
        let mut market_tier = vec![0u32; nm];
        let mut market_given = vec![NONE; nm];
        let mut given = Vec::new();
        let mut given_delta = Vec::new();
        let mut tiers: Vec<Vec<u32>> = vec![Vec::new(); commodities.len()];
        let mut per_underlying: Vec<Option<(usize, UnderlyingParams)>> = vec![None; u.underlyings.len()];
        for (row, c) in contracts.iter().enumerate() {
            let f = |name: &str| format!("span.contracts[{row}].{name}");
            let k = u.markets.symbol.iter().position(|s| *s == c.market).ok_or_else(|| {
                CoreError::config(f("market"), format!("'{}' is not a market of the universe", c.market))
            })?;
            if market_commodity[k] != NONE {
                return Err(CoreError::config(f("market"), format!("'{}' is listed twice", c.market)));
            }
            let ci = cc_index(&c.commodity, f("combined_commodity"))?;
            market_commodity[k] = ci as u32;
            market_tier[k] = c.tier;
            if !tiers[ci].contains(&c.tier) {
                tiers[ci].push(c.tier);
            }
            match (&c.risk_array, c.delta) {
                (Some(values), Some(delta)) => {
                    if values.len() != N_SCENARIOS {
                        return Err(CoreError::config(
                            f("risk_array"),
                            format!("{} values given; a risk array has {N_SCENARIOS}", values.len()),
                        ));
                    }
                    let mut a = [0.0; N_SCENARIOS];
                    for (s, (&x, slot)) in values.iter().zip(a.iter_mut()).enumerate() {
                        if !x.is_finite() || x.abs() > crate::limits::MAX_AMOUNT {
                            return Err(CoreError::config(
                                format!("span.contracts[{row}].risk_array[{s}]"),
                                format!("{x} must be finite"),
                            ));
                        }
                        *slot = x;
                    }
                    if !delta.is_finite() || delta.abs() > MAX_FACTOR {
                        return Err(CoreError::config(f("delta"), format!("{delta} must be finite")));
                    }
                    market_given[k] = given.len() as u32;
                    given.push(a);
                    given_delta.push(delta);
                }
                (None, None) => {
                    let cc = &commodities[ci];
                    if cc.price_scan == 0.0 {
                        return Err(CoreError::config(
                            f("risk_array"),
                            format!(
                                "none given, and combined commodity '{}' has no price_scan to compute one",
                                cc.name
                            ),
                        ));
                    }
                    let ui = u.markets.underlying[k] as usize;
                    match &per_underlying[ui] {
                        Some((other, _)) if *other != ci => {
                            return Err(CoreError::config(
                                f("combined_commodity"),
                                format!(
                                    "underlying '{}' is already scanned by combined commodity '{}'",
                                    u.underlyings[ui], commodities[*other].name
                                ),
                            ));
                        }
                        Some(_) => {}
                        None => {
                            let scenarios = span16(cc.price_scan, cc.vol_scan, cc.extreme_multiple, cc.cover);
                            let p = UnderlyingParams {
                                scenarios,
                                short_option_min: 0.0,
                                option_contingency: 0.0,
                                futures_offset: 0.0,
                                delta_rate: 0.0,
                                vol_power: 0.0,
                                vol_relative: false,
                            };
                            per_underlying[ui] = Some((ci, p));
                        }
                    }
                }
                _ => {
                    return Err(CoreError::config(f("delta"), "a risk array and its composite delta come together"));
                }
            }
        }

        // Tier slots: per commodity, its tiers in ascending order.
        let mut compiled = Vec::with_capacity(commodities.len());
        let mut n_slots = 0;
        for (ci, c) in commodities.iter().enumerate() {
            tiers[ci].sort_unstable();
            let t = std::mem::take(&mut tiers[ci]);
            compiled.push(Commodity {
                name: c.name.clone(),
                tier_offset: n_slots,
                tiers: t,
                som_rate: c.som_rate,
                im_ratio: c.im_ratio,
                spot: None,
                intra_range: (0, 0),
            });
            n_slots += compiled[ci].tiers.len();
        }
        let slot_of = |ci: usize, tier: u32, field: String| -> Result<usize> {
            let c = &compiled[ci];
            c.tiers.iter().position(|&t| t == tier).map(|i| c.tier_offset + i).ok_or_else(|| {
                CoreError::config(field, format!("combined commodity '{}' has no contract in tier {tier}", c.name))
            })
        };
        let mut spots = vec![None; commodities.len()];
        for (ci, c) in commodities.iter().enumerate() {
            if let Some(t) = c.spot_tier {
                let slot = slot_of(ci, t, format!("span.commodities[{}].spot_tier", c.name))?;
                spots[ci] = Some((slot, c.spot_spread_rate, c.spot_outright_rate));
            }
        }
        let market_slot: Vec<u32> = (0..nm)
            .map(|k| {
                let ci = market_commodity[k];
                if ci == NONE {
                    return NONE;
                }
                let c = &compiled[ci as usize];
                let i = c.tiers.iter().position(|&t| t == market_tier[k]).expect("tier registered above");
                (c.tier_offset + i) as u32
            })
            .collect();

        // Intra spreads, grouped by commodity (table order within one).
        let mut by_cc: Vec<Vec<Spread>> = vec![Vec::new(); commodities.len()];
        for (row, s) in intra.iter().enumerate() {
            let f = |name: &str| format!("span.intra[{row}].{name}");
            let ci = cc_index(&s.commodity, f("combined_commodity"))?;
            check(|| f("rate"), s.rate, 0.0, crate::limits::MAX_AMOUNT)?;
            let legs =
                compile_legs(&s.legs, &f, |j, t: &u32| slot_of(ci, *t, format!("span.intra[{row}].legs[{j}].tier")))?;
            by_cc[ci].push(Spread { rate: s.rate, legs, scanned: false });
        }
        let mut intra_out = Vec::new();
        for (c, s) in compiled.iter_mut().zip(spots) {
            c.spot = s;
        }
        for (c, spreads) in compiled.iter_mut().zip(by_cc) {
            let start = intra_out.len();
            intra_out.extend(spreads);
            c.intra_range = (start, intra_out.len());
        }
        let mut inter_out = Vec::with_capacity(inter.len());
        for (row, s) in inter.iter().enumerate() {
            let f = |name: &str| format!("span.inter[{row}].{name}");
            check(|| f("rate"), s.rate, 0.0, 1.0)?;
            let legs = compile_legs(&s.legs, &f, |j, name: &String| {
                cc_index(name, format!("span.inter[{row}].legs[{j}].combined_commodity"))
            })?;
            inter_out.push(Spread { rate: s.rate, legs, scanned: s.method == InterMethod::Scanned });
        }

        let scenarios = per_underlying.iter().any(Option::is_some).then(|| PortfolioParams {
            underlying: per_underlying.into_iter().map(|x| x.map(|(_, p)| p)).collect(),
            offsets: vec![],
            im_factor: 1.0,
            hybrid_floor: 0.0,
        });
        Ok(SpanParams {
            commodities: compiled,
            market_commodity,
            market_slot,
            market_given,
            given,
            given_delta,
            n_slots,
            intra: intra_out,
            inter: inter_out,
            scenarios,
        })
    }

    pub fn n_commodities(&self) -> usize {
        self.commodities.len()
    }
}

/// Legs: at least two, ratios finite and > 0, both sides present.
fn compile_legs<T>(
    legs: &[LegInput<T>],
    f: &dyn Fn(&str) -> String,
    slot: impl Fn(usize, &T) -> Result<usize>,
) -> Result<Vec<(usize, f64, bool)>> {
    if legs.len() < 2 {
        return Err(CoreError::config(f("legs"), "a spread has at least two legs"));
    }
    if legs.iter().all(|l| l.side_a) || legs.iter().all(|l| !l.side_a) {
        return Err(CoreError::config(f("legs"), "a spread needs legs on both sides (A and B)"));
    }
    let mut out = Vec::with_capacity(legs.len());
    for (j, l) in legs.iter().enumerate() {
        let s = slot(j, &l.on)?;
        if out.iter().any(|&(t, _, _)| t == s) {
            return Err(CoreError::config(format!("{}[{j}]", f("legs")), "names the same leg twice"));
        }
        if !l.ratio.is_finite() || l.ratio <= 0.0 || l.ratio > MAX_FACTOR {
            return Err(CoreError::config(format!("{}[{j}].ratio", f("legs")), format!("{} must be > 0", l.ratio)));
        }
        out.push((s, l.ratio, l.side_a));
    }
    Ok(out)
}
