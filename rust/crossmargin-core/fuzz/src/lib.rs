//! Fuzz targets of crossmargin-core: arbitrary bytes → columns, universes, prices and cascade
//! settings → the core's entry points. Each target returns normally or panics; a panic (or,
//! under libFuzzer's sanitizers, undefined behaviour) is a finding.
//!
//! One source for both harnesses: `cargo +nightly fuzz run <target>` (fuzz_targets/*.rs call
//! these functions) and the stable-Rust bounded run, `tests/fuzz.rs` of crossmargin-core, which
//! includes this file with `#[path]`. So this file names no crate of its own (no `crate::`).
//!
//! Decoding is total: every byte string decodes to some input (missing bytes read as 0). The
//! values are mostly in the engine's domain (so the fuzzer reaches the kernels) with special
//! values mixed in (NaN, ±inf, subnormals, ±0, 1e28, 1e300, i64::MIN, out-of-range codes).
//! The properties checked besides "no panic": grouping loses no account and no row, sums
//! duplicate balances exactly, in any order, and names a real row in its errors; results of inputs
//! that pass validation are finite where the model says they are (crossmargin_core::limits);
//! a cascade's ledger conserves exactly.

use std::sync::atomic::{AtomicU64, Ordering};

use crossmargin_core::brackets::{Bracket, Shape};
use crossmargin_core::cascade::adl::Deleverage;
use crossmargin_core::cascade::impact::Liquidity;
use crossmargin_core::cascade::policy::Slicing;
use crossmargin_core::cascade::{run, CascadeConfig};
use crossmargin_core::efficiency::capital_efficiency;
use crossmargin_core::liqprice::{liquidation_prices, LiqMove};
use crossmargin_core::stress::{stress, ScenarioPrices};
use crossmargin_core::{
    evaluate, group_with, AssetSpec, BalanceInput, Basis, CoreError, GroupedBook, MarginContext, MarketKind,
    MarketRules, MarketSpec, OptionSpec, OrderInput, PositionInput, Prices, Remap, Table, Universe,
};

/// How many cases got past validation into the kernels: evaluate, cascade run, cascade Ok.
/// The stable harness prints them, so a decoder that stops reaching the kernels shows.
pub static REACHED: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// A cursor over the fuzzer's bytes; reads past the end give zeros.
pub struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data, at: 0 }
    }

    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    pub fn u64(&mut self) -> u64 {
        (0..8).fold(0u64, |acc, _| (acc << 8) | self.u8() as u64)
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A number in `0..n` (n ≥ 1).
    pub fn below(&mut self, n: usize) -> usize {
        self.u8() as usize % n.max(1)
    }

    /// Mostly a moderate value of either sign, sometimes a special one, sometimes raw bits.
    pub fn f64(&mut self) -> f64 {
        const SPECIAL: [f64; 18] = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            1e-12,
            1e15,
            1e18,
            -1e18,
            1e28,
            f64::MIN_POSITIVE,
            5e-324,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            50_000.0,
            0.5,
            1e-19,
        ];
        match self.u8() {
            0..=159 => {
                let v = u16::from_be_bytes([self.u8(), self.u8()]) as f64 / 64.0;
                if self.bool() {
                    -v
                } else {
                    v
                }
            }
            160..=223 => SPECIAL[self.below(SPECIAL.len())],
            _ => f64::from_bits(self.u64()),
        }
    }

    /// A positive value (the magnitude of [`f64`](Self::f64), specials kept).
    pub fn positive(&mut self) -> f64 {
        self.f64().abs()
    }

    /// A rate in [0, 1], sometimes outside.
    pub fn rate(&mut self) -> f64 {
        match self.u8() {
            0..=239 => self.u8() as f64 / 255.0,
            _ => self.f64(),
        }
    }

    /// An account id: mostly one of a few small ids (so accounts share rows), sometimes an
    /// extreme or an arbitrary one.
    pub fn account(&mut self) -> i64 {
        match self.u8() {
            0..=219 => self.below(6) as i64,
            220..=229 => i64::MIN,
            230..=239 => i64::MAX,
            _ => self.u64() as i64,
        }
    }
}

/// Book columns decoded from bytes.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    pub bal_account: Vec<i64>,
    pub bal_code: Vec<u32>,
    pub bal_qty: Vec<f64>,
    pub pos_account: Vec<i64>,
    pub pos_code: Vec<u32>,
    pub pos_qty: Vec<f64>,
    pub pos_entry: Vec<f64>,
    pub pos_isolated: Vec<f64>,
    /// Position sides (empty: all one-way); now and then an invalid code or a sign clash.
    pub pos_side: Vec<u8>,
    pub ord_account: Vec<i64>,
    pub ord_code: Vec<u32>,
    pub ord_side: Vec<u8>,
    pub ord_qty: Vec<f64>,
    pub ord_price: Vec<f64>,
    pub ord_reduce_only: Vec<bool>,
    pub n_asset_codes: u32,
    pub n_market_codes: u32,
}

impl Columns {
    pub fn decode(b: &mut Bytes<'_>, n_asset_codes: u32, n_market_codes: u32) -> Self {
        let mut c = Columns { n_asset_codes, n_market_codes, ..Default::default() };
        // A code one past the end now and then: the out-of-range error path.
        let code = |b: &mut Bytes<'_>, n: u32| {
            let extra = (b.u8() < 16) as usize;
            b.below(n as usize + 1 + extra) as u32
        };
        for _ in 0..b.below(17) {
            c.bal_account.push(b.account());
            c.bal_code.push(code(b, n_asset_codes.max(1) - 1));
            c.bal_qty.push(b.f64());
        }
        for _ in 0..b.below(17) {
            c.pos_account.push(b.account());
            c.pos_code.push(code(b, n_market_codes.max(1) - 1));
            c.pos_qty.push(b.f64());
            c.pos_entry.push(match b.u8() {
                0..=199 => 50_000.0 * (0.5 + b.u8() as f64 / 255.0),
                _ => b.f64(),
            });
            c.pos_isolated.push(if b.u8() < 200 { 0.0 } else { b.f64() });
        }
        // A length mismatch now and then.
        if b.u8() == 255 {
            c.pos_entry.pop();
        }
        if b.u8() >= 128 {
            c.pos_side =
                c.pos_qty.iter().map(|q| if b.u8() < 250 { 1 + (*q < 0.0) as u8 } else { b.below(4) as u8 }).collect();
        }
        for _ in 0..b.below(9) {
            c.ord_account.push(b.account());
            c.ord_code.push(code(b, n_market_codes.max(1) - 1));
            c.ord_side.push(if b.u8() < 250 { b.below(2) as u8 } else { 2 });
            c.ord_qty.push(if b.u8() < 240 { 0.5 + b.u8() as f64 } else { b.f64() });
            c.ord_price.push(if b.u8() < 240 { 50_000.0 * (0.5 + b.u8() as f64 / 255.0) } else { b.f64() });
            c.ord_reduce_only.push(b.u8() < 64);
        }
        c
    }

    pub fn orders(&self) -> OrderInput<'_> {
        OrderInput {
            account: &self.ord_account,
            code: &self.ord_code,
            side: &self.ord_side,
            qty: &self.ord_qty,
            price: &self.ord_price,
            reduce_only: &self.ord_reduce_only,
        }
    }

    pub fn balances(&self) -> BalanceInput<'_> {
        BalanceInput { account: &self.bal_account, code: &self.bal_code, qty: &self.bal_qty }
    }

    pub fn positions(&self) -> PositionInput<'_> {
        PositionInput {
            account: &self.pos_account,
            code: &self.pos_code,
            qty: &self.pos_qty,
            entry_price: &self.pos_entry,
            isolated_margin: &self.pos_isolated,
        }
    }

    pub fn group(&self) -> Result<GroupedBook, CoreError> {
        let orders = (!self.ord_account.is_empty()).then(|| self.orders());
        group_with(self.balances(), self.positions(), &self.pos_side, orders, self.n_asset_codes, self.n_market_codes)
    }
}

/// Grouping either names a real row of a real table, or keeps every account and row.
pub fn check_grouping(c: &Columns, result: &Result<GroupedBook, CoreError>) {
    let g = match result {
        Err(CoreError::Book { table, row, other_row, .. }) => {
            let n = match table {
                Table::Balances => c.bal_account.len(),
                Table::Positions => c.pos_account.len(),
                Table::Orders => c.ord_account.len(),
            };
            let longest = n.max(c.pos_entry.len());
            assert!(*row < longest.max(1), "error names row {row} of a {n}-row table");
            if let Some(o) = other_row {
                assert!(o < row, "the other row of a duplicate comes first");
            }
            return;
        }
        Err(e) => panic!("grouping raised a non-book error: {e}"),
        Ok(g) => g,
    };
    // Accounts: the ascending union of the tables' ids.
    let mut ids: Vec<i64> = c.bal_account.iter().chain(&c.pos_account).chain(&c.ord_account).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(g.accounts, ids, "accounts are the sorted union of the tables");
    assert_eq!(g.orders.code.len(), c.ord_account.len(), "every order row is kept");
    let n = g.n_accounts();
    for offsets in [&g.balances.offsets, &g.positions.offsets] {
        assert_eq!(offsets.len(), n + 1);
        assert_eq!(offsets[0], 0);
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "offsets never decrease");
    }
    assert_eq!(g.positions.code.len(), c.pos_account.len(), "every position row is kept");
    // Balances: one row per (account, code), the exact sum of its input rows (correctly
    // rounded, so in any order: reversing the rows gives the same bits).
    for a in 0..n {
        let rows = g.balances.offsets[a]..g.balances.offsets[a + 1];
        let codes = &g.balances.code[rows.clone()];
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "one balance row per asset, ordered by code");
        for (&code, &qty) in codes.iter().zip(&g.balances.qty[rows]) {
            let rows: Vec<f64> = (0..c.bal_account.len())
                .filter(|&r| c.bal_account[r] == g.accounts[a] && c.bal_code[r] == code)
                .map(|r| c.bal_qty[r])
                .collect();
            assert!(!rows.is_empty(), "a grouped balance comes from an input row");
            let want = crossmargin_core::fsum::exact_sum(rows.iter().copied());
            let reversed = crossmargin_core::fsum::exact_sum(rows.iter().rev().copied());
            assert_eq!(qty.to_bits(), want.to_bits(), "duplicate balances merge to their exact sum");
            assert_eq!(want.to_bits(), reversed.to_bits(), "the exact sum does not depend on row order");
        }
        let p = g.positions.offsets[a]..g.positions.offsets[a + 1];
        for &row in &g.positions.row[p] {
            assert_eq!(c.pos_account[row as usize], g.accounts[a], "a position stays with its account");
        }
    }
}

/// Target 1: arbitrary bytes → columns → group().
pub fn fuzz_group(data: &[u8]) {
    let mut b = Bytes::new(data);
    let (na, nm) = (b.below(5) as u32, b.below(5) as u32);
    let c = Columns::decode(&mut b, na, nm);
    let result = c.group();
    check_grouping(&c, &result);
}

fn decode_universe(b: &mut Bytes<'_>) -> Result<Universe, CoreError> {
    let n_assets = 1 + b.below(3);
    let mut assets = Vec::with_capacity(n_assets);
    for i in 0..n_assets {
        let mut tiers = vec![];
        let mut bound = 0.0;
        for _ in 0..b.below(3) {
            bound += if b.u8() < 230 { 1_000.0 * (1 + b.u8() as u32) as f64 } else { b.f64() };
            tiers.push((if b.u8() < 20 { f64::INFINITY } else { bound }, b.rate()));
        }
        let w = [b.rate(), b.rate()];
        assets.push(AssetSpec {
            symbol: format!("A{i}"),
            price: if i == 0 && b.u8() < 200 { 1.0 } else { b.positive() },
            weight: [w[0].min(w[1]), w[0].max(w[1])],
            liability_weight: [1.0 + b.rate(), 1.0 + b.rate()],
            haircut_tiers: tiers,
            imf_factor: if b.u8() < 200 { 0.0 } else { b.rate() / 100.0 },
            scale_initial_weight_start: 0.0,
            total_deposits: 0.0,
            // Two-sided valuation on some assets; now and then a bid above the ask (rejected).
            bid_ask: (b.u8() >= 220).then(|| {
                let spread = b.rate() / 10.0;
                (1.0 - spread, 1.0 + spread * if b.u8() < 10 { -2.0 } else { 1.0 })
            }),
        });
        if let Some((bid, ask)) = assets[i].bid_ask {
            let p = assets[i].price;
            assets[i].bid_ask = Some((bid * p, ask * p));
        }
    }
    let n_markets = b.below(4);
    let mut markets = Vec::with_capacity(n_markets);
    for k in 0..n_markets {
        let kind = match b.u8() {
            0..=179 => MarketKind::Perp,
            180..=219 => MarketKind::Future,
            _ => MarketKind::Option,
        };
        let mut brackets = vec![];
        let (mut bound, mut imr, mut mmr) = (0.0f64, 0.0f64, 0.0f64);
        for j in 0..if kind == MarketKind::Option { b.below(2) } else { 1 + b.below(3) } {
            bound += if b.u8() < 230 { 10_000.0 * (1 + b.u8() as u32) as f64 } else { b.f64() };
            mmr = (mmr + b.rate() / 10.0).min(1.0);
            imr = (imr.max(mmr) + b.rate() / 10.0).min(1.0);
            let last = j > 0 && b.u8() < 80;
            brackets.push(Bracket { bound: if last { f64::INFINITY } else { bound }, imr, mmr });
        }
        let unknown = (b.u8() < 8) as usize;
        let settle = b.below(n_assets + unknown);
        let option = (kind == MarketKind::Option || b.u8() == 255).then(|| OptionSpec {
            call: b.bool(),
            strike: 50_000.0 * (0.5 + b.u8() as f64 / 255.0),
            expiry: b.rate(),
            iv: 0.05 + b.rate(),
            rate: b.rate() / 10.0,
            im_base: OptionSpec::DERIBIT_IM_BASE,
            im_min: OptionSpec::DERIBIT_IM_MIN,
            mm_base: OptionSpec::DERIBIT_MM_BASE,
        });
        // Venue rules: requirement shapes, a size slope, the entry basis, a fee reserve (now
        // and then on an option or with several brackets, which the universe rejects).
        let shapes = [Shape::Continuous, Shape::Step, Shape::SizeScaled];
        let shape = [shapes[b.below(3)], shapes[b.below(3)]];
        let rules = MarketRules {
            shape: if b.u8() < 150 { [Shape::Continuous; 2] } else { shape },
            rate_slope: [0, 1].map(|m| if shape[m] == Shape::SizeScaled { b.rate() / 1_000.0 } else { 0.0 }),
            maint_basis: if b.u8() < 60 { Basis::Entry } else { Basis::Mark },
            liquidation_fee: if b.u8() < 60 { b.rate() / 100.0 } else { 0.0 },
        };
        markets.push(MarketSpec {
            symbol: format!("M{k}"),
            kind,
            settle: format!("A{settle}"),
            // An underlying named like an asset reads its price from that asset.
            underlying: if b.bool() { format!("A{}", b.below(n_assets)) } else { format!("U{}", b.below(2)) },
            mark: if b.u8() < 200 { 50_000.0 * (0.5 + b.u8() as f64 / 255.0) } else { b.positive() },
            contract_size: if b.u8() < 200 { [1.0, 0.001, 100.0][b.below(3)] } else { b.f64() },
            inverse: b.u8() < 60,
            brackets,
            imf_factor: if b.u8() < 200 { 0.0 } else { b.rate() / 100.0 },
            upnl_weight: [b.rate(), b.rate()],
            upnl_imf_factor: 0.0,
            upnl_cap_initial: f64::INFINITY,
            option,
            orders: Default::default(),
            rules,
        });
    }
    Universe::new(&assets, &markets)
}

/// Universe, book and remaps of one evaluation, or None where validation (rightly) refused.
struct Case {
    universe: Universe,
    book: GroupedBook,
    asset_remap: Vec<u32>,
    market_remap: Vec<u32>,
    assets: Vec<f64>,
    marks: Vec<f64>,
}

fn decode_case(b: &mut Bytes<'_>) -> Option<Case> {
    let universe = decode_universe(b).ok()?;
    let (na, nm) = (universe.n_assets() as u32, universe.n_markets() as u32);
    // Book codes: one per universe symbol, in a shuffled order (a book's own dictionary).
    let c = Columns::decode(b, na, nm);
    let result = c.group();
    check_grouping(&c, &result);
    let book = result.ok()?;
    let rot = |n: u32, s: usize| (0..n).map(|i| (i + s as u32) % n.max(1)).collect::<Vec<u32>>();
    let asset_remap = rot(na, b.below(3));
    let market_remap = rot(nm, b.below(3));
    let mut assets = universe.assets.price.clone();
    let mut marks = universe.markets.mark.clone();
    // One call's prices: the universe's, or some moved (sometimes out of the domain).
    for p in assets.iter_mut().chain(marks.iter_mut()) {
        match b.u8() {
            0..=199 => {}
            200..=239 => *p *= b.rate() * 2.0,
            _ => *p = b.f64(),
        }
    }
    Some(Case { universe, book, asset_remap, market_remap, assets, marks })
}

/// Target 2: a small universe and book → evaluate, liquidation prices, stress, capital
/// efficiency. Accepted inputs give finite results.
pub fn fuzz_evaluate(data: &[u8]) {
    let mut b = Bytes::new(data);
    let Some(case) = decode_case(&mut b) else { return };
    let remap = Remap { asset: &case.asset_remap, market: &case.market_remap };
    let prices = Prices { asset: &case.assets, mark: &case.marks };
    let Ok(ctx) = MarginContext::new(&case.universe, &case.book, prices, remap) else { return };
    let n = case.book.n_accounts();

    REACHED[0].fetch_add(1, Ordering::Relaxed);
    let r = evaluate(&case.book, &ctx);
    assert_eq!(r.equity.len(), n);
    for a in 0..n {
        for (name, x) in [
            ("equity", r.equity[a]),
            ("upnl", r.upnl[a]),
            ("adj_equity_initial", r.adj_equity_initial[a]),
            ("adj_equity_maint", r.adj_equity_maint[a]),
            ("im", r.im[a]),
            ("mm", r.mm[a]),
        ] {
            assert!(
                x.is_finite(),
                "{name} of account {a} is {x} on validated input: {:?} {:?} {:?}",
                case.universe.markets,
                case.book,
                (&case.assets, &case.marks)
            );
        }
        assert!(r.im[a] >= 0.0 && r.mm[a] >= 0.0, "requirements are never negative");
        assert!(r.margin_ratio[a] >= 0.0, "margin ratio is ≥ 0 (or +inf)");
        if r.adj_equity_maint[a] < r.mm[a] {
            assert!(r.liquidatable[a], "below maintenance is liquidatable");
        }
        assert_eq!(r.bankrupt[a], r.equity[a] < 0.0);
    }

    let how = if b.bool() { LiqMove::Underlying } else { LiqMove::Mark };
    let lp = liquidation_prices(&case.book, &ctx, how);
    assert_eq!(lp.liq_price.len(), case.book.positions.code.len());
    assert!(lp.liq_price.iter().all(|p| p.is_nan() || *p >= 0.0), "a liquidation price is ≥ 0 or NaN");

    // Refused (a typed error) only for a book with orders or a two-sided universe.
    match capital_efficiency(&case.book, &ctx) {
        Ok(ce) => assert_eq!(ce.equity.len(), n),
        Err(e) => {
            assert!(case.book.has_orders() || ctx.universe.assets.side_factor.iter().any(|f| *f != [1.0, 1.0]), "{e}")
        }
    }

    let n_sc = 1 + b.below(3);
    let mut sa = Vec::with_capacity(n_sc * case.assets.len());
    let mut sm = Vec::with_capacity(n_sc * case.marks.len());
    for _ in 0..n_sc {
        let mv = if b.u8() < 240 { b.rate() * 2.0 } else { b.f64() };
        sa.extend(case.assets.iter().map(|p| p * mv));
        sm.extend(case.marks.iter().map(|p| p * mv));
    }
    let sc = ScenarioPrices { n: n_sc, asset: &sa, mark: &sm };
    if let Ok(s) = stress(&case.book, &ctx, sc, true) {
        assert_eq!(s.liquidatable.len(), n_sc);
        assert!(s.shortfall.iter().all(|x| x.is_finite() && *x >= 0.0));
    }
}

/// Target 3: a small universe and book → a cascade with arbitrary settings. When it runs,
/// the ledger conserves exactly.
pub fn fuzz_cascade(data: &[u8]) {
    let mut b = Bytes::new(data);
    let Some(case) = decode_case(&mut b) else { return };
    let (na, nm) = (case.universe.n_assets(), case.universe.n_markets());
    let steps = 1 + b.below(2);
    let mut step_asset_prices = Vec::with_capacity(steps);
    let mut step_marks = Vec::with_capacity(steps);
    for _ in 0..steps {
        let mv = if b.u8() < 240 { 0.05 + b.rate() * 1.2 } else { b.f64() };
        step_asset_prices.push(case.assets.iter().map(|p| p * mv).collect());
        step_marks.push(case.marks.iter().map(|p| p * mv).collect());
    }
    let liquidity = (0..nm)
        .map(|_| match b.below(3) {
            0 => Liquidity::None,
            1 => Liquidity::SqrtImpact {
                y: b.rate(),
                sigma: b.rate() / 10.0,
                daily_volume: 1e3 + b.positive(),
                permanent: b.rate(),
            },
            _ => {
                let pts = 1 + b.below(3);
                let (mut d, mut q) = (0.0, 0.0);
                let (mut distance, mut cumulative) = (vec![], vec![]);
                for _ in 0..pts {
                    d += b.rate() / 10.0;
                    q += if b.u8() < 240 { 1e4 * b.u8() as f64 } else { b.f64() };
                    distance.push(d);
                    cumulative.push(q);
                }
                Liquidity::Depth { distance, cumulative }
            }
        })
        .collect();
    let cfg = CascadeConfig {
        step_asset_prices,
        step_marks,
        liquidity,
        decay: b.rate(),
        liquidation_fee: b.rate() / 20.0,
        slicing: Slicing {
            fraction: if b.u8() < 240 { 0.05 + b.rate() * 0.95 } else { b.f64() },
            target_ratio: if b.bool() { 0.0 } else { b.rate() * 0.99 },
            min_notional: if b.u8() < 240 { 10.0 } else { b.f64() },
        },
        max_rounds: 1 + b.below(8),
        max_liquidations_per_round: b.below(3),
        deleverage: [Deleverage::None, Deleverage::Adl, Deleverage::SocializedLoss][b.below(3)],
        insurance_fund: (0..na).map(|_| if b.u8() < 230 { b.positive().min(1e9) } else { b.f64() }).collect(),
    };
    REACHED[1].fetch_add(1, Ordering::Relaxed);
    let out = run(&case.universe, &case.book, &case.asset_remap, &case.market_remap, &cfg);
    if let Ok(out) = out {
        REACHED[2].fetch_add(1, Ordering::Relaxed);
        assert_eq!(out.totals_before, out.totals_after, "the cascade's ledger conserves");
        let steps = cfg.step_marks.len();
        assert!(out.outcome.rounds.round.len() <= cfg.max_rounds * steps, "at most max_rounds rounds a step");
        for s in 0..steps as u32 {
            let in_step = out.outcome.rounds.step.iter().filter(|&&x| x == s).count();
            assert!(in_step <= cfg.max_rounds, "step {s}: at most max_rounds rounds");
        }
    }
}
