//! What happens when a fast-path worker ends on its own: it is noticed, whatever the way.
//!
//! A worker thread can end three ways besides being asked to stop: its loop returns an error
//! (the TUN device vanished), it panics (a bug), or it returns `Ok` without a stop request (a
//! bug too). Before, only the first was reported; a panic ended the thread silently and its
//! socket and TUN queue were no longer read while status still said "up". [`supervised`] runs
//! the loop under `catch_unwind` and turns each of the three into the same report: an error
//! line, [`Supervision::failed`] counted (status and metrics show it), the first reason kept
//! for the daemon, and every other worker asked to stop.
//!
//! Why the daemon then exits non-zero rather than restarting the worker: a worker owns one
//! TUN queue and its own UDP sockets, moved into its thread; after a panic those (and the
//! batch it was in the middle of) are in an unknown state, and rebuilding them in place would
//! be a second, rarely run start-up path. Exiting lets the supervisor (systemd's
//! `Restart=on-failure`) run the ordinary one, and while the daemon is away the guard routes
//! (`guard.rs`) drop the remote sites' traffic instead of routing it in clear.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::worker::WorkerFailure;

/// Shared between the workers and the [`crate::Dataplane`] that reports on them.
#[derive(Default)]
pub(crate) struct Supervision {
    /// The first failure's reason: the daemon exits with it.
    pub(crate) first: Mutex<Option<String>>,
    /// Workers that ended on their own (errors, panics, unrequested returns).
    pub(crate) failed: AtomicUsize,
}

impl Supervision {
    fn record(&self, id: usize, reason: String) {
        tracing::error!(worker = id, reason = %reason, "fast-path worker stopped");
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut f = self.first.lock().unwrap_or_else(|p| p.into_inner());
        f.get_or_insert(reason);
    }
}

/// Runs worker `id`'s loop and reports any end that `stop` did not ask for.
pub(crate) fn supervised(
    id: usize,
    sup: &Supervision,
    stop: &Arc<AtomicBool>,
    run: impl FnOnce() -> Result<(), WorkerFailure>,
) {
    let reason = match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(())) if stop.load(Ordering::Relaxed) => return,
        Ok(Ok(())) => format!("fast-path worker {id} returned without being asked to stop"),
        // Kept as the worker wrote it: it already names what failed.
        Ok(Err(e)) => e.0,
        Err(panic) => format!(
            "fast-path worker {id} panicked: {}",
            panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)")
        ),
    };
    sup.record(id, reason);
    stop.store(true, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: impl FnOnce() -> Result<(), WorkerFailure> + Send + 'static) -> (Supervision, bool) {
        let sup = Arc::new(Supervision::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (sup.clone(), stop.clone());
        std::thread::spawn(move || supervised(3, &s, &st, f))
            .join()
            .expect("the supervisor itself never panics");
        let stopped = stop.load(Ordering::Relaxed);
        (Arc::into_inner(sup).unwrap(), stopped)
    }

    fn first(s: &Supervision) -> Option<String> {
        s.first.lock().unwrap().clone()
    }

    #[test]
    fn a_panicking_worker_is_counted_named_and_stops_the_others() {
        let (sup, stopped) = run(|| panic!("boom {}", 42));
        assert_eq!(sup.failed.load(Ordering::Relaxed), 1);
        assert_eq!(
            first(&sup).as_deref(),
            Some("fast-path worker 3 panicked: boom 42")
        );
        assert!(stopped);
        let (sup, _) = run(|| panic!("static message"));
        assert_eq!(
            first(&sup).as_deref(),
            Some("fast-path worker 3 panicked: static message")
        );
    }

    #[test]
    fn a_worker_returning_unasked_is_a_failure() {
        let (sup, stopped) = run(|| Ok(()));
        assert_eq!(sup.failed.load(Ordering::Relaxed), 1);
        assert!(first(&sup)
            .unwrap()
            .contains("returned without being asked"));
        assert!(stopped);
    }

    #[test]
    fn an_error_keeps_its_text() {
        let (sup, _) = run(|| Err(WorkerFailure("TUN device x failed (deleted?)".into())));
        assert_eq!(
            first(&sup).as_deref(),
            Some("TUN device x failed (deleted?)")
        );
    }

    #[test]
    fn a_requested_stop_is_not_a_failure() {
        let sup = Supervision::default();
        let stop = Arc::new(AtomicBool::new(true));
        supervised(0, &sup, &stop, || Ok(()));
        assert_eq!(sup.failed.load(Ordering::Relaxed), 0);
        assert_eq!(first(&sup), None);
    }
}
