//! The monitor's resident rows: the grouped book it started from, read in place, and an owned
//! copy of each account that has changed since (docs/MODEL.md "Live monitoring"). An account's
//! rows keep the canonical order of the grouped book — balances by asset, positions by
//! (market, side), open orders by (market, arrival) — so an evaluation of the store reads
//! exactly what a batch evaluation of its snapshot reads. Accounts are never regrouped: a
//! change copies one account's rows once, then edits that copy.

use std::collections::HashMap;

use crate::book::{AccountRows, Balances, GroupedBook, Orders, Positions};
use crate::memory::column;

/// A copy of `v` on huge pages (where the platform has them): the monitor reads its rows at
/// scattered accounts, where 4 KiB pages cost a TLB miss per array and account.
fn on_huge_pages<T: Copy + Default>(v: &[T]) -> Vec<T> {
    let mut out = column(v.len());
    out.copy_from_slice(v);
    out
}

/// The book with every array re-homed on huge pages.
fn rehomed(b: GroupedBook) -> GroupedBook {
    let (bal, pos, ord) = (&b.balances, &b.positions, &b.orders);
    GroupedBook {
        accounts: b.accounts.clone(),
        balances: Balances {
            offsets: on_huge_pages(&bal.offsets),
            code: on_huge_pages(&bal.code),
            qty: on_huge_pages(&bal.qty),
        },
        positions: Positions {
            offsets: on_huge_pages(&pos.offsets),
            code: on_huge_pages(&pos.code),
            qty: on_huge_pages(&pos.qty),
            entry_price: on_huge_pages(&pos.entry_price),
            isolated_margin: on_huge_pages(&pos.isolated_margin),
            side: on_huge_pages(&pos.side),
            row: on_huge_pages(&pos.row),
        },
        orders: Orders {
            offsets: on_huge_pages(&ord.offsets),
            code: on_huge_pages(&ord.code),
            qty: on_huge_pages(&ord.qty),
            price: on_huge_pages(&ord.price),
            reduce_only: on_huge_pages(&ord.reduce_only),
            row: on_huge_pages(&ord.row),
        },
        n_asset_codes: b.n_asset_codes,
        n_market_codes: b.n_market_codes,
    }
}

/// One account's rows, owned (codes are universe indices).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnedRows {
    pub bal_code: Vec<u32>,
    pub bal_qty: Vec<f64>,
    pub pos_code: Vec<u32>,
    pub pos_qty: Vec<f64>,
    pub pos_entry: Vec<f64>,
    pub pos_isolated: Vec<f64>,
    pub pos_side: Vec<u8>,
    pub ord_code: Vec<u32>,
    pub ord_qty: Vec<f64>,
    pub ord_price: Vec<f64>,
    pub ord_reduce_only: Vec<bool>,
}

/// One open order: signed quantity (> 0 buys), limit price, reduce-only flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderRow {
    pub qty: f64,
    pub price: f64,
    pub reduce_only: bool,
}

impl OwnedRows {
    pub fn from_rows(r: AccountRows<'_>) -> Self {
        let n = r.pos_code.len();
        OwnedRows {
            bal_code: r.bal_code.to_vec(),
            bal_qty: r.bal_qty.to_vec(),
            pos_code: r.pos_code.to_vec(),
            pos_qty: r.pos_qty.to_vec(),
            pos_entry: r.pos_entry.to_vec(),
            pos_isolated: r.pos_isolated.to_vec(),
            pos_side: (0..n).map(|j| r.side(j)).collect(),
            ord_code: r.ord_code.to_vec(),
            ord_qty: r.ord_qty.to_vec(),
            ord_price: r.ord_price.to_vec(),
            ord_reduce_only: r.ord_reduce_only.to_vec(),
        }
    }

    pub fn rows(&self) -> AccountRows<'_> {
        AccountRows {
            bal_code: &self.bal_code,
            bal_qty: &self.bal_qty,
            pos_code: &self.pos_code,
            pos_qty: &self.pos_qty,
            pos_entry: &self.pos_entry,
            pos_isolated: &self.pos_isolated,
            pos_side: &self.pos_side,
            ord_code: &self.ord_code,
            ord_qty: &self.ord_qty,
            ord_price: &self.ord_price,
            ord_reduce_only: &self.ord_reduce_only,
        }
    }

    /// The balance of asset `code` becomes `qty`; 0 removes the row.
    pub fn set_balance(&mut self, code: u32, qty: f64) {
        match self.bal_code.binary_search(&code) {
            Ok(j) if qty == 0.0 => {
                self.bal_code.remove(j);
                self.bal_qty.remove(j);
            }
            Ok(j) => self.bal_qty[j] = qty,
            Err(_) if qty == 0.0 => {}
            Err(j) => {
                self.bal_code.insert(j, code);
                self.bal_qty.insert(j, qty);
            }
        }
    }

    /// The position in market `code` on `side` becomes (`qty`, `entry`, `isolated`); a zero
    /// quantity removes the row. `isolated` is normalised (0 = cross).
    pub fn set_position(&mut self, code: u32, side: u8, qty: f64, entry: f64, isolated: f64) {
        let key = (code, side);
        let found = self.position_slot(key);
        match found {
            Ok(j) if qty == 0.0 => {
                self.pos_code.remove(j);
                self.pos_side.remove(j);
                self.pos_qty.remove(j);
                self.pos_entry.remove(j);
                self.pos_isolated.remove(j);
            }
            Ok(j) => {
                self.pos_qty[j] = qty;
                self.pos_entry[j] = entry;
                self.pos_isolated[j] = isolated;
            }
            Err(_) if qty == 0.0 => {}
            Err(j) => {
                self.pos_code.insert(j, code);
                self.pos_side.insert(j, side);
                self.pos_qty.insert(j, qty);
                self.pos_entry.insert(j, entry);
                self.pos_isolated.insert(j, isolated);
            }
        }
    }

    fn position_slot(&self, key: (u32, u8)) -> Result<usize, usize> {
        let lo = self.pos_code.partition_point(|&c| c < key.0);
        let mut j = lo;
        while j < self.pos_code.len() && self.pos_code[j] == key.0 {
            match self.pos_side[j].cmp(&key.1) {
                std::cmp::Ordering::Equal => return Ok(j),
                std::cmp::Ordering::Greater => return Err(j),
                std::cmp::Ordering::Less => j += 1,
            }
        }
        Err(j)
    }

    /// The position (qty, entry, isolated margin) in market `code` on `side`, if any.
    pub fn position(&self, code: u32, side: u8) -> Option<(f64, f64, f64)> {
        self.position_slot((code, side)).ok().map(|j| (self.pos_qty[j], self.pos_entry[j], self.pos_isolated[j]))
    }

    /// The balance of asset `code` (0 without a row).
    pub fn balance(&self, code: u32) -> f64 {
        self.bal_code.binary_search(&code).map_or(0.0, |j| self.bal_qty[j])
    }

    /// The account's open orders in market `code` become `orders` (in this order; none
    /// clears them).
    pub fn replace_orders(&mut self, code: u32, orders: &[OrderRow]) {
        let lo = self.ord_code.partition_point(|&c| c < code);
        let hi = self.ord_code.partition_point(|&c| c <= code);
        let n = orders.len();
        self.ord_code.splice(lo..hi, std::iter::repeat_n(code, n));
        self.ord_qty.splice(lo..hi, orders.iter().map(|o| o.qty));
        self.ord_price.splice(lo..hi, orders.iter().map(|o| o.price));
        self.ord_reduce_only.splice(lo..hi, orders.iter().map(|o| o.reduce_only));
    }
}

/// Every account's rows: the starting book's (read in place) or an owned copy once changed.
/// Dense account numbers: the starting book's accounts (ascending id), then accounts first
/// seen in a change, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct Store {
    base: GroupedBook,
    changed: Vec<Option<Box<OwnedRows>>>,
    accounts: Vec<i64>,
    added: HashMap<i64, usize>,
}

impl Store {
    /// `base`: a grouped book whose codes are universe indices, in the canonical order.
    pub fn new(base: GroupedBook) -> Self {
        let base = rehomed(base);
        let accounts = base.accounts.clone();
        Store { changed: column(accounts.len()), base, accounts, added: HashMap::new() }
    }

    pub fn n_accounts(&self) -> usize {
        self.accounts.len()
    }

    /// The starting book (codes are universe indices).
    pub fn base(&self) -> &GroupedBook {
        &self.base
    }

    #[inline]
    pub fn id(&self, a: usize) -> i64 {
        self.accounts[a]
    }

    #[inline]
    pub fn account(&self, a: usize) -> AccountRows<'_> {
        match &self.changed[a] {
            Some(rows) => rows.rows(),
            None => self.base.account(a),
        }
    }

    /// Whether the account holds no row at all (it leaves the snapshot).
    pub fn is_empty(&self, a: usize) -> bool {
        let r = self.account(a);
        r.bal_code.is_empty() && r.pos_code.is_empty() && r.ord_code.is_empty()
    }

    /// The dense number of account `id`, if the store has seen it.
    pub fn dense(&self, id: i64) -> Option<usize> {
        match self.base.accounts.binary_search(&id) {
            Ok(a) => Some(a),
            Err(_) => self.added.get(&id).copied(),
        }
    }

    /// The dense number of account `id`, adding an empty account when it is new.
    pub fn dense_or_add(&mut self, id: i64) -> usize {
        if let Some(a) = self.dense(id) {
            return a;
        }
        let a = self.accounts.len();
        self.accounts.push(id);
        self.changed.push(Some(Box::default()));
        self.added.insert(id, a);
        a
    }

    /// The account's rows for editing (copied from the starting book on first use).
    pub fn edit(&mut self, a: usize) -> &mut OwnedRows {
        if self.changed[a].is_none() {
            self.changed[a] = Some(Box::new(OwnedRows::from_rows(self.base.account(a))));
        }
        self.changed[a].as_mut().expect("copied above")
    }

    /// Position (qty, entry, isolated margin) of account `id` in market `code` on `side`.
    pub fn position(&self, id: i64, code: u32, side: u8) -> Option<(f64, f64, f64)> {
        let a = self.dense(id)?;
        match &self.changed[a] {
            Some(rows) => rows.position(code, side),
            None => OwnedRows::from_rows(self.base.account(a)).position(code, side),
        }
    }

    /// Balance of account `id` in asset `code` (0 without a row).
    pub fn balance(&self, id: i64, code: u32) -> f64 {
        let Some(a) = self.dense(id) else { return 0.0 };
        let r = self.account(a);
        r.bal_code.binary_search(&code).map_or(0.0, |j| r.bal_qty[j])
    }

    /// Accounts holding at least one row, in ascending id: the snapshot's rows.
    pub fn in_id_order(&self) -> Vec<usize> {
        let mut out: Vec<usize> = (0..self.n_accounts()).filter(|&a| !self.is_empty(a)).collect();
        if self.accounts.len() > self.base.accounts.len() {
            out.sort_unstable_by_key(|&a| self.accounts[a]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upserts_keep_the_canonical_order_and_zero_removes() {
        let mut r = OwnedRows::default();
        r.set_balance(3, 1.0);
        r.set_balance(1, 2.0);
        r.set_balance(2, 0.0);
        assert_eq!(r.bal_code, vec![1, 3]);
        r.set_balance(3, 0.0);
        assert_eq!((r.bal_code.clone(), r.bal_qty.clone()), (vec![1], vec![2.0]));
        r.set_position(5, 2, -1.0, 10.0, 0.0);
        r.set_position(5, 1, 1.0, 10.0, 0.0);
        r.set_position(2, 0, 3.0, 10.0, 0.0);
        assert_eq!(r.pos_code, vec![2, 5, 5]);
        assert_eq!(r.pos_side, vec![0, 1, 2]);
        r.set_position(5, 1, 0.0, 10.0, 0.0);
        assert_eq!(r.pos_side, vec![0, 2]);
        assert_eq!(r.position(5, 2), Some((-1.0, 10.0, 0.0)));
        let o = |q| OrderRow { qty: q, price: 1.0, reduce_only: false };
        r.replace_orders(4, &[o(1.0), o(2.0)]);
        r.replace_orders(1, &[o(3.0)]);
        r.replace_orders(4, &[o(5.0)]);
        assert_eq!(r.ord_code, vec![1, 4]);
        assert_eq!(r.ord_qty, vec![3.0, 5.0]);
        r.replace_orders(1, &[]);
        assert_eq!(r.ord_code, vec![4]);
    }
}
