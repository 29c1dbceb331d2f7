//! `sque-host`: the binary. All of it lives in the `cli` module.

/// mimalloc rather than glibc's malloc: a job's way through the host allocates and frees
/// many small, short-lived objects on two threads (the queue's and the guests'), and glibc's
/// malloc, free and consolidation took about a sixth of the host's CPU samples at c=50
/// (`perf`). Measured with the bench (medians of 3): c=50 70,600 -> 88,300 jobs/s, for a
/// resident size of 31 MiB instead of 16 (flat over the run). The library leaves the choice
/// of allocator to the programs that use it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sque_host::allocator::disable_transparent_huge_pages();
    sque_host::cli::main()
}
