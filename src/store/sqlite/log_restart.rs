//! When the store's write-ahead log starts over.
//!
//! SQLite starts the log over only when a write transaction begins with every frame already copied
//! into the database file. Under constant writes that moment never comes: the background checkpoint
//! copies, the writer appends, and the log grows by gigabytes. Every new frame then lands in new file
//! space, which the kernel zeroes before the write (measured: 60% of the writer's CPU under webhook
//! processing, on a 2-core machine where that CPU is taken from acknowledgements).
//!
//! The way out is for the writer to pause between two groups and copy the rest itself
//! (`pool::finish_checkpoint`): the next group starts the log over. The pause waits for two fsyncs, so
//! the writer makes it only when nobody waits on it: when no request has written for `QUIET`, i.e. when
//! the writer is busy with queue processing only. Under constant request writes it waits until the log
//! is `FORCE_FACTOR` times as long, to bound it on disk, paying the pause rarely.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long no request may have written before the writer pauses to start the log over.
const QUIET: Duration = Duration::from_millis(50);
/// Under constant request writes, the log starts over only once it is this many times as long.
const FORCE_FACTOR: i64 = 16;
/// Guard: the writer does not pause while the background pass is further behind than this (readers
/// holding old snapshots), since its own pass would then copy a long tail.
const MAX_BEHIND: i64 = 4_096;

/// Shared by the store's writer and its checkpoint thread.
pub(super) struct LogRestart {
    /// The log's length, in frames, from which a start-over is wanted.
    after_frames: i64,
    /// Frames in the log, and not yet copied, at the checkpoint thread's last pass.
    logged: AtomicI64,
    behind: AtomicI64,
    epoch: Instant,
    /// When a request last wrote, in milliseconds since `epoch`.
    request_wrote_ms: AtomicU64,
}

impl LogRestart {
    pub(super) fn new(after_frames: i64) -> Self {
        Self {
            after_frames,
            logged: AtomicI64::new(0),
            behind: AtomicI64::new(0),
            epoch: Instant::now(),
            request_wrote_ms: AtomicU64::new(0),
        }
    }

    /// The checkpoint thread's report after a pass (SQLite's frames in the log, frames copied).
    pub(super) fn passed(&self, frames: i64, copied: i64) {
        self.logged.store(frames, Ordering::Relaxed);
        self.behind.store(frames - copied, Ordering::Relaxed);
    }

    /// The writer committed a group with request (foreground) writes in it.
    pub(super) fn request_wrote(&self) {
        self.request_wrote_ms
            .store(self.now_ms(), Ordering::Relaxed);
    }

    /// The writer finished a pass: the next group starts the log over, and the next report says so.
    pub(super) fn finished(&self) {
        self.logged.store(0, Ordering::Relaxed);
    }

    fn wanted(&self) -> bool {
        wanted(
            self.logged.load(Ordering::Relaxed),
            self.after_frames,
            self.quiet(),
        )
    }

    /// Whether the writer should pause now and finish the pass.
    pub(super) fn due(&self) -> bool {
        self.wanted() && self.behind.load(Ordering::Relaxed) < MAX_BEHIND
    }

    fn quiet(&self) -> bool {
        let since = self
            .now_ms()
            .saturating_sub(self.request_wrote_ms.load(Ordering::Relaxed));
        since >= QUIET.as_millis() as u64
    }

    fn now_ms(&self) -> u64 {
        // Counted from `epoch` plus `QUIET`, so that the start counts as quiet.
        (self.epoch.elapsed() + QUIET).as_millis() as u64
    }
}

fn wanted(logged: i64, after: i64, quiet: bool) -> bool {
    logged > after && (quiet || logged > after.saturating_mul(FORCE_FACTOR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_log_starts_over_when_requests_are_quiet_or_it_is_far_too_long() {
        assert!(!wanted(100, 256, true), "short logs are left alone");
        assert!(wanted(300, 256, true), "quiet: start over");
        assert!(!wanted(300, 256, false), "requests waiting: not yet");
        assert!(wanted(256 * FORCE_FACTOR + 1, 256, false), "far too long");
    }

    #[test]
    fn a_request_write_defers_the_start_over_until_quiet_returns() {
        let restart = LogRestart::new(256);
        restart.passed(1_000, 1_000);
        assert!(restart.due(), "quiet from the start");
        restart.request_wrote();
        assert!(!restart.due(), "a request just wrote");
        std::thread::sleep(QUIET + Duration::from_millis(5));
        assert!(restart.due(), "quiet again");
        restart.passed(1_000, 1_000 - MAX_BEHIND);
        assert!(!restart.due(), "the background pass is too far behind");
        restart.finished();
        assert!(!restart.due(), "finished: wait for the next report");
    }
}
