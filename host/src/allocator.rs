//! What the host asks of its allocator, mimalloc (chosen in `main.rs`): to give memory back
//! when holding it would cost more than it saves.
//!
//! mimalloc keeps the pages it freed for a while (`purge_delay`, 10 ms by default) before it
//! returns them to the system, so that a thread that allocates again soon finds them ready:
//! on a job's path that saves page faults and the TLB shootdowns of returning them. Two
//! moments are not like that: compiling a large handler frees hundreds of megabytes in many
//! steps (compiling and caching the Python `send-email` peaked at 575 MiB resident with the
//! delay and 425 MiB without, the JavaScript one at 600 and 410), and a failed job may leave
//! a lot freed on an idle host.
//!
//! With another global allocator (tests, benches link the library alone) these calls reach
//! mimalloc's own heaps only, which then hold nothing: they do nothing.

use std::sync::Mutex;

/// mimalloc's `mi_option_purge_delay` (mimalloc.h, v2: the 16th option). libmimalloc-sys does
/// not name it.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Hands the memory this thread's allocator keeps cached back to the system (what it would
/// otherwise keep until the thread allocates again).
pub fn give_back_memory() {
    // SAFETY: mi_collect only walks and purges mimalloc's own heaps.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// Runs `compile` with freed memory returned to the system at once, then restores the
/// delay. Compiles may overlap (a reload beside a check); the first to start sets the delay
/// and the last to end restores it.
pub fn returning_freed_memory<T>(compile: impl FnOnce() -> T) -> T {
    /// Compiles under way, and the delay to restore after the last.
    static UNDER_WAY: Mutex<(usize, std::os::raw::c_long)> = Mutex::new((0, 0));
    {
        let mut under_way = UNDER_WAY.lock().unwrap_or_else(|p| p.into_inner());
        if under_way.0 == 0 {
            // SAFETY: mimalloc's options are plain integers it reads when it purges.
            under_way.1 = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
            unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
        }
        under_way.0 += 1;
    }
    let restore = scopeguard(|| {
        let mut under_way = UNDER_WAY.lock().unwrap_or_else(|p| p.into_inner());
        under_way.0 -= 1;
        if under_way.0 == 0 {
            // SAFETY: as above.
            unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, under_way.1) };
        }
    });
    let result = compile();
    drop(restore);
    result
}

/// Runs `f` when dropped, so that a panic in the compile restores the delay too.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
