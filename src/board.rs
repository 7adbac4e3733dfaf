//! `Board`: the latest state of each named thing (probe, healer), written by the task that owns
//! it and read by the API and `/metrics` without going through that task.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

#[derive(Debug)]
pub struct Board<T> {
    inner: Arc<RwLock<BTreeMap<String, T>>>,
}

// Not derived: a derive would demand `T: Clone`/`T: Default` for the shared handle itself.
impl<T> Clone for Board<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> Default for Board<T> {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
        }
    }
}

impl<T: Clone> Board<T> {
    /// Every entry, in name order.
    pub fn snapshot(&self) -> Vec<T> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.values().cloned().collect()
    }

    /// Change one entry in place (no copy of the board per update); absent names are ignored.
    pub(crate) fn update(&self, name: &str, change: impl FnOnce(&mut T)) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = map.get_mut(name) {
            change(entry);
        }
    }

    pub(crate) fn put(&self, name: &str, entry: T) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        map.insert(name.to_string(), entry);
    }

    pub fn remove(&self, name: &str) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        map.remove(name);
    }
}
