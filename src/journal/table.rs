//! `SharedTable`: a table of the journal database that several tasks of an area use (the
//! archive ledger, the notification outbox). Calls run one at a time on the blocking pool.
//!
//! SQLite calls block, so they must not run on the async workers; and a call that panicked
//! must not poison the table for the next one (the daemon keeps running).

use std::sync::{Arc, Mutex};

/// A journal-database table behind a mutex; cheap to clone, every clone is the same table.
pub struct SharedTable<T>(Arc<Mutex<T>>);

impl<T> Clone for SharedTable<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: Send + 'static> SharedTable<T> {
    pub fn new(table: T) -> Self {
        Self(Arc::new(Mutex::new(table)))
    }

    /// Run `work` on the table on the blocking pool; `Err` carries the panic of a failed call.
    pub async fn call<R: Send + 'static>(
        &self,
        work: impl FnOnce(&T) -> R + Send + 'static,
    ) -> Result<R, String> {
        let table = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || work(&table.lock().unwrap_or_else(|p| p.into_inner())))
            .await
            .map_err(|err| format!("task panicked: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_see_one_table_and_survive_a_panicked_call() {
        let table = SharedTable::new(std::cell::Cell::new(1));
        let other = table.clone();
        other.call(|cell| cell.set(2)).await.unwrap();
        let panicked = table.call(|_| -> () { panic!("boom") }).await;
        assert!(panicked.unwrap_err().starts_with("task panicked"));
        assert_eq!(table.call(|cell| cell.get()).await.unwrap(), 2);
    }
}
