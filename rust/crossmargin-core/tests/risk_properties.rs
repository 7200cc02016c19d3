//! Properties of liquidation prices and stress that must hold for every book.

use crossmargin_core::brackets::Bracket;
use crossmargin_core::liqprice::{liquidation_prices, LiqMove};
use crossmargin_core::stress::{stress, ScenarioPrices};
use crossmargin_core::{
    evaluate, evaluate_account, group, AssetSpec, BalanceInput, GroupedBook, MarginContext, MarketKind, MarketSpec,
    PositionInput, Prices, Remap, Universe,
};
use proptest::prelude::*;

fn universe() -> Universe {
    let asset = |s: &str, p: f64, w: f64| AssetSpec {
        symbol: s.into(),
        price: p,
        weight: [w, w],
        liability_weight: [1.2, 1.1],
        haircut_tiers: if s == "BTC" { vec![(100_000.0, 1.0), (f64::INFINITY, 0.8)] } else { vec![] },
        imf_factor: 0.0,
        scale_initial_weight_start: 0.0,
        total_deposits: 0.0,
        bid_ask: None,
    };
    let market = |s: &str, settle: &str, inverse: bool, cs: f64| MarketSpec {
        symbol: s.into(),
        kind: MarketKind::Perp,
        settle: settle.into(),
        underlying: "BTC".into(),
        mark: 50_000.0,
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
        &[asset("USDT", 1.0, 1.0), asset("BTC", 50_000.0, 0.9)],
        &[market("BTCUSDT", "USDT", false, 1.0), market("BTCUSD", "BTC", true, 100.0)],
    )
    .unwrap()
}

type Bal = (f64, f64);
type Pos = (f64, f64, f64, f64); // linear qty, linear entry, inverse contracts, inverse entry

fn one_account(b: Bal, p: Pos) -> GroupedBook {
    let pc = [0u32, 1];
    group(
        BalanceInput { account: &[1, 1], code: &[0, 1], qty: &[b.0, b.1] },
        PositionInput {
            account: &[1, 1],
            code: &pc,
            qty: &[p.0, p.2],
            entry_price: &[p.1, p.3],
            isolated_margin: &[0.0, 0.0],
        },
        2,
        2,
    )
    .unwrap()
}

fn gap(u: &Universe, book: &GroupedBook, asset: &[f64], mark: &[f64]) -> (f64, f64) {
    let ctx = MarginContext::new(u, book, Prices { asset, mark }, Remap { asset: &[0, 1], market: &[0, 1] }).unwrap();
    let m = evaluate_account(book.account(0), &ctx);
    (m.adj_equity[1] - m.requirement[1], m.adj_equity[1].abs() + m.requirement[1].abs())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// At the liquidation price the account is at maintenance (the underlying rule moves both
    /// markets and the BTC balance together).
    #[test]
    fn account_is_at_maintenance_at_the_liquidation_price(
        b in (0.0f64..50_000.0, -0.5f64..2.0),
        p in (-3.0f64..3.0, 30_000.0f64..70_000.0, -2_000.0f64..2_000.0, 30_000.0f64..70_000.0),
    ) {
        let u = universe();
        let book = one_account(b, p);
        let ctx = MarginContext::new(
            &u, &book, Prices { asset: &u.assets.price, mark: &u.markets.mark }, Remap { asset: &[0, 1], market: &[0, 1] },
        ).unwrap();
        for how in [LiqMove::Underlying, LiqMove::Mark] {
            let lp = liquidation_prices(&book, &ctx, how);
            for (j, &x) in lp.liq_price.iter().enumerate() {
                if x.is_nan() {
                    continue;
                }
                let k = lp.market[j] as usize;
                let s = x / u.markets.mark[k];
                let (asset, mark) = match how {
                    LiqMove::Underlying => (vec![1.0, 50_000.0 * s], vec![50_000.0 * s, 50_000.0 * s]),
                    LiqMove::Mark => {
                        let mut m = u.markets.mark.clone();
                        m[k] *= s;
                        (u.assets.price.clone(), m)
                    }
                };
                let (g, scale) = gap(&u, &book, &asset, &mark);
                let notional = (p.0.abs() + p.2.abs() * 100.0 / 50_000.0) * 50_000.0 * s;
                prop_assert!(g.abs() <= 1e-9 * (scale + notional + 1.0), "{how:?} {x} g={g}");
            }
        }
    }

    /// The one-pass stress kernel equals one evaluation per scenario, bit for bit.
    #[test]
    fn stress_equals_one_evaluation_per_scenario(
        b in (0.0f64..50_000.0, -0.5f64..2.0),
        p in (-3.0f64..3.0, 30_000.0f64..70_000.0, -2_000.0f64..2_000.0, 30_000.0f64..70_000.0),
        moves in prop::collection::vec(-0.9f64..1.0, 1..5),
    ) {
        let u = universe();
        let book = one_account(b, p);
        let remap = Remap { asset: &[0, 1], market: &[0, 1] };
        let base = MarginContext::new(&u, &book, Prices { asset: &u.assets.price, mark: &u.markets.mark }, remap).unwrap();
        let asset: Vec<f64> = moves.iter().flat_map(|m| [1.0, 50_000.0 * (1.0 + m)]).collect();
        let mark: Vec<f64> = moves.iter().flat_map(|m| [50_000.0 * (1.0 + m); 2]).collect();
        let st = stress(&book, &base, ScenarioPrices { n: moves.len(), asset: &asset, mark: &mark }, true).unwrap();
        for s in 0..moves.len() {
            let ctx = MarginContext::new(&u, &book, Prices { asset: &asset[2 * s..2 * s + 2], mark: &mark[2 * s..2 * s + 2] }, remap).unwrap();
            let r = evaluate(&book, &ctx);
            prop_assert_eq!(st.margin[s], r.adj_equity_maint[0] - r.mm[0]);
            prop_assert_eq!(st.liquidatable[s], r.liquidatable[0] as u64);
        }
    }
}
