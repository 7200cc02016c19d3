//! The book: balances and positions grouped by account into CSR arrays, once.
//!
//! Input rows are long and unsorted, with arbitrary int64 account ids and symbols already
//! encoded as small integer codes (the Python layer dictionary-encodes them). Grouping:
//! ids → dense indices (a direct table when ids are dense, a sort otherwise), a stable
//! counting sort by account, then each account's rows ordered by code. Duplicate balance
//! rows are merged with their exact sum, correctly rounded (independent of row order); a
//! duplicate position is an error naming both rows. The grouped book is independent of any
//! universe; codes are mapped to universe indices by a small remap table at evaluation time,
//! and [`GroupedBook::in_universe_order`] re-sorts each account's rows by universe index
//! where the codes' order differs from it, so an account's sums run in one canonical order
//! (universe index) whichever way its symbols were encoded.
//!
//! A position row carries a side (docs/MODEL.md "Book"): `both` (one-way mode, the net
//! position) or a `long` / `short` leg (hedge mode); (account, market, side) is the key and
//! each account's rows are ordered by (code, side, input row). Open orders (an optional third
//! table) are grouped the same way, by (code, input row); they are read only by the initial
//! requirement ([`crate::orders`]).

mod masked;

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use masked::{join_masks, KeyMask, MaskTally, MaskedRows};

use crate::error::{CoreError, Result, Table};
use crate::fsum::exact_sum;
use crate::kernel::{stored as layout_stores, CodeWidth, LaneLayout, LaneSink, Sliced8, GROUP};
use crate::limits::{is_price, within, MAX_AMOUNT, MAX_PRICE, MAX_QTY, MIN_PRICE};
use crate::memory::{
    map_column, prefetch, release_consumed, release_freed, release_spare, reserve_more, reserved_column, Disjoint,
};

/// Position sides (docs/MODEL.md "Book"): one-way net position, hedge-mode long leg, short leg.
pub const SIDE_BOTH: u8 = 0;
pub const SIDE_LONG: u8 = 1;
pub const SIDE_SHORT: u8 = 2;
/// The sides' names, by code.
pub const SIDE_NAMES: [&str; 3] = ["both", "long", "short"];
/// Order sides, by code.
pub const ORDER_SIDE_NAMES: [&str; 2] = ["buy", "sell"];

/// Grouping packs a position's side into the two low bits of its market code (one sort key),
/// so a book may use at most 2^30 market codes.
const MAX_PACKED_CODES: u32 = 1 << 30;

/// Balance rows as given (column slices of equal length).
#[derive(Debug, Clone, Copy)]
pub struct BalanceInput<'a> {
    pub account: &'a [i64],
    pub code: &'a [u32],
    pub qty: &'a [f64],
}

/// Position rows as given. `isolated_margin`: 0 or NaN = cross, > 0 = isolated.
#[derive(Debug, Clone, Copy)]
pub struct PositionInput<'a> {
    pub account: &'a [i64],
    pub code: &'a [u32],
    pub qty: &'a [f64],
    pub entry_price: &'a [f64],
    pub isolated_margin: &'a [f64],
}

/// Open-order rows as given: `side` 0 = buy, 1 = sell; `qty` > 0 and `price` > 0.
#[derive(Debug, Clone, Copy)]
pub struct OrderInput<'a> {
    pub account: &'a [i64],
    pub code: &'a [u32],
    pub side: &'a [u8],
    pub qty: &'a [f64],
    pub price: &'a [f64],
    pub reduce_only: &'a [bool],
}

/// Balances grouped by account: rows of account `a` are `offsets[a]..offsets[a + 1]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Balances {
    pub offsets: Vec<usize>,
    pub code: Vec<u32>,
    pub qty: Vec<f64>,
}

/// Positions grouped by account; `row` is each position's row in the input table.
/// `isolated_margin` is normalised: 0 for cross, > 0 for isolated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Positions {
    pub offsets: Vec<usize>,
    pub code: Vec<u32>,
    pub qty: Vec<f64>,
    pub entry_price: Vec<f64>,
    pub isolated_margin: Vec<f64>,
    /// [`SIDE_BOTH`], [`SIDE_LONG`] or [`SIDE_SHORT`].
    pub side: Vec<u8>,
    pub row: Vec<u32>,
}

/// Open orders grouped by account, each account's rows by (code, input row). `qty` is signed:
/// > 0 buys, < 0 sells.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Orders {
    pub offsets: Vec<usize>,
    pub code: Vec<u32>,
    pub qty: Vec<f64>,
    pub price: Vec<f64>,
    pub reduce_only: Vec<bool>,
    pub row: Vec<u32>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupedBook {
    /// Account ids, ascending and unique; index = dense account number.
    pub accounts: Vec<i64>,
    pub balances: Balances,
    pub positions: Positions,
    /// Open orders; every offset 0 (or no offsets at all) when the book has none.
    pub orders: Orders,
    pub n_asset_codes: u32,
    pub n_market_codes: u32,
}

/// One account's rows, as the margin kernels read them.
#[derive(Debug, Clone, Copy)]
pub struct AccountRows<'a> {
    pub bal_code: &'a [u32],
    pub bal_qty: &'a [f64],
    pub pos_code: &'a [u32],
    pub pos_qty: &'a [f64],
    pub pos_entry: &'a [f64],
    pub pos_isolated: &'a [f64],
    /// Position sides ([`SIDE_BOTH`], ...); empty where a caller builds rows without sides.
    pub pos_side: &'a [u8],
    /// Open orders, by market code: signed qty (> 0 buy), limit price, reduce-only flag.
    pub ord_code: &'a [u32],
    pub ord_qty: &'a [f64],
    pub ord_price: &'a [f64],
    pub ord_reduce_only: &'a [bool],
}

impl<'a> AccountRows<'a> {
    /// The same rows without their open orders (computations of positions alone).
    #[inline]
    pub fn without_orders(self) -> AccountRows<'a> {
        AccountRows { ord_code: &[], ord_qty: &[], ord_price: &[], ord_reduce_only: &[], ..self }
    }

    /// The side of position row `j` (both where the rows carry no sides).
    #[inline]
    pub fn side(&self, j: usize) -> u8 {
        self.pos_side.get(j).copied().unwrap_or(SIDE_BOTH)
    }
}

impl GroupedBook {
    pub fn n_accounts(&self) -> usize {
        self.accounts.len()
    }

    #[inline]
    pub fn account(&self, a: usize) -> AccountRows<'_> {
        let b = self.balances.offsets[a]..self.balances.offsets[a + 1];
        let p = self.positions.offsets[a]..self.positions.offsets[a + 1];
        let o = &self.orders;
        let r = if o.offsets.is_empty() { 0..0 } else { o.offsets[a]..o.offsets[a + 1] };
        AccountRows {
            bal_code: &self.balances.code[b.clone()],
            bal_qty: &self.balances.qty[b],
            pos_code: &self.positions.code[p.clone()],
            pos_qty: &self.positions.qty[p.clone()],
            pos_entry: &self.positions.entry_price[p.clone()],
            pos_isolated: &self.positions.isolated_margin[p.clone()],
            pos_side: &self.positions.side[p],
            ord_code: &o.code[r.clone()],
            ord_qty: &o.qty[r.clone()],
            ord_price: &o.price[r.clone()],
            ord_reduce_only: &o.reduce_only[r],
        }
    }

    /// Whether any position is a hedge-mode leg.
    pub fn has_sides(&self) -> bool {
        self.positions.side.iter().any(|&s| s != SIDE_BOTH)
    }

    /// Whether the book holds open orders.
    pub fn has_orders(&self) -> bool {
        !self.orders.code.is_empty()
    }

    /// Bytes held by the grouped arrays.
    pub fn nbytes(&self) -> usize {
        let b = &self.balances;
        let p = &self.positions;
        self.accounts.len() * 8
            + (b.offsets.len() + p.offsets.len()) * 8
            + b.code.len() * 12
            + p.code.len() * (4 + 8 * 3 + 4 + 1)
            + self.orders.offsets.len() * 8
            + self.orders.code.len() * (4 + 8 * 2 + 1 + 4)
    }

    /// True when `remap` preserves the order of the codes this book uses, so each account's
    /// rows are already in universe-index order.
    pub fn is_in_order(&self, asset_remap: &[u32], market_remap: &[u32]) -> bool {
        increasing(&[&self.balances.code], self.n_asset_codes, asset_remap)
            && increasing(&[&self.positions.code, &self.orders.code], self.n_market_codes, market_remap)
    }

    /// The same book with codes replaced by universe indices (`remap[code]`) and each
    /// account's rows in ascending universe index: the canonical order in which every kernel
    /// sums an account, whatever the symbols' encoding. The remaps of the result are the
    /// identity. Remaps must be injective on the codes used (distinct symbols are distinct
    /// universe entries); a collision is a `Book` error naming the rows. `n_assets` and
    /// `n_markets` are the universe's sizes (the result's code ranges).
    pub fn in_universe_order(
        &self,
        asset_remap: &[u32],
        market_remap: &[u32],
        n_assets: u32,
        n_markets: u32,
    ) -> Result<GroupedBook> {
        let n = self.n_accounts();
        let bal = &self.balances;
        let bal_rows: Vec<BalRow> = (0..bal.code.len())
            .map(|i| BalRow { code: asset_remap[bal.code[i] as usize], row: i as u32, qty: bal.qty[i] })
            .collect();
        let mut bal_rows = bal_rows;
        sort_within(&bal.offsets, &mut bal_rows, |x| (x.code, x.row));
        let has_duplicates =
            (0..n).any(|a| bal_rows[bal.offsets[a]..bal.offsets[a + 1]].windows(2).any(|w| w[0].code == w[1].code));
        let balances = if has_duplicates {
            merge_balances(&bal.offsets, &bal_rows)
        } else {
            split_balances(bal.offsets.clone(), &bal_rows)
        };
        let pos = &self.positions;
        if n_markets > MAX_PACKED_CODES {
            return Err(CoreError::config("markets", format!("{n_markets} markets: at most 2^30")));
        }
        let mut pos_rows: Vec<PosRow> = (0..pos.code.len())
            .map(|i| PosRow {
                code: pack(market_remap[pos.code[i] as usize], pos.side[i]),
                row: pos.row[i],
                qty: pos.qty[i],
                entry: pos.entry_price[i],
                isolated: pos.isolated_margin[i],
            })
            .collect();
        sort_within(&pos.offsets, &mut pos_rows, |x| (x.code, x.row));
        check_unique_positions(&self.accounts, &pos.offsets, &pos_rows)?;
        let ord = &self.orders;
        let orders = if ord.offsets.is_empty() {
            Orders::default()
        } else {
            let mut rows: Vec<OrdRow> = (0..ord.code.len())
                .map(|i| OrdRow {
                    code: market_remap[ord.code[i] as usize],
                    row: ord.row[i],
                    qty: ord.qty[i],
                    price: ord.price[i],
                    reduce_only: ord.reduce_only[i],
                })
                .collect();
            sort_within(&ord.offsets, &mut rows, |x| (x.code, x.row));
            orders_of(ord.offsets.clone(), &rows)
        };
        Ok(GroupedBook {
            accounts: self.accounts.clone(),
            balances,
            positions: positions_of(pos.offsets.clone(), &pos_rows),
            orders,
            n_asset_codes: n_assets,
            n_market_codes: n_markets,
        })
    }
}

/// A market code and a side in one sort key.
#[inline]
fn pack(code: u32, side: u8) -> u32 {
    (code << 2) | side as u32
}

/// Groups the two tables by account (every position one-way, no orders). Errors name the
/// first offending row.
pub fn group(
    bal: BalanceInput<'_>,
    pos: PositionInput<'_>,
    n_asset_codes: u32,
    n_market_codes: u32,
) -> Result<GroupedBook> {
    group_with(bal, pos, &[], None, n_asset_codes, n_market_codes)
}

/// One account (id 1) of `bal` (asset code, qty) and `pos` (market code, qty, entry price,
/// isolated margin): the book the models' unit tests evaluate.
#[cfg(test)]
pub(crate) fn one_account(
    bal: &[(u32, f64)],
    pos: &[(u32, f64, f64, f64)],
    n_asset_codes: u32,
    n_market_codes: u32,
) -> GroupedBook {
    let (bc, bq): (Vec<u32>, Vec<f64>) = bal.iter().copied().unzip();
    let pc: Vec<u32> = pos.iter().map(|p| p.0).collect();
    let pq: Vec<f64> = pos.iter().map(|p| p.1).collect();
    let pe: Vec<f64> = pos.iter().map(|p| p.2).collect();
    let pi: Vec<f64> = pos.iter().map(|p| p.3).collect();
    group(
        BalanceInput { account: &vec![1; bal.len()], code: &bc, qty: &bq },
        PositionInput { account: &vec![1; pos.len()], code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pi },
        n_asset_codes,
        n_market_codes,
    )
    .unwrap()
}

/// Every row check of [`group_with`]'s inputs (the first offending row is the error).
fn validate(
    bal: &BalanceInput<'_>,
    pos: &PositionInput<'_>,
    side: &[u8],
    orders: Option<&OrderInput<'_>>,
    n_asset_codes: u32,
    n_market_codes: u32,
) -> Result<()> {
    validate_balances(bal, n_asset_codes)?;
    validate_positions(pos, n_market_codes)?;
    validate_sides(pos, side)?;
    if let Some(o) = orders {
        validate_orders(o, n_market_codes)?;
    }
    Ok(())
}

/// Groups balances, positions with their sides (`side`: one per position row, or empty for
/// all [`SIDE_BOTH`]) and open orders by account. Errors name the first offending row.
pub fn group_with(
    bal: BalanceInput<'_>,
    pos: PositionInput<'_>,
    side: &[u8],
    orders: Option<OrderInput<'_>>,
    n_asset_codes: u32,
    n_market_codes: u32,
) -> Result<GroupedBook> {
    let n_orders = orders.as_ref().map_or(0, |o| o.account.len());
    let (nb, np) = (bal.account.len(), pos.account.len());
    let too_many = nb >= u32::MAX as usize || np >= u32::MAX as usize || n_orders >= u32::MAX as usize;
    if !same_lengths(&bal, &pos, side, orders.as_ref()) || too_many || n_market_codes > MAX_PACKED_CODES {
        // The row checks first (they run fused into the scatter below otherwise).
        validate(&bal, &pos, side, orders.as_ref(), n_asset_codes, n_market_codes)?;
    }
    if too_many {
        return Err(CoreError::book(
            Table::Positions,
            u32::MAX as usize,
            "account",
            "more than 2^32 rows in one table",
        ));
    }
    if n_market_codes > MAX_PACKED_CODES {
        return Err(CoreError::book(
            Table::Positions,
            0,
            "market",
            format!("{n_market_codes} market codes: a book may use at most 2^30"),
        ));
    }
    let side_of = |r: usize| if side.is_empty() { SIDE_BOTH } else { side[r] };
    let ord_accounts: &[i64] = orders.as_ref().map_or(&[], |o| o.account);
    let mut space = Space::new([bal.account, pos.account, ord_accounts]);
    let hist: Vec<Histogram> = (0..3).map(|t| space.histogram(t)).collect();
    let base = space.dense_bases();
    let accounts = space.accounts(&base);
    let revalidate = || validate(&bal, &pos, side, orders.as_ref(), n_asset_codes, n_market_codes);

    // Balances: each row to its account's partition, then each partition ordered by
    // (account, code), duplicates merged (exact sum).
    let mut code = reserved_column::<u32>(nb);
    let mut qty = reserved_column::<f64>(nb);
    let mut lo = reserved_column::<u16>(nb);
    let bad = {
        let (c, q, l) = (Disjoint::new(&mut code), Disjoint::new(&mut qty), Disjoint::new(&mut lo));
        space.scatter(0, &hist[0], |r, d, slot| {
            let (code, qty) = (bal.code[r], bal.qty[r]);
            // SAFETY: `scatter` hands each row a distinct slot d < nb.
            unsafe {
                c.write(d, code);
                q.write(d, qty);
                l.write(d, slot);
            }
            code >= n_asset_codes || !within(qty, MAX_AMOUNT)
        })
    };
    // SAFETY: the scatter wrote every slot of the three columns (its regions partition 0..nb).
    unsafe {
        code.set_len(nb);
        qty.set_len(nb);
        lo.set_len(nb);
    }
    if bad {
        revalidate()?;
    }
    let mut offsets = Vec::new();
    let duplicate = {
        let (c, q) = (Disjoint::new(&mut code), Disjoint::new(&mut qty));
        space.order(
            &hist[0].region,
            &base,
            &lo,
            &c,
            &mut offsets,
            |k| k.windows(2).any(|w| w[0] == w[1]),
            |s, e, perm, keys, sc| {
                // SAFETY: `order` hands each partition's region s..e to one task.
                unsafe {
                    c.slice(s, e).copy_from_slice(keys);
                    permute(q.slice(s, e), perm, sc);
                }
            },
        )
    };
    let balances = match duplicate {
        Some(_) => merge_duplicates(&offsets, &code, &qty),
        None => Balances { offsets, code, qty },
    };

    // Positions: ordered by (account, code, side); a repeated key is an error naming both rows.
    let mut key = reserved_column::<u32>(np);
    let mut qty = reserved_column::<f64>(np);
    let mut entry_price = reserved_column::<f64>(np);
    let mut isolated_margin = reserved_column::<f64>(np);
    let mut row = reserved_column::<u32>(np);
    let mut lo = reserved_column::<u16>(np);
    let bad = {
        let cols = (
            Disjoint::new(&mut key),
            Disjoint::new(&mut qty),
            Disjoint::new(&mut entry_price),
            Disjoint::new(&mut isolated_margin),
            Disjoint::new(&mut row),
            Disjoint::new(&mut lo),
        );
        space.scatter(1, &hist[1], |r, d, slot| {
            let (c, s, q, e, m) = (pos.code[r], side_of(r), pos.qty[r], pos.entry_price[r], pos.isolated_margin[r]);
            // SAFETY: `scatter` hands each row a distinct slot d < np.
            unsafe {
                cols.0.write(d, pack(c, s));
                cols.1.write(d, q);
                cols.2.write(d, e);
                cols.3.write(d, cross_as_zero(m));
                cols.4.write(d, r as u32);
                cols.5.write(d, slot);
            }
            // validate_positions and validate_sides, in one test
            c >= n_market_codes
                || !within(q, MAX_QTY)
                || !is_price(e, q == 0.0)
                || !(m.is_nan() || (0.0..=MAX_AMOUNT).contains(&m))
                || s > SIDE_SHORT
                || (s == SIDE_LONG && q < 0.0)
                || (s == SIDE_SHORT && q > 0.0)
        })
    };
    // SAFETY: the scatter wrote every slot of these columns (its regions partition 0..np).
    unsafe {
        key.set_len(np);
        qty.set_len(np);
        entry_price.set_len(np);
        isolated_margin.set_len(np);
        row.set_len(np);
        lo.set_len(np);
    }
    if bad {
        revalidate()?;
    }
    let mut pos_side = reserved_column::<u8>(np);
    let mut offsets = Vec::new();
    let clash_at = {
        let k = Disjoint::new(&mut key);
        let cols = (
            Disjoint::new(&mut qty),
            Disjoint::new(&mut entry_price),
            Disjoint::new(&mut isolated_margin),
            Disjoint::new(&mut row),
            Disjoint::new(&mut pos_side),
        );
        let flag = |k: &[u32]| k.windows(2).any(|w| clash(w[0], w[1]));
        space.order(&hist[1].region, &base, &lo, &k, &mut offsets, flag, |s, e, perm, keys, sc| {
            // SAFETY: `order` hands each partition's region s..e to one task; `pos_side`'s
            // slots s..e are written here for the first time (MaybeUninit-free: u8 writes).
            unsafe {
                for (i, &x) in keys.iter().enumerate() {
                    k.write(s + i, x >> 2);
                    cols.4.write(s + i, (x & 3) as u8);
                }
                permute(cols.0.slice(s, e), perm, sc);
                permute(cols.1.slice(s, e), perm, sc);
                permute(cols.2.slice(s, e), perm, sc);
                permute(cols.3.slice(s, e), perm, sc);
            }
        })
    };
    // SAFETY: `order` ran its closure on every partition, which wrote each side slot.
    unsafe { pos_side.set_len(np) };
    let code = key;
    if let Some(a) = clash_at {
        let span = offsets[a]..offsets[a + 1];
        let k: Vec<u32> = span.clone().map(|i| pack(code[i], pos_side[i])).collect();
        let r = &row[span];
        let j = k.windows(2).position(|w| clash(w[0], w[1])).expect("found above");
        return Err(clash_error(accounts[a], (k[j], r[j]), (k[j + 1], r[j + 1])));
    }
    let positions = Positions { offsets, code, side: pos_side, qty, entry_price, isolated_margin, row };

    // Orders: ordered by (account, code, input row); sells carry a negative quantity.
    let orders = match orders {
        None => Orders::default(),
        Some(o) => {
            let n = n_orders;
            let mut code = reserved_column::<u32>(n);
            let mut qty = reserved_column::<f64>(n);
            let mut price = reserved_column::<f64>(n);
            let mut reduce_only = reserved_column::<bool>(n);
            let mut row = reserved_column::<u32>(n);
            let mut lo = reserved_column::<u16>(n);
            let bad = {
                let cols = (
                    Disjoint::new(&mut code),
                    Disjoint::new(&mut qty),
                    Disjoint::new(&mut price),
                    Disjoint::new(&mut reduce_only),
                    Disjoint::new(&mut row),
                    Disjoint::new(&mut lo),
                );
                space.scatter(2, &hist[2], |r, d, slot| {
                    let (c, s, q, p) = (o.code[r], o.side[r], o.qty[r], o.price[r]);
                    // SAFETY: `scatter` hands each row a distinct slot d < n.
                    unsafe {
                        cols.0.write(d, c);
                        cols.1.write(d, if s == 0 { q } else { -q });
                        cols.2.write(d, p);
                        cols.3.write(d, o.reduce_only[r]);
                        cols.4.write(d, r as u32);
                        cols.5.write(d, slot);
                    }
                    c >= n_market_codes || s > 1 || !(q > 0.0 && q <= MAX_QTY) || !is_price(p, false)
                })
            };
            // SAFETY: the scatter wrote every slot of these columns.
            unsafe {
                code.set_len(n);
                qty.set_len(n);
                price.set_len(n);
                reduce_only.set_len(n);
                row.set_len(n);
                lo.set_len(n);
            }
            if bad {
                revalidate()?;
            }
            let mut offsets = Vec::new();
            {
                let c = Disjoint::new(&mut code);
                let cols = (
                    Disjoint::new(&mut qty),
                    Disjoint::new(&mut price),
                    Disjoint::new(&mut reduce_only),
                    Disjoint::new(&mut row),
                );
                space.order(
                    &hist[2].region,
                    &base,
                    &lo,
                    &c,
                    &mut offsets,
                    |_| false,
                    |s, e, perm, keys, sc| {
                        // SAFETY: `order` hands each partition's region s..e to one task.
                        unsafe {
                            c.slice(s, e).copy_from_slice(keys);
                            permute(cols.0.slice(s, e), perm, sc);
                            permute(cols.1.slice(s, e), perm, sc);
                            permute(cols.2.slice(s, e), perm, sc);
                            permute(cols.3.slice(s, e), perm, sc);
                        }
                    },
                );
            }
            Orders { offsets, code, qty, price, reduce_only, row }
        }
    };

    Ok(GroupedBook { accounts, balances, positions, orders, n_asset_codes, n_market_codes })
}

/// A book grouped straight into the evaluation kernel's layout: one copy of the rows
/// (docs/ARCHITECTURE.md "Grouping"). The grouped CSR ([`GroupedBook`]) of the same rows is
/// what [`group_with`] returns for the same input.
#[derive(Debug, Clone)]
pub struct LaidOutBook {
    /// Account ids, ascending and unique; index = dense account number.
    pub accounts: Vec<i64>,
    pub layout: Sliced8,
    pub n_asset_codes: u32,
    pub n_market_codes: u32,
    /// Whether any position is a hedge-mode leg.
    pub has_sides: bool,
}

/// The fast path of [`group_into_layout`] declined the input (a flagged row, a duplicate
/// balance or a clashing position): the CSR path names the error or merges the rows.
struct Declined;

/// A wave's buffer: the rows of a range of partitions, in partition order (each partition's
/// rows in input order), read back by each partition's task.
#[derive(Default)]
struct WaveBuffer {
    key: Vec<u32>,
    f: [Vec<f64>; 3],
    lo: Vec<u16>,
}

/// The buffer's columns as parallel tasks write and read them.
struct WaveColumns {
    key: Disjoint<u32>,
    f: [Disjoint<f64>; 3],
    lo: Disjoint<u16>,
}

/// One partition's rows in a wave's buffer: local slots, keys, the used f64 columns (the
/// others empty).
type Region<'a> = (&'a mut [u16], &'a mut [u32], [&'a mut [f64]; 3]);

impl WaveColumns {
    /// Rows s..e of the buffer, `nf` f64 columns used.
    ///
    /// # Safety
    /// Only the calling task touches rows s..e meanwhile, and the wave's scatter wrote them.
    unsafe fn region(&self, s: usize, e: usize, nf: usize) -> Region<'_> {
        // SAFETY: as the caller guarantees.
        unsafe {
            let f: [&mut [f64]; 3] = std::array::from_fn(|c| if c < nf { self.f[c].slice(s, e) } else { &mut [][..] });
            (self.lo.slice(s, e), self.key.slice(s, e), f)
        }
    }

    /// Hands back the whole huge pages of the buffer's first `e` rows (its used columns, `nf`
    /// f64 ones) that the previous calls did not (`from`: where each column's stopped).
    ///
    /// # Safety
    /// Nothing reads or writes the buffer's first `e` rows meanwhile, nor later before writing.
    unsafe fn release_consumed(&self, e: usize, nf: usize, from: &mut [usize; 5]) {
        // SAFETY: as the caller guarantees.
        unsafe {
            release_consumed(&self.lo, e, &mut from[0]);
            release_consumed(&self.key, e, &mut from[1]);
            for c in 0..nf {
                release_consumed(&self.f[c], e, &mut from[2 + c]);
            }
        }
    }
}

/// Rows of a table the partitions' tasks lay out between two hand-backs of the buffer's
/// pages (when the grouping hands them back as it goes): 4 MiB of each f64 column, whole
/// huge pages.
const RELEASE_BATCH_ROWS: usize = 1 << 19;

/// `parts` cut into runs of consecutive partitions of at least `rows` rows each (the last
/// may hold fewer).
fn batches(parts: std::ops::Range<usize>, region: &[usize], rows: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = vec![];
    let mut p0 = parts.start;
    for p in parts.clone() {
        if region[p + 1] - region[p0] >= rows || p + 1 == parts.end {
            out.push(p0..p + 1);
            p0 = p + 1;
        }
    }
    out
}

/// How [`lay_out_table`] cuts a table into waves of partitions.
#[derive(Clone, Copy)]
struct WavePlan {
    /// Bytes a wave's buffer may hold above what the layout will hold when done.
    budget: usize,
    /// Buffer bytes per row.
    row_bytes: usize,
    /// The layout's bytes per row at the least (a row's lane, no padding): a wave's buffer
    /// may also hold the layout's least bytes for the rows still to write (from the wave's
    /// first partition on), since each partition's buffer pages are handed back once its
    /// rows are in the layout. None: the buffer alone stays within the budget.
    credit: Option<usize>,
}

impl WavePlan {
    /// Partition ranges, in order, each within the plan's bytes (a partition larger than
    /// that is a wave of its own).
    fn waves(&self, region: &[usize]) -> Vec<std::ops::Range<usize>> {
        let parts = region.len() - 1;
        let mut out = vec![];
        let mut p0 = 0;
        while p0 < parts {
            let credit = self.credit.map_or(0, |bytes| (region[parts] - region[p0]).saturating_mul(bytes));
            let max_rows = self.budget.saturating_add(credit) / self.row_bytes.max(1);
            let mut p1 = p0 + 1;
            while p1 < parts && region[p1 + 1] - region[p0] <= max_rows {
                p1 += 1;
            }
            out.push(p0..p1);
            p0 = p1;
        }
        if out.is_empty() {
            out.push(0..parts);
        }
        out
    }
}

/// An account's rows as a partition's task hands them on, in input order: their keys, their
/// ranks among the account's rows (the layout slot each takes), their indices into the
/// partition's buffer columns `f`.
struct HandedRows<'r> {
    keys: &'r [u32],
    ranks: &'r [u32],
    rows: &'r [u32],
    f: &'r [&'r mut [f64]; 3],
}

impl HandedRows<'_> {
    /// Column `c` of row `i`.
    #[inline(always)]
    fn f(&self, c: usize, i: usize) -> f64 {
        self.f[c][self.rows[i] as usize]
    }
}

/// Reads one value per cache line of `v` (in order, so the hardware prefetcher streams it):
/// brings `v` into the core's cache.
#[inline]
fn warm<T: Copy + Into<f64>>(v: &[T]) {
    let mut acc = 0.0;
    for x in v.iter().step_by(64 / std::mem::size_of::<T>()) {
        acc += (*x).into();
    }
    std::hint::black_box(acc);
}

/// Accounts with at most this many rows of a table rank them by comparing every pair
/// (branch-free); larger ones sort.
const PAIRWISE_ROWS: usize = 16;

/// Each of an account's keys' rank among them (their order) into `ranks`; true when two keys
/// are equal or `clash` marks two neighbours in sorted order (then the ranks are not a
/// permutation: the caller declines). A handful of keys count their smaller ones without
/// branches; more are sorted (`order` as scratch).
fn rank(keys: &[u32], ranks: &mut Vec<u32>, order: &mut Vec<u32>, clash: &impl Fn(u32, u32) -> bool) -> bool {
    ranks.clear();
    let c = keys.len();
    if c <= PAIRWISE_ROWS {
        let (mut sorted, mut taken) = ([0u32; PAIRWISE_ROWS], 0u32);
        for &k in keys {
            let r: u32 = keys.iter().map(|&x| u32::from(x < k)).sum();
            ranks.push(r);
            taken |= 1 << r;
            sorted[r as usize] = k;
        }
        // Distinct keys take the ranks 0..c once each; equal keys share one.
        taken != ((1u64 << c) - 1) as u32 || sorted[..c].windows(2).any(|w| clash(w[0], w[1]))
    } else {
        order.clear();
        order.extend(0..c as u32);
        order.sort_unstable_by_key(|&i| keys[i as usize]);
        ranks.resize(c, 0);
        for (t, &i) in order.iter().enumerate() {
            ranks[i as usize] = t as u32;
        }
        order.windows(2).any(|w| {
            let (k0, k1) = (keys[w[0] as usize], keys[w[1] as usize]);
            k0 == k1 || clash(k0, k1)
        })
    }
}

/// Lays table `t` out wave by wave: each wave scatters the rows of its partitions into the
/// buffer (`put(row, columns, buffer index, side cell)` writes one and tells whether it fails
/// a check; the cell is the row's in `side`, [`Space::scatter_parts`]),
/// then `lay(partitions, at, (columns, nf))` writes the wave's partitions into the layout
/// from the buffer (region index r at buffer index r − at: [`Space::lay_parts`] or
/// [`Space::lay_parts_masked`]) and tells whether it declines. Declined when a row fails its
/// check or `lay` declines. `nf`: f64 columns used. `buf` is the waves' buffer; with `keep`
/// its pages stay (for the next table to reuse: fresh pages cost the kernel a clear each)
/// instead of going back a run of partitions at a time ([`MemoryPlan::release`]).
#[allow(clippy::too_many_arguments)]
fn lay_out_table(
    space: &Space<'_>,
    (t, h, side): (usize, &Histogram, Option<&Histogram>),
    plan: &[std::ops::Range<usize>],
    (buf, keep): (&mut WaveBuffer, bool),
    nf: usize,
    put: impl Fn(usize, &WaveColumns, usize, &mut SideCell<'_>) -> bool + Sync,
    lay: impl Fn(std::ops::Range<usize>, usize, (&WaveColumns, usize)) -> bool,
) -> std::result::Result<(), Declined> {
    for parts in plan {
        let (p0, p1) = (parts.start, parts.end);
        let rows = h.region[p1] - h.region[p0];
        // Region index r sits at buffer index r - at.
        let at = h.region[p0];
        for v in [&mut buf.key as &mut dyn Grow, &mut buf.lo] {
            v.grow(rows);
        }
        for v in buf.f.iter_mut().take(nf) {
            v.grow(rows);
        }
        if space.release.is_some() {
            // A wave smaller than the last (the final one) keeps only the pages it writes.
            release_spare(&mut buf.key, rows);
            release_spare(&mut buf.lo, rows);
            for v in buf.f.iter_mut().take(nf) {
                release_spare(v, rows);
            }
        }
        let cols = WaveColumns {
            key: Disjoint::new(&mut buf.key),
            f: [Disjoint::new(&mut buf.f[0]), Disjoint::new(&mut buf.f[1]), Disjoint::new(&mut buf.f[2])],
            lo: Disjoint::new(&mut buf.lo),
        };
        let bad = space.scatter_parts(t, h, side, parts.clone(), |r, d, slot, cell| {
            // SAFETY: `scatter_parts` hands each row a distinct slot d of the wave's regions,
            // so d - at is a distinct index in 0..rows.
            unsafe { cols.lo.write(d - at, slot) };
            put(r, &cols, d - at, cell)
        });
        if bad {
            return Err(Declined);
        }
        // Pages go back as partitions are laid out only when the grouping releases at all.
        let batch = space.release.filter(|_| !keep);
        let runs = batch.map_or_else(|| vec![parts.clone()], |rows| batches(parts.clone(), &h.region, rows));
        let mut from = [0; 5];
        for run in runs {
            if lay(run.clone(), at, (&cols, nf)) {
                return Err(Declined);
            }
            if batch.is_some() {
                // SAFETY: the run's rows are in the layout, and no later step of this wave reads
                // them (the next wave writes its rows first).
                unsafe { cols.release_consumed(h.region[run.end] - at, nf, &mut from) };
            }
        }
        if space.release.is_some() && rows >= 1 << 16 {
            // The partitions' scratch buffers, freed meanwhile.
            release_freed();
        }
    }
    Ok(())
}

/// A buffer column made ready for a wave: room for `rows` values.
trait Grow {
    fn grow(&mut self, rows: usize);
}
impl<T> Grow for Vec<T> {
    fn grow(&mut self, rows: usize) {
        self.clear();
        if self.capacity() < rows {
            reserve_more(self, rows);
        }
    }
}

/// Groups balances and positions (with their sides, as [`group_with`]; no open orders)
/// straight into the evaluation kernel's layout ([`Sliced8`]), keeping no grouped copy of
/// the rows. The result's layout equals `Sliced8::new(&group_with(...))` field for field,
/// and so do its accounts; errors are [`group_with`]'s (the first offending row).
///
/// The histogram pass also counts each account's rows, so every group's slots, and so the
/// layout's final size, are known before a row moves ([`LaneLayout`]). Then, a *wave* of
/// partitions at a time, the rows are scattered into a buffer, and each partition's task
/// orders its rows in cache and writes its accounts' lanes of the layout directly, then
/// hands its buffer pages back — so building holds at most about a third of the book's
/// bytes above the finished layout, not a full grouped copy (a table whose buffer fits
/// within that plus the layout it has still to write is one wave: each of the benchmark
/// book's tables is). A book with duplicate balance rows, a flagged row or a clash takes the
/// [`group_with`] path (its error, or its merged rows laid out).
pub fn group_into_layout(
    bal: BalanceInput<'_>,
    pos: PositionInput<'_>,
    side: &[u8],
    n_asset_codes: u32,
    n_market_codes: u32,
) -> Result<LaidOutBook> {
    // A wave's buffer holds about a third of the input columns' bytes above the least bytes
    // of the layout it has still to write.
    let (nb, np) = (bal.account.len(), pos.account.len());
    let plan = MemoryPlan {
        budget: ((nb * 20 + np * 37) / 3).max(1 << 23),
        credit: true,
        release: (nb + np >= RELEASE_ROWS).then_some(RELEASE_BATCH_ROWS),
    };
    // One hand-off to the pool for the whole grouping: called from outside it, each parallel
    // step would otherwise be handed to a pool thread and back on its own.
    rayon::scope(|_| lay_out(bal, pos, side, n_asset_codes, n_market_codes, plan))
}

/// From this many rows in all, a grouping hands its transients' pages back to the operating
/// system as it goes. Below it they are a few megabytes at most, and handing them back
/// (`madvise`, `malloc_trim`) to fault them in again at the next grouping cost a fifth to a
/// quarter of a small book's grouping.
const RELEASE_ROWS: usize = 1 << 20;

/// How [`lay_out`] spends memory.
#[derive(Debug, Clone, Copy)]
struct MemoryPlan {
    /// A wave's buffer holds at most this many bytes...
    budget: usize,
    /// ...plus the layout's least bytes still to write, when set.
    credit: bool,
    /// Some(rows): buffer pages go back to the operating system as each run of partitions of
    /// at least that many rows is laid out ([`RELEASE_BATCH_ROWS`]), and freed transients
    /// after each step (`malloc_trim`).
    release: Option<usize>,
}

/// [`group_into_layout`] under a [`MemoryPlan`].
fn lay_out(
    bal: BalanceInput<'_>,
    pos: PositionInput<'_>,
    side: &[u8],
    n_asset_codes: u32,
    n_market_codes: u32,
    plan: MemoryPlan,
) -> Result<LaidOutBook> {
    let (na, nm) = (n_asset_codes, n_market_codes);
    lay_out_fast(bal, pos, side, na, nm, plan).or_else(|Declined| {
        let g = group_with(bal, pos, side, None, na, nm)?;
        let layout = Sliced8::new(&g);
        let has_sides = side.iter().any(|&s| s != SIDE_BOTH);
        Ok(LaidOutBook { accounts: g.accounts, layout, n_asset_codes: na, n_market_codes: nm, has_sides })
    })
}

/// A position's isolated margin as grouping keeps it: NaN and 0 both mean cross (+0.0).
#[inline(always)]
fn cross_as_zero(m: f64) -> f64 {
    if m.is_nan() {
        0.0
    } else {
        m
    }
}

/// The fast path of [`lay_out`]: Declined when the input needs [`group_with`] (for its error
/// or its merged rows). Tables with at most 64 keys (asset codes; market codes, times 4 with
/// hedge legs) rank their rows by key masks ([`masked`]), wider ones by ordering each
/// account's keys ([`rank`]).
fn lay_out_fast(
    bal: BalanceInput<'_>,
    pos: PositionInput<'_>,
    side: &[u8],
    na: u32,
    nm: u32,
    plan: MemoryPlan,
) -> std::result::Result<LaidOutBook, Declined> {
    let has_sides = side.iter().any(|&s| s != SIDE_BOTH);
    let keys = na.max(if has_sides { nm.saturating_mul(4) } else { nm });
    let args = (bal, pos, side, na, nm, plan);
    match keys {
        0..=8 => lay_out_by::<u8>(args, has_sides, true),
        9..=16 => lay_out_by::<u16>(args, has_sides, true),
        17..=32 => lay_out_by::<u32>(args, has_sides, true),
        33..=64 => lay_out_by::<u64>(args, has_sides, true),
        _ => lay_out_by::<u8>(args, has_sides, false),
    }
}

/// [`lay_out_fast`]'s arguments.
type FastArgs<'a> = (BalanceInput<'a>, PositionInput<'a>, &'a [u8], u32, u32, MemoryPlan);

/// Table t's histogram, its rows per slot (each slot's keys `key(row)` when `masked`) and
/// the stored isolated margins' histogram (given `isolated`, [`Space::count`]). None: a key
/// too large for the mask (a row the scatter rejects).
fn count_table<M: KeyMask>(
    space: &Space<'_>,
    t: usize,
    isolated: Option<&[f64]>,
    masked: bool,
    key: &(impl Fn(usize) -> u32 + Sync),
) -> Option<(Histogram, Counted<M>, Option<Histogram>)> {
    if masked {
        let (h, tallies, side) = space.count(t, isolated, || MaskTally::<M, _>::new(space.range, key));
        Some((h, Counted::Keys(join_masks(tallies)?), side))
    } else {
        let (h, tallies, side) = space.count(t, isolated, || ByteTally { slots: vec![0; space.range], full: false });
        Some((h, Counted::Rows(space.slot_counts(t, tallies)), side))
    }
}

/// [`lay_out_fast`], ranking by masks of type M when `masked`; `has_sides`: some position is
/// a hedge leg.
fn lay_out_by<M: KeyMask>(
    (bal, pos, side, na, nm, MemoryPlan { budget, credit, release }): FastArgs<'_>,
    has_sides: bool,
    masked: bool,
) -> std::result::Result<LaidOutBook, Declined> {
    let (nb, np) = (bal.account.len(), pos.account.len());
    let too_many = nb >= u32::MAX as usize || np >= u32::MAX as usize;
    if !same_lengths(&bal, &pos, side, None) || too_many || nm > MAX_PACKED_CODES {
        return Err(Declined);
    }
    let side_of = |r: usize| if side.is_empty() { SIDE_BOTH } else { side[r] };
    let mut space = Space::new([bal.account, pos.account, &[]]);
    space.release = release;
    let bal_key = |r: usize| bal.code[r];
    let pos_key = |r: usize| if has_sides { pack(pos.code[r], side_of(r)) } else { pos.code[r] };
    let (hb, cb, _) = count_table::<M>(&space, 0, None, masked, &bal_key).ok_or(Declined)?;
    let (hp, cp, hs) = count_table::<M>(&space, 1, Some(pos.isolated_margin), masked, &pos_key).ok_or(Declined)?;
    let hs = hs.expect("counted with the isolated margins");
    space.mark_seen([&cb, &cp]);
    let base = space.dense_bases();
    let accounts = space.accounts(&base);
    let (bal_count, pos_count) = (space.per_account(&cb, &base), space.per_account(&cp, &base));
    // Each partition's first stored isolated margin (accounts ascending): its region's start.
    let iso_base = &hs.region;
    let n_stored = iso_base[iso_base.len() - 1];
    // By key masks the positions' buffer holds no margins: the few stored ones go to a side
    // list in the buffer's order (each partition's region of it), their rows' keys flagged.
    let side_margins = if masked { vec![0.0; n_stored] } else { vec![] };
    let nf_pos = if masked { 2 } else { 3 };
    let width = CodeWidth::for_codes(na.max(nm));
    // Buffer bytes per row (key, f64 columns, local slot) and the layout's least bytes per
    // row (its lane: code and f64 columns; the masks and the few stored isolated margins
    // aside).
    // The balances' buffer is kept for the positions to reuse (its pages cleared once), so
    // their waves take no credit for pages handed back.
    let plan = |h: &Histogram, nf: usize, f64s: usize, keep: bool| {
        let lane_bytes = width.bytes() + 8 * f64s;
        let plan = WavePlan { budget, row_bytes: 6 + 8 * nf, credit: (credit && !keep).then_some(lane_bytes) };
        plan.waves(&h.region)
    };
    let waves = [plan(&hb, 1, 1, true), plan(&hp, nf_pos, 2, false)];
    let mut buf = WaveBuffer::default();
    let mut lanes = LaneLayout::new(width, bal_count, pos_count, n_stored);
    {
        let sink = lanes.sink();
        let bal_lanes = BalanceLanes { sink: &sink };
        lay_out_table(
            &space,
            (0, &hb, None),
            &waves[0],
            (&mut buf, true),
            1,
            |r, c, i, _| {
                let (code, qty) = (bal.code[r], bal.qty[r]);
                // SAFETY: each row has its own buffer index i (`lay_out_table`).
                unsafe {
                    c.key.write(i, code);
                    c.f[0].write(i, qty);
                }
                code >= na || !within(qty, MAX_AMOUNT)
            },
            |parts, at, cols| match &cb {
                Counted::Keys(masks) => {
                    space.lay_parts_masked(parts, at, &hb.region, &base, cols, masks, |k| k, &bal_lanes)
                }
                Counted::Rows(_) => space.lay_parts(
                    parts,
                    at,
                    &hb.region,
                    &base,
                    cols,
                    &|_, _| false,
                    &|_| (),
                    // SAFETY: each account is handed on once, by its partition's task, with
                    // distinct ranks.
                    &|_, d, a| unsafe { sink.balances(d, a.rows.len(), |i| (a.ranks[i], a.keys[i], a.f(0, i))) },
                ),
            },
        )?;
        drop(cb);
        // The balances' scratch is freed: hand its pages back before the positions' buffer
        // and layout grow (a long-lived process's heap would otherwise keep them).
        if release.is_some() {
            release_freed();
        }
        let mut side_margins = side_margins;
        let side_cols = Disjoint::new(&mut side_margins);
        lay_out_table(
            &space,
            (1, &hp, masked.then_some(&hs)),
            &waves[1],
            (&mut buf, false),
            nf_pos,
            |r, c, i, cell| {
                let (k, s, q, e, m) = (pos.code[r], side_of(r), pos.qty[r], pos.entry_price[r], pos.isolated_margin[r]);
                let (mut key, mut full, m0) = (pack(k, s), false, cross_as_zero(m));
                // SAFETY: each row has its own buffer index i (`lay_out_table`), each stored
                // margin its own place in the side list (its cell's next).
                unsafe {
                    c.f[0].write(i, q);
                    c.f[1].write(i, e);
                    if !masked {
                        c.f[2].write(i, m0);
                    } else if layout_stores(m0) {
                        match cell.take() {
                            Some(at) => side_cols.write(at, m0),
                            None => full = true,
                        }
                        key |= STORED_MARGIN;
                    }
                    c.key.write(i, key);
                }
                // validate_positions and validate_sides, in one test (as group_with); a full
                // cell: more stored margins than counted (the input changed meanwhile)
                full || k >= nm
                    || !within(q, MAX_QTY)
                    || !is_price(e, q == 0.0)
                    || !(m.is_nan() || (0.0..=MAX_AMOUNT).contains(&m))
                    || s > SIDE_SHORT
                    || (s == SIDE_LONG && q < 0.0)
                    || (s == SIDE_SHORT && q > 0.0)
            },
            |parts, at, cols| match &cp {
                Counted::Keys(masks) => space.lay_parts_masked(
                    parts,
                    at,
                    &hp.region,
                    &base,
                    cols,
                    masks,
                    |k| if has_sides { k & !STORED_MARGIN } else { (k & !STORED_MARGIN) >> 2 },
                    &PositionLanes { sink: &sink, iso_base, side: &side_cols, sides: has_sides },
                ),
                Counted::Rows(_) => space.lay_parts(
                    parts,
                    at,
                    &hp.region,
                    &base,
                    cols,
                    &clash,
                    &|p| iso_base[p],
                    // SAFETY: each account is handed on once, with distinct ranks, in ascending
                    // order within its partition, from its partition's first stored margin on.
                    &|at, d, a| unsafe {
                        sink.positions(d, a.rows.len(), at, |i| {
                            (a.ranks[i], a.keys[i] >> 2, a.f(0, i), a.f(1, i), a.f(2, i))
                        })
                    },
                ),
            },
        )?;
    }
    drop((space, hb, hp, hs, cp, buf));
    // SAFETY: both tables' passes handed every account its rows once (every partition of
    // each, every seen slot of each partition), and the positions' stored margins are those
    // the histogram counted.
    let layout = unsafe { lanes.finish() };
    // The transients (row counts, scratch, the stored margins' staging) are freed: hand them
    // back (a long-lived process's heap would otherwise keep them resident).
    if release.is_some() {
        release_freed();
    }
    Ok(LaidOutBook { accounts, layout, n_asset_codes: na, n_market_codes: nm, has_sides })
}

/// Balances written by key masks ([`Space::lay_parts_masked`]).
struct BalanceLanes<'s> {
    sink: &'s LaneSink<'s>,
}

impl<M: KeyMask> MaskedRows<M> for BalanceLanes<'_> {
    type State = ();

    unsafe fn account(&self, d: usize, keys: M) -> bool {
        // SAFETY: account d is this task's (the trait's contract).
        unsafe { self.sink.pad_balances(d, keys.ones() as usize) };
        false
    }

    #[inline(always)]
    unsafe fn row(&self, _: &mut (), d: usize, j: u32, key: u32, i: usize, f: &[&mut [f64]; 3]) {
        // SAFETY: account d is this task's, rank j its row's alone (the trait's contract).
        unsafe { self.sink.balance(d, j, key, f[0][i]) };
    }

    unsafe fn end(&self, _: &mut (), _: usize, _: std::ops::Range<usize>) -> bool {
        false
    }
}

/// Positions written by key masks ([`Space::lay_parts_masked`]): the partition's stored
/// isolated margins, read from the side list as their rows come (keys flagged
/// [`STORED_MARGIN`]), gathered (dense account, rank, value) and handed over in account order
/// at its end, from the partition's first (`iso_base`).
struct PositionLanes<'s> {
    sink: &'s LaneSink<'s>,
    iso_base: &'s [usize],
    /// The stored margins in buffer order, partition p's from `iso_base[p]` (the scatter
    /// wrote them before the partition's rows are laid out).
    side: &'s Disjoint<f64>,
    /// Keys are packed (market, side): a one-way row beside a leg of its market clashes.
    sides: bool,
}

/// A buffered position key's flag: the row's isolated margin is stored (the next of its
/// partition's side list). Keys by masks are below 64, so the bit is free.
const STORED_MARGIN: u32 = 1 << 31;

/// [`PositionLanes`]' state in a partition: its stored margins so far, the next's place in
/// the side list and the end of the partition's.
#[derive(Default)]
struct PositionsSeen {
    stored: Vec<(u32, u32, f64)>,
    next: usize,
    end: usize,
}

impl<M: KeyMask> MaskedRows<M> for PositionLanes<'_> {
    type State = PositionsSeen;

    fn begin(&self, seen: &mut PositionsSeen, p: usize) {
        (seen.next, seen.end) = (self.iso_base[p], self.iso_base[p + 1]);
    }

    unsafe fn account(&self, d: usize, keys: M) -> bool {
        // SAFETY: account d is this task's (the trait's contract).
        unsafe { self.sink.pad_positions(d, keys.ones() as usize) };
        self.sides && keys.clash()
    }

    #[inline(always)]
    unsafe fn row(&self, seen: &mut PositionsSeen, d: usize, j: u32, key: u32, i: usize, f: &[&mut [f64]; 3]) {
        // SAFETY: account d is this task's, rank j its row's alone (the trait's contract).
        unsafe { self.sink.position(d, j, (key & !STORED_MARGIN) >> 2, f[0][i], f[1][i]) };
        if key & STORED_MARGIN != 0 {
            // The scatter's cells bound the partition's flagged rows by its counted margins.
            assert!(seen.next < seen.end, "stored isolated margins as counted");
            // SAFETY: the partition's place, written by the scatter (the side list is zeroed
            // besides), read by its task alone.
            seen.stored.push((d as u32, j, unsafe { self.side.read(seen.next) }));
            seen.next += 1;
        }
    }

    unsafe fn end(&self, seen: &mut Self::State, p: usize, dense: std::ops::Range<usize>) -> bool {
        let stored = &mut seen.stored;
        let first = self.iso_base[p];
        if stored.len() != self.iso_base[p + 1] - first {
            stored.clear();
            return true;
        }
        stored.sort_unstable_by_key(|e| (e.0, e.1));
        let mut k = 0;
        for g in dense.start.div_ceil(GROUP)..dense.end.div_ceil(GROUP) {
            while k < stored.len() && (stored[k].0 as usize) < g * GROUP {
                k += 1;
            }
            // SAFETY: the group's first account is this partition's.
            unsafe { self.sink.group_stored_at(g, first + k) };
        }
        for (i, &(d, j, m)) in stored.iter().enumerate() {
            // SAFETY: the partition's margins take its indices first.. alone, in account order.
            unsafe { self.sink.store(first + i, d as usize, j, m) };
        }
        stored.clear();
        false
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct BalRow {
    code: u32,
    row: u32,
    qty: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct PosRow {
    code: u32,
    row: u32,
    qty: f64,
    entry: f64,
    isolated: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct OrdRow {
    code: u32,
    row: u32,
    qty: f64,
    price: f64,
    reduce_only: bool,
}

/// Codes used by `columns` map to strictly increasing universe indices.
fn increasing(columns: &[&[u32]], n_codes: u32, remap: &[u32]) -> bool {
    let mut used = vec![false; n_codes as usize];
    for codes in columns {
        for &c in codes.iter() {
            used[c as usize] = true;
        }
    }
    keeps_order(&used, remap)
}

/// True when `remap` maps the codes flagged in `used` to strictly increasing universe
/// indices (each account's rows, ordered by code, are then in universe order).
pub fn keeps_order(used: &[bool], remap: &[u32]) -> bool {
    let mut last: Option<u32> = None;
    for (c, _) in used.iter().enumerate().filter(|(_, &u)| u) {
        let u = remap[c];
        if last.is_some_and(|l| l >= u) {
            return false;
        }
        last = Some(u);
    }
    true
}

/// Within an account (rows sorted by packed (code, side)), a repeated (market, side) is an
/// error naming both rows, and so is a one-way (`both`) row beside a hedge leg of the same
/// market: one-way and hedge mode do not mix within an account's market.
fn check_unique_positions(accounts: &[i64], offsets: &[usize], rows: &[PosRow]) -> Result<()> {
    let n = accounts.len();
    let bad = |w: &[PosRow]| clash(w[0].code, w[1].code);
    let found = (0..n).into_par_iter().find_first(|&a| rows[offsets[a]..offsets[a + 1]].windows(2).any(bad));
    let Some(a) = found else { return Ok(()) };
    let w = rows[offsets[a]..offsets[a + 1]].windows(2).find(|w| bad(w)).expect("found above");
    Err(clash_error(accounts[a], (w[0].code, w[0].row), (w[1].code, w[1].row)))
}

/// Two adjacent position keys (packed (code, side), sorted) that may not share an account:
/// equal keys, or a `both` (0, which sorts first) beside a leg of the same market.
#[inline]
fn clash(k0: u32, k1: u32) -> bool {
    k0 == k1 || (k0 >> 2 == k1 >> 2 && k0 & 3 == 0)
}

/// The error for two clashing (packed key, input row) positions of `account`.
fn clash_error(account: i64, (k0, r0): (u32, u32), (k1, r1): (u32, u32)) -> CoreError {
    let (first, second) = (r0.min(r1) as usize, r0.max(r1) as usize);
    let side = SIDE_NAMES[(k0 & 3) as usize];
    let (column, message) = if k0 == k1 && side == "both" {
        (
            "market",
            format!("duplicate position of account {account} in one market; a position is the account's net position"),
        )
    } else if k0 == k1 {
        ("side", format!("duplicate {side} leg of account {account} in one market; one leg per side"))
    } else {
        (
            "side",
            format!(
                "account {account} holds a one-way ('both') position and a hedge leg in one market; \
                 an account's market is either one-way or hedged"
            ),
        )
    };
    CoreError::Book { table: Table::Positions, row: second, other_row: Some(first), column, message }
}

fn positions_of(offsets: Vec<usize>, rows: &[PosRow]) -> Positions {
    Positions {
        code: map_column(rows, |x| x.code >> 2),
        side: map_column(rows, |x| (x.code & 3) as u8),
        qty: map_column(rows, |x| x.qty),
        entry_price: map_column(rows, |x| x.entry),
        isolated_margin: map_column(rows, |x| x.isolated),
        row: map_column(rows, |x| x.row),
        offsets,
    }
}

fn orders_of(offsets: Vec<usize>, rows: &[OrdRow]) -> Orders {
    Orders {
        code: map_column(rows, |x| x.code),
        qty: map_column(rows, |x| x.qty),
        price: map_column(rows, |x| x.price),
        reduce_only: map_column(rows, |x| x.reduce_only),
        row: map_column(rows, |x| x.row),
        offsets,
    }
}

fn split_balances(offsets: Vec<usize>, rows: &[BalRow]) -> Balances {
    Balances { offsets, code: map_column(rows, |x| x.code), qty: map_column(rows, |x| x.qty) }
}

/// Merges adjacent rows of one code into their exact sum, correctly rounded, so the result
/// does not depend on the rows' order (rare: only books with duplicate balance rows get here).
fn merge_balances(offsets: &[usize], rows: &[BalRow]) -> Balances {
    let n = offsets.len() - 1;
    let mut out = Balances { offsets: Vec::with_capacity(n + 1), code: vec![], qty: vec![] };
    out.offsets.push(0);
    for a in 0..n {
        let rows = &rows[offsets[a]..offsets[a + 1]];
        let mut i = 0;
        while i < rows.len() {
            let j = i + rows[i..].iter().take_while(|x| x.code == rows[i].code).count();
            out.code.push(rows[i].code);
            out.qty.push(if j - i == 1 { rows[i].qty } else { exact_sum(rows[i..j].iter().map(|x| x.qty)) });
            i = j;
        }
        out.offsets.push(out.code.len());
    }
    out
}

/// Every column of a table has as many rows as its `account` column.
fn same_length(table: Table, n: usize, columns: &[(&'static str, usize)]) -> Result<()> {
    match columns.iter().find(|&&(_, len)| len != n) {
        Some(&(col, len)) => {
            Err(CoreError::book(table, len.min(n), col, format!("column '{col}' has {len} rows, 'account' has {n}")))
        }
        None => Ok(()),
    }
}

fn validate_balances(b: &BalanceInput<'_>, n_codes: u32) -> Result<()> {
    let n = b.account.len();
    same_length(Table::Balances, n, &[("asset", b.code.len()), ("qty", b.qty.len())])?;
    let bad = first_row(n, |lo, hi| {
        b.code[lo..hi].iter().zip(&b.qty[lo..hi]).position(|(&c, &q)| c >= n_codes || !within(q, MAX_AMOUNT))
    });
    if let Some(r) = bad {
        if b.code[r] >= n_codes {
            return Err(CoreError::book(
                Table::Balances,
                r,
                "asset",
                format!("asset code {} is out of range (0..{n_codes})", b.code[r]),
            ));
        }
        let q = b.qty[r];
        let why =
            if q.is_finite() { format!("beyond ±{MAX_AMOUNT:e} (the ledgers' range)") } else { "not finite".into() };
        return Err(CoreError::book(Table::Balances, r, "qty", format!("qty {q} is {why}")));
    }
    Ok(())
}

fn validate_positions(p: &PositionInput<'_>, n_codes: u32) -> Result<()> {
    let n = p.account.len();
    same_length(
        Table::Positions,
        n,
        &[
            ("market", p.code.len()),
            ("qty", p.qty.len()),
            ("entry_price", p.entry_price.len()),
            ("isolated_margin", p.isolated_margin.len()),
        ],
    )?;
    let row_error = |r: usize| -> Option<CoreError> {
        let (q, e, m) = (p.qty[r], p.entry_price[r], p.isolated_margin[r]);
        if p.code[r] >= n_codes {
            return Some(CoreError::book(
                Table::Positions,
                r,
                "market",
                format!("market code {} is out of range (0..{n_codes})", p.code[r]),
            ));
        }
        if !q.is_finite() {
            return Some(CoreError::book(Table::Positions, r, "qty", format!("qty {q} is not finite")));
        }
        if q.abs() > MAX_QTY {
            return Some(CoreError::book(Table::Positions, r, "qty", format!("|qty| {q} must be ≤ {MAX_QTY:e}")));
        }
        if !e.is_finite() || e < 0.0 || (e == 0.0 && q != 0.0) {
            return Some(CoreError::book(
                Table::Positions,
                r,
                "entry_price",
                format!("entry_price {e} must be finite and > 0"),
            ));
        }
        // An open position divides by its entry price (inverse uPnL); a flat one may say 0.
        if !is_price(e, q == 0.0) {
            return Some(CoreError::book(
                Table::Positions,
                r,
                "entry_price",
                format!("entry_price {e} must lie in [{MIN_PRICE:e}, {MAX_PRICE:e}]"),
            ));
        }
        // NaN means cross; otherwise 0 (cross) or an isolated margin the ledgers hold.
        if !(m.is_nan() || (0.0..=MAX_AMOUNT).contains(&m)) {
            return Some(CoreError::book(
                Table::Positions,
                r,
                "isolated_margin",
                format!("isolated_margin {m} must be finite, ≥ 0 and ≤ {MAX_AMOUNT:e} (0 or NaN means cross)"),
            ));
        }
        None
    };
    let bad = first_row(n, |lo, hi| {
        let rows =
            p.code[lo..hi].iter().zip(&p.qty[lo..hi]).zip(&p.entry_price[lo..hi]).zip(&p.isolated_margin[lo..hi]);
        rows.map(|(((&c, &q), &e), &m)| (c, q, e, m)).position(|(c, q, e, m)| {
            // the conditions of row_error, in one pass
            c >= n_codes
                || !within(q, MAX_QTY)
                || !is_price(e, q == 0.0)
                || !(m.is_nan() || (0.0..=MAX_AMOUNT).contains(&m))
        })
    });
    match bad {
        Some(r) => Err(row_error(r).expect("row has an error")),
        None => Ok(()),
    }
}

/// A side per position row (or none: all one-way); a long leg holds qty ≥ 0, a short leg ≤ 0.
fn validate_sides(p: &PositionInput<'_>, side: &[u8]) -> Result<()> {
    if side.is_empty() {
        return Ok(());
    }
    let n = p.account.len();
    if side.len() != n {
        return Err(CoreError::book(
            Table::Positions,
            side.len().min(n),
            "side",
            format!("column 'side' has {} rows, 'account' has {n}", side.len()),
        ));
    }
    let bad = |s: u8, q: f64| s > SIDE_SHORT || (s == SIDE_LONG && q < 0.0) || (s == SIDE_SHORT && q > 0.0);
    let r = first_row(n, |lo, hi| side[lo..hi].iter().zip(&p.qty[lo..hi]).position(|(&s, &q)| bad(s, q)));
    let Some(r) = r else { return Ok(()) };
    let (s, q) = (side[r], p.qty[r]);
    Err(if s > SIDE_SHORT {
        CoreError::book(Table::Positions, r, "side", format!("side code {s} is not 0 (both), 1 (long) or 2 (short)"))
    } else {
        let need = if s == SIDE_LONG { "≥ 0" } else { "≤ 0" };
        CoreError::book(
            Table::Positions,
            r,
            "qty",
            format!("qty {q} of a {} leg must be {need}", SIDE_NAMES[s as usize]),
        )
    })
}

fn validate_orders(o: &OrderInput<'_>, n_codes: u32) -> Result<()> {
    let n = o.account.len();
    same_length(
        Table::Orders,
        n,
        &[
            ("market", o.code.len()),
            ("side", o.side.len()),
            ("qty", o.qty.len()),
            ("price", o.price.len()),
            ("reduce_only", o.reduce_only.len()),
        ],
    )?;
    let bad =
        |c: u32, s: u8, q: f64, p: f64| c >= n_codes || s > 1 || !(q > 0.0 && q <= MAX_QTY) || !is_price(p, false);
    let r = first_row(n, |lo, hi| (lo..hi).position(|r| bad(o.code[r], o.side[r], o.qty[r], o.price[r])));
    let Some(r) = r else { return Ok(()) };
    let (c, s, q, p) = (o.code[r], o.side[r], o.qty[r], o.price[r]);
    Err(if c >= n_codes {
        CoreError::book(Table::Orders, r, "market", format!("market code {c} is out of range (0..{n_codes})"))
    } else if s > 1 {
        CoreError::book(Table::Orders, r, "side", format!("side code {s} is not 0 (buy) or 1 (sell)"))
    } else if !(q > 0.0 && q <= MAX_QTY) {
        CoreError::book(Table::Orders, r, "qty", format!("qty {q} must be finite, > 0 and ≤ {MAX_QTY:e}"))
    } else {
        CoreError::book(
            Table::Orders,
            r,
            "price",
            format!("price {p} must be finite and > 0, within [{MIN_PRICE:e}, {MAX_PRICE:e}]"),
        )
    })
}

/// The first row in `0..n` that `bad_in(lo, hi)` finds (it returns an offset within the
/// range), searching ranges of rows in parallel: tight loops over slices, not a task per row.
fn first_row(n: usize, bad_in: impl Fn(usize, usize) -> Option<usize> + Sync) -> Option<usize> {
    const ROWS: usize = 1 << 14;
    (0..n.div_ceil(ROWS)).into_par_iter().find_map_first(|c| {
        let (lo, hi) = (c * ROWS, ((c + 1) * ROWS).min(n));
        bad_in(lo, hi).map(|i| lo + i)
    })
}

/// Every column of every table has as many rows as its `account` column (the fused checks
/// of [`group_with`] read the columns row by row).
fn same_lengths(bal: &BalanceInput<'_>, pos: &PositionInput<'_>, side: &[u8], orders: Option<&OrderInput<'_>>) -> bool {
    let (nb, np) = (bal.account.len(), pos.account.len());
    let b = bal.code.len() == nb && bal.qty.len() == nb;
    let p = [pos.code.len(), pos.qty.len(), pos.entry_price.len(), pos.isolated_margin.len()].iter().all(|&l| l == np)
        && (side.is_empty() || side.len() == np);
    let o = orders.is_none_or(|o| {
        let n = o.account.len();
        [o.code.len(), o.side.len(), o.qty.len(), o.price.len(), o.reduce_only.len()].iter().all(|&l| l == n)
    });
    b && p && o
}

/// Rows ahead of the current one whose slot's tally entry the counting pass prefetches.
const PREFETCH_ROWS: usize = 16;

/// Rows a chunk of the scatter takes (its rows keep their input order within a partition).
const SCATTER_ROWS: usize = 1 << 18;
/// About this many rows per partition, so a partition's columns stay in a core's L2 cache
/// while [`Space::order`] sorts it.
const PARTITION_ROWS: u128 = 1 << 15;

/// The accounts' slots: account ids → slots 0..range in ascending id order (id − min when
/// the ids are dense, the dense index otherwise), cut into partitions of 2^shift slots.
/// A table's rows are scattered to their partition's region (each partition's rows are
/// contiguous in the output, since the output is ordered by account), then each partition
/// is ordered by (account, key) within a core's cache.
struct Space<'a> {
    ids: [&'a [i64]; 3],
    min: i64,
    /// Sparse ids: each table's rows as dense indices (empty when the ids are dense).
    dense: Vec<Vec<u32>>,
    range: usize,
    shift: u32,
    parts: usize,
    /// Slots holding an account (dense ids); empty for sparse ids (every slot does).
    seen: Vec<AtomicBool>,
    sorted_ids: Vec<i64>,
    /// Whether transient pages go back to the operating system as the grouping goes, and the
    /// rows laid out between two hand-backs of a buffer's ([`MemoryPlan::release`]).
    release: Option<usize>,
}

/// A table's rows per (scatter chunk, partition), and each partition's region of the output.
struct Histogram {
    chunks: Vec<usize>,
    /// `counts[c * parts + p]`: rows of chunk c in partition p; then where the first goes.
    cursor: Vec<usize>,
    /// Partition p's rows are `region[p]..region[p + 1]`.
    region: Vec<usize>,
}

impl Histogram {
    /// From each chunk's rows per partition: partition p's region holds chunk 0's rows of p,
    /// then chunk 1's, ...
    fn of(chunks: Vec<usize>, counts: &[Vec<usize>], parts: usize) -> Self {
        let mut cursor = vec![0usize; counts.len() * parts];
        let mut region = Vec::with_capacity(parts + 1);
        let mut next = 0;
        for p in 0..parts {
            region.push(next);
            for (c, h) in counts.iter().enumerate() {
                cursor[c * parts + p] = next;
                next += h[p];
            }
        }
        region.push(next);
        Histogram { chunks, cursor, region }
    }

    /// Where chunk c's rows of partition p end (the next chunk's start, or the region's end).
    fn cell_end(&self, c: usize, p: usize) -> usize {
        let parts = self.region.len() - 1;
        if c + 2 < self.chunks.len() {
            self.cursor[(c + 1) * parts + p]
        } else {
            self.region[p + 1]
        }
    }
}

/// A scattering chunk's cell of a side histogram's partition (the rows of chunk c and
/// partition p that the side holds): its next place, bounded by the cell's end.
struct SideCell<'a> {
    next: &'a mut usize,
    side: Option<&'a Histogram>,
    c: usize,
    p: usize,
}

impl SideCell<'_> {
    /// The next place in the cell; None when the cell is full (more side rows than counted)
    /// or there is no side.
    #[inline(always)]
    fn take(&mut self) -> Option<usize> {
        let end = self.side?.cell_end(self.c, self.p);
        (*self.next < end).then(|| {
            *self.next += 1;
            *self.next - 1
        })
    }
}

/// A table's rows per slot ([`Space::count`]): each counting task's tally (a byte per slot,
/// the common case), or exact counts when a task counted 255 rows or more for one slot.
enum SlotCounts {
    Tasks(Vec<Vec<u8>>),
    Exact(Vec<u32>),
}

impl SlotCounts {
    #[inline]
    fn at(&self, s: usize) -> u32 {
        match self {
            SlotCounts::Tasks(t) => t.iter().map(|c| u32::from(c[s])).sum(),
            SlotCounts::Exact(e) => e[s],
        }
    }
}

/// What a counting task keeps per slot ([`Space::count`]): `add(slot, row)` for each row.
trait Tally: Send {
    fn add(&mut self, slot: usize, row: usize);
    /// Brings `slot`'s entry towards the core ahead of its row's `add`: the rows' slots come
    /// in no order, and a tally larger than the core's cache (a book of millions of accounts)
    /// would otherwise wait on memory once per row.
    fn prefetch(&self, _slot: usize) {}
}

/// A counting task that marks each row's slot seen (dense ids; sparse ones have no marks).
struct MarkSeen<'s>(&'s [AtomicBool]);

impl Tally for MarkSeen<'_> {
    #[inline(always)]
    fn add(&mut self, slot: usize, _row: usize) {
        if !self.0.is_empty() {
            self.0[slot].store(true, Ordering::Relaxed);
        }
    }
}

/// A counting task's rows per slot, a byte each (they stay in a core's cache); `full` when
/// one reached 255.
struct ByteTally {
    slots: Vec<u8>,
    full: bool,
}

impl Tally for ByteTally {
    #[inline(always)]
    fn add(&mut self, slot: usize, _row: usize) {
        let x = &mut self.slots[slot];
        self.full |= *x == u8::MAX;
        *x = x.wrapping_add(1);
    }

    #[inline(always)]
    fn prefetch(&self, slot: usize) {
        prefetch(self.slots.as_ptr().wrapping_add(slot));
    }
}

/// A table's rows per slot: counted, or each slot's keys ([`masked`]).
enum Counted<M> {
    Rows(SlotCounts),
    Keys(Vec<M>),
}

impl<M: KeyMask> Counted<M> {
    #[inline]
    fn at(&self, s: usize) -> u32 {
        match self {
            Counted::Rows(c) => c.at(s),
            Counted::Keys(m) => m[s].ones(),
        }
    }
}

/// Per-task buffers of [`Space::order`], reused from partition to partition.
#[derive(Default)]
struct Scratch {
    start: Vec<u32>,
    perm: Vec<u32>,
    keys: Vec<u32>,
    ranks: Vec<u32>,
    f64s: Vec<f64>,
    u32s: Vec<u32>,
    bools: Vec<bool>,
}

/// Columns [`permute`] reorders through a [`Scratch`] buffer of their type.
trait Permutable: Copy {
    fn buffer(s: &mut Scratch) -> &mut Vec<Self>;
}
impl Permutable for f64 {
    fn buffer(s: &mut Scratch) -> &mut Vec<f64> {
        &mut s.f64s
    }
}
impl Permutable for u32 {
    fn buffer(s: &mut Scratch) -> &mut Vec<u32> {
        &mut s.u32s
    }
}
impl Permutable for bool {
    fn buffer(s: &mut Scratch) -> &mut Vec<bool> {
        &mut s.bools
    }
}

/// `col[i] = old col[perm[i]]` (nothing to do for the identity, `None`).
fn permute<T: Permutable>(col: &mut [T], perm: Option<&[u32]>, scratch: &mut Scratch) {
    let Some(perm) = perm else { return };
    let buf = T::buffer(scratch);
    buf.clear();
    buf.extend(perm.iter().map(|&i| col[i as usize]));
    col.copy_from_slice(buf);
}

impl<'a> Space<'a> {
    fn new(ids: [&'a [i64]; 3]) -> Self {
        let total: usize = ids.iter().map(|c| c.len()).sum();
        let rows = ids.iter().map(|c| c.len()).max().unwrap_or(0);
        let (min, max) = ids
            .iter()
            .flat_map(|c| {
                c.par_chunks(1 << 16)
                    .map(|c| c.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x))))
                    .collect::<Vec<_>>()
            })
            .fold((i64::MAX, i64::MIN), |(a, b), (c, d)| (a.min(c), b.max(d)));
        let span = if total == 0 { 0 } else { (max as i128 - min as i128 + 1) as u128 };
        let (range, dense, seen, sorted_ids) = if span <= (2 * total + 1024) as u128 && span < u32::MAX as u128 {
            // Dense ids (the common case): slot = id − min, marked seen by the histogram.
            let range = span as usize;
            (range, vec![], (0..range).map(|_| AtomicBool::new(false)).collect(), vec![])
        } else {
            // Sparse ids: sort the distinct ids and binary-search each row.
            let mut sorted: Vec<i64> = Vec::with_capacity(total);
            for c in ids {
                sorted.extend_from_slice(c);
            }
            sorted.par_sort_unstable();
            sorted.dedup();
            sorted.shrink_to_fit();
            let dense = ids
                .iter()
                .map(|c| c.par_iter().map(|id| sorted.binary_search(id).expect("id was collected") as u32).collect())
                .collect();
            (sorted.len(), dense, vec![], sorted)
        };
        // Partitions of about PARTITION_ROWS rows (slots fit the u16 local slot).
        let want = (PARTITION_ROWS * range as u128 / rows.max(1) as u128).max(1);
        let shift = (127 - want.leading_zeros()).min(16);
        let parts = range.div_ceil(1 << shift);
        Space { ids, min, dense, range, shift, parts, seen, sorted_ids, release: None }
    }

    /// Row r of table t's slot.
    #[inline(always)]
    fn slot(&self, t: usize, r: usize) -> u32 {
        if self.dense.is_empty() {
            self.ids[t][r].wrapping_sub(self.min) as u32
        } else {
            self.dense[t][r]
        }
    }

    #[inline(always)]
    fn is_seen(&self, slot: usize) -> bool {
        self.seen.is_empty() || self.seen[slot].load(Ordering::Relaxed)
    }

    /// Table t's rows per chunk and partition; marks the slots seen (every store writes
    /// true, whatever the order).
    fn histogram(&self, t: usize) -> Histogram {
        self.count(t, None, || MarkSeen(&self.seen)).0
    }

    /// Table t's rows per chunk and partition (its [`Histogram`]), what one [`Tally`] per
    /// counting task (from `tally()`) keeps of each row's slot (the layout's group widths
    /// come from the rows per slot; the CSR path marks slots seen), and, given the positions'
    /// isolated margins, the stored ones' histogram (their region per partition, in the
    /// layout's order of stored margins: each partition's first is its region's start).
    fn count<T: Tally>(
        &self,
        t: usize,
        isolated: Option<&[f64]>,
        tally: impl Fn() -> T + Sync,
    ) -> (Histogram, Vec<T>, Option<Histogram>) {
        let n = self.ids[t].len();
        let n_chunks = n.div_ceil(SCATTER_ROWS).max(1);
        let chunks: Vec<usize> = (0..=n_chunks).map(|c| (c * SCATTER_ROWS).min(n)).collect();
        let (parts, shift) = (self.parts, self.shift);
        // One tally per task (they stay in a core's cache), each task a run of whole chunks.
        let tasks = rayon::current_num_threads().clamp(1, n_chunks);
        type Hists = Vec<(Vec<usize>, Vec<usize>)>;
        let tallies: Vec<(Hists, T)> = (0..tasks)
            .into_par_iter()
            .map(|k| {
                let mut slots = tally();
                let hists = (k * n_chunks / tasks..(k + 1) * n_chunks / tasks)
                    .map(|c| {
                        let rows = chunks[c]..chunks[c + 1];
                        let last = rows.end.saturating_sub(1);
                        let ahead = |r: usize| self.slot(t, (r + PREFETCH_ROWS).min(last)) as usize;
                        let mut h = vec![0usize; parts];
                        let Some(m) = isolated else {
                            for r in rows {
                                slots.prefetch(ahead(r));
                                let s = self.slot(t, r) as usize;
                                h[s >> shift] += 1;
                                slots.add(s, r);
                            }
                            return (h, vec![]);
                        };
                        let mut stored = vec![0usize; parts];
                        for r in rows {
                            slots.prefetch(ahead(r));
                            let s = self.slot(t, r) as usize;
                            h[s >> shift] += 1;
                            stored[s >> shift] += usize::from(layout_stores(cross_as_zero(m[r])));
                            slots.add(s, r);
                        }
                        (h, stored)
                    })
                    .collect();
                (hists, slots)
            })
            .collect();
        let (mut counts, mut stored, mut slots) = (Vec::with_capacity(n_chunks), vec![], Vec::with_capacity(tasks));
        for (hists, sl) in tallies {
            for (h, st) in hists {
                counts.push(h);
                stored.push(st);
            }
            slots.push(sl);
        }
        let side = isolated.map(|_| Histogram::of(chunks.clone(), &stored, parts));
        (Histogram::of(chunks, &counts, parts), slots, side)
    }

    /// Table t's rows per slot from the counting tasks' byte tallies (exact counts when a
    /// task counted 255 rows or more for one slot).
    fn slot_counts(&self, t: usize, tallies: Vec<ByteTally>) -> SlotCounts {
        if tallies.iter().any(|b| b.full) {
            // An account that large is rare: count exactly instead.
            drop(tallies);
            let mut exact = vec![0u32; self.range];
            for r in 0..self.ids[t].len() {
                exact[self.slot(t, r) as usize] += 1;
            }
            SlotCounts::Exact(exact)
        } else {
            SlotCounts::Tasks(tallies.into_iter().map(|b| b.slots).collect())
        }
    }

    /// Marks seen the slots some row of the counted tables takes (dense ids).
    fn mark_seen<M: KeyMask>(&self, counts: [&Counted<M>; 2]) {
        if !self.seen.is_empty() {
            self.seen.par_iter().enumerate().with_min_len(1 << 14).for_each(|(s, seen)| {
                if counts.iter().any(|c| c.at(s) > 0) {
                    seen.store(true, Ordering::Relaxed);
                }
            });
        }
    }

    /// The counted rows of each account (dense index).
    fn per_account<M: KeyMask>(&self, counts: &Counted<M>, base: &[usize]) -> Vec<u32> {
        self.per_seen(base, |j| counts.at(j))
    }

    /// `f(slot)` of each seen slot, at its dense index (accounts ascending).
    fn per_seen<T: Send>(&self, base: &[usize], f: impl Fn(usize) -> T + Sync) -> Vec<T> {
        let n = base[self.parts];
        let mut out = reserved_column::<T>(n);
        let o = Disjoint::new(&mut out);
        let w = 1usize << self.shift;
        (0..self.parts).into_par_iter().for_each(|p| {
            let mut d = base[p];
            for j in p * w..((p + 1) * w).min(self.range) {
                if self.is_seen(j) {
                    // SAFETY: partition p writes the dense indices base[p]..base[p + 1].
                    unsafe { o.write(d, f(j)) };
                    d += 1;
                }
            }
        });
        // SAFETY: the partitions wrote every dense index 0..n.
        unsafe { out.set_len(n) };
        out
    }

    /// Dense index of each partition's first slot (`parts + 1` entries).
    fn dense_bases(&self) -> Vec<usize> {
        let w = 1usize << self.shift;
        let counts: Vec<usize> = (0..self.parts)
            .into_par_iter()
            .map(|p| (p * w..((p + 1) * w).min(self.range)).filter(|&j| self.is_seen(j)).count())
            .collect();
        let mut base = Vec::with_capacity(self.parts + 1);
        base.push(0);
        for c in counts {
            base.push(base[base.len() - 1] + c);
        }
        base
    }

    /// Account ids, ascending (index = dense account number).
    fn accounts(&mut self, base: &[usize]) -> Vec<i64> {
        if self.seen.is_empty() {
            return std::mem::take(&mut self.sorted_ids);
        }
        let min = self.min;
        self.per_seen(base, |j| min + j as i64)
    }

    /// Sends each row of table t, chunk by chunk in input order, to the next slot of its
    /// partition's region: `put(row, slot, local slot)` writes it and tells whether the row
    /// fails a check. True when any row does.
    fn scatter(&self, t: usize, h: &Histogram, put: impl Fn(usize, usize, u16) -> bool + Sync) -> bool {
        self.scatter_parts(t, h, None, 0..self.parts, |r, d, slot, _| put(r, d, slot))
    }

    /// [`Space::scatter`] of the rows whose partition lies in `parts` only (one wave), each
    /// row handed its chunk's [`SideCell`] of its partition in `side` (a second, sparser
    /// histogram of the same chunks: the stored isolated margins; with None every cell is
    /// empty).
    fn scatter_parts(
        &self,
        t: usize,
        h: &Histogram,
        side: Option<&Histogram>,
        parts: std::ops::Range<usize>,
        put: impl Fn(usize, usize, u16, &mut SideCell<'_>) -> bool + Sync,
    ) -> bool {
        let mask = (1u32 << self.shift) - 1;
        let n_parts = self.parts.max(1);
        let mut cursor = h.cursor.clone();
        let mut side_cursor = side.map_or_else(|| vec![0; cursor.len()], |s| s.cursor.clone());
        cursor
            .par_chunks_mut(n_parts)
            .zip(side_cursor.par_chunks_mut(n_parts))
            .enumerate()
            .map(|(c, (cur, side_cur))| {
                let mut bad = false;
                for r in h.chunks[c]..h.chunks[c + 1] {
                    let s = self.slot(t, r);
                    let p = (s >> self.shift) as usize;
                    if parts.contains(&p) {
                        let d = &mut cur[p];
                        bad |= put(r, *d, (s & mask) as u16, &mut SideCell { next: &mut side_cur[p], side, c, p });
                        *d += 1;
                    }
                }
                bad
            })
            .reduce(|| false, |a, b| a | b)
    }

    /// Orders each partition's region (rows in input order, as the scatter left them) by
    /// (account, key, input row), in parallel over partitions: a counting sort by local slot
    /// and an insertion sort of each account's keys (a handful of rows). Fills `offsets`
    /// (one per account, and the total), hands `apply(s, e, perm, keys)` each region with
    /// its permutation (None when the region is already in order: grouped input costs no
    /// moves) and its keys in order, and returns the first account (dense index) whose
    /// sorted keys `flag` marks.
    #[allow(clippy::too_many_arguments)]
    fn order(
        &self,
        region: &[usize],
        base: &[usize],
        lo: &[u16],
        key: &Disjoint<u32>,
        offsets: &mut Vec<usize>,
        flag: impl Fn(&[u32]) -> bool + Sync,
        apply: impl Fn(usize, usize, Option<&[u32]>, &[u32], &mut Scratch) + Sync,
    ) -> Option<usize> {
        let n = base[self.parts];
        *offsets = reserved_column::<usize>(n + 1);
        let out = Disjoint::new(offsets);
        let found = self.order_parts(0..self.parts, (0, 0), region, base, lo, key, &out, flag, apply);
        // SAFETY: the partitions wrote offsets 0..n; the last is the total.
        unsafe {
            out.write(n, region[self.parts]);
            offsets.set_len(n + 1);
        }
        found
    }

    /// [`Space::order`] of the partitions `parts` (one wave) held in a buffer: a partition
    /// region's row i (region index) sits at buffer index i − `at.0` ("at" = (region index of
    /// buffer slot 0, dense account of offset slot 0)); `lo` and `key` are the buffer's, and
    /// account d's offset (a buffer index) goes to `out[d − at.1]`.
    #[allow(clippy::too_many_arguments)]
    fn order_parts(
        &self,
        parts: std::ops::Range<usize>,
        at: (usize, usize),
        region: &[usize],
        base: &[usize],
        lo: &[u16],
        key: &Disjoint<u32>,
        out: &Disjoint<usize>,
        flag: impl Fn(&[u32]) -> bool + Sync,
        apply: impl Fn(usize, usize, Option<&[u32]>, &[u32], &mut Scratch) + Sync,
    ) -> Option<usize> {
        let w = 1usize << self.shift;
        parts
            .into_par_iter()
            .map_init(Scratch::default, |sc, p| {
                let (s, e) = (region[p] - at.0, region[p + 1] - at.0);
                // SAFETY: only this task touches the region s..e; the slice ends here.
                let slots = self.sort_part(p, &lo[s..e], unsafe { key.slice(s, e) }, sc);
                let (mut d, mut a0, mut first) = (base[p], 0usize, None);
                for j in 0..slots {
                    let a1 = sc.start[j] as usize;
                    if self.is_seen(p * w + j) {
                        // SAFETY: partition p writes the dense indices base[p]..base[p + 1].
                        unsafe { out.write(d - at.1, s + a0) };
                        if first.is_none() && flag(&sc.keys[a0..a1]) {
                            first = Some(d);
                        }
                        d += 1;
                    }
                    a0 = a1;
                }
                let identity = sc.perm.iter().enumerate().all(|(i, &x)| x as usize == i);
                let (perm, keys) = (std::mem::take(&mut sc.perm), std::mem::take(&mut sc.keys));
                apply(s, e, (!identity).then_some(&perm[..]), &keys, sc);
                (sc.perm, sc.keys) = (perm, keys);
                first
            })
            .reduce(|| None, |a, b| a.into_iter().chain(b).min())
    }

    /// Partition p's rows (region-relative, in input order: local slots `lo`) grouped by slot
    /// with a counting sort: `sc.perm` the rows by slot, in input order within a slot, and
    /// `sc.start[j]` the end of slot j's rows. Returns the partition's slot count.
    fn group_part(&self, p: usize, lo: &[u16], sc: &mut Scratch) -> usize {
        let w = 1usize << self.shift;
        let slots = w.min(self.range - p * w);
        let start = &mut sc.start;
        start.clear();
        start.resize(slots + 1, 0);
        for &l in lo {
            start[l as usize + 1] += 1;
        }
        for j in 0..slots {
            start[j + 1] += start[j];
        }
        // Stable counting sort of the rows by slot (start[j] ends as the end of slot j's rows).
        let perm = &mut sc.perm;
        perm.clear();
        perm.resize(lo.len(), 0);
        for (i, &l) in lo.iter().enumerate() {
            let c = &mut start[l as usize];
            perm[*c as usize] = i as u32;
            *c += 1;
        }
        slots
    }

    /// [`Space::group_part`], then each slot's rows ordered by (key, input row): `sc.keys`
    /// holds the rows' keys in that order.
    fn sort_part(&self, p: usize, lo: &[u16], key: &[u32], sc: &mut Scratch) -> usize {
        let slots = self.group_part(p, lo, sc);
        let perm = &mut sc.perm;
        sc.keys.clear();
        sc.keys.extend(perm.iter().map(|&i| key[i as usize]));
        let (keys, mut a0) = (&mut sc.keys, 0usize);
        for &end in &sc.start[..slots] {
            let a1 = end as usize;
            let (k, r) = (&mut keys[a0..a1], &mut perm[a0..a1]);
            // Rows arrive in input order: a stable insertion sort by key gives (key, input
            // row) order.
            for i in 1..k.len() {
                let mut x = i;
                while x > 0 && k[x - 1] > k[x] {
                    k.swap(x - 1, x);
                    r.swap(x - 1, x);
                    x -= 1;
                }
            }
            a0 = a1;
        }
        slots
    }

    /// Groups each partition of `parts` (one wave, region index r at buffer index r − `at`)
    /// by account, ranks each account's rows by key and hands it its rows, accounts
    /// ascending: `account(state, d, rows)` (d its dense index, `state` from `start(p)`).
    /// True when `clash` marks two keys of an account (its partition stops there: the caller
    /// declines).
    #[allow(clippy::too_many_arguments)]
    fn lay_parts<S>(
        &self,
        parts: std::ops::Range<usize>,
        at: usize,
        region: &[usize],
        base: &[usize],
        (cols, nf): (&WaveColumns, usize),
        clash: &(impl Fn(u32, u32) -> bool + Sync),
        start: &(impl Fn(usize) -> S + Sync),
        account: &(impl Fn(&mut S, usize, HandedRows<'_>) + Sync),
    ) -> bool {
        let w = 1usize << self.shift;
        parts
            .into_par_iter()
            .map_init(Scratch::default, |sc, p| {
                let (s, e) = (region[p] - at, region[p + 1] - at);
                // SAFETY: partition p's task alone touches its region s..e of the buffer, which
                // the wave's scatter wrote.
                let (lo, key, f) = unsafe { cols.region(s, e, nf) };
                // The region left the cache as the wave's scatter went on: read it back in
                // order first (at the prefetcher's pace), so that taking each account's rows
                // in turn (in no order within the region) finds them in cache.
                warm(key);
                for c in &f {
                    warm(c);
                }
                let slots = self.group_part(p, lo, sc);
                let (mut state, mut d, mut a0, mut bad) = (start(p), base[p], 0usize, false);
                for j in 0..slots {
                    let a1 = sc.start[j] as usize;
                    if self.is_seen(p * w + j) {
                        let rows = &sc.perm[a0..a1];
                        sc.keys.clear();
                        sc.keys.extend(rows.iter().map(|&r| key[r as usize]));
                        if rank(&sc.keys, &mut sc.ranks, &mut sc.u32s, clash) {
                            bad = true;
                            break;
                        }
                        account(&mut state, d, HandedRows { keys: &sc.keys, ranks: &sc.ranks, rows, f: &f });
                        d += 1;
                    }
                    a0 = a1;
                }
                bad
            })
            .reduce(|| false, |a, b| a | b)
    }
}

/// Balances with the rows of one code of an account (adjacent after ordering) merged into
/// their exact sum, correctly rounded, so the result does not depend on the rows' order
/// (rare: only books with duplicate balance rows get here).
fn merge_duplicates(offsets: &[usize], code: &[u32], qty: &[f64]) -> Balances {
    let n = offsets.len() - 1;
    let mut out = Balances { offsets: Vec::with_capacity(n + 1), code: vec![], qty: vec![] };
    out.offsets.push(0);
    for a in 0..n {
        let (lo, hi) = (offsets[a], offsets[a + 1]);
        let mut i = lo;
        while i < hi {
            let j = i + code[i..hi].iter().take_while(|&&c| c == code[i]).count();
            out.code.push(code[i]);
            out.qty.push(if j - i == 1 { qty[i] } else { exact_sum(qty[i..j].iter().copied()) });
            i = j;
        }
        out.offsets.push(out.code.len());
    }
    out
}

/// Account ranges `[a0, a1)` holding about an equal share of the rows each, a few per thread.
fn account_ranges(offsets: &[usize]) -> Vec<usize> {
    let n = offsets.len() - 1;
    let parts = (rayon::current_num_threads() * 8).max(1);
    let per_part = offsets[n].div_ceil(parts).max(1);
    let mut bounds = vec![0usize];
    let mut a = 0;
    while a < n {
        let target = offsets[a] + per_part;
        a = offsets.partition_point(|&o| o < target).clamp(a + 1, n);
        bounds.push(a);
    }
    bounds
}

/// Orders each account's rows by `key` (code, input row), in parallel over account ranges
/// of similar row counts. With the row in the key the order depends only on the set of
/// rows, not on their input order.
fn sort_within<T: Send, K: Ord>(offsets: &[usize], rows: &mut [T], key: impl Fn(&T) -> K + Sync) {
    let bounds = account_ranges(offsets);
    let mut slices = Vec::with_capacity(bounds.len());
    let mut rest = rows;
    for w in bounds.windows(2) {
        let (head, tail) = rest.split_at_mut(offsets[w[1]] - offsets[w[0]]);
        slices.push((w[0], w[1], head));
        rest = tail;
    }
    slices.into_par_iter().for_each(|(a0, a1, part)| {
        let base = offsets[a0];
        for a in a0..a1 {
            let s = &mut part[offsets[a] - base..offsets[a + 1] - base];
            // Accounts hold a handful of rows: insertion sort beats a general sort here.
            for i in 1..s.len() {
                let mut j = i;
                while j > 0 && key(&s[j - 1]) > key(&s[j]) {
                    s.swap(j - 1, j);
                    j -= 1;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::kernel::Sliced8;
    use crate::memory::column;

    /// Sorted unique ids over all columns, and each column's rows as dense indices.
    fn dense_accounts(cols: &[&[i64]]) -> (Vec<i64>, Vec<Vec<u32>>) {
        let total: usize = cols.iter().map(|c| c.len()).sum();
        if total == 0 {
            return (vec![], cols.iter().map(|_| vec![]).collect());
        }
        let min = cols.iter().filter_map(|c| c.par_iter().copied().min()).min().expect("non-empty");
        let max = cols.iter().filter_map(|c| c.par_iter().copied().max()).max().expect("non-empty");
        let range = (max as i128 - min as i128 + 1) as u128;

        if range <= (2 * total + 1024) as u128 {
            // Dense ids (the common case): a direct table from id − min to dense index.
            // Ids seen are marked in a byte table (a quarter of the index table, so it stays in
            // cache), in parallel: every store writes 1, whatever the order.
            let range = range as usize;
            let seen: Vec<AtomicBool> = (0..range).map(|_| AtomicBool::new(false)).collect();
            for c in cols {
                c.par_iter()
                    .with_min_len(1 << 14)
                    .for_each(|&id| seen[(id - min) as usize].store(true, Ordering::Relaxed));
            }
            let mut table = vec![u32::MAX; range];
            let mut accounts = Vec::new();
            for (off, (slot, s)) in table.iter_mut().zip(&seen).enumerate() {
                if s.load(Ordering::Relaxed) {
                    *slot = accounts.len() as u32;
                    accounts.push(min + off as i64);
                }
            }
            let dense = cols.iter().map(|c| map_column(c, |&id| table[(id - min) as usize])).collect();
            return (accounts, dense);
        }

        // Sparse ids: sort the distinct ids and binary-search each row.
        let mut accounts: Vec<i64> = Vec::with_capacity(total);
        for c in cols {
            accounts.extend_from_slice(c);
        }
        accounts.par_sort_unstable();
        accounts.dedup();
        accounts.shrink_to_fit();
        let dense = cols
            .iter()
            .map(|c| c.par_iter().map(|id| accounts.binary_search(id).expect("id was collected") as u32).collect())
            .collect();
        (accounts, dense)
    }

    /// The previous implementation of [`group_with`] (rows as structs, sorted, then split into
    /// columns), kept as the oracle the new one must reproduce field for field.
    fn group_with_rows(
        bal: BalanceInput<'_>,
        pos: PositionInput<'_>,
        side: &[u8],
        orders: Option<OrderInput<'_>>,
        n_asset_codes: u32,
        n_market_codes: u32,
    ) -> Result<GroupedBook> {
        validate(&bal, &pos, side, orders.as_ref(), n_asset_codes, n_market_codes)?;
        let side_of = |r: usize| if side.is_empty() { SIDE_BOTH } else { side[r] };

        let ord_accounts: &[i64] = orders.as_ref().map_or(&[], |o| o.account);
        let (accounts, dense) = dense_accounts(&[bal.account, pos.account, ord_accounts]);
        let n = accounts.len();

        // Balances: group, order by code within the account, merge duplicates (exact sum).
        let (offsets, mut rows) =
            scatter(&dense[0], n, |r| BalRow { code: bal.code[r], row: r as u32, qty: bal.qty[r] });
        sort_within(&offsets, &mut rows, |x| (x.code, x.row));
        let has_duplicates =
            (0..n).into_par_iter().any(|a| rows[offsets[a]..offsets[a + 1]].windows(2).any(|w| w[0].code == w[1].code));
        let balances = if has_duplicates { merge_balances(&offsets, &rows) } else { split_balances(offsets, &rows) };

        // Positions: group, order by code; a repeated code is an error naming both rows.
        let (offsets, mut rows) = scatter(&dense[1], n, |r| PosRow {
            code: pack(pos.code[r], side_of(r)),
            row: r as u32,
            qty: pos.qty[r],
            entry: pos.entry_price[r],
            // NaN and 0 both mean cross.
            isolated: if pos.isolated_margin[r].is_nan() { 0.0 } else { pos.isolated_margin[r] },
        });
        sort_within(&offsets, &mut rows, |x| (x.code, x.row));
        check_unique_positions(&accounts, &offsets, &rows)?;
        let positions = positions_of(offsets, &rows);

        // Orders: group, order by (code, row); sells carry a negative quantity.
        let orders = match orders {
            None => Orders::default(),
            Some(o) => {
                let (offsets, mut rows) = scatter(&dense[2], n, |r| OrdRow {
                    code: o.code[r],
                    row: r as u32,
                    qty: if o.side[r] == 0 { o.qty[r] } else { -o.qty[r] },
                    price: o.price[r],
                    reduce_only: o.reduce_only[r],
                });
                sort_within(&offsets, &mut rows, |x| (x.code, x.row));
                orders_of(offsets, &rows)
            }
        };

        Ok(GroupedBook { accounts, balances, positions, orders, n_asset_codes, n_market_codes })
    }

    /// Stable counting sort by dense account that moves each row's data once (sequential reads,
    /// scattered writes): (offsets, rows grouped by account in input order).
    fn scatter<T: Copy + Default + Send>(dense: &[u32], n: usize, make: impl Fn(usize) -> T) -> (Vec<usize>, Vec<T>) {
        let mut offsets = vec![0usize; n + 1];
        for &a in dense {
            offsets[a as usize + 1] += 1;
        }
        for a in 0..n {
            offsets[a + 1] += offsets[a];
        }
        let mut cursor = offsets[..n].to_vec();
        let mut out: Vec<T> = column(dense.len());
        for (r, &a) in dense.iter().enumerate() {
            let c = &mut cursor[a as usize];
            out[*c] = make(r);
            *c += 1;
        }
        (offsets, out)
    }

    fn book(bal: (&[i64], &[u32], &[f64]), pos: (&[i64], &[u32], &[f64])) -> Result<GroupedBook> {
        let n = pos.0.len();
        let entry = vec![100.0; n];
        let iso = vec![f64::NAN; n];
        group(
            BalanceInput { account: bal.0, code: bal.1, qty: bal.2 },
            PositionInput { account: pos.0, code: pos.1, qty: pos.2, entry_price: &entry, isolated_margin: &iso },
            4,
            4,
        )
    }

    #[test]
    fn accounts_are_sorted_unique_over_both_tables() {
        let g = book((&[30, 10, 30], &[0, 1, 2], &[1.0, 2.0, 3.0]), (&[20, 10], &[0, 0], &[1.0, -1.0])).unwrap();
        assert_eq!(g.accounts, vec![10, 20, 30]);
        assert_eq!(g.balances.offsets, vec![0, 1, 1, 3]);
        assert_eq!(g.positions.offsets, vec![0, 1, 2, 2]);
        assert_eq!(g.positions.row, vec![1, 0]);
    }

    #[test]
    fn sparse_ids_group_like_dense_ones() {
        let ids = [i64::MAX, i64::MIN, 0, i64::MIN];
        let g = book((&ids, &[0, 0, 0, 1], &[1.0, 2.0, 3.0, 4.0]), (&[], &[], &[])).unwrap();
        assert_eq!(g.accounts, vec![i64::MIN, 0, i64::MAX]);
        assert_eq!(g.balances.code, vec![0, 1, 0, 0]);
        assert_eq!(g.balances.qty, vec![2.0, 4.0, 3.0, 1.0]);
    }

    #[test]
    fn duplicate_balances_are_summed() {
        let g = book((&[1, 1, 1], &[2, 0, 2], &[1.5, 1.0, 2.0]), (&[], &[], &[])).unwrap();
        assert_eq!(g.balances.code, vec![0, 2]);
        assert_eq!(g.balances.qty, vec![1.0, 3.5]);
    }

    #[test]
    fn duplicate_balances_merge_to_their_exact_sum_in_any_order() {
        let g = book((&[1, 1, 1], &[0, 0, 0], &[0.1, 0.3, -0.4]), (&[], &[], &[])).unwrap();
        let h = book((&[1, 1, 1], &[0, 0, 0], &[-0.4, 0.1, 0.3]), (&[], &[], &[])).unwrap();
        assert_eq!(g.balances.qty, vec![-2.7755575615628914e-17]);
        assert_eq!(g.balances.qty[0].to_bits(), h.balances.qty[0].to_bits());
    }

    #[test]
    fn universe_order_sorts_rows_by_universe_index() {
        // codes 0,1,2 are the universe's 2,0,1 (alphabetical labels vs the universe's order)
        let g = book((&[1, 1, 1, 2], &[0, 1, 2, 1], &[1.0, 2.0, 3.0, 4.0]), (&[1, 1], &[0, 2], &[1.0, -1.0])).unwrap();
        let remap = [2, 0, 1, 3];
        assert!(!g.is_in_order(&remap, &remap));
        assert!(g.is_in_order(&[0, 1, 2, 3], &[0, 1, 2, 3]));
        let u = g.in_universe_order(&remap, &remap, 4, 4).unwrap();
        assert_eq!(u.balances.code, vec![0, 1, 2, 0]);
        assert_eq!(u.balances.qty, vec![2.0, 3.0, 1.0, 4.0]);
        assert_eq!(u.positions.code, vec![1, 2]);
        assert_eq!(u.positions.row, vec![1, 0]);
        assert_eq!(u.balances.offsets, g.balances.offsets);
        // the same rows encoded by universe index group identically
        let v = book((&[1, 1, 1, 2], &[2, 0, 1, 0], &[1.0, 2.0, 3.0, 4.0]), (&[1, 1], &[2, 1], &[1.0, -1.0])).unwrap();
        assert_eq!(u.balances, v.balances);
        assert_eq!(u.positions.code, v.positions.code);
        assert_eq!(u.positions.qty, v.positions.qty);
    }

    #[test]
    fn duplicate_positions_name_both_rows() {
        let e = book((&[], &[], &[]), (&[5, 7, 5], &[1, 1, 1], &[1.0, 1.0, 2.0])).unwrap_err();
        assert_eq!(
            e,
            CoreError::Book {
                table: Table::Positions,
                row: 2,
                other_row: Some(0),
                column: "market",
                message: "duplicate position of account 5 in one market; a position is the account's net position"
                    .into(),
            }
        );
    }

    #[test]
    fn bad_rows_are_named() {
        let e = book((&[1, 2], &[0, 9], &[1.0, 1.0]), (&[], &[], &[])).unwrap_err();
        assert!(e.to_string().starts_with("balances row 1: asset code 9"), "{e}");
        let e = book((&[1, 2], &[0, 0], &[1.0, f64::NAN]), (&[], &[], &[])).unwrap_err();
        assert!(e.to_string().starts_with("balances row 1: qty NaN"), "{e}");
        let e = book((&[1], &[0, 0], &[1.0]), (&[], &[], &[])).unwrap_err();
        assert!(e.to_string().contains("column 'asset' has 2 rows"), "{e}");
    }

    fn hedged(pos: (&[i64], &[u32], &[f64], &[u8])) -> Result<GroupedBook> {
        let n = pos.0.len();
        let (entry, iso) = (vec![100.0; n], vec![f64::NAN; n]);
        let p = PositionInput { account: pos.0, code: pos.1, qty: pos.2, entry_price: &entry, isolated_margin: &iso };
        let b = BalanceInput { account: &[], code: &[], qty: &[] };
        group_with(b, p, pos.3, None, 4, 4)
    }

    #[test]
    fn hedge_legs_are_keyed_by_market_and_side_in_canonical_order() {
        let g = hedged((&[1, 1, 1], &[2, 0, 2], &[-1.0, 3.0, 2.0], &[SIDE_SHORT, SIDE_BOTH, SIDE_LONG])).unwrap();
        assert_eq!(g.positions.code, vec![0, 2, 2]);
        assert_eq!(g.positions.side, vec![SIDE_BOTH, SIDE_LONG, SIDE_SHORT]);
        assert_eq!(g.positions.row, vec![1, 2, 0]);
        // the same rows in another order group identically (side is in the sort key)
        let h = hedged((&[1, 1, 1], &[2, 2, 0], &[2.0, -1.0, 3.0], &[SIDE_LONG, SIDE_SHORT, SIDE_BOTH])).unwrap();
        assert!(h.has_sides());
        assert_eq!(
            (g.positions.code, g.positions.side, g.positions.qty),
            (h.positions.code, h.positions.side, h.positions.qty)
        );
    }

    #[test]
    fn a_repeated_leg_and_a_one_way_row_beside_a_leg_are_named() {
        let e = hedged((&[1, 1], &[2, 2], &[1.0, 2.0], &[SIDE_LONG, SIDE_LONG])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "positions row 1 (and row 0): duplicate long leg of account 1 in one market; one leg per side"
        );
        let e = hedged((&[1, 1], &[2, 2], &[-1.0, -2.0], &[SIDE_SHORT, SIDE_BOTH])).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "positions row 1 (and row 0): account 1 holds a one-way ('both') position and a hedge leg"
            ),
            "{e}"
        );
        // one-way in one market, hedged in another: allowed
        hedged((&[1, 1, 1], &[1, 2, 2], &[1.0, 1.0, -1.0], &[SIDE_BOTH, SIDE_LONG, SIDE_SHORT])).unwrap();
    }

    #[test]
    fn a_leg_against_its_sign_or_an_unknown_side_is_named() {
        let e = hedged((&[1, 2], &[0, 0], &[1.0, 1.0], &[SIDE_LONG, SIDE_SHORT])).unwrap_err();
        assert_eq!(e.to_string(), "positions row 1: qty 1 of a short leg must be ≤ 0");
        let e = hedged((&[1], &[0], &[-1.0], &[SIDE_LONG])).unwrap_err();
        assert_eq!(e.to_string(), "positions row 0: qty -1 of a long leg must be ≥ 0");
        let e = hedged((&[1], &[0], &[1.0], &[7])).unwrap_err();
        assert!(e.to_string().starts_with("positions row 0: side code 7"), "{e}");
    }

    #[test]
    fn orders_group_by_account_with_signed_quantities_and_bad_rows_are_named() {
        let b = BalanceInput { account: &[], code: &[], qty: &[] };
        let p = PositionInput { account: &[], code: &[], qty: &[], entry_price: &[], isolated_margin: &[] };
        let o = OrderInput {
            account: &[9, 3, 9],
            code: &[1, 0, 0],
            side: &[1, 0, 0],
            qty: &[2.0, 1.0, 0.5],
            price: &[10.0, 11.0, 12.0],
            reduce_only: &[false, true, false],
        };
        let g = group_with(b, p, &[], Some(o), 4, 4).unwrap();
        assert_eq!(g.accounts, vec![3, 9]);
        assert_eq!(g.orders.offsets, vec![0, 1, 3]);
        assert_eq!(g.orders.code, vec![0, 0, 1]);
        assert_eq!(g.orders.qty, vec![1.0, 0.5, -2.0]);
        assert_eq!(g.orders.row, vec![1, 2, 0]);
        assert_eq!(g.account(1).ord_price, &[12.0, 10.0]);
        for (side, qty, price, msg) in [
            (2, 1.0, 1.0, "orders row 0: side code 2 is not 0 (buy) or 1 (sell)"),
            (0, 0.0, 1.0, "orders row 0: qty 0 must be finite, > 0"),
            (0, 1.0, -1.0, "orders row 0: price -1 must be finite and > 0"),
        ] {
            let o = OrderInput {
                account: &[1],
                code: &[0],
                side: &[side],
                qty: &[qty],
                price: &[price],
                reduce_only: &[false],
            };
            let e = group_with(b, p, &[], Some(o), 4, 4).unwrap_err();
            assert!(e.to_string().starts_with(msg), "{e}");
        }
    }

    #[test]
    fn empty_book_groups_to_no_accounts() {
        let g = book((&[], &[], &[]), (&[], &[], &[])).unwrap();
        assert_eq!(g.n_accounts(), 0);
        assert_eq!(g.balances.offsets, vec![0]);
    }

    /// Columns of [`large_book`]: balances (account, asset, qty), positions (account, market,
    /// side, qty), orders (account, market).
    type LargeBook = (Vec<i64>, Vec<u32>, Vec<f64>, Vec<i64>, Vec<u32>, Vec<u8>, Vec<f64>, Vec<i64>, Vec<u32>);

    /// A shuffled book large enough for several scatter chunks and partitions: balances with
    /// duplicates, positions with hedge legs, orders; ids spread by `spread` (1: dense).
    fn large_book(spread: i64, sorted: bool) -> LargeBook {
        let mut x = 11u64;
        let mut next = move |m: u64| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        let accounts = 120_000u64;
        let id = |a: u64| 5_000 + a as i64 * spread;
        let mut bal: Vec<(i64, u32, f64)> =
            (0..400_000).map(|_| (id(next(accounts)), next(6) as u32, next(1_000) as f64 / 7.0 - 50.0)).collect();
        // Distinct (account, market, side) keys: one-way in even markets, two legs in odd ones.
        let mut pos: Vec<(i64, u32, u8, f64)> = vec![];
        for a in 0..accounts {
            for m in 0..5u32 {
                if next(5) < 3 {
                    if m % 2 == 0 {
                        pos.push((id(a), m, SIDE_BOTH, next(100) as f64 - 50.0));
                    } else {
                        pos.push((id(a), m, SIDE_LONG, next(100) as f64));
                        pos.push((id(a), m, SIDE_SHORT, -(next(100) as f64)));
                    }
                }
            }
        }
        let mut ord: Vec<(i64, u32)> = (0..50_000).map(|_| (id(next(accounts + 7)), next(5) as u32)).collect();
        if sorted {
            bal.sort_by_key(|a| (a.0, a.1));
            pos.sort_by_key(|p| (p.0, p.1, p.2));
            ord.sort();
        } else {
            for i in (1..pos.len()).rev() {
                pos.swap(i, next(i as u64 + 1) as usize);
            }
        }
        (
            bal.iter().map(|b| b.0).collect(),
            bal.iter().map(|b| b.1).collect(),
            bal.iter().map(|b| b.2).collect(),
            pos.iter().map(|p| p.0).collect(),
            pos.iter().map(|p| p.1).collect(),
            pos.iter().map(|p| p.2).collect(),
            pos.iter().map(|p| p.3).collect(),
            ord.iter().map(|o| o.0).collect(),
            ord.iter().map(|o| o.1).collect(),
        )
    }

    #[test]
    fn grouping_is_the_oracles_for_any_thread_count_row_order_and_id_spread() {
        for (spread, sorted) in [(1, false), (1, true), (1 << 40, false)] {
            let (ba, bc, bq, pa, pc, ps, pq, oa, oc) = large_book(spread, sorted);
            let (entry, iso) = (vec![100.0; pa.len()], vec![f64::NAN; pa.len()]);
            let n = oa.len();
            let (side, qty, price, ro): (Vec<u8>, Vec<f64>, Vec<f64>, Vec<bool>) = (
                (0..n).map(|i| (i % 2) as u8).collect(),
                vec![1.5; n],
                vec![10.0; n],
                (0..n).map(|i| i % 3 == 0).collect(),
            );
            let b = BalanceInput { account: &ba, code: &bc, qty: &bq };
            let p = PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &entry, isolated_margin: &iso };
            let o = OrderInput { account: &oa, code: &oc, side: &side, qty: &qty, price: &price, reduce_only: &ro };
            let want = format!("{:?}", group_with_rows(b, p, &ps, Some(o), 6, 5).unwrap());
            for threads in [1, 2, 3, 7] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let got = pool.install(|| group_with(b, p, &ps, Some(o), 6, 5).unwrap());
                assert!(format!("{got:?}") == want, "{threads} threads, spread {spread}, sorted {sorted}");
            }
        }
    }

    /// A layout's fields with floats as bits (equality bit for bit).
    fn layout_bits(l: &Sliced8) -> String {
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let codes = format!("{:?}", l.codes);
        format!(
            "{} {:?} {:?} {:?} {:?} {} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            l.n_accounts(),
            l.bal_slot,
            l.pos_slot,
            l.bal_mask,
            l.pos_mask,
            codes,
            bits(&l.bal_qty),
            bits(&l.pos_qty),
            bits(&l.pos_entry),
            l.iso_mask,
            l.iso_at,
            bits(&l.iso),
            l.has_orders
        )
    }

    #[test]
    fn grouping_into_the_layout_is_the_csrs_layout_for_any_thread_count_order_spread_and_wave() {
        for (spread, sorted) in [(1, false), (1, true), (1 << 40, false), (3, false)] {
            let (ba, bc, bq, pa, pc, ps, pq, ..) = large_book(spread, sorted);
            let entry: Vec<f64> = (0..pa.len()).map(|i| 100.0 + (i % 7) as f64).collect();
            let iso: Vec<f64> = (0..pa.len()).map(|i| [f64::NAN, 0.0, 2.5, -0.0][i % 4]).collect();
            let b = BalanceInput { account: &ba, code: &bc, qty: &bq };
            let p = PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &entry, isolated_margin: &iso };
            let csr = group_with(b, p, &ps, None, 6, 5).unwrap();
            let want = layout_bits(&Sliced8::new(&csr));
            let runs =
                [(1, usize::MAX, false), (2, 1 << 20, true), (3, 1 << 16, false), (7, 5_000, true), (2, 5_000, false)];
            for (threads, budget, credit) in runs {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let plan = MemoryPlan { budget, credit, release: (threads != 2).then_some(1 << 12) };
                let got = pool.install(|| lay_out(b, p, &ps, 6, 5, plan).unwrap());
                let at =
                    format!("{threads} threads, budget {budget}, credit {credit}, spread {spread}, sorted {sorted}");
                assert!(got.accounts == csr.accounts, "{at}");
                assert!(got.has_sides, "{at}");
                assert!(layout_bits(&got.layout) == want, "{at}");
            }
        }
    }

    /// Columns of [`distinct_book`]: balances (account, asset, qty), positions (account,
    /// market, side, qty).
    type DistinctBook = (Vec<i64>, Vec<u32>, Vec<f64>, Vec<i64>, Vec<u32>, Vec<u8>, Vec<f64>);

    /// [`large_book`] without duplicate balances; with `one_way`, one position per (account,
    /// market) and no sides.
    fn distinct_book(spread: i64, one_way: bool) -> DistinctBook {
        let (ba, bc, bq, pa, pc, ps, pq, ..) = large_book(spread, false);
        let mut seen = std::collections::HashSet::new();
        let keep: Vec<usize> = (0..ba.len()).filter(|&i| seen.insert((ba[i], bc[i]))).collect();
        let (ba, bc, bq) = (
            keep.iter().map(|&i| ba[i]).collect(),
            keep.iter().map(|&i| bc[i]).collect(),
            keep.iter().map(|&i| bq[i]).collect(),
        );
        let mut seen = std::collections::HashSet::new();
        let keep: Vec<usize> = (0..pa.len()).filter(|&i| !one_way || seen.insert((pa[i], pc[i]))).collect();
        let side = if one_way { vec![] } else { keep.iter().map(|&i| ps[i]).collect() };
        let pick = |c: &[u32]| keep.iter().map(|&i| c[i]).collect();
        (ba, bc, bq, keep.iter().map(|&i| pa[i]).collect(), pick(&pc), side, keep.iter().map(|&i| pq[i]).collect())
    }

    #[test]
    fn ranks_from_key_masks_of_any_width_lay_out_the_ranked_layout() {
        // No duplicates or clashes: the fast path lays the book out itself (never declines),
        // by masks of each width wide enough (6 assets; 5 markets one-way, or 20 packed keys
        // with hedge legs) and by ranking, all into the CSR grouping's layout.
        for (spread, one_way) in [(1, true), (1, false), (1 << 40, true), (3, false)] {
            let (ba, bc, bq, pa, pc, side, pq) = distinct_book(spread, one_way);
            let entry: Vec<f64> = (0..pa.len()).map(|i| 100.0 + (i % 7) as f64).collect();
            let iso: Vec<f64> = (0..pa.len()).map(|i| [f64::NAN, 0.0, 2.5, -0.0, 7.0][i % 5]).collect();
            let b = BalanceInput { account: &ba, code: &bc, qty: &bq };
            let p = PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &entry, isolated_margin: &iso };
            let csr = group_with(b, p, &side, None, 6, 5).unwrap();
            let want = layout_bits(&Sliced8::new(&csr));
            for (threads, budget) in [(1, usize::MAX), (2, 1 << 20), (3, 5_000)] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let plan = MemoryPlan { budget, credit: true, release: (threads != 2).then_some(1 << 12) };
                let args = (b, p, &side[..], 6, 5, plan);
                let runs = [
                    ("ranked", pool.install(|| lay_out_by::<u8>(args, !one_way, false))),
                    (
                        "u8",
                        if one_way { pool.install(|| lay_out_by::<u8>(args, !one_way, true)) } else { Err(Declined) },
                    ),
                    (
                        "u16",
                        if one_way { pool.install(|| lay_out_by::<u16>(args, !one_way, true)) } else { Err(Declined) },
                    ),
                    ("u32", pool.install(|| lay_out_by::<u32>(args, !one_way, true))),
                    ("u64", pool.install(|| lay_out_by::<u64>(args, !one_way, true))),
                ];
                for (how, got) in runs {
                    let at = format!("{how}, {threads} threads, budget {budget}, spread {spread}, one-way {one_way}");
                    if !one_way && (how == "u8" || how == "u16") {
                        continue;
                    }
                    let Ok(got) = got else { panic!("declined: {at}") };
                    assert!(got.accounts == csr.accounts, "{at}");
                    assert!(layout_bits(&got.layout) == want, "{at}");
                }
            }
        }
    }

    #[test]
    fn the_layouts_used_codes_are_the_codes_of_its_rows_for_any_thread_count() {
        let (ba, bc, bq, pa, pc, ps, pq, ..) = large_book(3, false);
        let entry = vec![100.0; pa.len()];
        let iso = vec![0.0; pa.len()];
        let b = BalanceInput { account: &ba, code: &bc, qty: &bq };
        let p = PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &entry, isolated_margin: &iso };
        let csr = group_with(b, p, &ps, None, 9, 8).unwrap();
        let flags = |codes: &[u32], n: usize| (0..n as u32).map(|c| codes.contains(&c)).collect::<Vec<bool>>();
        let want = (flags(&csr.balances.code, 9), flags(&csr.positions.code, 8));
        let layout = Sliced8::new(&csr);
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            assert_eq!(pool.install(|| layout.used_codes(9, 8)), want, "{threads} threads");
        }
    }

    #[test]
    fn an_account_with_65535_rows_or_more_is_grouped_by_the_fast_path() {
        // One account holds 70,000 balances and 66,000 positions (more than a u16 counts),
        // beside a few small ones; codes this many are stored as u32. Rows near their order
        // (each account's rows are insertion-sorted by code, as `group_with` does).
        let (big_b, big_p) = (70_000u32, 66_000u32);
        let mut ba: Vec<i64> = vec![1_000; big_b as usize];
        let mut bc: Vec<u32> = (0..big_b).map(|c| c ^ 1).collect();
        let mut pa: Vec<i64> = vec![1_000; big_p as usize];
        let mut pc: Vec<u32> = (0..big_p).map(|c| c ^ 1).collect();
        for a in 0..20i64 {
            for c in 0..(a % 4) as u32 {
                ba.push(a * 3);
                bc.push(c * 5);
                pa.push(a * 3 + 1);
                pc.push(c * 7);
            }
        }
        let bq: Vec<f64> = (0..ba.len()).map(|i| i as f64 - 9.5).collect();
        let pq: Vec<f64> = (0..pa.len()).map(|i| (i % 13) as f64 - 6.0).collect();
        let entry = vec![100.0; pa.len()];
        let iso: Vec<f64> = (0..pa.len()).map(|i| [0.0, 3.0, f64::NAN][i % 3]).collect();
        let b = BalanceInput { account: &ba, code: &bc, qty: &bq };
        let p = PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &entry, isolated_margin: &iso };
        let csr = group_with(b, p, &[], None, big_b, big_p).unwrap();
        let want = layout_bits(&Sliced8::new(&csr));
        for (threads, budget) in [(1, usize::MAX), (2, 1 << 23), (3, 5_000)] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let plan = MemoryPlan { budget, credit: true, release: (threads != 2).then_some(1 << 12) };
            let got = pool.install(|| lay_out_fast(b, p, &[], big_b, big_p, plan));
            let Ok(got) = got else { panic!("declined at {threads} threads, budget {budget}") };
            assert_eq!(got.layout.code_width(), crate::kernel::CodeWidth::U32);
            assert!(got.accounts == csr.accounts, "{threads} threads");
            assert!(layout_bits(&got.layout) == want, "{threads} threads, budget {budget}");
        }
    }

    /// The proptests' account ids: dense small ids, or a mix of arbitrary and small ones.
    fn id_pool_of(sparse: bool, seed_ids: &[prop::sample::Index], id_pool: &[i64]) -> Vec<i64> {
        if sparse {
            id_pool
                .iter()
                .zip(seed_ids)
                .map(|(&x, i)| if i.index(2) == 0 { x } else { i.index(64) as i64 - 32 })
                .collect()
        } else {
            id_pool.iter().map(|&x| x.rem_euclid(48)).collect()
        }
    }

    type PositionColumns = (Vec<u32>, Vec<u8>, Vec<f64>, Vec<f64>, Vec<f64>);

    /// The proptests' position columns (code, side, qty, entry, isolated) from generated rows
    /// (account, code, side, qty, entry if flat, isolated): a leg's quantity follows its side,
    /// else the grouping never gets past validation.
    fn position_columns(pos: &[(usize, u32, u8, f64, f64, f64)]) -> PositionColumns {
        let ps: Vec<u8> = pos.iter().map(|r| r.2).collect();
        let pq = pos
            .iter()
            .map(|r| match r.2 {
                SIDE_LONG => r.3.abs(),
                SIDE_SHORT => -r.3.abs(),
                _ => r.3,
            })
            .collect();
        let pe = pos.iter().map(|r| if r.3 == 0.0 { r.4 } else { 100.0 }).collect();
        let pm = pos.iter().map(|r| r.5).collect();
        (pos.iter().map(|r| r.1).collect(), ps, pq, pe, pm)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Grouping straight into the layout gives the CSR grouping's layout and accounts, or
        /// its error, whatever the waves' size.
        #[test]
        fn grouping_into_the_layout_matches_the_csr_grouping(
            sparse in any::<bool>(),
            seed_ids in prop::collection::vec(any::<prop::sample::Index>(), 40),
            bal in prop::collection::vec((0usize..40, prop_oneof![200 => 0u32..3, 1 => Just(3u32)], prop_oneof![400 => -1e6f64..1e6, 1 => Just(f64::NAN)]), 0..80),
            pos in prop::collection::vec(
                (0usize..40, prop_oneof![200 => 0u32..5, 1 => Just(5u32)], prop_oneof![20 => Just(0u8), 10 => 1u8..3, 1 => Just(3u8)], -10f64..10.0, prop_oneof![Just(100.0), Just(0.0)], prop_oneof![Just(0.0), Just(f64::NAN), Just(5.0), Just(-0.0)]),
                0..60,
            ),
            with_sides in any::<bool>(),
            id_pool in prop::collection::vec(any::<i64>(), 40),
            budget in prop_oneof![Just(usize::MAX), 1usize..2_000],
            credit in any::<bool>(),
            release in prop::option::of(1usize..100),
            wide in any::<bool>(),
        ) {
            let pool = id_pool_of(sparse, &seed_ids, &id_pool);
            let id = |k: usize| pool[k % pool.len()];
            let (ba, bc, bq) = (bal.iter().map(|r| id(r.0)).collect::<Vec<i64>>(), bal.iter().map(|r| r.1).collect::<Vec<u32>>(), bal.iter().map(|r| r.2).collect::<Vec<f64>>());
            let pa: Vec<i64> = pos.iter().map(|r| id(r.0)).collect();
            let (pc, ps, pq, pe, pm) = position_columns(&pos);
            let side: &[u8] = if with_sides { &ps } else { &[] };
            let b = BalanceInput { account: &ba, code: &bc, qty: &bq };
            let p = PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pm };
            // 300 codes of each kind: the layout stores them as u16.
            let (na, nm) = if wide { (300, 300) } else { (3, 5) };
            let got = lay_out(b, p, side, na, nm, MemoryPlan { budget, credit, release });
            match group_with(b, p, side, None, na, nm) {
                Err(e) => prop_assert_eq!(format!("{:?}", got.err()), format!("{:?}", Some(e))),
                Ok(csr) => {
                    let got = got.unwrap();
                    prop_assert_eq!(&got.accounts, &csr.accounts);
                    prop_assert_eq!(got.has_sides, csr.has_sides());
                    prop_assert_eq!(layout_bits(&got.layout), layout_bits(&Sliced8::new(&csr)));
                }
            }
        }

        /// The column-at-a-time grouping reproduces the previous row-struct grouping, field
        /// for field and bit for bit, or the same error: duplicates, hedge legs beside one-way
        /// rows, bad values, orders, dense and sparse ids.
        #[test]
        fn grouping_matches_the_row_struct_grouping(
            sparse in any::<bool>(),
            seed_ids in prop::collection::vec(any::<prop::sample::Index>(), 40),
            bal in prop::collection::vec((0usize..40, prop_oneof![200 => 0u32..3, 1 => Just(3u32)], prop_oneof![400 => -1e6f64..1e6, 1 => Just(f64::NAN)]), 0..60),
            pos in prop::collection::vec(
                (0usize..40, prop_oneof![200 => 0u32..5, 1 => Just(5u32)], prop_oneof![20 => Just(0u8), 10 => 1u8..3, 1 => Just(3u8)], -10f64..10.0, prop_oneof![Just(100.0), Just(0.0)], prop_oneof![Just(0.0), Just(f64::NAN), Just(5.0)]),
                0..30,
            ),
            with_sides in any::<bool>(),
            ord in prop::option::of(prop::collection::vec((0usize..40, 0u32..5, 0u8..2, 0.5f64..3.0, 1f64..50.0, any::<bool>()), 0..20)),
            id_pool in prop::collection::vec(any::<i64>(), 40),
        ) {
            let pool = id_pool_of(sparse, &seed_ids, &id_pool);
            let id = |k: usize| pool[k % pool.len()];
            let (ba, bc, bq) = (bal.iter().map(|r| id(r.0)).collect::<Vec<i64>>(), bal.iter().map(|r| r.1).collect::<Vec<u32>>(), bal.iter().map(|r| r.2).collect::<Vec<f64>>());
            let pa: Vec<i64> = pos.iter().map(|r| id(r.0)).collect();
            let (pc, ps, pq, pe, pm) = position_columns(&pos);
            let side: &[u8] = if with_sides { &ps } else { &[] };
            let ord = ord.unwrap_or_default();
            let oa: Vec<i64> = ord.iter().map(|r| id(r.0)).collect();
            let oc: Vec<u32> = ord.iter().map(|r| r.1).collect();
            let os: Vec<u8> = ord.iter().map(|r| r.2).collect();
            let oq: Vec<f64> = ord.iter().map(|r| r.3).collect();
            let op: Vec<f64> = ord.iter().map(|r| r.4).collect();
            let or: Vec<bool> = ord.iter().map(|r| r.5).collect();
            let b = BalanceInput { account: &ba, code: &bc, qty: &bq };
            let p = PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pm };
            let o = (!ord.is_empty()).then_some(OrderInput {
                account: &oa, code: &oc, side: &os, qty: &oq, price: &op, reduce_only: &or,
            });
            let new = group_with(b, p, side, o, 3, 5);
            let old = group_with_rows(b, p, side, o, 3, 5);
            // Debug text compares floats bit for bit (the sign of a zero included).
            prop_assert_eq!(format!("{new:?}"), format!("{old:?}"));
        }
    }
}
