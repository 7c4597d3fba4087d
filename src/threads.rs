//! Thread settings shared by the parts that run long work on threads of their own.

/// Nice 19 for the calling thread (Linux keeps a nice value per thread): work nobody waits for (the
/// embedding queue, the conversation index) uses idle cores without taking time from requests.
pub fn lower_priority_of_this_thread() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::process::nice(19) {
        let thread = std::thread::current();
        tracing::warn!(%error, thread = thread.name().unwrap_or("?"), "could not lower a thread's priority");
    }
}
