//! `SharedTable`: a table of the journal database that several tasks of an area use (the
//! archive ledger, the notification outbox). Calls run one at a time on the blocking pool.
//!
//! SQLite calls block, so they must not run on the async workers. A panicking call aborts the
//! daemon (see `crate::panic_policy`), so there is no panicked call to survive here.

use std::sync::{Arc, Mutex};

use crate::panic_policy::run_blocking;

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

    /// Run `work` on the table on the blocking pool.
    pub async fn call<R: Send + 'static>(&self, work: impl FnOnce(&T) -> R + Send + 'static) -> R {
        let table = Arc::clone(&self.0);
        run_blocking(move || work(&table.lock().unwrap_or_else(|p| p.into_inner()))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_see_one_table() {
        let table = SharedTable::new(std::cell::Cell::new(1));
        let other = table.clone();
        other.call(|cell| cell.set(2)).await;
        assert_eq!(table.call(|cell| cell.get()).await, 2);
    }
}
