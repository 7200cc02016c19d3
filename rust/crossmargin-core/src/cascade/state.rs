//! The mutable book a cascade works on: balances in minor units with f64 mirrors for the
//! margin kernels, positions with their closed quantities, isolated margins in minor units.

use crate::book::{AccountRows, GroupedBook};
use crate::cascade::ledger::{to_minor, to_units};
use crate::universe::Universe;

#[derive(Debug, Clone)]
pub struct State {
    pub accounts: Vec<i64>,
    pub bal_offsets: Vec<usize>,
    /// Universe asset index per balance row.
    pub bal_asset: Vec<u32>,
    pub bal_minor: Vec<i128>,
    pub bal_qty: Vec<f64>,
    pub pos_offsets: Vec<usize>,
    /// Universe market index per position row.
    pub pos_market: Vec<u32>,
    pub pos_qty: Vec<f64>,
    pub pos_entry: Vec<f64>,
    pub pos_isolated: Vec<bool>,
    pub iso_minor: Vec<i128>,
    /// f64 mirror of the isolated margin as the margin kernel reads it (> 0 = isolated).
    pub iso_qty: Vec<f64>,
}

impl State {
    /// Copies the book in universe indices, adding a zero balance row for every settle asset an
    /// account trades in but holds no balance of, so that realised P&L always has a row.
    pub fn new(book: &GroupedBook, u: &Universe, asset_remap: &[u32], market_remap: &[u32]) -> State {
        let n = book.n_accounts();
        let mut s = State {
            accounts: book.accounts.clone(),
            bal_offsets: Vec::with_capacity(n + 1),
            bal_asset: Vec::with_capacity(book.balances.code.len() + n),
            bal_minor: Vec::with_capacity(book.balances.code.len() + n),
            bal_qty: vec![],
            pos_offsets: book.positions.offsets.clone(),
            pos_market: book.positions.code.iter().map(|&c| market_remap[c as usize]).collect(),
            pos_qty: book.positions.qty.clone(),
            pos_entry: book.positions.entry_price.clone(),
            pos_isolated: book.positions.isolated_margin.iter().map(|&m| m > 0.0).collect(),
            iso_minor: book.positions.isolated_margin.iter().map(|&m| to_minor(m)).collect(),
            iso_qty: vec![],
        };
        s.bal_offsets.push(0);
        let mut row: Vec<(u32, i128)> = Vec::new();
        for a in 0..n {
            row.clear();
            let b = book.balances.offsets[a]..book.balances.offsets[a + 1];
            for (&c, &q) in book.balances.code[b.clone()].iter().zip(&book.balances.qty[b]) {
                row.push((asset_remap[c as usize], to_minor(q)));
            }
            for p in s.pos_offsets[a]..s.pos_offsets[a + 1] {
                let settle = u.markets.settle[s.pos_market[p] as usize];
                if !row.iter().any(|r| r.0 == settle) {
                    row.push((settle, 0));
                }
            }
            // Two codes can map to one universe asset: merge, keep asset order.
            row.sort_by_key(|r| r.0);
            row.dedup_by(|next, prev| {
                if next.0 == prev.0 {
                    prev.1 += next.1;
                    true
                } else {
                    false
                }
            });
            for &(asset, m) in &row {
                s.bal_asset.push(asset);
                s.bal_minor.push(m);
            }
            s.bal_offsets.push(s.bal_asset.len());
        }
        s.bal_qty = s.bal_minor.iter().map(|&m| to_units(m)).collect();
        s.iso_qty = (0..s.iso_minor.len()).map(|p| s.iso_mirror(p)).collect();
        s
    }

    pub fn n_accounts(&self) -> usize {
        self.accounts.len()
    }

    fn iso_mirror(&self, p: usize) -> f64 {
        if self.pos_isolated[p] {
            // An isolated position keeps being isolated even with its margin used up.
            to_units(self.iso_minor[p]).max(f64::MIN_POSITIVE)
        } else {
            0.0
        }
    }

    /// Refreshes one account's f64 mirrors after its ledger changed.
    pub fn refresh(&mut self, a: usize) {
        for r in self.bal_offsets[a]..self.bal_offsets[a + 1] {
            self.bal_qty[r] = to_units(self.bal_minor[r]);
        }
        for p in self.pos_offsets[a]..self.pos_offsets[a + 1] {
            self.iso_qty[p] = self.iso_mirror(p);
        }
    }

    #[inline]
    pub fn account(&self, a: usize) -> AccountRows<'_> {
        let b = self.bal_offsets[a]..self.bal_offsets[a + 1];
        let p = self.pos_offsets[a]..self.pos_offsets[a + 1];
        AccountRows {
            bal_code: &self.bal_asset[b.clone()],
            bal_qty: &self.bal_qty[b],
            pos_code: &self.pos_market[p.clone()],
            pos_qty: &self.pos_qty[p.clone()],
            pos_entry: &self.pos_entry[p.clone()],
            pos_isolated: &self.iso_qty[p],
        }
    }

    /// The balance row of `asset` in account `a` (settle assets always have one).
    pub fn balance_row(&self, a: usize, asset: u32) -> usize {
        let r = self.bal_offsets[a]..self.bal_offsets[a + 1];
        r.clone().find(|&i| self.bal_asset[i] == asset).expect("State::new adds a row per settle asset")
    }

    /// Isolated margins as (settle asset, minor units), for the ledger totals.
    pub fn isolated_holdings(&self, u: &Universe) -> Vec<(u32, i128)> {
        (0..self.pos_market.len())
            .filter(|&p| self.iso_minor[p] != 0)
            .map(|p| (u.markets.settle[self.pos_market[p] as usize], self.iso_minor[p]))
            .collect()
    }
}
