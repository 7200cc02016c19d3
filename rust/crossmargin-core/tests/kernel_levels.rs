//! The SIMD kernel (crossmargin_core::kernel) against the scalar formula: every result
//! column bit for bit, at every dispatch level this CPU runs and at 1 and 2 threads, on
//! random universes (few and many codes, 1–15 brackets, step shapes, haircut tiers, size
//! discount / premium, linear and inverse, options) and random books (sides, isolated
//! positions, open orders, flat rows, codes out of universe order).

use crossmargin_core::brackets::{Bracket, Shape};
use crossmargin_core::kernel::{evaluate_into_with, CodeWidth, Level, Run, Sliced8, Threads};
use crossmargin_core::stress::{stress, stress_on, ScenarioPrices, StressColumns};
use crossmargin_core::{
    evaluate, group_with, AssetSpec, BalanceInput, MarginColumns, MarginContext, MarketKind, MarketSpec, OptionSpec,
    OrderInput, PositionInput, Prices, Remap, Universe,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct AssetDraw {
    price: f64,
    weight: f64,
    tiers: Vec<f64>,
    imf: f64,
}

#[derive(Debug, Clone)]
struct MarketDraw {
    settle: usize,
    inverse: bool,
    option: bool,
    cs: f64,
    mark: f64,
    tiers: usize,
    step: [bool; 2],
    imf: f64,
    upnl_w: f64,
    fee: f64,
}

fn asset_draw() -> impl Strategy<Value = AssetDraw> {
    (
        prop_oneof![Just(1.0), 0.5f64..100_000.0, Just(0.0)],
        0.5f64..1.0,
        prop::collection::vec(1e3f64..1e6, 0..5),
        prop_oneof![Just(0.0), 1e-4f64..0.5],
    )
        .prop_map(|(price, weight, tiers, imf)| AssetDraw { price, weight, tiers, imf })
}

fn market_draw() -> impl Strategy<Value = MarketDraw> {
    (
        (0usize..16, any::<bool>(), prop::bool::weighted(0.1), prop_oneof![Just(1.0), 0.001f64..100.0]),
        (1.0f64..100_000.0, 1usize..16, any::<[bool; 2]>(), prop_oneof![Just(0.0), 1e-4f64..0.01]),
        (0.3f64..1.0, prop::bool::weighted(0.05)),
    )
        .prop_map(|((settle, inverse, option, cs), (mark, tiers, step, imf), (upnl_w, fee))| MarketDraw {
            settle,
            inverse,
            option,
            cs,
            mark,
            tiers,
            step,
            imf,
            upnl_w,
            fee: if fee { 0.001 } else { 0.0 },
        })
}

fn build_universe(assets: &[AssetDraw], markets: &[MarketDraw]) -> Universe {
    let specs: Vec<AssetSpec> = assets
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut bounds = a.tiers.clone();
            bounds.sort_by(f64::total_cmp);
            bounds.dedup();
            // Every third asset's first slice below rate 1 (its values never count whole), the
            // others' at rate 1 (whole up to the first bound: Tables::a_whole_upto).
            let first_cut = if i % 3 == 1 { 0.05 } else { 0.0 };
            let mut tiers: Vec<(f64, f64)> = bounds
                .iter()
                .enumerate()
                .map(|(k, &b)| (b * (k + 1) as f64, 1.0 - 0.1 * k as f64 - first_cut))
                .collect();
            if !tiers.is_empty() && i % 2 == 0 {
                tiers.push((f64::INFINITY, 0.3));
            }
            AssetSpec {
                symbol: if i == 0 { "BTC".into() } else { format!("A{i}") },
                price: if i == 0 { a.price.max(1.0) } else { a.price },
                weight: [a.weight, (a.weight + 0.05).min(1.0)],
                liability_weight: [1.2, 1.1],
                haircut_tiers: tiers,
                imf_factor: a.imf,
                scale_initial_weight_start: 0.0,
                total_deposits: 0.0,
                bid_ask: None,
            }
        })
        .collect();
    let mspecs: Vec<MarketSpec> = markets
        .iter()
        .enumerate()
        .map(|(k, m)| {
            let brackets: Vec<Bracket> = (0..m.tiers)
                .map(|t| Bracket {
                    bound: if t + 1 == m.tiers { f64::INFINITY } else { 10_000.0 * 3f64.powi(t as i32) },
                    imr: 0.01 * (t + 1) as f64,
                    mmr: 0.005 * (t + 1) as f64,
                })
                .collect();
            let shape = m.step.map(|s| if s && !m.option { Shape::Step } else { Shape::Continuous });
            MarketSpec {
                symbol: format!("M{k}"),
                kind: if m.option { MarketKind::Option } else { MarketKind::Perp },
                settle: specs[m.settle % specs.len()].symbol.clone(),
                underlying: "BTC".into(),
                mark: if m.option { m.mark / 1e5 } else { m.mark },
                contract_size: m.cs,
                inverse: m.inverse,
                brackets: if m.option { vec![] } else { brackets },
                imf_factor: m.imf,
                upnl_weight: [m.upnl_w, (m.upnl_w + 0.1).min(1.0)],
                upnl_imf_factor: 0.0,
                upnl_cap_initial: f64::INFINITY,
                option: m.option.then_some(OptionSpec {
                    call: k % 2 == 0,
                    strike: m.mark,
                    expiry: 0.25,
                    iv: 0.6,
                    rate: 0.0,
                    im_base: OptionSpec::DERIBIT_IM_BASE,
                    im_min: OptionSpec::DERIBIT_IM_MIN,
                    mm_base: OptionSpec::DERIBIT_MM_BASE,
                }),
                orders: Default::default(),
                rules: crossmargin_core::MarketRules {
                    shape,
                    liquidation_fee: if m.option { 0.0 } else { m.fee },
                    ..Default::default()
                },
            }
        })
        .collect();
    Universe::new(&specs, &mspecs).unwrap()
}

type Bal = (i64, u32, f64);
type Pos = (i64, u32, u8, f64, f64, f64);
type Ord = (i64, u32, u8, f64, f64);

#[derive(Debug, Clone)]
struct Case {
    assets: Vec<AssetDraw>,
    markets: Vec<MarketDraw>,
    bal: Vec<Bal>,
    pos: Vec<Pos>,
    orders: Vec<Ord>,
    /// Book code → universe index (a rotation: codes out of universe order).
    rotate: usize,
}

fn case() -> impl Strategy<Value = Case> {
    let universe = (prop::collection::vec(asset_draw(), 1..12), prop::collection::vec(market_draw(), 1..12));
    (universe, 0usize..12, any::<bool>()).prop_flat_map(|((assets, markets), rotate, with_orders)| {
        let (na, nm) = (assets.len() as u32, markets.len() as u32);
        let bal = prop::collection::vec((0i64..60, 0..na, prop_oneof![Just(0.0), -5.0f64..20.0]), 0..200);
        let pos = prop::collection::vec(
            (
                0i64..60,
                0..nm,
                0u8..3,
                prop_oneof![Just(0.0), -500.0f64..500.0],
                1.0f64..100_000.0,
                prop_oneof![3 => Just(0.0), 1 => 1.0f64..5_000.0],
            ),
            0..200,
        );
        let orders = prop::collection::vec((0i64..60, 0..nm, 0u8..2, 0.1f64..10.0, 1.0f64..100_000.0), 0..6);
        (Just(assets), Just(markets), bal, pos, orders, Just(rotate), Just(with_orders)).prop_map(
            |(assets, markets, bal, pos, orders, rotate, with_orders)| {
                let mut seen = std::collections::HashSet::new();
                let pos = pos
                    .into_iter()
                    .map(|mut p| {
                        // A long leg holds qty ≥ 0, a short one ≤ 0.
                        p.3 = match p.2 {
                            1 => p.3.abs(),
                            2 => -p.3.abs(),
                            _ => p.3,
                        };
                        p
                    })
                    .filter(|p| seen.insert((p.0, p.1)))
                    .collect();
                Case { assets, markets, bal, pos, orders: if with_orders { orders } else { vec![] }, rotate }
            },
        )
    })
}

fn columns_equal(a: &MarginColumns, b: &MarginColumns) -> Result<(), String> {
    let f = |name: &str, x: &[f64], y: &[f64]| match x.iter().zip(y).position(|(p, q)| p.to_bits() != q.to_bits()) {
        Some(i) => Err(format!("{name}[{i}]: {} vs {}", x[i], y[i])),
        None => Ok(()),
    };
    f("equity", &a.equity, &b.equity)?;
    f("upnl", &a.upnl, &b.upnl)?;
    f("adj_equity_initial", &a.adj_equity_initial, &b.adj_equity_initial)?;
    f("adj_equity_maint", &a.adj_equity_maint, &b.adj_equity_maint)?;
    f("im", &a.im, &b.im)?;
    f("mm", &a.mm, &b.mm)?;
    f("free_collateral", &a.free_collateral, &b.free_collateral)?;
    f("margin_ratio", &a.margin_ratio, &b.margin_ratio)?;
    if a.liquidatable != b.liquidatable || a.bankrupt != b.bankrupt {
        return Err("flags differ".into());
    }
    Ok(())
}

fn check(c: &Case) -> Result<(), TestCaseError> {
    check_in(&build_universe(&c.assets, &c.markets), c, None)
}

/// [`check`] in universe `u` (the case's draws unused), the layout's code width `width` when given.
fn check_in(u: &Universe, c: &Case, width: Option<CodeWidth>) -> Result<(), TestCaseError> {
    let (na, nm) = (u.n_assets() as u32, u.n_markets() as u32);
    let col = |f: fn(&Pos) -> f64| c.pos.iter().map(f).collect::<Vec<f64>>();
    let (ba, bc, bq): (Vec<i64>, Vec<u32>, Vec<f64>) =
        (c.bal.iter().map(|b| b.0).collect(), c.bal.iter().map(|b| b.1).collect(), c.bal.iter().map(|b| b.2).collect());
    let (pa, pc): (Vec<i64>, Vec<u32>) = (c.pos.iter().map(|p| p.0).collect(), c.pos.iter().map(|p| p.1).collect());
    let ps: Vec<u8> = c.pos.iter().map(|p| p.2).collect();
    let (pq, pe, pi) = (col(|p| p.3), col(|p| p.4), col(|p| p.5));
    let o = &c.orders;
    let (oa, oc, os): (Vec<i64>, Vec<u32>, Vec<u8>) =
        (o.iter().map(|x| x.0).collect(), o.iter().map(|x| x.1).collect(), o.iter().map(|x| x.2).collect());
    let (oq, op): (Vec<f64>, Vec<f64>) = (o.iter().map(|x| x.3).collect(), o.iter().map(|x| x.4).collect());
    let ro = vec![false; o.len()];
    let orders = OrderInput { account: &oa, code: &oc, side: &os, qty: &oq, price: &op, reduce_only: &ro };
    let book = group_with(
        BalanceInput { account: &ba, code: &bc, qty: &bq },
        PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pi },
        &ps,
        (!o.is_empty()).then_some(orders),
        na,
        nm,
    )
    .unwrap();
    // Codes out of universe order: bound as the engine binds them (rows re-sorted).
    let ar: Vec<u32> = (0..na).map(|i| (i + c.rotate as u32) % na).collect();
    let mr: Vec<u32> = (0..nm).map(|i| (i + c.rotate as u32) % nm).collect();
    let book = book.in_universe_order(&ar, &mr, na, nm).unwrap();
    let (ai, mi): (Vec<u32>, Vec<u32>) = ((0..na).collect(), (0..nm).collect());
    let prices = Prices { asset: &u.assets.price, mark: &u.markets.mark };
    let Ok(ctx) = MarginContext::new(u, &book, prices, Remap { asset: &ai, market: &mi }) else {
        return Ok(()); // orders in an option market etc.: refused alike by every level
    };
    let want = evaluate(&book, &ctx);
    let layout = Sliced8::new(&book);
    if let Some(w) = width {
        prop_assert_eq!(layout.code_width(), w);
    }
    for level in Level::available() {
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            // Result columns starting at every offset from a 64-byte line (the streaming
            // stores write whole aligned lines and the ends around them), with streaming and
            // with ordinary stores.
            for (offset, stream) in (0..8).flat_map(|o| [(o, true), (o, false)]) {
                let got = match offset % 3 {
                    0 => pool.install(|| evaluate_at(&book, &layout, &ctx, level, offset, stream, Threads::Pool)),
                    1 => evaluate_at(&book, &layout, &ctx, level, offset, stream, Threads::Beside(&pool)),
                    _ => evaluate_at(&book, &layout, &ctx, level, offset, stream, Threads::Calling),
                };
                if let Err(e) = columns_equal(&want, &got) {
                    let l = level.name();
                    let s = if stream { "streaming" } else { "ordinary" };
                    return Err(TestCaseError::fail(format!(
                        "{l} at {threads} thread(s), offset {offset}, {s} stores: {e}"
                    )));
                }
            }
        }
    }
    // Stress through the kernel: each scenario's matrix column and totals as the scalar
    // stress computes them, bit for bit.
    let moves = [0.6, 1.0, 1.45];
    let asset: Vec<f64> = moves.iter().flat_map(|m| u.assets.price.iter().map(move |p| p * m)).collect();
    let mark: Vec<f64> = moves.iter().flat_map(|m| u.markets.mark.iter().map(move |p| p * m)).collect();
    let sc = ScenarioPrices { n: moves.len(), asset: &asset, mark: &mark };
    let want = stress(&book, &ctx, sc, true).map_err(|e| e.to_string());
    for level in Level::available() {
        let got = stress_on(&book, Some((&layout, level)), &ctx, sc, true).map_err(|e| e.to_string());
        if let Err(e) = stress_equal(&want, &got) {
            return Err(TestCaseError::fail(format!("stress at {}: {e}", level.name())));
        }
    }
    Ok(())
}

fn stress_equal(a: &Result<StressColumns, String>, b: &Result<StressColumns, String>) -> Result<(), String> {
    let (a, b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(x), Err(y)) if x == y => return Ok(()),
        _ => return Err(format!("{:?} vs {:?}", a.as_ref().err(), b.as_ref().err())),
    };
    let bits = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<u64>>();
    for (name, x, y) in [
        ("margin", &a.margin, &b.margin),
        ("shortfall", &a.shortfall, &b.shortfall),
        ("bad_debt", &a.bad_debt, &b.bad_debt),
    ] {
        if bits(x) != bits(y) {
            return Err(format!("{name} differs"));
        }
    }
    if a.liquidatable != b.liquidatable || a.bankrupt != b.bankrupt {
        return Err("counts differ".into());
    }
    Ok(())
}

/// [`evaluate_into_with`] (streaming stores or not) into columns that start `offset`
/// values into 64-byte aligned buffers, with sentinel values around them (a write outside
/// the columns fails the comparison).
fn evaluate_at(
    book: &crossmargin_core::GroupedBook,
    layout: &Sliced8,
    ctx: &MarginContext<'_>,
    level: Level,
    offset: usize,
    stream: bool,
    threads: Threads<'_>,
) -> MarginColumns {
    #[repr(align(64))]
    #[derive(Clone, Copy)]
    struct Line([f64; 8]);
    let n = book.n_accounts();
    let lines = (n + offset).div_ceil(8) + 1;
    let mut buf = vec![vec![Line([-7.0; 8]); lines]; 8];
    let mut flags = vec![vec![true; n + 16]; 2];
    {
        let mut cols: Vec<&mut [f64]> = buf
            .iter_mut()
            .map(|b| {
                // SAFETY: `Line` is 8 f64 with no padding; the slice covers the vector's lines.
                let all = unsafe { std::slice::from_raw_parts_mut(b.as_mut_ptr() as *mut f64, b.len() * 8) };
                &mut all[offset..offset + n]
            })
            .collect();
        let [e, u, ai, am, im, mm, f, r] = &mut cols[..] else { unreachable!() };
        let [l, b] = &mut flags[..] else { unreachable!() };
        let out = crossmargin_core::margin::MarginColumnsMut {
            equity: e,
            upnl: u,
            adj_equity_initial: ai,
            adj_equity_maint: am,
            im,
            mm,
            free_collateral: f,
            margin_ratio: r,
            liquidatable: &mut l[offset..offset + n],
            bankrupt: &mut b[offset..offset + n],
        };
        evaluate_into_with(book, layout, ctx, out, level, Run { stream, threads }).unwrap();
    }
    let col = |b: &Vec<Line>| -> Vec<f64> {
        let all: Vec<f64> = b.iter().flat_map(|l| l.0).collect();
        assert!(all[..offset].iter().chain(&all[offset + n..]).all(|&x| x == -7.0), "a write outside the column");
        all[offset..offset + n].to_vec()
    };
    let flag = |f: &Vec<bool>| -> Vec<bool> {
        assert!(f[..offset].iter().chain(&f[offset + n..]).all(|&x| x), "a write outside the column");
        f[offset..offset + n].to_vec()
    };
    MarginColumns {
        equity: col(&buf[0]),
        upnl: col(&buf[1]),
        adj_equity_initial: col(&buf[2]),
        adj_equity_maint: col(&buf[3]),
        im: col(&buf[4]),
        mm: col(&buf[5]),
        free_collateral: col(&buf[6]),
        margin_ratio: col(&buf[7]),
        liquidatable: flag(&flags[0]),
        bankrupt: flag(&flags[1]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_level_matches_the_scalar_formula_bit_for_bit(c in case()) {
        check(&c)?;
    }
}

#[test]
fn this_machine_runs_the_simd_levels_the_tests_compare() {
    // The test machine has AVX2 (and AVX-512); elsewhere the scalar level alone is compared.
    let levels = Level::available();
    assert_eq!(levels[0], Level::Scalar);
    assert_eq!(Level::detect(), *levels.last().unwrap());
}

#[test]
fn a_thousand_accounts_in_many_groups_match() {
    // Enough accounts for several parallel chunks and a partial last group.
    let assets = vec![
        AssetDraw { price: 1.0, weight: 1.0, tiers: vec![], imf: 0.0 },
        AssetDraw { price: 95_000.0, weight: 0.95, tiers: vec![1e5, 2e5, 5e5], imf: 0.001 },
    ];
    let markets = vec![perp(0, false, 12), perp(1, true, 5)];
    let n = 4_099i64;
    let bal = (0..n).flat_map(|a| [(a, 0, (a % 7) as f64 * 1e3 - 500.0), (a, 1, (a % 5) as f64 * 0.3 - 0.2)]).collect();
    let pos = (0..n)
        .flat_map(|a| {
            let q = (a % 11) as f64 - 5.0;
            [(a, 0, 0u8, q * 2.0, 90_000.0, 0.0), (a, 1, 0u8, q * 1e4, 97_000.0, if a % 9 == 0 { 300.0 } else { 0.0 })]
        })
        .collect();
    check(&Case { assets, markets, bal, pos, orders: vec![], rotate: 0 }).unwrap();
}

fn perp(settle: usize, inverse: bool, tiers: usize) -> MarketDraw {
    MarketDraw {
        settle,
        inverse,
        option: false,
        cs: 1.0,
        mark: 95_000.0,
        tiers,
        step: [true, false],
        imf: 0.0,
        upnl_w: 0.9,
        fee: 0.0,
    }
}

fn two_assets() -> Vec<AssetDraw> {
    vec![
        AssetDraw { price: 1.0, weight: 1.0, tiers: vec![], imf: 0.0 },
        AssetDraw { price: 95_000.0, weight: 0.95, tiers: vec![1e5, 2e5, 5e5], imf: 0.001 },
    ]
}

/// Codes stored as u8 (≤ 256 codes), u16 (≤ 65,536) and u32: the kernel widens each alike.
#[test]
fn every_code_width_matches() {
    for (markets, width) in [(256usize, CodeWidth::U8), (257, CodeWidth::U16), (65_537, CodeWidth::U32)] {
        let assets = two_assets();
        let draws: Vec<MarketDraw> = (0..markets).map(|k| perp(k % 2, k % 5 == 0, 1 + k % 4)).collect();
        let u = build_universe(&assets, &draws);
        let n = 200i64;
        let m = markets as u32;
        let bal =
            (0..n).flat_map(|a| [(a, 0, (a % 7) as f64 * 1e3 - 500.0), (a, 1, (a % 5) as f64 * 0.3 - 0.2)]).collect();
        // Codes at both ends of the range (the highest needs the full width).
        let pos = (0..n)
            .flat_map(|a| {
                let q = (a % 11) as f64 - 5.0;
                let codes = [(a as u32 * 37) % m, m - 1 - (a as u32 % 3), a as u32 % 4];
                codes
                    .into_iter()
                    .enumerate()
                    .map(move |(j, k)| (a, k, 0u8, q * (j + 1) as f64, 90_000.0, (a % 3 == 0) as u8 as f64 * 50.0))
            })
            .collect::<Vec<_>>();
        let mut seen = std::collections::HashSet::new();
        let pos = pos.into_iter().filter(|p| seen.insert((p.0, p.1))).collect();
        let case = Case { assets, markets: draws, bal, pos, orders: vec![], rotate: 0 };
        check_in(&u, &case, Some(width)).unwrap();
    }
}

/// Isolated margin stored only where it is not +0.0: groups of 8 with no lane, some lanes and
/// every lane isolated, in one slot or all, with -0.0 and NaN (cross positions, stored as they are).
#[test]
fn packed_isolated_margins_match_in_every_pattern() {
    let markets = vec![perp(0, false, 3), perp(1, true, 2), perp(0, false, 5)];
    let pos: Vec<Pos> = (0..8 * 8i64)
        .flat_map(|a| {
            let (group, lane) = (a / 8, a % 8);
            let iso = move |slot: i64| -> f64 {
                match group {
                    0 => 0.0,                                            // no lane
                    1 => 200.0 + a as f64,                               // every lane, every slot
                    2 => [0.0, 75.0][(lane % 2) as usize],               // every other lane
                    3 => [0.0, 90.0][(slot == 1) as usize],              // every lane of slot 1 only
                    4 => [0.0, 60.0][(lane == 7) as usize],              // the last lane alone
                    5 => [-0.0, f64::NAN, 40.0][(lane % 3) as usize],    // -0.0 and NaN (cross)
                    6 => [0.0, 10.0][(lane < 4) as usize],               // the first half (AVX2)
                    _ => [0.0, 10.0][(lane >= 4 && slot != 0) as usize], // the second half
                }
            };
            // Accounts of a group hold 1 to 3 positions (padded lanes in the last slots).
            (0..1 + lane % 3).map(move |slot| {
                let q = ((a * 7 + slot) % 9) as f64 - 4.0;
                (a, slot as u32, 0u8, q * 3.0, 90_000.0 + 1_000.0 * slot as f64, iso(slot))
            })
        })
        .collect();
    let bal = (0..64i64).map(|a| (a, 0, 1_000.0 - 40.0 * a as f64)).collect();
    let case = Case { assets: two_assets(), markets, bal, pos, orders: vec![], rotate: 0 };
    check(&case).unwrap();
}

/// Drift's size discount / premium around the |qty| where they start to change a weight: the
/// kernel skips the square root and division for a slot whose lanes are all at or below the
/// asset's neutral |qty|, so quantities a few ulps either side of each weight's real-number
/// threshold ((1.1/w − 1)/imf)² and (0.2·lw/imf)², long and short, in groups of 8 that sit
/// wholly below, wholly above and across it, must match the scalar formula bit for bit.
#[test]
fn size_discount_thresholds_match_bit_for_bit() {
    let mut assets = two_assets();
    assets.push(AssetDraw { price: 140.0, weight: 0.9, tiers: vec![], imf: 0.003 });
    assets.push(AssetDraw { price: 2.0, weight: 0.5, tiers: vec![1e3], imf: 0.37 });
    let u = build_universe(&assets, &[perp(0, false, 3)]);
    let mut bal: Vec<Bal> = vec![];
    let mut a = 0i64;
    for (code, d) in assets.iter().enumerate().skip(1) {
        let w = [d.weight, (d.weight + 0.05).min(1.0)];
        let thresholds = w
            .iter()
            .map(|&w| ((1.1 / w - 1.0) / d.imf).powi(2))
            .chain([1.2f64, 1.1].iter().map(|&lw| (0.2 * lw / d.imf).powi(2)));
        for t in thresholds {
            let mut near = vec![t];
            let (mut up, mut down) = (t, t);
            for _ in 0..6 {
                (up, down) = (up.next_up(), down.next_down());
                near.extend([up, down]);
            }
            near.extend([-1e-6, -1e-9, 1e-9, 1e-6].map(|r| t * (1.0 + r)));
            near.sort_by(f64::total_cmp);
            // 8 lanes a group: all below, across, all above; long and short.
            for sign in [1.0, -1.0] {
                for q in &near {
                    bal.push((a, code as u32, sign * q));
                    bal.push((a, 0, 1e9));
                    a += 1;
                }
            }
        }
    }
    let case =
        Case { assets: assets.clone(), markets: vec![perp(0, false, 3)], bal, pos: vec![], orders: vec![], rotate: 0 };
    check_in(&u, &case, None).unwrap();
}

/// A book of several chunks and a part (four of 2,048 accounts and 11 more): the same bits
/// whether the pool takes the chunks, the calling thread takes them all, or both take the next
/// one as they finish (`check_in` runs each, at 1 and 2 threads).
#[test]
fn every_way_of_sharing_the_chunks_gives_the_same_bits() {
    let markets = vec![perp(0, false, 3), perp(1, true, 2), perp(0, false, 5)];
    let n = 4 * 2048 + 11;
    let bal = (0..n).map(|a| (a, (a % 2) as u32, 500.0 + (a % 97) as f64 * 13.0)).collect();
    let pos = (0..n)
        .flat_map(|a| {
            (0..(a % 4) as u32).map(move |k| {
                let q = ((a * 5 + k as i64) % 11) as f64 - 5.0;
                (a, k % 3, 0u8, q * 0.7, 90_000.0 + 250.0 * k as f64, [0.0, 0.0, 0.0, 40.0][(a % 4) as usize])
            })
        })
        .collect();
    let case = Case { assets: two_assets(), markets, bal, pos, orders: vec![], rotate: 0 };
    check(&case).unwrap();
}
