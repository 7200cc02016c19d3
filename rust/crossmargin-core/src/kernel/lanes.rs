//! A [`Sliced8`] layout written account by account: what grouping writes straight into
//! (docs/ARCHITECTURE.md "Grouping").
//!
//! Every account's row counts are known before any row moves (the grouping counts them with
//! its histogram), so each group's slots, and so every column's final size, are known up
//! front. A task that knows each of an account's rows' rank writes that row into the
//! account's lane itself, and the lane's padding after it (the lane is the account's own: no
//! other task touches it). The columns are reserved, not cleared: a page is backed only once
//! a task writes to it, so the layout grows as the grouping's buffer shrinks.
//! What several accounts of a group share — the slots' masks and the stored isolated margins,
//! packed slot by slot in lane order — is set afterwards, group by group
//! ([`LaneLayout::finish`]).

use rayon::prelude::*;

use super::layout::{stored, CodeWidth, Codes, SlotCodes, ISO_PAD};
use super::{Sliced8, GROUP};
use crate::memory::{reserve_more, reserved_column, Disjoint};

/// Groups per task of the passes over groups.
const GROUPS_PER_TASK: usize = 1 << 10;

/// A stored isolated margin as an account's task hands it over: its slot in the group (the
/// row's rank in its account), its lane, its value. Accounts hand theirs over in ascending
/// order, so a group's entries start at its `iso_at` (in any order within an account).
#[derive(Debug, Clone, Copy)]
struct Stored {
    slot: u32,
    lane: u32,
    value: f64,
}

/// Codes at the layout's width, each kind its own column.
enum CodeColumns {
    U8(Vec<u8>, Vec<u8>),
    U16(Vec<u16>, Vec<u16>),
    U32(Vec<u32>, Vec<u32>),
}

/// A code column written by parallel tasks.
enum CodeOut {
    U8(Disjoint<u8>),
    U16(Disjoint<u16>),
    U32(Disjoint<u32>),
}

impl CodeOut {
    /// # Safety
    /// As [`Disjoint::write`]; `c` fits the width (the layout's width holds every code).
    #[inline(always)]
    unsafe fn write(&self, i: usize, c: u32) {
        // SAFETY: as the caller guarantees.
        unsafe {
            match self {
                CodeOut::U8(d) => d.write(i, c as u8),
                CodeOut::U16(d) => d.write(i, c as u16),
                CodeOut::U32(d) => d.write(i, c),
            }
        }
    }
}

/// A layout being written lane by lane (see the module docs).
pub(crate) struct LaneLayout {
    n_accounts: usize,
    bal_count: Vec<u32>,
    pos_count: Vec<u32>,
    bal_slot: Vec<usize>,
    pos_slot: Vec<usize>,
    codes: CodeColumns,
    bal_qty: Vec<f64>,
    pos_qty: Vec<f64>,
    pos_entry: Vec<f64>,
    /// Per group: its first stored isolated margin (set by its first account's task).
    iso_at: Vec<usize>,
    stored: Vec<Stored>,
    n_stored: usize,
}

/// Room for `n` values, in a mapping of its own when large (`memory::reserve_more`): fresh
/// pages, backed only as written. (Zeroed memory would not do: the allocator may serve it from
/// freed heap memory, which it clears at once, every page resident before a row is written.)
fn room<T>(n: usize) -> Vec<T> {
    let mut v = Vec::new();
    reserve_more(&mut v, n);
    v
}

/// Slot offsets of groups of 8 accounts: each group as wide as its account with the most rows.
fn slot_offsets(count: &[u32]) -> Vec<usize> {
    let groups = count.len().div_ceil(GROUP);
    let widths: Vec<u32> = (0..groups)
        .into_par_iter()
        .with_min_len(GROUPS_PER_TASK)
        .map(|g| count[g * GROUP..((g + 1) * GROUP).min(count.len())].iter().copied().max().unwrap_or(0))
        .collect();
    let mut slot = Vec::with_capacity(groups + 1);
    slot.push(0usize);
    for w in widths {
        slot.push(slot[slot.len() - 1] + w as usize);
    }
    slot
}

impl LaneLayout {
    /// Room for accounts with these balance and position row counts (dense account order),
    /// `stored` isolated margins in all, codes at `width`.
    pub(crate) fn new(width: CodeWidth, bal_count: Vec<u32>, pos_count: Vec<u32>, stored: usize) -> Self {
        debug_assert_eq!(bal_count.len(), pos_count.len());
        let n_accounts = bal_count.len();
        let (bal_slot, pos_slot) = (slot_offsets(&bal_count), slot_offsets(&pos_count));
        let groups = n_accounts.div_ceil(GROUP);
        let (nb, np) = (bal_slot[groups] * GROUP, pos_slot[groups] * GROUP);
        let codes = match width {
            CodeWidth::U8 => CodeColumns::U8(room(nb), room(np)),
            CodeWidth::U16 => CodeColumns::U16(room(nb), room(np)),
            CodeWidth::U32 => CodeColumns::U32(room(nb), room(np)),
        };
        LaneLayout {
            n_accounts,
            bal_count,
            pos_count,
            bal_slot,
            pos_slot,
            codes,
            bal_qty: room(nb),
            pos_qty: room(np),
            pos_entry: room(np),
            iso_at: vec![0; groups + 1],
            stored: reserved_column(stored),
            n_stored: stored,
        }
    }

    /// The views parallel tasks write through.
    pub(crate) fn sink(&mut self) -> LaneSink<'_> {
        let (bal_code, pos_code) = match &mut self.codes {
            CodeColumns::U8(b, p) => (CodeOut::U8(Disjoint::new(b)), CodeOut::U8(Disjoint::new(p))),
            CodeColumns::U16(b, p) => (CodeOut::U16(Disjoint::new(b)), CodeOut::U16(Disjoint::new(p))),
            CodeColumns::U32(b, p) => (CodeOut::U32(Disjoint::new(b)), CodeOut::U32(Disjoint::new(p))),
        };
        LaneSink {
            bal_count: &self.bal_count,
            pos_count: &self.pos_count,
            bal_slot: &self.bal_slot,
            pos_slot: &self.pos_slot,
            bal_code,
            pos_code,
            bal_qty: Disjoint::new(&mut self.bal_qty),
            pos_qty: Disjoint::new(&mut self.pos_qty),
            pos_entry: Disjoint::new(&mut self.pos_entry),
            iso_at: Disjoint::new(&mut self.iso_at),
            stored: Disjoint::new(&mut self.stored),
            stored_room: self.n_stored,
        }
    }

    /// The finished layout, once every account's rows are written: the slots' masks from the
    /// row counts, the stored isolated margins in slot-then-lane order.
    ///
    /// # Safety
    /// Every account's [`LaneSink::balances`] and [`LaneSink::positions`] ran, each once, and
    /// handed over `stored` isolated margins in all (the count given to [`LaneLayout::new`]).
    pub(crate) unsafe fn finish(mut self) -> Sliced8 {
        let groups = self.n_accounts.div_ceil(GROUP);
        let (nb, np) = (self.bal_slot[groups], self.pos_slot[groups]);
        let n_stored = self.n_stored;
        {
            // The last group's lanes past the last account hold no account: padding.
            let n = self.n_accounts;
            let sink = self.sink();
            for a in n..groups * GROUP {
                // SAFETY: no account writes these lanes.
                unsafe {
                    sink.balances(a, 0, |_| unreachable!("no rows"));
                    sink.positions(a, 0, &mut 0, |_| unreachable!("no rows"));
                }
            }
        }
        // SAFETY: the accounts' lanes tile every slot × lane of both kinds (each writes its
        // rows and its padding), and their stored margins tile 0..n_stored (the caller's
        // contract); the columns were reserved for exactly these lengths (`LaneLayout::new`).
        unsafe {
            self.bal_qty.set_len(nb * GROUP);
            self.pos_qty.set_len(np * GROUP);
            self.pos_entry.set_len(np * GROUP);
            self.stored.set_len(n_stored);
            match &mut self.codes {
                CodeColumns::U8(b, p) => (b.set_len(nb * GROUP), p.set_len(np * GROUP)),
                CodeColumns::U16(b, p) => (b.set_len(nb * GROUP), p.set_len(np * GROUP)),
                CodeColumns::U32(b, p) => (b.set_len(nb * GROUP), p.set_len(np * GROUP)),
            };
        }
        // Reserved with room to spare (a mapping of its own): give it back, in place.
        for v in [&mut self.bal_qty, &mut self.pos_qty, &mut self.pos_entry] {
            v.shrink_to_fit();
        }
        match &mut self.codes {
            CodeColumns::U8(b, p) => (b.shrink_to_fit(), p.shrink_to_fit()),
            CodeColumns::U16(b, p) => (b.shrink_to_fit(), p.shrink_to_fit()),
            CodeColumns::U32(b, p) => (b.shrink_to_fit(), p.shrink_to_fit()),
        };
        self.iso_at[groups] = n_stored;
        let mut bal_mask: Vec<u8> = reserved_column(nb);
        let mut pos_mask: Vec<u8> = reserved_column(np);
        let mut iso_mask: Vec<u8> = reserved_column(np);
        let mut iso: Vec<f64> = reserved_column(n_stored + ISO_PAD);
        {
            let (bm, pm, im, iv) = (
                Disjoint::new(&mut bal_mask),
                Disjoint::new(&mut pos_mask),
                Disjoint::new(&mut iso_mask),
                Disjoint::new(&mut iso),
            );
            let (n, bc, pc) = (self.n_accounts, &self.bal_count, &self.pos_count);
            let (bs, ps, at, st) = (&self.bal_slot, &self.pos_slot, &self.iso_at, &self.stored);
            (0..groups).into_par_iter().with_min_len(GROUPS_PER_TASK).for_each_init(
                || (Vec::new(), Vec::new()),
                |(order, bits): &mut (Vec<Stored>, Vec<u8>), g| {
                    let lanes = g * GROUP..((g + 1) * GROUP).min(n);
                    let mask = |count: &[u32], j: usize| {
                        count[lanes.clone()]
                            .iter()
                            .enumerate()
                            .fold(0u8, |m, (l, &c)| m | (u8::from(c as usize > j) << l))
                    };
                    for (j, s) in (bs[g]..bs[g + 1]).enumerate() {
                        // SAFETY: group g alone writes its slots.
                        unsafe { bm.write(s, mask(bc, j)) };
                    }
                    // The group's stored margins, from account-then-slot order to slot-then-lane.
                    order.clear();
                    order.extend_from_slice(&st[at[g]..at[g + 1]]);
                    order.sort_unstable_by_key(|e| (e.slot, e.lane));
                    bits.clear();
                    bits.resize(ps[g + 1] - ps[g], 0);
                    for (i, e) in order.iter().enumerate() {
                        bits[e.slot as usize] |= 1 << e.lane;
                        // SAFETY: group g alone writes its margins at[g]..at[g + 1].
                        unsafe { iv.write(at[g] + i, e.value) };
                    }
                    for (j, s) in (ps[g]..ps[g + 1]).enumerate() {
                        // SAFETY: group g alone writes its slots.
                        unsafe {
                            pm.write(s, mask(pc, j));
                            im.write(s, bits[j]);
                        }
                    }
                },
            );
            for i in n_stored..n_stored + ISO_PAD {
                // SAFETY: within the capacity reserved above, written by this thread only.
                unsafe { iv.write(i, 0.0) };
            }
        }
        // SAFETY: the groups wrote every slot's masks and every stored margin; the pad above.
        unsafe {
            bal_mask.set_len(nb);
            pos_mask.set_len(np);
            iso_mask.set_len(np);
            iso.set_len(n_stored + ISO_PAD);
        }
        let codes = match self.codes {
            CodeColumns::U8(bal, pos) => Codes::U8(SlotCodes { bal, pos }),
            CodeColumns::U16(bal, pos) => Codes::U16(SlotCodes { bal, pos }),
            CodeColumns::U32(bal, pos) => Codes::U32(SlotCodes { bal, pos }),
        };
        Sliced8 {
            n_accounts: self.n_accounts,
            bal_slot: self.bal_slot,
            pos_slot: self.pos_slot,
            bal_mask,
            pos_mask,
            codes,
            bal_qty: self.bal_qty,
            pos_qty: self.pos_qty,
            pos_entry: self.pos_entry,
            iso_mask,
            iso_at: self.iso_at,
            iso,
            has_orders: vec![false; groups],
        }
    }
}

/// Views of a [`LaneLayout`] that tasks write their accounts' lanes through.
pub(crate) struct LaneSink<'a> {
    bal_count: &'a [u32],
    pos_count: &'a [u32],
    bal_slot: &'a [usize],
    pos_slot: &'a [usize],
    bal_code: CodeOut,
    pos_code: CodeOut,
    bal_qty: Disjoint<f64>,
    pos_qty: Disjoint<f64>,
    pos_entry: Disjoint<f64>,
    iso_at: Disjoint<usize>,
    stored: Disjoint<Stored>,
    stored_room: usize,
}

impl LaneSink<'_> {
    /// Account `a`'s balances into its lane: `row(i)` → (rank, code, quantity) of each of its
    /// `count` rows (as counted for [`LaneLayout::new`]); the rank is the row's slot in the
    /// group. The lane's slots after them are padding (code 0, quantity 0).
    ///
    /// # Safety
    /// No other task writes account `a`'s balances; the ranks are distinct. (An `a` past the
    /// last account: a padding lane of the last group, no rows.)
    #[inline]
    pub(crate) unsafe fn balances(&self, a: usize, count: usize, row: impl Fn(usize) -> (u32, u32, f64)) {
        // SAFETY: the caller's contract, as `pad_balances` and `balance` ask.
        unsafe {
            self.pad_balances(a, count);
            for i in 0..count {
                let (j, c, q) = row(i);
                assert!((j as usize) < count, "a rank within the account's rows");
                self.balance(a, j, c, q);
            }
        }
    }

    /// The padding of account `a`'s balance lane after its `count` rows (code 0, quantity 0).
    ///
    /// # Safety
    /// No other task writes account `a`'s balances.
    #[inline(always)]
    pub(crate) unsafe fn pad_balances(&self, a: usize, count: usize) {
        assert_eq!(count, self.bal_count.get(a).map_or(0, |&c| c as usize), "account {a}: balance rows as counted");
        let (g, lane) = (a / GROUP, a % GROUP);
        for s in self.bal_slot[g] + count..self.bal_slot[g + 1] {
            // SAFETY: lane `lane` of the group's slots is account a's alone (the caller's
            // contract).
            unsafe {
                self.bal_code.write(s * GROUP + lane, 0);
                self.bal_qty.write(s * GROUP + lane, 0.0);
            }
        }
    }

    /// One balance of account `a` at slot `j` of its group (its rank among the account's rows).
    ///
    /// # Safety
    /// No other task writes account `a`'s balances; no other of its rows takes rank `j`.
    #[inline(always)]
    pub(crate) unsafe fn balance(&self, a: usize, j: u32, code: u32, qty: f64) {
        let (g, lane) = (a / GROUP, a % GROUP);
        let s = self.bal_slot[g] + j as usize;
        assert!(s < self.bal_slot[g + 1], "a rank within the group's slots");
        // SAFETY: slot s is one of the group's, lane `lane` account a's (the caller's contract).
        unsafe {
            self.bal_code.write(s * GROUP + lane, code);
            self.bal_qty.write(s * GROUP + lane, qty);
        }
    }

    /// Account `a`'s positions into its lane: `row(i)` → (rank, market code, quantity, entry
    /// price, isolated margin); the stored isolated margins go on from `*stored_at` (the
    /// account's first, as accounts are ascending: every account before `a` handed its
    /// margins over before it).
    ///
    /// # Safety
    /// As [`LaneSink::balances`]; `*stored_at` counts the stored margins of the accounts
    /// before `a`.
    #[inline]
    pub(crate) unsafe fn positions(
        &self,
        a: usize,
        count: usize,
        stored_at: &mut usize,
        row: impl Fn(usize) -> (u32, u32, f64, f64, f64),
    ) {
        if a.is_multiple_of(GROUP) {
            // SAFETY: a group's first account alone writes the group's offset.
            unsafe { self.group_stored_at(a / GROUP, *stored_at) };
        }
        // SAFETY: the caller's contract, as `pad_positions`, `position` and `store` ask.
        unsafe {
            self.pad_positions(a, count);
            for i in 0..count {
                let (j, c, q, e, m) = row(i);
                assert!((j as usize) < count, "a rank within the account's rows");
                self.position(a, j, c, q, e);
                if stored(m) {
                    self.store(*stored_at, a, j, m);
                    *stored_at += 1;
                }
            }
        }
    }

    /// The padding of account `a`'s position lane after its `count` rows.
    ///
    /// # Safety
    /// No other task writes account `a`'s positions.
    #[inline(always)]
    pub(crate) unsafe fn pad_positions(&self, a: usize, count: usize) {
        assert_eq!(count, self.pos_count.get(a).map_or(0, |&c| c as usize), "account {a}: position rows as counted");
        let (g, lane) = (a / GROUP, a % GROUP);
        for s in self.pos_slot[g] + count..self.pos_slot[g + 1] {
            let at = s * GROUP + lane;
            // SAFETY: lane `lane` of the group's slots is account a's alone (the caller's
            // contract).
            unsafe {
                self.pos_code.write(at, 0);
                self.pos_qty.write(at, 0.0);
                self.pos_entry.write(at, 0.0);
            }
        }
    }

    /// One position of account `a` at slot `j` of its group (its rank among the account's
    /// rows); its isolated margin, if stored, goes through [`LaneSink::store`].
    ///
    /// # Safety
    /// As [`LaneSink::balance`], for positions.
    #[inline(always)]
    pub(crate) unsafe fn position(&self, a: usize, j: u32, code: u32, qty: f64, entry: f64) {
        let (g, lane) = (a / GROUP, a % GROUP);
        let s = self.pos_slot[g] + j as usize;
        assert!(s < self.pos_slot[g + 1], "a rank within the group's slots");
        let at = s * GROUP + lane;
        // SAFETY: slot s is one of the group's, lane `lane` account a's (the caller's contract).
        unsafe {
            self.pos_code.write(at, code);
            self.pos_qty.write(at, qty);
            self.pos_entry.write(at, entry);
        }
    }

    /// Stored isolated margin number `i` (accounts ascending): account `a`'s row at slot `j`.
    ///
    /// # Safety
    /// No other task writes index `i`; the indices of a group's margins start at the group's
    /// [`LaneSink::group_stored_at`].
    #[inline]
    pub(crate) unsafe fn store(&self, i: usize, a: usize, j: u32, value: f64) {
        assert!(i < self.stored_room, "stored isolated margins as counted");
        // SAFETY: the caller's contract, checked against the room above.
        unsafe { self.stored.write(i, Stored { slot: j, lane: (a % GROUP) as u32, value }) };
    }

    /// Group `g`'s first stored isolated margin.
    ///
    /// # Safety
    /// No other task writes group `g`'s offset.
    #[inline]
    pub(crate) unsafe fn group_stored_at(&self, g: usize, i: usize) {
        // SAFETY: the caller's contract.
        unsafe { self.iso_at.write(g, i) };
    }
}
