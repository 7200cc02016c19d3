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

use rayon::prelude::*;

use crate::error::{CoreError, Result, Table};
use crate::fsum::exact_sum;
use crate::limits::{is_price, within, MAX_AMOUNT, MAX_PRICE, MAX_QTY, MIN_PRICE};
use crate::memory::{column, map_column};

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
    pub row: Vec<u32>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupedBook {
    /// Account ids, ascending and unique; index = dense account number.
    pub accounts: Vec<i64>,
    pub balances: Balances,
    pub positions: Positions,
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
}

impl GroupedBook {
    pub fn n_accounts(&self) -> usize {
        self.accounts.len()
    }

    #[inline]
    pub fn account(&self, a: usize) -> AccountRows<'_> {
        let b = self.balances.offsets[a]..self.balances.offsets[a + 1];
        let p = self.positions.offsets[a]..self.positions.offsets[a + 1];
        AccountRows {
            bal_code: &self.balances.code[b.clone()],
            bal_qty: &self.balances.qty[b],
            pos_code: &self.positions.code[p.clone()],
            pos_qty: &self.positions.qty[p.clone()],
            pos_entry: &self.positions.entry_price[p.clone()],
            pos_isolated: &self.positions.isolated_margin[p],
        }
    }

    /// Bytes held by the grouped arrays.
    pub fn nbytes(&self) -> usize {
        let b = &self.balances;
        let p = &self.positions;
        self.accounts.len() * 8
            + (b.offsets.len() + p.offsets.len()) * 8
            + b.code.len() * 12
            + p.code.len() * (4 + 8 * 3 + 4)
    }

    /// True when `remap` preserves the order of the codes this book uses, so each account's
    /// rows are already in universe-index order.
    pub fn is_in_order(&self, asset_remap: &[u32], market_remap: &[u32]) -> bool {
        increasing(&self.balances.code, self.n_asset_codes, asset_remap)
            && increasing(&self.positions.code, self.n_market_codes, market_remap)
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
        let mut pos_rows: Vec<PosRow> = (0..pos.code.len())
            .map(|i| PosRow {
                code: market_remap[pos.code[i] as usize],
                row: pos.row[i],
                qty: pos.qty[i],
                entry: pos.entry_price[i],
                isolated: pos.isolated_margin[i],
            })
            .collect();
        sort_within(&pos.offsets, &mut pos_rows, |x| (x.code, x.row));
        check_unique_positions(&self.accounts, &pos.offsets, &pos_rows)?;
        Ok(GroupedBook {
            accounts: self.accounts.clone(),
            balances,
            positions: positions_of(pos.offsets.clone(), &pos_rows),
            n_asset_codes: n_assets,
            n_market_codes: n_markets,
        })
    }
}

/// Groups the two tables by account. Errors name the first offending row.
pub fn group(
    bal: BalanceInput<'_>,
    pos: PositionInput<'_>,
    n_asset_codes: u32,
    n_market_codes: u32,
) -> Result<GroupedBook> {
    validate_balances(&bal, n_asset_codes)?;
    validate_positions(&pos, n_market_codes)?;
    if bal.account.len() >= u32::MAX as usize || pos.account.len() >= u32::MAX as usize {
        return Err(CoreError::book(
            Table::Positions,
            u32::MAX as usize,
            "account",
            "more than 2^32 rows in one table",
        ));
    }

    let (accounts, dense) = dense_accounts(&[bal.account, pos.account]);
    let n = accounts.len();

    // Balances: group, order by code within the account, merge duplicates (exact sum).
    let (offsets, mut rows) = scatter(&dense[0], n, |r| BalRow { code: bal.code[r], row: r as u32, qty: bal.qty[r] });
    sort_within(&offsets, &mut rows, |x| (x.code, x.row));
    let has_duplicates =
        (0..n).into_par_iter().any(|a| rows[offsets[a]..offsets[a + 1]].windows(2).any(|w| w[0].code == w[1].code));
    let balances = if has_duplicates { merge_balances(&offsets, &rows) } else { split_balances(offsets, &rows) };

    // Positions: group, order by code; a repeated code is an error naming both rows.
    let (offsets, mut rows) = scatter(&dense[1], n, |r| PosRow {
        code: pos.code[r],
        row: r as u32,
        qty: pos.qty[r],
        entry: pos.entry_price[r],
        // NaN and 0 both mean cross.
        isolated: if pos.isolated_margin[r].is_nan() { 0.0 } else { pos.isolated_margin[r] },
    });
    sort_within(&offsets, &mut rows, |x| (x.code, x.row));
    check_unique_positions(&accounts, &offsets, &rows)?;
    let positions = positions_of(offsets, &rows);

    Ok(GroupedBook { accounts, balances, positions, n_asset_codes, n_market_codes })
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

/// Codes used by `codes` map to strictly increasing universe indices.
fn increasing(codes: &[u32], n_codes: u32, remap: &[u32]) -> bool {
    let mut used = vec![false; n_codes as usize];
    for &c in codes {
        used[c as usize] = true;
    }
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

/// A repeated market within an account (rows sorted by code) is an error naming both rows.
fn check_unique_positions(accounts: &[i64], offsets: &[usize], rows: &[PosRow]) -> Result<()> {
    let n = accounts.len();
    let duplicate = (0..n)
        .into_par_iter()
        .find_first(|&a| rows[offsets[a]..offsets[a + 1]].windows(2).any(|w| w[0].code == w[1].code));
    let Some(a) = duplicate else { return Ok(()) };
    let w = rows[offsets[a]..offsets[a + 1]].windows(2).find(|w| w[0].code == w[1].code).expect("found above");
    let (r0, r1) = (w[0].row.min(w[1].row) as usize, w[0].row.max(w[1].row) as usize);
    Err(CoreError::Book {
        table: Table::Positions,
        row: r1,
        other_row: Some(r0),
        column: "market",
        message: format!(
            "duplicate position of account {} in one market; a position is the account's net position",
            accounts[a]
        ),
    })
}

fn positions_of(offsets: Vec<usize>, rows: &[PosRow]) -> Positions {
    Positions {
        code: map_column(rows, |x| x.code),
        qty: map_column(rows, |x| x.qty),
        entry_price: map_column(rows, |x| x.entry),
        isolated_margin: map_column(rows, |x| x.isolated),
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

fn validate_balances(b: &BalanceInput<'_>, n_codes: u32) -> Result<()> {
    let n = b.account.len();
    for (col, len) in [("asset", b.code.len()), ("qty", b.qty.len())] {
        if len != n {
            return Err(CoreError::book(
                Table::Balances,
                len.min(n),
                col,
                format!("column '{col}' has {len} rows, 'account' has {n}"),
            ));
        }
    }
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
    for (col, len) in [
        ("market", p.code.len()),
        ("qty", p.qty.len()),
        ("entry_price", p.entry_price.len()),
        ("isolated_margin", p.isolated_margin.len()),
    ] {
        if len != n {
            return Err(CoreError::book(
                Table::Positions,
                len.min(n),
                col,
                format!("column '{col}' has {len} rows, 'account' has {n}"),
            ));
        }
    }
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

/// The first row in `0..n` that `bad_in(lo, hi)` finds (it returns an offset within the
/// range), searching ranges of rows in parallel: tight loops over slices, not a task per row.
fn first_row(n: usize, bad_in: impl Fn(usize, usize) -> Option<usize> + Sync) -> Option<usize> {
    const ROWS: usize = 1 << 14;
    (0..n.div_ceil(ROWS)).into_par_iter().find_map_first(|c| {
        let (lo, hi) = (c * ROWS, ((c + 1) * ROWS).min(n));
        bad_in(lo, hi).map(|i| lo + i)
    })
}

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
        let range = range as usize;
        let mut table = vec![u32::MAX; range];
        for c in cols {
            for &id in c.iter() {
                table[(id - min) as usize] = 0;
            }
        }
        let mut accounts = Vec::new();
        for (off, slot) in table.iter_mut().enumerate() {
            if *slot == 0 {
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

/// Orders each account's rows by `key` (code, input row), in parallel over account ranges
/// of similar row counts. With the row in the key the order depends only on the set of
/// rows, not on their input order.
fn sort_within<T: Send, K: Ord>(offsets: &[usize], rows: &mut [T], key: impl Fn(&T) -> K + Sync) {
    let n = offsets.len() - 1;
    let parts = (rayon::current_num_threads() * 8).max(1);
    let per_part = rows.len().div_ceil(parts).max(1);
    // Account ranges [a0, a1) holding about `per_part` rows each.
    let mut bounds = vec![0usize];
    let mut a = 0;
    while a < n {
        let target = offsets[a] + per_part;
        a = offsets.partition_point(|&o| o < target).clamp(a + 1, n);
        bounds.push(a);
    }
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
    use super::*;

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

    #[test]
    fn empty_book_groups_to_no_accounts() {
        let g = book((&[], &[], &[]), (&[], &[], &[])).unwrap();
        assert_eq!(g.n_accounts(), 0);
        assert_eq!(g.balances.offsets, vec![0]);
    }
}
