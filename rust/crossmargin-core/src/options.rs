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
