//! The monitor equals a batch evaluation of its snapshot after any sequence of ticks, row
//! changes and fills; a replay of its log rebuilds it bit for bit; a bad change leaves it as
//! it was.

use proptest::prelude::*;

use super::*;
use crate::book::group_with;
use crate::margin::evaluate;
use crate::universe::fixtures::{asset, option, perp};

fn universe() -> Universe {
    let mut btc = asset("BTC", 50_000.0);
    btc.weight = [0.9, 0.95];
    btc.liability_weight = [1.2, 1.1];
    let mut inv = perp("BTCUSD", "BTC", "BTC", 50_000.0, &[(f64::INFINITY, 0.02, 0.01)]);
    inv.inverse = true;
    inv.contract_size = 100.0;
    let lin = perp("BTCUSDT", "USDT", "BTC", 50_000.0, &[(50_000.0, 0.1, 0.05), (f64::INFINITY, 0.2, 0.1)]);
    let eth = perp("ETHUSDT", "USDT", "ETH", 3_000.0, &[(f64::INFINITY, 0.1, 0.05)]);
    let call = option("BTC-C", "USDT", "BTC", true, 55_000.0, 2_000.0);
    Universe::new(&[asset("USDT", 1.0), btc], &[lin, inv, eth, call]).unwrap()
}

fn start(u: &Universe) -> GroupedBook {
    let ba = [1, 1, 2, 3, 4];
    let bc = [0, 1, 0, 0, 1];
    let bq = [10_000.0, 0.1, 5_000.0, -100.0, 1.0];
    let pa = [1, 2, 2, 3, 4];
    let pc = [0, 0, 2, 3, 1];
    let pq = [0.5, -0.3, 4.0, 1.0, -300.0];
    let pe = [48_000.0, 51_000.0, 2_900.0, 1_500.0, 52_000.0];
    let pi = [0.0, 0.0, 0.0, 0.0, 0.0];
    let (oa, oc, os, oq, op, or) = ([2i64], [2u32], [0u8], [1.0], [2_800.0], [false]);
    group_with(
        BalanceInput { account: &ba, code: &bc, qty: &bq },
        PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pi },
        &[],
        Some(OrderInput { account: &oa, code: &oc, side: &os, qty: &oq, price: &op, reduce_only: &or }),
        u.n_assets() as u32,
        u.n_markets() as u32,
    )
    .unwrap()
}

fn monitor(u: &Universe) -> Monitor {
    Monitor::new(u, start(u), u.assets.price.clone(), u.markets.mark.clone(), Levels::new(0.8).unwrap()).unwrap()
}

/// The monitor's results against `margin::evaluate` of its snapshot, bit for bit.
fn assert_batch_equal(u: &Universe, m: &Monitor) {
    let s = m.snapshot();
    let g = group_with(
        BalanceInput { account: &s.bal_account, code: &s.bal_code, qty: &s.bal_qty },
        PositionInput {
            account: &s.pos_account,
            code: &s.pos_code,
            qty: &s.pos_qty,
            entry_price: &s.pos_entry,
            isolated_margin: &s.pos_isolated,
        },
        &s.pos_side,
        Some(OrderInput {
            account: &s.ord_account,
            code: &s.ord_code,
            side: &s.ord_side,
            qty: &s.ord_qty,
            price: &s.ord_price,
            reduce_only: &s.ord_reduce_only,
        }),
        u.n_assets() as u32,
        u.n_markets() as u32,
    )
    .unwrap();
    assert_eq!(g.accounts, s.accounts);
    let (ai, mi) = (identity(u.n_assets()), identity(u.n_markets()));
    let (a, mk) = m.prices();
    let ctx = MarginContext::new(u, &g, Prices { asset: a, mark: mk }, Remap { asset: &ai, market: &mi }).unwrap();
    let cols = evaluate(&g, &ctx);
    for (j, &d) in s.dense.iter().enumerate() {
        let (r, _) = m.result(d);
        assert_eq!(r.equity.to_bits(), cols.equity[j].to_bits(), "equity of account {}", s.accounts[j]);
        assert_eq!(r.adj_equity[1].to_bits(), cols.adj_equity_maint[j].to_bits());
        assert_eq!(r.requirement[0].to_bits(), cols.im[j].to_bits());
        assert_eq!(r.requirement[1].to_bits(), cols.mm[j].to_bits());
        assert_eq!(r.liquidatable(), cols.liquidatable[j]);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Tick { slot: usize, factor: f64 },
    Balance { account: i64, asset: u32, qty: f64 },
    Position { account: i64, market: u32, qty: f64, entry: f64 },
    Fill { account: i64, market: u32, qty: f64, price: f64 },
    Orders { account: i64, market: u32, qty: f64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..5, 0.5f64..1.5).prop_map(|(slot, factor)| Op::Tick { slot, factor }),
        (1i64..7, 0u32..2, prop_oneof![Just(0.0), -1e4f64..1e5]).prop_map(|(account, asset, qty)| Op::Balance {
            account,
            asset,
            qty
        }),
        (1i64..7, 0u32..3, prop_oneof![Just(0.0), -5.0f64..5.0], 1_000.0f64..60_000.0)
            .prop_map(|(account, market, qty, entry)| Op::Position { account, market, qty, entry }),
        (1i64..7, 0u32..4, -3.0f64..3.0, 1_000.0f64..60_000.0).prop_map(|(account, market, qty, price)| Op::Fill {
            account,
            market,
            qty,
            price
        }),
        (1i64..7, 0u32..3, prop_oneof![Just(0.0), 0.1f64..2.0]).prop_map(|(account, market, qty)| Op::Orders {
            account,
            market,
            qty
        }),
    ]
}

fn run(u: &Universe, m: &mut Monitor, op: &Op) {
    match *op {
        Op::Tick { slot, factor } => {
            let (mut a, mut mk) = (m.prices().0.to_vec(), m.prices().1.to_vec());
            if slot < 1 {
                a[1] *= factor;
            } else {
                mk[slot - 1] *= factor;
            }
            m.on_prices(u, a, mk).unwrap();
        }
        Op::Balance { account, asset, qty } => {
            let c = Changes {
                balances: BalanceInput { account: &[account], code: &[asset], qty: &[qty] },
                positions: PositionInput { account: &[], code: &[], qty: &[], entry_price: &[], isolated_margin: &[] },
                side: &[],
                orders: None,
                clear_account: &[],
                clear_market: &[],
            };
            m.apply(u, c).unwrap();
        }
        Op::Position { account, market, qty, entry } => {
            let c = Changes {
                balances: BalanceInput { account: &[], code: &[], qty: &[] },
                positions: PositionInput {
                    account: &[account],
                    code: &[market],
                    qty: &[qty],
                    entry_price: &[entry],
                    isolated_margin: &[0.0],
                },
                side: &[],
                orders: None,
                clear_account: &[],
                clear_market: &[],
            };
            m.apply(u, c).unwrap();
        }
        Op::Fill { account, market, qty, price } => {
            if qty != 0.0 {
                m.fill(u, account, market, 0, qty, price).unwrap();
            }
        }
        Op::Orders { account, market, qty } => {
            let (oa, oc, os, oq, op, or) = ([account], [market], [0u8], [qty], [1_000.0], [false]);
            let orders = (qty > 0.0).then_some(OrderInput {
                account: &oa,
                code: &oc,
                side: &os,
                qty: &oq,
                price: &op,
                reduce_only: &or,
            });
            let clear = if qty > 0.0 { 0 } else { 1 };
            let c = Changes {
                balances: BalanceInput { account: &[], code: &[], qty: &[] },
                positions: PositionInput { account: &[], code: &[], qty: &[], entry_price: &[], isolated_margin: &[] },
                side: &[],
                orders,
                clear_account: &oa[..clear],
                clear_market: &oc[..clear],
            };
            m.apply(u, c).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn monitor_equals_batch_evaluation_and_replays_bit_for_bit(ops in proptest::collection::vec(op(), 1..30)) {
        let u = universe();
        // One by one in place (the default below its threshold), then every re-evaluation
        // through the kernel at each level this CPU runs.
        let mut paths = vec![None];
        paths.extend(Level::available().into_iter().map(Some));
        for path in paths {
            let mut m = monitor(&u);
            if let Some(level) = path {
                m.set_bulk(0, Some(level));
            }
            for op in &ops {
                run(&u, &mut m, op);
                assert_batch_equal(&u, &m);
            }
            let r = Monitor::replay(&u, start(&u), m.log()).unwrap();
            prop_assert!(r.log().same(m.log()));
            prop_assert_eq!(r.snapshot(), m.snapshot());
            assert_batch_equal(&u, &r);
        }
    }
}

#[test]
fn a_tick_through_the_kernel_keeps_its_rows_until_a_change() {
    let u = universe();
    for level in Level::available() {
        let mut m = monitor(&u);
        m.set_bulk(0, Some(level));
        let mut mk = m.prices().1.to_vec();
        for p in [45_000.0, 40_000.0] {
            mk[0] = p;
            m.on_prices(&u, m.prices().0.to_vec(), mk.clone()).unwrap();
            assert_batch_equal(&u, &m);
            // BTCUSDT's holders (accounts 1 and 2), gathered once and kept.
            assert_eq!(m.cache.len(), 1, "{level:?}");
        }
        let c = Changes {
            balances: BalanceInput { account: &[1], code: &[0], qty: &[20_000.0] },
            positions: PositionInput { account: &[], code: &[], qty: &[], entry_price: &[], isolated_margin: &[] },
            side: &[],
            orders: None,
            clear_account: &[],
            clear_market: &[],
        };
        m.apply(&u, c).unwrap();
        assert_eq!(m.cache.len(), 0);
        mk[0] = 41_000.0;
        m.on_prices(&u, m.prices().0.to_vec(), mk.clone()).unwrap();
        assert_batch_equal(&u, &m);
    }
}

#[test]
fn a_bad_change_leaves_the_monitor_as_it_was() {
    let u = universe();
    let mut m = monitor(&u);
    let before = (m.snapshot(), m.log().clone(), m.seq());
    // A duplicate balance key, then a non-finite position, then a non-positive mark.
    let c = Changes {
        balances: BalanceInput { account: &[1, 1], code: &[0, 0], qty: &[1.0, 2.0] },
        positions: PositionInput { account: &[], code: &[], qty: &[], entry_price: &[], isolated_margin: &[] },
        side: &[],
        orders: None,
        clear_account: &[],
        clear_market: &[],
    };
    assert!(matches!(m.apply(&u, c), Err(CoreError::Book { row: 1, other_row: Some(0), .. })));
    let c = Changes {
        balances: BalanceInput { account: &[1], code: &[0], qty: &[1.0] },
        positions: PositionInput {
            account: &[5],
            code: &[0],
            qty: &[f64::NAN],
            entry_price: &[1.0],
            isolated_margin: &[0.0],
        },
        side: &[],
        orders: None,
        clear_account: &[],
        clear_market: &[],
    };
    assert!(matches!(m.apply(&u, c), Err(CoreError::Book { row: 0, .. })));
    let mut mk = m.prices().1.to_vec();
    mk[0] = -1.0;
    assert!(matches!(m.on_prices(&u, m.prices().0.to_vec(), mk), Err(CoreError::Price { .. })));
    assert!(m.fill(&u, 1, 0, 0, 1.0, f64::INFINITY).is_err());
    assert_eq!(m.snapshot(), before.0);
    assert!(m.log().same(&before.1) && m.seq() == before.2);
}

#[test]
fn a_tick_reaches_only_the_holders_and_reports_crossings() {
    let u = universe();
    let mut m = monitor(&u);
    // Account 1: long 0.5 BTCUSDT from 48,000 with 10,000 USDT + 0.1 BTC. A crash to 30,000
    // takes it below maintenance.
    let mut mk = m.prices().1.to_vec();
    mk[0] = 30_000.0;
    let c = m.on_prices(&u, m.prices().0.to_vec(), mk).unwrap();
    assert!(c.iter().all(|c| c.account == 1 || c.account == 2), "{c:?}");
    let riskiest = m.riskiest(2);
    assert_eq!(riskiest.len(), 2);
    assert_batch_equal(&u, &m);
}
