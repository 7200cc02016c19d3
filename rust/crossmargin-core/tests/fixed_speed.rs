//! The fixed-point path's cost against the float path on one Drift-like book (run with
//! `cargo test --release -p crossmargin-core --test fixed_speed -- --ignored --nocapture`;
//! `benches/fixed_point.py` measures the same through Python on 1M accounts).

use std::time::Instant;

use crossmargin_core::brackets::Bracket;
use crossmargin_core::fixed::{self, FixedSpec, FixedUniverse};
use crossmargin_core::{
    group, AssetSpec, BalanceInput, MarginContext, MarketKind, MarketSpec, PositionInput, Prices, Remap, Universe,
};

fn asset(s: &str, p: f64, w: [f64; 2], l: [f64; 2], imf: f64) -> AssetSpec {
    AssetSpec {
        symbol: s.into(),
        price: p,
        weight: w,
        liability_weight: l,
        haircut_tiers: vec![],
        imf_factor: imf,
        scale_initial_weight_start: 0.0,
        total_deposits: 0.0,
        bid_ask: None,
    }
}

fn perp(s: &str, u: &str, mark: f64, upnl_imf: f64) -> MarketSpec {
    MarketSpec {
        symbol: s.into(),
        kind: MarketKind::Perp,
        settle: "USDC".into(),
        underlying: u.into(),
        mark,
        contract_size: 1.0,
        inverse: false,
        brackets: vec![Bracket { bound: f64::INFINITY, imr: 0.1, mmr: 0.05 }],
        imf_factor: 0.001,
        upnl_weight: [0.9, 1.0],
        upnl_imf_factor: upnl_imf,
        upnl_cap_initial: 100.0,
        option: None,
        rules: Default::default(),
        orders: Default::default(),
    }
}

#[test]
#[ignore]
fn fixed_point_cost_against_float() {
    let assets = [
        asset("USDC", 0.9999, [1.0, 1.0], [1.0, 1.0], 0.0),
        asset("SOL", 150.123456, [0.8, 0.9], [1.2, 1.1], 0.003),
        asset("BTC", 60_000.5, [0.8, 0.9], [1.2, 1.1], 0.105),
        asset("ETH", 3_000.250001, [0.8, 0.9], [1.2, 1.1], 0.025),
    ];
    let markets = [
        perp("SOL-PERP", "SOL", 150.1, 0.005),
        perp("BTC-PERP", "BTC", 60_010.25, 0.0),
        perp("ETH-PERP", "ETH", 3_001.0, 0.1),
    ];
    let u = Universe::new(&assets, &markets).unwrap();
    let fx = FixedUniverse::new(&u, FixedSpec::drift(vec![6, 9, 8, 8])).unwrap();
    let n = 1_000_000usize;
    let mut seed = 7u64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut ba, mut bc, mut bq) = (vec![], vec![], vec![]);
    let (mut pa, mut pc, mut pq, mut pe) = (vec![], vec![], vec![], vec![]);
    let dec = [6, 9, 8, 8];
    for a in 0..n as i64 {
        for code in [0u32, 1 + (rnd() * 2.0) as u32, 3] {
            let usd = (rnd() * 12.0).exp() * if rnd() < 0.7 { 1.0 } else { -1.0 };
            let scale = 10f64.powi(dec[code as usize]);
            ba.push(a);
            bc.push(code);
            bq.push((usd / u.assets.price[code as usize] * scale).round() / scale);
        }
        for code in [0u32, 1 + (rnd() * 2.0) as u32] {
            let mark = u.markets.mark[code as usize];
            pa.push(a);
            pc.push(code);
            pq.push(((rnd() * 12.0).exp() / mark * 1e9).round() / 1e9 * if rnd() < 0.5 { 1.0 } else { -1.0 });
            pe.push((mark * (0.7 + 0.6 * rnd()) * 1e6).round() / 1e6);
        }
    }
    let iso = vec![0.0; pa.len()];
    let book = group(
        BalanceInput { account: &ba, code: &bc, qty: &bq },
        PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &iso },
        4,
        3,
    )
    .unwrap();
    let prices = Prices { asset: &u.assets.price, mark: &u.markets.mark };
    let ctx = MarginContext::new(&u, &book, prices, Remap { asset: &[0, 1, 2, 3], market: &[0, 1, 2] }).unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    // the book's rows in raw units, converted once (as the Python book view keeps them)
    let rows = fixed::FixedBook::new(&book, ctx.remap, &fx);
    let (mut best_float, mut best_fixed) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..5 {
        let t = Instant::now();
        let a = pool.install(|| crossmargin_core::evaluate(&book, &ctx));
        best_float = best_float.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let b = pool.install(|| fixed::evaluate_rows(&book, &rows, &ctx, &fx).unwrap());
        best_fixed = best_fixed.min(t.elapsed().as_secs_f64());
        assert_eq!(a.equity.len(), b.0.equity.len());
    }
    println!("float {best_float:.4} s, fixed {best_fixed:.4} s, ratio {:.2}", best_fixed / best_float);
    if std::env::var_os("CROSSMARGIN_PROFILE_FIXED").is_some() {
        for _ in 0..20 {
            std::hint::black_box(pool.install(|| fixed::evaluate_rows(&book, &rows, &ctx, &fx).unwrap()));
        }
    }
}

#[test]
#[ignore]
fn division_cost() {
    use crossmargin_core::fixed::int::Divisor;
    let d = Divisor::pow10(9);
    let xs: Vec<i128> =
        (0..10_000_000i64).map(|i| (i * 7_919_000_003 % 1_000_000_000_007) as i128 * 150_123_456).collect();
    for _ in 0..3 {
        let t = Instant::now();
        let s: i128 = xs.iter().map(|&x| d.trunc(x)).sum();
        let a = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let dd = std::hint::black_box(1_000_000_000i128);
        let s2: i128 = xs.iter().map(|&x| x / dd).sum();
        let b = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let s3: f64 = xs.iter().map(|&x| (x as i64 as f64) * 1e-9).sum();
        let c = t.elapsed().as_secs_f64();
        assert_eq!(s, s2);
        println!("MG {:.1} ns, i128 / {:.1} ns, f64 mul {:.1} ns {s3}", a * 100.0, b * 100.0, c * 100.0);
    }
}
