//! Fresh memory for large outputs. A new allocation costs the kernel a page fault (and a
//! page to clear) per 4 KiB on first write: for a million-account evaluation or grouping that
//! is a large share of the time. Large columns ask for 2 MiB pages instead (transparent huge
//! pages through `madvise`), so each faults a few dozen times.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

/// Whether large fresh columns ask for transparent huge pages ([`set_huge_pages`]).
static HUGE_PAGES: AtomicBool = AtomicBool::new(true);

/// Turns the huge-page advice for large fresh columns on (the default) or off for the
/// process; returns the previous setting. Off suits a virtual machine whose balloon reports
/// freed memory to the host: there a huge page faulted onto such memory costs several times
/// the small pages it replaces (docs/ARCHITECTURE.md, "Settled at stop 42";
/// `benches/page_faults.py` measures a machine). Columns already allocated keep their pages.
pub fn set_huge_pages(on: bool) -> bool {
    HUGE_PAGES.swap(on, Ordering::Relaxed)
}

/// Whether large fresh columns ask for huge pages ([`set_huge_pages`]).
pub fn huge_pages() -> bool {
    HUGE_PAGES.load(Ordering::Relaxed)
}

/// Brings the cache line at `p` towards the core (a hint, for a read or write soon; a no-op
/// off x86-64). Any address will do: a prefetch reads nothing and faults on none.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as above, the instruction touches no memory the program can observe.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A zeroed column of `n` values on huge pages where the platform has them.
pub fn column<T: Clone + Default>(n: usize) -> Vec<T> {
    let mut v = vec![T::default(); n];
    advise_huge_pages(&mut v);
    v
}

/// A transparent huge page's bytes (x86-64 and 4 KiB-page aarch64).
const HUGE: usize = 2 << 20;

#[cfg(target_os = "linux")]
fn advise_huge_pages<T>(v: &mut [T]) {
    if !huge_pages() {
        return;
    }
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

/// An empty column with room for `n` values on huge pages, for a caller that writes every
/// slot through a [`Disjoint`] view and then sets the length (no clearing pass).
pub fn reserved_column<T>(n: usize) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    advise_huge_pages(&mut v.spare_capacity_mut()[..n]);
    v
}

/// A column's buffer shared by parallel tasks that each write (or read back) their own
/// disjoint slots: a counting sort's scatter, then per-range passes over what it wrote.
pub struct Disjoint<T>(*mut T);

// SAFETY: the tasks touch disjoint slots of one live allocation (each user's contract).
unsafe impl<T: Send> Sync for Disjoint<T> {}
unsafe impl<T: Send> Send for Disjoint<T> {}

impl<T> Disjoint<T> {
    /// A view of `v`'s buffer (its capacity, not only its length).
    pub fn new(v: &mut Vec<T>) -> Self {
        Disjoint(v.as_mut_ptr())
    }

    /// Writes slot `i`.
    ///
    /// # Safety
    /// `i` is within the buffer's capacity and no other task touches slot `i` meanwhile.
    #[inline(always)]
    pub unsafe fn write(&self, i: usize, x: T) {
        // SAFETY: as the caller guarantees.
        unsafe { self.0.add(i).write(x) }
    }

    /// Reads slot `i`.
    ///
    /// # Safety
    /// `i` is within the buffer's capacity, its slot initialised, and no task writes it
    /// meanwhile.
    #[inline(always)]
    pub unsafe fn read(&self, i: usize) -> T
    where
        T: Copy,
    {
        // SAFETY: as the caller guarantees.
        unsafe { self.0.add(i).read() }
    }

    /// Slots `s..e` as a slice.
    ///
    /// # Safety
    /// `s..e` lies within the buffer's capacity, its slots are initialised, and no other
    /// task touches them while the slice lives.
    #[inline(always)]
    pub unsafe fn slice<'a>(&self, s: usize, e: usize) -> &'a mut [T] {
        // SAFETY: as the caller guarantees.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(s), e - s) }
    }
}

/// `f` of every item of `src`, in parallel, into a fresh column (what `collect` does, on huge
/// pages).
pub fn map_column<S: Sync, T: Send>(src: &[S], f: impl Fn(&S) -> T + Sync) -> Vec<T> {
    column_from(src.len(), |i| f(&src[i]))
}

/// A fresh column of `n` values, `f(i)` at index `i`, computed in parallel straight into
/// uninitialised memory on huge pages: each page is faulted in once, by its first write, and
/// never cleared first (a zeroed column costs a pass over memory that is then overwritten).
pub fn column_from<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(n);
    let spare = &mut out.spare_capacity_mut()[..n];
    advise_huge_pages(spare);
    spare.par_iter_mut().enumerate().with_min_len(1 << 12).for_each(|(i, slot)| {
        slot.write(f(i));
    });
    // SAFETY: the loop above wrote each of the first `n` slots (capacity ≥ n); a panic in `f`
    // unwinds before this point and drops `out` with length 0.
    unsafe { out.set_len(n) };
    out
}

/// Hands the heap's freed pages back to the operating system (glibc's `malloc_trim`; a no-op
/// elsewhere): a step that freed large transients (a grouping's buffers and count tables)
/// would otherwise leave them resident in the heap, where the next allocations may not reuse
/// them.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it reads no caller memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Hands back to the operating system the pages of `v`'s spare capacity beyond its first
/// `keep` values (whole pages only): a reused buffer whose next use needs less room than its
/// last would otherwise keep the difference resident. The spare capacity holds no values;
/// the allocation and its length are unchanged.
pub fn release_spare<T>(v: &mut Vec<T>, keep: usize) {
    let keep = keep.max(v.len()).min(v.capacity());
    let base = v.as_mut_ptr() as usize;
    let size = std::mem::size_of::<T>();
    // SAFETY: the range lies inside `v`'s allocation, past its initialised values.
    unsafe { drop_pages(base + keep * size, base + v.capacity() * size) };
}

/// Plain numbers, for which all-zero bytes are a valid value.
pub trait Plain: Copy {}
impl Plain for u16 {}
impl Plain for u32 {}
impl Plain for f64 {}

/// Hands back to the operating system the whole 2 MiB pages of the buffer's first `e` values
/// that lie past byte address `*from` (where the previous call stopped; 0 at first), and
/// moves `*from` past them: a buffer consumed from its start, step by step, goes back as it
/// is consumed. Whole huge pages only: handing back part of a transparent huge page splits
/// it, and the split and the shootdown of its mappings cost more than the page is worth to
/// hand back early. Those values read as zero afterwards.
///
/// # Safety
/// The buffer's first `e` values lie within its allocation, and nothing reads or writes them
/// meanwhile (a later step writes before it reads).
pub unsafe fn release_consumed<T: Plain>(v: &Disjoint<T>, e: usize, from: &mut usize) {
    let (base, size) = (v.0 as usize, std::mem::size_of::<T>());
    let (start, end) = ((*from).max(base).next_multiple_of(HUGE), (base + e * size) & !(HUGE - 1));
    if end > start {
        // SAFETY: as the caller guarantees; zero bytes are valid values (`Plain`).
        unsafe { drop_pages(start, end) };
        *from = end;
    }
}

/// `MADV_DONTNEED` on the whole pages inside `[start, end)` (a no-op elsewhere than Linux).
///
/// # Safety
/// The range lies inside one allocation the caller owns, and whatever it holds may become
/// zero bytes.
unsafe fn drop_pages(start: usize, end: usize) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let (start, end) = (start.next_multiple_of(PAGE), end & !(PAGE - 1));
        if end > start {
            // SAFETY: as the caller guarantees; the call only drops the pages' contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, end);
}

/// Bytes from which glibc's malloc gives an allocation a memory mapping of its own whatever
/// its dynamic threshold (`DEFAULT_MMAP_THRESHOLD_MAX` on 64-bit): freed, it goes back to the
/// operating system; grown, it is remapped rather than copied.
const MAPPED: usize = 32 << 20;

/// Room for `n` more values in `v`, the new room advised onto huge pages: a column grown step
/// by step, each step written through a [`Disjoint`] view and then its length set. A column
/// of a megabyte or more reserves at least [`MAPPED`] bytes (address space, not memory: pages
/// are only backed once written), so that it lives in a mapping of its own — growing it
/// moves no bytes and freeing it leaves no resident hole in the heap (call `shrink_to_fit`
/// when done).
pub fn reserve_more<T>(v: &mut Vec<T>, n: usize) {
    reserve_more_advising(v, n, true);
}

/// [`reserve_more`], with the huge-page advice only when `huge`: room far larger than what
/// will be written (an upper bound) would otherwise back a partly written 2 MiB page per
/// column, more than a small column's data.
pub fn reserve_more_advising<T>(v: &mut Vec<T>, n: usize, huge: bool) {
    let size = std::mem::size_of::<T>().max(1);
    let want = v.len() + n;
    if v.capacity() < want {
        let target = if want * size >= 1 << 20 { want.max(MAPPED / size + 1) } else { want };
        v.reserve_exact(target - v.len());
    }
    if huge {
        advise_huge_pages(&mut v.spare_capacity_mut()[..n]);
    }
}
