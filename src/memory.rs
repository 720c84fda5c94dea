//! Handing memory back to the system once a burst is over.

/// Returns the allocator's free pages to the system (glibc keeps them otherwise, in
/// every arena, until the top of a heap is free). Called when the server goes idle:
/// after the last password hash of a burst, and from the background tick.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
