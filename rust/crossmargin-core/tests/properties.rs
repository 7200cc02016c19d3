//! Properties of grouping and evaluation that must hold for every book.

use crossmargin_core::brackets::Bracket;
use crossmargin_core::{
    evaluate, group, AssetSpec, BalanceInput, MarginContext, MarketKind, MarketSpec, PositionInput, Prices, Remap,
    Universe,
};
use proptest::prelude::*;

fn universe() -> Universe {
    let asset = |s: &str, p: f64, w: f64, tiers: Vec<(f64, f64)>| AssetSpec {
        symbol: s.into(),
        price: p,
        weight: [w, (w + 0.05).min(1.0)],
        liability_weight: [1.2, 1.1],
        haircut_tiers: tiers,
        imf_factor: 0.0,
        scale_initial_weight_start: 0.0,
        total_deposits: 0.0,
        bid_ask: None,
    };
    let market = |s: &str, settle: &str, inverse: bool, cs: f64, mark: f64| MarketSpec {
        symbol: s.into(),
        kind: MarketKind::Perp,
        settle: settle.into(),
        underlying: "BTC".into(),
        mark,
        contract_size: cs,
        inverse,
        brackets: vec![
            Bracket { bound: 50_000.0, imr: 0.01, mmr: 0.005 },
            Bracket { bound: 1_000_000.0, imr: 0.02, mmr: 0.01 },
            Bracket { bound: f64::INFINITY, imr: 0.1, mmr: 0.05 },
        ],
        imf_factor: 0.0,
        upnl_weight: [0.5, 0.8],
        upnl_imf_factor: 0.0,
        upnl_cap_initial: f64::INFINITY,
        option: None,
        orders: Default::default(),
        rules: Default::default(),
    };
    Universe::new(
        &[asset("USDT", 1.0, 1.0, vec![]), asset("BTC", 50_000.0, 0.9, vec![(100_000.0, 1.0), (f64::INFINITY, 0.8)])],
        &[market("BTCUSDT", "USDT", false, 1.0, 50_000.0), market("BTCUSD", "BTC", true, 100.0, 50_000.0)],
    )
    .unwrap()
}

#[derive(Debug, Clone)]
struct Rows {
    bal: Vec<(i64, u32, f64)>,
    pos: Vec<(i64, u32, f64, f64, f64)>,
}

fn rows() -> impl Strategy<Value = Rows> {
    let bal = prop::collection::vec((0i64..40, 0u32..2, -5.0f64..20.0), 0..60);
    let pos = prop::collection::vec(
        (0i64..40, 0u32..2, -50.0f64..50.0, 30_000.0f64..70_000.0, prop_oneof![Just(0.0), 1.0f64..5_000.0]),
        0..80,
    );
    (bal, pos).prop_map(|(bal, mut pos)| {
        // One net position per (account, market), as exchanges report them.
        let mut seen = std::collections::HashSet::new();
        pos.retain(|p| seen.insert((p.0, p.1)));
        Rows { bal, pos }
    })
}

fn run(u: &Universe, r: &Rows, threads: usize, marks: &[f64]) -> crossmargin_core::MarginColumns {
    let ba: Vec<i64> = r.bal.iter().map(|b| b.0).collect();
    let bc: Vec<u32> = r.bal.iter().map(|b| b.1).collect();
    let bq: Vec<f64> = r.bal.iter().map(|b| b.2).collect();
    let pa: Vec<i64> = r.pos.iter().map(|p| p.0).collect();
    let pc: Vec<u32> = r.pos.iter().map(|p| p.1).collect();
    let pq: Vec<f64> = r.pos.iter().map(|p| p.2).collect();
    let pe: Vec<f64> = r.pos.iter().map(|p| p.3).collect();
    let pi: Vec<f64> = r.pos.iter().map(|p| p.4).collect();
    let book = group(
        BalanceInput { account: &ba, code: &bc, qty: &bq },
        PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pi },
        2,
        2,
    )
    .unwrap();
    let ctx = MarginContext::new(
        u,
        &book,
        Prices { asset: &[1.0, 50_000.0], mark: marks },
        Remap { asset: &[0, 1], market: &[0, 1] },
    )
    .unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| evaluate(&book, &ctx))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn results_do_not_depend_on_thread_count(r in rows()) {
        let u = universe();
        let one = run(&u, &r, 1, &[48_000.0, 52_000.0]);
        let three = run(&u, &r, 3, &[48_000.0, 52_000.0]);
        prop_assert_eq!(one, three);
    }

    #[test]
    fn results_do_not_depend_on_position_row_order(r in rows(), seed in any::<u64>()) {
        let u = universe();
        let mut shuffled = r.clone();
        // A deterministic shuffle of positions (no duplicates there, so sums are exact).
        let n = shuffled.pos.len();
        let mut s = seed;
        for i in (1..n).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.pos.swap(i, (s >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(run(&u, &r, 2, &[50_000.0, 50_000.0]), run(&u, &shuffled, 2, &[50_000.0, 50_000.0]));
    }

    #[test]
    fn maintenance_never_exceeds_initial_and_both_grow_with_size(q in 0.0f64..100.0, dq in 0.0f64..100.0) {
        let u = universe();
        for m in 0..2 {
            let small = crossmargin_core::margin::position_margin(&u, m, q, 50_000.0, 50_000.0, 1.0);
            let large = crossmargin_core::margin::position_margin(&u, m, q + dq, 50_000.0, 50_000.0, 1.0);
            prop_assert!(small.requirement[1] <= small.requirement[0] + 1e-9);
            prop_assert!(large.requirement[0] >= small.requirement[0] - 1e-9);
            prop_assert!(large.requirement[1] >= small.requirement[1] - 1e-9);
        }
    }

    #[test]
    fn equity_of_a_long_only_book_rises_with_the_mark(r in rows(), up in 0.0f64..0.3) {
        let u = universe();
        let mut longs = r.clone();
        for p in longs.pos.iter_mut() { p.2 = p.2.abs(); }
        longs.bal.retain(|b| b.1 == 0);
        let base = run(&u, &longs, 2, &[50_000.0, 50_000.0]);
        let m = 50_000.0 * (1.0 + up);
        let higher = run(&u, &longs, 2, &[m, m]);
        for a in 0..base.equity.len() {
            prop_assert!(higher.equity[a] >= base.equity[a] - 1e-6);
        }
    }
}
