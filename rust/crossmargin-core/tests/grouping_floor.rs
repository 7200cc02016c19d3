//! What grouping an unsorted book costs at the least on this machine, beside what
//! `group_into_layout` takes on the same book, in one run (run with `cargo test --release -p
//! crossmargin-core --test grouping_floor -- --ignored --nocapture`; `CM_FLOOR_ACCOUNTS`
//! sets the book's size, 1M by default; docs/ARCHITECTURE.md "Grouping" quotes it).
//!
//! The floor is the grouping's two moves and nothing else: count each account's keys (a
//! mask per account and counting task) and each partition's rows; scatter the rows into
//! their partitions' regions of a buffer; lay each partition's rows into the sliced-8
//! layout at their rank. No checks, no isolated margins, 8-bit codes, the layout's padding
//! cleared in bulk; fresh memory on huge pages each time, as a grouping gets.

use std::time::Instant;

use crossmargin_core::memory::reserved_column;
use crossmargin_core::{group_into_layout, BalanceInput, PositionInput};
use rayon::prelude::*;

const CODES: u32 = 5;
const CHUNK: usize = 1 << 18;
const SHIFT: u32 = 13;
const FIRST_ID: i64 = 10_000_000;

/// One table of the book: ids, codes and its f64 columns, rows shuffled.
struct Table {
    id: Vec<i64>,
    code: Vec<u32>,
    f: Vec<Vec<f64>>,
}

fn table(n: usize, in_ten: u64, nf: usize, seed: u64) -> Table {
    let mut x = seed;
    let mut next = move |m: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let (mut id, mut code) = (vec![], vec![]);
    for a in 0..n as i64 {
        for c in 0..CODES {
            if next(10) < in_ten {
                id.push(FIRST_ID + a);
                code.push(c);
            }
        }
    }
    for i in (1..id.len()).rev() {
        let j = next(i as u64 + 1) as usize;
        id.swap(i, j);
        code.swap(i, j);
    }
    let rows = id.len();
    let f = (0..nf).map(|c| (0..rows).map(|i| (i % 97) as f64 + 1.0 + c as f64).collect()).collect();
    Table { id, code, f }
}

/// A column's buffer that tasks write at disjoint indices.
#[derive(Clone, Copy)]
struct Out<T>(*mut T);
// SAFETY: the tasks below write disjoint indices of one live allocation.
unsafe impl<T> Sync for Out<T> {}
// SAFETY: as above.
unsafe impl<T> Send for Out<T> {}

impl<T> Out<T> {
    /// # Safety
    /// `i` is within the allocation and no other task writes it meanwhile.
    unsafe fn put(self, i: usize, v: T) {
        // SAFETY: as the caller guarantees.
        unsafe { self.0.add(i).write(v) }
    }
}

/// A fresh column of `n` values on huge pages, every value written by the caller.
fn fresh<T>(n: usize) -> (Vec<T>, Out<T>) {
    let mut v = reserved_column::<T>(n);
    let out = Out(v.as_mut_ptr());
    (v, out)
}

/// Milliseconds of each phase of the floor: count, scatter, lay.
fn floor(n: usize, tables: [&Table; 2]) -> [f64; 3] {
    let parts = n.div_ceil(1 << SHIFT);
    let t0 = Instant::now();
    let counted: Vec<(Vec<Vec<usize>>, Vec<u8>)> = tables.iter().map(|t| count(n, parts, t)).collect();
    let t1 = Instant::now();
    let (mut scatter, mut lay) = (0.0, 0.0);
    for (t, (hist, masks)) in tables.iter().zip(&counted) {
        let (s, l) = move_rows(n, parts, t, hist, masks);
        scatter += s;
        lay += l;
    }
    [(t1 - t0).as_secs_f64() * 1e3, scatter, lay]
}

/// Each chunk's rows per partition, and each account's keys (one mask per counting task,
/// joined).
fn count(n: usize, parts: usize, t: &Table) -> (Vec<Vec<usize>>, Vec<u8>) {
    let rows = t.id.len();
    let chunks = rows.div_ceil(CHUNK);
    let tasks = rayon::current_num_threads().clamp(1, chunks);
    let per_task: Vec<(Vec<Vec<usize>>, Vec<u8>)> = (0..tasks)
        .into_par_iter()
        .map(|k| {
            let mut masks = vec![0u8; n];
            let hist = (k * chunks / tasks..(k + 1) * chunks / tasks)
                .map(|c| {
                    let mut h = vec![0usize; parts];
                    for r in c * CHUNK..((c + 1) * CHUNK).min(rows) {
                        let s = (t.id[r] - FIRST_ID) as usize;
                        h[s >> SHIFT] += 1;
                        masks[s] |= 1 << t.code[r];
                    }
                    h
                })
                .collect();
            (hist, masks)
        })
        .collect();
    let mut hist = vec![];
    let mut joined: Option<Vec<u8>> = None;
    for (h, m) in per_task {
        hist.extend(h);
        match &mut joined {
            None => joined = Some(m),
            Some(j) => j.par_iter_mut().zip(&m).for_each(|(a, b)| *a |= b),
        }
    }
    (hist, joined.unwrap_or_default())
}

/// Scatters the table's rows into partitions, then lays each partition out; milliseconds of
/// each move.
fn move_rows(n: usize, parts: usize, t: &Table, hist: &[Vec<usize>], masks: &[u8]) -> (f64, f64) {
    let t0 = Instant::now();
    let rows = t.id.len();
    // Each group's first slot: the widest of its eight accounts.
    let widths: Vec<usize> =
        masks.par_chunks(8).map(|g| g.iter().map(|m| m.count_ones()).max().unwrap_or(0) as usize).collect();
    let mut slot = vec![0usize];
    for w in widths {
        slot.push(slot[slot.len() - 1] + w);
    }
    let (mut cursor, mut region, mut at) = (vec![0usize; hist.len() * parts], vec![0usize; parts + 1], 0);
    for p in 0..parts {
        region[p] = at;
        for (c, h) in hist.iter().enumerate() {
            cursor[c * parts + p] = at;
            at += h[p];
        }
    }
    region[parts] = at;
    let nf = t.f.len();
    let (lo_col, lo) = fresh::<u16>(rows);
    let (key_col, key) = fresh::<u8>(rows);
    let (f_cols, f): (Vec<Vec<f64>>, Vec<Out<f64>>) = (0..nf).map(|_| fresh::<f64>(rows)).unzip();
    cursor.par_chunks(parts).enumerate().for_each(|(c, cur)| {
        let mut cur = cur.to_vec();
        for r in c * CHUNK..((c + 1) * CHUNK).min(rows) {
            let s = (t.id[r] - FIRST_ID) as usize;
            let d = &mut cur[s >> SHIFT];
            // SAFETY: each row takes the next index of its chunk's cell of its partition.
            unsafe {
                lo.put(*d, (s & ((1 << SHIFT) - 1)) as u16);
                key.put(*d, t.code[r] as u8);
                for (o, col) in f.iter().zip(&t.f) {
                    o.put(*d, col[r]);
                }
            }
            *d += 1;
        }
    });
    let t1 = Instant::now();
    // SAFETY: the scatter wrote every index below `rows`.
    let (lo_col, key_col, f_cols) = unsafe {
        (filled(lo_col, rows), filled(key_col, rows), f_cols.into_iter().map(|v| filled(v, rows)).collect::<Vec<_>>())
    };
    let lanes = slot[slot.len() - 1] * 8;
    let (code_col, code) = fresh::<u8>(lanes);
    let (lane_cols, lane): (Vec<Vec<f64>>, Vec<Out<f64>>) = (0..nf).map(|_| fresh::<f64>(lanes)).unzip();
    (0..parts).into_par_iter().for_each(|p| {
        let (g0, g1) = ((p << SHIFT) / 8, ((p + 1) << SHIFT).min(n).div_ceil(8));
        let (s0, s1) = (slot[g0] * 8, slot[g1] * 8);
        // SAFETY: partition p alone holds groups g0..g1 and so lanes s0..s1; each of its rows
        // takes its own (slot, lane).
        unsafe {
            std::ptr::write_bytes(code.0.add(s0), 0, s1 - s0);
            for o in &lane {
                std::ptr::write_bytes(o.0.add(s0), 0, s1 - s0);
            }
            for i in region[p]..region[p + 1] {
                let (a, k) = ((p << SHIFT) + lo_col[i] as usize, key_col[i]);
                let rank = (masks[a] & ((1u8 << k) - 1)).count_ones() as usize;
                let at = (slot[a / 8] + rank) * 8 + a % 8;
                code.put(at, k);
                for (o, col) in lane.iter().zip(&f_cols) {
                    o.put(at, col[i]);
                }
            }
        }
    });
    std::hint::black_box((code_col, lane_cols));
    let t2 = Instant::now();
    ((t1 - t0).as_secs_f64() * 1e3, (t2 - t1).as_secs_f64() * 1e3)
}

/// # Safety
/// The first `n` values of `v`'s buffer were written.
unsafe fn filled<T>(mut v: Vec<T>, n: usize) -> Vec<T> {
    // SAFETY: as the caller guarantees, within the capacity reserved.
    unsafe { v.set_len(n) };
    v
}

#[test]
#[ignore]
fn grouping_against_its_floor() {
    let n: usize = std::env::var("CM_FLOOR_ACCOUNTS").map_or(1_000_000, |s| s.parse().expect("a number of accounts"));
    let (bal, pos) = (table(n, 6, 1, 7), table(n, 8, 2, 11));
    let mut seen = vec![false; n];
    for id in bal.id.iter().chain(&pos.id) {
        seen[(id - FIRST_ID) as usize] = true;
    }
    let accounts = seen.iter().filter(|&&s| s).count();
    let iso: Vec<f64> = (0..pos.id.len()).map(|i| if i % 20 == 0 { 5.0 } else { 0.0 }).collect();
    let (mut best_floor, mut best_phases, mut best_group) = (f64::INFINITY, [0.0; 3], f64::INFINITY);
    for _ in 0..7 {
        let b = BalanceInput { account: &bal.id, code: &bal.code, qty: &bal.f[0] };
        let p = PositionInput {
            account: &pos.id,
            code: &pos.code,
            qty: &pos.f[0],
            entry_price: &pos.f[1],
            isolated_margin: &iso,
        };
        let t0 = Instant::now();
        let book = group_into_layout(b, p, &[], CODES, CODES).expect("a valid book");
        best_group = best_group.min(t0.elapsed().as_secs_f64() * 1e3);
        assert_eq!(book.accounts.len(), accounts);
        drop(book);
        let phases = floor(n, [&bal, &pos]);
        let total: f64 = phases.iter().sum();
        if total < best_floor {
            (best_floor, best_phases) = (total, phases);
        }
    }
    let [c, s, l] = best_phases;
    println!(
        "{n} accounts ({} balance, {} position rows), {} threads, best of 7:\n  floor {best_floor:.1} ms \
         (count {c:.1}, scatter {s:.1}, lay {l:.1})\n  group_into_layout {best_group:.1} ms = {:.2}× the floor",
        bal.id.len(),
        pos.id.len(),
        rayon::current_num_threads(),
        best_group / best_floor
    );
}
