//! Fresh memory for large outputs. A new allocation costs the kernel a page fault (and a
//! page to clear) per 4 KiB on first write: for a million-account evaluation or grouping that
//! is a large share of the time. Large columns ask for 2 MiB pages instead (transparent huge
//! pages through `madvise`), so each faults a few dozen times.

use rayon::prelude::*;

/// A zeroed column of `n` values on huge pages where the platform has them.
pub fn column<T: Clone + Default>(n: usize) -> Vec<T> {
    let mut v = vec![T::default(); n];
    advise_huge_pages(&mut v);
    v
}

#[cfg(target_os = "linux")]
fn advise_huge_pages<T>(v: &mut [T]) {
    const HUGE: usize = 2 << 20;
    let (ptr, bytes) = (v.as_mut_ptr() as usize, std::mem::size_of_val(v));
    let (start, end) = ((ptr + HUGE - 1) & !(HUGE - 1), (ptr + bytes) & !(HUGE - 1));
    if end > start {
        // SAFETY: [start, end) lies inside `v`'s allocation, which this thread owns; the call
        // only advises the kernel how to back those pages, it neither reads nor moves them.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages<T>(_: &mut [T]) {}

/// `f` of every item of `src`, in parallel, into a fresh column (what `collect` does, on huge
/// pages).
pub fn map_column<S: Sync, T: Clone + Default + Send>(src: &[S], f: impl Fn(&S) -> T + Sync) -> Vec<T> {
    let mut out = column(src.len());
    out.par_iter_mut().zip(src.par_iter()).for_each(|(o, s)| *o = f(s));
    out
}
