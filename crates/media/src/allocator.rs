//! One malloc arena for the whole process, on glibc.
//!
//! Every call starts threads (the capture thread, a decoder thread per participant, the
//! sound devices' threads), and glibc gives threads their own malloc arenas (up to eight
//! per core) and keeps what they freed. Over 1,000 call cycles that grew a process by
//! ~11 MB before levelling off; with one arena it stays flat, and calls were no slower
//! (docs/benchmarks.md, "Media"). The app and the CLI call this first thing in `main`.

/// Limits glibc malloc to one arena. Call before any thread starts; does nothing on other
/// C libraries.
pub fn use_one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
