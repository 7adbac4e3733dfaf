//! The panic policy of every binary: a panic ends the whole process with SIGABRT, in every build
//! profile; systemd restarts it and the restarted daemon rolls back what its journal holds.
//!
//! A panic is a bug. Catching it would leave a half-alive daemon (one component gone, locks
//! possibly mid-update) that only a test build ever showed; aborting gives one failure mode, the
//! one `kill -9` already tests. See docs/reliability.md ("One panic policy").

use std::sync::Once;

/// Make any panic, on any thread, abort the process after the usual panic message.
///
/// The release profile already builds with `panic = "abort"`; this hook gives debug builds
/// (the ones the integration tests run) the same behaviour, so the tests exercise the path that
/// ships. The hook runs before any unwinding starts, so no `catch_unwind` (tokio's task
/// harness included) ever sees the panic. Call it first thing in `main`.
pub fn install(program: &'static str) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            report(info);
            eprintln!("{program}: aborting on panic (a bug; see docs/reliability.md)");
            std::process::abort();
        }));
    });
}

/// Run blocking work on the runtime's blocking pool and return its result.
///
/// There is no error case to handle: under this policy a panic in `work` has aborted the
/// process before this could see it, and `spawn_blocking` cancels work only when the runtime
/// is shutting down, after it has dropped every task that could be awaiting here. Without the
/// hook (a library unit test) a panic in `work` reaches the caller as the same panic.
pub async fn run_blocking<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> R {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(err) => match err.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            // Cancelled: the runtime is going away and drops this task without polling it again.
            Err(_) => std::future::pending().await,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blocking_work_returns_its_value() {
        assert_eq!(run_blocking(|| 6 * 7).await, 42);
    }

    /// No handler turns a panic into an error value: it propagates (and aborts the binaries).
    #[tokio::test]
    #[should_panic(expected = "boom")]
    async fn a_panic_in_blocking_work_is_not_turned_into_an_error() {
        run_blocking(|| -> () { panic!("boom") }).await;
    }
}
