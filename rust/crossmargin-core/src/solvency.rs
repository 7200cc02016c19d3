//! Solvency: customer liabilities vs exchange reserves, and a Merkle-sum tree that proves
//! the liabilities to every customer without revealing anyone else's.
//!
//! **Claims.** An account's net claim on asset i is c_i = balance_i + Σ over its positions
//! settled in i of (uPnL + isolated margin), in asset units (uPnL as in docs/MODEL.md "Position amounts"; positions
//! added in ascending market index). Its equity is Σ_i c_i·price_i (ascending asset index),
//! the `equity` of docs/MODEL.md "Equity". Its **liability** is max(equity, 0) in USD minor units (10⁻⁸ USD,
//! rounded half to even, [`crate::money`]): debts (borrows, losses) net against the same
//! account's other claims; an account with negative equity owes the exchange and counts 0 in
//! the tree (reported separately as a deficit).
//!
//! **Tree** (Maxwell's Merkle-sum tree with the fix of Hu, Zhang & Guo, "Breaking the
//! Binding", <https://eprint.iacr.org/2018/1139>: a node commits to both child sums, not just
//! their total; cf. <https://github.com/ethereum/research/blob/master/proof_of_solvency/merkle_sum_tree.py>):
//! - leaf = SHA-256(0x00 ‖ account i64 BE ‖ liability u128 BE ‖ nonce), sum = liability;
//!   nonce = SHA-256("crossmargin/nonce" ‖ seed ‖ account i64 BE), the seed kept secret;
//! - node = SHA-256(0x01 ‖ left.hash ‖ left.sum u128 BE ‖ right.hash ‖ right.sum u128 BE),
//!   sum = left.sum + right.sum (checked: an overflow is an error / a rejected proof);
//! - leaves in ascending account id; an odd level is padded with the zero node (32 zero
//!   bytes, sum 0); the 0x00 / 0x01 prefixes keep a leaf from passing as a node (RFC 6962).
//!
//! Levels are built in parallel, one after another; the result depends only on the book,
//! the prices and the seed.

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::book::GroupedBook;
use crate::error::{CoreError, Result};
use crate::margin::MarginContext;
use crate::money::{Minor, SCALE_F64};

pub type Hash = [u8; 32];

/// A node of the tree: hash and the sum of the liabilities below it (USD minor units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub hash: Hash,
    pub sum: u128,
}

/// The padding node of odd levels and the root of an empty tree.
pub const ZERO_NODE: Node = Node { hash: [0; 32], sum: 0 };

const NONCE_TAG: &[u8] = b"crossmargin/nonce";

/// The per-account salt: SHA-256("crossmargin/nonce" ‖ seed ‖ account i64 BE).
pub fn leaf_nonce(seed: &[u8], account: i64) -> Hash {
    let mut h = Sha256::new();
    h.update(NONCE_TAG);
    h.update(seed);
    h.update(account.to_be_bytes());
    h.finalize().into()
}

pub fn leaf(account: i64, liability: u128, nonce: &Hash) -> Node {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(account.to_be_bytes());
    h.update(liability.to_be_bytes());
    h.update(nonce);
    Node { hash: h.finalize().into(), sum: liability }
}

/// The parent of two nodes; `None` when the sum overflows u128.
pub fn parent(left: &Node, right: &Node) -> Option<Node> {
    let sum = left.sum.checked_add(right.sum)?;
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.hash);
    h.update(left.sum.to_be_bytes());
    h.update(right.hash);
    h.update(right.sum.to_be_bytes());
    Some(Node { hash: h.finalize().into(), sum })
}

/// All levels, leaves first; the last level holds the root.
#[derive(Debug, Clone, PartialEq)]
pub struct MerkleSumTree {
    pub levels: Vec<Vec<Node>>,
}

/// One step of an inclusion proof: the sibling at that level.
pub type ProofStep = Node;

impl MerkleSumTree {
    /// Builds the tree over leaves (already in their final order), level by level in parallel.
    pub fn build(leaves: Vec<Node>) -> Result<Self> {
        let mut levels = vec![leaves];
        while levels.last().expect("one level").len() > 1 {
            let below = levels.last().expect("one level");
            let next: Option<Vec<Node>> =
                below.par_chunks(2).map(|pair| parent(&pair[0], pair.get(1).unwrap_or(&ZERO_NODE))).collect();
            let next = next.ok_or_else(|| CoreError::config("liabilities", "the sum of liabilities overflows u128"))?;
            levels.push(next);
        }
        Ok(MerkleSumTree { levels })
    }

    pub fn root(&self) -> Node {
        self.levels.last().and_then(|l| l.first()).copied().unwrap_or(ZERO_NODE)
    }

    pub fn n_leaves(&self) -> usize {
        self.levels[0].len()
    }

    /// Siblings from the leaf up to the root's children; `None` for an index out of range.
    pub fn proof(&self, index: usize) -> Option<Vec<ProofStep>> {
        if index >= self.n_leaves() {
            return None;
        }
        let mut i = index;
        let mut path = Vec::with_capacity(self.levels.len());
        for level in &self.levels[..self.levels.len() - 1] {
            path.push(level.get(i ^ 1).copied().unwrap_or(ZERO_NODE));
            i >>= 1;
        }
        Some(path)
    }
}

/// An inclusion proof as a customer receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct InclusionProof {
    pub account: i64,
    pub liability: u128,
    pub nonce: Hash,
    /// Leaf position; bit l says whether the node at level l is a right child.
    pub index: u128,
    pub path: Vec<ProofStep>,
}

/// Recomputes the root from the leaf and its path; true only if both the hash and the sum
/// match. Rejects an index beyond the path, a sum overflow, and any changed byte or number.
pub fn verify(proof: &InclusionProof, root_hash: &Hash, total: u128) -> bool {
    let depth = proof.path.len();
    if depth >= 128 || proof.index >> depth != 0 {
        return false;
    }
    let mut cur = leaf(proof.account, proof.liability, &proof.nonce);
    for (l, sibling) in proof.path.iter().enumerate() {
        let next = if (proof.index >> l) & 1 == 0 { parent(&cur, sibling) } else { parent(sibling, &cur) };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    &cur.hash == root_hash && cur.sum == total
}

/// Per-account liabilities and per-asset customer claims at one set of prices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Liabilities {
    /// Equity (USD) per dense account.
    pub equity: Vec<f64>,
    /// max(equity, 0) in USD minor units per dense account.
    pub liability: Vec<u128>,
    /// Per universe asset, minor units of the asset: Σ positive claims, Σ |negative claims|.
    pub claims: Vec<Minor>,
    pub debts: Vec<Minor>,
    /// Accounts with negative equity and their total deficit (USD minor units, ≥ 0).
    pub negative_accounts: usize,
    pub deficit: Minor,
}

impl Liabilities {
    pub fn total(&self) -> Result<u128> {
        self.liability
            .iter()
            .try_fold(0u128, |a, &b| a.checked_add(b))
            .ok_or_else(|| CoreError::config("liabilities", "the sum of liabilities overflows u128"))
    }
}

const CHUNK: usize = 2048;

/// Claims and liabilities of every account (parallel over chunks of accounts; per-asset
/// totals are exact integer sums, so independent of the thread count).
pub fn liabilities(book: &GroupedBook, ctx: &MarginContext<'_>) -> Result<Liabilities> {
    let u = ctx.universe;
    let na = u.n_assets();
    let n = book.n_accounts();
    let mut equity = vec![0.0; n];
    let mut liability = vec![0u128; n];
    struct Part {
        claims: Vec<Minor>,
        debts: Vec<Minor>,
        negative: usize,
        deficit: Minor,
    }
    let parts: Vec<Part> = equity
        .par_chunks_mut(CHUNK)
        .zip(liability.par_chunks_mut(CHUNK))
        .enumerate()
        .map(|(c, (eq, li))| -> Result<Part> {
            let mut part =
                Part { claims: vec![Minor::ZERO; na], debts: vec![Minor::ZERO; na], negative: 0, deficit: Minor::ZERO };
            let mut claim = vec![0.0f64; na];
            let mut touched: Vec<usize> = Vec::new();
            let mut positions: Vec<(u32, usize, f64)> = Vec::new();
            for j in 0..eq.len() {
                let rows = book.account(c * CHUNK + j);
                touched.clear();
                for (&code, &q) in rows.bal_code.iter().zip(rows.bal_qty) {
                    let i = ctx.remap.asset[code as usize] as usize;
                    claim[i] += q;
                    touched.push(i);
                }
                positions.clear();
                for p in 0..rows.pos_code.len() {
                    let k = ctx.remap.market[rows.pos_code[p] as usize];
                    let amount =
                        position_claim(ctx, k as usize, rows.pos_qty[p], rows.pos_entry[p]) + rows.pos_isolated[p];
                    positions.push((k, u.markets.settle[k as usize] as usize, amount));
                }
                positions.sort_unstable_by_key(|x| x.0);
                for &(_, i, amount) in &positions {
                    claim[i] += amount;
                    touched.push(i);
                }
                touched.sort_unstable();
                touched.dedup();
                let mut e = 0.0;
                for &i in &touched {
                    let c_i = claim[i];
                    e += c_i * ctx.prices.asset[i];
                    let m = Minor::from_f64(c_i, "claims").map_err(|e| match e {
                        CoreError::Price { message, .. } => CoreError::price(
                            format!("claims[{}] of account {}", u.assets.symbol[i], book.accounts[c * CHUNK + j]),
                            message,
                        ),
                        other => other,
                    })?;
                    if m.0 > 0 {
                        part.claims[i] += m;
                    } else {
                        part.debts[i] -= m;
                    }
                    claim[i] = 0.0;
                }
                eq[j] = e;
                let m = Minor::from_f64(e, "equity").map_err(|err| match err {
                    CoreError::Price { message, .. } => {
                        CoreError::price(format!("equity of account {}", book.accounts[c * CHUNK + j]), message)
                    }
                    other => other,
                })?;
                if m.0 > 0 {
                    li[j] = m.0 as u128;
                } else if m.0 < 0 {
                    part.negative += 1;
                    part.deficit -= m;
                }
            }
            Ok(part)
        })
        .collect::<Result<_>>()?;
    let mut out = Liabilities {
        equity,
        liability,
        claims: vec![Minor::ZERO; na],
        debts: vec![Minor::ZERO; na],
        negative_accounts: 0,
        deficit: Minor::ZERO,
    };
    for p in parts {
        for i in 0..na {
            out.claims[i] += p.claims[i];
            out.debts[i] += p.debts[i];
        }
        out.negative_accounts += p.negative;
        out.deficit += p.deficit;
    }
    Ok(out)
}

/// What one position adds to its account's claim in the settle asset: what it adds to
/// `equity` in the standard model (docs/MODEL.md "Equity"; [`crate::contract::Contract::equity`]: its uPnL, 0 for a
/// zero quantity of an inverse contract; an option's value q·cs·mark, its premium having left
/// the balance).
#[inline]
fn position_claim(ctx: &MarginContext<'_>, k: usize, qty: f64, entry: f64) -> f64 {
    ctx.universe.contract(k).equity(qty, entry, ctx.prices.mark[k])
}

/// The leaves of the tree, in dense (ascending id) account order.
pub fn leaves(accounts: &[i64], liability: &[u128], seed: &[u8]) -> Vec<Node> {
    accounts.par_iter().zip(liability).map(|(&a, &l)| leaf(a, l, &leaf_nonce(seed, a))).collect()
}

/// Reserves valued at prices and haircuts, per asset: (USD value, weighted USD value),
/// weight = the asset's maintenance collateral weight.
pub fn reserves_value(ctx: &MarginContext<'_>, reserves: &[f64]) -> Result<Vec<(f64, f64)>> {
    let u = ctx.universe;
    if reserves.len() != u.n_assets() {
        return Err(CoreError::config(
            "exchange_assets",
            format!("{} values for {} assets", reserves.len(), u.n_assets()),
        ));
    }
    reserves
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            if !q.is_finite() || q < 0.0 {
                return Err(CoreError::config(
                    format!("exchange_assets[{}]", u.assets.symbol[i]),
                    format!("{q} must be finite and ≥ 0"),
                ));
            }
            let usd = q * ctx.prices.asset[i];
            Ok((usd, usd * u.assets.weight[1][i]))
        })
        .collect()
}

/// USD minor units as f64 USD.
pub fn minor_to_usd(m: u128) -> f64 {
    m as f64 / SCALE_F64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{group, BalanceInput, PositionInput};
    use crate::margin::{Prices, Remap};
    use crate::universe::fixtures::{asset, perp};
    use crate::universe::Universe;
    use proptest::prelude::*;

    fn tree(liabs: &[u128]) -> (MerkleSumTree, Vec<i64>) {
        let accounts: Vec<i64> = (0..liabs.len() as i64).map(|a| a * 7 - 3).collect();
        (MerkleSumTree::build(leaves(&accounts, liabs, b"seed")).unwrap(), accounts)
    }

    fn proof_of(t: &MerkleSumTree, accounts: &[i64], liabs: &[u128], i: usize) -> InclusionProof {
        InclusionProof {
            account: accounts[i],
            liability: liabs[i],
            nonce: leaf_nonce(b"seed", accounts[i]),
            index: i as u128,
            path: t.proof(i).unwrap(),
        }
    }

    #[test]
    fn root_sum_is_the_total_and_every_proof_verifies() {
        let liabs = [5u128, 0, 17, 3, 9];
        let (t, accounts) = tree(&liabs);
        let root = t.root();
        assert_eq!(root.sum, 34);
        assert_eq!(t.levels.len(), 4); // 5 → 3 → 2 → 1
        for i in 0..liabs.len() {
            assert!(verify(&proof_of(&t, &accounts, &liabs, i), &root.hash, 34));
        }
        assert!(t.proof(5).is_none());
    }

    #[test]
    fn single_leaf_and_empty_trees() {
        let (t, accounts) = tree(&[42]);
        assert_eq!(t.root(), leaf(accounts[0], 42, &leaf_nonce(b"seed", accounts[0])));
        assert!(verify(&proof_of(&t, &accounts, &[42], 0), &t.root().hash, 42));
        let (t, _) = tree(&[]);
        assert_eq!(t.root(), ZERO_NODE);
    }

    #[test]
    fn tampering_is_rejected() {
        let liabs = [5u128, 1, 17, 3, 9, 2, 8];
        let (t, accounts) = tree(&liabs);
        let root = t.root();
        let good = proof_of(&t, &accounts, &liabs, 2);
        assert!(verify(&good, &root.hash, root.sum));
        let mut cases: Vec<InclusionProof> = vec![];
        let mut p = good.clone();
        p.liability += 1;
        cases.push(p);
        let mut p = good.clone();
        p.account += 1;
        cases.push(p);
        let mut p = good.clone();
        p.nonce[0] ^= 1;
        cases.push(p);
        let mut p = good.clone();
        p.index ^= 1;
        cases.push(p);
        let mut p = good.clone();
        p.index += 1 << p.path.len();
        cases.push(p);
        for s in 0..good.path.len() {
            let mut p = good.clone();
            p.path[s].sum += 1;
            cases.push(p);
            let mut p = good.clone();
            p.path[s].hash[31] ^= 0x80;
            cases.push(p);
            // Moving value from the sibling to the leaf keeps the total but not the hash.
            let mut p = good.clone();
            if p.path[s].sum > 0 {
                p.path[s].sum -= 1;
                p.liability += 1;
                cases.push(p);
            }
        }
        let mut p = good.clone();
        p.path.pop();
        cases.push(p);
        for (n, c) in cases.iter().enumerate() {
            assert!(!verify(c, &root.hash, root.sum), "tampering {n} was accepted");
        }
        assert!(!verify(&good, &root.hash, root.sum + 1));
        let mut other = root.hash;
        other[0] ^= 1;
        assert!(!verify(&good, &other, root.sum));
    }

    #[test]
    fn an_overflowing_sum_is_rejected() {
        let mut p = InclusionProof { account: 1, liability: u128::MAX, nonce: [0; 32], index: 0, path: vec![] };
        let root = leaf(1, u128::MAX, &[0; 32]);
        assert!(verify(&p, &root.hash, u128::MAX));
        p.path.push(Node { hash: [1; 32], sum: 1 });
        assert!(!verify(&p, &root.hash, 0));
        assert!(MerkleSumTree::build(vec![root, leaf(2, 1, &[0; 32])]).is_err());
    }

    #[test]
    fn liabilities_net_debts_within_an_account_and_floor_at_zero() {
        let btc = asset("BTC", 50_000.0);
        let lin = perp("BTCUSDT", "USDT", "BTC", 50_000.0, &[(f64::INFINITY, 0.02, 0.01)]);
        let u = Universe::new(&[asset("USDT", 1.0), btc], &[lin]).unwrap();
        let book = group(
            // account 1: 1 BTC, −10,000 USDT; account 2: 100 USDT and a long losing 1,000.
            BalanceInput { account: &[1, 1, 2], code: &[1, 0, 0], qty: &[1.0, -10_000.0, 100.0] },
            PositionInput {
                account: &[2],
                code: &[0],
                qty: &[1.0],
                entry_price: &[51_000.0],
                isolated_margin: &[f64::NAN],
            },
            2,
            1,
        )
        .unwrap();
        let prices = Prices { asset: &[1.0, 50_000.0], mark: &[50_000.0] };
        let ctx = MarginContext::new(&u, &book, prices, Remap { asset: &[0, 1], market: &[0] }).unwrap();
        let l = liabilities(&book, &ctx).unwrap();
        assert_eq!(l.equity, vec![40_000.0, -900.0]);
        assert_eq!(l.liability, vec![4_000_000_000_000, 0]);
        assert_eq!(l.negative_accounts, 1);
        assert_eq!(l.deficit, Minor(90_000_000_000));
        assert_eq!(l.claims, vec![Minor(0), Minor(100_000_000)]);
        assert_eq!(l.debts, vec![Minor(1_090_000_000_000), Minor(0)]);
        let r = reserves_value(&ctx, &[5_000.0, 1.0]).unwrap();
        assert_eq!(r, vec![(5_000.0, 5_000.0), (50_000.0, 50_000.0)]);
        assert!(reserves_value(&ctx, &[-1.0, 0.0]).is_err());
    }

    #[test]
    fn a_million_leaf_tree_builds_and_proves() {
        let liabs: Vec<u128> = (0..1_000_000u128).map(|i| (i * 7_919) % 1_000_003).collect();
        let (t, accounts) = tree(&liabs);
        assert_eq!(t.levels.len(), 21);
        let total: u128 = liabs.iter().sum();
        assert_eq!(t.root().sum, total);
        for i in [0, 1, 499_999, 999_999] {
            assert!(verify(&proof_of(&t, &accounts, &liabs, i), &t.root().hash, total));
        }
    }

    proptest! {
        #[test]
        fn every_leaf_proves_and_the_root_is_thread_independent(
            liabs in prop::collection::vec(0u128..(1u128 << 100), 1..70),
            pick in 0usize..70,
        ) {
            let (t, accounts) = tree(&liabs);
            let i = pick % liabs.len();
            prop_assert!(verify(&proof_of(&t, &accounts, &liabs, i), &t.root().hash, liabs.iter().sum()));
            let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
            let t1 = one.install(|| tree(&liabs).0);
            prop_assert_eq!(t1.root(), t.root());
        }
    }
}
