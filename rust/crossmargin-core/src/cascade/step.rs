//! One cascade round, as bulk-synchronous steps over account shards (docs/MODEL.md
//! "Liquidation cascades", "Distributed runs"): a driver holds the global state (marks,
//! insurance fund, event log) and each shard holds the accounts of one partition. This is the
//! only implementation of a round: [`super::run`] is this protocol with one shard, and a
//! distributed run (`crossmargin.distributed`) drives the same [`Driver`] with remote shards.
//!
//! A round splits along the only places where accounts meet:
//!
//! | phase          | shard ([`Shard`])                              | driver ([`Driver`])                          |
//! |----------------|------------------------------------------------|----------------------------------------------|
//! | prices         |                                                | [`Driver::round_prices`]: step × factor      |
//! | candidates     | [`Shard::select`]: who needs action, orders, each order's USD flow | [`Driver::plan`]: priority sort (risk desc, account id asc), truncation, per-market flow summed in priority order, one fill per market |
//! | settlement     | [`Shard::settle`]: fills, fees, isolated and pool bankruptcies of the chosen accounts; pool deltas in minor units | [`Driver::settled`]: pools += deltas, events and bad-debt pieces merged in priority order, fund, deficits |
//! | deleveraging   | [`Shard::counterparties`], [`Shard::deleverage`] | [`Driver::plan_deleverage`]: global ranking, ADL walk / socialised split, [`Driver::deleveraged`] |
//! | marks          |                                                | [`Driver::end_round`]                        |
//!
//! Why the result is the same bit for bit for any partitioning by account: every per-account
//! computation (selection, order sizes, fills, fees, bankruptcy) reads only that account's
//! rows and the round's prices, so a shard computes the same numbers whichever accounts it
//! holds besides; every cross-account reduction happens on the driver in one global order
//! (candidates and counterparties have total orders by (key, account id); flows, tallies and
//! bad-debt pieces are summed in priority order; pools are integer sums, which do not depend
//! on order). [`run_sharded`] is the protocol in one process; tests pin n shards to one.

use rayon::prelude::*;

use crate::book::GroupedBook;
use crate::cascade::adl::{counterparties, rank, to_fund_from_external, Deleverage, MarketIndex, RankCache, Scratch};
use crate::cascade::impact::Execution;
use crate::cascade::ledger::{self, to_minor, Pools};
use crate::cascade::phases::{Phase, PhaseClock};
use crate::cascade::policy::{self, cross_equity_and_notional, Candidate, EventKind, Order, Slicing};
use crate::cascade::screen::{Certificates, Gathered};
use crate::cascade::state::{carve_ranges, AccountMut, State};
use crate::cascade::{check, check_remap, CascadeConfig, Event, Events, Rounds};
use crate::error::{CoreError, Result};
use crate::margin::{position_stake, MarginContext, PreparedLookup, Prices, Remap};
use crate::money::{allocate, Minor};
use crate::universe::Universe;

/// Shard → driver: the accounts that need action at the round's prices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Candidates {
    pub account: Vec<i64>,
    pub risk: Vec<f64>,
    /// Orders of candidate `i`: `order_offsets[i]..order_offsets[i + 1]`.
    pub order_offsets: Vec<u32>,
    pub order_market: Vec<u32>,
    /// Signed USD flow of each order, as `run` adds it to its market's net flow.
    pub order_flow: Vec<f64>,
}

impl Candidates {
    pub fn len(&self) -> usize {
        self.account.len()
    }

    pub fn is_empty(&self) -> bool {
        self.account.is_empty()
    }
}

/// Events produced by a shard; `item` is the index of the request item (chosen candidate,
/// deleveraged position) each belongs to. `round` and `step` are set by the driver.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaggedEvents {
    pub item: Vec<u32>,
    pub events: Events,
}

impl TaggedEvents {
    fn reserve(&mut self, n: usize) {
        self.item.reserve(n);
        self.events.reserve(n);
    }

    fn push(&mut self, item: usize, account: i64, e: Event) {
        self.item.push(item as u32);
        self.events.push(0, 0, account, e);
    }

    #[cfg(test)]
    fn event(&self, i: usize) -> Result<(i64, Event)> {
        let e = &self.events;
        let Some(kind) = EventKind::from_code(e.kind[i]) else {
            return Err(CoreError::config(
                "cascade.shards",
                format!("event kind {} is not one of the core's", e.kind[i]),
            ));
        };
        Ok((
            e.account[i],
            Event {
                market: e.market[i],
                side: e.side.get(i).copied().unwrap_or(0),
                qty: e.qty[i],
                price: e.price[i],
                notional_usd: e.notional_usd[i],
                fee_usd: e.fee_usd[i],
                bad_debt_usd: e.bad_debt_usd[i],
                kind,
            },
        ))
    }
}

/// Shard → driver after settling its chosen candidates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settlement {
    pub events: TaggedEvents,
    /// Bad-debt pieces (market, side of the bankrupt position, USD), tagged like the events.
    pub piece_item: Vec<u32>,
    pub piece_market: Vec<u32>,
    pub piece_side: Vec<f64>,
    pub piece_usd: Vec<f64>,
    /// What the shard's fills moved into the insurance fund / out of the external
    /// counterparty, per asset, minor units.
    pub insurance: Vec<i128>,
    pub external: Vec<i128>,
}

/// How far past a deficit a shard's counterparties reach (relative): see
/// [`Shard::counterparties`].
pub const COVER_HEADROOM: f64 = 1e-6;

/// Shard → driver: profitable positions that can cover a deficit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counterparties {
    pub account: Vec<i64>,
    /// The shard's own account and position indices, echoed back in [`Closes`].
    pub local_account: Vec<u32>,
    pub pos: Vec<u64>,
    pub upnl: Vec<f64>,
    pub score: Vec<f64>,
}

/// Driver → shard: what to deleverage. ADL closes `share` of the position (all of it at ≥ 1)
/// with `minor` units of profit going to the fund; a socialised loss takes `minor` units from
/// the account's settle balance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Closes {
    pub local_account: Vec<u32>,
    pub pos: Vec<u64>,
    pub share: Vec<f64>,
    pub minor: Vec<i128>,
}

/// The accounts of one partition and their ledger.
#[derive(Debug, Clone)]
pub struct Shard {
    pub state: State,
    cands: Vec<Candidate>,
    /// The orders of `cands` (each candidate's range of them).
    orders: Vec<Order>,
    identity_a: Vec<u32>,
    identity_m: Vec<u32>,
    /// Position rows by market, for the deleveraging ranking: built at the first deficit (a
    /// cascade the insurance fund covers never needs it).
    index: Option<MarketIndex>,
    /// The ranking's per-account numbers at the round's prices.
    rank: RankCache,
    /// The deleveraging scan's buffers.
    scratch: Scratch,
    /// Each ADL close of a deficit: (quantity before, after, event).
    closing: Vec<(f64, f64, Event)>,
    /// The rows of an ADL plan with their place in it, sorted.
    del_rows: Vec<(u64, u32)>,
    /// Accounts certified safe over a band of marks ([`crate::cascade::screen`]).
    certs: Certificates,
    /// Accounts evaluated / skipped by the selections so far.
    evaluated: u64,
    skipped: u64,
}

impl Shard {
    pub fn new(book: &GroupedBook, u: &Universe, asset_remap: &[u32], market_remap: &[u32]) -> Result<Shard> {
        check_remap(book, u, asset_remap, market_remap)?;
        // The deleveraging ranking breaks ties by the accounts' index for their ids.
        if !book.accounts.par_windows(2).all(|w| w[0] < w[1]) {
            return Err(CoreError::config("cascade.shard", "account ids are not ascending and unique"));
        }
        let state = State::new(book, u, asset_remap, market_remap);
        Ok(Shard {
            index: None,
            state,
            cands: Vec::new(),
            orders: Vec::new(),
            identity_a: (0..u.n_assets() as u32).collect(),
            identity_m: (0..u.n_markets() as u32).collect(),
            rank: RankCache::default(),
            scratch: Scratch::default(),
            closing: Vec::new(),
            del_rows: Vec::new(),
            certs: Certificates::new(u, book.n_accounts()),
            evaluated: 0,
            skipped: 0,
        })
    }

    /// Switches the incremental selection on or off (on by default unless
    /// `CROSSMARGIN_CASCADE_INCREMENTAL=0`); off, every round evaluates every account whole
    /// (no certificates, no kept balance totals). The results are the same either way.
    pub fn set_incremental(&mut self, on: bool) {
        self.certs.enabled = on;
    }

    /// (accounts evaluated, accounts skipped as certified) over this shard's selections.
    pub fn selection_counts(&self) -> (u64, u64) {
        (self.evaluated, self.skipped)
    }

    fn check_prices(&self, assets: &[f64], marks: &[f64]) -> Result<()> {
        if assets.len() != self.identity_a.len() || marks.len() != self.identity_m.len() {
            return Err(CoreError::config("cascade.shard", "price vectors do not match the universe"));
        }
        Ok(())
    }

    /// Per asset: balances + isolated margins of the shard's accounts (minor units).
    pub fn holdings(&self, u: &Universe) -> Vec<i128> {
        self.state.per_asset(u, |m| m, |x, y| x + y)
    }

    /// Per asset: Σ |balances and isolated margins| of the shard's accounts (minor units,
    /// saturating) — the shard's share of the ledger-capacity check `run` makes.
    pub fn gross_holdings(&self, u: &Universe) -> Vec<i128> {
        self.state.per_asset(u, i128::saturating_abs, i128::saturating_add)
    }

    /// Who needs action at these prices, with their orders (kept for [`Shard::settle`]).
    pub fn select(&mut self, u: &Universe, assets: &[f64], marks: &[f64], slicing: &Slicing) -> Result<Candidates> {
        self.check_prices(assets, marks)?;
        let remap = Remap { asset: &self.identity_a, market: &self.identity_m };
        let ctx = MarginContext { universe: u, prices: Prices { asset: assets, mark: marks }, remap };
        let lookup = PreparedLookup::new(&ctx);
        let state = &self.state;
        let (view, certs, held) = self.certs.begin(u, assets, marks);
        // The deleveraging ranking reads each account's cross equity and total notional at
        // these prices: the evaluation below has both (the second gathered from its position
        // lines, [`Gathered`]), so every evaluated account's pair is cached here (the scan of a
        // deficit then computes only the accounts this skipped or a settlement changed).
        self.rank.at(state.n_accounts(), assets, marks);
        let (epoch, stamps, values) = self.rank.slots();
        // Accounts in chunks, each with its certificates, kept balance totals and ranking
        // slots: skipped while certified, else evaluated (and certified when safe).
        const ACCOUNTS: usize = 1024;
        let per_chunk: Vec<ChunkSelection> = certs
            .par_chunks_mut(ACCOUNTS)
            .zip(held.par_chunks_mut(ACCOUNTS))
            .zip(stamps.par_chunks_mut(ACCOUNTS))
            .zip(values.par_chunks_mut(ACCOUNTS))
            .enumerate()
            .map(|(i, (((chunk, held), stamps), values))| {
                let (mut cands, mut orders, mut evaluated) = (Vec::new(), Vec::new(), 0u64);
                for (j, (c, held)) in chunk.iter_mut().zip(held).enumerate() {
                    let a = i * ACCOUNTS + j;
                    if view.holds(c, state, a, marks) {
                        continue;
                    }
                    evaluated += 1;
                    let mut g = Gathered::new(&view);
                    let (cross_eq, m) = view.evaluate(c, held, state, a, &ctx, &lookup, &mut g);
                    values[j] = (cross_eq, g.notional);
                    stamps[j] = epoch;
                    match policy::select_evaluated(state, a, &ctx, slicing, cross_eq, &m, &mut orders) {
                        Some(cand) => cands.push(cand),
                        None => {
                            // A band is tried only where no slack certificate was given: on
                            // the 1M demo, bands beside slack certificates spared 3 of 7.7M
                            // evaluations for the cost of their attempts.
                            if !view.anchor(c, state, a, cross_eq, &m, &g) {
                                view.certify(c, state, a, &ctx, &g.balances);
                            }
                        }
                    }
                }
                // The candidates' orders' (market, flow), in candidate order (the driver's).
                let flows = cands
                    .iter()
                    .flat_map(|c: &Candidate| &orders[c.orders.clone()])
                    .map(|o| order_flow(u, state, o.pos, o.fraction, assets, marks))
                    .collect();
                (cands, orders, flows, evaluated)
            })
            .collect();
        self.cands.clear();
        self.orders.clear();
        let mut evaluated = 0;
        let mut out = Candidates { order_offsets: vec![0], ..Default::default() };
        for (cands, orders, flows, n) in per_chunk {
            let base = self.orders.len();
            out.account.extend(cands.iter().map(|c| state.accounts[c.account]));
            out.risk.extend(cands.iter().map(|c| c.risk));
            let mut at = out.order_market.len();
            for c in &cands {
                at += c.orders.len();
                out.order_offsets.push(at as u32);
            }
            out.order_market.extend(flows.iter().map(|f| f.0));
            out.order_flow.extend(flows.iter().map(|f| f.1));
            self.cands.extend(
                cands.into_iter().map(|c| Candidate { orders: base + c.orders.start..base + c.orders.end, ..c }),
            );
            self.orders.extend(orders);
            evaluated += n;
        }
        self.evaluated += evaluated;
        self.skipped += state.n_accounts() as u64 - evaluated;
        Ok(out)
    }

    /// Settles the chosen candidates (indices into the last [`Shard::select`], in priority
    /// order) at the markets' fill prices.
    pub fn settle(
        &mut self,
        u: &Universe,
        assets: &[f64],
        marks: &[f64],
        chosen: &[u32],
        fill_price: &[f64],
        fee_rate: f64,
    ) -> Result<Settlement> {
        self.check_prices(assets, marks)?;
        if fill_price.len() != marks.len() {
            return Err(CoreError::config("cascade.shard", "one fill price per market"));
        }
        if let Some(&bad) = chosen.iter().find(|&&c| c as usize >= self.cands.len()) {
            return Err(CoreError::config("cascade.shard", format!("candidate {bad} was not selected")));
        }
        let remap = Remap { asset: &self.identity_a, market: &self.identity_m };
        let ctx = MarginContext { universe: u, prices: Prices { asset: assets, mark: marks }, remap };
        // Each chosen account settles on its own rows (nothing it does reads another account),
        // in parallel; the pools' integer sums do not depend on order, and events and pieces
        // are gathered in priority order after.
        let mut by_account: Vec<(usize, usize)> =
            chosen.iter().enumerate().map(|(item, &ci)| (self.cands[ci as usize].account, item)).collect();
        by_account.par_sort_unstable();
        if by_account.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(CoreError::config("cascade.shard", "a candidate is chosen twice"));
        }
        // One run of the state's rows per task: from its first account to the next task's.
        let ends = by_account.last().map(|x| x.0 + 1);
        let cuts: Vec<usize> = by_account.chunks(SETTLE_CHUNK).map(|c| c[0].0).chain(ends).collect();
        let Some(runs) = self.state.runs_mut(&cuts) else {
            return Err(CoreError::config("cascade.shard", "a candidate is beyond the state"));
        };
        let (cands, orders) = (&self.cands, &self.orders);
        let na = u.n_assets();
        // Per task, one buffer of events and one of pieces for all its accounts (each
        // account's a range of them): an allocation per task, not two per account.
        let per_task: Vec<(Pools, Settled)> = runs
            .into_par_iter()
            .zip(by_account.par_chunks(SETTLE_CHUNK))
            .map(|(mut run, chunk)| {
                let mut pools = Pools::new(vec![0; na]);
                let mut done = Settled::default();
                for &(a, item) in chunk {
                    let (e0, p0) = (done.events.len(), done.pieces.len());
                    settle_candidate(
                        &mut run.account(a),
                        &mut pools,
                        &ctx,
                        fee_rate,
                        &orders[cands[chosen[item] as usize].orders.clone()],
                        |k| fill_price[k],
                        &mut done.events,
                        &mut done.pieces,
                    );
                    done.spans.push([e0 as u32, done.events.len() as u32, p0 as u32, done.pieces.len() as u32]);
                }
                (pools, done)
            })
            .collect();
        let mut pools = Pools::new(vec![0; na]);
        for (y, _) in &per_task {
            pools.add(&y.insurance, &y.external);
        }
        // Each chosen item's (task, index in the task), by priority.
        let mut at = vec![(0u32, 0u32); chosen.len()];
        for (i, &(a, item)) in by_account.iter().enumerate() {
            at[item] = ((i / SETTLE_CHUNK) as u32, (i % SETTLE_CHUNK) as u32);
            self.rank.invalidate(a);
            self.certs.invalidate(a);
        }
        // The events in priority order: where each comes from (item, task, index in the task),
        // then the columns built in parallel (as pushing each in turn).
        let mut from: Vec<(u32, u32, u32)> = Vec::with_capacity(per_task.iter().map(|x| x.1.events.len()).sum());
        let mut out = Settlement::default();
        for (item, &(t, j)) in at.iter().enumerate() {
            let [e0, e1, p0, p1] = per_task[t as usize].1.spans[j as usize];
            from.extend((e0..e1).map(|e| (item as u32, t, e)));
            for &(k, side, usd) in &per_task[t as usize].1.pieces[p0 as usize..p1 as usize] {
                out.piece_item.push(item as u32);
                out.piece_market.push(k);
                out.piece_side.push(side);
                out.piece_usd.push(usd);
            }
        }
        let (ids, cands) = (&self.state.accounts, &self.cands);
        from.par_iter().map(|x| x.0).collect_into_vec(&mut out.events.item);
        out.events.events = Events::collect_par(from.len(), |i| {
            let (item, t, e) = from[i];
            (ids[cands[chosen[item as usize] as usize].account], per_task[t as usize].1.events[e as usize])
        });
        out.insurance = pools.insurance;
        out.external = pools.external;
        Ok(out)
    }

    /// Profitable positions in `market` on `side` (sign of qty), best-ranked first, as far as
    /// a deficit of `cover` USD can reach ([`Driver::deficit`]): the shortest prefix whose
    /// uPnLs sum past `cover` × (1 + [`COVER_HEADROOM`]), all of them for `cover` = ∞.
    ///
    /// Why nothing the driver would take is cut: the ADL walk takes counterparties in the
    /// global order and stops once the deficit is covered; to reach a position past this
    /// shard's prefix it must first take the whole prefix, i.e. more than `cover` — the
    /// headroom is far above the rounding of the walk's running remainder (one ulp of the
    /// deficit per position taken).
    pub fn counterparties(
        &mut self,
        u: &Universe,
        assets: &[f64],
        marks: &[f64],
        market: u32,
        side: f64,
        cover: f64,
    ) -> Result<Counterparties> {
        self.check_prices(assets, marks)?;
        if market as usize >= marks.len() {
            return Err(CoreError::config("cascade.shard", format!("market {market} is out of range")));
        }
        let remap = Remap { asset: &self.identity_a, market: &self.identity_m };
        let ctx = MarginContext { universe: u, prices: Prices { asset: assets, mark: marks }, remap };
        self.rank.at(self.state.n_accounts(), assets, marks);
        let index = self.index.get_or_insert_with(|| MarketIndex::new(&self.state, u.n_markets()));
        let all = counterparties(&self.state, &ctx, market, side, index, &mut self.rank, &mut self.scratch);
        let n = rank(all, cover * (1.0 + COVER_HEADROOM));
        // Column by column, in parallel: a prefix can hold a million positions, and the ids are
        // read in ranking order, i.e. at random.
        let (all, ids) = (&all[..n], &self.state.accounts);
        let mut out = Counterparties::default();
        all.par_iter().map(|cp| ids[cp.account as usize]).collect_into_vec(&mut out.account);
        all.par_iter().map(|cp| cp.account).collect_into_vec(&mut out.local_account);
        all.par_iter().map(|cp| u64::from(cp.pos)).collect_into_vec(&mut out.pos);
        all.par_iter().map(|cp| cp.upnl).collect_into_vec(&mut out.upnl);
        all.par_iter().map(|cp| cp.score).collect_into_vec(&mut out.score);
        Ok(out)
    }

    /// Applies the driver's deleveraging plan for `market` (see [`Closes`]).
    pub fn deleverage(
        &mut self,
        u: &Universe,
        assets: &[f64],
        marks: &[f64],
        how: Deleverage,
        market: u32,
        closes: &Closes,
    ) -> Result<TaggedEvents> {
        self.check_prices(assets, marks)?;
        let n = closes.pos.len();
        if closes.local_account.len() != n || closes.share.len() != n || closes.minor.len() != n {
            return Err(CoreError::config("cascade.shard", "deleverage columns of unequal length"));
        }
        let ku = market as usize;
        if ku >= marks.len() {
            return Err(CoreError::config("cascade.shard", format!("market {market} is out of range")));
        }
        let s = &self.state;
        let misplaced = |i: usize| {
            let (a, p) = (closes.local_account[i] as usize, closes.pos[i] as usize);
            a >= s.n_accounts() || p < s.pos_offsets[a] || p >= s.pos_offsets[a + 1] || s.pos_market[p] != market
        };
        // The first misplaced close names the error, as a check in plan order would.
        if let Some(i) = (0..n).into_par_iter().with_min_len(4096).find_first(|&i| misplaced(i)) {
            let (a, p) = (closes.local_account[i], closes.pos[i]);
            return Err(CoreError::config(
                "cascade.shard",
                format!("position {p} of account {a} is not in market {market}"),
            ));
        }
        let settle = u.markets.settle[ku] as usize;
        let sp = assets[settle];
        let mut out = TaggedEvents::default();
        match how {
            Deleverage::None => {
                for &a in &closes.local_account {
                    self.rank.invalidate(a as usize);
                    self.certs.invalidate(a as usize);
                }
            }
            Deleverage::Adl => {
                // Each close is computed from the state as the plan found it, in parallel; then
                // applied in plan order. A position the plan names twice (never the driver's
                // plan) is recomputed from the state its earlier close left, so the result is
                // that of applying the closes one by one.
                let contract = u.contract(ku);
                let state = &self.state;
                let close = |i: usize| adl_close(state, &contract, closes, i, market, sp);
                (0..n).into_par_iter().map(close).collect_into_vec(&mut self.closing);
                // The plan's rows in ascending order (their accounts' too): when no row is
                // named twice, each close is the one computed above (a close reads only its
                // own row, and the only other change a close makes — an isolated margin back
                // to its account's wallet — is an integer sum, the same in any order), so the
                // state is updated in row order, which walks memory forwards, and the events
                // are taken in plan order.
                self.del_rows.clear();
                self.del_rows.extend(closes.pos.iter().enumerate().map(|(i, &p)| (p, i as u32)));
                self.del_rows.par_sort_unstable();
                if self.del_rows.windows(2).all(|w| w[0].0 != w[1].0) {
                    let released = apply_closes(
                        &mut self.state,
                        &mut self.rank,
                        &mut self.certs,
                        &self.del_rows,
                        &closes.local_account,
                        &self.closing,
                        CLOSE_RUN,
                    );
                    for (a, p) in released {
                        let mut acc = self.state.account_mut(a);
                        acc.release_isolated(p - acc.pos_first, u);
                        acc.refresh();
                    }
                    // The events in plan order, built in parallel (as pushing each in turn).
                    let (accounts, closing) = (&self.state.accounts, &self.closing);
                    out.item = (0..n as u32).into_par_iter().collect();
                    out.events = Events::collect_par(n, |i| (accounts[closes.local_account[i] as usize], closing[i].2));
                    return Ok(out);
                }
                out.reserve(n);
                for i in 0..n {
                    let (a, p) = (closes.local_account[i] as usize, closes.pos[i] as usize);
                    self.rank.invalidate(a);
                    self.certs.invalidate(a);
                    let (old, new, e) = self.closing[i];
                    let (new, e) = if self.state.pos_qty[p].to_bits() == old.to_bits() {
                        (new, e)
                    } else {
                        let (_, new, e) = adl_close(&self.state, &contract, closes, i, market, sp);
                        (new, e)
                    };
                    let s = &mut self.state;
                    s.pos_qty[p] = new;
                    // The profit goes to the fund from outside: the account's ledger moves only
                    // when a closed isolated position hands its margin back.
                    if new == 0.0 && s.pos_isolated[p] {
                        let mut acc = s.account_mut(a);
                        acc.release_isolated(p - acc.pos_first, u);
                        acc.refresh();
                    }
                    out.push(i, s.accounts[a], e);
                }
            }
            Deleverage::SocializedLoss => {
                out.reserve(n);
                for i in 0..n {
                    let (a, p) = (closes.local_account[i] as usize, closes.pos[i] as usize);
                    self.rank.invalidate(a);
                    self.certs.invalidate(a);
                    let s = &mut self.state;
                    let part = closes.minor[i];
                    let row = s.balance_row(a, settle as u32);
                    s.bal_minor[row] -= part;
                    s.refresh(a);
                    let e = Event {
                        market: market as i32,
                        side: s.side_of(p),
                        qty: 0.0,
                        price: marks[ku],
                        notional_usd: 0.0,
                        fee_usd: 0.0,
                        bad_debt_usd: Minor(part).to_usd(sp),
                        kind: EventKind::SocializedLoss,
                    };
                    out.push(i, s.accounts[a], e);
                }
            }
        }
        Ok(out)
    }
}

/// Closes a parallel task of [`apply_closes`] takes at least.
const CLOSE_RUN: usize = 8 * 1024;

/// Writes the closes' quantities (`rows`: the plan's (row, place) sorted by row, no row twice;
/// `closing[place].1` the quantity after) and drops their accounts' ranking numbers and
/// certificates, by parallel tasks over runs of whole accounts (rows are grouped by account,
/// so a run's rows and accounts are ranges of their own). Returns the closed isolated
/// positions (account, row) in row order: their margins go back to the wallets after, which
/// reads no quantity, so the state is that of applying the closes one by one in row order.
fn apply_closes(
    state: &mut State,
    rank: &mut RankCache,
    certs: &mut Certificates,
    rows: &[(u64, u32)],
    local_account: &[u32],
    closing: &[(f64, f64, Event)],
    run: usize,
) -> Vec<(usize, usize)> {
    let account = |j: usize| local_account[rows[j].1 as usize] as usize;
    let mut runs = Vec::new();
    let mut start = 0;
    while start < rows.len() {
        let mut end = start.saturating_add(run.max(1)).min(rows.len());
        while end < rows.len() && account(end) == account(end - 1) {
            end += 1;
        }
        runs.push(start..end);
        start = end;
    }
    let row_ranges = runs.iter().map(|r| rows[r.start].0 as usize..rows[r.end - 1].0 as usize + 1);
    let account_ranges = runs.iter().map(|r| account(r.start)..account(r.end - 1) + 1);
    let qty = carve_ranges(&mut state.pos_qty, row_ranges);
    // No stamps before the cache's first prices: nothing cached to drop.
    let (_, stamps, _) = rank.slots();
    let stamps = if stamps.len() == state.accounts.len() {
        carve_ranges(stamps, account_ranges.clone())
    } else {
        runs.iter().map(|_| &mut [][..]).collect()
    };
    let certs = carve_ranges(&mut certs.certs, account_ranges);
    let isolated = &state.pos_isolated;
    let released: Vec<Vec<(usize, usize)>> = runs
        .into_par_iter()
        .zip(qty)
        .zip(stamps)
        .zip(certs)
        .map(|(((run, qty), stamps), certs)| {
            let (p0, a0) = (rows[run.start].0 as usize, account(run.start));
            let mut released = Vec::new();
            for &(p, i) in &rows[run] {
                let (p, i) = (p as usize, i as usize);
                let a = local_account[i] as usize;
                if let Some(s) = stamps.get_mut(a - a0) {
                    *s = RankCache::STALE;
                }
                certs[a - a0].invalidate();
                let new = closing[i].1;
                qty[p - p0] = new;
                if new == 0.0 && isolated[p] {
                    released.push((a, p));
                }
            }
            released
        })
        .collect();
    released.concat()
}

/// Close `i` of an ADL plan on the state as it stands: (the position's quantity before, after,
/// the event). The position closes `share` of itself (all of it at ≥ 1) at its entry price,
/// `minor` units of its profit going to the fund.
fn adl_close(
    s: &State,
    contract: &crate::contract::Contract,
    closes: &Closes,
    i: usize,
    market: u32,
    sp: f64,
) -> (f64, f64, Event) {
    let (p, share, minor) = (closes.pos[i] as usize, closes.share[i], closes.minor[i]);
    let q = s.pos_qty[p];
    let x = if share >= 1.0 { -q } else { -q * share };
    let new = if share >= 1.0 { 0.0 } else { q + x };
    let entry = s.pos_entry[p];
    let e = Event {
        market: market as i32,
        side: s.side_of(p),
        qty: x,
        price: entry,
        notional_usd: contract.notional_usd(x, entry, sp),
        fee_usd: 0.0,
        bad_debt_usd: Minor(minor).to_usd(sp),
        kind: EventKind::Adl,
    };
    (q, new, e)
}

// ---- the shard's rules: fills, fees, bankruptcies ----------------------------------------

/// The signed USD flow an order adds to its market's net flow: (market, flow). An option
/// trades at its premium; an inverse contract's notional is cs/mark coins.
fn order_flow(u: &Universe, state: &State, pos: usize, fraction: f64, assets: &[f64], marks: &[f64]) -> (u32, f64) {
    let k = state.pos_market[pos] as usize;
    let x = -state.pos_qty[pos] * fraction;
    let h = &u.market_hot[k];
    (k as u32, h.contract.value_usd(x, marks[k], assets[h.settle as usize]))
}

/// What one chunk of a selection found: its candidates, their orders, the orders' (market,
/// flow), and how many accounts it evaluated.
type ChunkSelection = (Vec<Candidate>, Vec<Order>, Vec<(u32, f64)>, u64);

/// Chosen accounts a settlement task takes at a time.
const SETTLE_CHUNK: usize = 256;

/// What one settlement task's accounts gave: their events and pieces, account after account,
/// and each account's `[events start, end, pieces start, end]`.
#[derive(Default)]
struct Settled {
    events: Vec<Event>,
    pieces: Vec<Piece>,
    spans: Vec<[u32; 4]>,
}

/// Settles one account: its orders at their markets' fill prices, then, when its pool is left
/// with no cross position and negative equity, the fund takes over its balances (assets and
/// debts alike) and the deficit is bad debt, attributed to the markets it closed this round pro
/// rata to closed notional. Appends its events and the (market, side, USD) bad-debt pieces.
#[allow(clippy::too_many_arguments)]
fn settle_candidate(
    acc: &mut AccountMut<'_>,
    pools: &mut Pools,
    ctx: &MarginContext<'_>,
    fee_rate: f64,
    orders: &[Order],
    fill_price: impl Fn(usize) -> f64,
    events: &mut Vec<Event>,
    pieces: &mut Vec<Piece>,
) {
    let first = events.len();
    for o in orders {
        let o = Order { pos: o.pos - acc.pos_first, ..*o };
        let price = fill_price(acc.pos_market[o.pos] as usize);
        let mut fill = Fill { acc: &mut *acc, pools: &mut *pools, ctx, fee_rate };
        fill.close(o, price, events, pieces);
    }
    let (eq, _) = cross_equity_and_notional(acc.rows(), acc.pos_isolated, ctx);
    let open_cross = acc.pos_isolated.iter().zip(acc.pos_qty.iter()).any(|(&i, &q)| !i && q != 0.0);
    if !open_cross && eq < 0.0 {
        for (&asset, minor) in acc.bal_asset.iter().zip(acc.bal_minor.iter_mut()) {
            pools.insurance[asset as usize] += *minor;
            *minor = 0;
        }
        acc.refresh();
        events.push(Event {
            market: -1,
            side: crate::cascade::NO_SIDE,
            qty: 0.0,
            price: 0.0,
            notional_usd: 0.0,
            fee_usd: 0.0,
            bad_debt_usd: -eq,
            kind: EventKind::Bankruptcy,
        });
        // The markets it closed this round, by the fills' events (the bankruptcy event just
        // pushed is none of them: it has no market).
        let closed = events[first..]
            .iter()
            .filter(|e| e.kind != EventKind::Isolated && e.market >= 0 && e.bad_debt_usd == 0.0)
            .map(|e| (e.market as u32, -e.qty.signum(), e.notional_usd));
        let total: f64 = closed.clone().map(|c| c.2).sum();
        if total > 0.0 {
            pieces.extend(closed.map(|(k, side, w)| (k, side, -eq * w / total)));
        }
    }
}

/// Settles fills of one account against the ledger.
struct Fill<'s, 'a, 'c> {
    acc: &'s mut AccountMut<'a>,
    pools: &'s mut Pools,
    ctx: &'s MarginContext<'c>,
    fee_rate: f64,
}

impl Fill<'_, '_, '_> {
    /// Closes `o.fraction` of the account's position `o.pos` (numbered within the account) at
    /// `price`: realised P&L from the external side, the fee to the fund (never more than the
    /// equity left), an isolated position's margin back to the wallet or its deficit to the
    /// fund. Pushes its events to `events` and the (market, side, USD) bad-debt pieces they
    /// cause to `pieces`.
    fn close(&mut self, o: Order, price: f64, events: &mut Vec<Event>, pieces: &mut Vec<Piece>) {
        let u = self.ctx.universe;
        let s = &mut *self.acc;
        let p = o.pos;
        let q = s.pos_qty[p];
        if q == 0.0 {
            return;
        }
        let k = s.pos_market[p] as usize;
        let settle = u.markets.settle[k] as usize;
        let sp = self.ctx.prices.asset[settle];
        let (c, entry) = (u.contract(k), s.pos_entry[p]);
        let full = o.fraction >= 1.0;
        let x = if full { -q } else { -q * o.fraction };
        // Closing −x contracts at `price` pays what they add to equity there: a perp or future
        // realises its P&L against entry; an option is sold (or bought back) at its premium,
        // the entry premium being already paid.
        let realized = to_minor(c.equity(-x, entry, price));
        self.pools.external[settle] -= realized;
        s.pos_qty[p] = if full { 0.0 } else { q + x };
        let notional = c.notional(x, price);
        let nominal_fee = to_minor(self.fee_rate * notional);
        let fee;
        if s.pos_isolated[p] {
            s.iso_minor[p] += realized;
            let rest = position_stake(self.ctx, k, s.pos_qty[p], entry).equity;
            let available = s.iso_minor[p] + Minor::saturating_from_usd(rest, sp).0;
            fee = nominal_fee.min(available.max(0));
            s.iso_minor[p] -= fee;
        } else {
            let row = s.balance_row(settle as u32);
            s.bal_minor[row] += realized;
            s.refresh();
            let (eq, _) = cross_equity_and_notional(s.rows(), s.pos_isolated, self.ctx);
            fee = nominal_fee.min(Minor::saturating_from_usd(eq.max(0.0), sp).0).max(0);
            s.bal_minor[row] -= fee;
        }
        self.pools.insurance[settle] += fee;
        s.refresh();
        let kind = if s.pos_isolated[p] { EventKind::Isolated } else { o.kind };
        events.push(Event {
            market: k as i32,
            side: s.side_of(p),
            qty: x,
            price,
            notional_usd: notional * sp,
            fee_usd: Minor(fee).to_usd(sp),
            bad_debt_usd: 0.0,
            kind,
        });
        if s.pos_isolated[p] {
            if s.pos_qty[p] == 0.0 {
                if s.iso_minor[p] < 0 {
                    // The isolated margin did not cover the loss: the fund does.
                    let deficit = -s.iso_minor[p];
                    self.pools.insurance[settle] -= deficit;
                    s.iso_minor[p] = 0;
                    s.pos_isolated[p] = false;
                    let usd = Minor(deficit).to_usd(sp);
                    events.push(Event {
                        market: k as i32,
                        side: s.side_of(p),
                        qty: 0.0,
                        price,
                        notional_usd: 0.0,
                        fee_usd: 0.0,
                        bad_debt_usd: usd,
                        kind: EventKind::Bankruptcy,
                    });
                    pieces.push((k as u32, q.signum(), usd));
                } else {
                    s.release_isolated(p, u);
                }
                s.refresh();
            } else if s.iso_minor[p] <= 0 {
                // A slice used the margin up: the rest goes at the same price.
                self.close(Order { pos: p, fraction: 1.0, kind: EventKind::Isolated }, price, events, pieces);
            }
        }
    }
}

// ---- the driver ---------------------------------------------------------------------------

/// The lowest a mark can fall to, as a share of its step's price.
const MIN_FACTOR: f64 = 1e-12;

/// Bad debt attributed to (market, side of the bankrupt position, USD).
type Piece = (u32, f64, f64);

#[derive(Debug, Default)]
struct RoundTally {
    notional: f64,
    fees: f64,
    bad_debt: f64,
}

impl RoundTally {
    /// Adds events `rows` of `e`, in order (each sum takes them one by one, as it would
    /// event by event).
    fn add(&mut self, e: &Events, rows: std::ops::Range<usize>) {
        self.notional = e.notional_usd[rows.clone()].iter().fold(self.notional, |s, &x| s + x);
        self.fees = e.fee_usd[rows.clone()].iter().fold(self.fees, |s, &x| s + x);
        self.bad_debt = e.bad_debt_usd[rows].iter().fold(self.bad_debt, |s, &x| s + x);
    }
}

/// Merges shards' tagged events in a global item order: each `(shard, item)` of the order
/// takes the run of that shard's events tagged `item` (the next ones in its list); runs that
/// continue one shard's list are appended as one, column by column ([`Events::append`]).
struct Merge {
    /// Per shard, the next event to take.
    at: Vec<usize>,
    /// The run waiting to be appended: (shard, rows).
    run: Option<(usize, std::ops::Range<usize>)>,
}

impl Merge {
    fn new(n_shards: usize) -> Merge {
        Merge { at: vec![0; n_shards], run: None }
    }

    /// Takes shard `s`'s events tagged `item`; `flush` receives each finished run.
    fn take(
        &mut self,
        s: usize,
        items: &[u32],
        item: u32,
        mut flush: impl FnMut(usize, std::ops::Range<usize>) -> Result<()>,
    ) -> Result<()> {
        let start = self.at[s];
        let end = start + items[start..].iter().take_while(|&&i| i == item).count();
        self.at[s] = end;
        if start == end {
            return Ok(());
        }
        match &mut self.run {
            Some((rs, rows)) if *rs == s && rows.end == start => rows.end = end,
            run => {
                if let Some((rs, rows)) = run.take() {
                    flush(rs, rows)?;
                }
                *run = Some((s, start..end));
            }
        }
        Ok(())
    }

    /// Appends the last run; then whether every shard's list was taken to its end.
    fn finish(
        &mut self,
        lens: impl Iterator<Item = usize>,
        mut flush: impl FnMut(usize, std::ops::Range<usize>) -> Result<()>,
    ) -> Result<bool> {
        if let Some((s, rows)) = self.run.take() {
            flush(s, rows)?;
        }
        Ok(self.at.iter().zip(lens).all(|(&at, n)| at == n))
    }
}

/// What the driver asks for after [`Driver::plan`].
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// No account needs action: the path's next step applies; ask for prices again.
    NextStep,
    /// The cascade is over (nothing to do on the last step, or the last step hit
    /// `max_rounds`).
    Done,
    /// Settle `chosen[shard]` (candidate indices, in priority order) at `fill_price`.
    Settle { chosen: Vec<Vec<u32>>, fill_price: Vec<f64> },
}

/// The driver's totals at the end.
#[derive(Debug, Clone)]
pub struct DriverOutput {
    pub events: Events,
    pub rounds: Rounds,
    pub pools: Pools,
    pub final_asset_prices: Vec<f64>,
    pub final_marks: Vec<f64>,
    pub bad_debt_usd: f64,
    pub fees_usd: f64,
    /// The path steps that `max_rounds` (a per-step limit) cut short with accounts still
    /// liquidatable; empty when every step ran to its end.
    pub truncated_steps: Vec<u32>,
}

/// The global side of a sharded cascade: prices, priority, liquidity, the insurance fund,
/// deleveraging and the event log.
#[derive(Debug)]
pub struct Driver {
    cfg: CascadeConfig,
    /// Settle asset per market.
    settle: Vec<u32>,
    /// Asset symbols, for errors.
    asset_symbol: Vec<String>,
    pools: Pools,
    factor: Vec<f64>,
    step: usize,
    round: usize,
    step_round: usize,
    marks: Vec<f64>,
    events: Events,
    rounds: Rounds,
    bad_debt: f64,
    fees: f64,
    truncated_steps: Vec<u32>,
    // The round in progress.
    n_shards: usize,
    order: Vec<(u32, u32)>,
    exec: Vec<Execution>,
    tally: RoundTally,
    deficits: Vec<Piece>,
    next_deficit: usize,
    del_order: Vec<(u32, u32)>,
}

impl Driver {
    pub fn new(u: &Universe, cfg: CascadeConfig) -> Result<Driver> {
        check(&cfg, u)?;
        let nm = u.n_markets();
        let pools = Pools::new(cfg.insurance_fund.iter().map(|&x| to_minor(x)).collect());
        Ok(Driver {
            cfg,
            settle: u.markets.settle.clone(),
            asset_symbol: u.assets.symbol.clone(),
            pools,
            factor: vec![1.0; nm],
            step: 0,
            round: 0,
            step_round: 0,
            marks: vec![],
            events: Events::default(),
            rounds: Rounds::default(),
            bad_debt: 0.0,
            fees: 0.0,
            truncated_steps: vec![],
            n_shards: 0,
            order: vec![],
            exec: vec![],
            tally: RoundTally::default(),
            deficits: vec![],
            next_deficit: 0,
            del_order: vec![],
        })
    }

    /// The insurance fund and external counterparty, per asset (minor units).
    pub fn pools(&self) -> &Pools {
        &self.pools
    }

    /// The rules the driver runs.
    pub fn config(&self) -> &CascadeConfig {
        &self.cfg
    }

    fn n_assets(&self) -> usize {
        self.asset_symbol.len()
    }

    fn n_markets(&self) -> usize {
        self.settle.len()
    }

    fn one_per_asset(&self, per_shard: &[Vec<i128>]) -> Result<()> {
        if per_shard.iter().any(|h| h.len() != self.n_assets()) {
            return Err(CoreError::config("cascade.shards", "one amount per asset from every shard"));
        }
        Ok(())
    }

    /// Room in the event log for `n` events before the first round. The log grows by
    /// doubling, and below the allocator's mmap threshold (up to 32 MiB a column) each growth
    /// copies the columns, serially: [`super::run`] gives the book's position count, which
    /// reserves address space only (pages are touched as events are written) and which an
    /// ordinary cascade's events stay under (the 1M demo: 2.3M events, 4M positions).
    pub fn reserve_events(&mut self, n: usize) {
        self.events.reserve(n);
    }

    /// The ledger's capacity before the first round: per asset, Σ |balances + isolated
    /// margins| over the shards ([`Shard::gross_holdings`]) + |pools| stays within
    /// [`ledger::MAX_TOTAL_MINOR`].
    pub fn check_capacity(&self, gross: &[Vec<i128>]) -> Result<()> {
        self.one_per_asset(gross)?;
        for (a, symbol) in self.asset_symbol.iter().enumerate() {
            let pools = [self.pools.insurance[a], self.pools.external[a]];
            let total = gross
                .iter()
                .map(|g| g[a])
                .chain(pools.iter().map(|m| m.saturating_abs()))
                .fold(0i128, i128::saturating_add);
            if total > ledger::MAX_TOTAL_MINOR {
                return Err(CoreError::price(
                    format!("cascade.holdings[{symbol}]"),
                    "Σ |balances + isolated margins + insurance fund| exceeds the ledger's range (1e28 units)",
                ));
            }
        }
        Ok(())
    }

    /// Σ of every holder per asset (minor units): the shards' holdings ([`Shard::holdings`]),
    /// the insurance fund and the external counterparty — what conservation compares before
    /// and after.
    pub fn totals(&self, holdings: &[Vec<i128>]) -> Result<Vec<i128>> {
        self.one_per_asset(holdings)?;
        Ok((0..self.n_assets())
            .map(|a| holdings.iter().map(|h| h[a]).sum::<i128>() + self.pools.insurance[a] + self.pools.external[a])
            .collect())
    }

    /// The round's (asset prices, marks): the step's prices, marks × the impact factor.
    pub fn round_prices(&mut self) -> (Vec<f64>, Vec<f64>) {
        let s = self.step;
        self.marks = (0..self.n_markets()).map(|k| self.cfg.step_marks[s][k] * self.factor[k]).collect();
        (self.cfg.step_asset_prices[s].clone(), self.marks.clone())
    }

    fn assets(&self) -> &[f64] {
        &self.cfg.step_asset_prices[self.step]
    }

    /// Merges the shards' candidates: priority order, truncation, one fill per market.
    pub fn plan(&mut self, shards: &[Candidates]) -> Result<Plan> {
        let nm = self.n_markets();
        for c in shards {
            let n = c.len();
            let ok = c.risk.len() == n
                && c.order_offsets.len() == n + 1
                && c.order_market.len() == c.order_flow.len()
                && c.order_offsets.last().is_some_and(|&e| e as usize == c.order_market.len())
                && c.order_market.iter().all(|&k| (k as usize) < nm);
            if !ok {
                return Err(CoreError::config("cascade.shard", "malformed candidates"));
            }
        }
        let total: usize = shards.iter().map(Candidates::len).sum();
        // `max_rounds` bounds each step: a step cut short is recorded and the path goes on.
        let cut = total > 0 && self.step_round >= self.cfg.max_rounds;
        if cut {
            self.truncated_steps.push(self.step as u32);
        }
        if total == 0 || cut {
            if self.step + 1 < self.cfg.step_marks.len() {
                self.step += 1;
                self.step_round = 0;
                return Ok(Plan::NextStep);
            }
            return Ok(Plan::Done);
        }
        if shards.len() > 1 {
            // One shard's accounts are distinct (a grouped book); across shards, check.
            let mut ids: Vec<i64> = shards.iter().flat_map(|c| c.account.iter().copied()).collect();
            ids.sort_unstable();
            if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
                return Err(CoreError::config(
                    "cascade.shards",
                    format!("account {} is in more than one partition (partition by account)", w[0]),
                ));
            }
        }
        let mut all: Vec<(f64, i64, u32, u32)> = Vec::with_capacity(total);
        for (s, c) in shards.iter().enumerate() {
            for i in 0..c.len() {
                all.push((c.risk[i], c.account[i], s as u32, i as u32));
            }
        }
        // The liquidation priority: riskiest first, then ascending account id (a total order:
        // the ids are distinct, checked above across shards).
        all.par_sort_unstable_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
        if self.cfg.max_liquidations_per_round > 0 {
            all.truncate(self.cfg.max_liquidations_per_round);
        }
        let mut flow = vec![0.0f64; nm];
        let mut chosen = vec![Vec::new(); shards.len()];
        self.order.clear();
        for &(_, _, s, i) in &all {
            let c = &shards[s as usize];
            for o in c.order_offsets[i as usize] as usize..c.order_offsets[i as usize + 1] as usize {
                flow[c.order_market[o] as usize] += c.order_flow[o];
            }
            self.order.push((s, chosen[s as usize].len() as u32));
            chosen[s as usize].push(i);
        }
        self.exec = (0..nm).map(|k| self.cfg.liquidity[k].execute(self.marks[k], flow[k])).collect();
        self.n_shards = shards.len();
        self.tally = RoundTally::default();
        self.deficits.clear();
        self.next_deficit = 0;
        Ok(Plan::Settle { chosen, fill_price: self.exec.iter().map(|e| e.price).collect() })
    }

    /// Merges the settlements (one per shard, in the order of [`Driver::plan`]'s `chosen`).
    pub fn settled(&mut self, results: &[Settlement]) -> Result<()> {
        let na = self.n_assets();
        if results.len() != self.n_shards || results.iter().any(|r| r.insurance.len() != na || r.external.len() != na) {
            return Err(CoreError::config("cascade.shards", "one settlement per shard, one amount per asset"));
        }
        for r in results {
            self.pools.add(&r.insurance, &r.external);
        }
        let (round, step) = (self.round as u32, self.step as u32);
        self.events.reserve(results.iter().map(|r| r.events.item.len()).sum());
        let mut merge = Merge::new(results.len());
        let mut pc_at = vec![0usize; results.len()];
        let mut pieces: Vec<Piece> = Vec::new();
        let (events, tally) = (&mut self.events, &mut self.tally);
        let mut flush = |s: usize, rows: std::ops::Range<usize>| {
            let e = &results[s].events.events;
            tally.add(e, rows.clone());
            events.append(round, step, e, rows)
        };
        for &(s, item) in &self.order {
            let (s, r) = (s as usize, &results[s as usize]);
            merge.take(s, &r.events.item, item, &mut flush)?;
            while pc_at[s] < r.piece_item.len() && r.piece_item[pc_at[s]] == item {
                let i = pc_at[s];
                pieces.push((r.piece_market[i], r.piece_side[i], r.piece_usd[i]));
                pc_at[s] += 1;
            }
        }
        let all_events = merge.finish(results.iter().map(|r| r.events.item.len()), &mut flush)?;
        if !all_events || pc_at.iter().zip(results).any(|(&n, r)| n != r.piece_item.len()) {
            return Err(CoreError::config("cascade.shards", "a settlement holds items that were not chosen"));
        }
        // The fund covers bad debt; past zero, deleverage the other side.
        let fund = fund_usd(&self.pools, self.assets());
        self.deficits =
            if fund < 0.0 && self.cfg.deleverage != Deleverage::None { deficits(&pieces, -fund) } else { vec![] };
        self.next_deficit = 0;
        Ok(())
    }

    /// The next deficit to cover: (market, side of the counterparties to ask the shards for,
    /// how far their ranking must reach in USD — the deficit under ADL, ∞ under a socialised
    /// loss, which spreads over every counterparty).
    pub fn deficit(&self) -> Option<(u32, f64, f64)> {
        let reach = |amount: f64| if self.cfg.deleverage == Deleverage::Adl { amount } else { f64::INFINITY };
        self.deficits.get(self.next_deficit).map(|&(k, side, amount)| (k, -side, reach(amount)))
    }

    /// Ranks the shards' counterparties for the current deficit and decides who covers it;
    /// returns what each shard must apply with [`Shard::deleverage`].
    pub fn plan_deleverage(&mut self, shards: &[Counterparties]) -> Result<Vec<Closes>> {
        let Some(&(k, _, amount)) = self.deficits.get(self.next_deficit) else {
            return Err(CoreError::config("cascade.shards", "no deficit to cover"));
        };
        let mut all: Vec<(f64, i64, u32, u32)> = Vec::with_capacity(shards.iter().map(|c| c.account.len()).sum());
        for (s, c) in shards.iter().enumerate() {
            let n = c.account.len();
            if c.local_account.len() != n || c.pos.len() != n || c.upnl.len() != n || c.score.len() != n {
                return Err(CoreError::config("cascade.shards", "malformed counterparties"));
            }
            all.extend((0..n).map(|i| (c.score[i], c.account[i], s as u32, i as u32)));
        }
        // adl::counterparties' order: best score first, ties by account id (one shard's list
        // is in that order already).
        if shards.len() > 1 {
            all.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
        }
        let settle = self.settle[k as usize] as usize;
        let sp = self.assets()[settle];
        // Room for every counterparty a shard sent (the most the plan can take): the columns
        // are not grown, and copied, as the plan is pushed.
        let mut closes: Vec<Closes> = shards
            .iter()
            .map(|c| {
                let n = c.account.len();
                Closes {
                    local_account: Vec::with_capacity(n),
                    pos: Vec::with_capacity(n),
                    share: Vec::with_capacity(n),
                    minor: Vec::with_capacity(n),
                }
            })
            .collect();
        let take_one =
            |closes: &mut Vec<Closes>, del: &mut Vec<(u32, u32)>, s: u32, i: u32, share: f64, minor: i128| {
                let (c, out) = (&shards[s as usize], &mut closes[s as usize]);
                del.push((s, out.pos.len() as u32));
                out.local_account.push(c.local_account[i as usize]);
                out.pos.push(c.pos[i as usize]);
                out.share.push(share);
                out.minor.push(minor);
            };
        self.del_order.clear();
        match self.cfg.deleverage {
            Deleverage::None => {}
            Deleverage::Adl => {
                let mut remaining = amount;
                for &(_, _, s, i) in &all {
                    if remaining <= 0.0 {
                        break;
                    }
                    let upnl = shards[s as usize].upnl[i as usize];
                    let take = remaining.min(upnl);
                    let share = take / upnl;
                    let minor = Minor::saturating_from_usd(take, sp).0;
                    to_fund_from_external(&mut self.pools, settle, minor);
                    take_one(&mut closes, &mut self.del_order, s, i, share, minor);
                    remaining -= take;
                }
            }
            Deleverage::SocializedLoss => {
                let weights: Vec<f64> = all.iter().map(|&(_, _, s, i)| shards[s as usize].upnl[i as usize]).collect();
                let cover = amount.min(weights.iter().sum());
                // Weights are positive uPnLs, so the split cannot fail; an empty split changes nothing.
                let parts = allocate(Minor::saturating_from_usd(cover, sp), &weights).unwrap_or_default();
                for (&(_, _, s, i), Minor(part)) in all.iter().zip(parts) {
                    if part == 0 {
                        continue;
                    }
                    self.pools.insurance[settle] += part;
                    take_one(&mut closes, &mut self.del_order, s, i, 0.0, part);
                }
            }
        }
        Ok(closes)
    }

    /// Merges the shards' deleveraging events in ranking order; moves on to the next deficit.
    pub fn deleveraged(&mut self, results: &[TaggedEvents]) -> Result<()> {
        let (round, step) = (self.round as u32, self.step as u32);
        self.events.reserve(results.iter().map(|r| r.item.len()).sum());
        let mut merge = Merge::new(results.len());
        let events = &mut self.events;
        let mut flush = |s: usize, rows: std::ops::Range<usize>| events.append(round, step, &results[s].events, rows);
        for &(s, item) in &self.del_order {
            let Some(r) = results.get(s as usize) else {
                return Err(CoreError::config("cascade.shards", "one deleverage result per shard"));
            };
            merge.take(s as usize, &r.item, item, &mut flush)?;
        }
        merge.finish(std::iter::empty(), &mut flush)?;
        self.next_deficit += 1;
        Ok(())
    }

    /// Closes the round: its row in the round table, then the marks move.
    pub fn end_round(&mut self) {
        let r = std::mem::take(&mut self.tally);
        self.bad_debt += r.bad_debt;
        self.fees += r.fees;
        let rounds = &mut self.rounds;
        rounds.round.push(self.round as u32);
        rounds.step.push(self.step as u32);
        rounds.accounts_liquidated.push(self.order.len() as u32);
        rounds.liquidated_notional_usd.push(r.notional);
        rounds.fees_usd.push(r.fees);
        rounds.bad_debt_usd.push(r.bad_debt);
        rounds.cumulative_bad_debt_usd.push(self.bad_debt);
        rounds.insurance_fund_usd.push(fund_usd(&self.pools, &self.cfg.step_asset_prices[self.step]));
        rounds.marks.extend_from_slice(&self.marks);
        // The mark moves to where this round's flow left it, then part of the move fades.
        for (f, e) in self.factor.iter_mut().zip(&self.exec) {
            let walked = *f * (1.0 + e.displacement);
            *f = (walked + (1.0 - walked) * self.cfg.decay).max(MIN_FACTOR);
        }
        self.round += 1;
        self.step_round += 1;
    }

    pub fn finish(self) -> DriverOutput {
        DriverOutput {
            final_asset_prices: self.cfg.step_asset_prices[self.step].clone(),
            final_marks: self.marks,
            events: self.events,
            rounds: self.rounds,
            pools: self.pools,
            bad_debt_usd: self.bad_debt,
            fees_usd: self.fees,
            truncated_steps: self.truncated_steps,
        }
    }
}

/// The fund's value at `prices` (USD).
pub fn fund_usd(pools: &Pools, prices: &[f64]) -> f64 {
    pools.insurance.iter().zip(prices).map(|(&m, &p)| Minor(m).to_usd(p)).sum()
}

/// The deficit split over the (market, side) of this round's bankruptcies, pro rata.
fn deficits(pieces: &[Piece], deficit: f64) -> Vec<Piece> {
    let total: f64 = pieces.iter().map(|p| p.2).sum();
    if total <= 0.0 {
        return vec![];
    }
    let mut by: Vec<Piece> = Vec::new();
    for &(k, side, w) in pieces {
        match by.iter_mut().find(|b| b.0 == k && b.1 == side) {
            Some(b) => b.2 += w,
            None => by.push((k, side, w)),
        }
    }
    by.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.total_cmp(&y.1)));
    by.into_iter().map(|(k, side, w)| (k, side, deficit * w / total)).collect()
}

/// The rounds in one process, over `shards` (one for [`super::run`]; several in tests and for a
/// distributed driver's reference): what `crossmargin.distributed` does with remote shards.
/// The caller checks the ledger's capacity first ([`Driver::check_capacity`]) and takes the
/// totals and [`Driver::finish`] after.
pub fn run_sharded(u: &Universe, shards: &mut [Shard], d: &mut Driver) -> Result<()> {
    run_sharded_timed(u, shards, d, &mut PhaseClock::default())
}

/// [`run_sharded`] with each step timed on `clock` ([`crate::cascade::phases`]).
pub fn run_sharded_timed(u: &Universe, shards: &mut [Shard], d: &mut Driver, clock: &mut PhaseClock) -> Result<()> {
    let (slicing, fee, how) = (d.cfg.slicing, d.cfg.liquidation_fee, d.cfg.deleverage);
    loop {
        let (assets, marks) = d.round_prices();
        let cands = clock.time(Phase::Select, || {
            shards.iter_mut().map(|s| s.select(u, &assets, &marks, &slicing)).collect::<Result<Vec<_>>>()
        })?;
        let (chosen, price) = match clock.time(Phase::Plan, || d.plan(&cands))? {
            Plan::NextStep => continue,
            Plan::Done => return Ok(()),
            Plan::Settle { chosen, fill_price } => (chosen, fill_price),
        };
        let settled = clock.time(Phase::Settle, || {
            shards
                .iter_mut()
                .zip(&chosen)
                .map(|(s, c)| s.settle(u, &assets, &marks, c, &price, fee))
                .collect::<Result<Vec<_>>>()
        })?;
        clock.time(Phase::Settled, || d.settled(&settled))?;
        while let Some((k, side, cover)) = d.deficit() {
            let cps = clock.time(Phase::Counterparties, || {
                shards
                    .iter_mut()
                    .map(|s| s.counterparties(u, &assets, &marks, k, side, cover))
                    .collect::<Result<Vec<_>>>()
            })?;
            let closes = clock.time(Phase::PlanDeleverage, || d.plan_deleverage(&cps))?;
            let done = clock.time(Phase::Deleverage, || {
                shards
                    .iter_mut()
                    .zip(&closes)
                    .map(|(s, c)| s.deleverage(u, &assets, &marks, how, k, c))
                    .collect::<Result<Vec<_>>>()
            })?;
            clock.time(Phase::Deleveraged, || d.deleveraged(&done))?;
        }
        d.end_round();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{group, BalanceInput, PositionInput};
    use crate::cascade::impact::Liquidity;
    use crate::cascade::run;
    use crate::cascade::screen::Cert;
    use crate::universe::fixtures::{asset, perp};
    use proptest::prelude::*;

    fn universe() -> Universe {
        Universe::new(
            &[asset("USDT", 1.0), asset("BTC", 100.0)],
            &[
                perp("BTCUSDT", "USDT", "BTC", 100.0, &[(1e4, 0.1, 0.05), (f64::INFINITY, 0.2, 0.1)]),
                perp("ETHUSDT", "USDT", "ETH", 10.0, &[(f64::INFINITY, 0.1, 0.05)]),
            ],
        )
        .unwrap()
    }

    /// Rows of the accounts `keep` selects, in input order.
    struct Rows {
        b_acc: Vec<i64>,
        b_code: Vec<u32>,
        b_qty: Vec<f64>,
        p_acc: Vec<i64>,
        p_code: Vec<u32>,
        p_qty: Vec<f64>,
        p_entry: Vec<f64>,
        p_iso: Vec<f64>,
    }

    impl Rows {
        fn subset(&self, keep: impl Fn(i64) -> bool) -> GroupedBook {
            let b: Vec<usize> = (0..self.b_acc.len()).filter(|&i| keep(self.b_acc[i])).collect();
            let p: Vec<usize> = (0..self.p_acc.len()).filter(|&i| keep(self.p_acc[i])).collect();
            let pick_i = |v: &[i64], ix: &[usize]| ix.iter().map(|&i| v[i]).collect::<Vec<_>>();
            let pick_u = |v: &[u32], ix: &[usize]| ix.iter().map(|&i| v[i]).collect::<Vec<_>>();
            let pick_f = |v: &[f64], ix: &[usize]| ix.iter().map(|&i| v[i]).collect::<Vec<_>>();
            let (ba, bc, bq) = (pick_i(&self.b_acc, &b), pick_u(&self.b_code, &b), pick_f(&self.b_qty, &b));
            let (pa, pc, pq) = (pick_i(&self.p_acc, &p), pick_u(&self.p_code, &p), pick_f(&self.p_qty, &p));
            let (pe, pi) = (pick_f(&self.p_entry, &p), pick_f(&self.p_iso, &p));
            group(
                BalanceInput { account: &ba, code: &bc, qty: &bq },
                PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pi },
                2,
                2,
            )
            .unwrap()
        }
    }

    fn rows(cash: &[f64], btc: &[f64], qty: &[(f64, f64)], iso: &[bool]) -> Rows {
        let n = cash.len();
        let mut r = Rows {
            b_acc: vec![],
            b_code: vec![],
            b_qty: vec![],
            p_acc: vec![],
            p_code: vec![],
            p_qty: vec![],
            p_entry: vec![],
            p_iso: vec![],
        };
        for a in 0..n {
            let id = 1000 + 7 * a as i64;
            r.b_acc.extend([id, id]);
            r.b_code.extend([0, 1]);
            r.b_qty.extend([cash[a], btc[a]]);
            for (m, (q, entry)) in [(0u32, (qty[a].0, 100.0)), (1, (qty[a].1, 10.0))] {
                if q != 0.0 {
                    r.p_acc.push(id);
                    r.p_code.push(m);
                    r.p_qty.push(q);
                    r.p_entry.push(entry);
                    r.p_iso.push(if iso[a] && m == 1 { q.abs() * entry * 0.08 } else { 0.0 });
                }
            }
        }
        r
    }

    fn config(shock: f64, fund: f64, how: Deleverage, per_round: usize) -> CascadeConfig {
        CascadeConfig {
            step_asset_prices: vec![vec![1.0, 100.0 * (1.0 + shock)], vec![1.0, 100.0 * (1.0 + 1.5 * shock)]],
            step_marks: vec![
                vec![100.0 * (1.0 + shock), 10.0],
                vec![100.0 * (1.0 + 1.5 * shock), 10.0 * (1.0 - shock)],
            ],
            liquidity: vec![
                Liquidity::SqrtImpact { y: 1.0, sigma: 0.05, daily_volume: 2e4, permanent: 0.5 },
                Liquidity::Depth { distance: vec![0.01, 0.05], cumulative: vec![500.0, 2000.0] },
            ],
            decay: 0.3,
            liquidation_fee: 0.01,
            slicing: Slicing { fraction: 0.3, target_ratio: 0.0, min_notional: 5.0 },
            max_rounds: 40,
            max_liquidations_per_round: per_round,
            deleverage: how,
            insurance_fund: vec![fund, 0.0],
        }
    }

    fn sharded(u: &Universe, r: &Rows, n: i64, cfg: &CascadeConfig) -> (DriverOutput, Vec<i128>) {
        sharded_with(u, r, n, cfg, true).0
    }

    /// The sharded run, with the incremental selection on or off; also the accounts skipped.
    fn sharded_with(
        u: &Universe,
        r: &Rows,
        n: i64,
        cfg: &CascadeConfig,
        incremental: bool,
    ) -> ((DriverOutput, Vec<i128>), u64) {
        let mut shards: Vec<Shard> =
            (0..n).map(|s| Shard::new(&r.subset(|id| id.rem_euclid(n) == s), u, &[0, 1], &[0, 1]).unwrap()).collect();
        for s in &mut shards {
            s.set_incremental(incremental);
        }
        let before: Vec<i128> = (0..2).map(|a| shards.iter().map(|s| s.holdings(u)[a]).sum()).collect();
        let mut d = Driver::new(u, cfg.clone()).unwrap();
        run_sharded(u, &mut shards, &mut d).unwrap();
        let out = d.finish();
        let after: Vec<i128> = (0..2)
            .map(|a| {
                shards.iter().map(|s| s.holdings(u)[a]).sum::<i128>() + out.pools.insurance[a] + out.pools.external[a]
            })
            .collect();
        let fund: Vec<i128> = cfg.insurance_fund.iter().map(|&x| to_minor(x)).collect();
        assert_eq!(before.iter().zip(&fund).map(|(b, f)| b + f).collect::<Vec<_>>(), after);
        let skipped = shards.iter().map(|s| s.selection_counts().1).sum();
        ((out, after), skipped)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn sharded_rounds_equal_the_single_process_cascade(
            cash in prop::collection::vec(0.0f64..400.0, 1..24),
            btc in prop::collection::vec(0.0f64..3.0, 24),
            qty in prop::collection::vec((-30.0f64..30.0, -200.0f64..200.0), 24),
            iso in prop::collection::vec(prop::bool::ANY, 24),
            shock in -0.4f64..0.3,
            fund in 0.0f64..50.0,
            how in prop::sample::select(vec![Deleverage::Adl, Deleverage::SocializedLoss, Deleverage::None]),
            per_round in prop::sample::select(vec![0usize, 1, 3]),
            n in 1i64..6,
        ) {
            let u = universe();
            let k = cash.len();
            let r = rows(&cash, &btc[..k], &qty[..k], &iso[..k]);
            let cfg = config(shock, fund, how, per_round);
            let one = run(&u, &r.subset(|_| true), &[0, 1], &[0, 1], &cfg).unwrap();
            let (many, totals) = sharded(&u, &r, n, &cfg);
            prop_assert_eq!(&one.outcome.events, &many.events);
            prop_assert_eq!(&one.outcome.rounds, &many.rounds);
            prop_assert_eq!(&one.outcome.pools, &many.pools);
            prop_assert_eq!(&one.totals_after, &totals);
            prop_assert_eq!(one.outcome.bad_debt_usd.to_bits(), many.bad_debt_usd.to_bits());
            prop_assert_eq!(one.outcome.fees_usd.to_bits(), many.fees_usd.to_bits());
            prop_assert_eq!(&one.outcome.truncated_steps, &many.truncated_steps);
            prop_assert_eq!(&one.outcome.final_marks, &many.final_marks);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn incremental_rounds_equal_full_rounds(
            cash in prop::collection::vec(0.0f64..2000.0, 1..40),
            btc in prop::collection::vec(0.0f64..3.0, 40),
            qty in prop::collection::vec((-30.0f64..30.0, -200.0f64..200.0), 40),
            iso in prop::collection::vec(prop::bool::ANY, 40),
            shock in -0.3f64..0.2,
            fund in 0.0f64..50.0,
            how in prop::sample::select(vec![Deleverage::Adl, Deleverage::SocializedLoss]),
            per_round in prop::sample::select(vec![0usize, 1, 3]),
            n in 1i64..4,
        ) {
            let u = universe();
            let k = cash.len();
            let r = rows(&cash, &btc[..k], &qty[..k], &iso[..k]);
            let cfg = config(shock, fund, how, per_round);
            let ((full, ft), none) = sharded_with(&u, &r, 1, &cfg, false);
            let ((inc, it), _) = sharded_with(&u, &r, n, &cfg, true);
            prop_assert_eq!(none, 0);
            prop_assert_eq!(&full.events, &inc.events);
            prop_assert_eq!(&full.rounds, &inc.rounds);
            prop_assert_eq!(&full.pools, &inc.pools);
            prop_assert_eq!(&ft, &it);
            prop_assert_eq!(full.bad_debt_usd.to_bits(), inc.bad_debt_usd.to_bits());
            prop_assert_eq!(&full.final_marks, &inc.final_marks);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Closes applied by runs of any length (cut at whole accounts) leave the state, the
        /// ranking cache and the certificates as applying them one by one does, and hand back
        /// the closed isolated positions in row order.
        #[test]
        fn closes_apply_the_same_by_runs_of_any_length(
            qty in prop::collection::vec((-30.0f64..30.0, -200.0f64..200.0), 1..12),
            iso in prop::collection::vec(prop::bool::ANY, 12),
            pick in prop::collection::vec((prop::bool::ANY, prop::bool::ANY), 24),
            run in 1usize..5,
        ) {
            let u = universe();
            let n = qty.len();
            let r = rows(&vec![100.0; n], &vec![0.0; n], &qty, &iso[..n]);
            let base = Shard::new(&r.subset(|_| true), &u, &[0, 1], &[0, 1]).unwrap();
            // Any rows of any accounts (an account's rows in both markets too), each closed to
            // half its quantity or to 0.
            let rows: Vec<(u64, u32)> = (0..base.state.pos_qty.len())
                .filter(|&p| pick[p % pick.len()].0)
                .enumerate()
                .map(|(i, p)| (p as u64, i as u32))
                .collect();
            let local_account: Vec<u32> = rows
                .iter()
                .map(|&(p, _)| (0..n).find(|&a| base.state.pos_offsets[a + 1] > p as usize).unwrap() as u32)
                .collect();
            let event = Event {
                market: 1,
                side: 0,
                qty: 0.0,
                price: 0.0,
                notional_usd: 0.0,
                fee_usd: 0.0,
                bad_debt_usd: 0.0,
                kind: EventKind::Adl,
            };
            let closing: Vec<(f64, f64, Event)> = rows
                .iter()
                .map(|&(p, i)| {
                    let q = base.state.pos_qty[p as usize];
                    (q, if pick[i as usize % pick.len()].1 { 0.0 } else { q * 0.5 }, event)
                })
                .collect();
            let assets = [1.0, 100.0];
            let apply = |run: usize| {
                let mut s = base.clone();
                s.rank.at(n, &assets, &[100.0, 10.0]);
                let (_, stamps, _) = s.rank.slots();
                stamps.iter_mut().for_each(|x| *x = 7);
                s.certs.certs.iter_mut().for_each(|c| *c = Cert::kept_for_test());
                let released = apply_closes(&mut s.state, &mut s.rank, &mut s.certs, &rows, &local_account, &closing, run);
                (s, released)
            };
            let (one, released_one) = apply(usize::MAX);
            let (got, released) = apply(run);
            prop_assert_eq!(&released, &released_one);
            prop_assert_eq!(&got.state.pos_qty, &one.state.pos_qty);
            let stamps = |s: &Shard| s.rank.clone().slots().1.to_vec();
            prop_assert_eq!(stamps(&got), stamps(&one));
            let held = |s: &Shard| s.certs.certs.iter().map(Cert::is_held).collect::<Vec<_>>();
            prop_assert_eq!(held(&got), held(&one));
            // The definition: each row's quantity, its account uncached and uncertified.
            let mut want = base.state.pos_qty.clone();
            let mut touched = vec![false; n];
            let mut want_released = Vec::new();
            for (j, &(p, i)) in rows.iter().enumerate() {
                want[p as usize] = closing[i as usize].1;
                touched[local_account[j] as usize] = true;
                if want[p as usize] == 0.0 && base.state.pos_isolated[p as usize] {
                    want_released.push((local_account[j] as usize, p as usize));
                }
            }
            prop_assert_eq!(&got.state.pos_qty, &want);
            prop_assert_eq!(released, want_released);
            let got_stamps = stamps(&got);
            for (a, &t) in touched.iter().enumerate() {
                prop_assert_eq!(got.certs.certs[a].is_held(), !t);
                prop_assert_eq!(got_stamps[a] == RankCache::STALE, t);
            }
        }

        /// An ADL plan applied at once (in row order when it names each row once, else in
        /// plan order) leaves the state and events of its closes applied one by one in plan
        /// order, isolated margins handed back included.
        #[test]
        fn adl_closes_apply_as_one_by_one(
            qty in prop::collection::vec((-30.0f64..30.0, -200.0f64..200.0), 2..12),
            iso in prop::collection::vec(prop::bool::ANY, 12),
            shares in prop::collection::vec(0.1f64..1.5, 24),
            keys in prop::collection::vec(0u32..1000, 24),
            dup in prop::bool::ANY,
        ) {
            let u = universe();
            let n = qty.len();
            let r = rows(&vec![100.0; n], &vec![0.0; n], &qty, &iso[..n]);
            let base = Shard::new(&r.subset(|_| true), &u, &[0, 1], &[0, 1]).unwrap();
            let s = &base.state;
            let mut rows_of: Vec<(u32, u32, u64)> = (0..s.n_accounts())
                .flat_map(|a| (s.pos_offsets[a]..s.pos_offsets[a + 1]).map(move |p| (a, p)))
                .filter(|&(_, p)| s.pos_market[p] == 1)
                .map(|(a, p)| (keys[p % keys.len()], a as u32, p as u64))
                .collect();
            rows_of.sort_unstable();
            if dup && !rows_of.is_empty() {
                rows_of.push(rows_of[0]);
            }
            let plan = Closes {
                local_account: rows_of.iter().map(|x| x.1).collect(),
                pos: rows_of.iter().map(|x| x.2).collect(),
                share: (0..rows_of.len()).map(|i| shares[i % shares.len()]).collect(),
                minor: (0..rows_of.len()).map(|i| 1000 * i as i128).collect(),
            };
            let (assets, marks) = (vec![1.0, 100.0], vec![100.0, 10.0]);
            let mut at_once = base.clone();
            let all = at_once.deleverage(&u, &assets, &marks, Deleverage::Adl, 1, &plan).unwrap();
            let mut one_by_one = base.clone();
            let mut events = Events::default();
            for i in 0..plan.pos.len() {
                let one = Closes {
                    local_account: vec![plan.local_account[i]],
                    pos: vec![plan.pos[i]],
                    share: vec![plan.share[i]],
                    minor: vec![plan.minor[i]],
                };
                let got = one_by_one.deleverage(&u, &assets, &marks, Deleverage::Adl, 1, &one).unwrap();
                for j in 0..got.item.len() {
                    let (account, e) = got.event(j).unwrap();
                    events.push(0, 0, account, e);
                }
            }
            prop_assert_eq!(&all.events, &events);
            prop_assert_eq!(all.item, (0..plan.pos.len() as u32).collect::<Vec<_>>());
            let (x, y) = (&at_once.state, &one_by_one.state);
            prop_assert_eq!(&x.pos_qty, &y.pos_qty);
            prop_assert_eq!(&x.bal_minor, &y.bal_minor);
            prop_assert_eq!(&x.bal_qty, &y.bal_qty);
            prop_assert_eq!(&x.iso_minor, &y.iso_minor);
            prop_assert_eq!(&x.iso_qty, &y.iso_qty);
            prop_assert_eq!(&x.pos_isolated, &y.pos_isolated);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Round after round of one step, a shard that keeps its accounts' balance totals
        /// (and certificates) selects, settles and deleverages exactly as one that evaluates
        /// every account whole: the fills and socialised charges between the rounds change the
        /// balances of the accounts they touch, which must not be read from what was kept.
        #[test]
        fn kept_balance_totals_select_as_full_evaluations(
            cash in prop::collection::vec(0.0f64..400.0, 1..24),
            btc in prop::collection::vec(0.0f64..3.0, 24),
            qty in prop::collection::vec((-30.0f64..30.0, -200.0f64..200.0), 24),
            iso in prop::collection::vec(prop::bool::ANY, 24),
            moves in prop::collection::vec((-0.12f64..0.08, 0usize..24), 2..10),
        ) {
            let u = universe();
            let k = cash.len();
            let book = rows(&cash, &btc[..k], &qty[..k], &iso[..k]).subset(|_| true);
            let mut kept = Shard::new(&book, &u, &[0, 1], &[0, 1]).unwrap();
            kept.set_incremental(true);
            let mut full = kept.clone();
            full.set_incremental(false);
            let slicing = Slicing { fraction: 0.3, target_ratio: 0.0, min_notional: 5.0 };
            let (assets, mut marks) = (vec![1.0, 100.0], vec![100.0, 10.0]);
            for (shock, charged) in moves {
                (marks[0], marks[1]) = (marks[0] * (1.0 + shock), marks[1] * (1.0 - shock));
                let want = full.select(&u, &assets, &marks, &slicing).unwrap();
                prop_assert_eq!(&kept.select(&u, &assets, &marks, &slicing).unwrap(), &want);
                let chosen: Vec<u32> = (0..want.len() as u32).collect();
                let settled = full.settle(&u, &assets, &marks, &chosen, &marks, 0.01).unwrap();
                prop_assert_eq!(&kept.settle(&u, &assets, &marks, &chosen, &marks, 0.01).unwrap(), &settled);
                // A socialised charge on one account's first position.
                let a = charged % k;
                let s = &full.state;
                if let Some(p) = (s.pos_offsets[a]..s.pos_offsets[a + 1]).next() {
                    let market = s.pos_market[p];
                    let closes = Closes { local_account: vec![a as u32], pos: vec![p as u64], share: vec![1.0], minor: vec![7_000_000_000] };
                    let how = Deleverage::SocializedLoss;
                    let charged = full.deleverage(&u, &assets, &marks, how, market, &closes).unwrap();
                    prop_assert_eq!(&kept.deleverage(&u, &assets, &marks, how, market, &closes).unwrap(), &charged);
                }
            }
            prop_assert_eq!(&kept.state.bal_minor, &full.state.bal_minor);
            prop_assert_eq!(&kept.state.pos_qty, &full.state.pos_qty);
        }
    }

    #[test]
    fn certified_accounts_are_skipped_and_change_nothing() {
        // Well-funded accounts far from maintenance beside thin ones that cascade over many
        // rounds: the safe ones are certified in the first round and skipped after.
        let u = universe();
        let n = 60;
        let cash: Vec<f64> = (0..n).map(|a| if a % 4 == 0 { 5000.0 } else { 60.0 + 10.0 * (a % 7) as f64 }).collect();
        let btc = vec![0.0; n];
        let qty: Vec<(f64, f64)> =
            (0..n).map(|a| (3.0 + (a % 3) as f64, if a % 5 == 0 { -20.0 } else { 0.0 })).collect();
        let iso: Vec<bool> = (0..n).map(|a| a % 6 == 3).collect();
        let r = rows(&cash, &btc, &qty, &iso);
        for how in [Deleverage::Adl, Deleverage::SocializedLoss] {
            let cfg = config(-0.12, 0.0, how, 2);
            let ((full, _), _) = sharded_with(&u, &r, 1, &cfg, false);
            let ((inc, _), skipped) = sharded_with(&u, &r, 3, &cfg, true);
            assert!(full.rounds.round.len() > 3, "{}", full.rounds.round.len());
            assert!(skipped > 0);
            assert_eq!(full.events, inc.events);
            assert_eq!(full.rounds, inc.rounds);
            assert_eq!(full.pools, inc.pools);
        }
    }

    #[test]
    fn a_deep_cascade_with_deleveraging_is_the_same_in_five_shards() {
        // Longs on thin cash and shorts in profit: bankruptcies past an empty fund, so every
        // phase of the protocol (fills, pool bankruptcies, isolated, ADL / socialised) runs.
        let u = universe();
        let n = 40;
        let cash: Vec<f64> = (0..n).map(|a| 20.0 + 15.0 * (a % 9) as f64).collect();
        let btc: Vec<f64> = (0..n).map(|a| if a % 5 == 0 { 0.5 } else { 0.0 }).collect();
        let qty: Vec<(f64, f64)> =
            (0..n).map(|a| if a % 3 == 0 { (-8.0, -40.0) } else { (6.0 + (a % 4) as f64, 50.0) }).collect();
        let iso: Vec<bool> = (0..n).map(|a| a % 7 == 1).collect();
        let r = rows(&cash, &btc, &qty, &iso);
        for how in [Deleverage::Adl, Deleverage::SocializedLoss] {
            let cfg = config(-0.3, 0.0, how, 0);
            let one = run(&u, &r.subset(|_| true), &[0, 1], &[0, 1], &cfg).unwrap();
            let kinds: Vec<u8> = one.outcome.events.kind.clone();
            assert!(one.outcome.rounds.round.len() > 1);
            assert!(kinds.contains(&(EventKind::Bankruptcy as u8)));
            assert!(kinds.contains(&(EventKind::Isolated as u8)));
            assert!(kinds.iter().any(|&k| k == EventKind::Adl as u8 || k == EventKind::SocializedLoss as u8));
            let (many, _) = sharded(&u, &r, 5, &cfg);
            assert_eq!(one.outcome.events, many.events);
            assert_eq!(one.outcome.rounds, many.rounds);
            assert_eq!(one.outcome.pools, many.pools);
        }
    }

    #[test]
    fn holdings_beyond_the_ledgers_range_are_refused_over_all_shards() {
        let u = universe();
        let mut cfg = config(-0.3, 0.0, Deleverage::Adl, 0);
        cfg.insurance_fund = vec![0.0, 2e27];
        let d = Driver::new(&u, cfg).unwrap();
        let half = ledger::MAX_TOTAL_MINOR / 2;
        assert!(d.check_capacity(&[vec![half, 0], vec![half, 0]]).is_ok());
        let err = d.check_capacity(&[vec![half, 0], vec![half + 1, 0]]).unwrap_err();
        assert!(err.to_string().contains("cascade.holdings[USDT]"));
        // The fund counts too: 8e27 + 2e27 BTC is at the limit, one unit more is beyond.
        let btc = ledger::MAX_TOTAL_MINOR - to_minor(2e27);
        assert!(d.check_capacity(&[vec![0, btc]]).is_ok());
        assert!(d.check_capacity(&[vec![0, btc + 1]]).unwrap_err().to_string().contains("cascade.holdings[BTC]"));
        assert!(d.check_capacity(&[vec![0]]).is_err());
    }

    /// A deleveraging plan naming a position outside its market (or another account's) is
    /// refused, naming the first such close in plan order, and changes nothing.
    #[test]
    fn a_close_outside_its_market_is_refused() {
        let u = universe();
        let n = 5000;
        let r = rows(&vec![100.0; n], &vec![0.0; n], &vec![(1.0, -2.0); n], &vec![false; n]);
        let mut shard = Shard::new(&r.subset(|_| true), &u, &[0, 1], &[0, 1]).unwrap();
        let s = &shard.state;
        // Every account's market-1 row, then at 4321 a market-0 row, at 4700 another account's.
        let mut plan = Closes::default();
        for a in 0..n {
            let p = (s.pos_offsets[a]..s.pos_offsets[a + 1]).find(|&p| s.pos_market[p] == 1).unwrap();
            plan.local_account.push(a as u32);
            plan.pos.push(p as u64);
            plan.share.push(0.5);
            plan.minor.push(0);
        }
        plan.pos[4321] = s.pos_offsets[4321] as u64;
        plan.local_account[4700] = 4699;
        let first = format!("position {} of account 4321 is not in market 1", plan.pos[4321]);
        let before = shard.state.pos_qty.clone();
        let err = shard.deleverage(&u, &[1.0, 100.0], &[100.0, 10.0], Deleverage::Adl, 1, &plan).unwrap_err();
        assert!(err.to_string().contains(&first), "{err}");
        assert_eq!(shard.state.pos_qty, before);
    }

    #[test]
    fn an_account_in_two_partitions_is_refused() {
        let u = universe();
        let r = rows(&[0.0], &[0.0], &[(10.0, 0.0)], &[false]);
        let mut shards = vec![Shard::new(&r.subset(|_| true), &u, &[0, 1], &[0, 1]).unwrap(); 2];
        let mut d = Driver::new(&u, config(-0.3, 0.0, Deleverage::Adl, 0)).unwrap();
        let err = run_sharded(&u, &mut shards, &mut d).unwrap_err();
        assert!(err.to_string().contains("more than one partition"));
    }
}
