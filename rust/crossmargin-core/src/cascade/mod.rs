//! Liquidation cascades (docs/MODEL.md "Liquidation cascades"): a shock moves prices, accounts fall below maintenance,
//! their liquidation flow fills against thin liquidity and pushes the marks further, which
//! drags the next accounts under. Round mode: evaluate everyone at the round's marks (in
//! parallel), order the liquidatable by priority, aggregate their orders per market, fill each
//! market's net flow once, settle fills in priority order, cover bad debt (insurance fund, then
//! ADL or socialised loss), move the marks, repeat. Event mode is round mode with one account
//! per round. Every amount of money moves through the integer ledger ([`ledger`]).

pub mod adl;
pub mod impact;
pub mod ledger;
pub mod policy;
pub mod state;
pub mod step;

use rayon::prelude::*;

use crate::book::GroupedBook;
use crate::error::{CoreError, Result};
use crate::margin::{position_stake, MarginContext, PreparedLookup, Prices, Remap};
use crate::money::{allocate, Minor};
use crate::universe::Universe;
use adl::{counterparties, to_fund_from_external, Deleverage};
use impact::{Execution, Liquidity};
use ledger::{to_minor, Pools};
use policy::{cross_equity, Candidate, EventKind, Order, Slicing};
use state::State;

#[derive(Debug, Clone)]
pub struct CascadeConfig {
    /// Asset prices per path step (a shock is a one-step path).
    pub step_asset_prices: Vec<Vec<f64>>,
    /// Marks per path step, before liquidation impact.
    pub step_marks: Vec<Vec<f64>>,
    /// One liquidity model per market.
    pub liquidity: Vec<Liquidity>,
    /// Fraction of the impact displacement that fades each round (book replenishment).
    pub decay: f64,
    /// Liquidation fee rate on closed notional, paid to the insurance fund.
    pub liquidation_fee: f64,
    /// How much a liquidation closes.
    pub slicing: Slicing,
    pub max_rounds: usize,
    /// Accounts liquidated per round at most; 0 = all (round mode), 1 = event mode.
    pub max_liquidations_per_round: usize,
    pub deleverage: Deleverage,
    /// Insurance fund per asset (units of the asset).
    pub insurance_fund: Vec<f64>,
}

/// The event log, as columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Events {
    pub round: Vec<u32>,
    pub step: Vec<u32>,
    pub account: Vec<i64>,
    /// Market index, −1 for an account-level event (bankruptcy settlement).
    pub market: Vec<i32>,
    /// Signed quantity closed (contracts): negative sells a long.
    pub qty: Vec<f64>,
    pub price: Vec<f64>,
    pub notional_usd: Vec<f64>,
    pub fee_usd: Vec<f64>,
    pub bad_debt_usd: Vec<f64>,
    pub kind: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    market: i32,
    qty: f64,
    price: f64,
    notional_usd: f64,
    fee_usd: f64,
    bad_debt_usd: f64,
    kind: EventKind,
}

impl Events {
    fn push(&mut self, round: u32, step: u32, account: i64, e: Event) {
        self.round.push(round);
        self.step.push(step);
        self.account.push(account);
        self.market.push(e.market);
        self.qty.push(e.qty);
        self.price.push(e.price);
        self.notional_usd.push(e.notional_usd);
        self.fee_usd.push(e.fee_usd);
        self.bad_debt_usd.push(e.bad_debt_usd);
        self.kind.push(e.kind as u8);
    }

    pub fn len(&self) -> usize {
        self.round.len()
    }

    pub fn is_empty(&self) -> bool {
        self.round.is_empty()
    }
}

/// One row per round that acted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rounds {
    pub round: Vec<u32>,
    pub step: Vec<u32>,
    pub accounts_liquidated: Vec<u32>,
    pub liquidated_notional_usd: Vec<f64>,
    pub fees_usd: Vec<f64>,
    pub bad_debt_usd: Vec<f64>,
    pub cumulative_bad_debt_usd: Vec<f64>,
    pub insurance_fund_usd: Vec<f64>,
    /// The marks the round evaluated at, row-major (rounds × markets).
    pub marks: Vec<f64>,
}

#[derive(Debug, Clone)]
pub struct CascadeOutput {
    pub events: Events,
    pub rounds: Rounds,
    pub state: State,
    pub pools: Pools,
    pub totals_before: Vec<i128>,
    pub totals_after: Vec<i128>,
    pub final_asset_prices: Vec<f64>,
    pub final_marks: Vec<f64>,
    pub bad_debt_usd: f64,
    pub fees_usd: f64,
    /// The path steps that `max_rounds` (a per-step limit) cut short with accounts still
    /// liquidatable; empty when every step ran to its end.
    pub truncated_steps: Vec<u32>,
}

fn check(cfg: &CascadeConfig, u: &Universe) -> Result<()> {
    let (na, nm) = (u.n_assets(), u.n_markets());
    let steps = cfg.step_marks.len();
    if steps == 0 || cfg.step_asset_prices.len() != steps {
        return Err(CoreError::config("cascade.path", "needs one or more steps of asset prices and marks"));
    }
    for (t, (a, m)) in cfg.step_asset_prices.iter().zip(&cfg.step_marks).enumerate() {
        if a.len() != na || m.len() != nm {
            return Err(CoreError::config(format!("cascade.path[{t}]"), "price vectors do not match the universe"));
        }
        if let Some(i) = a.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
            return Err(CoreError::price(
                format!("cascade.path[{t}].{}", u.assets.symbol[i]),
                "must be finite and ≥ 0",
            ));
        }
        if let Some(k) = m.iter().position(|x| !(x.is_finite() && *x > 0.0)) {
            return Err(CoreError::price(
                format!("cascade.path[{t}].{}", u.markets.symbol[k]),
                "must be finite and > 0",
            ));
        }
    }
    if cfg.liquidity.len() != nm {
        return Err(CoreError::config("cascade.liquidity", format!("{} models for {nm} markets", cfg.liquidity.len())));
    }
    for (k, l) in cfg.liquidity.iter().enumerate() {
        l.validate(&format!("cascade.liquidity[{}]", u.markets.symbol[k]))?;
    }
    let unit = |name: &str, x: f64, lo_open: bool| -> Result<()> {
        let ok = x.is_finite() && x <= 1.0 && if lo_open { x > 0.0 } else { x >= 0.0 };
        if ok {
            Ok(())
        } else {
            Err(CoreError::config(
                format!("cascade.{name}"),
                format!("{x} must be in {}0, 1]", if lo_open { "(" } else { "[" }),
            ))
        }
    };
    unit("decay", cfg.decay, false)?;
    unit("liquidation_fee", cfg.liquidation_fee, false)?;
    unit("partial_fraction", cfg.slicing.fraction, true)?;
    if !(cfg.slicing.target_ratio.is_finite() && cfg.slicing.target_ratio >= 0.0 && cfg.slicing.target_ratio < 1.0) {
        return Err(CoreError::config(
            "cascade.target_margin_ratio",
            format!("{} must be in [0, 1) (0: off)", cfg.slicing.target_ratio),
        ));
    }
    if !(cfg.slicing.min_notional.is_finite() && cfg.slicing.min_notional >= 0.0) {
        return Err(CoreError::config(
            "cascade.min_notional",
            format!("{} must be finite and ≥ 0", cfg.slicing.min_notional),
        ));
    }
    if cfg.insurance_fund.len() != na || cfg.insurance_fund.iter().any(|x| !x.is_finite()) {
        return Err(CoreError::config("cascade.insurance_fund", "needs one finite amount per asset"));
    }
    if let Some(a) = cfg.insurance_fund.iter().position(|x| x.abs() > crate::limits::MAX_AMOUNT) {
        return Err(CoreError::config(
            format!("cascade.insurance_fund[{}]", u.assets.symbol[a]),
            format!("{} is beyond ±1e28 units (the ledger's range)", cfg.insurance_fund[a]),
        ));
    }
    // A negative fund would be bad debt before anything happens (and deleverage healthy
    // accounts in round one).
    if let Some(a) = cfg.insurance_fund.iter().position(|&x| x < 0.0) {
        return Err(CoreError::config(
            format!("cascade.insurance_fund[{}]", u.assets.symbol[a]),
            format!("{} must be ≥ 0", cfg.insurance_fund[a]),
        ));
    }
    Ok(())
}

/// Every position's value, at its entry and at the path's marks with 100× headroom for the
/// marks' moves, fits the ledger (crate::limits::MAX_AMOUNT units of its settle asset): the
/// P&L a fill realises is then an amount the ledger holds.
fn check_position_sizes(book: &GroupedBook, u: &Universe, state: &State, cfg: &CascadeConfig) -> Result<()> {
    let limit = crate::limits::MAX_AMOUNT / 100.0;
    for p in 0..state.pos_qty.len() {
        let k = state.pos_market[p] as usize;
        let (c, qty, entry) = (u.contract(k), state.pos_qty[p], state.pos_entry[p]);
        let at_entry = if entry > 0.0 { c.notional(qty, entry) } else { 0.0 };
        let worst = cfg.step_marks.iter().map(|m| c.notional(qty, m[k])).fold(at_entry, f64::max);
        if worst.is_nan() || worst > limit {
            return Err(CoreError::book(
                crate::error::Table::Positions,
                book.positions.row[p] as usize,
                "qty",
                format!(
                    "a position worth {worst:e} settle units is beyond what the cascade's ledger holds ({limit:e})"
                ),
            ));
        }
    }
    Ok(())
}

/// The remaps cover the book's codes and point into the universe.
fn check_remap(book: &GroupedBook, u: &Universe, asset_remap: &[u32], market_remap: &[u32]) -> Result<()> {
    let tables = [
        ("asset", asset_remap, book.n_asset_codes, u.n_assets()),
        ("market", market_remap, book.n_market_codes, u.n_markets()),
    ];
    for (what, remap, n_codes, n) in tables {
        if remap.len() != n_codes as usize || remap.iter().any(|&i| i as usize >= n) {
            return Err(CoreError::config(
                format!("{what} remap"),
                format!("must map {n_codes} book codes into 0..{n}"),
            ));
        }
    }
    Ok(())
}

/// Runs a cascade on `book` (codes mapped to the universe by the remaps).
pub fn run(
    u: &Universe,
    book: &GroupedBook,
    asset_remap: &[u32],
    market_remap: &[u32],
    cfg: &CascadeConfig,
) -> Result<CascadeOutput> {
    check(cfg, u)?;
    let (na, nm) = (u.n_assets(), u.n_markets());
    check_remap(book, u, asset_remap, market_remap)?;
    let mut state = State::new(book, u, asset_remap, market_remap);
    let mut pools = Pools::new(cfg.insurance_fund.iter().map(|&x| to_minor(x)).collect());
    if let Some(a) = ledger::over_capacity(na, &state.bal_asset, &state.bal_minor, &state.isolated_holdings(u), &pools)
    {
        return Err(CoreError::price(
            format!("cascade.holdings[{}]", u.assets.symbol[a]),
            "Σ |balances + isolated margins + insurance fund| exceeds the ledger's range (1e28 units)",
        ));
    }
    check_position_sizes(book, u, &state, cfg)?;
    let totals_before = ledger::totals(na, &state.bal_asset, &state.bal_minor, &state.isolated_holdings(u), &pools);
    let identity_a: Vec<u32> = (0..na as u32).collect();
    let identity_m: Vec<u32> = (0..nm as u32).collect();
    let remap = Remap { asset: &identity_a, market: &identity_m };

    // Each mark is its step's mark × factor; liquidation flow moves the factor.
    let mut factor = vec![1.0f64; nm];
    let mut step = 0usize;
    let mut round = 0usize;
    let mut step_round = 0usize;
    let mut events = Events::default();
    let mut rounds = Rounds::default();
    let (mut bad_debt, mut fees) = (0.0f64, 0.0f64);
    let mut truncated_steps: Vec<u32> = Vec::new();
    let mut marks: Vec<f64>;

    loop {
        let assets = &cfg.step_asset_prices[step];
        marks = (0..nm).map(|k| cfg.step_marks[step][k] * factor[k]).collect();
        let ctx = MarginContext { universe: u, prices: Prices { asset: assets, mark: &marks }, remap };
        let lookup = PreparedLookup::new(&ctx);
        let mut cands: Vec<Candidate> = (0..state.n_accounts())
            .into_par_iter()
            .filter_map(|a| policy::select(&state, a, &ctx, &lookup, &cfg.slicing))
            .collect();
        // `max_rounds` bounds each step: a step cut short is recorded and the path goes on.
        let cut = !cands.is_empty() && step_round >= cfg.max_rounds;
        if cut {
            truncated_steps.push(step as u32);
        }
        if cands.is_empty() || cut {
            if step + 1 < cfg.step_marks.len() {
                step += 1;
                step_round = 0;
                continue;
            }
            break;
        }
        policy::sort_by_priority(&mut cands, &state.accounts);
        if cfg.max_liquidations_per_round > 0 {
            cands.truncate(cfg.max_liquidations_per_round);
        }

        // One net flow per market, filled once.
        let mut flow = vec![0.0f64; nm];
        for c in &cands {
            for o in &c.orders {
                let (k, f) = order_flow(u, &state, o.pos, o.fraction, assets, &marks);
                flow[k as usize] += f;
            }
        }
        let exec: Vec<Execution> = (0..nm).map(|k| cfg.liquidity[k].execute(marks[k], flow[k])).collect();

        let mut r = RoundTally::default();
        let mut pieces: Vec<Piece> = Vec::new();
        for c in &cands {
            let (settled, caused) =
                settle_candidate(&mut state, &mut pools, &ctx, cfg.liquidation_fee, c, |k| exec[k].price);
            for e in settled {
                r.add(&e);
                events.push(round as u32, step as u32, state.accounts[c.account], e);
            }
            pieces.extend(caused);
        }

        // The fund covers bad debt; past zero, deleverage the other side.
        let fund = fund_usd(&pools, assets);
        if fund < 0.0 && cfg.deleverage != Deleverage::None {
            for (k, side, amount) in deficits(&pieces, -fund) {
                for (acct, e) in deleverage(&mut state, &mut pools, &ctx, cfg.deleverage, k, side, amount) {
                    events.push(round as u32, step as u32, state.accounts[acct], e);
                }
            }
        }

        bad_debt += r.bad_debt;
        fees += r.fees;
        rounds.round.push(round as u32);
        rounds.step.push(step as u32);
        rounds.accounts_liquidated.push(cands.len() as u32);
        rounds.liquidated_notional_usd.push(r.notional);
        rounds.fees_usd.push(r.fees);
        rounds.bad_debt_usd.push(r.bad_debt);
        rounds.cumulative_bad_debt_usd.push(bad_debt);
        rounds.insurance_fund_usd.push(fund_usd(&pools, assets));
        rounds.marks.extend_from_slice(&marks);

        // The mark moves to where this round's flow left it, then part of the move fades; a
        // mark never falls below 1e-12 of its step's price (each walk is capped at 99%).
        for (f, e) in factor.iter_mut().zip(&exec) {
            let walked = *f * (1.0 + e.displacement);
            *f = (walked + (1.0 - walked) * cfg.decay).max(MIN_FACTOR);
        }
        round += 1;
        step_round += 1;
    }

    let totals_after = ledger::totals(na, &state.bal_asset, &state.bal_minor, &state.isolated_holdings(u), &pools);
    Ok(CascadeOutput {
        events,
        rounds,
        state,
        pools,
        totals_before,
        totals_after,
        final_asset_prices: cfg.step_asset_prices[step].clone(),
        final_marks: marks,
        bad_debt_usd: bad_debt,
        fees_usd: fees,
        truncated_steps,
    })
}

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
    fn add(&mut self, e: &Event) {
        self.notional += e.notional_usd;
        self.fees += e.fee_usd;
        self.bad_debt += e.bad_debt_usd;
    }
}

/// The signed USD flow an order adds to its market's net flow: (market, flow). An option
/// trades at its premium; an inverse contract's notional is cs/mark coins.
fn order_flow(u: &Universe, state: &State, pos: usize, fraction: f64, assets: &[f64], marks: &[f64]) -> (u32, f64) {
    let k = state.pos_market[pos] as usize;
    let x = -state.pos_qty[pos] * fraction;
    let h = &u.market_hot[k];
    (k as u32, h.contract.value_usd(x, marks[k], assets[h.settle as usize]))
}

/// Settles one account: its orders at their markets' fill prices, then, when its pool is left
/// with no cross position and negative equity, the fund takes over its balances (assets and
/// debts alike) and the deficit is bad debt, attributed to the markets it closed this round pro
/// rata to closed notional. Returns the events and the (market, side, USD) bad-debt pieces.
fn settle_candidate(
    state: &mut State,
    pools: &mut Pools,
    ctx: &MarginContext<'_>,
    fee_rate: f64,
    c: &Candidate,
    fill_price: impl Fn(usize) -> f64,
) -> (Vec<Event>, Vec<Piece>) {
    let a = c.account;
    let (mut events, mut pieces, mut closed) = (Vec::new(), Vec::<Piece>::new(), Vec::<Piece>::new());
    for o in &c.orders {
        let price = fill_price(state.pos_market[o.pos] as usize);
        let mut fill = Fill { state: &mut *state, pools: &mut *pools, ctx, fee_rate };
        for (e, piece) in fill.close(a, *o, price) {
            if e.kind != EventKind::Isolated && e.market >= 0 && e.bad_debt_usd == 0.0 {
                closed.push((e.market as u32, -e.qty.signum(), e.notional_usd));
            }
            pieces.extend(piece);
            events.push(e);
        }
    }
    let (eq, _) = cross_equity(state, a, ctx);
    let open_cross =
        (state.pos_offsets[a]..state.pos_offsets[a + 1]).any(|p| !state.pos_isolated[p] && state.pos_qty[p] != 0.0);
    if !open_cross && eq < 0.0 {
        for b in state.bal_offsets[a]..state.bal_offsets[a + 1] {
            pools.insurance[state.bal_asset[b] as usize] += state.bal_minor[b];
            state.bal_minor[b] = 0;
        }
        state.refresh(a);
        events.push(Event {
            market: -1,
            qty: 0.0,
            price: 0.0,
            notional_usd: 0.0,
            fee_usd: 0.0,
            bad_debt_usd: -eq,
            kind: EventKind::Bankruptcy,
        });
        let total: f64 = closed.iter().map(|c| c.2).sum();
        if total > 0.0 {
            pieces.extend(closed.iter().map(|&(k, side, w)| (k, side, -eq * w / total)));
        }
    }
    (events, pieces)
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

/// Covers `amount` USD of deficit from market `k`'s profitable positions opposite to `side`
/// (the side of the bankrupt positions).
fn deleverage(
    state: &mut State,
    pools: &mut Pools,
    ctx: &MarginContext<'_>,
    how: Deleverage,
    k: u32,
    side: f64,
    amount: f64,
) -> Vec<(usize, Event)> {
    let u = ctx.universe;
    let ku = k as usize;
    let settle = u.markets.settle[ku] as usize;
    let sp = ctx.prices.asset[settle];
    let cps = counterparties(state, ctx, k, -side);
    let mut out = Vec::new();
    match how {
        Deleverage::None => {}
        Deleverage::Adl => {
            let mut remaining = amount;
            for cp in cps {
                if remaining <= 0.0 {
                    break;
                }
                let take = remaining.min(cp.upnl);
                let share = take / cp.upnl;
                let q = state.pos_qty[cp.pos];
                let x = if share >= 1.0 { -q } else { -q * share };
                let minor = Minor::saturating_from_usd(take, sp).0;
                to_fund_from_external(pools, settle, minor);
                state.pos_qty[cp.pos] = if share >= 1.0 { 0.0 } else { q + x };
                if state.pos_qty[cp.pos] == 0.0 && state.pos_isolated[cp.pos] {
                    release_isolated(state, cp.account, cp.pos, u);
                }
                state.refresh(cp.account);
                let notional = u.contract(ku).notional_usd(x, state.pos_entry[cp.pos], sp);
                let entry = state.pos_entry[cp.pos];
                out.push((
                    cp.account,
                    Event {
                        market: k as i32,
                        qty: x,
                        price: entry,
                        notional_usd: notional,
                        fee_usd: 0.0,
                        bad_debt_usd: Minor(minor).to_usd(sp),
                        kind: EventKind::Adl,
                    },
                ));
                remaining -= take;
            }
        }
        Deleverage::SocializedLoss => {
            let weights: Vec<f64> = cps.iter().map(|c| c.upnl).collect();
            let cover = amount.min(weights.iter().sum());
            // Weights are positive uPnLs, so the split cannot fail; an empty split changes nothing.
            let parts = allocate(Minor::saturating_from_usd(cover, sp), &weights).unwrap_or_default();
            for (cp, Minor(part)) in cps.iter().zip(parts) {
                if part == 0 {
                    continue;
                }
                let row = state.balance_row(cp.account, settle as u32);
                state.bal_minor[row] -= part;
                pools.insurance[settle] += part;
                state.refresh(cp.account);
                out.push((
                    cp.account,
                    Event {
                        market: k as i32,
                        qty: 0.0,
                        price: ctx.prices.mark[ku],
                        notional_usd: 0.0,
                        fee_usd: 0.0,
                        bad_debt_usd: Minor(part).to_usd(sp),
                        kind: EventKind::SocializedLoss,
                    },
                ));
            }
        }
    }
    out
}

/// A closed isolated position hands its remaining margin back to the wallet.
fn release_isolated(state: &mut State, a: usize, p: usize, u: &Universe) {
    let settle = u.markets.settle[state.pos_market[p] as usize];
    let row = state.balance_row(a, settle);
    state.bal_minor[row] += state.iso_minor[p];
    state.iso_minor[p] = 0;
    state.pos_isolated[p] = false;
}

/// Settles fills against the ledger.
struct Fill<'s, 'c> {
    state: &'s mut State,
    pools: &'s mut Pools,
    ctx: &'s MarginContext<'c>,
    fee_rate: f64,
}

impl Fill<'_, '_> {
    /// Closes `o.fraction` of position `o.pos` of account `a` at `price`: realised P&L from the
    /// external side, the fee to the fund (never more than the equity left), an isolated
    /// position's margin back to the wallet or its deficit to the fund. Returns the events, each
    /// with the (market, side, USD) bad-debt piece it caused.
    fn close(&mut self, a: usize, o: Order, price: f64) -> Vec<(Event, Option<Piece>)> {
        let u = self.ctx.universe;
        let s = &mut *self.state;
        let p = o.pos;
        let q = s.pos_qty[p];
        if q == 0.0 {
            return vec![];
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
        let mut out = Vec::new();
        let fee;
        if s.pos_isolated[p] {
            s.iso_minor[p] += realized;
            let rest = position_stake(self.ctx, k, s.pos_qty[p], entry).equity;
            let available = s.iso_minor[p] + Minor::saturating_from_usd(rest, sp).0;
            fee = nominal_fee.min(available.max(0));
            s.iso_minor[p] -= fee;
        } else {
            let row = s.balance_row(a, settle as u32);
            s.bal_minor[row] += realized;
            s.refresh(a);
            let (eq, _) = cross_equity(s, a, self.ctx);
            fee = nominal_fee.min(Minor::saturating_from_usd(eq.max(0.0), sp).0).max(0);
            s.bal_minor[row] -= fee;
        }
        self.pools.insurance[settle] += fee;
        s.refresh(a);
        let kind = if s.pos_isolated[p] { EventKind::Isolated } else { o.kind };
        out.push((
            Event {
                market: k as i32,
                qty: x,
                price,
                notional_usd: notional * sp,
                fee_usd: Minor(fee).to_usd(sp),
                bad_debt_usd: 0.0,
                kind,
            },
            None,
        ));
        if s.pos_isolated[p] {
            if s.pos_qty[p] == 0.0 {
                if s.iso_minor[p] < 0 {
                    // The isolated margin did not cover the loss: the fund does.
                    let deficit = -s.iso_minor[p];
                    self.pools.insurance[settle] -= deficit;
                    s.iso_minor[p] = 0;
                    s.pos_isolated[p] = false;
                    let usd = Minor(deficit).to_usd(sp);
                    out.push((
                        Event {
                            market: k as i32,
                            qty: 0.0,
                            price,
                            notional_usd: 0.0,
                            fee_usd: 0.0,
                            bad_debt_usd: usd,
                            kind: EventKind::Bankruptcy,
                        },
                        Some((k as u32, q.signum(), usd)),
                    ));
                } else {
                    release_isolated(s, a, p, u);
                }
                s.refresh(a);
            } else if s.iso_minor[p] <= 0 {
                // A slice used the margin up: the rest goes at the same price.
                out.extend(self.close(a, Order { pos: p, fraction: 1.0, kind: EventKind::Isolated }, price));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{group, BalanceInput, PositionInput};
    use crate::universe::fixtures::{asset, perp};
    use proptest::prelude::*;

    fn universe() -> Universe {
        Universe::new(&[asset("USDT", 1.0)], &[perp("BTCUSDT", "USDT", "BTC", 100.0, &[(f64::INFINITY, 0.1, 0.05)])])
            .unwrap()
    }

    fn book(cash: &[f64], qty: &[f64]) -> GroupedBook {
        let ids: Vec<i64> = (1..=cash.len() as i64).collect();
        let zeros = vec![0u32; cash.len()];
        let entry = vec![100.0; cash.len()];
        let iso = vec![0.0; cash.len()];
        group(
            BalanceInput { account: &ids, code: &zeros, qty: cash },
            PositionInput { account: &ids, code: &zeros, qty, entry_price: &entry, isolated_margin: &iso },
            1,
            1,
        )
        .unwrap()
    }

    fn config(shock_mark: f64, liquidity: Liquidity) -> CascadeConfig {
        CascadeConfig {
            step_asset_prices: vec![vec![1.0]],
            step_marks: vec![vec![shock_mark]],
            liquidity: vec![liquidity],
            decay: 0.0,
            liquidation_fee: 0.0,
            slicing: Slicing { fraction: 1.0, target_ratio: 0.0, min_notional: 0.0 },
            max_rounds: 100,
            max_liquidations_per_round: 0,
            deleverage: Deleverage::Adl,
            insurance_fund: vec![1000.0],
        }
    }

    #[test]
    fn each_liquidation_drags_the_next_account_under() {
        // Thresholds 94.74, 89.47, 84.21; the book walks 10% per 1,000 USD (tests/test_cascade.py
        // documents the numbers).
        let u = universe();
        let depth = Liquidity::Depth { distance: vec![0.1], cumulative: vec![1000.0] };
        let out = run(&u, &book(&[100.0, 150.0, 200.0], &[10.0; 3]), &[0], &[0], &config(94.0, depth)).unwrap();
        assert_eq!(out.rounds.accounts_liquidated, vec![1, 1, 1]);
        assert!((out.rounds.marks[1] - 85.164).abs() < 1e-9);
        assert_eq!(out.totals_before, out.totals_after);
        assert!((out.bad_debt_usd - out.events.bad_debt_usd.iter().sum::<f64>()).abs() < 1e-9);
    }

    #[test]
    fn a_mild_shock_on_a_safe_book_does_nothing() {
        let u = universe();
        let out = run(&u, &book(&[1000.0], &[1.0]), &[0], &[0], &config(95.0, Liquidity::None)).unwrap();
        assert!(out.events.is_empty() && out.rounds.round.is_empty());
        assert_eq!(out.totals_before, out.totals_after);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn the_ledger_balances_exactly(
            cash in prop::collection::vec(0.0f64..500.0, 1..20),
            side in prop::collection::vec(prop::bool::ANY, 20),
            mark in 50.0f64..150.0,
            fee in 0.0f64..0.02,
            fraction in 0.05f64..1.0,
        ) {
            let u = universe();
            let qty: Vec<f64> = cash.iter().zip(&side).map(|(_, &s)| if s { 10.0 } else { -10.0 }).collect();
            let mut cfg = config(mark, Liquidity::SqrtImpact { y: 1.0, sigma: 0.05, daily_volume: 1e5, permanent: 0.5 });
            cfg.liquidation_fee = fee;
            cfg.slicing.fraction = fraction;
            cfg.decay = 0.3;
            cfg.insurance_fund = vec![10.0];
            let b = book(&cash, &qty);
            let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| run(&u, &b, &[0], &[0], &cfg).unwrap());
            let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap().install(|| run(&u, &b, &[0], &[0], &cfg).unwrap());
            prop_assert_eq!(&one.totals_before, &one.totals_after);
            prop_assert_eq!(&one.events, &two.events);
        }
    }
}
