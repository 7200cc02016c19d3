//! Liquidation cascades (docs/MODEL.md "Liquidation cascades"): a shock moves prices, accounts
//! fall below maintenance, their liquidation flow fills against thin liquidity and pushes the
//! marks further, which drags the next accounts under. Round mode: evaluate everyone at the
//! round's marks (in parallel), order the liquidatable by priority, aggregate their orders per
//! market, fill each market's net flow once, settle fills in priority order, cover bad debt
//! (insurance fund, then ADL or socialised loss), move the marks, repeat. Event mode is round
//! mode with one account per round. Every amount of money moves through the integer ledger
//! ([`ledger`]).
//!
//! The round has one implementation, the shard/driver protocol of [`step`]; [`run`] is that
//! protocol with the whole book as one shard.

pub mod adl;
pub mod impact;
pub mod ledger;
pub mod phases;
pub mod policy;
pub mod screen;
pub mod state;
pub mod step;

use rayon::prelude::*;

use crate::book::GroupedBook;
use crate::error::{CoreError, Result};
use crate::universe::Universe;
use adl::Deleverage;
use impact::Liquidity;
use phases::{Phase, PhaseClock};
use policy::{EventKind, Slicing};
use state::State;
use step::{run_sharded_timed, Driver, DriverOutput, Shard};

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
    /// The position's side code (0 both, 1 long, 2 short: a hedge leg is liquidated as its own
    /// position), [`NO_SIDE`] for an account-level event.
    pub side: Vec<u8>,
    /// Signed quantity closed (contracts): negative sells a long.
    pub qty: Vec<f64>,
    pub price: Vec<f64>,
    pub notional_usd: Vec<f64>,
    pub fee_usd: Vec<f64>,
    pub bad_debt_usd: Vec<f64>,
    pub kind: Vec<u8>,
}

/// Events an [`Events::append`] copies column by column in parallel from (fewer: in order, on
/// the calling thread).
const APPEND_PAR: usize = 1 << 15;

/// The side code of an account-level event (no position).
pub const NO_SIDE: u8 = u8::MAX;

/// One event, before the driver gives it its round and step.
#[derive(Debug, Clone, Copy)]
struct Event {
    market: i32,
    side: u8,
    qty: f64,
    price: f64,
    notional_usd: f64,
    fee_usd: f64,
    bad_debt_usd: f64,
    kind: EventKind,
}

impl Events {
    /// `n` events, event `i` being `f(i)` (its account and event; round and step 0): what
    /// pushing them one by one in order gives, built column by column by parallel tasks (a
    /// large log's fresh pages are then faulted in by every thread, not one).
    fn collect_par(n: usize, f: impl Fn(usize) -> (i64, Event) + Sync) -> Events {
        fn col<T: Send>(n: usize, out: &mut Vec<T>, get: impl Fn(usize) -> T + Sync + Send) {
            (0..n).into_par_iter().map(get).collect_into_vec(out);
        }
        let mut e = Events { round: vec![0; n], step: vec![0; n], ..Events::default() };
        col(n, &mut e.account, |i| f(i).0);
        col(n, &mut e.market, |i| f(i).1.market);
        col(n, &mut e.side, |i| f(i).1.side);
        col(n, &mut e.qty, |i| f(i).1.qty);
        col(n, &mut e.price, |i| f(i).1.price);
        col(n, &mut e.notional_usd, |i| f(i).1.notional_usd);
        col(n, &mut e.fee_usd, |i| f(i).1.fee_usd);
        col(n, &mut e.bad_debt_usd, |i| f(i).1.bad_debt_usd);
        col(n, &mut e.kind, |i| f(i).1.kind as u8);
        e
    }

    fn push(&mut self, round: u32, step: u32, account: i64, e: Event) {
        self.round.push(round);
        self.step.push(step);
        self.account.push(account);
        self.market.push(e.market);
        self.side.push(e.side);
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

    /// Appends events `rows` of `from` (their round and step replaced by `round`, `step`)
    /// column by column: what pushing each one does, without a pass per event. A side column
    /// shorter than the others (a shard that sends none) reads as side 0. Errors on a kind
    /// code no [`EventKind`] has.
    fn append(&mut self, round: u32, step: u32, from: &Events, rows: std::ops::Range<usize>) -> Result<()> {
        if let Some(&bad) = from.kind[rows.clone()].iter().find(|&&k| EventKind::from_code(k).is_none()) {
            return Err(CoreError::config("cascade.shards", format!("event kind {bad} is not one of the core's")));
        }
        let (n, r) = (rows.len(), rows);
        let Events {
            round: ro,
            step: st,
            account,
            market,
            side,
            qty,
            price,
            notional_usd,
            fee_usd,
            bad_debt_usd,
            kind,
        } = self;
        let columns: [Box<dyn FnOnce() + Send + '_>; 11] = [
            Box::new(|| ro.extend(std::iter::repeat_n(round, n))),
            Box::new(|| st.extend(std::iter::repeat_n(step, n))),
            Box::new(|| account.extend_from_slice(&from.account[r.clone()])),
            Box::new(|| market.extend_from_slice(&from.market[r.clone()])),
            Box::new(|| match from.side.get(r.clone()) {
                Some(x) => side.extend_from_slice(x),
                None => side.extend(r.clone().map(|i| from.side.get(i).copied().unwrap_or(0))),
            }),
            Box::new(|| qty.extend_from_slice(&from.qty[r.clone()])),
            Box::new(|| price.extend_from_slice(&from.price[r.clone()])),
            Box::new(|| notional_usd.extend_from_slice(&from.notional_usd[r.clone()])),
            Box::new(|| fee_usd.extend_from_slice(&from.fee_usd[r.clone()])),
            Box::new(|| bad_debt_usd.extend_from_slice(&from.bad_debt_usd[r.clone()])),
            Box::new(|| kind.extend_from_slice(&from.kind[r.clone()])),
        ];
        if n < APPEND_PAR {
            columns.into_iter().for_each(|f| f());
        } else {
            // A task per column: the log's fresh pages are faulted in (and cleared) by every
            // thread, not by the driving one alone.
            rayon::scope(|s| columns.into_iter().for_each(|f| s.spawn(move |_| f())));
        }
        Ok(())
    }

    /// Room for `n` more events.
    pub fn reserve(&mut self, n: usize) {
        self.round.reserve(n);
        self.step.reserve(n);
        self.account.reserve(n);
        self.market.reserve(n);
        self.side.reserve(n);
        self.qty.reserve(n);
        self.price.reserve(n);
        self.notional_usd.reserve(n);
        self.fee_usd.reserve(n);
        self.bad_debt_usd.reserve(n);
        self.kind.reserve(n);
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

/// A single-process cascade: what the driver recorded, the final book and the ledger's totals.
#[derive(Debug, Clone)]
pub struct CascadeOutput {
    /// Events, rounds, pools, final prices, bad debt and fees ([`step::Driver::finish`]).
    pub outcome: DriverOutput,
    pub state: State,
    pub totals_before: Vec<i128>,
    pub totals_after: Vec<i128>,
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
    let worst = |p: usize| {
        let k = state.pos_market[p] as usize;
        let (c, qty, entry) = (u.contract(k), state.pos_qty[p], state.pos_entry[p]);
        let at_entry = if entry > 0.0 { c.notional(qty, entry) } else { 0.0 };
        cfg.step_marks.iter().map(|m| c.notional(qty, m[k])).fold(at_entry, f64::max)
    };
    // The first row beyond the limit (the same row as a scan in order): chunks of rows in
    // parallel, each a plain loop (a parallel search row by row cost ≈ 30 ms at 4M rows).
    const ROWS: usize = 16 * 1024;
    let n = state.pos_qty.len();
    let bad = (0..n.div_ceil(ROWS)).into_par_iter().find_map_first(|c| {
        (c * ROWS..((c + 1) * ROWS).min(n)).find(|&p| {
            let w = worst(p);
            w.is_nan() || w > limit
        })
    });
    if let Some(p) = bad {
        return Err(CoreError::book(
            crate::error::Table::Positions,
            book.positions.row[p] as usize,
            "qty",
            format!(
                "a position worth {:e} settle units is beyond what the cascade's ledger holds ({limit:e})",
                worst(p)
            ),
        ));
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

/// The most events [`run`] reserves room for before the first round (≈ 1 GiB of address
/// space); a log past it grows as it goes.
const EVENTS_RESERVED_MAX: usize = 1 << 24;

/// Runs a cascade on `book` (codes mapped to the universe by the remaps): the round protocol
/// of [`step`] with the whole book as one shard.
pub fn run(
    u: &Universe,
    book: &GroupedBook,
    asset_remap: &[u32],
    market_remap: &[u32],
    cfg: &CascadeConfig,
) -> Result<CascadeOutput> {
    let mut clock = PhaseClock::from_env();
    let (mut driver, mut shard, totals_before) = clock.time(Phase::Setup, || {
        let mut driver = Driver::new(u, cfg.clone())?;
        let shard = Shard::new(book, u, asset_remap, market_remap)?;
        driver.reserve_events(shard.state.pos_qty.len().min(EVENTS_RESERVED_MAX));
        driver.check_capacity(&[shard.gross_holdings(u)])?;
        check_position_sizes(book, u, &shard.state, cfg)?;
        let totals_before = driver.totals(&[shard.holdings(u)])?;
        Ok::<_, CoreError>((driver, shard, totals_before))
    })?;
    run_sharded_timed(u, std::slice::from_mut(&mut shard), &mut driver, &mut clock)?;
    let (totals_after, outcome) = clock.time(Phase::Finish, || {
        let totals_after = driver.totals(&[shard.holdings(u)])?;
        Ok::<_, CoreError>((totals_after, driver.finish()))
    })?;
    if let Some(report) = clock.report() {
        eprintln!("{report}");
    }
    Ok(CascadeOutput { outcome, state: shard.state, totals_before, totals_after })
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
        assert_eq!(out.outcome.rounds.accounts_liquidated, vec![1, 1, 1]);
        assert!((out.outcome.rounds.marks[1] - 85.164).abs() < 1e-9);
        assert_eq!(out.totals_before, out.totals_after);
        assert!((out.outcome.bad_debt_usd - out.outcome.events.bad_debt_usd.iter().sum::<f64>()).abs() < 1e-9);
    }

    #[test]
    fn a_position_beyond_the_ledger_is_named_by_its_first_row() {
        // Rows in three of the size check's chunks; the limit is 1e26 settle units at the
        // entry (100) or any step's mark.
        let u = universe();
        let mut qty = vec![1.0; 40_000];
        qty[20_000] = 2e16; // 2e26 at a mark of 1e10, 4e25 at 2e9
        qty[30_000] = 1e17; // 2e26 at 2e9
        qty[39_999] = 1e17;
        let cash = vec![1e3; qty.len()];
        for (mark, want) in [(1e10, 20_000), (2e9, 30_000)] {
            let err = run(&u, &book(&cash, &qty), &[0], &[0], &config(mark, Liquidity::None)).unwrap_err();
            assert!(matches!(err, CoreError::Book { row, column: "qty", .. } if row == want), "mark {mark}: {err:?}");
        }
    }

    #[test]
    fn a_mild_shock_on_a_safe_book_does_nothing() {
        let u = universe();
        let out = run(&u, &book(&[1000.0], &[1.0]), &[0], &[0], &config(95.0, Liquidity::None)).unwrap();
        assert!(out.outcome.events.is_empty() && out.outcome.rounds.round.is_empty());
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
            prop_assert_eq!(&one.outcome.events, &two.outcome.events);
        }
    }
}
