//! Debug builds only (never compiled into a release build): `SENTINEL_DEBUG_FLOOD=KIND:COUNT`
//! floods the bus with COUNT events at the first event of KIND, so tests can show a burst.
//!
//! The flood comes from a thread of its own, as fast as it can publish: far faster than any
//! outside source (the control socket, the engine's events) can make the daemon publish.

use crate::event::{Bus, EventKind};

pub const VARIABLE: &str = "SENTINEL_DEBUG_FLOOD";

/// Arm the flood when the variable is set; a no-op otherwise.
pub fn arm(bus: &Bus) {
    let Ok(wanted) = std::env::var(VARIABLE) else {
        return;
    };
    let Some((kind, count)) = wanted
        .split_once(':')
        .and_then(|(kind, count)| Some((kind.to_string(), count.parse::<u32>().ok()?)))
    else {
        tracing::warn!("{VARIABLE}={wanted}: expected KIND:COUNT; no flood");
        return;
    };
    tracing::warn!("{VARIABLE}: this debug build floods the bus at the first {kind} event");
    let events = bus.subscribe();
    let bus = bus.clone();
    tokio::spawn(async move {
        if !super::debug_panic::first_event_of(events, &kind).await {
            return;
        }
        tracing::warn!("{VARIABLE}: publishing {count} events");
        std::thread::spawn(move || {
            for _ in 0..count {
                bus.publish(EventKind::ControlRequest {
                    method: "DEBUG".into(),
                    route: "/debug/flood".into(),
                    uid: 0,
                    pid: None,
                    status: 200,
                });
            }
            tracing::warn!("{VARIABLE}: flood over");
        });
    });
}
