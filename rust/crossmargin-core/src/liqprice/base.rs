//! One account's maintenance numbers at the call's prices (s = 1), row by row: what every
//! closed-form search of the account starts from (docs/MODEL.md "Search": g(1) and the moving
//! rows at s = 1).
//!
//! The numbers are those of [`crate::margin::evaluate_account`], maintenance mode only, for a
//! universe without venue rules and an account without option rows (elsewhere the caller
//! evaluates the account with the margin module and the rows at s = 1 with their own
//! formulas): each row by the margin module's per-row functions
//! ([`position_margin_hot`](crate::margin::position_margin_hot), of a plain market its
//! maintenance alone by [`Tables::maintenance`] with the same bits;
//! [`crate::haircut::HaircutTable::discounted`], the [`imf`] weights), summed in the kernel's
//! order (balances, then positions), so the totals are the kernel's bit for bit (tested
//! below against `evaluate_account`).

use crate::book::AccountRows;
use crate::imf;
use crate::margin::MarginContext;

use super::piecewise::Tables;

/// Per-row maintenance collateral and requirement of one account at s = 1, and the cross
/// pool's totals.
#[derive(Debug, Default)]
pub(super) struct Base {
    /// Collateral (adj_equity_maint's share) of each balance row; 0 for a zero balance.
    pub bal: Vec<f64>,
    /// The maintenance weight of each balance row (the asset weight capped by its size
    /// discount, or the liability weight with its size premium; 0 for a zero balance).
    pub bal_w: Vec<f64>,
    /// (collateral, maintenance requirement) of each position row; (0, 0) for an isolated one.
    pub pos: Vec<[f64; 2]>,
    /// adj_equity_maint and the cross maintenance requirement.
    pub adj: f64,
    pub req: f64,
}

impl Base {
    /// Fills in the account's rows; false (nothing usable) where the rule above does not
    /// apply: venue rules in the universe or an option row in the account.
    pub fn fill(&mut self, rows: AccountRows<'_>, ctx: &MarginContext<'_>, t: &Tables) -> bool {
        let u = ctx.universe;
        if u.venue_rules {
            return false;
        }
        self.bal.clear();
        self.bal_w.clear();
        self.pos.clear();
        let mut adj = 0.0;
        for (&code, &qty) in rows.bal_code.iter().zip(rows.bal_qty) {
            let i = ctx.remap.asset[code as usize] as usize;
            let a = &u.asset_hot[i];
            let value = qty * ctx.prices.asset[i];
            let (mut c, mut w) = (0.0, 0.0);
            if qty > 0.0 {
                let discounted = if a.has_tiers { u.assets.haircuts.discounted(i, value) } else { value };
                let cap = if a.imf_factor == 0.0 { f64::INFINITY } else { imf::discount_cap(a.imf_factor, qty) };
                w = a.weight[1].min(cap);
                c = discounted * w;
                adj += c;
            } else if qty < 0.0 {
                w = a.liability_weight[1];
                w = if a.imf_factor == 0.0 { w } else { imf::premium(w, imf::premium_term(a.imf_factor, qty)) };
                c = value * w;
                adj += c;
            }
            self.bal.push(c);
            self.bal_w.push(w);
        }
        let mut req = 0.0;
        let positions = rows.pos_code.iter().zip(rows.pos_qty).zip(rows.pos_entry).zip(rows.pos_isolated);
        for (((&code, &qty), &entry), &isolated) in positions {
            let k = ctx.remap.market[code as usize] as usize;
            let h = &u.market_hot[k];
            if h.is_option() {
                return false;
            }
            if isolated > 0.0 {
                self.pos.push([0.0; 2]);
                continue;
            }
            let settle_price = ctx.prices.asset[h.settle as usize];
            let [upnl, mm] = t.maintenance(u, k, qty, entry, ctx.prices.mark[k], settle_price);
            let c = upnl.min(0.0) + upnl.max(0.0) * h.upnl_weight[1];
            adj += c;
            req += mm;
            self.pos.push([c, mm]);
        }
        (self.adj, self.req) = (adj, req);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{group, BalanceInput, PositionInput};
    use crate::margin::{evaluate_account, Prices, Remap};
    use crate::universe::fixtures::{asset, perp};
    use crate::universe::Universe;

    /// A universe with haircut tiers, size premiums on balances and a market, a borrow
    /// weight, a linear and an inverse market with several brackets.
    fn universe() -> Universe {
        let mut btc = asset("BTC", 50_000.0);
        btc.haircut_tiers = vec![(100_000.0, 1.0), (300_000.0, 0.9), (f64::INFINITY, 0.7)];
        btc.imf_factor = 0.001;
        btc.weight = [0.95, 0.97];
        btc.liability_weight = [1.2, 1.1];
        let mut eth = asset("ETH", 3_000.0);
        eth.imf_factor = 0.002;
        eth.weight = [0.9, 0.93];
        let lin = perp("L", "USDT", "BTC", 50_000.0, &[(50_000.0, 0.01, 0.005), (f64::INFINITY, 0.02, 0.01)]);
        let mut prem = perp("P", "USDT", "ETH", 3_000.0, &[(20_000.0, 0.02, 0.01), (f64::INFINITY, 0.05, 0.025)]);
        prem.imf_factor = 0.0005;
        prem.upnl_weight = [0.5, 0.8];
        let mut inv = perp("I", "BTC", "BTC", 50_000.0, &[(2.0, 0.02, 0.01), (f64::INFINITY, 0.04, 0.02)]);
        inv.inverse = true;
        inv.contract_size = 100.0;
        Universe::new(&[asset("USDT", 1.0), btc, eth], &[lin, prem, inv]).unwrap()
    }

    #[test]
    fn totals_are_the_kernels_bit_for_bit() {
        let u = universe();
        assert!(!u.venue_rules);
        // A small deterministic generator (xorshift): quantities over many magnitudes, both
        // signs, zeros, isolated rows.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let uniform = |lo: f64, hi: f64, n: u64| lo + (hi - lo) * ((n % 1_000_003) as f64 / 1_000_003.0);
        let mut base = Base::default();
        let tables = Tables::new(&u);
        for _ in 0..2_000 {
            let (mut ba, mut bc, mut bq) = (vec![], vec![], vec![]);
            for code in 0..3u32 {
                if next() % 3 != 0 {
                    let mag = 10f64.powf(uniform(-3.0, 6.0, next()));
                    let sign = if next() % 4 == 0 { -1.0 } else { 1.0 };
                    ba.push(1i64);
                    bc.push(code);
                    bq.push(if next() % 10 == 0 { 0.0 } else { sign * mag });
                }
            }
            let (mut pa, mut pc, mut pq, mut pe, mut pi) = (vec![], vec![], vec![], vec![], vec![]);
            for code in 0..3u32 {
                if next() % 4 != 0 {
                    let mark = u.markets.mark[code as usize];
                    let mag = 10f64.powf(uniform(-3.0, 4.0, next()));
                    let sign = if next() % 2 == 0 { -1.0 } else { 1.0 };
                    pa.push(1i64);
                    pc.push(code);
                    pq.push(if next() % 12 == 0 { 0.0 } else { sign * mag });
                    pe.push(mark * uniform(0.7, 1.3, next()));
                    pi.push(if next() % 5 == 0 { uniform(1.0, 1e4, next()) } else { 0.0 });
                }
            }
            let book = group(
                BalanceInput { account: &ba, code: &bc, qty: &bq },
                PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pi },
                3,
                3,
            )
            .unwrap();
            let ident: Vec<u32> = (0..3).collect();
            let prices = Prices { asset: &u.assets.price, mark: &u.markets.mark };
            let remap = Remap { asset: &ident, market: &ident };
            let ctx = MarginContext::new(&u, &book, prices, remap).unwrap();
            if book.n_accounts() == 0 {
                continue;
            }
            let rows = book.account(0);
            let m = evaluate_account(rows, &ctx);
            assert!(base.fill(rows, &ctx, &tables));
            assert_eq!(base.adj.to_bits(), m.adj_equity[1].to_bits(), "{bq:?} {pq:?}");
            assert_eq!(base.req.to_bits(), m.requirement[1].to_bits(), "{bq:?} {pq:?}");
            assert_eq!((base.bal.len(), base.pos.len()), (rows.bal_code.len(), rows.pos_code.len()));
        }
    }
}
