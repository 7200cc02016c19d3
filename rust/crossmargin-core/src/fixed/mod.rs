//! The standard cross-margin model in a venue's fixed-point arithmetic (docs/MODEL.md
//! "Fixed-point arithmetic"): every quantity in its declared integer unit, each step rounded
//! the venue's way, in the venue's order, so that totals come out to the venue's raw unit.
//! The order and rounding are Drift protocol v2's (drift-labs/protocol-v2
//! programs/drift/src/math/margin.rs `calculate_margin_requirement_and_total_collateral_and_liability_info`,
//! `calculate_perp_position_value_and_pnl`; spot_balance.rs `get_strict_token_value`;
//! state/spot_market.rs `get_asset_weight`, `get_liability_weight`,
//! `get_scaled_initial_asset_weight`; state/perp_market.rs `get_margin_ratio`,
//! `get_unrealized_asset_weight`):
//!
//! - a balance of `a` token units at price `p` is worth `a·p / 10^(decimals + price − value)`
//!   value units, rounded toward zero for a holding and (by default) toward −∞ for a borrow
//!   (a liability rounds up); × its weight (size-discounted, integer) / 10^weight, toward zero;
//! - a perp's liability value `|base|·mark / 10^(size + price − value)` × the settle asset's
//!   price / 10^price × the (size-premium) margin ratio / 10^weight, each step floored;
//! - its P&L `base·mark / 10^(size + price − value)` (toward zero) + its quote amount
//!   (`−base·entry` in the same units), × the uPnL weight / 10^weight (toward zero; a
//!   positive P&L's initial weight size-discounted by the P&L itself) × the settle price /
//!   10^price (toward zero), at most `upnl_cap_initial` at initial margin;
//! - total collateral: weighted holdings + weighted P&L; margin requirement: weighted borrows
//!   + perp requirements; liquidatable when total collateral < maintenance requirement.
//!
//! Results are the standard columns (`adj_equity_m` = total collateral − weighted borrows,
//! `im`/`mm` = requirement − weighted borrows, so `adj_equity_maint < mm` is the same test)
//! as exact multiples of the value unit, and the raw integers beside them.

pub mod int;

use rayon::prelude::*;

use crate::book::GroupedBook;
use crate::brackets::Shape;
use crate::error::{CoreError, Result};
use crate::kernel::Level;
use crate::margin::{AccountMargin, MarginColumns, MarginColumnsMut, MarginContext, Remap, CHUNK};
use crate::memory::{column, map_column};
use crate::mode::PerMode;
use crate::universe::{Basis, MarketKind, Universe};
use int::{Divisor, SizeTerms};

/// How a borrow's token value is rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BorrowRounding {
    /// Toward −∞: the liability's magnitude rounds up (Drift's `safe_div_floor`).
    Up,
    /// Toward zero.
    Down,
}

/// A universe's fixed-point declaration: the unit of each quantity as a number of decimals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedSpec {
    /// Values (collateral, requirements, P&L) in 10^-value_decimals of the reporting currency.
    pub value_decimals: u32,
    /// Prices in 10^-price_decimals.
    pub price_decimals: u32,
    /// Weights, liability weights, margin ratios, uPnL weights in 10^-weight_decimals.
    pub weight_decimals: u32,
    /// Perp sizes and the sizes of the imf terms in 10^-size_decimals of a base unit.
    pub size_decimals: u32,
    /// imf factors in 10^-imf_decimals.
    pub imf_decimals: u32,
    /// Each asset's token unit (universe order): balances in 10^-decimals.
    pub asset_decimals: Vec<u32>,
    pub borrow_rounding: BorrowRounding,
}

impl FixedSpec {
    /// Drift v2's units: values and prices 1e-6, weights 1e-4, sizes 1e-9, imf 1e-6.
    pub fn drift(asset_decimals: Vec<u32>) -> Self {
        FixedSpec {
            value_decimals: 6,
            price_decimals: 6,
            weight_decimals: 4,
            size_decimals: 9,
            imf_decimals: 6,
            asset_decimals,
            borrow_rounding: BorrowRounding::Up,
        }
    }
}

/// Conversion of a count in one unit to another: × mul ÷ div (one of them 1).
#[derive(Debug, Clone, Copy)]
struct Rescale {
    mul: u128,
    div: Divisor,
}

impl Rescale {
    fn new(from_decimals: u32, to_decimals: u32) -> Self {
        if to_decimals >= from_decimals {
            Rescale { mul: 10u128.pow(to_decimals - from_decimals), div: Divisor::new(1) }
        } else {
            Rescale { mul: 1, div: Divisor::pow10(from_decimals - to_decimals) }
        }
    }

    #[inline]
    fn apply(&self, x: u128) -> u128 {
        if self.mul != 1 {
            x.saturating_mul(self.mul)
        } else if self.div.get() != 1 {
            self.div.div_rem(x).0
        } else {
            x
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct FixedAsset {
    /// 10^decimals: a quantity × this, rounded, is the raw token amount.
    scale: f64,
    /// 10^(decimals + price − value).
    value_div: Divisor,
    to_size: Rescale,
    weight: PerMode<u64>,
    liability_weight: PerMode<u64>,
    imf: u64,
    /// Scaled initial weight: start value (raw) and total deposits (raw token units).
    scale_start: u128,
    deposits: u128,
    /// A holding of fewer raw units than this has no size discount (the cap is at least
    /// both weights); a borrow of fewer, no size premium.
    plain_below: u64,
    flat_below: u64,
}

#[derive(Debug, Clone, Copy)]
struct FixedMarket {
    /// contract size × 10^size.
    scale: f64,
    ratio: PerMode<u64>,
    imf: u64,
    upnl_weight: PerMode<u64>,
    upnl_imf: u64,
    /// At most this much weighted P&L at initial margin (raw value; i64::MAX = none).
    upnl_cap_initial: i64,
    settle: u32,
    /// |base| below this: no size premium on either ratio.
    flat_below: u64,
    /// A profit (raw value) below this: no size discount of the initial uPnL weight.
    upnl_plain_below: u64,
}

/// The first x where the monotone predicate `holds` (true, then false) fails; u64::MAX when it
/// holds there too.
fn first_failing(holds: impl Fn(u64) -> bool) -> u64 {
    if holds(u64::MAX) {
        return u64::MAX;
    }
    if !holds(0) {
        return 0;
    }
    let (mut lo, mut hi) = (0u64, u64::MAX); // holds(lo), !holds(hi)
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if holds(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// A universe compiled for fixed-point evaluation.
#[derive(Debug, Clone)]
pub struct FixedUniverse {
    pub spec: FixedSpec,
    terms: SizeTerms,
    assets: Vec<FixedAsset>,
    markets: Vec<FixedMarket>,
    weight_div: Divisor,
    weight_one: u64,
    price_div: Divisor,
    price_one: i128,
    /// 10^(size + price − value): base × price → value.
    base_value_div: Divisor,
    /// Value units → size units (the uPnL size discount's size).
    value_to_size: Rescale,
    value_one: f64,
}

/// `x` × 10^decimals as an integer, if it is one (within 1e-9 of a unit).
fn to_units(x: f64, decimals: u32, field: &str, what: &str) -> Result<u64> {
    let scaled = x * 10f64.powi(decimals as i32);
    let raw = scaled.round();
    // within a millionth of a unit, or a few ulps of the scaled number where that is coarser
    let tolerance = 1e-6f64.max(scaled.abs() * 4.0 * f64::EPSILON);
    if !(0.0..=u64::MAX as f64 / 2.0).contains(&raw) || (scaled - raw).abs() > tolerance {
        return Err(CoreError::config(
            field,
            format!("{x} is not a whole number of {what} units of 1e-{decimals} (fixed-point arithmetic)"),
        ));
    }
    Ok(raw as u64)
}

impl FixedUniverse {
    /// Compiles `u` for fixed-point evaluation under `spec`. The fixed-point path evaluates
    /// the rules it has integer forms for; a universe using another rule is a typed error
    /// naming the field.
    pub fn new(u: &Universe, spec: FixedSpec) -> Result<Self> {
        let s = &spec;
        if s.asset_decimals.len() != u.n_assets() {
            return Err(CoreError::config(
                "arithmetic.asset_decimals",
                format!("{} values given for {} assets", s.asset_decimals.len(), u.n_assets()),
            ));
        }
        for (name, d) in [
            ("value_decimals", s.value_decimals),
            ("price_decimals", s.price_decimals),
            ("weight_decimals", s.weight_decimals),
            ("size_decimals", s.size_decimals),
            ("imf_decimals", s.imf_decimals),
        ] {
            if d > 12 {
                return Err(CoreError::config(format!("arithmetic.{name}"), format!("{d} must be ≤ 12")));
            }
        }
        if s.size_decimals + s.price_decimals < s.value_decimals {
            return Err(CoreError::config(
                "arithmetic.value_decimals",
                format!(
                    "{} must be ≤ size_decimals + price_decimals ({})",
                    s.value_decimals,
                    s.size_decimals + s.price_decimals
                ),
            ));
        }
        let mut assets = Vec::with_capacity(u.n_assets());
        for i in 0..u.n_assets() {
            let sym = &u.assets.symbol[i];
            let f = format!("assets[{sym}]");
            let dec = s.asset_decimals[i];
            if dec > 18 || dec + s.price_decimals < s.value_decimals || dec + s.price_decimals - s.value_decimals > 19 {
                return Err(CoreError::config(
                    format!("arithmetic.asset_decimals[{sym}]"),
                    format!("{dec} does not fit the value and price units"),
                ));
            }
            if u.assets.side_factor[i] != [1.0, 1.0] {
                return Err(CoreError::config(
                    format!("{f}.bid"),
                    "fixed-point arithmetic has no two-sided valuation (give the asset one price)",
                ));
            }
            if u.assets.haircuts.has_tiers(i) {
                return Err(CoreError::config(
                    format!("{f}.haircut_tiers"),
                    "fixed-point arithmetic has no haircut tiers (use weights and imf_factor)",
                ));
            }
            let w = |x: f64, name: &str| to_units(x, s.weight_decimals, &format!("{f}.{name}"), "weight");
            let spec_a = &u.assets;
            assets.push(FixedAsset {
                scale: 10f64.powi(dec as i32),
                value_div: Divisor::pow10(dec + s.price_decimals - s.value_decimals),
                to_size: Rescale::new(dec, s.size_decimals),
                weight: [w(spec_a.weight[0][i], "weight_initial")?, w(spec_a.weight[1][i], "weight_maint")?],
                liability_weight: [
                    w(spec_a.liability_weight[0][i], "liability_weight_initial")?,
                    w(spec_a.liability_weight[1][i], "liability_weight_maint")?,
                ],
                imf: to_units(spec_a.imf_factor[i], s.imf_decimals, &format!("{f}.imf_factor"), "imf")?,
                scale_start: to_units(
                    spec_a.scale_initial_weight_start[i],
                    s.value_decimals,
                    &format!("{f}.scale_initial_weight_start"),
                    "value",
                )? as u128,
                deposits: to_units(spec_a.total_deposits[i], dec, &format!("{f}.total_deposits"), "token")? as u128,
                plain_below: 0,
                flat_below: 0,
            });
        }
        let mut markets = Vec::with_capacity(u.n_markets());
        for k in 0..u.n_markets() {
            let m = &u.markets;
            let f = format!("markets[{}]", m.symbol[k]);
            if m.kind[k] == MarketKind::Option {
                return Err(CoreError::config(format!("{f}.kind"), "fixed-point arithmetic has no option rule"));
            }
            if m.inverse[k] {
                return Err(CoreError::config(
                    format!("{f}.inverse"),
                    "fixed-point arithmetic has linear markets only",
                ));
            }
            let rules = &m.rules[k];
            for (name, shape) in [("im_shape", rules.shape[0]), ("mm_shape", rules.shape[1])] {
                if shape != Shape::Continuous {
                    return Err(CoreError::config(
                        format!("{f}.{name}"),
                        format!("fixed-point arithmetic has the continuous shape only, '{}' given", shape.name()),
                    ));
                }
            }
            if rules.maint_basis != Basis::Mark {
                return Err(CoreError::config(
                    format!("{f}.maint_basis"),
                    "fixed-point arithmetic values maintenance at the mark only",
                ));
            }
            if rules.liquidation_fee != 0.0 {
                return Err(CoreError::config(
                    format!("{f}.liquidation_fee"),
                    "fixed-point arithmetic has no liquidation-fee reserve",
                ));
            }
            let rows: Vec<_> = m.brackets.rows(k).collect();
            if rows.len() != 1 {
                return Err(CoreError::config(
                    format!("{f}.brackets"),
                    format!("fixed-point arithmetic takes one bracket (a margin ratio), {} given", rows.len()),
                ));
            }
            let (_, imr, mmr, _, _) = rows[0];
            let w = |x: f64, name: &str| to_units(x, s.weight_decimals, &format!("{f}.{name}"), "weight");
            let imf = |x: f64, name: &str| to_units(x, s.imf_decimals, &format!("{f}.{name}"), "imf");
            let cap = m.upnl_cap_initial[k];
            markets.push(FixedMarket {
                scale: m.contract_size[k] * 10f64.powi(s.size_decimals as i32),
                ratio: [w(imr, "brackets[0].imr")?, w(mmr, "brackets[0].mmr")?],
                imf: imf(m.imf_factor[k], "imf_factor")?,
                upnl_weight: [
                    w(m.upnl_weight[0][k], "upnl_weight_initial")?,
                    w(m.upnl_weight[1][k], "upnl_weight_maint")?,
                ],
                upnl_imf: imf(m.upnl_imf_factor[k], "upnl_imf_factor")?,
                upnl_cap_initial: if cap.is_finite() {
                    // a cap beyond 63 bits caps nothing (every weighted P&L is below it)
                    let cap = to_units(cap, s.value_decimals, &format!("{f}.upnl_cap_initial"), "value")?;
                    i64::try_from(cap).unwrap_or(i64::MAX)
                } else {
                    i64::MAX
                },
                settle: m.settle[k],
                flat_below: 0,
                upnl_plain_below: 0,
            });
        }
        let terms = SizeTerms::new(s.size_decimals, s.imf_decimals, s.weight_decimals);
        let value_to_size = Rescale::new(s.value_decimals, s.size_decimals);
        let t = &terms;
        for a in &mut assets {
            let root = |x: u64| if a.imf > 0 { t.root(a.to_size.apply(x as u128)) } else { 0 };
            let w = a.weight[0].max(a.weight[1]);
            a.plain_below = first_failing(|x| t.discount_cap(root(x), a.imf) >= w);
            let lw = a.liability_weight;
            a.flat_below = first_failing(|x| {
                let term = t.premium_term(root(x), a.imf);
                (0..2).all(|m| int::premium_with(lw[m], a.imf, term) == lw[m])
            });
        }
        for mk in &mut markets {
            let ratio = mk.ratio;
            mk.flat_below = first_failing(|x| {
                let term = if mk.imf > 0 { t.premium_term(t.root(x as u128), mk.imf) } else { 0 };
                (0..2).all(|m| int::premium_with(ratio[m], mk.imf, term) == ratio[m])
            });
            let w = mk.upnl_weight[0];
            mk.upnl_plain_below = if w > 0 && mk.upnl_imf > 0 {
                first_failing(|p| t.discount_cap(t.root(value_to_size.apply(p as u128)), mk.upnl_imf) >= w)
            } else {
                u64::MAX
            };
        }
        Ok(FixedUniverse {
            terms,
            assets,
            markets,
            weight_div: Divisor::pow10(s.weight_decimals),
            weight_one: 10u64.pow(s.weight_decimals),
            price_div: Divisor::pow10(s.price_decimals),
            price_one: 10i128.pow(s.price_decimals),
            base_value_div: Divisor::pow10(s.size_decimals + s.price_decimals - s.value_decimals),
            value_to_size,
            value_one: 10f64.powi(s.value_decimals as i32),
            spec,
        })
    }
}

/// One account in raw units (each total below 2^63 in magnitude).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedAccount {
    pub equity: i64,
    pub upnl: i64,
    /// (initial, maintenance) total collateral.
    pub total_collateral: PerMode<i64>,
    /// (initial, maintenance) requirements of the cross perp positions: the margin
    /// requirement less the weighted borrows.
    pub perp_requirement: PerMode<i64>,
    /// (initial, maintenance) weighted borrows: the rest of the margin requirement.
    pub borrows: PerMode<i64>,
    pub isolated_liquidatable: bool,
}

/// Prices of one call in raw units.
#[derive(Debug, Clone)]
pub struct FixedPrices {
    asset: Vec<i64>,
    mark: Vec<i64>,
    /// Each asset's initial weight after get_scaled_initial_asset_weight at this call's price.
    weight_initial: Vec<u64>,
}

impl FixedPrices {
    /// Each price rounded to the nearest price unit; it must fit 63 bits.
    pub fn new(fx: &FixedUniverse, ctx: &MarginContext<'_>) -> Result<Self> {
        let one = 10f64.powi(fx.spec.price_decimals as i32);
        let raw = |x: f64, field: String| -> Result<i64> {
            let r = (x * one).round();
            if r >= 9.2e18 {
                return Err(CoreError::price(field, format!("{x} exceeds the fixed-point price range")));
            }
            Ok(r as i64)
        };
        let u = ctx.universe;
        let asset: Vec<i64> = (0..u.n_assets())
            .map(|i| raw(ctx.prices.asset[i], format!("asset prices[{}]", u.assets.symbol[i])))
            .collect::<Result<_>>()?;
        let weight_initial = fx
            .assets
            .iter()
            .zip(&asset)
            .map(|(a, &price)| {
                let mut base = a.weight[0];
                if a.scale_start > 0 {
                    // get_scaled_initial_asset_weight: deposits valued at the oracle price
                    let deposits = a.value_div.trunc(a.deposits as i128 * price as i128) as u128;
                    if deposits >= a.scale_start {
                        base = (base as u128 * a.scale_start / deposits) as u64;
                    }
                }
                base
            })
            .collect();
        Ok(FixedPrices {
            asset,
            mark: (0..u.n_markets())
                .map(|k| raw(ctx.prices.mark[k], format!("marks[{}]", u.markets.symbol[k])))
                .collect::<Result<_>>()?,
            weight_initial,
        })
    }
}

/// round(x × scale) (half away from zero), if below 2^63 in magnitude. Written with the
/// truncating conversion: `f64::round` is a library call on baseline x86-64.
#[inline(always)]
fn raw_units(x: f64, scale: f64) -> Option<i64> {
    let r = x * scale;
    if r.is_nan() || r.abs() >= 9.2e18 {
        return None;
    }
    let t = r as i64;
    let frac = r - t as f64;
    Some(if frac >= 0.5 {
        t + 1
    } else if frac <= -0.5 {
        t - 1
    } else {
        t
    })
}

/// A book's rows in a fixed universe's raw units, converted once and reused by every call on
/// that book (the quantities do not change between calls, the prices do): each balance as
/// (universe asset, raw token amount), each position as (universe market, raw base, its
/// cost `trunc(base × entry / 10^(size + price − value))` — Drift's `quote_asset_amount`
/// negated — in value units).
#[derive(Debug, Clone, Default)]
pub struct FixedBook {
    /// The token and base scales (assets, then markets) the rows were converted with.
    scales: Vec<f64>,
    bal_asset: Vec<u32>,
    bal_amount: Vec<i64>,
    pos_market: Vec<u32>,
    pos_base: Vec<i64>,
    pos_cost: Vec<i64>,
    /// The first account (dense index) with a quantity outside the integer range.
    overflow: Option<usize>,
}

/// A grouped table's offsets: the account holding row `row`.
fn account_of(offsets: &[usize], row: usize) -> usize {
    offsets.partition_point(|&o| o <= row) - 1
}

impl FixedBook {
    fn scales(fx: &FixedUniverse) -> Vec<f64> {
        let units = [fx.price_one as f64, fx.base_value_div.get() as f64];
        fx.assets.iter().map(|a| a.scale).chain(fx.markets.iter().map(|m| m.scale)).chain(units).collect()
    }

    /// `book`'s rows (codes through `remap`) in `fx`'s units.
    pub fn new(book: &GroupedBook, remap: Remap<'_>, fx: &FixedUniverse) -> Self {
        let (b, p) = (&book.balances, &book.positions);
        let bal_asset = map_column(&b.code, |&c| remap.asset[c as usize]);
        let pos_market = map_column(&p.code, |&c| remap.market[c as usize]);
        let convert = |x: f64, scale: f64| raw_units(x, scale).unwrap_or(i64::MIN);
        let idx: Vec<usize> = (0..b.qty.len()).collect();
        let bal_amount = map_column(&idx, |&r| convert(b.qty[r], fx.assets[bal_asset[r] as usize].scale));
        let idx: Vec<usize> = (0..p.qty.len()).collect();
        let pos_base = map_column(&idx, |&r| convert(p.qty[r], fx.markets[pos_market[r] as usize].scale));
        let pos_cost = map_column(&idx, |&r| {
            let (base, entry) = (pos_base[r], convert(p.entry_price[r], fx.price_one as f64));
            if base == i64::MIN || entry == i64::MIN {
                return i64::MIN;
            }
            let cost = fx.base_value_div.trunc(base as i128 * entry as i128);
            if cost.unsigned_abs() < 1 << 63 {
                cost as i64
            } else {
                i64::MIN
            }
        });
        let first_bad = |xs: &[&[i64]]| xs.iter().filter_map(|x| x.par_iter().position_first(|&v| v == i64::MIN)).min();
        let overflow = [
            first_bad(&[&bal_amount]).map(|r| account_of(&b.offsets, r)),
            first_bad(&[&pos_base, &pos_cost]).map(|r| account_of(&p.offsets, r)),
        ]
        .into_iter()
        .flatten()
        .min();
        FixedBook { scales: Self::scales(fx), bal_asset, bal_amount, pos_market, pos_base, pos_cost, overflow }
    }

    /// Whether the rows were converted in `fx`'s units (and so can be read under it).
    pub fn matches(&self, fx: &FixedUniverse) -> bool {
        self.scales == Self::scales(fx)
    }
}

/// One account's rows in raw units.
#[derive(Debug, Clone, Copy)]
pub struct FixedRows<'a> {
    pub bal_asset: &'a [u32],
    pub bal_amount: &'a [i64],
    pub pos_market: &'a [u32],
    pub pos_base: &'a [i64],
    /// trunc(base × entry) in value units.
    pub pos_cost: &'a [i64],
    /// Isolated margin in settle-asset units (0 for cross).
    pub pos_isolated: &'a [f64],
}

impl FixedBook {
    /// Account `a`'s rows (`book` the grouped book the rows were converted from).
    #[inline(always)]
    pub fn rows<'a>(&'a self, book: &'a GroupedBook, a: usize) -> FixedRows<'a> {
        let b = book.balances.offsets[a]..book.balances.offsets[a + 1];
        let p = book.positions.offsets[a]..book.positions.offsets[a + 1];
        FixedRows {
            bal_asset: &self.bal_asset[b.clone()],
            bal_amount: &self.bal_amount[b],
            pos_market: &self.pos_market[p.clone()],
            pos_base: &self.pos_base[p.clone()],
            pos_cost: &self.pos_cost[p.clone()],
            pos_isolated: &book.positions.isolated_margin[p],
        }
    }
}

/// Integers of the kernel: inputs and every rounded intermediate fit 63 bits, so each product
/// of two is exact in i128; a value outside that range is remembered as an overflow (the
/// account then has no result) instead of wrapping or panicking.
struct Ops {
    overflow: bool,
}

impl Ops {
    /// round(x × scale) (half away from zero), below 2^63 in magnitude.
    #[inline(always)]
    fn raw(&mut self, x: f64, scale: f64) -> i64 {
        raw_units(x, scale).unwrap_or_else(|| {
            self.overflow = true;
            0
        })
    }

    /// An i128 result back into 63 bits.
    #[inline(always)]
    fn fit(&mut self, x: i128) -> i64 {
        if x.unsigned_abs() < 1 << 63 {
            x as i64
        } else {
            self.overflow = true;
            0
        }
    }

    /// a − b, below 2^63 in magnitude.
    #[inline(always)]
    fn sub(&mut self, a: i64, b: i64) -> i64 {
        match a.checked_sub(b) {
            Some(x) if x != i64::MIN => x,
            _ => {
                self.overflow = true;
                0
            }
        }
    }

    /// trunc(a × b / d): in 64 bits where the product fits them (the common case), else in
    /// 128 — the same integer either way.
    #[inline(always)]
    fn mul_trunc(&mut self, a: i64, b: i64, d: &Divisor) -> i64 {
        self.mul_round(a, b, d, false)
    }

    /// floor(a × b / d) when `floor`, else trunc, as [`Ops::mul_trunc`].
    #[inline(always)]
    fn mul_round(&mut self, a: i64, b: i64, d: &Divisor, floor: bool) -> i64 {
        match a.checked_mul(b) {
            Some(p) if p != i64::MIN => d.round64(p, floor),
            _ => d.round_wide(a as i128 * b as i128, floor).unwrap_or_else(|| {
                self.overflow = true;
                0
            }),
        }
    }

    /// x at `price`: trunc(x × price / 10^price_decimals), x itself at a price of one.
    #[inline(always)]
    fn at_price(&mut self, x: i64, price: i64, fx: &FixedUniverse) -> i64 {
        if price == fx.price_one as i64 {
            x
        } else {
            self.mul_trunc(x, price, &fx.price_div)
        }
    }
}

/// An account total as the kernel sums it: an i64 (the common case, kept in registers; a sum
/// leaving it ends the 64-bit pass) or an i128 (the exact fallback for an account whose
/// partial sums leave 63 bits; its every term fits them, so an i128 never overflows).
trait Total: Copy + Default {
    /// self + x; None when the sum leaves the type.
    fn plus(self, x: i64) -> Option<Self>;
    /// The total as an i64, if it is one.
    fn narrow(self) -> Option<i64>;
}

impl Total for i64 {
    #[inline(always)]
    fn plus(self, x: i64) -> Option<Self> {
        self.checked_add(x)
    }

    #[inline(always)]
    fn narrow(self) -> Option<i64> {
        Some(self)
    }
}

impl Total for i128 {
    #[inline(always)]
    fn plus(self, x: i64) -> Option<Self> {
        Some(self + x as i128)
    }

    #[inline(always)]
    fn narrow(self) -> Option<i64> {
        i64::try_from(self).ok()
    }
}

/// One account under the fixed-point rules (module docs); None when a total leaves the
/// integer range (|raw| ≥ 2^63) or an input or intermediate does. Inlined into each
/// instruction set's account loop ([`Isa`]).
#[inline(always)]
pub fn evaluate_account(rows: FixedRows<'_>, fx: &FixedUniverse, px: &FixedPrices) -> Option<FixedAccount> {
    // in 64-bit totals; the same formula in 128-bit ones when a partial sum leaves 63 bits
    match account_totals::<i64>(rows, fx, px) {
        Some(a) => a,
        None => wide_account(rows, fx, px),
    }
}

/// [`evaluate_account`] in 128-bit totals (rare: out of the hot loop).
#[cold]
#[inline(never)]
fn wide_account(rows: FixedRows<'_>, fx: &FixedUniverse, px: &FixedPrices) -> Option<FixedAccount> {
    account_totals::<i128>(rows, fx, px).expect("128-bit totals of 63-bit terms do not overflow")
}

/// [`evaluate_account`] with totals of type `T`: None when a partial sum overflowed `T`,
/// Some(None) when the account leaves the integer range (an input, an intermediate or a
/// total beyond 63 bits).
#[inline(always)]
fn account_totals<T: Total>(rows: FixedRows<'_>, fx: &FixedUniverse, px: &FixedPrices) -> Option<Option<FixedAccount>> {
    let mut o = Ops { overflow: false };
    // each total a scalar of its own (an array indexed by the mode stays in memory, and each
    // sum into it waits on the store before it)
    let (mut equity, mut upnl_total) = (T::default(), T::default());
    let (mut tc0, mut tc1) = (T::default(), T::default());
    let (mut b0, mut b1) = (T::default(), T::default());
    let (mut rq0, mut rq1) = (T::default(), T::default());
    let mut isolated_liquidatable = false;
    let t = &fx.terms;
    let w_one = fx.weight_one;
    let wd = &fx.weight_div;
    let weigh = |o: &mut Ops, x: i64, w: u64| if w == w_one { x } else { o.mul_trunc(x, w as i64, wd) };

    let floor_borrows = fx.spec.borrow_rounding == BorrowRounding::Up;
    for (&i, &amount) in rows.bal_asset.iter().zip(rows.bal_amount) {
        let i = i as usize;
        let a = &fx.assets[i];
        if amount == 0 {
            continue;
        }
        // a balance's sign is data: the two sides share one path, their differences selected
        // (not branched on, which would mispredict on a book of mixed signs)
        let held = amount > 0;
        let value = o.mul_round(amount, px.asset[i], &a.value_div, !held && floor_borrows);
        equity = equity.plus(value)?;
        // a holding at its weights (size-discounted), a borrow at its liability weights (size
        // premium); below the thresholds neither has a size term (no root needed)
        let mut w = if held { [px.weight_initial[i], a.weight[1]] } else { a.liability_weight };
        let mag = amount.unsigned_abs();
        if mag >= if held { a.plain_below } else { a.flat_below } {
            let root = if a.imf > 0 { t.root(a.to_size.apply(mag as u128)) } else { 0 };
            if held {
                let cap = t.discount_cap(root, a.imf);
                w = w.map(|x| x.min(cap));
            } else {
                let term = t.premium_term(root, a.imf);
                w = w.map(|lw| int::premium_with(lw, a.imf, term));
            }
        }
        let (x0, x1) = (weigh(&mut o, value, w[0]), weigh(&mut o, value, w[1]));
        let (h0, d0) = if held { (x0, 0) } else { (0, -x0) };
        let (h1, d1) = if held { (x1, 0) } else { (0, -x1) };
        tc0 = tc0.plus(h0)?;
        tc1 = tc1.plus(h1)?;
        b0 = b0.plus(d0)?;
        b1 = b1.plus(d1)?;
    }

    for p in 0..rows.pos_market.len() {
        let k = rows.pos_market[p] as usize;
        let mk = &fx.markets[k];
        let (base, cost, isolated) = (rows.pos_base[p], rows.pos_cost[p], rows.pos_isolated[p]);
        let (mark, quote) = (px.mark[k], px.asset[mk.settle as usize]);
        let bd = &fx.base_value_div;
        // quote_asset_amount: −cost, the book's base × entry in value units (FixedBook)
        // calculate_base_asset_value_and_pnl_with_oracle_price; the liability value
        // (calculate_perp_liability_value) is its magnitude, both toward zero
        let value = o.mul_trunc(base, mark, bd);
        let pnl = o.sub(value, cost);
        let at_quote = |o: &mut Ops, x: i64| o.at_price(x, quote, fx);
        let liability = at_quote(&mut o, value.abs());
        let upnl = at_quote(&mut o, pnl);
        upnl_total = upnl_total.plus(upnl)?;
        equity = equity.plus(upnl)?;
        let flat = base.unsigned_abs() < mk.flat_below;
        let (r0, r1) = if flat {
            (mk.ratio[0], mk.ratio[1])
        } else {
            let term = if mk.imf > 0 { t.premium_term(t.root(base.unsigned_abs() as u128), mk.imf) } else { 0 };
            (int::premium_with(mk.ratio[0], mk.imf, term), int::premium_with(mk.ratio[1], mk.imf, term))
        };
        let req0 = o.mul_trunc(liability, r0 as i64, wd);
        let req1 = o.mul_trunc(liability, r1 as i64, wd);
        // get_unrealized_asset_weight: a loss at weight 1; a profit at its weight, at initial
        // margin size-discounted by the profit (value units → size units)
        // (the weights selected, not branched on: a P&L's sign is data and would mispredict)
        let profit = pnl > 0;
        let w0 = if profit { mk.upnl_weight[0] } else { w_one };
        let w1 = if profit { mk.upnl_weight[1] } else { w_one };
        let w0 = if profit & (pnl as u64 >= mk.upnl_plain_below) {
            let size = fx.value_to_size.apply(pnl as u128);
            w0.min(t.discount_cap(t.root(size), mk.upnl_imf))
        } else {
            w0
        };
        // at weight one the weighted P&L is `upnl` itself, so the initial one is formed either
        // way (no branch on the selected weight); the maintenance weight is mostly one
        let x = o.mul_trunc(pnl, w0 as i64, wd);
        let weighted0 = at_quote(&mut o, x);
        let weighted1 = if w1 == w_one {
            upnl
        } else {
            let x = o.mul_trunc(pnl, w1 as i64, wd);
            at_quote(&mut o, x)
        };
        let weighted0 = weighted0.min(mk.upnl_cap_initial);
        if isolated > 0.0 {
            let s = &fx.assets[mk.settle as usize];
            let amount = o.raw(isolated, s.scale);
            let margin = o.fit(s.value_div.trunc(amount as i128 * quote as i128));
            equity = equity.plus(margin)?;
            if (margin as i128 + weighted1 as i128) < req1 as i128 {
                isolated_liquidatable = true;
            }
        } else {
            rq0 = rq0.plus(req0)?;
            rq1 = rq1.plus(req1)?;
            tc0 = tc0.plus(weighted0)?;
            tc1 = tc1.plus(weighted1)?;
        }
    }
    if o.overflow {
        return Some(None);
    }
    let n = |x: T| x.narrow();
    Some((|| {
        Some(FixedAccount {
            equity: n(equity)?,
            upnl: n(upnl_total)?,
            total_collateral: [n(tc0)?, n(tc1)?],
            perp_requirement: [n(rq0)?, n(rq1)?],
            borrows: [n(b0)?, n(b1)?],
            isolated_liquidatable,
        })
    })())
}

/// The raw columns of a fixed-point evaluation (value units, i64).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FixedColumns {
    pub total_collateral_initial: Vec<i64>,
    pub total_collateral_maint: Vec<i64>,
    pub requirement_initial: Vec<i64>,
    pub requirement_maint: Vec<i64>,
}

impl FixedColumns {
    /// Fresh columns for `n` accounts (zeroed, on huge pages where the platform has them).
    pub fn zeroed(n: usize) -> Self {
        FixedColumns {
            total_collateral_initial: column(n),
            total_collateral_maint: column(n),
            requirement_initial: column(n),
            requirement_maint: column(n),
        }
    }

    /// The columns, borrowed for writing.
    pub fn as_mut(&mut self) -> FixedColumnsMut<'_> {
        FixedColumnsMut {
            total_collateral_initial: &mut self.total_collateral_initial,
            total_collateral_maint: &mut self.total_collateral_maint,
            requirement_initial: &mut self.requirement_initial,
            requirement_maint: &mut self.requirement_maint,
        }
    }
}

/// The raw columns borrowed from the caller (`out=`: a previous result's arrays written in
/// place, as [`MarginColumnsMut`] for the float columns).
#[derive(Debug)]
pub struct FixedColumnsMut<'a> {
    pub total_collateral_initial: &'a mut [i64],
    pub total_collateral_maint: &'a mut [i64],
    pub requirement_initial: &'a mut [i64],
    pub requirement_maint: &'a mut [i64],
}

impl<'a> FixedColumnsMut<'a> {
    /// `n` when every column has `n` rows, else a `Config` error naming the first column that
    /// has not (by its result name).
    pub fn len_checked(&self, n: usize) -> Result<usize> {
        let lens = [
            ("total_collateral_initial_raw", self.total_collateral_initial.len()),
            ("total_collateral_maint_raw", self.total_collateral_maint.len()),
            ("margin_requirement_initial_raw", self.requirement_initial.len()),
            ("margin_requirement_maint_raw", self.requirement_maint.len()),
        ];
        match lens.iter().find(|(_, l)| *l != n) {
            None => Ok(n),
            Some((name, l)) => {
                Err(CoreError::config(format!("out[{name}]"), format!("{l} rows where the book has {n} accounts")))
            }
        }
    }

    /// The columns cut into consecutive chunks of `chunk` rows (the last one shorter).
    fn into_chunks(self, chunk: usize) -> Vec<FixedColumnsMut<'a>> {
        let cut = |c: &'a mut [i64]| c.chunks_mut(chunk);
        cut(self.total_collateral_initial)
            .zip(cut(self.total_collateral_maint))
            .zip(cut(self.requirement_initial))
            .zip(cut(self.requirement_maint))
            .map(|(((tci, tcm), rqi), rqm)| FixedColumnsMut {
                total_collateral_initial: tci,
                total_collateral_maint: tcm,
                requirement_initial: rqi,
                requirement_maint: rqm,
            })
            .collect()
    }
}

/// i128 → f64 (correctly rounded, a library call on x86-64) out of line: inlined, the
/// compiler merges it with the 64-bit conversion beside it and calls the library every time.
#[cold]
#[inline(never)]
fn wide(x: i128) -> f64 {
    x as f64
}

/// Every account of the book under the fixed-point rules: the standard columns (exact
/// multiples of the value unit) and the raw totals. An account whose numbers leave the
/// integer range (|raw| ≥ 2^63) is a typed error naming it.
pub fn evaluate(
    book: &GroupedBook,
    ctx: &MarginContext<'_>,
    fx: &FixedUniverse,
) -> Result<(MarginColumns, FixedColumns)> {
    evaluate_rows(book, &FixedBook::new(book, ctx.remap, fx), ctx, fx)
}

/// [`evaluate`] of a book whose rows were converted once ([`FixedBook::new`] under `fx` and
/// `ctx`'s remap), as a caller evaluating one book many times keeps them.
pub fn evaluate_rows(
    book: &GroupedBook,
    rows: &FixedBook,
    ctx: &MarginContext<'_>,
    fx: &FixedUniverse,
) -> Result<(MarginColumns, FixedColumns)> {
    let n = book.n_accounts();
    let (mut out, mut raw) = (MarginColumns::zeroed(n), FixedColumns::zeroed(n));
    evaluate_rows_into(book, rows, ctx, fx, out.as_mut(), raw.as_mut(), Level::detect())?;
    Ok((out, raw))
}

/// [`evaluate_rows`] into the caller's columns (`out=`: one row per account, a `Config` error
/// naming a column of another length), with the kernel compiled for `level` (the same bits
/// at every level). On an error the columns hold no result (rows before the failing account
/// may have been written).
pub fn evaluate_rows_into(
    book: &GroupedBook,
    rows: &FixedBook,
    ctx: &MarginContext<'_>,
    fx: &FixedUniverse,
    out: MarginColumnsMut<'_>,
    raw: FixedColumnsMut<'_>,
    level: Level,
) -> Result<()> {
    if !rows.matches(fx)
        || rows.bal_amount.len() != book.balances.qty.len()
        || rows.pos_base.len() != book.positions.qty.len()
    {
        return Err(CoreError::config("arithmetic", "the book's raw rows were converted for another universe or book"));
    }
    // Open orders have no fixed-point rule yet: refuse them rather than margin without them.
    if book.has_orders() {
        return Err(CoreError::config(
            "arithmetic",
            "open orders are not margined under fixed-point arithmetic; evaluate the book without orders or in float64",
        ));
    }
    let n = out.len_checked(book.n_accounts())?;
    raw.len_checked(n)?;
    let px = FixedPrices::new(fx, ctx)?;
    let isa = Isa::of(level);
    let k = Kernel { book, rows, fx, px: &px };
    let bad: Option<usize> = out
        .into_chunks(CHUNK)
        .into_par_iter()
        .zip(raw.into_chunks(CHUNK))
        .enumerate()
        .map(|(c, (cols, raw))| k.chunk(isa, c * CHUNK, cols, raw))
        .flatten()
        .min();
    if let Some(a) = bad.into_iter().chain(rows.overflow).min() {
        return Err(CoreError::config(
            "arithmetic",
            format!("account {}: a value leaves the fixed-point range (|raw| < 2^63)", book.accounts[a]),
        ));
    }
    Ok(())
}

/// The instruction set the account loop is compiled for: baseline x86-64, or x86-64-v3
/// (BMI2's flag-free multiplies and shifts, LZCNT) and v4 (AVX-512's u64 ↔ f64 conversions)
/// where the CPU has them and `level` allows them. Integer results and correctly rounded
/// conversions are the same bits on each (no floating-point contraction in Rust).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    Base,
    #[cfg(target_arch = "x86_64")]
    V3,
    #[cfg(target_arch = "x86_64")]
    V4,
}

impl Isa {
    fn of(level: Level) -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let v3 = has!("avx2") && has!("bmi1") && has!("bmi2") && has!("fma") && has!("lzcnt") && has!("popcnt");
            let v4 = v3 && has!("avx512f") && has!("avx512dq") && has!("avx512vl");
            if level >= Level::Avx512 && v4 {
                return Isa::V4;
            }
            if level >= Level::Avx2 && v3 {
                return Isa::V3;
            }
        }
        let _ = level;
        Isa::Base
    }
}

/// One call's inputs, shared by every task.
#[derive(Clone, Copy)]
struct Kernel<'a> {
    book: &'a GroupedBook,
    rows: &'a FixedBook,
    fx: &'a FixedUniverse,
    px: &'a FixedPrices,
}

/// Accounts per block of the account loop: the block's totals are kept in arrays of this
/// length (on the stack, in L1) and turned into the result columns by one pass over them.
const BLOCK: usize = 256;

/// A block's raw totals, one row per account (see [`FixedAccount`]).
struct BlockTotals {
    equity: [i64; BLOCK],
    upnl: [i64; BLOCK],
    tc: [[i64; BLOCK]; 2],
    perp: [[i64; BLOCK]; 2],
    borrows: [[i64; BLOCK]; 2],
    isolated: [bool; BLOCK],
}

impl Kernel<'_> {
    /// Accounts `first..` (one task's chunk of the columns) on `isa`; the first account whose
    /// numbers leave the integer range, if any.
    fn chunk(&self, isa: Isa, first: usize, cols: MarginColumnsMut<'_>, raw: FixedColumnsMut<'_>) -> Option<usize> {
        match isa {
            Isa::Base => self.accounts(first, cols, raw),
            // SAFETY: `Isa::of` chose these only where the CPU reports every feature they enable.
            #[cfg(target_arch = "x86_64")]
            Isa::V3 => unsafe { self.accounts_v3(first, cols, raw) },
            #[cfg(target_arch = "x86_64")]
            Isa::V4 => unsafe { self.accounts_v4(first, cols, raw) },
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1,bmi2,fma,lzcnt,popcnt")]
    unsafe fn accounts_v3(&self, first: usize, cols: MarginColumnsMut<'_>, raw: FixedColumnsMut<'_>) -> Option<usize> {
        self.accounts(first, cols, raw)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,bmi1,bmi2,fma,lzcnt,popcnt")]
    unsafe fn accounts_v4(&self, first: usize, cols: MarginColumnsMut<'_>, raw: FixedColumnsMut<'_>) -> Option<usize> {
        self.accounts(first, cols, raw)
    }

    /// The account loop of [`Kernel::chunk`], inlined into each instruction set's copy: per
    /// block of [`BLOCK`] accounts, the integer totals of each account, then the columns of
    /// the block from them in one pass (vectorised: conversions and divisions of 8 accounts
    /// at once where the instruction set has them).
    #[inline(always)]
    fn accounts(&self, first: usize, mut cols: MarginColumnsMut<'_>, mut raw: FixedColumnsMut<'_>) -> Option<usize> {
        let (book, rows) = (self.book, self.rows);
        let mut bad = None;
        let mut t = BlockTotals {
            equity: [0; BLOCK],
            upnl: [0; BLOCK],
            tc: [[0; BLOCK]; 2],
            perp: [[0; BLOCK]; 2],
            borrows: [[0; BLOCK]; 2],
            isolated: [false; BLOCK],
        };
        let n = cols.equity.len();
        let mut start = 0;
        while start < n {
            let len = BLOCK.min(n - start);
            for j in 0..len {
                let a = first + start + j;
                let x = evaluate_account(rows.rows(book, a), self.fx, self.px).unwrap_or_else(|| {
                    bad = bad.or(Some(a));
                    FixedAccount::default()
                });
                t.equity[j] = x.equity;
                t.upnl[j] = x.upnl;
                for m in 0..2 {
                    t.tc[m][j] = x.total_collateral[m];
                    t.perp[m][j] = x.perp_requirement[m];
                    t.borrows[m][j] = x.borrows[m];
                }
                t.isolated[j] = x.isolated_liquidatable;
            }
            let over = block_columns(&t, len, self.fx.value_one, start, &mut cols, &mut raw);
            if over {
                // a requirement beyond 63 bits (an error naming the account), or a difference
                // of two totals beyond 63 bits (converted from 128 bits)
                if let Some(j) = wide_columns(&t, len, self.fx.value_one, start, &mut cols) {
                    let a = first + start + j;
                    bad = Some(bad.map_or(a, |b: usize| b.min(a)));
                }
            }
            start += len;
        }
        bad
    }
}

/// The columns of rows `at..at + len` from a block's totals; true when some account needs
/// [`wide_columns`] (a sum or difference of two totals beyond 63 bits). One short loop per
/// column, each of a few arrays, so that each is vectorised.
#[inline(always)]
fn block_columns(
    t: &BlockTotals,
    len: usize,
    one: f64,
    at: usize,
    cols: &mut MarginColumnsMut<'_>,
    raw: &mut FixedColumnsMut<'_>,
) -> bool {
    let r = at..at + len;
    let (tc0, tc1) = (&t.tc[0][..len], &t.tc[1][..len]);
    let (b0, b1) = (&t.borrows[0][..len], &t.borrows[1][..len]);
    // x / 10^value as the nearest float of x, then one division (correctly rounded each)
    let convert = |out: &mut [f64], x: &[i64]| {
        for (o, &x) in out.iter_mut().zip(x) {
            *o = x as f64 / one;
        }
    };
    // x ± y, and the sign bit set where the result left 64 bits
    let sum = |out: &mut [i64], x: &[i64], y: &[i64]| {
        let mut over = 0i64;
        for ((o, &x), &y) in out.iter_mut().zip(x).zip(y) {
            let s = x.wrapping_add(y);
            over |= !(x ^ y) & (x ^ s);
            *o = s;
        }
        over
    };
    let difference = |out: &mut [i64], x: &[i64], y: &[i64]| {
        let mut over = 0i64;
        for ((o, &x), &y) in out.iter_mut().zip(x).zip(y) {
            let d = x.wrapping_sub(y);
            over |= (x ^ y) & (x ^ d);
            *o = d;
        }
        over
    };
    let mut over = 0i64;
    let (rq0, rq1) = (&mut raw.requirement_initial[r.clone()], &mut raw.requirement_maint[r.clone()]);
    over |= sum(rq0, &t.perp[0][..len], b0);
    over |= sum(rq1, &t.perp[1][..len], b1);
    raw.total_collateral_initial[r.clone()].copy_from_slice(tc0);
    raw.total_collateral_maint[r.clone()].copy_from_slice(tc1);
    convert(&mut cols.equity[r.clone()], &t.equity[..len]);
    convert(&mut cols.upnl[r.clone()], &t.upnl[..len]);
    convert(&mut cols.im[r.clone()], &t.perp[0][..len]);
    convert(&mut cols.mm[r.clone()], &t.perp[1][..len]);
    let mut d = [0i64; BLOCK];
    let d = &mut d[..len];
    over |= difference(d, tc0, b0);
    convert(&mut cols.adj_equity_initial[r.clone()], d);
    over |= difference(d, tc1, b1);
    convert(&mut cols.adj_equity_maint[r.clone()], d);
    over |= difference(d, tc0, rq0);
    convert(&mut cols.free_collateral[r.clone()], d);
    let (mm, adj) = (&cols.mm[r.clone()], &cols.adj_equity_maint[r.clone()]);
    for ((o, &mm), &adj) in cols.margin_ratio[r.clone()].iter_mut().zip(mm).zip(adj) {
        *o = margin_ratio(mm, adj);
    }
    for (((o, &tc), &rq), &iso) in cols.liquidatable[r.clone()].iter_mut().zip(tc1).zip(rq1.iter()).zip(&t.isolated) {
        *o = (tc < rq) | iso;
    }
    for (o, &e) in cols.bankrupt[r].iter_mut().zip(&t.equity[..len]) {
        *o = e < 0;
    }
    over < 0
}

/// [`AccountMargin::margin_ratio`] of a maintenance requirement and adjusted maintenance equity.
#[inline(always)]
fn margin_ratio(mm: f64, adj_maint: f64) -> f64 {
    let m = AccountMargin {
        equity: 0.0,
        upnl: 0.0,
        adj_equity: [0.0, adj_maint],
        requirement: [0.0, mm],
        isolated_liquidatable: false,
        fee_reserve: 0.0,
    };
    m.margin_ratio()
}

/// The rows of a block [`block_columns`] flagged, again in 128 bits: the requirements and
/// differences of totals exactly; the first account whose requirement leaves 63 bits, if any.
#[cold]
#[inline(never)]
fn wide_columns(t: &BlockTotals, len: usize, one: f64, at: usize, cols: &mut MarginColumnsMut<'_>) -> Option<usize> {
    let f = |x: i128| wide(x) / one;
    let mut bad = None;
    for j in 0..len {
        let w = |x: &[[i64; BLOCK]; 2], m: usize| x[m][j] as i128;
        let (tc0, tc1) = (w(&t.tc, 0), w(&t.tc, 1));
        let (b0, b1) = (w(&t.borrows, 0), w(&t.borrows, 1));
        let (q0, q1) = (w(&t.perp, 0) + b0, w(&t.perp, 1) + b1);
        if i64::try_from(q0).is_err() || i64::try_from(q1).is_err() {
            bad = bad.or(Some(j));
            continue;
        }
        let (adj, mm) = (f(tc1 - b1), f(w(&t.perp, 1)));
        cols.adj_equity_initial[at + j] = f(tc0 - b0);
        cols.adj_equity_maint[at + j] = adj;
        cols.free_collateral[at + j] = f(tc0 - q0);
        cols.margin_ratio[at + j] = margin_ratio(mm, adj);
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{group, BalanceInput, PositionInput};
    use crate::margin::{Prices, Remap};
    use crate::universe::fixtures::{asset, perp};
    use crate::universe::AssetSpec;

    fn drift_assets() -> Vec<AssetSpec> {
        let mut usdc = asset("USDC", 0.9999);
        usdc.weight = [1.0, 1.0];
        let mut sol = asset("SOL", 150.0);
        sol.weight = [0.8, 0.9];
        sol.liability_weight = [1.2, 1.1];
        sol.imf_factor = 0.003;
        vec![usdc, sol]
    }

    fn universe() -> (Universe, FixedUniverse) {
        let mut m = perp("SOL-PERP", "USDC", "SOL", 150.0, &[(f64::INFINITY, 0.1, 0.05)]);
        m.imf_factor = 0.001;
        let u = Universe::new(&drift_assets(), &[m]).unwrap();
        let fx = FixedUniverse::new(&u, FixedSpec::drift(vec![6, 9])).unwrap();
        (u, fx)
    }

    /// One account (id 1) of `bal` (asset, qty) and `pos` (market, qty, entry), grouped.
    fn one_account(u: &Universe, bal: &[(u32, f64)], pos: &[(u32, f64, f64)]) -> GroupedBook {
        let pos: Vec<_> = pos.iter().map(|&(c, q, e)| (c, q, e, 0.0)).collect();
        crate::book::one_account(bal, &pos, u.n_assets() as u32, u.n_markets() as u32)
    }

    /// One account (id 1) of `bal` (asset, qty) and `pos` (market, qty, entry).
    fn run(u: &Universe, fx: &FixedUniverse, bal: &[(u32, f64)], pos: &[(u32, f64, f64)]) -> Result<FixedColumns> {
        let book = one_account(u, bal, pos);
        let am: Vec<u32> = (0..u.n_assets() as u32).collect();
        let mm: Vec<u32> = (0..u.n_markets() as u32).collect();
        let prices = Prices { asset: &u.assets.price, mark: &u.markets.mark };
        let ctx = MarginContext::new(u, &book, prices, Remap { asset: &am, market: &mm }).unwrap();
        evaluate(&book, &ctx, fx).map(|(_, raw)| raw)
    }

    #[test]
    fn drift_order_and_rounding_by_hand() {
        let (u, fx) = universe();
        // 100 USDC at 0.9999 → 99.990000; 0.5 SOL borrowed at 150 → 75.000000 × 1.2 / 1.1;
        // long 1.5 SOL-PERP from 140: liability 225 × 0.9999 = 224.977500 × 0.1 / 0.05
        // (premium 1000 − 200 + isqrt(1.5e10 + 1)·1000 / 1e7 = 812 < 1000), P&L 15 × 0.9999.
        let r = run(&u, &fx, &[(0, 100.0), (1, -0.5)], &[(0, 1.5, 140.0)]).unwrap();
        assert_eq!(r.total_collateral_initial, [99_990_000 + 14_998_500]);
        assert_eq!(r.total_collateral_maint, [99_990_000 + 14_998_500]);
        assert_eq!(r.requirement_initial, [90_000_000 + 22_497_750]);
        assert_eq!(r.requirement_maint, [82_500_000 + 11_248_875]);
    }

    #[test]
    fn a_borrow_rounds_up_and_its_weighting_toward_zero() {
        let (u, fx) = universe();
        // −0.000000001 SOL × 150 = −0.00000015 USD → −1 unit (floor); × 1.1 → −1.1 → −1.
        let r = run(&u, &fx, &[(1, -1e-9)], &[]).unwrap();
        assert_eq!((r.requirement_initial[0], r.requirement_maint[0]), (1, 1));
        let down =
            FixedUniverse::new(&u, FixedSpec { borrow_rounding: BorrowRounding::Down, ..fx.spec.clone() }).unwrap();
        assert_eq!(run(&u, &down, &[(1, -1e-9)], &[]).unwrap().requirement_maint, [0]);
    }

    #[test]
    fn scaled_initial_weight_protocol_vector() {
        // programs/drift/src/math/margin/tests.rs spot_market_scale_initial_asset_weight:
        // initial weight 9000, start 500,000 USD, price 25; 40,000 deposited → 4500, 60,000 → 3000.
        for (deposits, weight) in [(20_000.0, 9_000), (40_000.0, 4_500), (60_000.0, 3_000)] {
            let mut x = asset("XSOL", 25.0);
            x.weight = [0.9, 0.95];
            x.scale_initial_weight_start = 500_000.0;
            x.total_deposits = deposits;
            let u = Universe::new(&[asset("USDC", 1.0), x], &[]).unwrap();
            let fx = FixedUniverse::new(&u, FixedSpec::drift(vec![6, 9])).unwrap();
            let r = run(&u, &fx, &[(1, 1.0)], &[]).unwrap();
            assert_eq!(r.total_collateral_initial, [25_000_000 * weight / 10_000]);
        }
    }

    #[test]
    fn rules_without_an_integer_form_are_named() {
        let mut two = perp("BTC-PERP", "USDC", "BTC", 60_000.0, &[(1e6, 0.1, 0.05), (f64::INFINITY, 0.2, 0.1)]);
        let u = Universe::new(&drift_assets(), std::slice::from_ref(&two)).unwrap();
        let e = FixedUniverse::new(&u, FixedSpec::drift(vec![6, 9])).unwrap_err();
        assert!(
            e.to_string().starts_with("markets[BTC-PERP].brackets: fixed-point arithmetic takes one bracket"),
            "{e}"
        );
        two.brackets.truncate(1);
        two.brackets[0].bound = f64::INFINITY;
        two.brackets[0].mmr = 0.05005;
        let u = Universe::new(&drift_assets(), &[two]).unwrap();
        let e = FixedUniverse::new(&u, FixedSpec::drift(vec![6, 9])).unwrap_err();
        assert!(e.to_string().starts_with("markets[BTC-PERP].brackets[0].mmr: 0.05005 is not a whole number"), "{e}");
        let mut tiers = drift_assets();
        tiers[1].haircut_tiers = vec![(f64::INFINITY, 0.9)];
        let u = Universe::new(&tiers, &[]).unwrap();
        let e = FixedUniverse::new(&u, FixedSpec::drift(vec![6, 9])).unwrap_err();
        assert!(e.to_string().starts_with("assets[SOL].haircut_tiers"), "{e}");
        let e = FixedUniverse::new(&u, FixedSpec::drift(vec![6])).unwrap_err();
        assert!(e.to_string().starts_with("arithmetic.asset_decimals: 1 values given for 2 assets"), "{e}");
    }

    #[test]
    fn venue_rules_without_a_fixed_point_form_are_refused_by_field() {
        use crate::universe::{MarketRules, MarketSpec};
        let base = perp("BTC-PERP", "USDC", "BTC", 60_000.0, &[(f64::INFINITY, 0.1, 0.05)]);
        let cases: [(MarketRules, &str); 4] = [
            (MarketRules { shape: [Shape::Step, Shape::Continuous], ..Default::default() }, "im_shape"),
            (
                MarketRules {
                    shape: [Shape::Continuous, Shape::SizeScaled],
                    rate_slope: [0.0, 1e-4],
                    ..Default::default()
                },
                "mm_shape",
            ),
            (MarketRules { maint_basis: Basis::Entry, ..Default::default() }, "maint_basis"),
            (MarketRules { liquidation_fee: 0.0006, ..Default::default() }, "liquidation_fee"),
        ];
        for (rules, field) in cases {
            let m = MarketSpec { rules, ..base.clone() };
            let u = Universe::new(&drift_assets(), &[m]).unwrap();
            let e = FixedUniverse::new(&u, FixedSpec::drift(vec![6, 9])).unwrap_err();
            assert!(e.to_string().starts_with(&format!("markets[BTC-PERP].{field}: fixed-point")), "{e}");
        }
        let mut two_sided = drift_assets();
        two_sided[1].bid_ask = Some((two_sided[1].price * 0.99, two_sided[1].price * 1.01));
        let u = Universe::new(&two_sided, &[]).unwrap();
        let e = FixedUniverse::new(&u, FixedSpec::drift(vec![6, 9])).unwrap_err();
        assert!(e.to_string().starts_with("assets[SOL].bid: fixed-point"), "{e}");
    }

    #[test]
    fn rows_converted_once_serve_every_call_of_their_universe_only() {
        let (u, fx) = universe();
        let book = group(
            BalanceInput { account: &[1, 2], code: &[0, 1], qty: &[100.0, -0.5] },
            PositionInput { account: &[2], code: &[0], qty: &[1.5], entry_price: &[140.0], isolated_margin: &[0.0] },
            2,
            1,
        )
        .unwrap();
        let prices = Prices { asset: &u.assets.price, mark: &u.markets.mark };
        let remap = Remap { asset: &[0, 1], market: &[0] };
        let ctx = MarginContext::new(&u, &book, prices, remap).unwrap();
        let rows = FixedBook::new(&book, remap, &fx);
        let once = evaluate(&book, &ctx, &fx).unwrap().1;
        assert_eq!(evaluate_rows(&book, &rows, &ctx, &fx).unwrap().1, once);
        // at another mark the kept rows give what a fresh conversion gives
        let moved = [151.5];
        let ctx2 = MarginContext::new(&u, &book, Prices { mark: &moved, ..prices }, remap).unwrap();
        assert_eq!(evaluate_rows(&book, &rows, &ctx2, &fx).unwrap().1, evaluate(&book, &ctx2, &fx).unwrap().1);
        // rows converted in other units are refused, not misread
        let other = FixedUniverse::new(&u, FixedSpec::drift(vec![6, 8])).unwrap();
        assert!(!rows.matches(&other));
        let e = evaluate_rows(&book, &rows, &ctx, &other).unwrap_err();
        assert!(e.to_string().starts_with("arithmetic: the book's raw rows were converted"), "{e}");
    }

    #[test]
    fn differences_of_totals_beyond_63_bits_are_converted_from_128_bits() {
        let mut x = asset("XYZ", 1.0);
        x.liability_weight = [1.2, 1.1];
        let m = perp("XYZ-PERP", "USDC", "XYZ", 1.0, &[(f64::INFINITY, 0.1, 0.05)]);
        let u = Universe::new(&[asset("USDC", 1.0), x], &[m]).unwrap();
        let fx = FixedUniverse::new(&u, FixedSpec::drift(vec![6, 6])).unwrap();
        // a borrow of 4.6e12 XYZ (weighted 5.52e12 initial) and a loss of 4.15e12 on a long of
        // 4.15e9 from 1001 at 1: equity −8.75e12 USD fits 63 bits of 1e-6, total collateral
        // less weighted borrows (−9.67e12) and less the requirement do not
        let book = one_account(&u, &[(1, -4.6e12)], &[(0, 4.15e9, 1001.0)]);
        let prices = Prices { asset: &u.assets.price, mark: &u.markets.mark };
        let ctx = MarginContext::new(&u, &book, prices, Remap { asset: &[0, 1], market: &[0] }).unwrap();
        let (cols, raw) = evaluate(&book, &ctx, &fx).unwrap();
        let (tc0, rq0) = (raw.total_collateral_initial[0] as i128, raw.requirement_initial[0] as i128);
        assert_eq!((tc0, rq0), (-4_150_000_000_000_000_000, 5_520_000_000_000_000_000 + 415_000_000_000_000));
        let b0 = 5_520_000_000_000_000_000i128;
        assert!(tc0 - b0 < i64::MIN as i128 && tc0 - rq0 < i64::MIN as i128);
        assert_eq!(cols.equity[0], -8.75e12);
        assert_eq!(cols.im[0], 4.15e8);
        assert_eq!(cols.adj_equity_initial[0], (tc0 - b0) as f64 / 1e6);
        assert_eq!(cols.free_collateral[0], (tc0 - rq0) as f64 / 1e6);
        assert!(cols.liquidatable[0] && cols.bankrupt[0]);
    }

    #[test]
    fn values_beyond_the_integer_range_are_an_error_naming_the_account() {
        let (u, fx) = universe();
        let e = run(&u, &fx, &[(1, 1e12)], &[]).unwrap_err();
        assert_eq!(e.to_string(), "arithmetic: account 1: a value leaves the fixed-point range (|raw| < 2^63)");
    }
}
