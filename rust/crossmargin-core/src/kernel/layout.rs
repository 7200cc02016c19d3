//! The kernel's layout of a grouped book: "sliced ELLPACK" (from sparse matrix kernels).
//!
//! Accounts are taken in groups of 8 (dense account order). A group has as many balance
//! slots as its account with the most balance rows, and as many position slots likewise;
//! slot j holds the j-th row of each of its 8 accounts side by side (8 codes, 8 quantities,
//! ...), and a lane whose account has fewer rows is padded (code 0, quantity 0) and masked
//! out by the slot's 8-bit mask. A SIMD lane then walks one account's rows in their own
//! order, so each account is summed exactly as the scalar formula sums it.
//!
//! Built once per grouping (in parallel over ranges of groups), independent of any universe:
//! rows keep their book codes, mapped through per-call tables.

use rayon::prelude::*;

use crate::book::GroupedBook;
use crate::memory::column;

/// Accounts per group: one AVX-512 register of f64 (two AVX2 registers).
pub const GROUP: usize = 8;

/// Groups per parallel build task.
const GROUPS_PER_TASK: usize = 256;

/// A grouped book in groups of 8 accounts (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Sliced8 {
    n_accounts: usize,
    /// Balance slots of group g: `bal_slot[g]..bal_slot[g + 1]`.
    pub(crate) bal_slot: Vec<usize>,
    pub(crate) pos_slot: Vec<usize>,
    /// Per slot: bit l set when lane l holds a row.
    pub(crate) bal_mask: Vec<u8>,
    pub(crate) pos_mask: Vec<u8>,
    /// Per slot × 8 lanes.
    pub(crate) bal_code: Vec<u32>,
    pub(crate) bal_qty: Vec<f64>,
    pub(crate) pos_code: Vec<u32>,
    pub(crate) pos_qty: Vec<f64>,
    pub(crate) pos_entry: Vec<f64>,
    /// Isolated margin, 0 for a cross position (as the grouped book holds it).
    pub(crate) pos_iso: Vec<f64>,
    /// Per group: whether an account of it has open orders (the group runs the scalar kernel).
    pub(crate) has_orders: Vec<bool>,
}

/// One task's share of the slot arrays.
struct Part<'a> {
    g0: usize,
    g1: usize,
    bal_mask: &'a mut [u8],
    pos_mask: &'a mut [u8],
    bal_code: &'a mut [u32],
    bal_qty: &'a mut [f64],
    pos_code: &'a mut [u32],
    pos_qty: &'a mut [f64],
    pos_entry: &'a mut [f64],
    pos_iso: &'a mut [f64],
}

impl Sliced8 {
    /// The layout of `book` (its rows in their grouped order).
    pub fn new(book: &GroupedBook) -> Self {
        let n = book.n_accounts();
        let groups = n.div_ceil(GROUP);
        let (bo, po) = (&book.balances.offsets, &book.positions.offsets);
        let oo = &book.orders.offsets;
        let widest = |off: &[usize], g: usize| {
            (g * GROUP..((g + 1) * GROUP).min(n)).map(|a| off[a + 1] - off[a]).max().unwrap_or(0)
        };
        let widths: Vec<(usize, usize, bool)> = (0..groups)
            .into_par_iter()
            .map(|g| {
                let orders = !oo.is_empty() && oo[(g * GROUP).min(n)] != oo[((g + 1) * GROUP).min(n)];
                (widest(bo, g), widest(po, g), orders)
            })
            .collect();
        let prefix = |f: fn(&(usize, usize, bool)) -> usize| {
            let mut v = Vec::with_capacity(groups + 1);
            v.push(0usize);
            for w in &widths {
                v.push(v[v.len() - 1] + f(w));
            }
            v
        };
        let bal_slot = prefix(|w| w.0);
        let pos_slot = prefix(|w| w.1);
        let has_orders = widths.iter().map(|w| w.2).collect();
        drop(widths);
        let (nb, np) = (bal_slot[groups], pos_slot[groups]);
        let mut s = Sliced8 {
            n_accounts: n,
            bal_mask: column(nb),
            pos_mask: column(np),
            bal_code: column(nb * GROUP),
            bal_qty: column(nb * GROUP),
            pos_code: column(np * GROUP),
            pos_qty: column(np * GROUP),
            pos_entry: column(np * GROUP),
            pos_iso: column(np * GROUP),
            bal_slot,
            pos_slot,
            has_orders,
        };
        s.fill(book);
        s
    }

    fn fill(&mut self, book: &GroupedBook) {
        let n = self.n_accounts;
        let groups = self.n_groups();
        // Cut the slot arrays at task boundaries (ranges of whole groups).
        let mut parts = Vec::with_capacity(groups.div_ceil(GROUPS_PER_TASK));
        let (mut bm, mut pm) = (&mut self.bal_mask[..], &mut self.pos_mask[..]);
        let (mut bc, mut bq) = (&mut self.bal_code[..], &mut self.bal_qty[..]);
        let (mut pc, mut pq) = (&mut self.pos_code[..], &mut self.pos_qty[..]);
        let (mut pe, mut pi) = (&mut self.pos_entry[..], &mut self.pos_iso[..]);
        let mut g0 = 0;
        while g0 < groups {
            let g1 = (g0 + GROUPS_PER_TASK).min(groups);
            let nb = self.bal_slot[g1] - self.bal_slot[g0];
            let np = self.pos_slot[g1] - self.pos_slot[g0];
            let (bm0, bm1) = std::mem::take(&mut bm).split_at_mut(nb);
            let (pm0, pm1) = std::mem::take(&mut pm).split_at_mut(np);
            let (bc0, bc1) = std::mem::take(&mut bc).split_at_mut(nb * GROUP);
            let (bq0, bq1) = std::mem::take(&mut bq).split_at_mut(nb * GROUP);
            let (pc0, pc1) = std::mem::take(&mut pc).split_at_mut(np * GROUP);
            let (pq0, pq1) = std::mem::take(&mut pq).split_at_mut(np * GROUP);
            let (pe0, pe1) = std::mem::take(&mut pe).split_at_mut(np * GROUP);
            let (pi0, pi1) = std::mem::take(&mut pi).split_at_mut(np * GROUP);
            parts.push(Part {
                g0,
                g1,
                bal_mask: bm0,
                pos_mask: pm0,
                bal_code: bc0,
                bal_qty: bq0,
                pos_code: pc0,
                pos_qty: pq0,
                pos_entry: pe0,
                pos_iso: pi0,
            });
            (bm, pm, bc, bq, pc, pq, pe, pi) = (bm1, pm1, bc1, bq1, pc1, pq1, pe1, pi1);
            g0 = g1;
        }
        let (bal_slot, pos_slot) = (&self.bal_slot, &self.pos_slot);
        let (b, p) = (&book.balances, &book.positions);
        parts.into_par_iter().for_each(|part| {
            let (sb0, sp0) = (bal_slot[part.g0], pos_slot[part.g0]);
            for g in part.g0..part.g1 {
                for lane in 0..GROUP {
                    let a = g * GROUP + lane;
                    if a >= n {
                        break;
                    }
                    for (j, r) in (b.offsets[a]..b.offsets[a + 1]).enumerate() {
                        let s = bal_slot[g] - sb0 + j;
                        part.bal_mask[s] |= 1 << lane;
                        part.bal_code[s * GROUP + lane] = b.code[r];
                        part.bal_qty[s * GROUP + lane] = b.qty[r];
                    }
                    for (j, r) in (p.offsets[a]..p.offsets[a + 1]).enumerate() {
                        let s = pos_slot[g] - sp0 + j;
                        part.pos_mask[s] |= 1 << lane;
                        part.pos_code[s * GROUP + lane] = p.code[r];
                        part.pos_qty[s * GROUP + lane] = p.qty[r];
                        part.pos_entry[s * GROUP + lane] = p.entry_price[r];
                        part.pos_iso[s * GROUP + lane] = p.isolated_margin[r];
                    }
                }
            }
        });
    }

    pub fn n_accounts(&self) -> usize {
        self.n_accounts
    }

    pub fn n_groups(&self) -> usize {
        self.n_accounts.div_ceil(GROUP)
    }

    /// Bytes held by the layout.
    pub fn nbytes(&self) -> usize {
        let (nb, np) = (self.bal_mask.len(), self.pos_mask.len());
        (self.bal_slot.len() + self.pos_slot.len()) * 8
            + self.has_orders.len()
            + nb * (1 + GROUP * 12)
            + np * (1 + GROUP * 28)
    }
}
