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

use crate::book::{GroupedBook, RowRun, RowSink};
use crate::memory::{column, reserve_more, reserve_more_advising, Disjoint};

/// Accounts per group: one AVX-512 register of f64 (two AVX2 registers).
pub const GROUP: usize = 8;

/// Groups per parallel build task.
const GROUPS_PER_TASK: usize = 256;

/// Zeros after the packed isolated margins: a 4-lane load at the last offset stays inside.
const ISO_PAD: usize = GROUP;

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
    n_accounts: usize,
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
fn stored(isolated: f64) -> bool {
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

    /// The layout of the rows that `fill` hands over run by run (grouping straight into the
    /// layout, no grouped copy of the rows): balance runs and position runs each in account
    /// order, every run starting at a group; `n_accounts` accounts in all. `rows`: each kind's
    /// row count, the most slots its groups can take (a group's width is its widest account's
    /// row count, at most the group's rows), so that no slot column moves as the runs arrive.
    pub(crate) fn build_with<E>(
        n_accounts: usize,
        width: CodeWidth,
        rows: (usize, usize),
        fill: impl FnOnce(&mut dyn RowSink) -> Result<(), E>,
    ) -> Result<Sliced8, E> {
        type Fill<'f, E> = &'f mut dyn FnMut(&mut dyn RowSink) -> Result<(), E>;
        fn run<C: Code, E>(n: usize, rows: (usize, usize), fill: Fill<'_, E>) -> Result<Sliced8, E>
        where
            SlotCodes<C>: Into<Codes>,
        {
            let groups = n.div_ceil(GROUP);
            let mut b =
                Builder { bal: BalanceSlots::<C>::new(groups, rows.0), pos: PositionSlots::<C>::new(groups, rows.1) };
            fill(&mut b)?;
            Ok(Sliced8::assemble(n, b.bal, b.pos))
        }
        let mut once = Some(fill);
        let mut fill = |sink: &mut dyn RowSink| (once.take().expect("filled once"))(sink);
        match width {
            CodeWidth::U8 => run::<u8, E>(n_accounts, rows, &mut fill),
            CodeWidth::U16 => run::<u16, E>(n_accounts, rows, &mut fill),
            CodeWidth::U32 => run::<u32, E>(n_accounts, rows, &mut fill),
        }
    }

    /// The layout assembled from its two kinds' slot arrays.
    fn assemble<C: Code>(n_accounts: usize, mut b: BalanceSlots<C>, mut p: PositionSlots<C>) -> Sliced8
    where
        SlotCodes<C>: Into<Codes>,
    {
        let groups = n_accounts.div_ceil(GROUP);
        assert!(b.done == groups && p.done == groups, "every group laid out");
        let (nb, np) = (b.slot[groups], p.slot[groups]);
        // SAFETY: the runs wrote every slot of every group (their slot ranges tile 0..nb and
        // 0..np), and every stored isolated margin (`PositionSlots::append` sets that length).
        unsafe {
            b.mask.set_len(nb);
            b.code.set_len(nb * GROUP);
            b.qty.set_len(nb * GROUP);
            p.mask.set_len(np);
            p.iso_mask.set_len(np);
            p.code.set_len(np * GROUP);
            p.qty.set_len(np * GROUP);
            p.entry.set_len(np * GROUP);
        }
        p.iso.extend(std::iter::repeat_n(0.0, ISO_PAD));
        // Reserved at the most slots the rows allow, in mappings of their own
        // (`memory::reserve_more`), or grown there: give the unwritten room back (the mapping
        // shrinks in place, nothing is copied).
        b.mask.shrink_to_fit();
        b.code.shrink_to_fit();
        b.qty.shrink_to_fit();
        p.mask.shrink_to_fit();
        p.iso_mask.shrink_to_fit();
        p.code.shrink_to_fit();
        p.qty.shrink_to_fit();
        p.entry.shrink_to_fit();
        p.iso.shrink_to_fit();
        Sliced8 {
            n_accounts,
            bal_slot: b.slot,
            pos_slot: p.slot,
            bal_mask: b.mask,
            pos_mask: p.mask,
            codes: SlotCodes { bal: b.code, pos: p.code }.into(),
            bal_qty: b.qty,
            pos_qty: p.qty,
            pos_entry: p.entry,
            iso_mask: p.iso_mask,
            iso_at: p.iso_at,
            iso: p.iso,
            has_orders: vec![false; groups],
        }
    }
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

/// Accounts in a run.
trait Run {
    fn accounts(&self) -> usize;
}

impl Run for RowRun<'_> {
    fn accounts(&self) -> usize {
        self.offsets.len() - 1
    }
}

/// The two halves of a layout being built.
struct Builder<C> {
    bal: BalanceSlots<C>,
    pos: PositionSlots<C>,
}

impl<C: Code> RowSink for Builder<C> {
    fn balances(&mut self, run: &RowRun<'_>) {
        self.bal.append(run);
    }
    fn positions(&mut self, run: &RowRun<'_>) {
        self.pos.append(run);
    }
}

/// Appends to `v`'s slot-array bookkeeping: the running prefix of `widths`.
fn push_prefix(v: &mut Vec<usize>, widths: impl Iterator<Item = usize>) {
    let mut last = *v.last().expect("a prefix starts at 0");
    for w in widths {
        last += w;
        v.push(last);
    }
}

/// A column grown by `add` values written in parallel through [`Disjoint`] views.
fn grown<T>(v: &mut Vec<T>, add: usize) -> Disjoint<T> {
    reserve_more(v, add);
    Disjoint::new(v)
}

/// An empty column with room for `n` values, in a mapping of its own when large
/// ([`reserve_more`]): pages are backed only as the runs write them, and the room left over
/// goes back at [`Sliced8::assemble`] without a copy. `n` is 8× the least the runs write (a
/// slot holds at most 8 rows): the room goes on huge pages only when that least is 4 MiB or
/// more (a small book's columns, each backing a partly written 2 MiB page, had more than
/// doubled the grouping's peak at 10k accounts).
fn room_for<T>(n: usize) -> Vec<T> {
    let least_bytes = n / GROUP * std::mem::size_of::<T>();
    let mut v = vec![];
    reserve_more_advising(&mut v, n, least_bytes >= 4 << 20);
    v
}

/// The slots of group `g` (accounts `8g..`, `n` in all) of rows at `offsets`: its widest
/// account's row count.
#[inline]
fn widest(offsets: &[usize], g: usize, n: usize) -> usize {
    (g * GROUP..((g + 1) * GROUP).min(n)).map(|a| offsets[a + 1] - offsets[a]).max().unwrap_or(0)
}

/// The balance half of a layout, built group by group into columns reserved at the most
/// slots the rows allow (a group's slot offsets are appended as its run arrives).
struct BalanceSlots<C> {
    slot: Vec<usize>,
    /// Slots every column has room for.
    room: usize,
    /// Groups written so far.
    done: usize,
    mask: Vec<u8>,
    code: Vec<C>,
    qty: Vec<f64>,
}

impl<C: Code> BalanceSlots<C> {
    /// Room for `groups` groups holding `rows` rows.
    fn new(groups: usize, rows: usize) -> Self {
        let mut slot = Vec::with_capacity(groups + 1);
        slot.push(0);
        BalanceSlots {
            slot,
            room: rows,
            done: 0,
            mask: room_for(rows),
            code: room_for(rows * GROUP),
            qty: room_for(rows * GROUP),
        }
    }

    /// Writes the groups of `run` (its first account starts group `self.done`), exactly as
    /// [`Sliced8::new`] lays them out.
    fn append(&mut self, run: &RowRun<'_>) {
        let n = run.accounts();
        let groups = n.div_ceil(GROUP);
        let first = self.done;
        push_prefix(&mut self.slot, (0..groups).map(|g| widest(run.offsets, g, n)));
        let (mask, code, qty) =
            (Disjoint::new(&mut self.mask), Disjoint::new(&mut self.code), Disjoint::new(&mut self.qty));
        let slot = &self.slot[first..=first + groups];
        // The writes below rely on it: the runs hold the `rows` rows, and a group has no more
        // slots than rows.
        assert!(slot[groups] <= self.room);
        (0..groups).into_par_iter().with_min_len(GROUPS_PER_TASK).for_each(|g| {
            let lanes = g * GROUP..((g + 1) * GROUP).min(n);
            for (j, s) in (slot[g]..slot[g + 1]).enumerate() {
                let mut m = 0u8;
                for lane in 0..GROUP {
                    let a = lanes.start + lane;
                    let r = (a < lanes.end).then(|| run.offsets[a] + j).filter(|&r| a < n && r < run.offsets[a + 1]);
                    let (c, q) = match r {
                        Some(r) => {
                            m |= 1 << lane;
                            (run.key[r] >> run.key_shift, run.qty[r])
                        }
                        None => (0, 0.0),
                    };
                    // SAFETY: group g alone writes its slots slot[g]..slot[g + 1], inside the
                    // columns' capacity (room for as many slots as rows, and a group has at
                    // most as many slots as rows).
                    unsafe {
                        code.write(s * GROUP + lane, C::of(c));
                        qty.write(s * GROUP + lane, q);
                    }
                }
                // SAFETY: as above.
                unsafe { mask.write(s, m) };
            }
        });
        self.done += groups;
    }
}

/// The position half of a layout, built group by group like [`BalanceSlots`] (the stored
/// isolated margins grow run by run).
struct PositionSlots<C> {
    slot: Vec<usize>,
    room: usize,
    done: usize,
    mask: Vec<u8>,
    code: Vec<C>,
    qty: Vec<f64>,
    entry: Vec<f64>,
    iso_mask: Vec<u8>,
    iso_at: Vec<usize>,
    iso: Vec<f64>,
}

impl<C: Code> PositionSlots<C> {
    /// Room for `groups` groups holding `rows` rows.
    fn new(groups: usize, rows: usize) -> Self {
        let (mut slot, mut iso_at) = (Vec::with_capacity(groups + 1), Vec::with_capacity(groups + 1));
        slot.push(0);
        iso_at.push(0);
        PositionSlots {
            slot,
            room: rows,
            done: 0,
            mask: room_for(rows),
            code: room_for(rows * GROUP),
            qty: room_for(rows * GROUP),
            entry: room_for(rows * GROUP),
            iso_mask: room_for(rows),
            iso_at,
            iso: vec![],
        }
    }

    /// Writes the groups of `run`, exactly as [`Sliced8::new`] lays them out.
    fn append(&mut self, run: &RowRun<'_>) {
        let n = run.accounts();
        let groups = n.div_ceil(GROUP);
        let first = self.done;
        // Per group: slots, stored isolated margins.
        let counts: Vec<(usize, usize)> = (0..groups)
            .into_par_iter()
            .with_min_len(64)
            .map(|g| {
                let (a0, a1) = (g * GROUP, ((g + 1) * GROUP).min(n));
                let stored_iso = run.isolated[run.offsets[a0]..run.offsets[a1]].iter().filter(|&&m| stored(m)).count();
                (widest(run.offsets, g, n), stored_iso)
            })
            .collect();
        push_prefix(&mut self.slot, counts.iter().map(|c| c.0));
        let i0 = self.iso_at[first];
        push_prefix(&mut self.iso_at, counts.iter().map(|c| c.1));
        drop(counts);
        let add_iso = self.iso_at[first + groups] - i0;
        let (mask, iso_mask) = (Disjoint::new(&mut self.mask), Disjoint::new(&mut self.iso_mask));
        let (code, qty, entry) =
            (Disjoint::new(&mut self.code), Disjoint::new(&mut self.qty), Disjoint::new(&mut self.entry));
        let iso = grown(&mut self.iso, add_iso);
        let (slot, iso_at) = (&self.slot[first..=first + groups], &self.iso_at[first..=first + groups]);
        // The writes below rely on it: the runs hold the `rows` rows, and a group has no more
        // slots than rows.
        assert!(slot[groups] <= self.room);
        (0..groups).into_par_iter().with_min_len(GROUPS_PER_TASK).for_each(|g| {
            let lanes = g * GROUP..((g + 1) * GROUP).min(n);
            let mut at = iso_at[g];
            for (j, s) in (slot[g]..slot[g + 1]).enumerate() {
                let (mut m, mut im) = (0u8, 0u8);
                for lane in 0..GROUP {
                    let a = lanes.start + lane;
                    let r = (a < lanes.end).then(|| run.offsets[a] + j).filter(|&r| a < n && r < run.offsets[a + 1]);
                    let (c, q, e) = match r {
                        Some(r) => {
                            m |= 1 << lane;
                            let i = run.isolated[r];
                            if stored(i) {
                                im |= 1 << lane;
                                // SAFETY: group g alone writes its stored margins
                                // iso_at[g]..iso_at[g + 1], inside the reserved capacity.
                                unsafe { iso.write(at, i) };
                                at += 1;
                            }
                            (run.key[r] >> run.key_shift, run.qty[r], run.entry[r])
                        }
                        None => (0, 0.0, 0.0),
                    };
                    // SAFETY: group g alone writes its slots slot[g]..slot[g + 1], inside the
                    // columns' capacity (room for as many slots as rows, and a group has at
                    // most as many slots as rows).
                    unsafe {
                        code.write(s * GROUP + lane, C::of(c));
                        qty.write(s * GROUP + lane, q);
                        entry.write(s * GROUP + lane, e);
                    }
                }
                // SAFETY: as above.
                unsafe {
                    mask.write(s, m);
                    iso_mask.write(s, im);
                }
            }
            debug_assert_eq!(at, iso_at[g + 1]);
        });
        let total_iso = self.iso_at[first + groups];
        // SAFETY: the groups wrote every stored margin up to `total_iso` (their ranges tile
        // the addition).
        unsafe { self.iso.set_len(total_iso) };
        self.done += groups;
    }
}
