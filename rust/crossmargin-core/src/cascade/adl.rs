//! What covers bad debt once the insurance fund is exhausted.
//!
//! - auto-deleveraging (Binance "Auto-Deleveraging (ADL)", Bybit "Auto-Deleveraging"):
//!   profitable positions on the other side of the bankrupt one, in the same market, are
//!   ranked by profit % × effective leverage (profit % = uPnL / entry notional; effective
//!   leverage = the account's total notional / its equity), ties by account id, and closed
//!   in that order. A deleveraged position closes at its entry price: the profit it had
//!   accrued on the closed part goes to the insurance fund instead of the account, until the
//!   deficit is covered.
//! - socialised loss: the deficit is split over the same profitable positions pro rata to
//!   their uPnL (never more than it) and taken from their settle balances; positions stay.

use std::ops::Range;

use rayon::prelude::*;

use crate::cascade::ledger::Pools;
use crate::cascade::policy::cross_equity_and_notional;
use crate::cascade::state::{carve_ranges, State};
use crate::margin::MarginContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleverage {
    /// Bad debt beyond the fund stays uncovered (the fund goes negative).
    None,
    Adl,
    SocializedLoss,
}

/// A profitable position that can cover a deficit.
#[derive(Debug, Clone, Copy)]
pub struct Counterparty {
    /// The account's index in the state: the ranking's tie-break (ids ascend with it), so a
    /// comparison reads no other memory and the scan no id.
    pub account: u32,
    /// The position row.
    pub pos: u32,
    /// uPnL in USD at the round's prices (> 0).
    pub upnl: f64,
    pub score: f64,
}

/// Each market's position rows (ascending) and each position row's account: built once per
/// shard (a position never changes market), so a deficit reads only its market's rows. The
/// rows are also kept by side, as the state stands when the index is built: a deficit asks
/// for the positions of one side (`qty × side > 0`), and a cascade only ever moves a
/// quantity towards 0 (a close keeps its sign or ends at 0), so every row that can be asked
/// for a side later is in that side's list (a row already at 0 is in neither and never
/// counts again).
#[derive(Debug, Clone, Default)]
pub struct MarketIndex {
    offsets: Vec<usize>,
    pos: Vec<u32>,
    account: Vec<u32>,
    /// Per market, the rows with `qty > 0` (or NaN) and those with `qty < 0` (or NaN).
    long: (Vec<usize>, Vec<u32>),
    short: (Vec<usize>, Vec<u32>),
}

impl MarketIndex {
    pub fn new(state: &State, n_markets: usize) -> MarketIndex {
        // One counting pass and one filling pass for the three groupings (all rows, the long
        // side's, the short side's): CSR offsets per market, rows ascending within one.
        let q = &state.pos_qty;
        let is_long = |p: usize| q[p] > 0.0 || q[p].is_nan();
        let is_short = |p: usize| q[p] < 0.0 || q[p].is_nan();
        let mut counts = [vec![0usize; n_markets + 1], vec![0usize; n_markets + 1], vec![0usize; n_markets + 1]];
        for (p, &k) in state.pos_market.iter().enumerate() {
            let k = k as usize + 1;
            counts[0][k] += 1;
            counts[1][k] += usize::from(is_long(p));
            counts[2][k] += usize::from(is_short(p));
        }
        for c in &mut counts {
            for k in 0..n_markets {
                c[k + 1] += c[k];
            }
        }
        let mut at = counts.clone();
        let mut rows =
            [vec![0u32; counts[0][n_markets]], vec![0u32; counts[1][n_markets]], vec![0u32; counts[2][n_markets]]];
        for (p, &k) in state.pos_market.iter().enumerate() {
            let k = k as usize;
            let keep = [true, is_long(p), is_short(p)];
            for g in 0..3 {
                if keep[g] {
                    rows[g][at[g][k]] = p as u32;
                    at[g][k] += 1;
                }
            }
        }
        // Each position row's account, in parallel chunks of accounts (rows are grouped by
        // account, so a chunk of accounts owns one contiguous run of rows).
        const ACCOUNTS: usize = 4096;
        let n = state.n_accounts();
        let account: Vec<u32> = (0..n.div_ceil(ACCOUNTS))
            .into_par_iter()
            .flat_map_iter(|c| {
                let (lo, hi) = (c * ACCOUNTS, ((c + 1) * ACCOUNTS).min(n));
                (lo..hi).flat_map(|a| std::iter::repeat_n(a as u32, state.pos_offsets[a + 1] - state.pos_offsets[a]))
            })
            .collect();
        let [offsets, long_offsets, short_offsets] = counts;
        let [pos, long, short] = rows;
        MarketIndex { offsets, pos, account, long: (long_offsets, long), short: (short_offsets, short) }
    }

    /// The market's rows that can hold a position on `side` (`qty × side > 0`): one side's
    /// list for a side of ±1, every row of the market otherwise.
    fn rows(&self, market: usize, side: f64) -> &[u32] {
        let (offsets, pos) = if side == 1.0 {
            (&self.long.0, &self.long.1)
        } else if side == -1.0 {
            (&self.short.0, &self.short.1)
        } else {
            (&self.offsets, &self.pos)
        };
        offsets.get(market..market + 2).map_or(&[], |w| &pos[w[0]..w[1]])
    }
}

/// The account numbers the ranking reads (cross equity, total notional), cached for one set of
/// prices: valid while the prices are those of [`RankCache::at`] and the account's rows are
/// untouched ([`RankCache::invalidate`]). A cached value is the number the ranking would
/// compute, so the cache changes no result.
#[derive(Debug, Clone, Default)]
pub struct RankCache {
    key: Vec<u64>,
    epoch: u32,
    stamp: Vec<u32>,
    value: Vec<(f64, f64)>,
}

impl RankCache {
    /// The stamp of an account whose numbers are not cached (no epoch is 0).
    pub const STALE: u32 = 0;

    /// Starts a new epoch unless the prices are the cached ones (bit for bit).
    pub fn at(&mut self, n_accounts: usize, assets: &[f64], marks: &[f64]) {
        let key: Vec<u64> = assets.iter().chain(marks).map(|x| x.to_bits()).collect();
        if key != self.key || self.stamp.len() != n_accounts || self.epoch == u32::MAX {
            self.key = key;
            if self.stamp.len() != n_accounts || self.epoch == u32::MAX {
                self.stamp = vec![0; n_accounts];
                self.value = vec![(0.0, 0.0); n_accounts];
                self.epoch = 0;
            }
            self.epoch += 1;
        }
    }

    /// Account `a`'s rows changed.
    pub fn invalidate(&mut self, a: usize) {
        if let Some(s) = self.stamp.get_mut(a) {
            *s = RankCache::STALE;
        }
    }

    /// The epoch and each account's (stamp, value) slots, for a caller that computes the
    /// numbers of many accounts at the cached prices (the selection, which evaluates them
    /// anyway): writing `value[a]` and setting `stamp[a]` to the epoch caches account `a`, and
    /// setting it to [`RankCache::STALE`] drops it (many accounts at once: the ADL closes).
    pub fn slots(&mut self) -> (u32, &mut [u32], &mut [(f64, f64)]) {
        (self.epoch, &mut self.stamp, &mut self.value)
    }
}

/// The account's (cross equity, total notional) at the context's prices.
fn rank_numbers(state: &State, ctx: &MarginContext<'_>, a: usize) -> (f64, f64) {
    let p = state.pos_offsets[a]..state.pos_offsets[a + 1];
    cross_equity_and_notional(state.account(a), &state.pos_isolated[p], ctx)
}

/// Position rows a scan hands to one task.
const SCAN_CHUNK: usize = 16 * 1024;

/// Buffers of [`counterparties`], kept from one deficit to the next so that a scan writes into
/// memory it already holds (no allocation or page faults per deficit).
#[derive(Debug, Clone, Default)]
pub struct Scratch {
    /// Per chunk of the market's rows: the counterparties found, in row order.
    found: Vec<Vec<Counterparty>>,
    /// The counterparties of the last scan, in row order.
    all: Vec<Counterparty>,
}

/// Profitable positions in `market` on `side` (sign of qty), in row order (unranked: see
/// [`rank`]), in `scratch`'s buffer. `cache` must be [`RankCache::at`] the context's prices.
/// The market's rows are scanned in parallel chunks, each chunk holding whole accounts (so
/// each caches the numbers it computes in its own accounts' slots); the list is the same for
/// any split.
pub fn counterparties<'s>(
    state: &State,
    ctx: &MarginContext<'_>,
    market: u32,
    side: f64,
    index: &MarketIndex,
    cache: &mut RankCache,
    scratch: &'s mut Scratch,
) -> &'s mut [Counterparty] {
    scan(state, ctx, (market, side), index, cache, scratch, SCAN_CHUNK)
}

/// [`counterparties`] in chunks of about `chunk` rows.
fn scan<'s>(
    state: &State,
    ctx: &MarginContext<'_>,
    (market, side): (u32, f64),
    index: &MarketIndex,
    cache: &mut RankCache,
    scratch: &'s mut Scratch,
    chunk: usize,
) -> &'s mut [Counterparty] {
    let u = ctx.universe;
    let k = market as usize;
    scratch.all.clear();
    // Options are not deleveraged: an option's premium is not a profit on a price.
    if k >= u.n_markets() || u.contract(k).is_option() {
        return &mut scratch.all;
    }
    let sp = ctx.prices.asset[u.markets.settle[k] as usize];
    let (contract, mark) = (u.contract(k), ctx.prices.mark[k]);
    let rows = index.rows(k, side);
    let account = |j: usize| index.account[rows[j] as usize] as usize;
    // Chunks of about `chunk` rows, cut between accounts (an account's rows are adjacent:
    // rows ascend, and so do their accounts).
    let mut bounds = vec![0];
    let chunk = chunk.max(1);
    let mut b = chunk;
    while b < rows.len() {
        while b < rows.len() && account(b) == account(b - 1) {
            b += 1;
        }
        if b < rows.len() {
            bounds.push(b);
        }
        b += chunk;
    }
    if !rows.is_empty() {
        bounds.push(rows.len());
    }
    let chunks = bounds.len() - 1;
    let accounts: Vec<Range<usize>> = bounds.windows(2).map(|w| account(w[0])..account(w[1] - 1) + 1).collect();
    let epoch = cache.epoch;
    let stamps = carve_ranges(&mut cache.stamp, accounts.iter().cloned());
    let values = carve_ranges(&mut cache.value, accounts.iter().cloned());
    scratch.found.resize_with(chunks.max(scratch.found.len()), Vec::new);
    scratch.found[..chunks].par_iter_mut().zip(stamps).zip(values).enumerate().for_each(
        |(c, ((found, stamp), value))| {
            found.clear();
            let a0 = accounts[c].start;
            for &p in &rows[bounds[c]..bounds[c + 1]] {
                let p = p as usize;
                let qty = state.pos_qty[p];
                if qty * side <= 0.0 {
                    continue;
                }
                // The position's uPnL (USD), as position_stake has it for a perp or future.
                let upnl = contract.pnl(qty, state.pos_entry[p], mark) * sp;
                if upnl <= 0.0 {
                    continue;
                }
                let a = index.account[p];
                let j = a as usize - a0;
                let (equity, notional) = if stamp[j] == epoch {
                    value[j]
                } else {
                    let v = rank_numbers(state, ctx, a as usize);
                    (stamp[j], value[j]) = (epoch, v);
                    v
                };
                let entry_notional = contract.notional_usd(qty, state.pos_entry[p], sp);
                let leverage = if equity > 0.0 { notional / equity } else { f64::INFINITY };
                let score = upnl / entry_notional * leverage;
                found.push(Counterparty { account: a, pos: p as u32, upnl, score });
            }
        },
    );
    // The chunks' lists joined in order, copied in parallel.
    let found = &scratch.found[..chunks];
    let total = found.iter().map(Vec::len).sum();
    scratch.all.reserve(total);
    let ranges = found.iter().scan(0, |at, f| {
        *at += f.len();
        Some(*at - f.len()..*at)
    });
    let parts = carve_ranges(&mut scratch.all.spare_capacity_mut()[..total], ranges);
    parts.into_par_iter().zip(found).for_each(|(dst, src)| {
        for (d, &x) in dst.iter_mut().zip(src) {
            d.write(x);
        }
    });
    // SAFETY: the parts tile the first `total` slots of the spare capacity, each written whole.
    unsafe { scratch.all.set_len(total) };
    &mut scratch.all
}

/// The ranking: best score first, ties by account id — the account's index in the state,
/// whose ids ascend with it ([`GroupedBook::accounts`](crate::book::GroupedBook)) —, then row
/// (a total order, so the result
/// does not depend on how the list was gathered or sorted).
fn ranked(x: &Counterparty, y: &Counterparty) -> std::cmp::Ordering {
    y.score.total_cmp(&x.score).then(x.account.cmp(&y.account)).then(x.pos.cmp(&y.pos))
}

/// Ranks `c` and returns how many of the best-ranked a deficit of `cover` USD reaches: the
/// shortest prefix whose uPnLs sum past `enough`, all of them when none does. Only about that
/// prefix is sorted ([`Sample::settle`]): the list is split around sampled counterparties
/// (one partition pass each, where a partial selection takes several), the part ranked first
/// before the rest, and a part is sorted whole (in parallel) once the sample says the running
/// sum needs all of it; so the prefix and its sum are those of a full sort summed in order.
/// The splits change only how the prefix is found, never what it is.
pub fn rank(c: &mut [Counterparty], enough: f64) -> usize {
    let sample = Sample::new(c);
    let mut sum = 0.0;
    sample.settle(c, 0..sample.sorted.len(), enough, &mut sum, None).unwrap_or(c.len())
}

/// Every `len / SAMPLE`-th counterparty of a list, sorted by the ranking: each stands for
/// `len / SAMPLE` of the list, so where their running sum of uPnLs passes a need says about
/// how far down the ranking the need reaches.
struct Sample {
    sorted: Vec<Counterparty>,
    /// How many of the list each stands for.
    scale: f64,
}

/// Counterparties a [`Sample`] holds.
const SAMPLE: usize = 2048;

/// Parts of a list [`Sample::settle`] sorts whole rather than splits.
const SMALL: usize = 4 * 1024;

impl Sample {
    fn new(c: &[Counterparty]) -> Sample {
        let n = c.len();
        let mut sorted: Vec<Counterparty> =
            if n > SMALL { (0..SAMPLE).map(|i| c[i * n / SAMPLE]).collect() } else { Vec::new() };
        sorted.sort_unstable_by(ranked);
        Sample { sorted, scale: n as f64 / SAMPLE as f64 }
    }

    /// Carries the running sum `sum` through `c` in ranking order until it passes `enough`;
    /// returns how many of `c` that took (sorted at its front), `None` when all of `c` did not
    /// (all of it sorted). `c` is a run of the ranking holding the sampled counterparties `s`;
    /// `passes`, when known, is the sum of `c`'s uPnLs, past what the running sum needs.
    fn settle(
        &self,
        c: &mut [Counterparty],
        s: Range<usize>,
        enough: f64,
        sum: &mut f64,
        passes: Option<f64>,
    ) -> Option<usize> {
        let need = enough - *sum;
        let Some(q) = (if c.len() <= SMALL { None } else { self.pivot(s.clone(), need, passes) }) else {
            c.par_sort_unstable_by(ranked);
            return carry(c, sum, enough);
        };
        let (m, front) = partition(c, &self.sorted[q]);
        let (head, tail) = c.split_at_mut(m);
        let reached = if front > need {
            self.settle(head, s.start..q, enough, sum, Some(front))
        } else {
            head.par_sort_unstable_by(ranked);
            carry(head, sum, enough)
        };
        reached.or_else(|| self.settle(tail, q + 1..s.end, enough, sum, None).map(|n| m + n))
    }

    /// The sampled counterparty (of `s`) to split a run at: about where the running sum passes
    /// `need` (the sampled ones standing for `passes` in all when it is known, else each for
    /// [`Sample::scale`]), plus a margin of `3√j + 8` sampled ones; within the first three
    /// quarters of `s` when the run is known to pass (so that the runs shrink). `None` when
    /// the sample says the whole run is needed or holds none.
    fn pivot(&self, s: Range<usize>, need: f64, passes: Option<f64>) -> Option<usize> {
        let sample = self.sorted.get(s.clone()).filter(|x| !x.is_empty())?;
        let scale = match passes {
            Some(t) => t / sample.iter().map(|x| x.upnl).sum::<f64>(),
            None => self.scale,
        };
        let mut acc = 0.0;
        let j = sample.iter().position(|x| {
            acc += x.upnl * scale;
            acc > need
        });
        let q = match (j, passes) {
            (None, None) => return None,
            (None, Some(_)) => sample.len() - 1,
            (Some(j), _) => j + 3 * (j + 1).isqrt() + 8,
        };
        let cap = if passes.is_some() { (sample.len() - 1) * 3 / 4 } else { sample.len() - 1 };
        Some(s.start + q.min(cap))
    }
}

/// Adds `c`'s uPnLs to `sum` in order until it passes `enough`: how many that took, if any.
fn carry(c: &[Counterparty], sum: &mut f64, enough: f64) -> Option<usize> {
    for (i, cp) in c.iter().enumerate() {
        *sum += cp.upnl;
        if *sum > enough {
            return Some(i + 1);
        }
    }
    None
}

/// Counterparties a partition pass hands to one task.
const PARTITION_BLOCK: usize = 16 * 1024;

/// Moves the counterparties ranked at or before `pivot` to the front of `c` (in no order);
/// returns their number and the sum of their uPnLs (in no set order: a guide only). A long
/// list is partitioned block by block in parallel, then the blocks' misplaced counterparties
/// (the back ones left of the split, the front ones right of it, as many of each) are
/// swapped pairwise, in parallel.
fn partition(c: &mut [Counterparty], pivot: &Counterparty) -> (usize, f64) {
    if c.len() <= 2 * PARTITION_BLOCK {
        return partition_block(c, pivot);
    }
    let blocks: Vec<(usize, f64)> = c.par_chunks_mut(PARTITION_BLOCK).map(|b| partition_block(b, pivot)).collect();
    let m: usize = blocks.iter().map(|b| b.0).sum();
    let sum = blocks.iter().map(|b| b.1).sum();
    // Each block's back part left of m and front part right of m, in order.
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for (i, &(f, _)) in blocks.iter().enumerate() {
        let (s, e) = (i * PARTITION_BLOCK, ((i + 1) * PARTITION_BLOCK).min(c.len()));
        if s + f < e.min(m) {
            left.push(s + f..e.min(m));
        }
        if s.max(m) < s + f {
            right.push(s.max(m) - m..s + f - m);
        }
    }
    // Pair them in order, in pieces of at most a block.
    let (mut pairs_l, mut pairs_r) = (Vec::new(), Vec::new());
    let (mut l, mut r) = (left.into_iter().peekable(), right.into_iter().peekable());
    while let (Some(a), Some(b)) = (l.peek_mut(), r.peek_mut()) {
        let n = (a.end - a.start).min(b.end - b.start).min(PARTITION_BLOCK);
        pairs_l.push(a.start..a.start + n);
        pairs_r.push(b.start..b.start + n);
        a.start += n;
        b.start += n;
        if a.start == a.end {
            l.next();
        }
        if b.start == b.end {
            r.next();
        }
    }
    let (front, back) = c.split_at_mut(m);
    let (front, back) = (carve_ranges(front, pairs_l.into_iter()), carve_ranges(back, pairs_r.into_iter()));
    front.into_par_iter().zip(back).for_each(|(x, y)| x.swap_with_slice(y));
    (m, sum)
}

/// [`partition`] in one pass on the calling thread.
fn partition_block(c: &mut [Counterparty], pivot: &Counterparty) -> (usize, f64) {
    let (mut m, mut sum) = (0, 0.0);
    for i in 0..c.len() {
        if ranked(&c[i], pivot) != std::cmp::Ordering::Greater {
            sum += c[i].upnl;
            c.swap(i, m);
            m += 1;
        }
    }
    (m, sum)
}

/// Moves `minor` units of `asset` from the external counterparty to the insurance fund.
pub fn to_fund_from_external(pools: &mut Pools, asset: usize, minor: i128) {
    pools.external[asset] -= minor;
    pools.insurance[asset] += minor;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{group, BalanceInput, PositionInput};
    use crate::cascade::policy::{cross_equity, cross_equity_with_into, positions_notional};
    use crate::cascade::screen::Gathered;
    use crate::margin::{position_stake, PreparedLookup, Prices, Remap};
    use crate::universe::fixtures::{asset, option, perp};
    use crate::universe::{MarketSpec, Universe};
    use proptest::prelude::*;

    /// Uniform numbers in [0, 1) from `seed` (xorshift64).
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut x = seed | 1;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn counterparty(i: usize, id: i64, upnl: f64, score: f64) -> Counterparty {
        Counterparty { account: id as u32, pos: i as u32, upnl, score }
    }

    /// [`rank`]'s prefix of `c` and its length are the full sort's.
    fn ranks_as_the_full_sort(mut c: Vec<Counterparty>, cover: f64) -> Result<(), TestCaseError> {
        let mut full = c.clone();
        full.sort_by(ranked);
        let mut sum = 0.0;
        let want = full
            .iter()
            .position(|x| {
                sum += x.upnl;
                sum > cover
            })
            .map_or(full.len(), |i| i + 1);
        let n = rank(&mut c, cover);
        prop_assert_eq!(n, want);
        let key = |x: &Counterparty| (x.score.to_bits(), x.account, x.pos);
        prop_assert_eq!(c[..n].iter().map(key).collect::<Vec<_>>(), full[..n].iter().map(key).collect::<Vec<_>>());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The ranked prefix is the full sort's, and as long: blocks change how it is found only.
        #[test]
        fn the_ranked_prefix_is_the_full_sorts(
            rows in prop::collection::vec((0i64..50, 0.01f64..10.0, 0u8..20), 0..3000),
            cover in prop::sample::select(vec![0.0, 1.0, 50.0, 800.0, 5e3, 1e9, f64::INFINITY]),
        ) {
            // Few distinct scores and ids: ties are broken by id, then row.
            let c: Vec<Counterparty> =
                rows.iter().enumerate().map(|(i, &(id, u, s))| counterparty(i, id, u, f64::from(s) * 0.5)).collect();
            ranks_as_the_full_sort(c, cover)?;
        }

        /// Lists long enough for [`Sample`]: its blocks, short of the prefix or past it
        /// (heavy-tailed uPnLs throw the sample off), change nothing.
        #[test]
        fn the_sampled_blocks_change_nothing(
            seed in any::<u64>(),
            n in 8_193usize..80_000,
            heavy in prop::bool::ANY,
            share in prop::sample::select(vec![0.0, 1e-5, 1e-3, 0.05, 0.5, 0.999, 2.0]),
        ) {
            // A list from the seed, few distinct scores (ties by id, then row).
            let mut next = uniform(seed);
            let c: Vec<Counterparty> = (0..n)
                .map(|i| {
                    let u = if heavy { (next() * 14.0).exp() } else { 0.5 + next() };
                    counterparty(i, (i % 97) as i64, u, (next() * 64.0).floor() * 0.25)
                })
                .collect();
            let cover = c.iter().map(|x| x.upnl).sum::<f64>() * share;
            ranks_as_the_full_sort(c, cover)?;
        }

        /// A partition puts exactly the counterparties ranked at or before the pivot in front
        /// and keeps every one: short lists in one pass, long ones block by block (lists
        /// around the blocks' sizes, pivots from the first to past the last).
        #[test]
        fn a_partition_splits_at_the_pivot(
            seed in any::<u64>(),
            n in prop::sample::select(vec![0usize, 1, 5, 2 * PARTITION_BLOCK, 2 * PARTITION_BLOCK + 1, 70_001, 100_000]),
            at in 0.0f64..1.0,
        ) {
            let mut next = uniform(seed);
            let mut c: Vec<Counterparty> =
                (0..n).map(|i| counterparty(i, (i % 89) as i64, 0.5 + next(), (next() * 32.0).floor())).collect();
            let mut sorted = c.clone();
            sorted.sort_by(ranked);
            let pivot = sorted.get((at * n as f64) as usize).copied().unwrap_or(counterparty(0, 0, 1.0, -1.0));
            let (m, _) = partition(&mut c, &pivot);
            let before = sorted.iter().filter(|x| ranked(x, &pivot) != std::cmp::Ordering::Greater).count();
            prop_assert_eq!(m, before);
            prop_assert!(c[..m].iter().all(|x| ranked(x, &pivot) != std::cmp::Ordering::Greater));
            prop_assert!(c[m..].iter().all(|x| ranked(x, &pivot) == std::cmp::Ordering::Greater));
            c.sort_by(ranked);
            let key = |x: &Counterparty| (x.score.to_bits(), x.account, x.pos, x.upnl.to_bits());
            prop_assert_eq!(c.iter().map(key).collect::<Vec<_>>(), sorted.iter().map(key).collect::<Vec<_>>());
        }

        /// The ranking's numbers are the margin kernel's: cross equity as `cross_equity`
        /// computes it (the whole evaluation) and Σ `position_stake` notionals, bit for bit.
        #[test]
        fn rank_numbers_are_the_kernels(
            bal in prop::collection::vec((0u32..3, -50.0f64..500.0), 0..6),
            pos in prop::collection::vec((0u32..4, -20.0f64..20.0, 50.0f64..150.0, prop::bool::ANY), 1..5),
            marks in (60.0f64..140.0, 5.0f64..15.0, 60.0f64..140.0, 1.0f64..30.0),
            btc in 50.0f64..150.0,
        ) {
            let u = Universe::new(
                &[asset("USDT", 1.0), asset("BTC", 100.0), asset("ETH", 10.0)],
                &[
                    perp("BTCUSDT", "USDT", "BTC", 100.0, &[(1e3, 0.1, 0.05), (f64::INFINITY, 0.2, 0.1)]),
                    perp("ETHUSDT", "USDT", "ETH", 10.0, &[(f64::INFINITY, 0.1, 0.05)]),
                    // Inverse: cs USD per contract, settled in BTC.
                    MarketSpec { inverse: true, contract_size: 100.0, ..perp("BTCUSD", "BTC", "BTC", 100.0, &[(f64::INFINITY, 0.1, 0.05)]) },
                    option("BTC-C-100", "USDT", "BTC", true, 100.0, 8.0),
                ],
            )
            .unwrap();
            let mut seen = std::collections::HashSet::new();
            let pos: Vec<_> = pos.into_iter().filter(|p| seen.insert(p.0)).collect();
            let acc = |n: usize| vec![1i64; n];
            let (bc, bq): (Vec<u32>, Vec<f64>) = bal.iter().copied().unzip();
            let pc: Vec<u32> = pos.iter().map(|p| p.0).collect();
            let pq: Vec<f64> = pos.iter().map(|p| p.1).collect();
            let pe: Vec<f64> = pos.iter().map(|p| p.2).collect();
            let pi: Vec<f64> = pos.iter().map(|p| if p.3 { p.1.abs() * p.2 * 0.05 } else { 0.0 }).collect();
            let book = group(
                BalanceInput { account: &acc(bc.len()), code: &bc, qty: &bq },
                PositionInput { account: &acc(pc.len()), code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pi },
                3,
                4,
            )
            .unwrap();
            let state = State::new(&book, &u, &[0, 1, 2], &[0, 1, 2, 3]);
            let (ai, mi) = ([0u32, 1, 2], [0u32, 1, 2, 3]);
            let (assets, mk) = (vec![1.0, btc, 10.0], vec![marks.0, marks.1, marks.2, marks.3]);
            let ctx = MarginContext {
                universe: &u,
                prices: Prices { asset: &assets, mark: &mk },
                remap: Remap { asset: &ai, market: &mi },
            };
            let (equity, _) = cross_equity(&state, 0, &ctx);
            let notional: f64 = (state.pos_offsets[0]..state.pos_offsets[1])
                .map(|q| position_stake(&ctx, state.pos_market[q] as usize, state.pos_qty[q], state.pos_entry[q]).notional)
                .sum();
            let (e, n) = rank_numbers(&state, &ctx, 0);
            prop_assert_eq!(e.to_bits(), equity.to_bits());
            prop_assert_eq!(n.to_bits(), notional.to_bits());
            // The selection's pair: gathered from the evaluation it makes anyway.
            let mut g = Gathered::default();
            let (e, _) = cross_equity_with_into(&state, 0, &ctx, &PreparedLookup::new(&ctx), &mut g);
            prop_assert_eq!(e.to_bits(), equity.to_bits());
            prop_assert_eq!(g.notional.to_bits(), notional.to_bits());
            prop_assert_eq!(positions_notional(state.account(0), &ctx).to_bits(), notional.to_bits());
        }

        /// A scan lists what every row of the market gives, row by row (the side lists, the
        /// ranking cache, the chunks change nothing), and caches each account's numbers it
        /// reads: linear and inverse, entries equal to the mark, closes to 0 after the index
        /// was built, settle prices of 0 and +inf, chunks of a row up to all of them.
        #[test]
        fn a_scan_lists_every_profitable_row(
            chunk in prop::sample::select(vec![1usize, 2, 7, SCAN_CHUNK]),
            rows in prop::collection::vec((0u32..6, 0u32..2, -5i32..6, 0usize..5, 0u8..4), 1..400),
            marks in (prop::sample::select(vec![90.0, 100.0, 100.5]), prop::sample::select(vec![95.0, 100.0, 104.0])),
            btc in prop::sample::select(vec![1.0, 100.0, 0.0, f64::INFINITY]),
            closed in prop::collection::vec(any::<bool>(), 400),
        ) {
            let u = Universe::new(
                &[asset("USDT", 1.0), asset("BTC", 100.0)],
                &[
                    perp("BTCUSDT", "USDT", "BTC", 100.0, &[(1e3, 0.1, 0.05), (f64::INFINITY, 0.2, 0.1)]),
                    MarketSpec { inverse: true, contract_size: 100.0, ..perp("BTCUSD", "BTC", "BTC", 100.0, &[(f64::INFINITY, 0.1, 0.05)]) },
                ],
            )
            .unwrap();
            // Entries from a few levels around the marks, equal to them among others.
            let levels = [90.0, 95.0, 100.0, 100.5, 104.0];
            let mut seen = std::collections::HashSet::new();
            let mut rows: Vec<_> = rows.into_iter().filter(|r| r.2 != 0 && seen.insert((r.0, r.1))).collect();
            rows.sort_by_key(|r| (r.0, r.1));
            let pa: Vec<i64> = rows.iter().map(|r| i64::from(r.0)).collect();
            let pc: Vec<u32> = rows.iter().map(|r| r.1).collect();
            let pq: Vec<f64> = rows.iter().map(|r| f64::from(r.2) * 0.5).collect();
            let pe: Vec<f64> = rows.iter().map(|r| levels[r.3]).collect();
            let pi = vec![0.0; rows.len()];
            let ba: Vec<i64> = (0..6).collect();
            let book = group(
                BalanceInput { account: &ba, code: &[0; 6], qty: &[1e3; 6] },
                PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pi },
                2,
                2,
            )
            .unwrap();
            let mut state = State::new(&book, &u, &[0, 1], &[0, 1]);
            let index = MarketIndex::new(&state, 2);
            for (p, &c) in closed.iter().enumerate().take(state.pos_qty.len()) {
                if c && p % 3 == 0 {
                    state.pos_qty[p] = 0.0;
                }
            }
            let (ai, mi) = ([0u32, 1], [0u32, 1]);
            let (assets, mk) = (vec![1.0, btc], vec![marks.0, marks.1]);
            let ctx = MarginContext {
                universe: &u,
                prices: Prices { asset: &assets, mark: &mk },
                remap: Remap { asset: &ai, market: &mi },
            };
            for k in 0..2u32 {
                for side in [1.0, -1.0] {
                    let (mut cache, mut scratch) = (RankCache::default(), Scratch::default());
                    cache.at(state.n_accounts(), &assets, &mk);
                    let got: Vec<_> = scan(&state, &ctx, (k, side), &index, &mut cache, &mut scratch, chunk)
                        .iter()
                        .map(|c| (c.account, c.pos, c.upnl.to_bits(), c.score.to_bits()))
                        .collect();
                    let contract = u.contract(k as usize);
                    let (mark, sp) = (mk[k as usize], assets[u.markets.settle[k as usize] as usize]);
                    let want: Vec<_> = (0..state.pos_qty.len())
                        .filter(|&p| state.pos_market[p] == k && state.pos_qty[p] * side > 0.0)
                        .filter_map(|p| {
                            let (qty, entry) = (state.pos_qty[p], state.pos_entry[p]);
                            let upnl = contract.pnl(qty, entry, mark) * sp;
                            if upnl <= 0.0 {
                                return None;
                            }
                            let a = (0..state.n_accounts()).find(|&a| state.pos_offsets[a + 1] > p).unwrap();
                            let (equity, notional) = rank_numbers(&state, &ctx, a);
                            let leverage = if equity > 0.0 { notional / equity } else { f64::INFINITY };
                            let score = upnl / contract.notional_usd(qty, entry, sp) * leverage;
                            Some((a as u32, p as u32, upnl.to_bits(), score.to_bits()))
                        })
                        .collect();
                    prop_assert_eq!(&got, &want);
                    for &(a, ..) in &got {
                        let (e, n) = rank_numbers(&state, &ctx, a as usize);
                        prop_assert_eq!(cache.stamp[a as usize], cache.epoch);
                        let (ce, cn) = cache.value[a as usize];
                        prop_assert_eq!((ce.to_bits(), cn.to_bits()), (e.to_bits(), n.to_bits()));
                    }
                }
            }
        }
    }
}
