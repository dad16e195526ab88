//! The allocator settings of a process that runs tasks.

/// Buffers below this size come from glibc's heaps (and are reused once freed); larger ones are
/// mapped for themselves and unmapped when freed.
pub const MMAP_THRESHOLD: usize = 16 << 20;
/// How much free memory at the top of a heap glibc keeps before giving it back to the system.
pub const TRIM_THRESHOLD: usize = 32 << 20;

/// Gives glibc's malloc a fixed mmap threshold of [`MMAP_THRESHOLD`] and a trim threshold of
/// [`TRIM_THRESHOLD`]. Call it first thing in `main` of a process that runs tasks (`weft`, and the
/// benchmark runner, which fetches shuffle blocks as a reduce task does); elsewhere it does nothing.
///
/// By default glibc raises the mmap threshold (up to 32 MiB) each time a large block is freed, and
/// the trim threshold with it: after that a worker's large buffers stay resident once freed, and
/// the bounded-memory benchmark's worker peaked anywhere from 214 to 318 MiB over identical runs.
/// A fixed threshold keeps the peak steady. It must sit above the buffers a task cycles through,
/// though: at 2 MiB (and the default 128 KiB trim threshold) every received shuffle message
/// (a batch of 4 MiB of data, ~9 MB with its offsets) was a fresh mapping, every one of its pages
/// faulted in on arrival and unmapped after; a fetch across processes ran at 760–830 MB/s. At
/// 16 MiB, with 32 MiB kept at a heap's top (glibc's own rule: twice the threshold), the same fetch
/// ran at 1.2–1.8 GB/s, and the bounded-memory worker peaked at 192–194 MiB instead of 172
/// (BENCHMARKS.md, 2026-12-05 sixth pass).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune_malloc() {
    // SAFETY: mallopt only sets allocator parameters (under the arenas' locks). If it fails (it
    // returns 0), glibc's defaults stay, which are only less predictable.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int);
    }
}

/// Not glibc: nothing to tune.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_malloc() {}

/// Hands the free memory of every glibc heap back to the system (`malloc_trim(0)`): what the trim
/// threshold keeps at each heap's top (up to [`TRIM_THRESHOLD`] per arena, one arena per thread
/// up to eight per core) and whole free pages inside the heaps. Worth its cost (a walk of every
/// arena) when the process goes idle, not while tasks cycle through their buffers. Says whether
/// any memory was released.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() -> bool {
    // SAFETY: malloc_trim only returns free memory to the system, under the arenas' locks.
    unsafe { libc::malloc_trim(0) != 0 }
}

/// Not glibc: nothing kept to release.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() -> bool {
    false
}
