//! European options on an underlying: Black-76 price and greeks, and the Deribit-style
//! standard margin of a short option.
//!
//! Black (1976), "The pricing of commodity contracts", J. Financial Economics 3: the value of
//! a European option on a forward F with strike K, T years, volatility σ and rate r is
//! `e^{−rT}(F·N(d1) − K·N(d2))` (call) and `e^{−rT}(K·N(−d2) − F·N(−d1))` (put), with
//! `d1 = (ln(F/K) + σ²T/2) / (σ√T)`, `d2 = d1 − σ√T`. Greeks as in Haug, "The Complete
//! Guide to Option Pricing Formulas" (2nd ed.), §1.1.7 and §2.1.

use crate::contract::Contract;

/// An option market's contract terms and standard-margin parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptionSpec {
    pub call: bool,
    pub strike: f64,
    /// Years to expiry (≥ 0).
    pub expiry: f64,
    pub iv: f64,
    pub rate: f64,
    /// Deribit standard margin: IM rate before the OTM reduction, its floor, MM rate.
    pub im_base: f64,
    pub im_min: f64,
    pub mm_base: f64,
}

impl OptionSpec {
    /// Deribit's published standard-margin parameters for BTC/ETH options
    /// (https://doc.tslab.pro/tslab/eng/data-providers/connection-to-broker/deribit-cryptocurrency-exchange/deribit-margin-requirements-calculation):
    /// IM = max(0.15 − OTM/S, 0.1)·S + mark, MM = 0.075·S + mark.
    pub const DERIBIT_IM_BASE: f64 = 0.15;
    pub const DERIBIT_IM_MIN: f64 = 0.10;
    pub const DERIBIT_MM_BASE: f64 = 0.075;

    /// Black-76 of this option at forward `forward` and volatility `iv` (scenario inputs).
    #[inline]
    pub fn black76(&self, forward: f64, iv: f64) -> Greeks {
        black76(forward, self.strike, self.expiry, iv, self.rate, self.call)
    }
}

/// Price and sensitivities of one option on one unit of the underlying. `theta` is the
/// change of value per year of calendar time passing (−∂V/∂T); `vega` is per 1.00 of
/// volatility (per 100 vol points).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Greeks {
    pub price: f64,
    pub delta: f64,
    pub gamma: f64,
    pub vega: f64,
    pub theta: f64,
}

const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Standard normal density.
#[inline]
pub fn norm_pdf(x: f64) -> f64 {
    FRAC_1_SQRT_2PI * (-0.5 * x * x).exp()
}

/// Complementary error function to about 1e-15 relative: the Maclaurin series of erf below
/// 2, the continued fraction erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))
/// (Abramowitz & Stegun 7.1.5 and 7.1.14, evaluated by the modified Lentz method) above.
pub fn erfc(x: f64) -> f64 {
    use std::f64::consts::FRAC_2_SQRT_PI;
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 2.0 {
        let (x2, mut term, mut sum) = (x * x, x, x);
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -x2 / n;
            sum += term / (2.0 * n + 1.0);
        }
        return 1.0 - FRAC_2_SQRT_PI * sum;
    }
    if x > 27.0 {
        return 0.0;
    }
    // f = x + a1/(x + a2/(x + ...)), a_n = n/2.
    let tiny = 1e-300;
    let (mut f, mut c, mut d) = (x, x, 0.0);
    for n in 1..300 {
        let a = n as f64 / 2.0;
        d = x + a * d;
        d = if d == 0.0 { tiny } else { d };
        c = x + a / c;
        c = if c == 0.0 { tiny } else { c };
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / (f * std::f64::consts::PI.sqrt())
}

/// Standard normal distribution function: N(x) = erfc(−x/√2)/2.
#[inline]
pub fn norm_cdf(x: f64) -> f64 {
    0.5 * erfc(-x * std::f64::consts::FRAC_1_SQRT_2)
}

/// Black-76 price and greeks of a call (`call = true`) or put on one unit of the underlying.
/// At expiry (`years = 0`) or zero volatility the option is worth its discounted intrinsic
/// value and has the delta of a step; gamma and vega are 0.
pub fn black76(forward: f64, strike: f64, years: f64, vol: f64, rate: f64, call: bool) -> Greeks {
    let df = (-rate * years).exp();
    let sd = vol * years.sqrt();
    let usable = sd > 0.0 && forward > 0.0 && strike > 0.0;
    if !usable {
        let intrinsic = if call { (forward - strike).max(0.0) } else { (strike - forward).max(0.0) };
        let itm = if call { forward > strike } else { forward < strike };
        let delta = match (itm, call) {
            (false, _) => 0.0,
            (true, true) => df,
            (true, false) => -df,
        };
        let price = df * intrinsic;
        return Greeks { price, delta, gamma: 0.0, vega: 0.0, theta: rate * price };
    }
    let d1 = ((forward / strike).ln() + 0.5 * sd * sd) / sd;
    let d2 = d1 - sd;
    let pdf = norm_pdf(d1);
    let (price, delta) = if call {
        (df * (forward * norm_cdf(d1) - strike * norm_cdf(d2)), df * norm_cdf(d1))
    } else {
        (df * (strike * norm_cdf(-d2) - forward * norm_cdf(-d1)), -df * norm_cdf(-d1))
    };
    let gamma = df * pdf / (forward * sd);
    let vega = df * forward * pdf * years.sqrt();
    // Haug §1.1.7 (Black-76): Θ = −F·e^{−rT}·n(d1)·σ/(2√T) + r·V.
    let theta = -df * forward * pdf * vol / (2.0 * years.sqrt()) + rate * price;
    Greeks { price: price.max(0.0), delta, gamma, vega, theta }
}

/// Price and sensitivities of a European option under the generalised Black-Scholes-Merton
/// model (Haug, "The Complete Guide to Option Pricing Formulas", 2nd ed., §1.1.6 and §2.1).
///
/// With respect to the spot S (cost of carry b, rate r, the carry yield q = r − b held fixed):
/// `delta` ∂V/∂S, `gamma` ∂²V/∂S², `vega` ∂V/∂σ (per 1.00 of volatility), `theta` −∂V/∂T
/// per year, `rho` ∂V/∂r (q fixed, so b moves with r: b = r, r − q, r − r_f), `carry_rho`
/// ∂V/∂b (Haug's cost-of-carry sensitivity; the dividend or foreign-rate rho ∂V/∂q is its
/// negative). With respect to the forward F = S·e^{bT}: `delta_forward` ∂V/∂F, `gamma_forward`
/// ∂²V/∂F² and `rho_forward` ∂V/∂r with F fixed (−T·V, Haug's futures-option rho).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BsmGreeks {
    pub price: f64,
    pub delta: f64,
    pub gamma: f64,
    pub vega: f64,
    pub theta: f64,
    pub rho: f64,
    pub carry_rho: f64,
    pub delta_forward: f64,
    pub gamma_forward: f64,
    pub rho_forward: f64,
}

/// Generalised Black-Scholes-Merton (Haug 2nd ed. §1.1.6): on a spot S with cost of carry b,
/// d1 = (ln(S/K) + (b + σ²/2)T)/(σ√T), d2 = d1 − σ√T; call = S·e^{(b−r)T}N(d1) − K·e^{−rT}N(d2),
/// put = K·e^{−rT}N(−d2) − S·e^{(b−r)T}N(−d1). b = r: Black-Scholes (stock); b = r − q:
/// Merton (index); b = r − r_f: Garman-Kohlhagen (FX); b = 0: Black-76 (futures, S = F).
/// At expiry or zero volatility the option is worth its discounted forward intrinsic value.
pub fn bsm(spot: f64, strike: f64, years: f64, vol: f64, rate: f64, carry: f64, call: bool) -> BsmGreeks {
    let (t, df) = (years, (-rate * years).exp());
    // e^{(b−r)T}: the carry discount of the spot leg.
    let cf = ((carry - rate) * t).exp();
    let fwd_factor = (carry * t).exp();
    let sd = vol * t.sqrt();
    let w = if call { 1.0 } else { -1.0 };
    if !(sd > 0.0 && spot > 0.0 && strike > 0.0) {
        let itm = w * (spot * fwd_factor - strike) > 0.0;
        let price = if itm { w * (spot * cf - strike * df) } else { 0.0 };
        let (nd1, nd2) = if itm { (1.0, 1.0) } else { (0.0, 0.0) };
        return BsmGreeks {
            price,
            delta: w * cf * nd1,
            gamma: 0.0,
            vega: 0.0,
            theta: if itm { -w * (carry - rate) * spot * cf - w * rate * strike * df } else { 0.0 },
            rho: w * t * strike * df * nd2,
            carry_rho: w * t * spot * cf * nd1,
            delta_forward: w * df * nd1,
            gamma_forward: 0.0,
            rho_forward: -t * price,
        };
    }
    let d1 = ((spot / strike).ln() + (carry + 0.5 * vol * vol) * t) / sd;
    let d2 = d1 - sd;
    let (nd1, nd2) = (norm_cdf(w * d1), norm_cdf(w * d2));
    let pdf = norm_pdf(d1);
    let price = w * (spot * cf * nd1 - strike * df * nd2);
    // Haug §2.1: theta = −S·e^{(b−r)T}n(d1)σ/(2√T) ∓ (b − r)S·e^{(b−r)T}N(±d1) ∓ rK·e^{−rT}N(±d2).
    let theta =
        -spot * cf * pdf * vol / (2.0 * t.sqrt()) - w * (carry - rate) * spot * cf * nd1 - w * rate * strike * df * nd2;
    let gamma = cf * pdf / (spot * sd);
    BsmGreeks {
        price: price.max(0.0),
        delta: w * cf * nd1,
        gamma,
        vega: spot * cf * pdf * t.sqrt(),
        theta,
        rho: w * t * strike * df * nd2,
        carry_rho: w * t * spot * cf * nd1,
        delta_forward: w * df * nd1,
        gamma_forward: gamma / (fwd_factor * fwd_factor),
        rho_forward: -t * price.max(0.0),
    }
}

/// Deribit-style standard margin of one option position, per unit of contract size times
/// quantity, in the settle asset. `mark` is the option's mark in settle units per unit of
/// underlying, `spot` the underlying's price in settle units (the underlying price for a
/// linear option, 1 for an inverse one: one coin of underlying is one coin of settle).
/// Long positions need nothing; a short needs
/// IM = max(im_base − OTM/S, im_min)·S + mark and MM = mm_base·S + mark.
#[inline]
pub fn short_requirement(spec: &OptionSpec, underlying_price: f64, spot: f64, mark: f64) -> [f64; 2] {
    let otm = if spec.call { spec.strike - underlying_price } else { underlying_price - spec.strike }.max(0.0);
    let im_rate = (spec.im_base - otm / underlying_price).max(spec.im_min);
    [im_rate * spot + mark, spec.mm_base * spot + mark]
}

/// An option position's numbers in USD: `value` (what it is worth: q·cs·mark), `upnl`
/// (q·cs·(mark − entry)) and the (initial, maintenance) requirement of a short.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OptionMargin {
    pub value: f64,
    pub upnl: f64,
    pub requirement: [f64; 2],
}

/// Marks and entry prices of an option are in settle units per unit of underlying (USD for a
/// linear option, coin for an inverse one, Deribit's quotation): value and uPnL are the
/// contract's ([`Contract`], premium payoff) in USD; `inverse` sets the requirement's spot.
#[inline]
#[allow(clippy::too_many_arguments)]
pub fn option_margin(
    spec: &OptionSpec,
    inverse: bool,
    qty: f64,
    contract_size: f64,
    entry: f64,
    mark: f64,
    settle_price: f64,
    underlying_price: f64,
) -> OptionMargin {
    let contract = Contract::new(contract_size, inverse, true);
    let size = contract.size_of(qty);
    let mut out = OptionMargin {
        value: contract.value_usd(qty, mark, settle_price),
        upnl: contract.pnl(qty, entry, mark) * settle_price,
        requirement: [0.0, 0.0],
    };
    if size < 0.0 {
        let spot = if inverse { 1.0 } else { underlying_price };
        let r = short_requirement(spec, underlying_price, spot, mark);
        out.requirement = [-size * r[0] * settle_price, -size * r[1] * settle_price];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn norm_cdf_matches_tabulated_values() {
        assert!(close(norm_cdf(0.0), 0.5, 1e-15));
        assert!(close(norm_cdf(1.0), 0.841_344_746_068_542_9, 1e-14));
        assert!(close(norm_cdf(-1.96), 0.024_997_895_148_220_435, 1e-15));
        assert!(close(norm_cdf(-8.0) / 6.220_960_574_271_82e-16, 1.0, 1e-13), "{}", norm_cdf(-8.0));
        for &x in &[0.1, 0.5, 1.0, 1.9, 2.1, 3.0, 5.0] {
            // erfc(x) = 1 − erf(x): both branches agree at the seam and with the tables.
            assert!(close(erfc(x) + erfc(-x), 2.0, 1e-15));
        }
        assert!(close(erfc(2.0) / 0.004_677_734_981_047_266, 1.0, 1e-14), "{}", erfc(2.0));
        assert!(close(norm_cdf(3.0) + norm_cdf(-3.0), 1.0, 1e-15));
    }

    #[test]
    fn black76_matches_haug_example() {
        // Haug (2007) §1.1.4 example: F = 19, K = 19, T = 0.75, r = 0.10, σ = 0.28:
        // call = put = 1.7011.
        let c = black76(19.0, 19.0, 0.75, 0.28, 0.10, true);
        let p = black76(19.0, 19.0, 0.75, 0.28, 0.10, false);
        assert!(close(c.price, 1.7011, 5e-5), "{}", c.price);
        assert!(close(p.price, 1.7011, 5e-5), "{}", p.price);
    }

    #[test]
    fn put_call_parity_holds() {
        for &(f, k, t, v, r) in &[(100.0, 90.0, 0.5, 0.3, 0.02), (50_000.0, 70_000.0, 0.1, 0.8, 0.0)] {
            let c = black76(f, k, t, v, r, true);
            let p = black76(f, k, t, v, r, false);
            let df = (-r * t).exp();
            assert!(close(c.price - p.price, df * (f - k), 1e-9 * f));
            assert!(close(c.delta - p.delta, df, 1e-12));
            assert!(close(c.gamma, p.gamma, 1e-15) && close(c.vega, p.vega, 1e-9));
        }
    }

    #[test]
    fn greeks_match_finite_differences() {
        let (f, k, t, v, r) = (100.0, 105.0, 0.4, 0.25, 0.03);
        let g = black76(f, k, t, v, r, true);
        let h = 1e-4;
        let up = black76(f + h, k, t, v, r, true).price;
        let dn = black76(f - h, k, t, v, r, true).price;
        assert!(close(g.delta, (up - dn) / (2.0 * h), 1e-7));
        assert!(close(g.gamma, (up - 2.0 * g.price + dn) / (h * h), 1e-4));
        let vu = black76(f, k, t, v + h, r, true).price;
        let vd = black76(f, k, t, v - h, r, true).price;
        assert!(close(g.vega, (vu - vd) / (2.0 * h), 1e-6));
        let tu = black76(f, k, t + h, v, r, true).price;
        let td = black76(f, k, t - h, v, r, true).price;
        assert!(close(g.theta, -(tu - td) / (2.0 * h), 1e-5));
    }

    /// Haug, "The Complete Guide to Option Pricing Formulas" (2nd ed., 2007), the worked
    /// examples of §1.1.1–§1.1.6 (prices) and §2.1 (greeks); the same values are tabulated in
    /// QuantLib's test-suite/europeanoption.cpp (from the 1st ed., 1998, pp. 2–16).
    #[test]
    fn bsm_matches_haugs_worked_examples() {
        let r4 = |x: f64| (x * 1e4).round() / 1e4;
        // Stock (b = r): S = 60, K = 65, T = 0.25, r = 8 %, σ = 30 % → call 2.1334.
        assert_eq!(r4(bsm(60.0, 65.0, 0.25, 0.30, 0.08, 0.08, true).price), 2.1334);
        // Index (b = r − q): S = 100, K = 95, T = 0.5, r = 10 %, q = 5 %, σ = 20 % → put 2.4648.
        assert_eq!(r4(bsm(100.0, 95.0, 0.5, 0.20, 0.10, 0.05, false).price), 2.4648);
        // Futures (b = 0): F = K = 19, T = 0.75, r = 10 %, σ = 28 % → 1.7011 both.
        assert_eq!(r4(bsm(19.0, 19.0, 0.75, 0.28, 0.10, 0.0, true).price), 1.7011);
        // FX (b = r − r_f): S = 1.56, K = 1.60, T = 0.5, r = 6 %, r_f = 8 %, σ = 12 % → 0.0291.
        assert_eq!(r4(bsm(1.56, 1.60, 0.5, 0.12, 0.06, -0.02, true).price), 0.0291);
        // Delta, b = 0: S = 105, K = 100, T = 0.5, r = 10 %, σ = 36 % → 0.5946 / −0.3566.
        assert_eq!(r4(bsm(105.0, 100.0, 0.5, 0.36, 0.10, 0.0, true).delta), 0.5946);
        assert_eq!(r4(bsm(105.0, 100.0, 0.5, 0.36, 0.10, 0.0, false).delta), -0.3566);
        // Gamma and vega, b = r: S = 55, K = 60, T = 0.75, r = 10 %, σ = 30 %.
        let g = bsm(55.0, 60.0, 0.75, 0.30, 0.10, 0.10, true);
        assert_eq!((r4(g.gamma), r4(g.vega)), (0.0278, 18.9358));
        // Theta, b = r − q: put S = 430, K = 405, T = 1/12, r = 7 %, q = 5 % → −31.1924.
        assert_eq!(r4(bsm(430.0, 405.0, 1.0 / 12.0, 0.20, 0.07, 0.02, false).theta), -31.1924);
        // Rho, b = r: call S = 72, K = 75, T = 1, r = 9 %, σ = 19 % → 38.7325.
        assert_eq!(r4(bsm(72.0, 75.0, 1.0, 0.19, 0.09, 0.09, true).rho), 38.7325);
        // Cost-of-carry sensitivity: put S = 500, K = 490, T = 0.25, r = 8 %, q = 5 % → −42.2254.
        assert_eq!(r4(bsm(500.0, 490.0, 0.25, 0.15, 0.08, 0.03, false).carry_rho), -42.2254);
    }

    #[test]
    fn bsm_on_a_forward_is_black76() {
        for &(f, k, t, v, r) in &[(100.0, 90.0, 0.5, 0.3, 0.02), (19.0, 19.0, 0.75, 0.28, 0.1)] {
            for call in [true, false] {
                let (a, b) = (bsm(f, k, t, v, r, 0.0, call), black76(f, k, t, v, r, call));
                assert!(close(a.price, b.price, 1e-12) && close(a.delta, b.delta, 1e-14));
                assert!(close(a.gamma, b.gamma, 1e-14) && close(a.vega, b.vega, 1e-12));
                assert!(close(a.theta, b.theta, 1e-12) && close(a.rho_forward, -t * b.price, 1e-12));
            }
        }
    }

    #[test]
    fn bsm_greeks_match_finite_differences() {
        let (s, k, t, v, r, b) = (100.0, 95.0, 0.4, 0.25, 0.05, 0.02);
        let h = 1e-5;
        for call in [true, false] {
            let g = bsm(s, k, t, v, r, b, call);
            let p = |s: f64, t: f64, v: f64, r: f64, b: f64| bsm(s, k, t, v, r, b, call).price;
            assert!(close(g.delta, (p(s + h, t, v, r, b) - p(s - h, t, v, r, b)) / (2.0 * h), 1e-7));
            assert!(close(g.vega, (p(s, t, v + h, r, b) - p(s, t, v - h, r, b)) / (2.0 * h), 1e-5));
            assert!(close(g.theta, -(p(s, t + h, v, r, b) - p(s, t - h, v, r, b)) / (2.0 * h), 1e-5));
            // rho: q = r − b fixed, so b moves with r.
            assert!(close(g.rho, (p(s, t, v, r + h, b + h) - p(s, t, v, r - h, b - h)) / (2.0 * h), 1e-5));
            assert!(close(g.carry_rho, (p(s, t, v, r, b + h) - p(s, t, v, r, b - h)) / (2.0 * h), 1e-5));
            let f = s * (b * t).exp();
            let pf = |f: f64| bsm(f * (-b * t).exp(), k, t, v, r, b, call).price;
            assert!(close(g.delta_forward, (pf(f + h) - pf(f - h)) / (2.0 * h), 1e-7));
        }
    }

    #[test]
    fn expired_options_are_worth_their_intrinsic_value() {
        assert_eq!(black76(110.0, 100.0, 0.0, 0.5, 0.0, true).price, 10.0);
        assert_eq!(black76(110.0, 100.0, 0.0, 0.5, 0.0, false).price, 0.0);
        assert_eq!(black76(90.0, 100.0, 0.0, 0.5, 0.0, false).delta, -1.0);
    }

    #[test]
    fn deribit_short_call_margin() {
        let spec = OptionSpec {
            call: true,
            strike: 55_000.0,
            expiry: 0.1,
            iv: 0.6,
            rate: 0.0,
            im_base: OptionSpec::DERIBIT_IM_BASE,
            im_min: OptionSpec::DERIBIT_IM_MIN,
            mm_base: OptionSpec::DERIBIT_MM_BASE,
        };
        // Inverse, 1 BTC, S = 50,000, mark 0.01 BTC: OTM = 5,000 → IM = max(0.15 − 0.1, 0.1) + 0.01.
        let m = option_margin(&spec, true, -2.0, 1.0, 0.012, 0.01, 50_000.0, 50_000.0);
        assert!(close(m.requirement[0], 2.0 * 0.11 * 50_000.0, 1e-6));
        assert!(close(m.requirement[1], 2.0 * 0.085 * 50_000.0, 1e-6));
        assert!(close(m.value, -0.02 * 50_000.0, 1e-9));
        assert!(close(m.upnl, 2.0 * 0.002 * 50_000.0, 1e-9));
        // Long: no requirement.
        assert_eq!(option_margin(&spec, true, 2.0, 1.0, 0.01, 0.01, 50_000.0, 50_000.0).requirement, [0.0, 0.0]);
    }
}
