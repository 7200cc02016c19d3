//! Large re-evaluations through the evaluation kernel (docs/ARCHITECTURE.md, the live
//! monitoring decision):
//! the affected accounts' rows are gathered from the [`Store`] into a compact grouped book of
//! those accounts alone (same rows, same canonical order) and its [`Sliced8`] layout, which
//! [`kernel::evaluate_into`] evaluates at the dispatched SIMD level into columns held beside
//! it. The kernel equals [`crate::margin::evaluate_rows`] bit for bit at every level, so the
//! monitor's results do not depend on which path ran.
//!
//! A tick's gathered rows are kept per set of moved price slots (a tick on the same market
//! again reuses them) until a change, a fill or a refresh edits rows.

use std::collections::HashMap;

use crate::book::{Balances, GroupedBook, Orders, Positions};
use crate::error::Result;
use crate::kernel::{self, Level, Sliced8};
use crate::margin::{AccountMargin, MarginColumns, MarginContext};

use super::state::Store;

/// Affected accounts from which a re-evaluation gathers rows for the kernel; below it the
/// accounts are evaluated one by one in place. Set, not measured: `benches/monitor.py`
/// times ticks reaching 100,000 accounts (the kernel 2-3× faster) and trades of 1,000
/// accounts (below it); docs/ARCHITECTURE.md, the live-monitoring decision.
pub const BULK_MIN: usize = 2048;

/// The affected accounts' rows as a compact grouped book, its kernel layout and result columns.
#[derive(Debug)]
pub struct Gathered {
    book: GroupedBook,
    layout: Sliced8,
    out: MarginColumns,
}

impl Gathered {
    /// The rows of dense accounts `affected` (in that order) from `store`.
    pub fn new(store: &Store, affected: &[u32]) -> Self {
        let n = affected.len();
        let base = store.base();
        let (mut nb, mut np, mut no) = (0usize, 0usize, 0usize);
        for &a in affected {
            let r = store.account(a as usize);
            (nb, np, no) = (nb + r.bal_code.len(), np + r.pos_code.len(), no + r.ord_code.len());
        }
        let mut b =
            Balances { offsets: Vec::with_capacity(n + 1), code: Vec::with_capacity(nb), qty: Vec::with_capacity(nb) };
        let mut p = Positions {
            offsets: Vec::with_capacity(n + 1),
            code: Vec::with_capacity(np),
            qty: Vec::with_capacity(np),
            entry_price: Vec::with_capacity(np),
            isolated_margin: Vec::with_capacity(np),
            side: Vec::with_capacity(np),
            row: Vec::new(),
        };
        let mut o = Orders {
            offsets: Vec::with_capacity(n + 1),
            code: Vec::with_capacity(no),
            qty: Vec::with_capacity(no),
            price: Vec::with_capacity(no),
            reduce_only: Vec::with_capacity(no),
            row: Vec::new(),
        };
        b.offsets.push(0);
        p.offsets.push(0);
        o.offsets.push(0);
        for &a in affected {
            let r = store.account(a as usize);
            b.code.extend_from_slice(r.bal_code);
            b.qty.extend_from_slice(r.bal_qty);
            b.offsets.push(b.code.len());
            p.code.extend_from_slice(r.pos_code);
            p.qty.extend_from_slice(r.pos_qty);
            p.entry_price.extend_from_slice(r.pos_entry);
            p.isolated_margin.extend_from_slice(r.pos_isolated);
            p.side.extend((0..r.pos_code.len()).map(|j| r.side(j)));
            p.offsets.push(p.code.len());
            o.code.extend_from_slice(r.ord_code);
            o.qty.extend_from_slice(r.ord_qty);
            o.price.extend_from_slice(r.ord_price);
            o.reduce_only.extend_from_slice(r.ord_reduce_only);
            o.offsets.push(o.code.len());
        }
        let book = GroupedBook {
            accounts: affected.iter().map(|&a| store.id(a as usize)).collect(),
            balances: b,
            positions: p,
            orders: o,
            n_asset_codes: base.n_asset_codes,
            n_market_codes: base.n_market_codes,
        };
        let layout = Sliced8::new(&book);
        Gathered { book, layout, out: MarginColumns::zeroed(n) }
    }

    pub fn n_accounts(&self) -> usize {
        self.book.n_accounts()
    }

    /// Whether the kernel's SIMD path computes this context (else gathering does not pay).
    pub fn simd_applies(&self, ctx: &MarginContext<'_>) -> bool {
        kernel::simd_applies(ctx, &self.layout, &self.book)
    }

    /// Evaluates every gathered account at `level` into the held columns.
    pub fn evaluate(&mut self, ctx: &MarginContext<'_>, level: Level) -> Result<()> {
        kernel::evaluate_into(&self.book, &self.layout, ctx, self.out.as_mut(), level)
    }

    /// The margin of the `i`-th gathered account, as [`crate::margin::evaluate_rows`] gives
    /// it: the columns carry every field but which test made the account liquidatable, and
    /// without venue rules (where the kernel runs) the fee reserve is 0. An isolated
    /// position's own shortfall is recorded where the cross pool alone does not explain
    /// `liquidatable`, so [`AccountMargin::liquidatable`] and every level agree.
    #[inline]
    pub fn margin(&self, i: usize) -> AccountMargin {
        let c = &self.out;
        let (adj, req) = ([c.adj_equity_initial[i], c.adj_equity_maint[i]], [c.im[i], c.mm[i]]);
        let pool_short = adj[1] < req[1];
        AccountMargin {
            equity: c.equity[i],
            upnl: c.upnl[i],
            adj_equity: adj,
            requirement: req,
            isolated_liquidatable: c.liquidatable[i] && !pool_short,
            fee_reserve: 0.0,
        }
    }
}

/// Gathered rows kept between ticks, by the sorted price slots that moved; emptied whenever
/// rows change. Holds at most as many accounts as the store (the memory of one more
/// compact book); a set that would exceed it empties the cache first.
#[derive(Debug, Default)]
pub struct Cache {
    by_slots: HashMap<Vec<u32>, Gathered>,
    accounts: usize,
}

impl Cache {
    /// Sets of slots kept.
    pub fn len(&self) -> usize {
        self.by_slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_slots.is_empty()
    }

    pub fn clear(&mut self) {
        self.by_slots.clear();
        self.accounts = 0;
    }

    /// The gathered rows of `slots`' accounts `affected`, gathered now when not kept.
    pub fn get_or_gather(&mut self, slots: &[u32], store: &Store, affected: &[u32]) -> &mut Gathered {
        if !self.by_slots.contains_key(slots) {
            if self.accounts + affected.len() > store.n_accounts() {
                self.clear();
            }
            self.accounts += affected.len();
            self.by_slots.insert(slots.to_vec(), Gathered::new(store, affected));
        }
        self.by_slots.get_mut(slots).expect("inserted above")
    }
}
