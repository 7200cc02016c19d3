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

use crate::book::{AccountRows, GroupedBook};
use crate::error::{CoreError, Result};
use crate::margin::{AccountMargin, MarginColumns, MarginContext};
use crate::memory::column;
use crate::mode::PerMode;
use crate::universe::{MarketKind, Universe};
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
        if self.mul == 1 {
            self.div.div_rem(x).0
        } else {
            x.saturating_mul(self.mul)
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
}

#[derive(Debug, Clone, Copy)]
struct FixedMarket {
    /// contract size × 10^size.
    scale: f64,
    ratio: PerMode<u64>,
    imf: u64,
    upnl_weight: PerMode<u64>,
    upnl_imf: u64,
    /// At most this much weighted P&L at initial margin (raw value; i128::MAX = none).
    upnl_cap_initial: i128,
    settle: u32,
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
    if !(0.0..=u64::MAX as f64 / 2.0).contains(&raw) || (scaled - raw).abs() > 1e-6 {
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
                deposits: (spec_a.total_deposits[i] * 10f64.powi(dec as i32)).round() as u128,
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
                    to_units(cap, s.value_decimals, &format!("{f}.upnl_cap_initial"), "value")? as i128
                } else {
                    i128::MAX
                },
                settle: m.settle[k],
            });
        }
        Ok(FixedUniverse {
            terms: SizeTerms::new(s.size_decimals, s.imf_decimals, s.weight_decimals),
            assets,
            markets,
            weight_div: Divisor::pow10(s.weight_decimals),
            weight_one: 10u64.pow(s.weight_decimals),
            price_div: Divisor::pow10(s.price_decimals),
            price_one: 10i128.pow(s.price_decimals),
            base_value_div: Divisor::pow10(s.size_decimals + s.price_decimals - s.value_decimals),
            value_to_size: Rescale::new(s.value_decimals, s.size_decimals),
            value_one: 10f64.powi(s.value_decimals as i32),
            spec,
        })
    }
}

/// One account in raw units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedAccount {
    pub equity: i128,
    pub upnl: i128,
    /// (initial, maintenance) total collateral.
    pub total_collateral: PerMode<i128>,
    /// (initial, maintenance) margin requirement (weighted borrows + perp requirements).
    pub requirement: PerMode<i128>,
    /// The weighted borrows inside `requirement`.
    pub borrows: PerMode<i128>,
    pub isolated_liquidatable: bool,
    /// Some input or intermediate left the integer range: the account has no result.
    pub overflow: bool,
}

impl FixedAccount {
    /// The liquidation test: total collateral < maintenance requirement (strict), or an
    /// isolated position below its own.
    pub fn liquidatable(&self) -> bool {
        self.total_collateral[1] < self.requirement[1] || self.isolated_liquidatable
    }
}

/// Prices of one call in raw units.
#[derive(Debug, Clone)]
pub struct FixedPrices {
    asset: Vec<i128>,
    mark: Vec<i128>,
}

impl FixedPrices {
    /// Each price rounded to the nearest price unit; it must fit 63 bits.
    pub fn new(fx: &FixedUniverse, ctx: &MarginContext<'_>) -> Result<Self> {
        let one = 10f64.powi(fx.spec.price_decimals as i32);
        let raw = |x: f64, field: String| -> Result<i128> {
            let r = (x * one).round();
            if r >= 9.2e18 {
                return Err(CoreError::price(field, format!("{x} exceeds the fixed-point price range")));
            }
            Ok(r as i64 as i128)
        };
        let u = ctx.universe;
        Ok(FixedPrices {
            asset: (0..u.n_assets())
                .map(|i| raw(ctx.prices.asset[i], format!("asset prices[{}]", u.assets.symbol[i])))
                .collect::<Result<_>>()?,
            mark: (0..u.n_markets())
                .map(|k| raw(ctx.prices.mark[k], format!("marks[{}]", u.markets.symbol[k])))
                .collect::<Result<_>>()?,
        })
    }
}

/// Checked arithmetic that remembers an overflow instead of panicking.
struct Ops {
    overflow: bool,
}

impl Ops {
    #[inline(always)]
    fn mul(&mut self, a: i128, b: i128) -> i128 {
        a.checked_mul(b).unwrap_or_else(|| {
            self.overflow = true;
            0
        })
    }

    #[inline(always)]
    fn add(&mut self, a: i128, b: i128) -> i128 {
        a.checked_add(b).unwrap_or_else(|| {
            self.overflow = true;
            0
        })
    }

    /// round(x × scale) as an integer below 2^63 in magnitude.
    #[inline(always)]
    fn raw(&mut self, x: f64, scale: f64) -> i128 {
        let r = (x * scale).round();
        if r.abs() < 9.2e18 {
            r as i64 as i128
        } else {
            self.overflow = true;
            0
        }
    }
}

/// One account under the fixed-point rules (module docs), rows resolved through `ctx`'s remap.
pub fn evaluate_account(
    rows: AccountRows<'_>,
    ctx: &MarginContext<'_>,
    fx: &FixedUniverse,
    px: &FixedPrices,
) -> FixedAccount {
    let mut o = Ops { overflow: false };
    let mut r = FixedAccount::default();
    let t = &fx.terms;
    let w_one = fx.weight_one;

    for (&code, &qty) in rows.bal_code.iter().zip(rows.bal_qty) {
        let i = ctx.remap.asset[code as usize] as usize;
        let a = &fx.assets[i];
        let amount = o.raw(qty, a.scale);
        if amount == 0 {
            continue;
        }
        let price = px.asset[i];
        let product = o.mul(amount, price);
        let value = if amount < 0 && fx.spec.borrow_rounding == BorrowRounding::Up {
            a.value_div.floor(product)
        } else {
            a.value_div.trunc(product)
        };
        r.equity = o.add(r.equity, value);
        let size = a.to_size.apply(amount.unsigned_abs());
        let root = if a.imf > 0 { t.root(size) } else { 0 };
        for m in 0..2 {
            if amount > 0 {
                let mut base = a.weight[m];
                if m == 0 && a.scale_start > 0 {
                    // get_scaled_initial_asset_weight: deposits valued at the oracle price
                    let deposits = a.value_div.trunc(o.mul(a.deposits as i128, price)) as u128;
                    if deposits >= a.scale_start {
                        base = (base as u128 * a.scale_start / deposits) as u64;
                    }
                }
                let w = t.discount(root, a.imf, base);
                let weighted = if w == w_one { value } else { fx.weight_div.trunc(o.mul(value, w as i128)) };
                r.total_collateral[m] = o.add(r.total_collateral[m], weighted);
            } else {
                let w = t.premium(root, a.imf, a.liability_weight[m]);
                let weighted = if w == w_one { value } else { fx.weight_div.trunc(o.mul(value, w as i128)) };
                r.requirement[m] = o.add(r.requirement[m], -weighted);
                r.borrows[m] = o.add(r.borrows[m], -weighted);
            }
        }
    }

    let positions = rows.pos_code.iter().zip(rows.pos_qty).zip(rows.pos_entry).zip(rows.pos_isolated);
    for (((&code, &qty), &entry), &isolated) in positions {
        let k = ctx.remap.market[code as usize] as usize;
        let mk = &fx.markets[k];
        let base = o.raw(qty, mk.scale);
        let (mark, quote) = (px.mark[k], px.asset[mk.settle as usize]);
        // quote_asset_amount: −base × entry in value units (the cost of the position)
        let entry_raw = o.raw(entry, fx.price_one as f64);
        let cost = fx.base_value_div.trunc(o.mul(base, entry_raw));
        // calculate_base_asset_value_and_pnl_with_oracle_price
        let value = fx.base_value_div.trunc(o.mul(base, mark));
        let pnl = o.add(value, -cost);
        // calculate_perp_liability_value × strict quote price
        let liability = fx.base_value_div.trunc(o.mul(base.abs(), mark));
        let liability = fx.price_div.trunc(o.mul(liability, quote));
        let root = if mk.imf > 0 { t.root(base.unsigned_abs()) } else { 0 };
        let upnl = fx.price_div.trunc(o.mul(pnl, quote));
        r.upnl = o.add(r.upnl, upnl);
        r.equity = o.add(r.equity, upnl);
        let mut req = [0i128; 2];
        let mut weighted = [0i128; 2];
        for m in 0..2 {
            let ratio = t.premium(root, mk.imf, mk.ratio[m]);
            req[m] = fx.weight_div.trunc(o.mul(liability, ratio as i128));
            // get_unrealized_asset_weight
            let w = if pnl > 0 {
                let w = mk.upnl_weight[m];
                if m == 0 && w > 0 && mk.upnl_imf > 0 {
                    let size = fx.value_to_size.apply(pnl.unsigned_abs());
                    t.discount(t.root(size), mk.upnl_imf, w)
                } else {
                    w
                }
            } else {
                w_one
            };
            let mut x = pnl;
            if w != w_one {
                x = fx.weight_div.trunc(o.mul(x, w as i128));
            }
            if quote != fx.price_one {
                x = fx.price_div.trunc(o.mul(x, quote));
            }
            if m == 0 {
                x = x.min(mk.upnl_cap_initial);
            }
            weighted[m] = x;
        }
        if isolated > 0.0 {
            let s = &fx.assets[mk.settle as usize];
            let amount = o.raw(isolated, s.scale);
            let margin = s.value_div.trunc(o.mul(amount, quote));
            r.equity = o.add(r.equity, margin);
            if o.add(margin, weighted[1]) < req[1] {
                r.isolated_liquidatable = true;
            }
        } else {
            for m in 0..2 {
                r.requirement[m] = o.add(r.requirement[m], req[m]);
                r.total_collateral[m] = o.add(r.total_collateral[m], weighted[m]);
            }
        }
    }
    r.overflow = o.overflow;
    r
}

/// The raw columns of a fixed-point evaluation (value units, i64).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FixedColumns {
    pub total_collateral_initial: Vec<i64>,
    pub total_collateral_maint: Vec<i64>,
    pub requirement_initial: Vec<i64>,
    pub requirement_maint: Vec<i64>,
}

const CHUNK: usize = 2048;

/// Every account of the book under the fixed-point rules: the standard columns (exact
/// multiples of the value unit) and the raw totals. An account whose numbers leave the
/// integer range (|raw| ≥ 2^63) is a typed error naming it.
pub fn evaluate(
    book: &GroupedBook,
    ctx: &MarginContext<'_>,
    fx: &FixedUniverse,
) -> Result<(MarginColumns, FixedColumns)> {
    let px = FixedPrices::new(fx, ctx)?;
    let n = book.n_accounts();
    let mut out = MarginColumns {
        equity: column(n),
        upnl: column(n),
        adj_equity_initial: column(n),
        adj_equity_maint: column(n),
        im: column(n),
        mm: column(n),
        free_collateral: column(n),
        margin_ratio: column(n),
        liquidatable: column(n),
        bankrupt: column(n),
    };
    let mut raw = FixedColumns {
        total_collateral_initial: column(n),
        total_collateral_maint: column(n),
        requirement_initial: column(n),
        requirement_maint: column(n),
    };
    let one = fx.value_one;
    let bad: Option<usize> = (
        (
            out.equity.par_chunks_mut(CHUNK),
            out.upnl.par_chunks_mut(CHUNK),
            out.adj_equity_initial.par_chunks_mut(CHUNK),
            out.adj_equity_maint.par_chunks_mut(CHUNK),
            out.im.par_chunks_mut(CHUNK),
            out.mm.par_chunks_mut(CHUNK),
            out.free_collateral.par_chunks_mut(CHUNK),
            out.margin_ratio.par_chunks_mut(CHUNK),
            out.liquidatable.par_chunks_mut(CHUNK),
            out.bankrupt.par_chunks_mut(CHUNK),
        )
            .into_par_iter(),
        (
            raw.total_collateral_initial.par_chunks_mut(CHUNK),
            raw.total_collateral_maint.par_chunks_mut(CHUNK),
            raw.requirement_initial.par_chunks_mut(CHUNK),
            raw.requirement_maint.par_chunks_mut(CHUNK),
        )
            .into_par_iter(),
    )
        .into_par_iter()
        .enumerate()
        .map(|(c, ((eq, up, adj_i, adj_m, im, mm, free, ratio, liq, bankrupt), (tci, tcm, rqi, rqm)))| {
            let mut bad = None;
            for j in 0..eq.len() {
                let a = evaluate_account(book.account(c * CHUNK + j), ctx, fx, &px);
                let fits = |x: i128| i64::try_from(x).is_ok();
                let all = [
                    a.equity,
                    a.upnl,
                    a.total_collateral[0],
                    a.total_collateral[1],
                    a.requirement[0],
                    a.requirement[1],
                ];
                if a.overflow || !all.iter().all(|&x| fits(x)) {
                    bad = bad.or(Some(c * CHUNK + j));
                    continue;
                }
                let f = |x: i128| x as f64 / one;
                let m = AccountMargin {
                    equity: f(a.equity),
                    upnl: f(a.upnl),
                    adj_equity: [f(a.total_collateral[0] - a.borrows[0]), f(a.total_collateral[1] - a.borrows[1])],
                    requirement: [f(a.requirement[0] - a.borrows[0]), f(a.requirement[1] - a.borrows[1])],
                    isolated_liquidatable: a.isolated_liquidatable,
                };
                eq[j] = m.equity;
                up[j] = m.upnl;
                adj_i[j] = m.adj_equity[0];
                adj_m[j] = m.adj_equity[1];
                im[j] = m.requirement[0];
                mm[j] = m.requirement[1];
                free[j] = f(a.total_collateral[0] - a.requirement[0]);
                ratio[j] = m.margin_ratio();
                liq[j] = a.liquidatable();
                bankrupt[j] = a.equity < 0;
                tci[j] = a.total_collateral[0] as i64;
                tcm[j] = a.total_collateral[1] as i64;
                rqi[j] = a.requirement[0] as i64;
                rqm[j] = a.requirement[1] as i64;
            }
            bad
        })
        .flatten()
        .min();
    if let Some(a) = bad {
        return Err(CoreError::config(
            "arithmetic",
            format!("account {}: a value leaves the fixed-point range (|raw| < 2^63)", book.accounts[a]),
        ));
    }
    Ok((out, raw))
}
