//! Which accounts a price reaches (docs/MODEL.md "Live monitoring"). A price *slot* is an
//! asset's price (slot = asset index) or a market's mark (slot = assets + market index); an
//! account depends on the slots of its balances' assets and, for each position or open
//! order, of the market's mark, its settle asset and — for an option — its underlying's
//! price source. The index lists, per slot, the accounts that depend on it: exact when
//! built, a superset after changes (an account that drops a market stays listed until the
//! next rebuild; re-evaluating it changes nothing), rebuilt by `refresh` or once the
//! additions outgrow the built size.

use rayon::prelude::*;

use crate::book::AccountRows;
use crate::universe::{MarketKind, UnderlyingSource, Universe};

use super::state::Store;

/// The price slots each market's positions read.
#[derive(Debug, Clone, Default)]
pub struct Dependencies {
    n_assets: u32,
    market: Vec<Vec<u32>>,
}

impl Dependencies {
    pub fn new(u: &Universe) -> Self {
        let na = u.n_assets() as u32;
        let market = (0..u.n_markets())
            .map(|k| {
                let mut s = vec![na + k as u32, u.market_hot[k].settle];
                if u.markets.kind[k] == MarketKind::Option {
                    match u.underlying_source[u.markets.underlying[k] as usize].0 {
                        UnderlyingSource::Asset(i) => s.push(i),
                        UnderlyingSource::Market(j) => s.push(na + j),
                        UnderlyingSource::None => {}
                    }
                }
                s.sort_unstable();
                s.dedup();
                s
            })
            .collect();
        Dependencies { n_assets: na, market }
    }

    pub fn n_slots(&self) -> usize {
        self.n_assets as usize + self.market.len()
    }

    /// The slots an account's rows read, sorted, without repeats (into `out`).
    pub fn slots(&self, rows: AccountRows<'_>, out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(rows.bal_code);
        for &k in rows.pos_code.iter().chain(rows.ord_code) {
            out.extend_from_slice(&self.market[k as usize]);
        }
        out.sort_unstable();
        out.dedup();
    }
}

/// Slot → accounts (dense numbers).
#[derive(Debug, Clone, Default)]
pub struct Index {
    accounts: Vec<Vec<u32>>,
    /// Whether a slot's list is still ascending without repeats.
    sorted: Vec<bool>,
    built: usize,
    added: usize,
}

impl Index {
    /// The exact index of every account of `store`.
    pub fn build(deps: &Dependencies, store: &Store) -> Self {
        let n = store.n_accounts();
        // Per chunk of accounts, (slot, account) pairs in account order; concatenated in
        // chunk order, each slot's list is ascending.
        let pairs: Vec<Vec<(u32, u32)>> = (0..n)
            .into_par_iter()
            .chunks(16_384)
            .map(|chunk| {
                let mut out = Vec::new();
                let mut slots = Vec::new();
                for a in chunk {
                    deps.slots(store.account(a), &mut slots);
                    out.extend(slots.iter().map(|&s| (s, a as u32)));
                }
                out
            })
            .collect();
        let mut counts = vec![0usize; deps.n_slots()];
        for &(s, _) in pairs.iter().flatten() {
            counts[s as usize] += 1;
        }
        // Room for an eighth more per slot: the first changes after a build append without
        // moving a list of a million accounts.
        let mut accounts: Vec<Vec<u32>> = counts.iter().map(|&c| Vec::with_capacity(c + c / 8 + 16)).collect();
        for &(s, a) in pairs.iter().flatten() {
            accounts[s as usize].push(a);
        }
        let built = accounts.iter().map(Vec::len).sum();
        Index { sorted: vec![true; accounts.len()], accounts, built, added: 0 }
    }

    /// Records that account `a` now reads the slots in `now` (sorted) where it read those in
    /// `before` (sorted). Returns true when the index has outgrown its built size and should
    /// be rebuilt.
    pub fn update(&mut self, a: usize, before: &[u32], now: &[u32]) -> bool {
        for &s in now {
            if before.binary_search(&s).is_err() {
                let list = &mut self.accounts[s as usize];
                if list.last().is_some_and(|&l| l as usize >= a) {
                    self.sorted[s as usize] = false;
                }
                list.push(a as u32);
                self.added += 1;
            }
        }
        self.added > self.built / 2 + 65_536
    }

    /// The accounts that read any of `slots`, ascending, without repeats.
    pub fn accounts(&self, slots: &[u32]) -> Vec<u32> {
        if let [s] = slots {
            if self.sorted[*s as usize] {
                return self.accounts[*s as usize].clone();
            }
        }
        let mut out: Vec<u32> = slots.iter().flat_map(|&s| self.accounts[s as usize].iter().copied()).collect();
        out.par_sort_unstable();
        out.dedup();
        out
    }
}
