//! SPAN against CME's published examples (the Python tests cite and repeat them with the
//! public API) and its validation errors.

use super::*;
use crate::book::{group, BalanceInput, PositionInput};
use crate::margin::{Prices, Remap};
use crate::universe::fixtures::{asset, perp};
use crate::universe::Universe;

/// A futures risk array for a scan range `r` (loss positive, long one contract), extreme
/// move `x` already weighted: CME's scenario order.
fn future(r: f64, x: f64) -> Vec<f64> {
    let t = r / 3.0;
    vec![0.0, 0.0, -t, -t, t, t, -2.0 * t, -2.0 * t, 2.0 * t, 2.0 * t, -r, -r, r, r, -x, x]
}

fn cc(name: &str) -> CommodityInput {
    CommodityInput {
        name: name.into(),
        price_scan: 0.0,
        vol_scan: 0.0,
        extreme_multiple: 2.0,
        cover: 0.35,
        som_rate: 0.0,
        im_ratio: 1.0,
        spot_tier: None,
        spot_spread_rate: 0.0,
        spot_outright_rate: 0.0,
    }
}

fn contract(market: &str, commodity: &str, tier: u32, array: Vec<f64>) -> ContractInput {
    ContractInput {
        market: market.into(),
        commodity: commodity.into(),
        tier,
        risk_array: Some(array),
        delta: Some(1.0),
    }
}

fn leg<T>(on: T, ratio: f64, side_a: bool) -> LegInput<T> {
    LegInput { on, ratio, side_a }
}

fn universe(markets: &[&str]) -> Universe {
    let specs: Vec<_> = markets.iter().map(|m| perp(m, "USD", "X", 100.0, &[(f64::INFINITY, 0.1, 0.05)])).collect();
    Universe::new(&[asset("USD", 1.0)], &specs).unwrap()
}

fn requirement(u: &Universe, p: &SpanParams, pos: &[(u32, f64)]) -> (f64, Vec<CommodityMargin>) {
    let pa = vec![1i64; pos.len()];
    let pc: Vec<u32> = pos.iter().map(|x| x.0).collect();
    let pq: Vec<f64> = pos.iter().map(|x| x.1).collect();
    let pe = vec![100.0; pos.len()];
    let pi = vec![0.0; pos.len()];
    let nm = u.n_markets() as u32;
    let book = group(
        BalanceInput { account: &[], code: &[], qty: &[] },
        PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pi },
        1,
        nm,
    )
    .unwrap();
    let marks = vec![100.0; nm as usize];
    let remap: Vec<u32> = (0..nm).collect();
    let ctx =
        MarginContext::new(u, &book, Prices { asset: &[1.0], mark: &marks }, Remap { asset: &[0], market: &remap })
            .unwrap();
    let sc_ctx = SpanContext::new(ctx, p).unwrap();
    let mut sc = Scratch::new(p);
    let m = evaluate_account(book.account(0), &sc_ctx, &mut sc);
    (m.requirement[1], sc.touched.iter().map(|&c| sc.out[c as usize]).collect())
}

#[test]
fn a_long_future_needs_its_worst_scenario() {
    // McMillan, "Options as a Strategic Investment", ch. 34: the long S&P future's array
    // (range $10,000, extreme $7,000) → SPAN requirement $10,000.
    let u = universe(&["SP"]);
    let p =
        SpanParams::new(&u, vec![cc("SP")], vec![contract("SP", "SP", 1, future(10_000.0, 7_000.0))], vec![], vec![])
            .unwrap();
    assert_eq!(requirement(&u, &p, &[(0, 1.0)]).0, 10_000.0);
    assert_eq!(requirement(&u, &p, &[(0, -2.0)]).0, 20_000.0);
}

#[test]
fn calendar_spreads_pay_the_scan_difference_and_the_charge() {
    // CME Group, "Spread Calculations" (cmegroup.com/clearing/margins/spread-calc.html):
    // months 2, 3, 4 at $500, $500, $750; charges 2v3 $200, 2v4 $50, 3v4 $0.
    let u = universe(&["M2", "M3", "M4"]);
    let contracts = vec![
        contract("M2", "X", 2, future(500.0, 350.0)),
        contract("M3", "X", 3, future(500.0, 350.0)),
        contract("M4", "X", 4, future(750.0, 525.0)),
    ];
    let intra = vec![
        IntraInput { commodity: "X".into(), rate: 200.0, legs: vec![leg(2, 1.0, true), leg(3, 1.0, false)] },
        IntraInput { commodity: "X".into(), rate: 50.0, legs: vec![leg(2, 1.0, true), leg(4, 1.0, false)] },
        IntraInput { commodity: "X".into(), rate: 0.0, legs: vec![leg(3, 1.0, true), leg(4, 1.0, false)] },
    ];
    let p = SpanParams::new(&u, vec![cc("X")], contracts, intra, vec![]).unwrap();
    assert_eq!(requirement(&u, &p, &[(0, 1.0), (1, -1.0)]).0, 200.0);
    assert_eq!(requirement(&u, &p, &[(0, 1.0), (2, -1.0)]).0, 300.0);
    assert_eq!(requirement(&u, &p, &[(1, 1.0), (2, -1.0)]).0, 250.0);
}

#[test]
fn corn_soybean_spread_earns_55_percent_per_leg() {
    // CME Group, "Spread Calculations": corn $1,750, soybeans $2,500, 2:1 at 55 % → $2,700.
    let u = universe(&["C", "S"]);
    let contracts =
        vec![contract("C", "C", 1, future(1_750.0, 1_225.0)), contract("S", "S", 1, future(2_500.0, 1_750.0))];
    let inter = vec![InterInput {
        rate: 0.55,
        legs: vec![leg("C".into(), 2.0, true), leg("S".into(), 1.0, false)],
        method: InterMethod::WeightedPriceRisk,
    }];
    let p = SpanParams::new(&u, vec![cc("C"), cc("S")], contracts, vec![], inter).unwrap();
    let (req, per) = requirement(&u, &p, &[(0, 2.0), (1, -1.0)]);
    assert!((req - 2_700.0).abs() < 1e-9, "{req}");
    assert!((per[0].inter - 1_925.0).abs() < 1e-9 && (per[1].inter - 1_375.0).abs() < 1e-9);
    // Same direction: no spread.
    assert_eq!(requirement(&u, &p, &[(0, 2.0), (1, 1.0)]).0, 6_000.0);
}

#[test]
fn malformed_tables_are_config_errors_naming_the_row() {
    let u = universe(&["A"]);
    let bad = |c: Vec<ContractInput>, i: Vec<IntraInput>, x: Vec<InterInput>| {
        SpanParams::new(&u, vec![cc("A")], c, i, x).unwrap_err().to_string()
    };
    let e = bad(vec![contract("A", "A", 1, vec![0.0; 15])], vec![], vec![]);
    assert_eq!(e, "span.contracts[0].risk_array: 15 values given; a risk array has 16");
    let mut nan = future(1.0, 1.0);
    nan[4] = f64::NAN;
    assert!(bad(vec![contract("A", "A", 1, nan)], vec![], vec![]).starts_with("span.contracts[0].risk_array[4]: NaN"));
    let e = bad(vec![contract("A", "Z", 1, future(1.0, 1.0))], vec![], vec![]);
    assert_eq!(e, "span.contracts[0].combined_commodity: unknown combined commodity 'Z'");
    let e = bad(vec![contract("B", "A", 1, future(1.0, 1.0))], vec![], vec![]);
    assert_eq!(e, "span.contracts[0].market: 'B' is not a market of the universe");
    let intra =
        vec![IntraInput { commodity: "A".into(), rate: 1.0, legs: vec![leg(1, 1.0, true), leg(9, 1.0, false)] }];
    let e = bad(vec![contract("A", "A", 1, future(1.0, 1.0))], intra, vec![]);
    assert_eq!(e, "span.intra[0].legs[1].tier: combined commodity 'A' has no contract in tier 9");
    let inter = vec![InterInput {
        rate: 0.5,
        legs: vec![leg("A".into(), 1.0, true), leg("Q".into(), 1.0, false)],
        method: InterMethod::WeightedPriceRisk,
    }];
    let e = bad(vec![contract("A", "A", 1, future(1.0, 1.0))], vec![], inter);
    assert_eq!(e, "span.inter[0].legs[1].combined_commodity: unknown combined commodity 'Q'");
}
