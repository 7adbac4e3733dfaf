//! Debug builds only (never compiled into a release build): `SENTINEL_DEBUG_PANIC=KIND` makes a
//! task panic at the first event of that kind, so tests can show what a panic does to the daemon.
//!
//! `KIND` panics in an async task; `blocking:KIND` panics in work on the blocking pool. Both
//! must end the process with SIGABRT (see `crate::panic_policy`).

use tokio::sync::broadcast::{self, error::RecvError};

use crate::event::{Bus, Event};

pub const VARIABLE: &str = "SENTINEL_DEBUG_PANIC";

/// Arm the trigger when the variable is set; a no-op otherwise.
pub fn arm(bus: &Bus) {
    let Ok(wanted) = std::env::var(VARIABLE) else {
        return;
    };
    let (blocking, kind) = match wanted.strip_prefix("blocking:") {
        Some(kind) => (true, kind.to_string()),
        None => (false, wanted),
    };
    tracing::warn!("{VARIABLE}={kind}: this debug build panics at the first {kind} event");
    let events = bus.subscribe();
    tokio::spawn(async move {
        if !first_event_of(events, &kind).await {
            return;
        }
        let message = format!("{VARIABLE}: deliberate panic at {kind}");
        if blocking {
            crate::panic_policy::run_blocking(move || panic!("{message}")).await
        } else {
            panic!("{message}")
        }
    });
}

/// Wait for the first event named `kind` (as in the journal); false if the bus closed first.
/// Shared by the debug triggers, which all fire at such an event.
pub(super) async fn first_event_of(mut events: broadcast::Receiver<Event>, kind: &str) -> bool {
    loop {
        match events.recv().await {
            Ok(event) if event.kind.name() == kind => return true,
            Ok(_) | Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return false,
        }
    }
}
