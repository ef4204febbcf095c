//! Heap given back to the OS after a burst.
//!
//! glibc's malloc keeps memory freed in the middle of its heaps and arenas for reuse: after a
//! flood (thousands of connections or calls that came and went) the process stayed at its peak
//! size. `malloc_trim(0)` returns every free page of every arena; it runs on a thread of its
//! own, away from the tokio workers and the mixing threads, every [`TRIM_EVERY`].

use std::time::Duration;

/// How often the heap is trimmed: often enough that a flood's memory is back within seconds,
/// rarely enough that the walk over the arenas costs nothing measurable.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Starts the thread that trims glibc's heap every [`TRIM_EVERY`] (nothing elsewhere).
pub fn start_trimming() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let spawned = std::thread::Builder::new()
            .name("huddle-malloc-trim".into())
            .spawn(|| loop {
                std::thread::sleep(TRIM_EVERY);
                // SAFETY: malloc_trim only walks and shrinks the allocator's own free lists.
                unsafe {
                    libc::malloc_trim(0);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the heap trimming thread");
        }
    }
}
