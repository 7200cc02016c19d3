//! Perpetual funding: the rate from the premium index, and payments that are exactly
//! zero-sum per market in integer minor units ([`crate::money`]).
//!
//! Rate (Binance, "Introduction to Binance Futures Funding Rates",
//! <https://www.binance.com/en/support/faq/introduction-to-binance-futures-funding-rates-360033525031>):
//! F = P + clamp(I − P, −0.05%, +0.05%), P the interval's average premium index, I the
//! interest rate (0.01% per 8-hour interval); then capped to the market's [floor, cap].
//!
//! Payments (per market, rate r, mark m): a position of q contracts owes its notional × r
//! (the contract's notional at the mark, [`crate::contract::Contract::notional`]: q·cs·m
//! linear, in the settle asset, or q·cs/m inverse, in the settle coin), signed so that when
//! r > 0 longs pay shorts, when r < 0 shorts pay longs. In minor units ([`Minor`]):
//! 1. If the book's open interest is unbalanced (Σq ≠ 0 beyond 1e-12·Σ|q|, the noise of
//!    adding floats), an *external counterparty* holds the missing −Σq contracts, so the
//!    market is balanced and nothing is dropped.
//! 2. Every payer (counterparty included) pays its own amount notional·|r| rounded half to
//!    even to minor units ([`Minor::from_f64`], checked); the pot is their sum.
//! 3. The pot is split over the receivers (counterparty included, last) pro rata to
//!    notional — within one market, to |q| — by [`allocate`] (largest remainder).
//!
//! So Σ payments = 0 exactly in every market, and each receiver gets its own amount to
//! within a minor unit when open interest is balanced.

use rayon::prelude::*;

use crate::book::GroupedBook;
use crate::error::{CoreError, Result};
use crate::margin::MarginContext;
use crate::money::{allocate, Minor};
use crate::universe::{MarketKind, Universe};

/// Binance's interest rate per 8-hour interval: 0.03% a day.
pub const DEFAULT_INTEREST: f64 = 0.0001;
/// Binance's dampener on I − P: ±0.05%.
pub const DAMPENER: f64 = 0.0005;
/// Open interest counts as balanced when |Σq| ≤ this × Σ|q|.
pub const BALANCE_TOLERANCE: f64 = 1e-12;

/// F = P + clamp(I − P, −0.05%, 0.05%), then clamped to [floor, cap]. Inside the dampener
/// F is I itself (Binance: "F = P + (I − P) = I"), not the float P + (I − P).
#[inline]
pub fn funding_rate(premium: f64, interest: f64, floor: f64, cap: f64) -> f64 {
    let gap = interest - premium;
    let f = if gap.abs() <= DAMPENER { interest } else { premium + DAMPENER.copysign(gap) };
    f.clamp(floor, cap)
}

/// The interval's average premium index, Binance's time weighting: samples in time order,
/// sample i (1-based) weighs i, P = Σ i·Pᵢ / Σ i (later samples weigh more).
pub fn average_premium(samples: &[f64]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (i, &p) in samples.iter().enumerate() {
        let w = (i + 1) as f64;
        num += w * p;
        den += w;
    }
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// Rates of `n` markets from premium samples (`premium` row-major, `n_samples` per market,
/// averaged with [`average_premium`]), per-market interest, floor and cap.
pub fn funding_rates(
    premium: &[f64],
    n_samples: usize,
    interest: &[f64],
    floor: &[f64],
    cap: &[f64],
) -> Result<Vec<f64>> {
    let n = interest.len();
    if n_samples == 0 || premium.len() != n * n_samples || floor.len() != n || cap.len() != n {
        return Err(CoreError::config(
            "premium",
            format!(
                "{} premium values, {} floors and {} caps for {n} markets × {n_samples} samples",
                premium.len(),
                floor.len(),
                cap.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let samples = &premium[k * n_samples..(k + 1) * n_samples];
        if let Some(p) = samples.iter().find(|p| !p.is_finite()) {
            return Err(CoreError::config(format!("premium[{k}]"), format!("{p} must be finite")));
        }
        if !interest[k].is_finite() {
            return Err(CoreError::config(format!("interest_rate[{k}]"), format!("{} must be finite", interest[k])));
        }
        if floor[k].is_nan() || cap[k].is_nan() || floor[k] > cap[k] {
            return Err(CoreError::config(
                format!("cap[{k}]"),
                format!("floor {} must be ≤ cap {} (use ±inf for none)", floor[k], cap[k]),
            ));
        }
        out.push(funding_rate(average_premium(samples), interest[k], floor[k], cap[k]));
    }
    Ok(out)
}

/// One market's totals, minor units of its settle asset. `longs + shorts + counterparty`
/// is exactly 0.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MarketFunding {
    pub rate: f64,
    pub long_qty: f64,
    pub short_qty: f64,
    /// Contracts held by the external counterparty (−Σq, or 0 when balanced).
    pub counterparty_qty: f64,
    pub longs: Minor,
    pub shorts: Minor,
    pub counterparty: Minor,
}

impl MarketFunding {
    pub fn total(&self) -> Minor {
        self.longs + self.shorts + self.counterparty
    }
}

/// Payments per position (grouped order: ascending account, then book code) and totals per
/// universe market.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Funding {
    /// Dense account index of each position.
    pub account: Vec<u32>,
    /// Universe market index of each position.
    pub market: Vec<u32>,
    /// Minor units of the market's settle asset (negative = paid).
    pub payment: Vec<Minor>,
    pub markets: Vec<MarketFunding>,
}

fn check_rates(u: &Universe, rates: &[f64]) -> Result<()> {
    let mt = &u.markets;
    if rates.len() != u.n_markets() {
        return Err(CoreError::config("rates", format!("{} rates given for {} markets", rates.len(), u.n_markets())));
    }
    for (k, &r) in rates.iter().enumerate() {
        if !r.is_finite() || r.abs() >= 1.0 {
            return Err(CoreError::config(format!("rates[{}]", mt.symbol[k]), format!("{r} must be finite, |r| < 1")));
        }
        if r != 0.0 && mt.kind[k] != MarketKind::Perp {
            return Err(CoreError::config(
                format!("rates[{}]", mt.symbol[k]),
                "funding applies to perpetuals only".to_string(),
            ));
        }
    }
    Ok(())
}

/// Funding payments of every position at the context's marks; `rates` by universe market
/// (0 = no funding). Deterministic: independent of thread count and of input row order.
pub fn apply_funding(book: &GroupedBook, ctx: &MarginContext<'_>, rates: &[f64]) -> Result<Funding> {
    let u = ctx.universe;
    check_rates(u, rates)?;
    let pos = &book.positions;
    let n_pos = pos.qty.len();
    let nm = u.n_markets();

    let market: Vec<u32> = pos.code.par_iter().map(|&c| ctx.remap.market[c as usize]).collect();
    let mut account = vec![0u32; n_pos];
    account.par_chunks_mut(4096).enumerate().for_each(|(c, chunk)| {
        let first = c * 4096;
        let mut a = pos.offsets.partition_point(|&o| o <= first) - 1;
        for (j, slot) in chunk.iter_mut().enumerate() {
            while pos.offsets[a + 1] <= first + j {
                a += 1;
            }
            *slot = a as u32;
        }
    });

    // Positions bucketed by market, each bucket in ascending account order (stable).
    let mut offsets = vec![0usize; nm + 1];
    for &k in &market {
        offsets[k as usize + 1] += 1;
    }
    for k in 0..nm {
        offsets[k + 1] += offsets[k];
    }
    let mut cursor = offsets[..nm].to_vec();
    let mut bucket = vec![0u32; n_pos];
    for (j, &k) in market.iter().enumerate() {
        bucket[cursor[k as usize]] = j as u32;
        cursor[k as usize] += 1;
    }

    let per_market: Vec<(MarketFunding, Vec<Minor>)> = (0..nm)
        .into_par_iter()
        .map(|k| {
            let rows = &bucket[offsets[k]..offsets[k + 1]];
            let qty: Vec<f64> = rows.iter().map(|&j| pos.qty[j as usize]).collect();
            market_funding(u, k, rates[k], ctx.prices.mark[k], &qty)
        })
        .collect::<Result<_>>()?;

    let mut payment = vec![Minor::ZERO; n_pos];
    let mut markets = Vec::with_capacity(nm);
    for (k, (totals, pays)) in per_market.into_iter().enumerate() {
        for (&j, p) in bucket[offsets[k]..offsets[k + 1]].iter().zip(pays) {
            payment[j as usize] = p;
        }
        markets.push(totals);
    }
    Ok(Funding { account, market, payment, markets })
}

/// One market: payments of its positions (`qty` in bucket order) and its totals.
pub fn market_funding(
    u: &Universe,
    k: usize,
    rate: f64,
    mark: f64,
    qty: &[f64],
) -> Result<(MarketFunding, Vec<Minor>)> {
    let mt = &u.markets;
    let contract = u.contract(k);
    let mut totals = MarketFunding { rate, ..Default::default() };
    let (mut net, mut gross) = (0.0f64, 0.0f64);
    for &q in qty {
        net += q;
        gross += q.abs();
        if q > 0.0 {
            totals.long_qty += q;
        } else {
            totals.short_qty -= q;
        }
    }
    let cp_qty = if net.abs() <= BALANCE_TOLERANCE * gross { 0.0 } else { -net };
    totals.counterparty_qty = cp_qty;
    let mut pays = vec![Minor::ZERO; qty.len()];
    if rate == 0.0 || gross == 0.0 {
        return Ok((totals, pays));
    }
    // Positive rate: longs (q > 0) pay. Own amount: notional at the mark × |r|.
    let payer_sign = rate.signum();
    let owed = |q: f64| -> Result<Minor> {
        let notional = contract.notional(q, mark);
        // The field is named only on error (no allocation per position).
        Minor::from_f64(notional * rate.abs(), "funding").map_err(|e| match e {
            CoreError::Price { message, .. } => CoreError::price(format!("funding[{}]", mt.symbol[k]), message),
            other => other,
        })
    };
    let mut pot = Minor::ZERO;
    let mut receivers: Vec<usize> = vec![];
    let mut weights: Vec<f64> = vec![];
    for (i, &q) in qty.iter().enumerate() {
        if q * payer_sign > 0.0 {
            let a = owed(q)?;
            pays[i] = -a;
            pot += a;
        } else if q != 0.0 {
            receivers.push(i);
            weights.push(q.abs());
        }
    }
    let mut cp = Minor::ZERO;
    if cp_qty * payer_sign > 0.0 {
        cp = -owed(cp_qty)?;
        pot -= cp;
    } else if cp_qty != 0.0 {
        weights.push(cp_qty.abs());
    }
    let shares = allocate(pot, &weights)?;
    for (&i, &s) in receivers.iter().zip(&shares) {
        pays[i] = s;
    }
    if shares.len() > receivers.len() {
        cp = shares[receivers.len()];
    }
    for (&q, &p) in qty.iter().zip(&pays) {
        if q > 0.0 {
            totals.longs += p;
        } else {
            totals.shorts += p;
        }
    }
    totals.counterparty = cp;
    Ok((totals, pays))
}

/// Balances after funding, as rows (dense account, universe asset, qty): each account's
/// balance rows in book order with its payments added in the settle asset, then one new
/// row per settle asset it had no balance in. Amounts are added as f64 (the exact ledger
/// is [`Funding::payment`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BalanceRows {
    pub account: Vec<u32>,
    pub asset: Vec<u32>,
    pub qty: Vec<f64>,
}

pub fn balances_after(book: &GroupedBook, ctx: &MarginContext<'_>, funding: &Funding) -> BalanceRows {
    let u = ctx.universe;
    const CHUNK: usize = 4096;
    let n = book.n_accounts();
    let parts: Vec<BalanceRows> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut out = BalanceRows::default();
            let mut due: Vec<(u32, Minor)> = vec![];
            for a in c * CHUNK..((c + 1) * CHUNK).min(n) {
                due.clear();
                for j in book.positions.offsets[a]..book.positions.offsets[a + 1] {
                    let p = funding.payment[j];
                    if p.is_zero() {
                        continue;
                    }
                    let settle = u.markets.settle[funding.market[j] as usize];
                    match due.iter_mut().find(|d| d.0 == settle) {
                        Some(d) => d.1 += p,
                        None => due.push((settle, p)),
                    }
                }
                let rows = book.account(a);
                for (&code, &q) in rows.bal_code.iter().zip(rows.bal_qty) {
                    let i = ctx.remap.asset[code as usize];
                    let paid = match due.iter_mut().find(|d| d.0 == i) {
                        Some(d) => std::mem::take(&mut d.1).to_f64(),
                        None => 0.0,
                    };
                    out.account.push(a as u32);
                    out.asset.push(i);
                    out.qty.push(q + paid);
                }
                for &(i, p) in due.iter().filter(|d| !d.1.is_zero()) {
                    out.account.push(a as u32);
                    out.asset.push(i);
                    out.qty.push(p.to_f64());
                }
            }
            out
        })
        .collect();
    let mut all = BalanceRows::default();
    for p in parts {
        all.account.extend(p.account);
        all.asset.extend(p.asset);
        all.qty.extend(p.qty);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{group, BalanceInput, PositionInput};
    use crate::margin::{Prices, Remap};
    use crate::universe::fixtures::{asset, perp};
    use proptest::prelude::*;

    fn universe() -> Universe {
        let lin = perp("BTCUSDT", "USDT", "BTC", 50_000.0, &[(f64::INFINITY, 0.02, 0.01)]);
        let mut inv = perp("BTCUSD", "BTC", "BTC", 50_000.0, &[(f64::INFINITY, 0.02, 0.01)]);
        inv.inverse = true;
        inv.contract_size = 100.0;
        Universe::new(&[asset("USDT", 1.0), asset("BTC", 50_000.0)], &[lin, inv]).unwrap()
    }

    #[test]
    fn rate_equals_interest_inside_the_dampener() {
        // |I − P| ≤ 0.05% → F = P + (I − P) = I.
        assert_eq!(funding_rate(0.0003, 0.0001, f64::NEG_INFINITY, f64::INFINITY), 0.0001);
        // P = 0.1%: I − P = −0.09% clamps to −0.05% → F = 0.05%.
        assert!((funding_rate(0.001, 0.0001, -1.0, 1.0) - 0.0005).abs() < 1e-18);
        // P = −0.2%: I − P = 0.21% clamps to 0.05% → F = −0.15%, floored at −0.1%.
        assert_eq!(funding_rate(-0.002, 0.0001, -0.001, 0.001), -0.001);
    }

    #[test]
    fn average_premium_weighs_later_samples_more() {
        // (1·0.001 + 2·0.002 + 3·0.003) / 6 = 0.014 / 6
        assert!((average_premium(&[0.001, 0.002, 0.003]) - 0.014 / 6.0).abs() < 1e-18);
        assert_eq!(average_premium(&[]), 0.0);
    }

    #[test]
    fn balanced_market_pays_each_receiver_its_own_amount() {
        let u = universe();
        // 1.5 long, 0.5 + 1.0 short at 50,000, r = 0.01%: long pays 7.5 USDT.
        let (t, pays) = market_funding(&u, 0, 0.0001, 50_000.0, &[1.5, -0.5, -1.0]).unwrap();
        assert_eq!(pays, vec![Minor(-750_000_000), Minor(250_000_000), Minor(500_000_000)]);
        assert_eq!(t.counterparty, Minor::ZERO);
        assert_eq!(t.total(), Minor::ZERO);
    }

    #[test]
    fn unbalanced_open_interest_goes_to_the_external_counterparty() {
        let u = universe();
        // Longs 2, shorts 0.5: the counterparty is short 1.5 and receives its share.
        let (t, pays) = market_funding(&u, 0, 0.0001, 50_000.0, &[2.0, -0.5]).unwrap();
        assert_eq!(pays, vec![Minor(-1_000_000_000), Minor(250_000_000)]);
        assert_eq!(t.counterparty_qty, -1.5);
        assert_eq!(t.counterparty, Minor(750_000_000));
        // Negative rate: shorts pay; the counterparty (short 1.5) pays too.
        let (t, pays) = market_funding(&u, 0, -0.0001, 50_000.0, &[2.0, -0.5]).unwrap();
        assert_eq!(pays, vec![Minor(1_000_000_000), Minor(-250_000_000)]);
        assert_eq!(t.counterparty, Minor(-750_000_000));
    }

    #[test]
    fn inverse_payments_are_in_the_settle_coin() {
        let u = universe();
        // 1,000 contracts × 100 USD / 50,000 = 2 BTC notional; × 0.01% = 0.0002 BTC.
        let (t, pays) = market_funding(&u, 1, 0.0001, 50_000.0, &[1_000.0, -1_000.0]).unwrap();
        assert_eq!(pays, vec![Minor(-20_000), Minor(20_000)]);
        assert_eq!(t.total(), Minor::ZERO);
    }

    #[test]
    fn rates_for_dated_futures_are_rejected() {
        let mut fut = perp("BTC0925", "USDT", "BTC", 50_000.0, &[(f64::INFINITY, 0.02, 0.01)]);
        fut.kind = MarketKind::Future;
        let u = Universe::new(&[asset("USDT", 1.0)], &[fut]).unwrap();
        let e = check_rates(&u, &[0.0001]).unwrap_err();
        assert_eq!(e.to_string(), "rates[BTC0925]: funding applies to perpetuals only");
        assert!(check_rates(&u, &[0.0]).is_ok());
        assert!(check_rates(&u, &[]).is_err());
    }

    #[test]
    fn book_payments_land_on_settle_balances() {
        let u = universe();
        let book = group(
            BalanceInput { account: &[1, 2], code: &[0, 0], qty: &[100.0, 100.0] },
            PositionInput {
                account: &[2, 1, 3],
                code: &[0, 0, 1],
                qty: &[-1.0, 1.0, 10.0],
                entry_price: &[50_000.0; 3],
                isolated_margin: &[0.0; 3],
            },
            2,
            2,
        )
        .unwrap();
        let prices = Prices { asset: &[1.0, 50_000.0], mark: &[50_000.0, 50_000.0] };
        let ctx = MarginContext::new(&u, &book, prices, Remap { asset: &[0, 1], market: &[0, 1] }).unwrap();
        let f = apply_funding(&book, &ctx, &[0.0001, 0.0001]).unwrap();
        assert_eq!(f.account, vec![0, 1, 2]);
        // 10 × 100 USD / 50,000 = 0.02 BTC notional; × 0.01% = 0.000002 BTC = 200 minor.
        assert_eq!(f.payment, vec![Minor(-500_000_000), Minor(500_000_000), Minor(-200)]);
        assert_eq!(f.markets[1].counterparty, Minor(200));
        let b = balances_after(&book, &ctx, &f);
        assert_eq!(b.account, vec![0, 1, 2]);
        assert_eq!(b.asset, vec![0, 0, 1]);
        assert_eq!(b.qty, vec![95.0, 105.0, -0.000_002]);
    }

    proptest! {
        #[test]
        fn every_market_is_exactly_zero_sum(
            qty in prop::collection::vec(prop_oneof![Just(0.0), -1e4f64..1e4], 0..30),
            rate in -0.01f64..0.01,
            mark in 1e-3f64..1e6,
            k in 0usize..2,
        ) {
            let u = universe();
            let (t, pays) = market_funding(&u, k, rate, mark, &qty).unwrap();
            let sum: Minor = pays.iter().sum::<Minor>() + t.counterparty;
            prop_assert_eq!(sum, Minor::ZERO);
            prop_assert_eq!(t.total(), Minor::ZERO);
            // Payers never receive, receivers never pay.
            for (&q, &p) in qty.iter().zip(&pays) {
                prop_assert!(p.0 == 0 || (p.0 < 0) == (q * rate > 0.0));
            }
        }
    }
}
