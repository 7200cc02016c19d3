//! The kernel's layout of a grouped book: "sliced ELLPACK" (from sparse matrix kernels).
//!
//! Accounts are taken in groups of 8 (dense account order). A group has as many balance
//! slots as its account with the most balance rows, and as many position slots likewise;
//! slot j holds the j-th row of each of its 8 accounts side by side (8 codes, 8 quantities,
//! ...), and a lane whose account has fewer rows is padded (code 0, quantity 0) and masked
//! out by the slot's 8-bit mask. A SIMD lane then walks one account's rows in their own
//! order, so each account is summed exactly as the scalar formula sums it.
//!
//! Fewer bytes than the rows (the bulk kernel is memory-bound):
//! - codes are stored as u8 when the book has at most 256 codes of each kind, u16 up to
//!   65,536, else u32 ([`CodeWidth`], one width per layout), widened on load;
//! - isolated margin is stored only where it is not +0.0 (most positions are cross): per
//!   position slot an 8-bit mask of the lanes holding one, the values packed in lane order,
//!   slot after slot, from an offset per group (expanded back into lanes on load; a lane
//!   outside the mask reads +0.0, the value the rows hold there).
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

/// Zeros after the packed isolated margins: a 4-lane load at the last offset stays inside.
pub(super) const ISO_PAD: usize = GROUP;

/// How a layout stores its codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeWidth {
    U8,
    U16,
    U32,
}

impl CodeWidth {
    /// The narrowest width holding codes `0..n` (`n` codes of each kind).
    pub fn for_codes(n: u32) -> CodeWidth {
        if n <= 1 << 8 {
            CodeWidth::U8
        } else if n <= 1 << 16 {
            CodeWidth::U16
        } else {
            CodeWidth::U32
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            CodeWidth::U8 => 1,
            CodeWidth::U16 => 2,
            CodeWidth::U32 => 4,
        }
    }
}

/// A code as the layout stores it (u8, u16 or u32).
pub trait Code: Copy + Default + Send + Sync + 'static {
    /// Bytes per code.
    const BYTES: usize;
    /// `c`, which the layout's width holds.
    fn of(c: u32) -> Self;
    fn get(self) -> u32;
}

macro_rules! code {
    ($t:ty) => {
        impl Code for $t {
            const BYTES: usize = std::mem::size_of::<$t>();
            #[inline]
            fn of(c: u32) -> Self {
                debug_assert!(<$t>::try_from(c).is_ok(), "code {c} wider than the layout's codes");
                c as $t
            }
            #[inline]
            fn get(self) -> u32 {
                u32::from(self)
            }
        }
    };
}
code!(u8);
code!(u16);
code!(u32);

/// Balance and position codes, per slot × 8 lanes, at one width.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SlotCodes<C> {
    pub bal: Vec<C>,
    pub pos: Vec<C>,
}

/// The layout's codes at its [`CodeWidth`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Codes {
    U8(SlotCodes<u8>),
    U16(SlotCodes<u16>),
    U32(SlotCodes<u32>),
}

impl Default for Codes {
    fn default() -> Self {
        Codes::U8(SlotCodes::default())
    }
}

/// A grouped book in groups of 8 accounts (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sliced8 {
    pub(crate) n_accounts: usize,
    /// Balance slots of group g: `bal_slot[g]..bal_slot[g + 1]`.
    pub(crate) bal_slot: Vec<usize>,
    pub(crate) pos_slot: Vec<usize>,
    /// Per slot: bit l set when lane l holds a row.
    pub(crate) bal_mask: Vec<u8>,
    pub(crate) pos_mask: Vec<u8>,
    /// Per slot × 8 lanes.
    pub(crate) codes: Codes,
    pub(crate) bal_qty: Vec<f64>,
    pub(crate) pos_qty: Vec<f64>,
    pub(crate) pos_entry: Vec<f64>,
    /// Per position slot: bit l set when lane l's isolated margin is stored (not +0.0).
    pub(crate) iso_mask: Vec<u8>,
    /// The stored isolated margins of group g from `iso_at[g]`, slot by slot, lane order
    /// (then [`ISO_PAD`] zeros).
    pub(crate) iso_at: Vec<usize>,
    pub(crate) iso: Vec<f64>,
    /// Per group: whether an account of it has open orders (the group runs the scalar kernel).
    pub(crate) has_orders: Vec<bool>,
}

/// One task's share of the slot arrays.
struct Part<'a, C> {
    g0: usize,
    g1: usize,
    bal_mask: &'a mut [u8],
    pos_mask: &'a mut [u8],
    bal_code: &'a mut [C],
    bal_qty: &'a mut [f64],
    pos_code: &'a mut [C],
    pos_qty: &'a mut [f64],
    pos_entry: &'a mut [f64],
    iso_mask: &'a mut [u8],
    iso: &'a mut [f64],
}

/// Whether a position's isolated margin is stored (every value but +0.0, bit for bit).
#[inline]
pub(crate) fn stored(isolated: f64) -> bool {
    isolated.to_bits() != 0
}

impl Sliced8 {
    /// The layout of `book` (its rows in their grouped order).
    pub fn new(book: &GroupedBook) -> Self {
        let n = book.n_accounts();
        let groups = n.div_ceil(GROUP);
        let (bo, po) = (&book.balances.offsets, &book.positions.offsets);
        let oo = &book.orders.offsets;
        let iso = &book.positions.isolated_margin;
        let accounts = |g: usize| g * GROUP..((g + 1) * GROUP).min(n);
        // Per group: balance slots, position slots, stored isolated margins, open orders.
        let widths: Vec<(usize, usize, usize, bool)> = (0..groups)
            .into_par_iter()
            .map(|g| {
                let orders = !oo.is_empty() && oo[(g * GROUP).min(n)] != oo[((g + 1) * GROUP).min(n)];
                let rows = po[accounts(g).start]..po[accounts(g).end];
                let isolated = iso[rows].iter().filter(|&&m| stored(m)).count();
                (widest(bo, g, n), widest(po, g, n), isolated, orders)
            })
            .collect();
        let prefix = |f: fn(&(usize, usize, usize, bool)) -> usize| {
            let mut v = Vec::with_capacity(groups + 1);
            v.push(0usize);
            for w in &widths {
                v.push(v[v.len() - 1] + f(w));
            }
            v
        };
        let bal_slot = prefix(|w| w.0);
        let pos_slot = prefix(|w| w.1);
        let iso_at = prefix(|w| w.2);
        let has_orders = widths.iter().map(|w| w.3).collect();
        drop(widths);
        let (nb, np, ni) = (bal_slot[groups], pos_slot[groups], iso_at[groups]);
        let mut s = Sliced8 {
            n_accounts: n,
            bal_mask: column(nb),
            pos_mask: column(np),
            codes: Codes::default(),
            bal_qty: column(nb * GROUP),
            pos_qty: column(np * GROUP),
            pos_entry: column(np * GROUP),
            iso_mask: column(np),
            iso: column(ni + ISO_PAD),
            iso_at,
            bal_slot,
            pos_slot,
            has_orders,
        };
        s.codes = match CodeWidth::for_codes(book.n_asset_codes.max(book.n_market_codes)) {
            CodeWidth::U8 => Codes::U8(s.fill(book)),
            CodeWidth::U16 => Codes::U16(s.fill(book)),
            CodeWidth::U32 => Codes::U32(s.fill(book)),
        };
        s
    }

    /// Fills the slot arrays and returns the codes at width `C`.
    fn fill<C: Code>(&mut self, book: &GroupedBook) -> SlotCodes<C> {
        let n = self.n_accounts;
        let groups = self.n_groups();
        let (nb, np) = (self.bal_mask.len(), self.pos_mask.len());
        let mut codes = SlotCodes { bal: column::<C>(nb * GROUP), pos: column::<C>(np * GROUP) };
        // Cut the slot arrays at task boundaries (ranges of whole groups).
        let mut parts = Vec::with_capacity(groups.div_ceil(GROUPS_PER_TASK));
        let (mut bm, mut pm) = (&mut self.bal_mask[..], &mut self.pos_mask[..]);
        let (mut bc, mut bq) = (&mut codes.bal[..], &mut self.bal_qty[..]);
        let (mut pc, mut pq) = (&mut codes.pos[..], &mut self.pos_qty[..]);
        let (mut pe, mut im, mut iv) = (&mut self.pos_entry[..], &mut self.iso_mask[..], &mut self.iso[..]);
        let mut g0 = 0;
        while g0 < groups {
            let g1 = (g0 + GROUPS_PER_TASK).min(groups);
            let nb = self.bal_slot[g1] - self.bal_slot[g0];
            let np = self.pos_slot[g1] - self.pos_slot[g0];
            let ni = self.iso_at[g1] - self.iso_at[g0];
            let (bm0, bm1) = std::mem::take(&mut bm).split_at_mut(nb);
            let (pm0, pm1) = std::mem::take(&mut pm).split_at_mut(np);
            let (bc0, bc1) = std::mem::take(&mut bc).split_at_mut(nb * GROUP);
            let (bq0, bq1) = std::mem::take(&mut bq).split_at_mut(nb * GROUP);
            let (pc0, pc1) = std::mem::take(&mut pc).split_at_mut(np * GROUP);
            let (pq0, pq1) = std::mem::take(&mut pq).split_at_mut(np * GROUP);
            let (pe0, pe1) = std::mem::take(&mut pe).split_at_mut(np * GROUP);
            let (im0, im1) = std::mem::take(&mut im).split_at_mut(np);
            let (iv0, iv1) = std::mem::take(&mut iv).split_at_mut(ni);
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
                iso_mask: im0,
                iso: iv0,
            });
            (bm, pm, bc, bq, pc, pq, pe, im, iv) = (bm1, pm1, bc1, bq1, pc1, pq1, pe1, im1, iv1);
            g0 = g1;
        }
        let (bal_slot, pos_slot, iso_at) = (&self.bal_slot, &self.pos_slot, &self.iso_at);
        let (b, p) = (&book.balances, &book.positions);
        parts.into_par_iter().for_each(|part| {
            let (sb0, sp0, si0) = (bal_slot[part.g0], pos_slot[part.g0], iso_at[part.g0]);
            for g in part.g0..part.g1 {
                let accounts = g * GROUP..((g + 1) * GROUP).min(n);
                for (lane, a) in accounts.clone().enumerate() {
                    for (j, r) in (b.offsets[a]..b.offsets[a + 1]).enumerate() {
                        let s = bal_slot[g] - sb0 + j;
                        part.bal_mask[s] |= 1 << lane;
                        part.bal_code[s * GROUP + lane] = C::of(b.code[r]);
                        part.bal_qty[s * GROUP + lane] = b.qty[r];
                    }
                    for (j, r) in (p.offsets[a]..p.offsets[a + 1]).enumerate() {
                        let s = pos_slot[g] - sp0 + j;
                        part.pos_mask[s] |= 1 << lane;
                        part.pos_code[s * GROUP + lane] = C::of(p.code[r]);
                        part.pos_qty[s * GROUP + lane] = p.qty[r];
                        part.pos_entry[s * GROUP + lane] = p.entry_price[r];
                        if stored(p.isolated_margin[r]) {
                            part.iso_mask[s] |= 1 << lane;
                        }
                    }
                }
                // The stored isolated margins, slot by slot in lane order.
                let mut at = iso_at[g] - si0;
                for s in pos_slot[g]..pos_slot[g + 1] {
                    let mask = part.iso_mask[s - sp0];
                    for (lane, a) in accounts.clone().enumerate() {
                        if mask & (1 << lane) != 0 {
                            part.iso[at] = p.isolated_margin[p.offsets[a] + s - pos_slot[g]];
                            at += 1;
                        }
                    }
                }
                debug_assert_eq!(at, iso_at[g + 1] - si0);
            }
        });
        codes
    }

    pub fn n_accounts(&self) -> usize {
        self.n_accounts
    }

    pub fn n_groups(&self) -> usize {
        self.n_accounts.div_ceil(GROUP)
    }

    /// How the layout stores its codes.
    pub fn code_width(&self) -> CodeWidth {
        match self.codes {
            Codes::U8(_) => CodeWidth::U8,
            Codes::U16(_) => CodeWidth::U16,
            Codes::U32(_) => CodeWidth::U32,
        }
    }

    /// The market code of lane `lane` of position slot `slot`.
    pub(crate) fn pos_code(&self, slot: usize, lane: usize) -> u32 {
        let i = slot * GROUP + lane;
        match &self.codes {
            Codes::U8(c) => c.pos[i].get(),
            Codes::U16(c) => c.pos[i].get(),
            Codes::U32(c) => c.pos[i].get(),
        }
    }

    /// Bytes held by the layout.
    pub fn nbytes(&self) -> usize {
        let (nb, np) = (self.bal_mask.len(), self.pos_mask.len());
        let code = self.code_width().bytes();
        (self.bal_slot.len() + self.pos_slot.len() + self.iso_at.len()) * 8
            + self.has_orders.len()
            + nb * (1 + GROUP * (code + 8))
            + np * (2 + GROUP * (code + 16))
            + self.iso.len() * 8
    }
}

impl Sliced8 {
    /// The codes held by some row (masked lanes only): (asset codes, market codes), each a
    /// table of `n` flags. Ranges of slots are marked by parallel tasks and their tables
    /// OR-ed (the same flags for any split).
    pub fn used_codes(&self, n_assets: usize, n_markets: usize) -> (Vec<bool>, Vec<bool>) {
        fn mark<C: Code>(codes: &[C], masks: &[u8], n: usize) -> Vec<bool> {
            const SLOTS: usize = 1 << 14;
            let range = |c: usize, ms: &[u8], mut used: Vec<bool>| {
                for (i, &m) in ms.iter().enumerate() {
                    let lanes = &codes[(c * SLOTS + i) * GROUP..][..GROUP];
                    // Branch-free: a padded lane (code 0, in the table whenever a slot exists) ORs false.
                    for (lane, x) in lanes.iter().enumerate() {
                        used[x.get() as usize] |= m & (1 << lane) != 0;
                    }
                }
                used
            };
            masks.par_chunks(SLOTS).enumerate().fold(|| vec![false; n], |used, (c, ms)| range(c, ms, used)).reduce(
                || vec![false; n],
                |mut a, b| {
                    a.iter_mut().zip(b).for_each(|(x, y)| *x |= y);
                    a
                },
            )
        }
        match &self.codes {
            Codes::U8(c) => (mark(&c.bal, &self.bal_mask, n_assets), mark(&c.pos, &self.pos_mask, n_markets)),
            Codes::U16(c) => (mark(&c.bal, &self.bal_mask, n_assets), mark(&c.pos, &self.pos_mask, n_markets)),
            Codes::U32(c) => (mark(&c.bal, &self.bal_mask, n_assets), mark(&c.pos, &self.pos_mask, n_markets)),
        }
    }
}

/// The slots of group `g` (accounts `8g..`, `n` in all) of rows at `offsets`: its widest
/// account's row count.
#[inline]
fn widest(offsets: &[usize], g: usize, n: usize) -> usize {
    (g * GROUP..((g + 1) * GROUP).min(n)).map(|a| offsets[a + 1] - offsets[a]).max().unwrap_or(0)
}

impl From<SlotCodes<u8>> for Codes {
    fn from(c: SlotCodes<u8>) -> Codes {
        Codes::U8(c)
    }
}
impl From<SlotCodes<u16>> for Codes {
    fn from(c: SlotCodes<u16>) -> Codes {
        Codes::U16(c)
    }
}
impl From<SlotCodes<u32>> for Codes {
    fn from(c: SlotCodes<u32>) -> Codes {
        Codes::U32(c)
    }
}
