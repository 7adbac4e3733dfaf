//! The `Checkin` component: `[heartbeat]`'s loop (`crate::checkin`), its settings swapped on
//! reload, and the supervisor's per-second report on its components that the loop judges.

use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::component::{Component, Reload, Task};
use crate::checkin::{CheckinSettings, Inputs};
use crate::config::Config;

pub struct Checkin {
    settings: watch::Sender<Option<CheckinSettings>>,
    task: Option<Task>,
}

fn settings_of(config: &Config) -> Option<CheckinSettings> {
    config.heartbeat.as_ref().and_then(|h| h.settings())
}

impl Checkin {
    /// Start the loop; it checks in nowhere while `[heartbeat]` is absent.
    pub fn start(config: &Config, inputs: Inputs, stop: &CancellationToken) -> Self {
        let (settings, receiver) = watch::channel(settings_of(config));
        let task = Task::spawn(stop, |cancel| crate::checkin::run(receiver, inputs, cancel));
        Self {
            settings,
            task: Some(task),
        }
    }
}

impl Component for Checkin {
    fn apply<'a>(&'a mut self, reload: &'a Reload<'a>) -> BoxFuture<'a, ()> {
        if reload.diff.heartbeat_changed {
            self.settings.send_replace(settings_of(reload.config));
        }
        Box::pin(async {})
    }

    fn stop(&mut self, grace: Duration) -> BoxFuture<'_, ()> {
        let task = self.task.take();
        Box::pin(async move {
            if let Some(task) = task {
                task.stop(grace).await;
            }
        })
    }
}
