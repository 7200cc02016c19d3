//! Ranks from key masks: how grouping places a row among its account's rows when the table
//! has at most 64 keys (docs/ARCHITECTURE.md "Ranks from key masks").
//!
//! The counting pass sets one bit per key an account's rows hold (its *mask*). A row's rank
//! among its account's rows, its slot in the layout, is then the number of the account's
//! keys below its own. So each partition's task writes every row straight to its place as
//! the rows come, in input order, without grouping the partition's rows by account or
//! ordering an account's keys. The mask also counts the account's rows (its bits), marks a
//! hedge leg beside a one-way row of the same market, and, cleared bit by bit as the rows
//! arrive, catches a second row of one key (a duplicate balance to merge, a duplicate
//! position to name): the caller then declines, as the ranking path does.

use std::ops::{BitAnd, BitOr, BitXor, Range};

use rayon::prelude::*;

use super::{Space, Tally, WaveColumns};
use crate::memory::prefetch;

/// A set of keys, one bit each: u8 to u64, the narrowest that holds a book's keys (the count
/// keeps one per account and counting task).
pub(super) trait KeyMask:
    Copy + Default + Eq + Send + Sync + BitOr<Output = Self> + BitAnd<Output = Self> + BitXor<Output = Self>
{
    const BITS: u32;
    /// The set of key `k` alone (`k < BITS`).
    fn bit(k: u32) -> Self;
    /// How many keys.
    fn ones(self) -> u32;
    /// How many keys below `k` (`k < BITS`): the rank of key `k`'s row.
    fn below(self, k: u32) -> u32;
    /// Whether a one-way key (code · 4 + 0) shares its market with a leg (+ 1, + 2): packed
    /// position keys that may not share an account.
    fn clash(self) -> bool;
}

macro_rules! key_mask {
    ($($t:ty),*) => {$(
        impl KeyMask for $t {
            const BITS: u32 = <$t>::BITS;
            #[inline(always)]
            fn bit(k: u32) -> Self {
                1 << k
            }
            #[inline(always)]
            fn ones(self) -> u32 {
                self.count_ones()
            }
            #[inline(always)]
            fn below(self, k: u32) -> u32 {
                (self & ((1 << k) - 1)).count_ones()
            }
            #[inline(always)]
            fn clash(self) -> bool {
                const BOTH: u64 = 0x1111_1111_1111_1111;
                let x = self as u64;
                x & BOTH & ((x >> 1) | (x >> 2)) != 0
            }
        }
    )*};
}
key_mask!(u8, u16, u32, u64);

/// A counting task's masks: each slot's keys (`key(row)`); `bad` when a key is too large for
/// the mask (a row the scatter's checks will reject).
pub(super) struct MaskTally<'k, M, K> {
    pub(super) masks: Vec<M>,
    pub(super) bad: bool,
    key: &'k K,
}

impl<'k, M: KeyMask, K> MaskTally<'k, M, K> {
    pub(super) fn new(slots: usize, key: &'k K) -> Self {
        MaskTally { masks: vec![M::default(); slots], bad: false, key }
    }
}

impl<M: KeyMask, K: Fn(usize) -> u32 + Sync> Tally for MaskTally<'_, M, K> {
    #[inline(always)]
    fn add(&mut self, slot: usize, row: usize) {
        let k = (self.key)(row);
        if k < M::BITS {
            let m = &mut self.masks[slot];
            *m = *m | M::bit(k);
        } else {
            self.bad = true;
        }
    }

    #[inline(always)]
    fn prefetch(&self, slot: usize) {
        prefetch(self.masks.as_ptr().wrapping_add(slot));
    }
}

/// The counting tasks' masks joined into one (a slot's keys from every task); None when a
/// task saw a key too large for the mask.
pub(super) fn join_masks<M: KeyMask, K>(tallies: Vec<MaskTally<'_, M, K>>) -> Option<Vec<M>> {
    if tallies.iter().any(|t| t.bad) {
        return None;
    }
    let mut tallies = tallies.into_iter();
    let mut masks = tallies.next().map(|t| t.masks).unwrap_or_default();
    for t in tallies {
        masks.par_chunks_mut(1 << 16).zip(t.masks.par_chunks(1 << 16)).for_each(|(a, b)| {
            for (x, &y) in a.iter_mut().zip(b) {
                *x = *x | y;
            }
        });
    }
    Some(masks)
}

/// What [`Space::lay_parts_masked`] hands a table's writer.
pub(super) trait MaskedRows<M>: Sync {
    /// Per-partition state (the positions' stored isolated margins).
    type State: Default + Send;
    /// Partition `p`'s task starts on it (before its accounts).
    fn begin(&self, _state: &mut Self::State, _p: usize) {}
    /// Account `d` (dense index) with its keys, before its rows: writes its lane's padding.
    /// True when its keys may not share an account.
    ///
    /// # Safety
    /// Called once per account, by its partition's task alone.
    unsafe fn account(&self, d: usize, keys: M) -> bool;
    /// Row `i` of the partition's buffer (its key as buffered, its f64 columns `f`), account
    /// `d`'s row at rank `j`.
    ///
    /// # Safety
    /// Called once per row, by its partition's task alone, with distinct ranks per account.
    unsafe fn row(&self, state: &mut Self::State, d: usize, j: u32, key: u32, i: usize, f: &[&mut [f64]; 3]);
    /// After partition `p`'s rows (its accounts are `dense`), also after a partition that
    /// declined: true when the rows do not add up to what was counted. Leaves `state` empty.
    ///
    /// # Safety
    /// Called once per partition, by its task, after its rows.
    unsafe fn end(&self, state: &mut Self::State, p: usize, dense: Range<usize>) -> bool;
}

/// A partition task's reused buffers.
#[derive(Default)]
struct MaskScratch<M, S> {
    /// Each local slot's dense account index.
    dense: Vec<u32>,
    /// Each local slot's keys not yet written.
    left: Vec<M>,
    state: S,
}

impl Space<'_> {
    /// [`Space::lay_parts`] by key masks: each partition of `parts` (one wave, region index r
    /// at buffer index r − `at`) hands each account its keys (`rows.account`, accounts
    /// ascending), then each row in buffer order its rank (`rows.row`), the count of its
    /// account's keys below its own (`mask_key` maps a buffered key to its mask key). True when
    /// a row repeats a key of its account, or an account's keys clash, or the rows are not
    /// those counted (the caller declines).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn lay_parts_masked<M: KeyMask, R: MaskedRows<M>>(
        &self,
        parts: Range<usize>,
        at: usize,
        region: &[usize],
        base: &[usize],
        (cols, nf): (&WaveColumns, usize),
        masks: &[M],
        mask_key: impl Fn(u32) -> u32 + Sync,
        rows: &R,
    ) -> bool {
        let w = 1usize << self.shift;
        parts
            .into_par_iter()
            .map_init(MaskScratch::<M, R::State>::default, |sc, p| {
                let (s, e) = (region[p] - at, region[p + 1] - at);
                // SAFETY: partition p's task alone touches its region s..e of the buffer, which
                // the wave's scatter wrote.
                let (lo, key, f) = unsafe { cols.region(s, e, nf) };
                let first = p * w;
                let slots = &masks[first..((p + 1) * w).min(self.range)];
                sc.dense.clear();
                sc.left.clear();
                rows.begin(&mut sc.state, p);
                let (mut d, mut bad) = (base[p], false);
                for (j, &m) in slots.iter().enumerate() {
                    if self.is_seen(first + j) {
                        // SAFETY: partition p holds the accounts base[p]..base[p + 1], each once.
                        bad |= unsafe { rows.account(d, m) };
                        sc.dense.push(d as u32);
                        d += 1;
                    } else {
                        sc.dense.push(u32::MAX);
                    }
                    sc.left.push(m);
                }
                if !bad {
                    for i in 0..lo.len() {
                        let (l, k) = (lo[i] as usize, mask_key(key[i]));
                        let left = &mut sc.left[l];
                        // A key already written (a second row of it) or never counted: decline.
                        if k >= M::BITS || *left & M::bit(k) == M::default() {
                            bad = true;
                            break;
                        }
                        *left = *left ^ M::bit(k);
                        // SAFETY: the account's bit for key k was set and is now cleared: no
                        // other row of it gets this rank. An unseen slot has no keys, so d is
                        // an account.
                        unsafe { rows.row(&mut sc.state, sc.dense[l] as usize, slots[l].below(k), key[i], i, &f) };
                    }
                }
                // Every counted key was written, or the input changed since it was counted.
                bad = bad || sc.left.iter().any(|&m| m != M::default());
                // SAFETY: once, by the partition's task, after its rows. Called whatever came
                // before, so that the state starts empty for the task's next partition.
                bad = unsafe { rows.end(&mut sc.state, p, base[p]..base[p + 1]) } || bad;
                bad
            })
            .reduce(|| false, |a, b| a | b)
    }
}
