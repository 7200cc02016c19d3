//! Live monitoring (docs/MODEL.md "Live monitoring"): a resident book that takes price ticks,
//! row changes and fills, re-evaluates only the accounts they reach, and reports the accounts
//! whose risk level changed.
//!
//! - [`state`]: the rows (the starting grouped book, plus an owned copy per changed account)
//! - [`index`]: price slot → accounts
//! - [`levels`]: margin call, liquidation, bankruptcy; crossings
//! - [`fill`]: a fill → the position's new state and the settle balance's cash
//! - [`log`]: the audit trail; [`Monitor::replay`] rebuilds a monitor from it
//!
//! Every account is evaluated by [`margin::evaluate_rows`] with the same prepared lookup a
//! batch evaluation uses, over rows in the canonical order, so the monitor's results equal a
//! batch evaluation of its snapshot bit for bit. Large sets of accounts (a tick on a widely
//! held market, a refresh) go through the evaluation kernel instead ([`bulk`]: gathered rows,
//! the dispatched SIMD level), which gives the same bits. Every change is checked whole before any of
//! it applies: an error leaves the monitor as it was.

pub mod bulk;
pub mod fill;
pub mod index;
pub mod levels;
pub mod log;
pub mod state;

use rayon::prelude::*;

use crate::book::{group_with, BalanceInput, GroupedBook, OrderInput, PositionInput, SIDE_LONG, SIDE_SHORT};
use crate::error::{CoreError, Result, Table};
use crate::kernel::Level;
use crate::limits::{is_price, within, MAX_QTY};
use crate::margin::{evaluate_rows, AccountMargin, MarginContext, PreparedLookup, Prices, Remap};
use crate::memory::column;
use crate::orders;
use crate::universe::Universe;

pub use index::{Dependencies, Index};
pub use levels::{Crossing, Levels, LEVEL_NAMES};
pub use log::{Entry, Log, KIND_NAMES};
pub use state::{OrderRow, OwnedRows, Store};

/// Row changes of one operation: the rows' new states, keyed like the book — balances by
/// (account, asset), positions by (account, market, side), open orders by (account, market)
/// (the rows given are the key's whole new set); a zero balance or position removes the row;
/// `clear_*` pairs empty a key's open orders. Codes are universe indices.
#[derive(Debug, Clone, Copy)]
pub struct Changes<'a> {
    pub balances: BalanceInput<'a>,
    pub positions: PositionInput<'a>,
    /// One side per position row, or empty (all one-way).
    pub side: &'a [u8],
    pub orders: Option<OrderInput<'a>>,
    pub clear_account: &'a [i64],
    pub clear_market: &'a [u32],
}

/// A fill to record beside the changes it produced.
#[derive(Debug, Clone, Copy)]
struct FillNote {
    account: i64,
    market: u32,
    side: u8,
    qty: f64,
    price: f64,
    realised: f64,
}

/// The monitor's state (the universe is passed to each call; it must be the one the monitor
/// was built with, or a refresh's replacement with the same symbols).
#[derive(Debug)]
pub struct Monitor {
    store: Store,
    deps: Dependencies,
    index: Index,
    asset_price: Vec<f64>,
    mark: Vec<f64>,
    asset_identity: Vec<u32>,
    market_identity: Vec<u32>,
    lookup: PreparedLookup,
    results: Vec<AccountMargin>,
    level: Vec<u8>,
    levels: Levels,
    log: Log,
    seq: u64,
    bulk: Bulk,
    cache: bulk::Cache,
}

/// When re-evaluations go through the kernel ([`bulk`]).
#[derive(Debug, Clone, Copy)]
struct Bulk {
    /// Affected accounts from which rows are gathered for the kernel.
    min_accounts: usize,
    /// The kernel's level; `None`: [`Level::from_env`] at each operation.
    level: Option<Level>,
}

/// An empty book with the universe's code ranges: what a price check needs.
fn no_rows(u: &Universe) -> GroupedBook {
    GroupedBook { n_asset_codes: u.n_assets() as u32, n_market_codes: u.n_markets() as u32, ..GroupedBook::default() }
}

fn identity(n: usize) -> Vec<u32> {
    (0..n as u32).collect()
}

/// Accounts per parallel task when re-evaluating.
const CHUNK: usize = 1024;

/// Accounts ahead whose result the scatter asks the cache for (the affected accounts are
/// scattered over the result column: a miss each).
const PREFETCH: usize = 16;

/// A hint to load the cache line of `r` (no effect on any value).
#[inline(always)]
fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults or changes memory, and `r` is a live
    // reference besides.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// Stores the new margins of the accounts `affected` (dense numbers, ascending, unique;
/// `margin(i, a)`: the margin of `affected[i] = a`) in place and returns their crossings in
/// that order.
fn reevaluate(
    store: &Store,
    levels: Levels,
    affected: &[u32],
    results: &mut [AccountMargin],
    level: &mut [u8],
    margin: impl Fn(usize, usize) -> AccountMargin + Sync,
) -> Vec<Crossing> {
    // Disjoint windows of the result columns, one per chunk of the (ascending) affected list.
    let mut tasks = Vec::with_capacity(affected.len().div_ceil(CHUNK));
    let (mut res, mut lev, mut offset) = (results, level, 0usize);
    for chunk in affected.chunks(CHUNK) {
        let (lo, hi) = (chunk[0] as usize, *chunk.last().expect("chunks are not empty") as usize + 1);
        let (_, r) = std::mem::take(&mut res).split_at_mut(lo - offset);
        let (rw, rrest) = r.split_at_mut(hi - lo);
        let (_, l) = std::mem::take(&mut lev).split_at_mut(lo - offset);
        let (lw, lrest) = l.split_at_mut(hi - lo);
        tasks.push((tasks.len() * CHUNK, chunk, lo, rw, lw));
        res = rrest;
        lev = lrest;
        offset = hi;
    }
    let work = |(i0, chunk, lo, rw, lw): (usize, &[u32], usize, &mut [AccountMargin], &mut [u8])| {
        let mut out = Vec::new();
        for (i, &a) in chunk.iter().enumerate() {
            if let Some(&ahead) = chunk.get(i + PREFETCH) {
                prefetch(&rw[ahead as usize - lo]);
            }
            let a = a as usize;
            let m = margin(i0 + i, a);
            let new = levels.level(&m);
            let (old_m, old) = (&mut rw[a - lo], &mut lw[a - lo]);
            if new != *old {
                out.push(Crossing {
                    account: store.id(a),
                    previous: *old,
                    level: new,
                    ratio_before: old_m.margin_ratio(),
                    ratio_after: m.margin_ratio(),
                });
            }
            *old_m = m;
            *old = new;
        }
        out
    };
    let parts: Vec<Vec<Crossing>> = if tasks.len() == 1 {
        tasks.into_iter().map(work).collect()
    } else {
        tasks.into_par_iter().map(work).collect()
    };
    parts.into_iter().flatten().collect()
}

impl Monitor {
    /// A monitor over `book` (codes are universe indices, rows in the canonical order:
    /// [`GroupedBook::in_universe_order`]) at the given prices; every account evaluated.
    pub fn new(u: &Universe, book: GroupedBook, asset_price: Vec<f64>, mark: Vec<f64>, levels: Levels) -> Result<Self> {
        let (na, nm) = (u.n_assets(), u.n_markets());
        if book.n_asset_codes as usize != na || book.n_market_codes as usize != nm {
            return Err(CoreError::config(
                "book",
                "the monitor's book must be coded by universe index (GroupedBook::in_universe_order)",
            ));
        }
        let (ai, mi) = (identity(na), identity(nm));
        let ctx = MarginContext::new(
            u,
            &book,
            Prices { asset: &asset_price, mark: &mark },
            Remap { asset: &ai, market: &mi },
        )?;
        let lookup = PreparedLookup::new(&ctx);
        let store = Store::new(book);
        let mut results: Vec<AccountMargin> = column(store.n_accounts());
        results.par_iter_mut().enumerate().for_each(|(a, r)| *r = evaluate_rows(store.account(a), &ctx, &lookup));
        let mut level: Vec<u8> = column(results.len());
        level.par_iter_mut().zip(results.par_iter()).for_each(|(l, m)| *l = levels.level(m));
        let deps = Dependencies::new(u);
        let index = Index::build(&deps, &store);
        let mut log = Log::default();
        for (i, &p) in asset_price.iter().enumerate() {
            log.push(Entry { symbol: i as u32, price: p, ..Entry::new(0, log::ASSET_PRICE) });
        }
        for (k, &p) in mark.iter().enumerate() {
            log.push(Entry { symbol: k as u32, price: p, ..Entry::new(0, log::MARK) });
        }
        log.push(Entry { price: levels.margin_call, ..Entry::new(0, log::MARGIN_CALL) });
        Ok(Monitor {
            store,
            deps,
            index,
            asset_price,
            mark,
            asset_identity: ai,
            market_identity: mi,
            lookup,
            results,
            level,
            levels,
            log,
            seq: 0,
            bulk: Bulk { min_accounts: bulk::BULK_MIN, level: None },
            cache: bulk::Cache::default(),
        })
    }

    fn check_universe(&self, u: &Universe) -> Result<()> {
        if u.n_assets() != self.asset_price.len() || u.n_markets() != self.mark.len() {
            return Err(CoreError::config(
                "universe",
                format!(
                    "{} assets and {} markets; the monitor holds {} and {}",
                    u.n_assets(),
                    u.n_markets(),
                    self.asset_price.len(),
                    self.mark.len()
                ),
            ));
        }
        Ok(())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    pub fn levels(&self) -> Levels {
        self.levels
    }

    /// The current (asset prices, marks).
    pub fn prices(&self) -> (&[f64], &[f64]) {
        (&self.asset_price, &self.mark)
    }

    /// The number of the last operation (0: none since the start).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The margin and level of dense account `a`.
    pub fn result(&self, a: usize) -> (AccountMargin, u8) {
        (self.results[a], self.level[a])
    }

    fn log_crossings(&mut self, crossings: &[Crossing]) {
        for c in crossings {
            self.log.push(Entry {
                account: c.account,
                previous: c.previous,
                level: c.level,
                ratio_before: c.ratio_before,
                ratio_after: c.ratio_after,
                ..Entry::new(self.seq, log::CROSSING)
            });
        }
    }

    fn sort_by_id(&self, crossings: &mut [Crossing]) {
        if self.store.n_accounts() > self.store.base().n_accounts() {
            crossings.sort_by_key(|c| c.account);
        }
    }

    /// New absolute prices (the whole vectors): re-evaluates the accounts that read a price
    /// that changed (bit for bit) and returns their crossings, by account id. Nothing changes
    /// on an error; a tick that moves nothing is not an operation.
    pub fn on_prices(&mut self, u: &Universe, asset_price: Vec<f64>, mark: Vec<f64>) -> Result<Vec<Crossing>> {
        self.check_universe(u)?;
        let simd = self.simd_level()?;
        MarginContext::new(
            u,
            &no_rows(u),
            Prices { asset: &asset_price, mark: &mark },
            Remap { asset: &self.asset_identity, market: &self.market_identity },
        )?;
        let na = self.asset_price.len() as u32;
        let mut slots: Vec<u32> = Vec::new();
        slots.extend(
            (0..asset_price.len())
                .filter(|&i| asset_price[i].to_bits() != self.asset_price[i].to_bits())
                .map(|i| i as u32),
        );
        slots.extend((0..mark.len()).filter(|&k| mark[k].to_bits() != self.mark[k].to_bits()).map(|k| na + k as u32));
        if slots.is_empty() {
            return Ok(Vec::new());
        }
        self.seq += 1;
        for &s in &slots {
            let e = if s < na {
                Entry { symbol: s, price: asset_price[s as usize], ..Entry::new(self.seq, log::ASSET_PRICE) }
            } else {
                Entry { symbol: s - na, price: mark[(s - na) as usize], ..Entry::new(self.seq, log::MARK) }
            };
            self.log.push(e);
        }
        self.asset_price = asset_price;
        self.mark = mark;
        let affected = self.index.accounts(&slots);
        let mut crossings = self.evaluate_accounts(u, &affected, true, simd, Some(&slots))?;
        self.sort_by_id(&mut crossings);
        self.log_crossings(&crossings);
        Ok(crossings)
    }

    /// The kernel's level for this operation, read before anything changes (an unknown or
    /// unsupported `CROSSMARGIN_SIMD` is a `Config` error that leaves the monitor as it was).
    fn simd_level(&self) -> Result<Level> {
        self.bulk.level.map_or_else(Level::from_env, Ok)
    }

    /// Re-evaluations of at least `min_accounts` accounts go through the kernel at `level`
    /// (`None`: `CROSSMARGIN_SIMD`, else the best this CPU runs); the default is
    /// [`bulk::BULK_MIN`] accounts. The results are the same bits either way: this only
    /// chooses the faster path (tests force each one).
    pub fn set_bulk(&mut self, min_accounts: usize, level: Option<Level>) {
        self.bulk = Bulk { min_accounts, level };
    }

    /// Re-evaluates `affected` at the current prices (rebuilding the prepared lookup first
    /// when `reprice`): through the kernel at `simd` when they are many and the kernel's SIMD
    /// path applies (the rows gathered for a tick's moved `slots` kept for the next tick on
    /// them), else one by one in place.
    fn evaluate_accounts(
        &mut self,
        u: &Universe,
        affected: &[u32],
        reprice: bool,
        simd: Level,
        slots: Option<&[u32]>,
    ) -> Result<Vec<Crossing>> {
        let ctx = MarginContext {
            universe: u,
            prices: Prices { asset: &self.asset_price, mark: &self.mark },
            remap: Remap { asset: &self.asset_identity, market: &self.market_identity },
        };
        if reprice {
            self.lookup = PreparedLookup::new(&ctx);
        }
        if affected.len() >= self.bulk.min_accounts.max(1) && !u.venue_rules {
            let mut once = None;
            let g = match slots {
                Some(s) => self.cache.get_or_gather(s, &self.store, affected),
                None => once.insert(bulk::Gathered::new(&self.store, affected)),
            };
            if g.simd_applies(&ctx) {
                g.evaluate(&ctx, simd)?;
                let g = &*g;
                return Ok(reevaluate(
                    &self.store,
                    self.levels,
                    affected,
                    &mut self.results,
                    &mut self.level,
                    |i, _| g.margin(i),
                ));
            }
        }
        let (store, lookup) = (&self.store, &self.lookup);
        Ok(reevaluate(store, self.levels, affected, &mut self.results, &mut self.level, |_, a| {
            evaluate_rows(store.account(a), &ctx, lookup)
        }))
    }

    /// Applies row changes (checked whole first) and re-evaluates the accounts they touch.
    pub fn apply(&mut self, u: &Universe, changes: Changes<'_>) -> Result<Vec<Crossing>> {
        self.apply_noted(u, changes, None)
    }

    fn apply_noted(&mut self, u: &Universe, c: Changes<'_>, note: Option<FillNote>) -> Result<Vec<Crossing>> {
        self.check_universe(u)?;
        let simd = self.simd_level()?;
        let (na, nm) = (u.n_assets() as u32, u.n_markets() as u32);
        let g = group_with(c.balances, c.positions, c.side, c.orders, na, nm)?;
        check_unique_balances(&c.balances)?;
        self.check_position_modes(u, &g)?;
        if g.has_orders() {
            orders::check_markets(&g, u, &self.market_identity)?;
        }
        if c.clear_account.len() != c.clear_market.len() {
            return Err(CoreError::config(
                "clear_orders",
                format!("{} accounts for {} markets", c.clear_account.len(), c.clear_market.len()),
            ));
        }
        if let Some(r) = c.clear_market.iter().position(|&k| k >= nm) {
            return Err(CoreError::book(
                Table::Orders,
                r,
                "market",
                format!("market code {} is out of range (0..{nm})", c.clear_market[r]),
            ));
        }

        // Checked: apply and log (rows change: rows gathered for ticks are stale).
        self.cache.clear();
        self.seq += 1;
        let seq = self.seq;
        if let Some(f) = note {
            self.log.push(Entry {
                account: f.account,
                symbol: f.market,
                side: f.side,
                qty: f.qty,
                price: f.price,
                pnl: f.realised,
                ..Entry::new(seq, log::FILL)
            });
        }
        let mut clears: Vec<(i64, u32)> = c.clear_account.iter().copied().zip(c.clear_market.iter().copied()).collect();
        clears.sort_unstable();
        clears.dedup();
        let mut ids: Vec<i64> = g.accounts.clone();
        ids.extend(clears.iter().map(|c| c.0));
        ids.sort_unstable();
        ids.dedup();
        let mut touched: Vec<u32> = Vec::with_capacity(ids.len());
        let (mut before, mut after) = (Vec::new(), Vec::new());
        let mut rebuild = false;
        for id in ids {
            let a = self.store.dense_or_add(id);
            touched.push(a as u32);
            self.deps.slots(self.store.account(a), &mut before);
            let rows = self.store.edit(a);
            let lo = clears.partition_point(|c| c.0 < id);
            for &(acc, k) in clears[lo..].iter().take_while(|c| c.0 == id) {
                rows.replace_orders(k, &[]);
                self.log.push(Entry { account: acc, symbol: k, ..Entry::new(seq, log::CLEAR_ORDERS) });
            }
            if let Ok(ga) = g.accounts.binary_search(&id) {
                let r = g.account(ga);
                for (&k, &q) in r.bal_code.iter().zip(r.bal_qty) {
                    rows.set_balance(k, q);
                    self.log.push(Entry { account: id, symbol: k, qty: q, ..Entry::new(seq, log::BALANCE) });
                }
                for j in 0..r.pos_code.len() {
                    let (k, s, q, e, m) = (r.pos_code[j], r.side(j), r.pos_qty[j], r.pos_entry[j], r.pos_isolated[j]);
                    rows.set_position(k, s, q, e, m);
                    self.log.push(Entry {
                        account: id,
                        symbol: k,
                        side: s,
                        qty: q,
                        price: e,
                        isolated_margin: m,
                        ..Entry::new(seq, log::POSITION)
                    });
                }
                let mut j = 0;
                while j < r.ord_code.len() {
                    let k = r.ord_code[j];
                    let end = j + r.ord_code[j..].iter().take_while(|&&c| c == k).count();
                    let run: Vec<OrderRow> = (j..end)
                        .map(|i| OrderRow {
                            qty: r.ord_qty[i],
                            price: r.ord_price[i],
                            reduce_only: r.ord_reduce_only[i],
                        })
                        .collect();
                    rows.replace_orders(k, &run);
                    for o in &run {
                        self.log.push(Entry {
                            account: id,
                            symbol: k,
                            qty: o.qty,
                            price: o.price,
                            reduce_only: o.reduce_only,
                            ..Entry::new(seq, log::ORDER)
                        });
                    }
                    j = end;
                }
            }
            self.deps.slots(self.store.account(a), &mut after);
            rebuild |= self.index.update(a, &before, &after);
        }
        // New accounts may sit anywhere in id order; their dense numbers ascend.
        touched.sort_unstable();
        if self.results.len() < self.store.n_accounts() {
            self.results.resize(self.store.n_accounts(), AccountMargin::default());
            self.level.resize(self.store.n_accounts(), 0);
        }
        let mut crossings = self.evaluate_accounts(u, &touched, false, simd, None)?;
        crossings.sort_by_key(|c| c.account);
        self.log_crossings(&crossings);
        if rebuild {
            self.index = Index::build(&self.deps, &self.store);
        }
        Ok(crossings)
    }

    /// The book's rule across a change and the rows held (docs/MODEL.md "Book"): an
    /// account's market holds a one-way position or hedge legs, not both.
    fn check_position_modes(&self, u: &Universe, g: &GroupedBook) -> Result<()> {
        for (ga, &id) in g.accounts.iter().enumerate() {
            let r = g.account(ga);
            if r.pos_code.is_empty() {
                continue;
            }
            let mut rows = match self.store.dense(id) {
                Some(a) => OwnedRows::from_rows(self.store.account(a)),
                None => OwnedRows::default(),
            };
            for j in 0..r.pos_code.len() {
                rows.set_position(r.pos_code[j], r.side(j), r.pos_qty[j], r.pos_entry[j], r.pos_isolated[j]);
            }
            let mixed = rows
                .pos_code
                .windows(2)
                .zip(rows.pos_side.windows(2))
                .find_map(|(c, s)| (c[0] == c[1] && (s[0] == 0) != (s[1] == 0)).then_some(c[0]));
            if let Some(k) = mixed {
                let lo = g.positions.offsets[ga];
                let j = r.pos_code.iter().position(|&c| c == k).unwrap_or(0);
                return Err(CoreError::book(
                    Table::Positions,
                    g.positions.row[lo + j] as usize,
                    "side",
                    format!(
                        "account {id} would hold a one-way ('both') position and a hedge leg in {}; an \
                         account's market is either one-way or hedged (close one first)",
                        u.markets.symbol[k as usize]
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A fill of `qty` contracts (signed: > 0 buys) at `price` on the position of `account`
    /// in market `market` on `side`: the position's new state and the settle balance's cash
    /// ([`fill::fill`]), applied as one change.
    pub fn fill(
        &mut self,
        u: &Universe,
        account: i64,
        market: u32,
        side: u8,
        qty: f64,
        price: f64,
    ) -> Result<(fill::Filled, Vec<Crossing>)> {
        self.check_universe(u)?;
        let nm = u.n_markets() as u32;
        if market >= nm {
            return Err(CoreError::config("fill.market", format!("market index {market} is out of range (0..{nm})")));
        }
        let symbol = &u.markets.symbol[market as usize];
        if side > SIDE_SHORT {
            return Err(CoreError::config("fill.position_side", format!("side code {side} is not 0, 1 or 2")));
        }
        if !(qty != 0.0 && within(qty, MAX_QTY)) {
            return Err(CoreError::config(
                "fill.qty",
                format!("{qty} must be finite, non-zero and within ±{MAX_QTY:e}"),
            ));
        }
        if !is_price(price, false) {
            return Err(CoreError::price(format!("fill.price[{symbol}]"), format!("{price} must be finite and > 0")));
        }
        let (q, e, iso) = self.store.position(account, market, side).unwrap_or((0.0, 0.0, 0.0));
        let h = &u.market_hot[market as usize];
        let f = fill::fill(&h.contract, q, e, iso, qty, price);
        if (side == SIDE_LONG && f.qty < 0.0) || (side == SIDE_SHORT && f.qty > 0.0) {
            return Err(CoreError::config(
                "fill.qty",
                format!(
                    "{qty} would take the {} leg of account {account} in {symbol} to {} (a leg cannot change sign)",
                    crate::book::SIDE_NAMES[side as usize],
                    f.qty
                ),
            ));
        }
        let settle = h.settle;
        let balance = self.store.balance(account, settle) + f.cash;
        let (acc, code, bq) = ([account], [settle], [balance]);
        let bal_rows = if f.cash != 0.0 { 1 } else { 0 };
        let (pa, pc, pq, pe, pi, ps) = ([account], [market], [f.qty], [f.entry], [f.isolated], [side]);
        let changes = Changes {
            balances: BalanceInput { account: &acc[..bal_rows], code: &code[..bal_rows], qty: &bq[..bal_rows] },
            positions: PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pi },
            side: &ps,
            orders: None,
            clear_account: &[],
            clear_market: &[],
        };
        let note = FillNote { account, market, side, qty, price, realised: f.realised };
        let crossings = self.apply_noted(u, changes, Some(note))?;
        Ok((f, crossings))
    }

    /// Re-evaluates every account under `u` (the monitor's universe, or one rebuilt from the
    /// current book with the same symbols: book-wide parameters such as open-interest scaling
    /// or total deposits) at the current prices, and rebuilds the index exactly.
    pub fn refresh(&mut self, u: &Universe) -> Result<Vec<Crossing>> {
        self.check_universe(u)?;
        MarginContext::new(
            u,
            &no_rows(u),
            Prices { asset: &self.asset_price, mark: &self.mark },
            Remap { asset: &self.asset_identity, market: &self.market_identity },
        )?;
        let simd = self.simd_level()?;
        self.cache.clear();
        self.seq += 1;
        self.log.push(Entry::new(self.seq, log::REFRESH));
        self.deps = Dependencies::new(u);
        self.index = Index::build(&self.deps, &self.store);
        let all: Vec<u32> = (0..self.store.n_accounts() as u32).collect();
        let mut crossings = self.evaluate_accounts(u, &all, true, simd, None)?;
        self.sort_by_id(&mut crossings);
        self.log_crossings(&crossings);
        Ok(crossings)
    }

    /// The `n` riskiest accounts holding rows (dense numbers): margin ratio descending
    /// (+inf first), then a higher level, then account id ascending.
    pub fn riskiest(&self, n: usize) -> Vec<usize> {
        let key = |a: &usize| (self.results[*a].margin_ratio(), self.level[*a], self.store.id(*a));
        let cmp = |x: &usize, y: &usize| {
            let (rx, lx, ix) = key(x);
            let (ry, ly, iy) = key(y);
            ry.total_cmp(&rx).then(ly.cmp(&lx)).then(ix.cmp(&iy))
        };
        let mut c: Vec<usize> = (0..self.store.n_accounts()).filter(|&a| !self.store.is_empty(a)).collect();
        if n < c.len() {
            c.select_nth_unstable_by(n, cmp);
            c.truncate(n);
        }
        c.sort_unstable_by(cmp);
        c
    }

    /// Rebuilds a monitor from its starting book and its log: the starting prices and
    /// threshold from operation 0, then every operation in order. The result's state and
    /// log equal the original's, bit for bit.
    pub fn replay(u: &Universe, book: GroupedBook, log: &Log) -> Result<Self> {
        let ops = log.operations()?;
        let (na, nm) = (u.n_assets(), u.n_markets());
        let mut asset_price = vec![f64::NAN; na];
        let mut mark = vec![f64::NAN; nm];
        let mut margin_call = f64::NAN;
        let mut rest = &ops[..];
        if let Some((0, rows)) = ops.first() {
            for i in rows.clone() {
                let e = log.get(i);
                match e.kind {
                    log::ASSET_PRICE if (e.symbol as usize) < na => asset_price[e.symbol as usize] = e.price,
                    log::MARK if (e.symbol as usize) < nm => mark[e.symbol as usize] = e.price,
                    log::MARGIN_CALL => margin_call = e.price,
                    _ => return Err(bad_row(i, &e, u)),
                }
            }
            rest = &ops[1..];
        }
        let mut m = Monitor::new(u, book, asset_price, mark, Levels::new(margin_call)?)?;
        for (seq, rows) in rest {
            m.replay_operation(u, log, *seq, rows.clone())?;
        }
        Ok(m)
    }

    fn replay_operation(&mut self, u: &Universe, log: &Log, seq: u64, rows: std::ops::Range<usize>) -> Result<()> {
        let (na, nm) = (u.n_assets() as u32, u.n_markets() as u32);
        if seq <= self.seq {
            return Err(CoreError::config(
                format!("log.seq[{}]", rows.start),
                format!("operation {seq} follows {}: numbers must increase", self.seq),
            ));
        }
        // The operation takes its logged number (a tick that moved nothing took none).
        self.seq = seq - 1;
        let kinds: Vec<u8> = log.kind[rows.clone()].to_vec();
        if kinds.contains(&log::REFRESH) {
            self.refresh(u)?;
        } else if kinds.iter().any(|&k| k == log::ASSET_PRICE || k == log::MARK) {
            let (mut a, mut mk) = (self.asset_price.clone(), self.mark.clone());
            for i in rows {
                let e = log.get(i);
                match e.kind {
                    log::ASSET_PRICE if e.symbol < na => a[e.symbol as usize] = e.price,
                    log::MARK if e.symbol < nm => mk[e.symbol as usize] = e.price,
                    log::CROSSING => {}
                    _ => return Err(bad_row(i, &e, u)),
                }
            }
            self.on_prices(u, a, mk)?;
        } else {
            let mut b = ColumnsOf::default();
            let mut note = None;
            for i in rows {
                let e = log.get(i);
                match e.kind {
                    log::BALANCE => {
                        b.ba.push(e.account);
                        b.bc.push(e.symbol);
                        b.bq.push(e.qty);
                    }
                    log::POSITION => {
                        b.pa.push(e.account);
                        b.pc.push(e.symbol);
                        b.pq.push(e.qty);
                        b.pe.push(e.price);
                        b.pi.push(e.isolated_margin);
                        b.ps.push(e.side);
                    }
                    log::ORDER => {
                        b.oa.push(e.account);
                        b.oc.push(e.symbol);
                        b.os.push(u8::from(e.qty < 0.0));
                        b.oq.push(e.qty.abs());
                        b.op.push(e.price);
                        b.or.push(e.reduce_only);
                    }
                    log::CLEAR_ORDERS => {
                        b.ca.push(e.account);
                        b.cm.push(e.symbol);
                    }
                    log::FILL if e.symbol < nm => {
                        note = Some(FillNote {
                            account: e.account,
                            market: e.symbol,
                            side: e.side,
                            qty: e.qty,
                            price: e.price,
                            realised: e.pnl,
                        })
                    }
                    log::CROSSING => {}
                    _ => return Err(bad_row(i, &e, u)),
                }
            }
            let orders = (!b.oa.is_empty()).then_some(OrderInput {
                account: &b.oa,
                code: &b.oc,
                side: &b.os,
                qty: &b.oq,
                price: &b.op,
                reduce_only: &b.or,
            });
            let c = Changes {
                balances: BalanceInput { account: &b.ba, code: &b.bc, qty: &b.bq },
                positions: PositionInput {
                    account: &b.pa,
                    code: &b.pc,
                    qty: &b.pq,
                    entry_price: &b.pe,
                    isolated_margin: &b.pi,
                },
                side: &b.ps,
                orders,
                clear_account: &b.ca,
                clear_market: &b.cm,
            };
            self.apply_noted(u, c, note)?;
        }
        Ok(())
    }
}

/// The monitor's rows and results as columns: accounts holding rows, ascending id. Codes
/// are universe indices; orders carry a side (0 buy, 1 sell) and a positive quantity, as a
/// book takes them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub accounts: Vec<i64>,
    /// Dense numbers of `accounts`.
    pub dense: Vec<usize>,
    pub bal_account: Vec<i64>,
    pub bal_code: Vec<u32>,
    pub bal_qty: Vec<f64>,
    pub pos_account: Vec<i64>,
    pub pos_code: Vec<u32>,
    pub pos_qty: Vec<f64>,
    pub pos_entry: Vec<f64>,
    pub pos_isolated: Vec<f64>,
    pub pos_side: Vec<u8>,
    pub ord_account: Vec<i64>,
    pub ord_code: Vec<u32>,
    pub ord_side: Vec<u8>,
    pub ord_qty: Vec<f64>,
    pub ord_price: Vec<f64>,
    pub ord_reduce_only: Vec<bool>,
}

impl Monitor {
    /// The current rows as long tables (a book's input), accounts in ascending id.
    pub fn snapshot(&self) -> Snapshot {
        let dense = self.store.in_id_order();
        let mut s = Snapshot { accounts: dense.iter().map(|&a| self.store.id(a)).collect(), ..Snapshot::default() };
        for &a in &dense {
            let id = self.store.id(a);
            let r = self.store.account(a);
            s.bal_account.extend(std::iter::repeat_n(id, r.bal_code.len()));
            s.bal_code.extend_from_slice(r.bal_code);
            s.bal_qty.extend_from_slice(r.bal_qty);
            s.pos_account.extend(std::iter::repeat_n(id, r.pos_code.len()));
            s.pos_code.extend_from_slice(r.pos_code);
            s.pos_qty.extend_from_slice(r.pos_qty);
            s.pos_entry.extend_from_slice(r.pos_entry);
            s.pos_isolated.extend_from_slice(r.pos_isolated);
            s.pos_side.extend((0..r.pos_code.len()).map(|j| r.side(j)));
            s.ord_account.extend(std::iter::repeat_n(id, r.ord_code.len()));
            s.ord_code.extend_from_slice(r.ord_code);
            s.ord_side.extend(r.ord_qty.iter().map(|&q| u8::from(q < 0.0)));
            s.ord_qty.extend(r.ord_qty.iter().map(|q| q.abs()));
            s.ord_price.extend_from_slice(r.ord_price);
            s.ord_reduce_only.extend_from_slice(r.ord_reduce_only);
        }
        s.dense = dense;
        s
    }
}

/// Columns of one replayed operation.
#[derive(Default)]
struct ColumnsOf {
    ba: Vec<i64>,
    bc: Vec<u32>,
    bq: Vec<f64>,
    pa: Vec<i64>,
    pc: Vec<u32>,
    pq: Vec<f64>,
    pe: Vec<f64>,
    pi: Vec<f64>,
    ps: Vec<u8>,
    oa: Vec<i64>,
    oc: Vec<u32>,
    os: Vec<u8>,
    oq: Vec<f64>,
    op: Vec<f64>,
    or: Vec<bool>,
    ca: Vec<i64>,
    cm: Vec<u32>,
}

fn bad_row(i: usize, e: &Entry, u: &Universe) -> CoreError {
    let kind = KIND_NAMES.get(e.kind as usize).copied().unwrap_or("?");
    CoreError::config(
        format!("log[{i}]"),
        format!(
            "a '{kind}' row (code {}) with symbol {} does not fit here ({} assets, {} markets)",
            e.kind,
            e.symbol,
            u.n_assets(),
            u.n_markets()
        ),
    )
}

/// A change gives a balance's new state once: two rows for one (account, asset) is an error
/// naming both.
fn check_unique_balances(b: &BalanceInput<'_>) -> Result<()> {
    let mut rows: Vec<usize> = (0..b.account.len()).collect();
    rows.sort_unstable_by_key(|&r| (b.account[r], b.code[r], r));
    for w in rows.windows(2) {
        if b.account[w[0]] == b.account[w[1]] && b.code[w[0]] == b.code[w[1]] {
            return Err(CoreError::Book {
                table: Table::Balances,
                row: w[1],
                other_row: Some(w[0]),
                column: "asset",
                message: format!(
                    "account {} gives asset code {} twice: a change states each balance once",
                    b.account[w[0]], b.code[w[0]]
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
