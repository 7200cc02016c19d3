//! Scenario stress (docs/MODEL.md "Stress"): every account under many price scenarios in one pass over
//! the book. A block of accounts is read once and evaluated under every scenario's prices
//! (its rows stay in cache), so S scenarios cost far less than S evaluations of the book:
//! by the bulk kernel ([`crate::kernel::evaluate_block`], SIMD where the universe allows)
//! when the book's layout is given, else account by account with [`evaluate_account`]. Both
//! give the same numbers bit for bit (the kernel's contract).
//!
//! A scenario is a full set of prices (asset prices and marks); the Python layer resolves
//! moves per underlying / asset / market into these vectors (options repriced at the moved
//! underlying; vol moves are not applied): the kernel never sees how a scenario was described.
//!
//! Per scenario: accounts liquidatable (cross pool below maintenance or an isolated position
//! below its own), accounts bankrupt (equity < 0), the maintenance shortfall
//! Σ max(mm − adj_equity_maint, 0) and the bad debt Σ max(−equity, 0). Sums are taken per
//! chunk of accounts and then over chunks in order, so they do not depend on the number of
//! threads.

use rayon::prelude::*;

use crate::book::GroupedBook;
use crate::error::{CoreError, Result};
use crate::kernel::{evaluate_block, Level, Prepared, Sliced8};
use crate::margin::{evaluate_account, MarginColumns, MarginContext, Prices};

/// Accounts per parallel task.
const CHUNK: usize = 1024;

/// Scenario prices, row-major: scenario `s` reads `asset[s·n_assets..]` and `mark[s·n_markets..]`.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioPrices<'a> {
    pub n: usize,
    pub asset: &'a [f64],
    pub mark: &'a [f64],
}

/// Per-scenario totals and, when asked for, the accounts × scenarios matrix of
/// adj_equity_maint − mm (row-major: account `a`, scenario `s` at `a·n + s`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StressColumns {
    pub n_scenarios: usize,
    pub margin: Vec<f64>,
    pub liquidatable: Vec<u64>,
    pub bankrupt: Vec<u64>,
    pub shortfall: Vec<f64>,
    pub bad_debt: Vec<f64>,
}

#[derive(Debug, Clone)]
struct Totals {
    liquidatable: Vec<u64>,
    bankrupt: Vec<u64>,
    shortfall: Vec<f64>,
    bad_debt: Vec<f64>,
}

impl Totals {
    fn new(n: usize) -> Self {
        Totals { liquidatable: vec![0; n], bankrupt: vec![0; n], shortfall: vec![0.0; n], bad_debt: vec![0.0; n] }
    }
}

/// One context per scenario, each checked like a single evaluation's prices.
fn contexts<'a>(
    base: &MarginContext<'a>,
    book: &GroupedBook,
    sc: &ScenarioPrices<'a>,
) -> Result<Vec<MarginContext<'a>>> {
    let u = base.universe;
    let (na, nm) = (u.n_assets(), u.n_markets());
    if sc.asset.len() != sc.n * na || sc.mark.len() != sc.n * nm {
        return Err(CoreError::price(
            "scenarios",
            format!(
                "{} scenarios need {} asset prices and {} marks; got {} and {}",
                sc.n,
                sc.n * na,
                sc.n * nm,
                sc.asset.len(),
                sc.mark.len()
            ),
        ));
    }
    (0..sc.n)
        .map(|s| {
            let prices = Prices { asset: &sc.asset[s * na..(s + 1) * na], mark: &sc.mark[s * nm..(s + 1) * nm] };
            MarginContext::new(u, book, prices, base.remap).map_err(|e| match e {
                CoreError::Price { field, message } => CoreError::price(format!("scenarios[{s}].{field}"), message),
                other => other,
            })
        })
        .collect()
}

/// Evaluates accounts `a0..a1` under every scenario, adding to `t` and writing the margin
/// matrix rows to `out` when given.
fn chunk(book: &GroupedBook, ctxs: &[MarginContext<'_>], a0: usize, a1: usize, mut out: Option<&mut [f64]>) -> Totals {
    let n = ctxs.len();
    let mut t = Totals::new(n);
    for a in a0..a1 {
        let rows = book.account(a);
        for (s, ctx) in ctxs.iter().enumerate() {
            let m = evaluate_account(rows, ctx);
            let gap = m.adj_equity[1] - m.requirement[1];
            if let Some(o) = out.as_deref_mut() {
                o[(a - a0) * n + s] = gap;
            }
            t.liquidatable[s] += m.liquidatable() as u64;
            t.bankrupt[s] += m.bankrupt() as u64;
            t.shortfall[s] += (-gap).max(0.0);
            t.bad_debt[s] += (-m.equity).max(0.0);
        }
    }
    t
}

/// [`chunk`] through the bulk kernel: the block's accounts evaluated under one scenario at a
/// time into block-sized columns, then counted in account order (the same sums).
fn kernel_chunk(
    book: &GroupedBook,
    layout: &Sliced8,
    prepared: &[Prepared<'_, '_>],
    a0: usize,
    a1: usize,
    mut out: Option<&mut [f64]>,
) -> Totals {
    let n = prepared.len();
    let mut t = Totals::new(n);
    let mut cols = MarginColumns::zeroed(a1 - a0);
    for (s, p) in prepared.iter().enumerate() {
        evaluate_block(book, layout, p, a0, &mut cols.as_mut());
        for j in 0..a1 - a0 {
            let gap = cols.adj_equity_maint[j] - cols.mm[j];
            if let Some(o) = out.as_deref_mut() {
                o[j * n + s] = gap;
            }
            t.liquidatable[s] += cols.liquidatable[j] as u64;
            t.bankrupt[s] += cols.bankrupt[j] as u64;
            t.shortfall[s] += (-gap).max(0.0);
            t.bad_debt[s] += (-cols.equity[j]).max(0.0);
        }
    }
    t
}

/// Every account under every scenario, account by account. `keep_matrix = false` skips the
/// accounts × scenarios matrix (reverse stress needs only the totals).
pub fn stress(
    book: &GroupedBook,
    base: &MarginContext<'_>,
    scenarios: ScenarioPrices<'_>,
    keep_matrix: bool,
) -> Result<StressColumns> {
    stress_on(book, None, base, scenarios, keep_matrix)
}

/// [`stress`], through the bulk kernel at `level` on `layout` (the layout of `book`) when
/// given: the same columns bit for bit.
pub fn stress_on(
    book: &GroupedBook,
    kernel: Option<(&Sliced8, Level)>,
    base: &MarginContext<'_>,
    scenarios: ScenarioPrices<'_>,
    keep_matrix: bool,
) -> Result<StressColumns> {
    let ctxs = contexts(base, book, &scenarios)?;
    let (n_acc, n) = (book.n_accounts(), scenarios.n);
    let prepared: Vec<Prepared<'_, '_>> = match kernel {
        Some((layout, level)) => ctxs.iter().map(|c| Prepared::new(book, layout, c, level).cached()).collect(),
        None => vec![],
    };
    let run = |c: usize, out: Option<&mut [f64]>| {
        let (a0, a1) = (c * CHUNK, (c * CHUNK + CHUNK).min(n_acc));
        match kernel {
            Some((layout, _)) => kernel_chunk(book, layout, &prepared, a0, a1, out),
            None => chunk(book, &ctxs, a0, a1, out),
        }
    };
    let mut margin = if keep_matrix { vec![0.0; n_acc * n] } else { vec![] };
    let parts: Vec<Totals> = if keep_matrix && n > 0 {
        margin.par_chunks_mut(CHUNK * n).enumerate().map(|(c, out)| run(c, Some(out))).collect()
    } else {
        (0..n_acc.div_ceil(CHUNK)).into_par_iter().map(|c| run(c, None)).collect()
    };
    let mut total = Totals::new(n);
    for p in parts {
        for s in 0..n {
            total.liquidatable[s] += p.liquidatable[s];
            total.bankrupt[s] += p.bankrupt[s];
            total.shortfall[s] += p.shortfall[s];
            total.bad_debt[s] += p.bad_debt[s];
        }
    }
    Ok(StressColumns {
        n_scenarios: n,
        margin,
        liquidatable: total.liquidatable,
        bankrupt: total.bankrupt,
        shortfall: total.shortfall,
        bad_debt: total.bad_debt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{group, BalanceInput, PositionInput};
    use crate::margin::{evaluate, Remap};
    use crate::universe::fixtures::{asset, perp};
    use crate::universe::Universe;

    fn setup() -> (Universe, GroupedBook) {
        let lin = perp("BTCUSDT", "USDT", "BTC", 50_000.0, &[(f64::INFINITY, 0.02, 0.01)]);
        let u = Universe::new(&[asset("USDT", 1.0), asset("BTC", 50_000.0)], &[lin]).unwrap();
        // Account 1: long 1 BTC with 10,000 USDT; account 2: short 2 BTC with 30,000 USDT;
        // account 3: 1 BTC, no positions.
        let book = group(
            BalanceInput { account: &[1, 2, 3], code: &[0, 0, 1], qty: &[10_000.0, 30_000.0, 1.0] },
            PositionInput {
                account: &[1, 2],
                code: &[0, 0],
                qty: &[1.0, -2.0],
                entry_price: &[50_000.0, 50_000.0],
                isolated_margin: &[0.0, 0.0],
            },
            2,
            1,
        )
        .unwrap();
        (u, book)
    }

    #[test]
    fn matrix_and_totals_equal_one_evaluation_per_scenario() {
        let (u, book) = setup();
        let remap = Remap { asset: &[0, 1], market: &[0] };
        let base =
            MarginContext::new(&u, &book, Prices { asset: &u.assets.price, mark: &u.markets.mark }, remap).unwrap();
        let moves = [-0.5, -0.1, 0.0, 0.3];
        let asset: Vec<f64> = moves.iter().flat_map(|m| [1.0, 50_000.0 * (1.0 + m)]).collect();
        let mark: Vec<f64> = moves.iter().map(|m| 50_000.0 * (1.0 + m)).collect();
        let sc = ScenarioPrices { n: 4, asset: &asset, mark: &mark };
        let st = stress(&book, &base, sc, true).unwrap();
        for s in 0..4 {
            let p = Prices { asset: &asset[2 * s..2 * s + 2], mark: &mark[s..s + 1] };
            let r = evaluate(&book, &MarginContext::new(&u, &book, p, remap).unwrap());
            let mut shortfall = 0.0;
            for a in 0..3 {
                let gap = r.adj_equity_maint[a] - r.mm[a];
                assert_eq!(st.margin[a * 4 + s], gap);
                shortfall += (-gap).max(0.0);
            }
            assert_eq!(st.liquidatable[s], r.liquidatable.iter().filter(|&&x| x).count() as u64);
            assert_eq!(st.bankrupt[s], r.bankrupt.iter().filter(|&&x| x).count() as u64);
            assert!((st.shortfall[s] - shortfall).abs() < 1e-9);
        }
        // −50 %: the long loses 25,000 against 10,000 → bad debt 15,000.
        assert!((st.bad_debt[0] - 15_000.0).abs() < 1e-9);
        // +30 %: the short loses 30,000 against 30,000 → bankrupt boundary, no bad debt.
        assert_eq!(st.bad_debt[3], 0.0);
        let lean = stress(&book, &base, sc, false).unwrap();
        assert!(lean.margin.is_empty());
        assert_eq!(lean.shortfall, st.shortfall);
    }

    #[test]
    fn bad_scenario_prices_name_the_scenario() {
        let (u, book) = setup();
        let remap = Remap { asset: &[0, 1], market: &[0] };
        let base =
            MarginContext::new(&u, &book, Prices { asset: &u.assets.price, mark: &u.markets.mark }, remap).unwrap();
        let sc = ScenarioPrices { n: 2, asset: &[1.0, 1.0, 1.0, f64::NAN], mark: &[1.0, 1.0] };
        let e = stress(&book, &base, sc, false).unwrap_err();
        assert_eq!(e.to_string(), "scenarios[1].asset prices[BTC]: NaN must be finite and ≥ 0");
        let sc = ScenarioPrices { n: 2, asset: &[1.0], mark: &[1.0, 1.0] };
        assert!(stress(&book, &base, sc, false).unwrap_err().to_string().starts_with("scenarios:"));
    }
}
