//! The risk configuration compiled into flat tables once: hot loops index arrays by
//! asset / market number and never look up a symbol.

use std::collections::HashMap;

use crate::brackets::{Bracket, BracketTable, Shape};
use crate::contract::Contract;
use crate::error::{CoreError, Result};
use crate::haircut::HaircutTable;
use crate::limits::{is_price, MAX_AMOUNT, MAX_FACTOR, MAX_PRICE, MIN_PRICE};
use crate::mode::{Mode, PerMode};
use crate::options::OptionSpec;
use crate::orders::OrderRule;

/// A collateral asset as configured (docs/MODEL.md "Assets").
#[derive(Debug, Clone, PartialEq)]
pub struct AssetSpec {
    pub symbol: String,
    pub price: f64,
    pub weight: PerMode<f64>,
    pub liability_weight: PerMode<f64>,
    pub haircut_tiers: Vec<(f64, f64)>,
    pub imf_factor: f64,
    /// Scaled initial weight (Drift `scale_initial_asset_weight_start`): above this USD
    /// value of `total_deposits`, the initial weight is scaled by start / deposit value
    /// (docs/MODEL.md "Scaled initial weight"); 0 = off.
    pub scale_initial_weight_start: f64,
    /// The venue's total deposits of the asset (asset units), for the scaled initial weight.
    pub total_deposits: f64,
    /// Two-sided valuation (docs/MODEL.md "Two-sided valuation"): `(bid, ask)` in USD at the
    /// universe's prices; a positive holding counts at the bid, a borrow and a requirement
    /// in this asset at the ask. `None`: both are `price`.
    pub bid_ask: Option<(f64, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarketKind {
    Perp,
    Future,
    /// A European call or put (docs/MODEL.md "Options"), priced with Black-76 unless a mark is given.
    Option,
}

impl MarketKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "perp" => Some(MarketKind::Perp),
            "future" => Some(MarketKind::Future),
            "option" => Some(MarketKind::Option),
            _ => None,
        }
    }
}

/// A derivative market as configured (docs/MODEL.md "Markets"). `settle` names an asset.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketSpec {
    pub symbol: String,
    pub kind: MarketKind,
    pub settle: String,
    pub underlying: String,
    pub mark: f64,
    pub contract_size: f64,
    pub inverse: bool,
    pub brackets: Vec<Bracket>,
    pub imf_factor: f64,
    pub upnl_weight: PerMode<f64>,
    /// Size discount of a positive uPnL's initial weight by sqrt(uPnL in settle units)
    /// (Drift `unrealized_pnl_imf_factor`, docs/MODEL.md "uPnL size discount"); 0 = off.
    pub upnl_imf_factor: f64,
    /// At most this weighted positive uPnL (USD) counts at initial margin per position
    /// (Drift `MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN`); +inf = no cap.
    pub upnl_cap_initial: f64,
    /// Contract terms of an option market (`kind = Option`); `None` otherwise.
    pub option: Option<OptionSpec>,
    /// How open orders lock initial margin (docs/MODEL.md "Open orders").
    pub orders: OrderRule,
    /// Venue rules of a perp or future: requirement shapes, valuation basis, fee reserve.
    pub rules: MarketRules,
}

/// What a position's maintenance requirement is valued at (docs/MODEL.md "Valuation basis").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Basis {
    /// The notional at the mark (the default).
    #[default]
    Mark,
    /// The notional at the position's entry price (Bybit).
    Entry,
}

impl Basis {
    pub const NAMES: [(&'static str, Basis); 2] = [("mark", Basis::Mark), ("entry", Basis::Entry)];

    pub fn parse(s: &str) -> Option<Self> {
        Self::NAMES.iter().find(|(n, _)| *n == s).map(|&(_, x)| x)
    }
}

/// A perp's or future's venue rules (docs/MODEL.md "Requirement shapes", "Valuation basis",
/// "Liquidation-fee reserve"); the default is the plain model.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MarketRules {
    /// (initial, maintenance) requirement shape.
    pub shape: PerMode<Shape>,
    /// (initial, maintenance) growth of the rate per unit of size (`SizeScaled` only).
    pub rate_slope: PerMode<f64>,
    pub maint_basis: Basis,
    /// Taker fee rate reserved on the notional at the position's bankruptcy price.
    pub liquidation_fee: f64,
}

#[derive(Debug, Clone)]
pub struct AssetTable {
    pub symbol: Vec<String>,
    pub price: Vec<f64>,
    pub weight: PerMode<Vec<f64>>,
    pub liability_weight: PerMode<Vec<f64>>,
    pub imf_factor: Vec<f64>,
    pub scale_initial_weight_start: Vec<f64>,
    pub total_deposits: Vec<f64>,
    pub haircuts: HaircutTable,
    /// (bid / price, ask / price) per asset; (1, 1) without two-sided valuation.
    pub side_factor: Vec<[f64; 2]>,
}

#[derive(Debug, Clone)]
pub struct MarketTable {
    pub symbol: Vec<String>,
    pub kind: Vec<MarketKind>,
    pub settle: Vec<u32>,
    pub underlying: Vec<u32>,
    pub mark: Vec<f64>,
    pub contract_size: Vec<f64>,
    pub inverse: Vec<bool>,
    pub imf_factor: Vec<f64>,
    pub upnl_weight: PerMode<Vec<f64>>,
    pub upnl_imf_factor: Vec<f64>,
    pub upnl_cap_initial: Vec<f64>,
    pub brackets: BracketTable,
    /// Option terms by market; zeros for perps and futures (read only where kind = Option).
    pub option: Vec<OptionSpec>,
    /// Open-order rule by market (read only for books with orders).
    pub order_rule: Vec<OrderRule>,
    pub rules: Vec<MarketRules>,
}

/// The compiled universe. `underlyings` are the distinct index names of the markets, in
/// order of first appearance.
#[derive(Debug, Clone)]
pub struct Universe {
    pub assets: AssetTable,
    pub markets: MarketTable,
    pub underlyings: Vec<String>,
    /// Reference price of each underlying (USD): the price of the asset of the same symbol,
    /// else the mark of its first perp or future, unless set by
    /// [`Universe::with_underlying_prices`]; NaN when there is no source.
    pub underlying_price: Vec<f64>,
    /// Where each underlying's price is read at evaluation time, and the factor from that
    /// source's price to the underlying's (1 unless a reference price was set).
    pub underlying_source: Vec<(UnderlyingSource, f64)>,
    /// The constants the margin kernel reads per row, packed per asset / market.
    pub asset_hot: Vec<AssetHot>,
    pub market_hot: Vec<MarketHot>,
    /// Whether any market reserves a liquidation fee (the kernel's second pass).
    pub has_fee_reserve: bool,
    /// Whether any asset carries a bid and an ask.
    pub two_sided: bool,
    /// Whether any rule beyond the plain model's brackets is in use (two-sided assets, fee
    /// reserves, size-scaled rates, entry-basis maintenance, Drift's uPnL rule and scaled
    /// initial weight): the kernel's instantiation.
    pub venue_rules: bool,
}

/// Per-asset constants of the margin kernel, side by side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AssetHot {
    pub weight: PerMode<f64>,
    pub liability_weight: PerMode<f64>,
    pub imf_factor: f64,
    pub has_tiers: bool,
    /// Whether the initial weight is scaled by the venue's deposits (`scale_initial_weight_start`
    /// > 0; the values are read from the asset table only then, keeping this record small).
    pub scaled_initial: bool,
    /// bid / price and ask / price (1, 1 without two-sided valuation): a price override
    /// moves the bid and the ask with it.
    pub side_factor: [f64; 2],
    pub two_sided: bool,
}

/// Per-market constants of the margin kernel, side by side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarketHot {
    /// Contract size and payoff: the market's contract arithmetic ([`crate::contract`]).
    pub contract: Contract,
    pub imf_factor: f64,
    pub upnl_weight: PerMode<f64>,
    /// The first bracket's rates (a size premium scales from them).
    pub base_rate: PerMode<f64>,
    /// The market's tier range in the bracket table.
    pub tiers: (u32, u32),
    pub settle: u32,
    /// Whether a profit's initial weight has the uPnL size discount or cap (the values are
    /// read from the market table only then, keeping this record small).
    pub upnl_rule: bool,
    /// Requirement shape per mode, the size slope of a `SizeScaled` mode.
    pub shape: PerMode<Shape>,
    pub rate_slope: PerMode<f64>,
    /// Whether any mode is `SizeScaled` (the kernel's one extra branch).
    pub scaled: bool,
    /// Maintenance valued at the entry price instead of the mark.
    pub entry_basis: bool,
    /// Closing-fee rate reserved at the bankruptcy price (0: none).
    pub liquidation_fee: f64,
}

impl MarketHot {
    /// Whether the market is an option (margined by its own rule, [`crate::options`]).
    #[inline]
    pub fn is_option(&self) -> bool {
        self.contract.is_option()
    }
}

/// The per-call source of an underlying's price: the asset of the same symbol, else its
/// first perp or future. Options take their forward from it, so a price override of the
/// asset or of the underlying moves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnderlyingSource {
    Asset(u32),
    Market(u32),
    None,
}

fn check_weight(field: String, w: f64, lo: f64, hi: f64) -> Result<()> {
    if !w.is_finite() || w < lo || w > hi {
        let range = if hi.is_infinite() { format!("≥ {lo}") } else { format!("in [{lo}, {hi}]") };
        return Err(CoreError::config(field, format!("{w} must be {range}")));
    }
    Ok(())
}

impl Universe {
    pub fn new(assets: &[AssetSpec], markets: &[MarketSpec]) -> Result<Self> {
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut at = AssetTable {
            symbol: vec![],
            price: vec![],
            weight: [vec![], vec![]],
            liability_weight: [vec![], vec![]],
            imf_factor: vec![],
            scale_initial_weight_start: vec![],
            total_deposits: vec![],
            haircuts: HaircutTable::default(),
            side_factor: vec![],
        };
        for (i, a) in assets.iter().enumerate() {
            let f = format!("assets[{}]", a.symbol);
            if a.symbol.is_empty() {
                return Err(CoreError::config(format!("assets[{i}].symbol"), "must not be empty"));
            }
            if index.insert(a.symbol.as_str(), i).is_some() {
                return Err(CoreError::config(format!("{f}.symbol"), "duplicate asset symbol"));
            }
            if !a.price.is_finite() || a.price < 0.0 {
                return Err(CoreError::config(format!("{f}.price"), format!("{} must be finite and ≥ 0", a.price)));
            }
            if a.price > MAX_PRICE {
                return Err(CoreError::config(format!("{f}.price"), format!("{} must be ≤ {MAX_PRICE:e}", a.price)));
            }
            check_weight(format!("{f}.weight_initial"), a.weight[0], 0.0, 1.0)?;
            check_weight(format!("{f}.weight_maint"), a.weight[1], 0.0, 1.0)?;
            check_weight(format!("{f}.liability_weight_initial"), a.liability_weight[0], 1.0, MAX_FACTOR)?;
            check_weight(format!("{f}.liability_weight_maint"), a.liability_weight[1], 1.0, MAX_FACTOR)?;
            check_weight(format!("{f}.imf_factor"), a.imf_factor, 0.0, MAX_FACTOR)?;
            check_weight(format!("{f}.scale_initial_weight_start"), a.scale_initial_weight_start, 0.0, MAX_AMOUNT)?;
            check_weight(format!("{f}.total_deposits"), a.total_deposits, 0.0, MAX_AMOUNT)?;
            initial_is_stricter(&f, "weight", a.weight, false)?;
            initial_is_stricter(&f, "liability_weight", a.liability_weight, true)?;
            at.haircuts.push(&a.haircut_tiers, &f)?;
            at.side_factor.push(check_bid_ask(a, &f)?);
            at.symbol.push(a.symbol.clone());
            at.price.push(a.price);
            for m in 0..2 {
                at.weight[m].push(a.weight[m]);
                at.liability_weight[m].push(a.liability_weight[m]);
            }
            at.imf_factor.push(a.imf_factor);
            at.scale_initial_weight_start.push(a.scale_initial_weight_start);
            at.total_deposits.push(a.total_deposits);
        }

        let mut mt = MarketTable {
            symbol: vec![],
            kind: vec![],
            settle: vec![],
            underlying: vec![],
            mark: vec![],
            contract_size: vec![],
            inverse: vec![],
            imf_factor: vec![],
            upnl_weight: [vec![], vec![]],
            upnl_imf_factor: vec![],
            upnl_cap_initial: vec![],
            brackets: BracketTable::new(),
            option: vec![],
            order_rule: vec![],
            rules: vec![],
        };
        let mut market_index: HashMap<&str, usize> = HashMap::new();
        let mut underlyings: Vec<String> = vec![];
        for (i, m) in markets.iter().enumerate() {
            let f = format!("markets[{}]", m.symbol);
            if m.symbol.is_empty() {
                return Err(CoreError::config(format!("markets[{i}].symbol"), "must not be empty"));
            }
            if market_index.insert(m.symbol.as_str(), i).is_some() {
                return Err(CoreError::config(format!("{f}.symbol"), "duplicate market symbol"));
            }
            let settle = *index
                .get(m.settle.as_str())
                .ok_or_else(|| CoreError::config(format!("{f}.settle"), format!("unknown asset '{}'", m.settle)))?;
            if m.underlying.is_empty() {
                return Err(CoreError::config(format!("{f}.underlying"), "must not be empty"));
            }
            // Option terms first: a bad expiry or iv is named, not the model mark it spoils.
            let option = check_option(m, &f)?;
            if !m.mark.is_finite() || m.mark < 0.0 || (m.mark == 0.0 && m.kind != MarketKind::Option) {
                return Err(CoreError::config(format!("{f}.mark"), format!("{} must be finite and > 0", m.mark)));
            }
            // Marks of perps and futures divide (inverse notional); an option's only multiplies.
            let mark_ok = if m.kind == MarketKind::Option { m.mark <= MAX_PRICE } else { is_price(m.mark, false) };
            if !mark_ok {
                return Err(CoreError::config(
                    format!("{f}.mark"),
                    format!("{} must lie in [{MIN_PRICE:e}, {MAX_PRICE:e}]", m.mark),
                ));
            }
            if !m.contract_size.is_finite() || m.contract_size <= 0.0 {
                return Err(CoreError::config(
                    format!("{f}.contract_size"),
                    format!("{} must be finite and > 0", m.contract_size),
                ));
            }
            if !is_price(m.contract_size, false) {
                return Err(CoreError::config(
                    format!("{f}.contract_size"),
                    format!("{} must lie in [{MIN_PRICE:e}, {MAX_PRICE:e}]", m.contract_size),
                ));
            }
            check_weight(format!("{f}.upnl_weight_initial"), m.upnl_weight[0], 0.0, 1.0)?;
            check_weight(format!("{f}.upnl_weight_maint"), m.upnl_weight[1], 0.0, 1.0)?;
            initial_is_stricter(&f, "upnl_weight", m.upnl_weight, false)?;
            check_weight(format!("{f}.imf_factor"), m.imf_factor, 0.0, MAX_FACTOR)?;
            m.orders.check(&f)?;
            check_weight(format!("{f}.upnl_imf_factor"), m.upnl_imf_factor, 0.0, MAX_FACTOR)?;
            if m.upnl_cap_initial.is_nan() || m.upnl_cap_initial < 0.0 {
                return Err(CoreError::config(
                    format!("{f}.upnl_cap_initial"),
                    format!("{} must be ≥ 0 (inf = no cap)", m.upnl_cap_initial),
                ));
            }
            check_rules(m, &f)?;
            if m.kind == MarketKind::Option && m.brackets.is_empty() {
                // Options are margined by their own rule; an empty bracket keeps the table aligned.
                mt.brackets.push(&[Bracket { bound: f64::INFINITY, imr: 0.0, mmr: 0.0 }], &f)?;
            } else {
                mt.brackets.push_shaped(&m.brackets, m.rules.shape, &f)?;
            }
            let u = match underlyings.iter().position(|x| x == &m.underlying) {
                Some(u) => u,
                None => {
                    underlyings.push(m.underlying.clone());
                    underlyings.len() - 1
                }
            };
            mt.symbol.push(m.symbol.clone());
            mt.kind.push(m.kind);
            mt.settle.push(settle as u32);
            mt.underlying.push(u as u32);
            mt.mark.push(m.mark);
            mt.contract_size.push(m.contract_size);
            mt.inverse.push(m.inverse);
            mt.imf_factor.push(m.imf_factor);
            mt.upnl_weight[0].push(m.upnl_weight[0]);
            mt.upnl_weight[1].push(m.upnl_weight[1]);
            mt.upnl_imf_factor.push(m.upnl_imf_factor);
            mt.upnl_cap_initial.push(m.upnl_cap_initial);
            mt.option.push(option);
            mt.order_rule.push(m.orders);
            mt.rules.push(m.rules);
        }
        let sources: Vec<UnderlyingSource> = underlyings
            .iter()
            .enumerate()
            .map(|(u, name)| match index.get(name.as_str()) {
                Some(&i) => UnderlyingSource::Asset(i as u32),
                None => (0..mt.symbol.len())
                    .find(|&k| mt.underlying[k] as usize == u && mt.kind[k] != MarketKind::Option)
                    .map_or(UnderlyingSource::None, |k| UnderlyingSource::Market(k as u32)),
            })
            .collect();
        let mut out = Universe {
            assets: at,
            markets: mt,
            underlyings,
            underlying_price: vec![],
            underlying_source: sources.iter().map(|&s| (s, 1.0)).collect(),
            asset_hot: vec![],
            market_hot: vec![],
            has_fee_reserve: false,
            two_sided: false,
            venue_rules: false,
        };
        out.asset_hot = (0..out.n_assets())
            .map(|i| {
                let a = &out.assets;
                AssetHot {
                    weight: [a.weight[0][i], a.weight[1][i]],
                    liability_weight: [a.liability_weight[0][i], a.liability_weight[1][i]],
                    imf_factor: a.imf_factor[i],
                    has_tiers: a.haircuts.has_tiers(i),
                    scaled_initial: a.scale_initial_weight_start[i] > 0.0,
                    side_factor: a.side_factor[i],
                    two_sided: a.side_factor[i] != [1.0, 1.0],
                }
            })
            .collect();
        out.market_hot = (0..out.n_markets())
            .map(|k| {
                let m = &out.markets;
                let (lo, hi) = m.brackets.range(k);
                MarketHot {
                    contract: Contract::new(m.contract_size[k], m.inverse[k], m.kind[k] == MarketKind::Option),
                    imf_factor: m.imf_factor[k],
                    upnl_weight: [m.upnl_weight[0][k], m.upnl_weight[1][k]],
                    base_rate: [m.brackets.base_rate(k, Mode::Initial), m.brackets.base_rate(k, Mode::Maint)],
                    tiers: (lo as u32, hi as u32),
                    settle: m.settle[k],
                    upnl_rule: m.upnl_imf_factor[k] > 0.0 || m.upnl_cap_initial[k] != f64::INFINITY,
                    shape: m.rules[k].shape,
                    rate_slope: m.rules[k].rate_slope,
                    scaled: m.rules[k].shape.contains(&Shape::SizeScaled),
                    entry_basis: m.rules[k].maint_basis == Basis::Entry,
                    liquidation_fee: m.rules[k].liquidation_fee,
                }
            })
            .collect();
        out.has_fee_reserve = out.market_hot.iter().any(|h| h.liquidation_fee > 0.0);
        out.two_sided = out.asset_hot.iter().any(|a| a.two_sided);
        out.venue_rules = out.two_sided
            || out.has_fee_reserve
            || out.market_hot.iter().any(|h| h.scaled || h.entry_basis || h.upnl_rule)
            || out.asset_hot.iter().any(|a| a.scaled_initial);
        out.underlying_price =
            (0..sources.len()).map(|u| out.source_price(u, &out.assets.price, &out.markets.mark)).collect();
        out.check_underlying_prices()?;
        Ok(out)
    }

    #[inline]
    fn source_price(&self, u: usize, asset_prices: &[f64], marks: &[f64]) -> f64 {
        match self.underlying_source[u].0 {
            UnderlyingSource::Asset(i) => asset_prices[i as usize],
            UnderlyingSource::Market(k) => marks[k as usize],
            UnderlyingSource::None => f64::NAN,
        }
    }

    /// The price of underlying `u` at one call's asset prices and marks.
    #[inline]
    pub fn underlying_spot(&self, u: usize, asset_prices: &[f64], marks: &[f64]) -> f64 {
        self.source_price(u, asset_prices, marks) * self.underlying_source[u].1
    }

    /// Replaces the reference underlying prices (one per underlying, in `underlyings` order).
    pub fn with_underlying_prices(mut self, prices: Vec<f64>) -> Result<Self> {
        if prices.len() != self.underlyings.len() {
            return Err(CoreError::config(
                "underlying_prices",
                format!("{} values given for {} underlyings", prices.len(), self.underlyings.len()),
            ));
        }
        for (u, &p) in prices.iter().enumerate() {
            let base = self.source_price(u, &self.assets.price, &self.markets.mark);
            if !is_price(p, false) {
                return Err(CoreError::config(
                    format!("underlying_prices[{}]", self.underlyings[u]),
                    format!("{p} must be finite and > 0 (within [{MIN_PRICE:e}, {MAX_PRICE:e}])"),
                ));
            }
            self.underlying_source[u].1 = if base > 0.0 { p / base } else { 1.0 };
        }
        self.underlying_price = prices;
        self.check_underlying_prices()?;
        Ok(self)
    }

    /// An underlying carrying options needs a finite positive reference price.
    fn check_underlying_prices(&self) -> Result<()> {
        for (k, kind) in self.markets.kind.iter().enumerate() {
            let u = self.markets.underlying[k] as usize;
            let p = self.underlying_price[u];
            if *kind == MarketKind::Option && !(p.is_finite() && p > 0.0) {
                return Err(CoreError::config(
                    format!("markets[{}].underlying", self.markets.symbol[k]),
                    format!(
                        "options on '{}' need an asset of that symbol or a perp/future on it with a price > 0",
                        self.underlyings[u]
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn n_assets(&self) -> usize {
        self.assets.symbol.len()
    }

    pub fn n_markets(&self) -> usize {
        self.markets.symbol.len()
    }

    /// Market `k`'s contract arithmetic ([`crate::contract`]).
    #[inline]
    pub fn contract(&self, k: usize) -> Contract {
        self.market_hot[k].contract
    }

    /// Whether any market is an option.
    pub fn has_options(&self) -> bool {
        self.markets.kind.contains(&MarketKind::Option)
    }
}

/// A market's venue rules are in range and apply to its kind: shapes, slopes, a valuation
/// basis and a fee reserve are rules of perps and futures (an option has its own margin).
fn check_rules(m: &MarketSpec, f: &str) -> Result<()> {
    let r = &m.rules;
    let names = ["im_shape", "mm_shape"];
    let slopes = ["rate_slope_initial", "rate_slope_maint"];
    if m.kind == MarketKind::Option {
        let plain = MarketRules::default();
        if let Some(i) = (0..2).find(|&i| r.shape[i] != Shape::Continuous) {
            return Err(CoreError::config(
                format!("{f}.{}", names[i]),
                format!("'{}' applies to perps and futures; an option is margined by its own rule", r.shape[i].name()),
            ));
        }
        if r.maint_basis != plain.maint_basis {
            return Err(CoreError::config(format!("{f}.maint_basis"), "applies to perps and futures, not options"));
        }
        if r.liquidation_fee != 0.0 {
            return Err(CoreError::config(format!("{f}.liquidation_fee"), "applies to perps and futures, not options"));
        }
    }
    for i in 0..2 {
        check_weight(format!("{f}.{}", slopes[i]), r.rate_slope[i], 0.0, MAX_FACTOR)?;
        if r.rate_slope[i] != 0.0 && r.shape[i] != Shape::SizeScaled {
            return Err(CoreError::config(
                format!("{f}.{}", slopes[i]),
                format!(
                    "{} is a slope of the size_scaled shape; {} is '{}'",
                    r.rate_slope[i],
                    names[i],
                    r.shape[i].name()
                ),
            ));
        }
    }
    if !r.liquidation_fee.is_finite() || !(0.0..1.0).contains(&r.liquidation_fee) {
        return Err(CoreError::config(
            format!("{f}.liquidation_fee"),
            format!("{} must be in [0, 1)", r.liquidation_fee),
        ));
    }
    Ok(())
}

/// An asset's bid and ask: finite, ≥ 0, bid ≤ ask, and a price > 0 to scale them by.
/// Returns (bid / price, ask / price).
fn check_bid_ask(a: &AssetSpec, f: &str) -> Result<[f64; 2]> {
    let Some((bid, ask)) = a.bid_ask else {
        return Ok([1.0, 1.0]);
    };
    for (name, x) in [("bid", bid), ("ask", ask)] {
        if !x.is_finite() || !(0.0..=MAX_PRICE).contains(&x) {
            return Err(CoreError::config(format!("{f}.{name}"), format!("{x} must be finite in [0, {MAX_PRICE:e}]")));
        }
    }
    if bid > ask {
        return Err(CoreError::config(format!("{f}.bid"), format!("{bid} is above the ask {ask}")));
    }
    if a.price <= 0.0 {
        return Err(CoreError::config(
            format!("{f}.price"),
            format!("{} must be > 0 with a bid and an ask (they move with it)", a.price),
        ));
    }
    Ok([bid / a.price, ask / a.price])
}

/// Option terms are present exactly on option markets and within range.
fn check_option(m: &MarketSpec, f: &str) -> Result<OptionSpec> {
    let zero = OptionSpec {
        call: true,
        strike: 0.0,
        expiry: 0.0,
        iv: 0.0,
        rate: 0.0,
        im_base: 0.0,
        im_min: 0.0,
        mm_base: 0.0,
    };
    let o = match (m.kind, m.option) {
        (MarketKind::Option, Some(o)) => o,
        (MarketKind::Option, None) => {
            return Err(CoreError::config(format!("{f}.option_type"), "an option market needs its terms"))
        }
        (_, Some(_)) => {
            return Err(CoreError::config(format!("{f}.option_type"), "only option markets have option terms"))
        }
        (_, None) => return Ok(zero),
    };
    let positive = |name: &str, x: f64, zero_ok: bool| -> Result<()> {
        if !x.is_finite() || x < 0.0 || (x == 0.0 && !zero_ok) {
            let need = if zero_ok { "finite and ≥ 0" } else { "finite and > 0" };
            return Err(CoreError::config(format!("{f}.{name}"), format!("{x} must be {need}")));
        }
        Ok(())
    };
    positive("strike", o.strike, false)?;
    if o.strike > MAX_PRICE {
        return Err(CoreError::config(format!("{f}.strike"), format!("{} must be ≤ {MAX_PRICE:e}", o.strike)));
    }
    positive("expiry", o.expiry, true)?;
    positive("iv", o.iv, false)?;
    if !o.rate.is_finite() {
        return Err(CoreError::config(format!("{f}.rate"), format!("{} must be finite", o.rate)));
    }
    check_weight(format!("{f}.im_base"), o.im_base, 0.0, MAX_FACTOR)?;
    check_weight(format!("{f}.im_min"), o.im_min, 0.0, MAX_FACTOR)?;
    check_weight(format!("{f}.mm_base"), o.mm_base, 0.0, MAX_FACTOR)?;
    if o.im_min < o.mm_base {
        return Err(CoreError::config(
            format!("{f}.im_min"),
            format!("{} must be ≥ mm_base {} (initial margin is the stricter)", o.im_min, o.mm_base),
        ));
    }
    Ok(o)
}

/// Initial margin is at least as strict as maintenance: a weight on what the account owns
/// is ≤ at initial (`larger_is_stricter` = false), a liability weight ≥ (true).
fn initial_is_stricter(f: &str, name: &str, w: PerMode<f64>, larger_is_stricter: bool) -> Result<()> {
    let ok = if larger_is_stricter { w[0] >= w[1] } else { w[0] <= w[1] };
    if ok {
        return Ok(());
    }
    let cmp = if larger_is_stricter { "≥" } else { "≤" };
    Err(CoreError::config(
        format!("{f}.{name}_initial"),
        format!("{} must be {cmp} {name}_maint {} (initial margin is the stricter)", w[0], w[1]),
    ))
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::brackets::Bracket;

    pub fn asset(symbol: &str, price: f64) -> AssetSpec {
        AssetSpec {
            symbol: symbol.into(),
            price,
            weight: [1.0, 1.0],
            liability_weight: [1.0, 1.0],
            haircut_tiers: vec![],
            imf_factor: 0.0,
            scale_initial_weight_start: 0.0,
            total_deposits: 0.0,
            bid_ask: None,
        }
    }

    pub fn perp(symbol: &str, settle: &str, underlying: &str, mark: f64, brackets: &[(f64, f64, f64)]) -> MarketSpec {
        MarketSpec {
            symbol: symbol.into(),
            kind: MarketKind::Perp,
            settle: settle.into(),
            underlying: underlying.into(),
            mark,
            contract_size: 1.0,
            inverse: false,
            brackets: brackets.iter().map(|&(bound, imr, mmr)| Bracket { bound, imr, mmr }).collect(),
            imf_factor: 0.0,
            upnl_weight: [1.0, 1.0],
            upnl_imf_factor: 0.0,
            upnl_cap_initial: f64::INFINITY,
            option: None,
            orders: Default::default(),
            rules: MarketRules::default(),
        }
    }

    pub fn option(symbol: &str, settle: &str, underlying: &str, call: bool, strike: f64, mark: f64) -> MarketSpec {
        MarketSpec {
            kind: MarketKind::Option,
            brackets: vec![],
            option: Some(OptionSpec {
                call,
                strike,
                expiry: 0.25,
                iv: 0.6,
                rate: 0.0,
                im_base: OptionSpec::DERIBIT_IM_BASE,
                im_min: OptionSpec::DERIBIT_IM_MIN,
                mm_base: OptionSpec::DERIBIT_MM_BASE,
            }),
            ..perp(symbol, settle, underlying, mark, &[])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn initial_margin_is_the_stricter() {
        let mut a = asset("BTC", 100.0);
        a.weight = [0.96, 0.95];
        let e = Universe::new(&[a], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "assets[BTC].weight_initial: 0.96 must be ≤ weight_maint 0.95 (initial margin is the stricter)"
        );
        let mut a = asset("USDT", 1.0);
        a.liability_weight = [1.05, 1.1];
        let e = Universe::new(&[a], &[]).unwrap_err();
        assert!(e.to_string().starts_with("assets[USDT].liability_weight_initial: 1.05 must be ≥"), "{e}");
        let mut m = perp("BTCUSDT", "USDT", "BTC", 100.0, &[(f64::INFINITY, 0.1, 0.05)]);
        m.upnl_weight = [0.9, 0.8];
        let e = Universe::new(&[asset("USDT", 1.0)], &[m]).unwrap_err();
        assert!(e.to_string().starts_with("markets[BTCUSDT].upnl_weight_initial"), "{e}");
    }

    #[test]
    fn errors_name_the_field_and_symbol() {
        let mut a = asset("BTC", 100.0);
        a.weight[1] = 1.5;
        let e = Universe::new(&[a], &[]).unwrap_err();
        assert_eq!(e.to_string(), "assets[BTC].weight_maint: 1.5 must be in [0, 1]");

        let mut a = asset("USDT", 1.0);
        a.liability_weight[0] = 0.9;
        let e = Universe::new(&[a], &[]).unwrap_err();
        assert!(e.to_string().starts_with("assets[USDT].liability_weight_initial"));

        let m = perp("BTCUSDT", "USDC", "BTC", 1.0, &[(f64::INFINITY, 0.1, 0.05)]);
        let e = Universe::new(&[asset("USDT", 1.0)], &[m]).unwrap_err();
        assert_eq!(e.to_string(), "markets[BTCUSDT].settle: unknown asset 'USDC'");
    }

    #[test]
    fn rules_that_cannot_apply_name_their_field() {
        let usdt = || asset("USDT", 1.0);
        let mut o = option("C", "USDT", "BTC", true, 50_000.0, 100.0);
        o.rules.shape[0] = Shape::Step;
        let btc = perp("BTCUSDT", "USDT", "BTC", 50_000.0, &[(f64::INFINITY, 0.1, 0.05)]);
        let e = Universe::new(&[usdt()], &[btc.clone(), o]).unwrap_err();
        assert!(e.to_string().starts_with("markets[C].im_shape: 'step' applies to perps"), "{e}");
        let mut m = btc.clone();
        m.rules.rate_slope[1] = 0.001;
        let e = Universe::new(&[usdt()], &[m]).unwrap_err();
        assert!(e.to_string().starts_with("markets[BTCUSDT].rate_slope_maint"), "{e}");
        let mut m = btc;
        m.rules.liquidation_fee = 1.5;
        let e = Universe::new(&[usdt()], &[m]).unwrap_err();
        assert!(e.to_string().starts_with("markets[BTCUSDT].liquidation_fee"), "{e}");
        let mut a = usdt();
        a.bid_ask = Some((1.01, 0.99));
        let e = Universe::new(&[a], &[]).unwrap_err();
        assert_eq!(e.to_string(), "assets[USDT].bid: 1.01 is above the ask 0.99");
    }

    #[test]
    fn duplicate_symbols_are_rejected() {
        let e = Universe::new(&[asset("USDT", 1.0), asset("USDT", 1.0)], &[]).unwrap_err();
        assert!(e.to_string().contains("duplicate asset symbol"));
        let m = perp("X", "USDT", "BTC", 1.0, &[(f64::INFINITY, 0.1, 0.05)]);
        let e = Universe::new(&[asset("USDT", 1.0)], &[m.clone(), m]).unwrap_err();
        assert!(e.to_string().contains("duplicate market symbol"));
    }

    #[test]
    fn non_positive_marks_and_contract_sizes_are_rejected() {
        let mut m = perp("X", "USDT", "BTC", 0.0, &[(f64::INFINITY, 0.1, 0.05)]);
        assert!(Universe::new(&[asset("USDT", 1.0)], &[m.clone()]).is_err());
        m.mark = 1.0;
        m.contract_size = -1.0;
        let e = Universe::new(&[asset("USDT", 1.0)], &[m]).unwrap_err();
        assert!(e.to_string().starts_with("markets[X].contract_size"));
    }
}
