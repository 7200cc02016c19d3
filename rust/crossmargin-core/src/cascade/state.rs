//! The mutable book a cascade works on: balances in minor units with f64 mirrors for the
//! margin kernels, positions with their closed quantities, isolated margins in minor units.

use rayon::prelude::*;

use crate::book::{AccountRows, Balances, GroupedBook, Orders, Positions};
use crate::cascade::ledger::{to_minor, to_units};
use crate::memory::Disjoint;
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
    /// Position side per row (a hedge leg is liquidated as its own position).
    pub pos_side: Vec<u8>,
    pub iso_minor: Vec<i128>,
    /// f64 mirror of the isolated margin as the margin kernel reads it (> 0 = isolated).
    pub iso_qty: Vec<f64>,
}

impl State {
    /// Copies the book in universe indices, adding a zero balance row for every settle asset an
    /// account trades in but holds no balance of, so that realised P&L always has a row.
    pub fn new(book: &GroupedBook, u: &Universe, asset_remap: &[u32], market_remap: &[u32]) -> State {
        let n = book.n_accounts();
        let pos_market: Vec<u32> = book.positions.code.par_iter().map(|&c| market_remap[c as usize]).collect();
        // Each account's balance rows, in chunks of accounts built in parallel, then joined.
        const ACCOUNTS: usize = 4096;
        let chunks: Vec<(Vec<u32>, Vec<i128>, Vec<usize>)> = (0..n.div_ceil(ACCOUNTS))
            .into_par_iter()
            .map(|c| {
                let (lo, hi) = (c * ACCOUNTS, ((c + 1) * ACCOUNTS).min(n));
                let (mut assets, mut minor, mut lens) = (Vec::new(), Vec::new(), Vec::with_capacity(hi - lo));
                let mut row: Vec<(u32, i128)> = Vec::new();
                for a in lo..hi {
                    row.clear();
                    let b = book.balances.offsets[a]..book.balances.offsets[a + 1];
                    for (&c, &q) in book.balances.code[b.clone()].iter().zip(&book.balances.qty[b]) {
                        row.push((asset_remap[c as usize], to_minor(q)));
                    }
                    for &k in &pos_market[book.positions.offsets[a]..book.positions.offsets[a + 1]] {
                        let settle = u.markets.settle[k as usize];
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
                    assets.extend(row.iter().map(|r| r.0));
                    minor.extend(row.iter().map(|r| r.1));
                    lens.push(row.len());
                }
                (assets, minor, lens)
            })
            .collect();
        // The chunks joined by parallel tasks, each writing its rows into their place.
        let mut starts = Vec::with_capacity(chunks.len());
        let total = chunks.iter().fold(0, |at, c| {
            starts.push(at);
            at + c.0.len()
        });
        let mut bal_offsets: Vec<usize> = Vec::with_capacity(n + 1);
        let (mut bal_asset, mut bal_minor) = (Vec::with_capacity(total), Vec::with_capacity(total));
        let (wo, wa, wm) =
            (Disjoint::new(&mut bal_offsets), Disjoint::new(&mut bal_asset), Disjoint::new(&mut bal_minor));
        // SAFETY: the capacity is n + 1 ≥ 1, and no task writes offset 0.
        unsafe { wo.write(0, 0) };
        chunks.par_iter().zip(&starts).enumerate().for_each(|(c, ((assets, minor, lens), &at))| {
            // SAFETY: chunk c alone writes offsets c·ACCOUNTS + 1 ..= its last account + 1 and
            // balance rows at..at + its row count, within the reserved lengths (the starts
            // sum the chunks' row counts to `total`).
            unsafe {
                let mut end = at;
                for (i, &len) in lens.iter().enumerate() {
                    end += len;
                    wo.write(c * ACCOUNTS + i + 1, end);
                }
                for (i, (&x, &m)) in assets.iter().zip(minor).enumerate() {
                    wa.write(at + i, x);
                    wm.write(at + i, m);
                }
            }
        });
        // SAFETY: the chunks cover every account (offsets 0..=n) and every balance row.
        unsafe {
            bal_offsets.set_len(n + 1);
            bal_asset.set_len(total);
            bal_minor.set_len(total);
        }
        let mut s = State {
            accounts: par_copy(&book.accounts),
            bal_offsets,
            bal_qty: bal_minor.par_iter().map(|&m| to_units(m)).collect(),
            bal_asset,
            bal_minor,
            pos_offsets: par_copy(&book.positions.offsets),
            pos_market,
            pos_qty: par_copy(&book.positions.qty),
            pos_entry: par_copy(&book.positions.entry_price),
            pos_isolated: book.positions.isolated_margin.par_iter().map(|&m| m > 0.0).collect(),
            pos_side: par_copy(&book.positions.side),
            iso_minor: book.positions.isolated_margin.par_iter().map(|&m| to_minor(m)).collect(),
            iso_qty: vec![],
        };
        s.iso_qty = (0..s.iso_minor.len()).into_par_iter().map(|p| s.iso_mirror(p)).collect();
        s
    }

    pub fn n_accounts(&self) -> usize {
        self.accounts.len()
    }

    fn iso_mirror(&self, p: usize) -> f64 {
        iso_mirror(self.pos_isolated[p], self.iso_minor[p])
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

    #[inline(always)]
    pub fn account(&self, a: usize) -> AccountRows<'_> {
        let b = self.bal_offsets[a]..self.bal_offsets[a + 1];
        let p = self.pos_offsets[a]..self.pos_offsets[a + 1];
        AccountRows {
            bal_code: &self.bal_asset[b.clone()],
            bal_qty: &self.bal_qty[b],
            pos_code: &self.pos_market[p.clone()],
            pos_qty: &self.pos_qty[p.clone()],
            pos_entry: &self.pos_entry[p.clone()],
            pos_isolated: &self.iso_qty[p.clone()],
            pos_side: &self.pos_side[p],
            // Orders never enter a cascade (they lock initial margin only).
            ord_code: &[],
            ord_qty: &[],
            ord_price: &[],
            ord_reduce_only: &[],
        }
    }

    /// Account `a`'s rows, mutable.
    pub fn account_mut(&mut self, a: usize) -> AccountMut<'_> {
        let mut runs = self.runs_mut(&[a, a + 1]).expect("an account of the state");
        runs.pop().expect("one run").into_account(a)
    }

    /// The rows of the accounts `cuts[i]..cuts[i + 1]` for each i, each run's mutable on its
    /// own: what lets settlement work on runs of accounts in parallel, each task taking its
    /// accounts' rows one by one ([`Run::account`]) — cut once per run, not once per account.
    /// `None` when `cuts` is not ascending or reaches beyond the state.
    pub fn runs_mut(&mut self, cuts: &[usize]) -> Option<Vec<Run<'_>>> {
        let n = self.n_accounts();
        if cuts.windows(2).any(|w| w[0] > w[1]) || cuts.last().is_some_and(|&a| a > n) {
            return None;
        }
        let State {
            accounts: ids,
            bal_offsets,
            bal_asset,
            bal_minor,
            bal_qty,
            pos_offsets,
            pos_market,
            pos_qty,
            pos_entry,
            pos_isolated,
            pos_side,
            iso_minor,
            iso_qty,
        } = self;
        let (bo, po) = (&bal_offsets[..], &pos_offsets[..]);
        let ranges = |o: &[usize]| cuts.windows(2).map(move |w| o[w[0]]..o[w[1]]).collect::<Vec<_>>();
        let (b, p) = (ranges(bo), ranges(po));
        let mut bal_minor = carve_ranges(bal_minor, b.iter().cloned()).into_iter();
        let mut bal_qty = carve_ranges(bal_qty, b.iter().cloned()).into_iter();
        let mut pos_qty = carve_ranges(pos_qty, p.iter().cloned()).into_iter();
        let mut pos_isolated = carve_ranges(pos_isolated, p.iter().cloned()).into_iter();
        let mut iso_minor = carve_ranges(iso_minor, p.iter().cloned()).into_iter();
        let mut iso_qty = carve_ranges(iso_qty, p.iter().cloned()).into_iter();
        let mut out = Vec::with_capacity(b.len());
        for (w, (b, p)) in cuts.windows(2).zip(b.into_iter().zip(p)) {
            out.push(Run {
                accounts: w[0]..w[1],
                ids,
                bal_offsets: bo,
                pos_offsets: po,
                bal_asset: &bal_asset[b.clone()],
                bal_minor: bal_minor.next()?,
                bal_qty: bal_qty.next()?,
                pos_market: &pos_market[p.clone()],
                pos_qty: pos_qty.next()?,
                pos_entry: &pos_entry[p.clone()],
                pos_isolated: pos_isolated.next()?,
                pos_side: pos_side.get(p).unwrap_or(&[]),
                iso_minor: iso_minor.next()?,
                iso_qty: iso_qty.next()?,
            });
        }
        Some(out)
    }

    /// The side code of position row `p` (0 both when the book has no sides).
    #[inline]
    pub fn side_of(&self, p: usize) -> u8 {
        self.pos_side.get(p).copied().unwrap_or(0)
    }

    /// The balance row of `asset` in account `a` (settle assets always have one).
    pub fn balance_row(&self, a: usize, asset: u32) -> usize {
        let r = self.bal_offsets[a]..self.bal_offsets[a + 1];
        r.clone().find(|&i| self.bal_asset[i] == asset).expect("State::new adds a row per settle asset")
    }

    /// The book as flat columns in universe indices (what a cascade hands back as its final
    /// book): every balance row in units (from the ledger), the open positions only, each with
    /// its side and its isolated margin in units (0 for a cross position). Rows stay grouped by
    /// account in the state's order. Two parallel passes over chunks of accounts: the first
    /// counts each chunk's open positions and accounts kept, the second writes each chunk's
    /// rows straight into their place — every column written once, by every thread, with no
    /// per-chunk buffers to join (a serial copy of ~150 MB at 1M accounts).
    pub fn columns(&self) -> BookColumns {
        self.columns_by(4096)
    }

    /// [`State::columns`] in chunks of `accounts` accounts (any chunking gives the same columns).
    fn columns_by(&self, accounts: usize) -> BookColumns {
        let n = self.n_accounts();
        let spans: Vec<(usize, usize)> =
            (0..n.div_ceil(accounts)).map(|c| (c * accounts, ((c + 1) * accounts).min(n))).collect();
        let open_rows = |a: usize| (self.pos_offsets[a]..self.pos_offsets[a + 1]).filter(|&p| self.pos_qty[p] != 0.0);
        // An account with no row left (it held only orders) is not in the book.
        let kept = |a: usize, open: usize| self.bal_offsets[a + 1] - self.bal_offsets[a] + open > 0;
        let counts: Vec<(usize, usize)> = spans
            .par_iter()
            .map(|&(lo, hi)| {
                (lo..hi).fold((0, 0), |(pos, acc), a| {
                    let open = open_rows(a).count();
                    (pos + open, acc + usize::from(kept(a, open)))
                })
            })
            .collect();
        // Each chunk's first balance row, position row and account in the output.
        let mut starts = Vec::with_capacity(spans.len());
        let (mut pos, mut acc) = (0, 0);
        for (&(lo, _), &(p, k)) in spans.iter().zip(&counts) {
            starts.push((self.bal_offsets[lo], pos, acc));
            (pos, acc) = (pos + p, acc + k);
        }
        let (n_bal, n_pos, n_acc) = (self.bal_offsets[n], pos, acc);
        let mut out = BookColumns {
            accounts: Vec::with_capacity(n_acc),
            bal_len: Vec::with_capacity(n_acc),
            pos_len: Vec::with_capacity(n_acc),
            bal_account: Vec::with_capacity(n_bal),
            bal_asset: Vec::with_capacity(n_bal),
            bal_qty: Vec::with_capacity(n_bal),
            pos_account: Vec::with_capacity(n_pos),
            pos_market: Vec::with_capacity(n_pos),
            pos_qty: Vec::with_capacity(n_pos),
            pos_entry: Vec::with_capacity(n_pos),
            pos_isolated: Vec::with_capacity(n_pos),
            pos_side: Vec::with_capacity(n_pos),
        };
        let w = ColumnWriters::new(&mut out);
        spans.par_iter().zip(&starts).for_each(|(&(lo, hi), &(mut b, mut p, mut k))| {
            for a in lo..hi {
                let id = self.accounts[a];
                let bal = self.bal_offsets[a]..self.bal_offsets[a + 1];
                let first = p;
                // SAFETY: this chunk alone writes balance rows bal_offsets[lo..hi], its open
                // positions from its start and its kept accounts from its start: the ranges the
                // first pass counted with the same predicates, inside the reserved lengths.
                unsafe {
                    for r in bal.clone() {
                        w.bal_account.write(b, id);
                        w.bal_asset.write(b, self.bal_asset[r]);
                        w.bal_qty.write(b, to_units(self.bal_minor[r]));
                        b += 1;
                    }
                    for q in open_rows(a) {
                        w.pos_account.write(p, id);
                        w.pos_market.write(p, self.pos_market[q]);
                        w.pos_qty.write(p, self.pos_qty[q]);
                        w.pos_entry.write(p, self.pos_entry[q]);
                        w.pos_isolated.write(p, if self.pos_isolated[q] { to_units(self.iso_minor[q]) } else { 0.0 });
                        w.pos_side.write(p, self.side_of(q));
                        p += 1;
                    }
                    if kept(a, p - first) {
                        w.accounts.write(k, id);
                        w.bal_len.write(k, bal.len());
                        w.pos_len.write(k, p - first);
                        k += 1;
                    }
                }
            }
        });
        // SAFETY: the chunks tile every output row (the first pass's counts, summed into the
        // starts above, are what the second pass wrote), and a panicking task never gets here.
        unsafe { out.set_lens(n_acc, n_bal, n_pos) };
        out
    }

    /// Per asset, `f` of every balance and isolated margin (minor units) folded with `add`,
    /// by parallel tasks over ranges of rows. `add` is associative and commutative where it is
    /// used (integer sums; saturating sums of magnitudes), so any split gives the same totals.
    pub fn per_asset(
        &self,
        u: &Universe,
        f: impl Fn(i128) -> i128 + Sync,
        add: impl Fn(i128, i128) -> i128 + Sync,
    ) -> Vec<i128> {
        // Chunks of rows, each summed in a plain loop (a fold row by row cost ≈ 10 ms a pass
        // at 1M accounts, in the cascade's setup and finish).
        const ROWS: usize = 64 * 1024;
        let na = u.n_assets();
        let zero = || vec![0i128; na];
        let merge = |mut x: Vec<i128>, y: Vec<i128>| {
            x.iter_mut().zip(y).for_each(|(x, y)| *x = add(*x, y));
            x
        };
        let balances = self.bal_asset.par_chunks(ROWS).zip(self.bal_minor.par_chunks(ROWS)).map(|(asset, minor)| {
            let mut t = zero();
            for (&a, &m) in asset.iter().zip(minor) {
                t[a as usize] = add(t[a as usize], f(m));
            }
            t
        });
        let settle = &u.markets.settle;
        let isolated = self.pos_market.par_chunks(ROWS).zip(self.iso_minor.par_chunks(ROWS)).map(|(market, iso)| {
            let mut t = zero();
            for (&k, &m) in market.iter().zip(iso) {
                if m != 0 {
                    let a = settle[k as usize] as usize;
                    t[a] = add(t[a], f(m));
                }
            }
            t
        });
        merge(balances.reduce(zero, merge), isolated.reduce(zero, merge))
    }
}

/// A book as flat columns in universe indices ([`State::columns`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BookColumns {
    /// The accounts with rows (ascending, as the state holds them) and each one's number of
    /// balance and position rows.
    pub accounts: Vec<i64>,
    pub bal_len: Vec<usize>,
    pub pos_len: Vec<usize>,
    pub bal_account: Vec<i64>,
    pub bal_asset: Vec<u32>,
    pub bal_qty: Vec<f64>,
    pub pos_account: Vec<i64>,
    pub pos_market: Vec<u32>,
    pub pos_qty: Vec<f64>,
    pub pos_entry: Vec<f64>,
    /// Isolated margin in units, 0 for a cross position.
    pub pos_isolated: Vec<f64>,
    pub pos_side: Vec<u8>,
}

/// [`Disjoint`] views of every column of a [`BookColumns`] being written.
struct ColumnWriters {
    accounts: Disjoint<i64>,
    bal_len: Disjoint<usize>,
    pos_len: Disjoint<usize>,
    bal_account: Disjoint<i64>,
    bal_asset: Disjoint<u32>,
    bal_qty: Disjoint<f64>,
    pos_account: Disjoint<i64>,
    pos_market: Disjoint<u32>,
    pos_qty: Disjoint<f64>,
    pos_entry: Disjoint<f64>,
    pos_isolated: Disjoint<f64>,
    pos_side: Disjoint<u8>,
}

impl ColumnWriters {
    fn new(c: &mut BookColumns) -> Self {
        ColumnWriters {
            accounts: Disjoint::new(&mut c.accounts),
            bal_len: Disjoint::new(&mut c.bal_len),
            pos_len: Disjoint::new(&mut c.pos_len),
            bal_account: Disjoint::new(&mut c.bal_account),
            bal_asset: Disjoint::new(&mut c.bal_asset),
            bal_qty: Disjoint::new(&mut c.bal_qty),
            pos_account: Disjoint::new(&mut c.pos_account),
            pos_market: Disjoint::new(&mut c.pos_market),
            pos_qty: Disjoint::new(&mut c.pos_qty),
            pos_entry: Disjoint::new(&mut c.pos_entry),
            pos_isolated: Disjoint::new(&mut c.pos_isolated),
            pos_side: Disjoint::new(&mut c.pos_side),
        }
    }
}

impl BookColumns {
    /// Sets the lengths of columns written through [`ColumnWriters`].
    ///
    /// # Safety
    /// The first `accounts` slots of the per-account columns, `bal` of the balance columns
    /// and `pos` of the position columns are written, within their capacities.
    unsafe fn set_lens(&mut self, accounts: usize, bal: usize, pos: usize) {
        // SAFETY: as the caller guarantees.
        unsafe {
            self.accounts.set_len(accounts);
            self.bal_len.set_len(accounts);
            self.pos_len.set_len(accounts);
            self.bal_account.set_len(bal);
            self.bal_asset.set_len(bal);
            self.bal_qty.set_len(bal);
            self.pos_account.set_len(pos);
            self.pos_market.set_len(pos);
            self.pos_qty.set_len(pos);
            self.pos_entry.set_len(pos);
            self.pos_isolated.set_len(pos);
            self.pos_side.set_len(pos);
        }
    }

    /// The book these columns group into — what `book::group_with` makes of them (accounts
    /// ascending, each account's balances by asset, positions by (market, side), codes the
    /// universe indices the columns hold), built from the rows' grouping as it stands: the
    /// columns are already in that order (test `grouped_columns_are_what_grouping_makes`).
    pub fn grouped(&self) -> GroupedBook {
        let offsets = |lens: &[usize]| {
            let mut o = Vec::with_capacity(lens.len() + 1);
            o.push(0usize);
            for &n in lens {
                o.push(o[o.len() - 1] + n);
            }
            o
        };
        let n_codes = |codes: &[u32]| codes.par_iter().copied().max().map_or(0, |m| m + 1);
        GroupedBook {
            accounts: par_copy(&self.accounts),
            balances: Balances {
                offsets: offsets(&self.bal_len),
                code: par_copy(&self.bal_asset),
                qty: par_copy(&self.bal_qty),
            },
            positions: Positions {
                offsets: offsets(&self.pos_len),
                code: par_copy(&self.pos_market),
                qty: par_copy(&self.pos_qty),
                entry_price: par_copy(&self.pos_entry),
                isolated_margin: par_copy(&self.pos_isolated),
                side: par_copy(&self.pos_side),
                row: (0..self.pos_qty.len() as u32).into_par_iter().collect(),
            },
            orders: Orders::default(),
            n_asset_codes: n_codes(&self.bal_asset),
            n_market_codes: n_codes(&self.pos_market),
        }
    }
}

/// Disjoint mutable parts of `v`, one per range (ascending, not overlapping).
pub fn carve_ranges<T>(mut v: &mut [T], ranges: impl Iterator<Item = std::ops::Range<usize>>) -> Vec<&mut [T]> {
    let (mut at, mut out) = (0, Vec::with_capacity(ranges.size_hint().0));
    for r in ranges {
        let (_, tail) = std::mem::take(&mut v).split_at_mut(r.start - at);
        let (mine, tail) = tail.split_at_mut(r.end - r.start);
        out.push(mine);
        v = tail;
        at = r.end;
    }
    out
}

/// One account's rows: its ledger and positions mutable, the rest read-only. Position rows
/// are numbered within the account (row `pos_first + i` of the state is row `i` here).
#[derive(Debug)]
pub struct AccountMut<'s> {
    pub id: i64,
    /// The state's row of the account's first position.
    pub pos_first: usize,
    pub bal_asset: &'s [u32],
    pub bal_minor: &'s mut [i128],
    pub bal_qty: &'s mut [f64],
    pub pos_market: &'s [u32],
    pub pos_qty: &'s mut [f64],
    pub pos_entry: &'s [f64],
    pub pos_isolated: &'s mut [bool],
    pub pos_side: &'s [u8],
    pub iso_minor: &'s mut [i128],
    pub iso_qty: &'s mut [f64],
}

/// The rows of a run of accounts ([`State::runs_mut`]): the ledger and positions mutable, the
/// rest read-only; an account's [`AccountMut`] is cut from it on demand.
#[derive(Debug)]
pub struct Run<'s> {
    accounts: std::ops::Range<usize>,
    ids: &'s [i64],
    bal_offsets: &'s [usize],
    pos_offsets: &'s [usize],
    bal_asset: &'s [u32],
    bal_minor: &'s mut [i128],
    bal_qty: &'s mut [f64],
    pos_market: &'s [u32],
    pos_qty: &'s mut [f64],
    pos_entry: &'s [f64],
    pos_isolated: &'s mut [bool],
    pos_side: &'s [u8],
    iso_minor: &'s mut [i128],
    iso_qty: &'s mut [f64],
}

impl<'s> Run<'s> {
    /// Account `a`'s rows (an account of the run), mutable.
    pub fn account(&mut self, a: usize) -> AccountMut<'_> {
        let run = Run {
            accounts: self.accounts.clone(),
            ids: self.ids,
            bal_offsets: self.bal_offsets,
            pos_offsets: self.pos_offsets,
            bal_asset: self.bal_asset,
            bal_minor: self.bal_minor,
            bal_qty: self.bal_qty,
            pos_market: self.pos_market,
            pos_qty: self.pos_qty,
            pos_entry: self.pos_entry,
            pos_isolated: self.pos_isolated,
            pos_side: self.pos_side,
            iso_minor: self.iso_minor,
            iso_qty: self.iso_qty,
        };
        run.into_account(a)
    }

    /// Account `a`'s rows for as long as the run's.
    fn into_account(self, a: usize) -> AccountMut<'s> {
        assert!(self.accounts.contains(&a), "account {a} is not in the run {:?}", self.accounts);
        let (b0, p0) = (self.bal_offsets[self.accounts.start], self.pos_offsets[self.accounts.start]);
        let b = self.bal_offsets[a] - b0..self.bal_offsets[a + 1] - b0;
        let p = self.pos_offsets[a] - p0..self.pos_offsets[a + 1] - p0;
        AccountMut {
            id: self.ids[a],
            pos_first: self.pos_offsets[a],
            bal_asset: &self.bal_asset[b.clone()],
            bal_minor: &mut self.bal_minor[b.clone()],
            bal_qty: &mut self.bal_qty[b],
            pos_market: &self.pos_market[p.clone()],
            pos_qty: &mut self.pos_qty[p.clone()],
            pos_entry: &self.pos_entry[p.clone()],
            pos_isolated: &mut self.pos_isolated[p.clone()],
            pos_side: self.pos_side.get(p.clone()).unwrap_or(&[]),
            iso_minor: &mut self.iso_minor[p.clone()],
            iso_qty: &mut self.iso_qty[p],
        }
    }
}

impl AccountMut<'_> {
    /// The rows as the margin kernel reads them.
    #[inline]
    pub fn rows(&self) -> AccountRows<'_> {
        AccountRows {
            bal_code: self.bal_asset,
            bal_qty: self.bal_qty,
            pos_code: self.pos_market,
            pos_qty: self.pos_qty,
            pos_entry: self.pos_entry,
            pos_isolated: self.iso_qty,
            pos_side: self.pos_side,
            ord_code: &[],
            ord_qty: &[],
            ord_price: &[],
            ord_reduce_only: &[],
        }
    }

    /// Refreshes the f64 mirrors after the ledger changed ([`State::refresh`]).
    pub fn refresh(&mut self) {
        for (q, &m) in self.bal_qty.iter_mut().zip(self.bal_minor.iter()) {
            *q = to_units(m);
        }
        for p in 0..self.iso_qty.len() {
            self.iso_qty[p] = iso_mirror(self.pos_isolated[p], self.iso_minor[p]);
        }
    }

    /// The side code of position `p` (0 both when the book has no sides).
    #[inline]
    pub fn side_of(&self, p: usize) -> u8 {
        self.pos_side.get(p).copied().unwrap_or(0)
    }

    /// The balance row of `asset` (settle assets always have one).
    pub fn balance_row(&self, asset: u32) -> usize {
        self.bal_asset.iter().position(|&b| b == asset).expect("State::new adds a row per settle asset")
    }

    /// A closed isolated position `p` hands its remaining margin back to the wallet.
    pub fn release_isolated(&mut self, p: usize, u: &Universe) {
        let row = self.balance_row(u.markets.settle[self.pos_market[p] as usize]);
        self.bal_minor[row] += self.iso_minor[p];
        self.iso_minor[p] = 0;
        self.pos_isolated[p] = false;
    }
}

/// The f64 mirror of an isolated margin as the margin kernel reads it (> 0 = isolated): an
/// isolated position keeps being isolated even with its margin used up.
fn iso_mirror(isolated: bool, minor: i128) -> f64 {
    if isolated {
        to_units(minor).max(f64::MIN_POSITIVE)
    } else {
        0.0
    }
}

/// A copy of `v` made by parallel tasks.
fn par_copy<T: Copy + Send + Sync>(v: &[T]) -> Vec<T> {
    v.par_iter().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{group_with, BalanceInput, OrderInput, PositionInput};
    use crate::universe::fixtures::{asset, perp};
    use proptest::prelude::*;

    /// [`State::columns`] pushed row by row: the columns' definition.
    fn row_by_row(s: &State) -> BookColumns {
        let mut out = BookColumns::default();
        for a in 0..s.n_accounts() {
            let id = s.accounts[a];
            let bal = s.bal_offsets[a]..s.bal_offsets[a + 1];
            for r in bal.clone() {
                out.bal_account.push(id);
                out.bal_asset.push(s.bal_asset[r]);
                out.bal_qty.push(to_units(s.bal_minor[r]));
            }
            let open: Vec<usize> = (s.pos_offsets[a]..s.pos_offsets[a + 1]).filter(|&p| s.pos_qty[p] != 0.0).collect();
            for &p in &open {
                out.pos_account.push(id);
                out.pos_market.push(s.pos_market[p]);
                out.pos_qty.push(s.pos_qty[p]);
                out.pos_entry.push(s.pos_entry[p]);
                out.pos_isolated.push(if s.pos_isolated[p] { to_units(s.iso_minor[p]) } else { 0.0 });
                out.pos_side.push(s.side_of(p));
            }
            if bal.len() + open.len() > 0 {
                out.accounts.push(id);
                out.bal_len.push(bal.len());
                out.pos_len.push(open.len());
            }
        }
        out
    }

    /// The balance rows of a book of several chunks of accounts, joined in place, are each
    /// account's rows in order: its balances, then a zero row per settle asset it trades in
    /// but holds none of.
    #[test]
    fn balance_rows_join_across_chunks() {
        let u = Universe::new(
            &[asset("USDT", 1.0), asset("BTC", 100.0)],
            &[
                perp("BTCUSDT", "USDT", "BTC", 100.0, &[(f64::INFINITY, 0.1, 0.05)]),
                perp("BTCUSD", "BTC", "BTC", 100.0, &[(f64::INFINITY, 0.1, 0.05)]),
            ],
        )
        .unwrap();
        let n = 9_001i64;
        let ids: Vec<i64> = (0..n).collect();
        // Every third account holds no balance; account i trades market i % 2.
        let cash: Vec<i64> = ids.iter().copied().filter(|i| i % 3 != 0).collect();
        let (bc, bq): (Vec<u32>, Vec<f64>) = cash.iter().map(|&i| (0u32, i as f64)).unzip();
        let pc: Vec<u32> = ids.iter().map(|i| (i % 2) as u32).collect();
        let ones = vec![1.0; ids.len()];
        let zeros = vec![0.0; ids.len()];
        let book = group_with(
            BalanceInput { account: &cash, code: &bc, qty: &bq },
            PositionInput { account: &ids, code: &pc, qty: &ones, entry_price: &ones, isolated_margin: &zeros },
            &[],
            None,
            2,
            2,
        )
        .unwrap();
        let state = State::new(&book, &u, &[0, 1], &[0, 1]);
        let (mut offsets, mut assets, mut minor) = (vec![0usize], vec![], vec![]);
        for i in 0..n {
            if i % 3 != 0 {
                assets.push(0u32);
                minor.push(to_minor(i as f64));
            }
            if i % 2 == 0 && i % 3 == 0 {
                assets.push(0);
                minor.push(0);
            }
            if i % 2 == 1 {
                assets.push(1);
                minor.push(0);
            }
            offsets.push(assets.len());
        }
        assert_eq!(state.bal_offsets, offsets);
        assert_eq!(state.bal_asset, assets);
        assert_eq!(state.bal_minor, minor);
    }

    /// Runs of accounts hand out each account's own rows (what a whole-state cut gives), and
    /// what a run writes lands in the state; cuts that go back or past the state give none.
    #[test]
    fn runs_hand_out_each_accounts_rows() {
        let u = Universe::new(
            &[asset("USDT", 1.0)],
            &[perp("BTCUSDT", "USDT", "BTC", 100.0, &[(f64::INFINITY, 0.1, 0.05)])],
        )
        .unwrap();
        // Account i holds 1 + i % 3 balance rows of asset 0 and i % 2 positions.
        let n = 50i64;
        let bal: Vec<i64> = (0..n).flat_map(|i| std::iter::repeat_n(i, 1 + (i % 3) as usize)).collect();
        let pos: Vec<i64> = (0..n).filter(|i| i % 2 == 1).collect();
        let bq: Vec<f64> = (0..bal.len()).map(|r| r as f64).collect();
        let pq: Vec<f64> = (0..pos.len()).map(|r| 1.0 + r as f64).collect();
        let book = group_with(
            BalanceInput { account: &bal, code: &vec![0; bal.len()], qty: &bq },
            PositionInput {
                account: &pos,
                code: &vec![0; pos.len()],
                qty: &pq,
                entry_price: &vec![100.0; pos.len()],
                isolated_margin: &vec![0.0; pos.len()],
            },
            &[],
            None,
            1,
            1,
        )
        .unwrap();
        let mut state = State::new(&book, &u, &[0], &[0]);
        let whole = |s: &mut State, a: usize| {
            let acc = s.account_mut(a);
            (acc.id, acc.pos_first, acc.bal_minor.to_vec(), acc.bal_qty.to_vec(), acc.pos_qty.to_vec())
        };
        let want: Vec<_> = (0..n as usize).map(|a| whole(&mut state, a)).collect();
        let cuts = [3, 4, 17, 40, 50];
        for (run, w) in state.runs_mut(&cuts).unwrap().iter_mut().zip(cuts.windows(2)) {
            for (a, want) in want.iter().enumerate().take(w[1]).skip(w[0]) {
                let acc = run.account(a);
                let got = (acc.id, acc.pos_first, acc.bal_minor.to_vec(), acc.bal_qty.to_vec(), acc.pos_qty.to_vec());
                assert_eq!(&got, want, "account {a}");
                acc.pos_qty.iter_mut().for_each(|q| *q = -(a as f64));
            }
        }
        for a in 3..n as usize {
            let p = state.pos_offsets[a]..state.pos_offsets[a + 1];
            assert!(state.pos_qty[p].iter().all(|&q| q == -(a as f64)), "account {a}");
        }
        assert_eq!(state.pos_qty[..state.pos_offsets[3]], pq[..state.pos_offsets[3]]);
        assert!(state.runs_mut(&[4, 3]).is_none());
        assert!(state.runs_mut(&[0, n as usize + 1]).is_none());
        assert_eq!(state.runs_mut(&[]).unwrap().len(), 0);
    }

    #[test]
    fn an_empty_book_joins_to_empty_columns() {
        let u = Universe::new(&[asset("USDT", 1.0)], &[]).unwrap();
        let none = PositionInput { account: &[], code: &[], qty: &[], entry_price: &[], isolated_margin: &[] };
        let book = group_with(BalanceInput { account: &[], code: &[], qty: &[] }, none, &[], None, 1, 0).unwrap();
        let state = State::new(&book, &u, &[0], &[]);
        assert_eq!(state.bal_offsets, vec![0]);
        assert_eq!(state.columns(), BookColumns::default());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The final book's grouping, taken from the state's rows, is what grouping its
        /// columns makes: closed positions dropped, accounts left with no row dropped.
        #[test]
        fn grouped_columns_are_what_grouping_makes(
            cash in prop::collection::vec((0i64..30, 0u32..2, -100.0f64..100.0), 0..40),
            pos in prop::collection::vec((0i64..30, 0u32..2, -5.0f64..5.0, 0u8..3, prop::bool::ANY, prop::bool::ANY), 0..60),
            only_orders in prop::collection::vec(30i64..40, 0..4),
        ) {
            let u = Universe::new(
                &[asset("USDT", 1.0), asset("BTC", 100.0)],
                &[
                    perp("BTCUSDT", "USDT", "BTC", 100.0, &[(f64::INFINITY, 0.1, 0.05)]),
                    perp("BTCUSD", "BTC", "BTC", 100.0, &[(f64::INFINITY, 0.1, 0.05)]),
                ],
            )
            .unwrap();
            let mut seen = std::collections::HashSet::new();
            let pos: Vec<_> = pos.into_iter().filter(|p| seen.insert((p.0, p.1))).collect();
            let (ba, bc, bq): (Vec<i64>, Vec<u32>, Vec<f64>) =
                (cash.iter().map(|c| c.0).collect(), cash.iter().map(|c| c.1).collect(), cash.iter().map(|c| c.2).collect());
            let pa: Vec<i64> = pos.iter().map(|p| p.0).collect();
            let pc: Vec<u32> = pos.iter().map(|p| p.1).collect();
            // A long leg holds a quantity ≥ 0, a short leg ≤ 0.
            let size = |q: f64| if q.abs() > 0.1 { q } else { 1.0 };
            let pq: Vec<f64> = pos
                .iter()
                .map(|p| match p.3 {
                    1 => size(p.2).abs(),
                    2 => -size(p.2).abs(),
                    _ => size(p.2),
                })
                .collect();
            let pe = vec![100.0; pos.len()];
            let pi: Vec<f64> = pos.iter().map(|p| if p.4 { 10.0 } else { 0.0 }).collect();
            let ps: Vec<u8> = pos.iter().map(|p| p.3).collect();
            let n_orders = only_orders.len();
            let (oc, os, oq, op, or) = (vec![0u32; n_orders], vec![0u8; n_orders], vec![1.0; n_orders], vec![90.0; n_orders], vec![false; n_orders]);
            let orders = OrderInput { account: &only_orders, code: &oc, side: &os, qty: &oq, price: &op, reduce_only: &or };
            let book = group_with(
                BalanceInput { account: &ba, code: &bc, qty: &bq },
                PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pi },
                &ps,
                Some(orders),
                2,
                2,
            )
            .unwrap();
            let mut state = State::new(&book, &u, &[0, 1], &[0, 1]);
            // Close the positions the input marks (a cascade's fills leave them at 0).
            for (p, &r) in book.positions.row.iter().enumerate() {
                if pos[r as usize].5 {
                    state.pos_qty[p] = 0.0;
                }
            }
            // Per-asset holdings: the serial sums, on any number of threads.
            let mut want = vec![0i128; 2];
            for (&a, &m) in state.bal_asset.iter().zip(&state.bal_minor) {
                want[a as usize] += m;
            }
            for (p, &m) in state.iso_minor.iter().enumerate() {
                want[u.markets.settle[state.pos_market[p] as usize] as usize] += m;
            }
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                prop_assert_eq!(&pool.install(|| state.per_asset(&u, |m| m, |x, y| x + y)), &want);
            }
            let c = state.columns();
            for chunk in [1, 3, 7] {
                prop_assert_eq!(&state.columns_by(chunk), &c);
            }
            prop_assert_eq!(&c, &row_by_row(&state));
            let n_codes = |codes: &[u32]| codes.iter().max().map_or(0, |m| m + 1);
            let regrouped = group_with(
                BalanceInput { account: &c.bal_account, code: &c.bal_asset, qty: &c.bal_qty },
                PositionInput {
                    account: &c.pos_account,
                    code: &c.pos_market,
                    qty: &c.pos_qty,
                    entry_price: &c.pos_entry,
                    isolated_margin: &c.pos_isolated,
                },
                &c.pos_side,
                None,
                n_codes(&c.bal_asset),
                n_codes(&c.pos_market),
            )
            .unwrap();
            prop_assert_eq!(c.grouped(), regrouped);
        }
    }
}
