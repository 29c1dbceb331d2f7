//! What the host asks of its allocator, mimalloc (the binary's global allocator, main.rs),
//! beyond allocating: memory held for nothing is memory another process on the machine lacks,
//! and compiling a large guest (Python, JavaScript) frees hundreds of MiB that mimalloc would
//! otherwise keep resident (bench/README.md, "Memory while compiling").
//!
//! The mimalloc calls act on mimalloc's own state only: in the tests and benches, whose
//! allocator is the system's, they have nothing to do. Turning transparent huge pages off acts
//! on the kernel, for every mapping of the process.

use std::sync::Mutex;

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h`, the same number in its v2 and v3, which
/// the `libmimalloc-sys` bindings do not name): how long freed memory stays resident before
/// it is returned to the system (ms; 0: at once).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Turns transparent huge pages off for this process, before it allocates much. mimalloc
/// asks for huge pages on the arenas it reserves (`MADV_HUGEPAGE`), and a 2 MiB page stays
/// resident while any of it is in use: compiling the Python `send-email` peaked at 526 MiB
/// with them and 450 without, and the host stayed larger after. The kernel checks the flag
/// at each fault, so arenas reserved before `main` are covered too. It covers the guests'
/// linear memories as well: where the machine's THP setting is `always` (this one's is
/// `madvise`), they would otherwise fault in 2 MiB at a time, which the instance pool then
/// resets page by page.
pub fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes an integer and touches no memory of ours. It may fail
    // (an old kernel): then the pages stay as they were, which is only larger.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Hands the memory this thread's allocator keeps cached back to the system. A failed job may
/// have made the host hold a lot for a moment (a guest's 10 MB error text, ten thousand
/// resources), and mimalloc keeps what was freed until the thread allocates again, which an
/// idle host may not do for long. Failures are few; a good job never pays for this.
pub fn give_back_memory() {
    // SAFETY: mi_collect only walks and purges mimalloc's own heaps.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// While one is held, memory freed anywhere in the process is returned to the system at once
/// rather than after mimalloc's delay: a compile allocates and frees in waves, and with the
/// delay each wave's freed memory stayed resident beside the next (the Python `send-email`:
/// 450 MiB at the peak, 351 with this). Outside a compile the delay stays, since returning
/// every free at once costs system calls on the jobs' hot path; a reload's compile therefore
/// costs the jobs running meanwhile those calls, for the seconds it takes.
pub struct PromptPurge(());

/// How many [`PromptPurge`] are held, and the delay to restore when the last goes.
static PROMPT: Mutex<(usize, std::os::raw::c_long)> = Mutex::new((0, 0));

impl PromptPurge {
    /// Freed memory is returned at once until the guard (and every other one) is dropped.
    pub fn hold() -> PromptPurge {
        let mut held = PROMPT.lock().unwrap_or_else(|e| e.into_inner());
        if held.0 == 0 {
            // SAFETY: an option is a plain word that mimalloc reads without a lock; another
            // thread reading it meanwhile sees the old delay or the new one, either sound.
            held.1 = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
            unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
        }
        held.0 += 1;
        PromptPurge(())
    }
}

impl Drop for PromptPurge {
    fn drop(&mut self) {
        let mut held = PROMPT.lock().unwrap_or_else(|e| e.into_inner());
        held.0 -= 1;
        if held.0 == 0 {
            // SAFETY: as in `hold`.
            unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, held.1) };
        }
    }
}
