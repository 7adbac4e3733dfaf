//! The `Maintenance` component: the shared maintenance windows, rebuilt from the journal at
//! start (run-time windows outlive a restart), their schedules taken on reload, and the tick
//! that journals scheduled windows as they begin and end.

use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::component::{Component, Reload, Task};
use crate::config::Config;
use crate::event::{Bus, Timestamp};
use crate::journal::{EventQuery, Journal};
use crate::maintenance::{Windows, MAX_DURATION};

pub struct Maintenance {
    pub windows: Windows,
    ticker: Option<Task>,
}

impl Maintenance {
    /// The windows of `config`, with what the journal says is still open; ticking from now.
    pub async fn start(
        config: &Config,
        journal: &Journal,
        bus: &Bus,
        stop: &CancellationToken,
    ) -> Self {
        let windows = Windows::new(bus.clone());
        windows.configure(&config.maintenance, &config.probes);
        let now = Timestamp::now();
        // No window lasts longer than MAX_DURATION: older events cannot be open ones.
        let query = EventQuery {
            since: Some(now.saturating_sub(MAX_DURATION + Duration::from_secs(3600))),
            kinds: vec!["maintenance_started".into(), "maintenance_ended".into()],
            limit: EventQuery::MAX_LIMIT,
            ..Default::default()
        };
        match journal.query(query).await {
            Ok(events) => windows.restore(crate::maintenance::rebuild(
                events.iter().map(|e| &e.event),
                now,
            )),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read past maintenance windows; none restored")
            }
        }
        let ticker = {
            let windows = windows.clone();
            Task::spawn(stop, |cancel| windows.run(cancel))
        };
        Self {
            windows,
            ticker: Some(ticker),
        }
    }

    /// Whether the tick ended although it was not stopped.
    pub fn stopped(&self) -> bool {
        self.ticker.as_ref().is_some_and(|t| t.handle.is_finished())
    }
}

impl Component for Maintenance {
    fn apply<'a>(&'a mut self, reload: &'a Reload<'a>) -> BoxFuture<'a, ()> {
        self.windows
            .configure(&reload.config.maintenance, &reload.config.probes);
        Box::pin(async {})
    }

    fn stop(&mut self, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(task) = self.ticker.take() {
                task.stop(grace).await;
            }
        })
    }
}
