//! The risk configuration compiled into flat tables once: hot loops index arrays by
//! asset / market number and never look up a symbol.

use std::collections::HashMap;

use crate::brackets::{Bracket, BracketTable};
use crate::error::{CoreError, Result};
use crate::haircut::HaircutTable;
use crate::mode::PerMode;

/// A collateral asset as configured (DESIGN §3).
#[derive(Debug, Clone, PartialEq)]
pub struct AssetSpec {
    pub symbol: String,
    pub price: f64,
    pub weight: PerMode<f64>,
    pub liability_weight: PerMode<f64>,
    pub haircut_tiers: Vec<(f64, f64)>,
    pub imf_factor: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarketKind {
    Perp,
    Future,
}

impl MarketKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "perp" => Some(MarketKind::Perp),
            "future" => Some(MarketKind::Future),
            _ => None,
        }
    }
}

/// A derivative market as configured (DESIGN §3). `settle` names an asset.
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
}

#[derive(Debug, Clone)]
pub struct AssetTable {
    pub symbol: Vec<String>,
    pub price: Vec<f64>,
    pub weight: PerMode<Vec<f64>>,
    pub liability_weight: PerMode<Vec<f64>>,
    pub imf_factor: Vec<f64>,
    pub haircuts: HaircutTable,
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
    pub brackets: BracketTable,
}

/// The compiled universe. `underlyings` are the distinct index names of the markets, in
/// order of first appearance.
#[derive(Debug, Clone)]
pub struct Universe {
    pub assets: AssetTable,
    pub markets: MarketTable,
    pub underlyings: Vec<String>,
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
            haircuts: HaircutTable::default(),
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
            check_weight(format!("{f}.weight_initial"), a.weight[0], 0.0, 1.0)?;
            check_weight(format!("{f}.weight_maint"), a.weight[1], 0.0, 1.0)?;
            check_weight(format!("{f}.liability_weight_initial"), a.liability_weight[0], 1.0, f64::INFINITY)?;
            check_weight(format!("{f}.liability_weight_maint"), a.liability_weight[1], 1.0, f64::INFINITY)?;
            check_weight(format!("{f}.imf_factor"), a.imf_factor, 0.0, f64::INFINITY)?;
            at.haircuts.push(&a.haircut_tiers, &f)?;
            at.symbol.push(a.symbol.clone());
            at.price.push(a.price);
            for m in 0..2 {
                at.weight[m].push(a.weight[m]);
                at.liability_weight[m].push(a.liability_weight[m]);
            }
            at.imf_factor.push(a.imf_factor);
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
            brackets: BracketTable::new(),
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
            if !m.mark.is_finite() || m.mark <= 0.0 {
                return Err(CoreError::config(format!("{f}.mark"), format!("{} must be finite and > 0", m.mark)));
            }
            if !m.contract_size.is_finite() || m.contract_size <= 0.0 {
                return Err(CoreError::config(
                    format!("{f}.contract_size"),
                    format!("{} must be finite and > 0", m.contract_size),
                ));
            }
            check_weight(format!("{f}.upnl_weight_initial"), m.upnl_weight[0], 0.0, 1.0)?;
            check_weight(format!("{f}.upnl_weight_maint"), m.upnl_weight[1], 0.0, 1.0)?;
            check_weight(format!("{f}.imf_factor"), m.imf_factor, 0.0, f64::INFINITY)?;
            mt.brackets.push(&m.brackets, &f)?;
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
        }
        Ok(Universe { assets: at, markets: mt, underlyings })
    }

    pub fn n_assets(&self) -> usize {
        self.assets.symbol.len()
    }

    pub fn n_markets(&self) -> usize {
        self.markets.symbol.len()
    }
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

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
