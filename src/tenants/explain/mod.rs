//! Explanations beyond the tenant: per bucket over a sliding window, counts of (dimension, value)
//! among all, failing and slow requests, globally and for the tenants with most bad requests, in a
//! fixed memory budget; [`Explainer::explain`] names the values over-represented among bad ones.
//!
//! Fed beside the detector (its own lock, [`ExplainService`]); the statistics are in [`score`].

pub mod score;

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{ErrorStatuses, TenantEventRef};
use score::{judge, ValueCounts};

/// Values of a dimension beyond its cap count under this one.
pub const OTHER_VALUE: &str = "__other__";
/// Most dimensions `[tenants] dimensions` may name.
pub const MAX_DIMENSIONS: usize = 8;
/// Longest dimension name, in bytes.
pub const MAX_DIMENSION_NAME_BYTES: usize = 64;
/// Longest dimension value, in bytes (ingest refuses longer ones).
pub const MAX_VALUE_BYTES: usize = 128;

/// Whether `name` may be a dimension (a `dims` key, a `[tenants] dimensions` entry, an agent's
/// `[file.dims]` key): 1-[`MAX_DIMENSION_NAME_BYTES`] bytes without control characters.
pub fn is_dim_name(name: &str) -> bool {
    dim_text_ok(name, MAX_DIMENSION_NAME_BYTES)
}

/// Whether `value` may be a dimension's value: 1-[`MAX_VALUE_BYTES`] bytes without control
/// characters (the agent leaves other values out rather than have the event refused).
pub fn is_dim_value(value: &str) -> bool {
    dim_text_ok(value, MAX_VALUE_BYTES)
}

fn dim_text_ok(text: &str, max: usize) -> bool {
    !text.is_empty() && text.len() <= max && !text.chars().any(char::is_control)
}
/// Most distinct values one dimension may hold at once (`[tenants.explain] max_values`).
pub const MAX_VALUES_LIMIT: usize = 1024;
/// Most tenant scopes (`[tenants.explain] max_tenants`).
pub const MAX_TENANT_SCOPES_LIMIT: usize = 1024;

/// Bounded cost of one admission check: a tenant without a scope is remembered in a table of
/// this many entries per scope slot (Space-Saving heavy hitters of bad requests).
const HEAVY_PER_SCOPE: usize = 4;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ExplainError {
    /// `field` is the key under `[tenants]` to point at.
    #[error("tenant explain config: {message}")]
    InvalidConfig {
        field: &'static str,
        message: String,
    },
    #[error(
        "no dimensions configured: set [tenants] dimensions = [\"region\", ...] in sentineld.toml"
    )]
    NoDimensions,
    #[error("unknown signal `{0}`: expected errors or latency")]
    UnknownSignal(String),
    #[error("tenant \"{0}\" has no explain scope: it was not among the tenants with most errors or slow requests recently (ask without --tenant for all traffic)")]
    NoScope(String),
}

/// Settings of the explainer; `window` and `error_statuses` are the detector's.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainConfig {
    /// Names, in order; events' other keys are ignored.
    pub dimensions: Vec<String>,
    pub window: Duration,
    pub bucket: Duration,
    /// Distinct values per dimension at once, `__other__` included.
    pub max_values: usize,
    /// A request at or above this latency is slow.
    pub slow: Duration,
    /// Bad requests a value needs before it may be named.
    pub min_support: u64,
    /// Tenant scopes at most (the memory budget may allow fewer).
    pub max_tenants: usize,
    /// Memory budget of all counts, next to (not inside) `[tenants] max_memory`.
    pub max_bytes: usize,
    pub error_statuses: Vec<RangeInclusive<u16>>,
}

impl Default for ExplainConfig {
    fn default() -> Self {
        Self {
            dimensions: Vec::new(),
            window: Duration::from_secs(600),
            bucket: Duration::from_secs(60),
            max_values: 64,
            slow: Duration::from_secs(1),
            min_support: 20,
            max_tenants: 64,
            max_bytes: 32 << 20,
            error_statuses: vec![500..=599],
        }
    }
}

/// The geometry [`ExplainConfig::check`] derives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    bucket_ms: i64,
    buckets: usize,
    dimensions: usize,
    values: usize,
    scope_bytes: usize,
    tenant_scopes: usize,
}

impl ExplainConfig {
    fn invalid<T>(field: &'static str, message: String) -> Result<T, ExplainError> {
        Err(ExplainError::InvalidConfig { field, message })
    }

    fn check(&self) -> Result<Shape, ExplainError> {
        let names = &self.dimensions;
        if names.len() > MAX_DIMENSIONS {
            return Self::invalid(
                "dimensions",
                format!("at most {MAX_DIMENSIONS} dimensions (got {})", names.len()),
            );
        }
        if let Some(bad) = names.iter().find(|n| !is_dim_name(n)) {
            return Self::invalid(
                "dimensions",
                format!("dimension name {bad:?} must be 1-{MAX_DIMENSION_NAME_BYTES} bytes without control characters"),
            );
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Self::invalid(
                "dimensions",
                format!("dimension \"{twice}\" is listed twice"),
            );
        }
        let (bucket_ms, window_ms) = (self.bucket.as_millis(), self.window.as_millis());
        if bucket_ms == 0 || window_ms % bucket_ms != 0 || window_ms / bucket_ms > 600 {
            return Self::invalid(
                "explain.bucket",
                format!(
                    "explain bucket ({}) must divide the tenants window ({}) into at most 600 buckets",
                    humantime::format_duration(self.bucket),
                    humantime::format_duration(self.window)
                ),
            );
        }
        if !(2..=MAX_VALUES_LIMIT).contains(&self.max_values) {
            return Self::invalid(
                "explain.max_values",
                format!("max_values must be 2-{MAX_VALUES_LIMIT} (one is {OTHER_VALUE})"),
            );
        }
        if self.max_tenants > MAX_TENANT_SCOPES_LIMIT {
            return Self::invalid(
                "explain.max_tenants",
                format!("max_tenants must be at most {MAX_TENANT_SCOPES_LIMIT}"),
            );
        }
        if self.min_support == 0 {
            return Self::invalid(
                "explain.min_support",
                "min_support must be at least 1".into(),
            );
        }
        let buckets = (window_ms / bucket_ms) as usize;
        let dimensions = names.len();
        let scope_bytes = Scope::bytes(buckets, dimensions * self.max_values);
        let fixed = scope_bytes + Dimension::bytes(self.max_values) * dimensions;
        if fixed > self.max_bytes {
            return Self::invalid(
                "explain.max_memory",
                format!(
                    "explain max_memory ({} bytes) is below what the global counts need ({fixed} bytes for {buckets} buckets × {dimensions} dimensions × {} values); raise it or lower max_values",
                    self.max_bytes, self.max_values
                ),
            );
        }
        // Each tenant scope also costs a heavy-hitter slots' worth of ids.
        let per_tenant = scope_bytes + HEAVY_PER_SCOPE * HEAVY_ENTRY_BYTES + HEAVY_ENTRY_BYTES;
        let tenant_scopes = ((self.max_bytes - fixed) / per_tenant).min(self.max_tenants);
        Ok(Shape {
            bucket_ms: bucket_ms as i64,
            buckets,
            dimensions,
            values: self.max_values,
            scope_bytes,
            tenant_scopes,
        })
    }
}

/// A tenant id in a hash map (key, hash slot, count), ids up to 128 bytes.
const HEAVY_ENTRY_BYTES: usize = 128 + 48;

/// Requests, errors, slow requests.
type Cell = [u32; 3];

/// Which bad requests an explanation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    Errors,
    Latency,
}

impl Signal {
    fn cell(self) -> usize {
        match self {
            Self::Errors => 1,
            Self::Latency => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Errors => "errors",
            Self::Latency => "latency",
        }
    }
}

impl std::str::FromStr for Signal {
    type Err = ExplainError;

    fn from_str(text: &str) -> Result<Self, ExplainError> {
        match text {
            "errors" => Ok(Self::Errors),
            "latency" => Ok(Self::Latency),
            other => Err(ExplainError::UnknownSignal(other.to_string())),
        }
    }
}

#[derive(Debug)]
struct Bucket {
    epoch: i64,
    totals: Cell,
    cells: Box<[Cell]>,
}

/// One scope's ring of buckets (global, or one tenant).
#[derive(Debug)]
struct Scope {
    buckets: Vec<Bucket>,
    since_ms: i64,
}

impl Scope {
    fn new(buckets: usize, cells: usize, since_ms: i64) -> Self {
        let buckets = (0..buckets)
            .map(|_| Bucket {
                epoch: i64::MIN,
                totals: [0; 3],
                cells: vec![[0; 3]; cells].into_boxed_slice(),
            })
            .collect();
        Self { buckets, since_ms }
    }

    fn bytes(buckets: usize, cells: usize) -> usize {
        std::mem::size_of::<Self>()
            + buckets * (std::mem::size_of::<Bucket>() + cells * std::mem::size_of::<Cell>())
    }

    fn add(&mut self, epoch: i64, cells: &[usize], flags: [bool; 2]) {
        let slot = epoch.rem_euclid(self.buckets.len() as i64) as usize;
        let bucket = &mut self.buckets[slot];
        if bucket.epoch != epoch {
            bucket.epoch = epoch;
            bucket.totals = [0; 3];
            bucket.cells.fill([0; 3]);
        }
        let add = |cell: &mut Cell| {
            cell[0] = cell[0].saturating_add(1);
            cell[1] = cell[1].saturating_add(u32::from(flags[0]));
            cell[2] = cell[2].saturating_add(u32::from(flags[1]));
        };
        add(&mut bucket.totals);
        for &i in cells {
            add(&mut bucket.cells[i]);
        }
    }

    fn live(&self, from: i64, to: i64) -> impl Iterator<Item = &Bucket> {
        self.buckets
            .iter()
            .filter(move |b| (from..=to).contains(&b.epoch))
    }

    /// Bad requests (errors plus slow) in `from..=to`: what decides who keeps a scope.
    fn bad(&self, from: i64, to: i64) -> u64 {
        self.live(from, to)
            .map(|b| u64::from(b.totals[1]) + u64::from(b.totals[2]))
            .sum()
    }

    fn sum(&self, from: i64, to: i64, cells: usize) -> ([u64; 3], Vec<[u64; 3]>) {
        let mut totals = [0u64; 3];
        let mut sums = vec![[0u64; 3]; cells];
        let add = |sum: &mut [u64; 3], cell: &Cell| {
            for (total, &n) in sum.iter_mut().zip(cell) {
                *total += u64::from(n);
            }
        };
        for bucket in self.live(from, to) {
            add(&mut totals, &bucket.totals);
            for (sum, cell) in sums.iter_mut().zip(bucket.cells.iter()) {
                add(sum, cell);
            }
        }
        (totals, sums)
    }
}

/// One dimension's values: slot 0 is `__other__`; a slot whose value has not been seen for a
/// whole window is given to a new value.
#[derive(Debug)]
struct Dimension {
    name: String,
    index: HashMap<Box<str>, u16>,
    names: Vec<Box<str>>,
    last_epoch: Vec<i64>,
    /// No slot can be reused before this epoch is out of the window (saves scans when full).
    full_until: i64,
    /// Events whose value went to `__other__` because every slot was live.
    overflow: u64,
}

impl Dimension {
    fn new(name: String) -> Self {
        Self {
            name,
            index: HashMap::new(),
            names: vec![OTHER_VALUE.into()],
            last_epoch: vec![i64::MAX],
            full_until: i64::MIN,
            overflow: 0,
        }
    }

    fn bytes(values: usize) -> usize {
        // Each value: its text (up to MAX_VALUE_BYTES), a map entry, a name slot and an epoch.
        std::mem::size_of::<Self>() + values * (MAX_VALUE_BYTES + 2 * 16 + 16 + 8 + 8)
    }

    /// The value's slot; `oldest` is the first epoch inside the window.
    fn intern(&mut self, value: &str, epoch: i64, oldest: i64, max: usize) -> usize {
        if let Some(&slot) = self.index.get(value) {
            let slot = usize::from(slot);
            self.last_epoch[slot] = self.last_epoch[slot].max(epoch);
            return slot;
        }
        if value == OTHER_VALUE {
            return 0;
        }
        let slot = if self.names.len() < max {
            self.names.push(value.into());
            self.last_epoch.push(epoch);
            self.names.len() - 1
        } else if self.full_until >= oldest {
            self.overflow += 1;
            return 0;
        } else {
            match (1..self.names.len()).find(|&i| self.last_epoch[i] < oldest) {
                Some(slot) => {
                    let old = std::mem::replace(&mut self.names[slot], value.into());
                    self.index.remove(&old);
                    self.last_epoch[slot] = epoch;
                    slot
                }
                None => {
                    self.full_until = self.last_epoch[1..].iter().copied().min().unwrap_or(0);
                    self.overflow += 1;
                    return 0;
                }
            }
        };
        self.index.insert(value.into(), slot as u16);
        slot
    }
}

/// Memory and admission figures (for the API answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainStats {
    pub tenant_scopes: usize,
    pub max_tenant_scopes: usize,
    pub bytes_estimate: usize,
    pub max_bytes: usize,
    /// Dimension values counted under `__other__` because the dimension was full.
    pub overflow_values: u64,
    pub late_events: u64,
}

/// One named dimension value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub dimension: String,
    pub value: String,
    /// Bad requests with the value.
    pub bad: u64,
    /// All requests with the value.
    pub requests: u64,
    pub bad_rate: f64,
    /// Wilson lower bound (z = 4) of `bad_rate`.
    pub bad_rate_lower: f64,
    /// Bad rate of every other request of the scope.
    pub rest_rate: f64,
    /// P(value | bad) / P(value | good).
    pub lift: f64,
    /// `(bad_rate_lower - rest_rate) × requests`: bad requests beyond the rest's rate, at least.
    pub score: f64,
}

/// The answer of `GET /v1/tenants/explain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// `None`: all traffic.
    pub tenant_id: Option<String>,
    pub signal: Signal,
    pub window_ms: i64,
    pub now_ms: i64,
    /// Requests in the scope and window, and how many of them were bad.
    pub requests: u64,
    pub bad: u64,
    pub slow_ms: f64,
    pub min_support: u64,
    pub dimensions: Vec<String>,
    /// When the scope started counting (a tenant scope may be younger than the window).
    pub counting_since_ms: i64,
    /// Best first, by `score`.
    pub findings: Vec<Finding>,
    pub stats: ExplainStats,
}

/// The counts and their bounds: record events, ask for explanations.
#[derive(Debug)]
pub struct Explainer {
    config: ExplainConfig,
    shape: Shape,
    errors: ErrorStatuses,
    slow_ms: f64,
    dimensions: Vec<Dimension>,
    global: Scope,
    tenants: HashMap<Box<str>, Scope>,
    /// Bad requests of tenants without a scope (Space-Saving, halved every bucket).
    heavy: HashMap<Box<str>, u64>,
    epoch: i64,
    late_events: u64,
}

impl Explainer {
    pub fn new(config: ExplainConfig) -> Result<Self, ExplainError> {
        let shape = config.check()?;
        Ok(Self {
            errors: ErrorStatuses::new(&config.error_statuses),
            slow_ms: config.slow.as_secs_f64() * 1000.0,
            dimensions: config
                .dimensions
                .iter()
                .cloned()
                .map(Dimension::new)
                .collect(),
            global: Scope::new(shape.buckets, shape.dimensions * shape.values, 0),
            tenants: HashMap::new(),
            heavy: HashMap::new(),
            epoch: i64::MIN,
            late_events: 0,
            shape,
            config,
        })
    }

    pub fn config(&self) -> &ExplainConfig {
        &self.config
    }

    /// Counts one event with its dimensions (`(name, value)`; names not configured are
    /// ignored, the first of a repeated name counts). False when older than the window.
    pub fn record<N: AsRef<str>, V: AsRef<str>>(
        &mut self,
        event: TenantEventRef<'_>,
        dims: &[(N, V)],
        now_ms: i64,
    ) -> bool {
        let bucket_ms = self.shape.bucket_ms;
        let now_epoch = now_ms.div_euclid(bucket_ms);
        if now_epoch > self.epoch {
            self.rotate(now_epoch);
        }
        let oldest = self.epoch - self.shape.buckets as i64 + 1;
        // A clock a little ahead counts in the current bucket.
        let epoch = event.timestamp_ms.div_euclid(bucket_ms).min(self.epoch);
        if epoch < oldest {
            self.late_events += 1;
            return false;
        }
        let mut cells = [0usize; MAX_DIMENSIONS];
        let mut found = 0;
        for (d, dimension) in self.dimensions.iter_mut().enumerate() {
            let value = dims
                .iter()
                .find(|(name, _)| name.as_ref() == dimension.name)
                .map(|(_, value)| value.as_ref());
            if let Some(value) = value {
                let slot = dimension.intern(value, epoch, oldest, self.shape.values);
                cells[found] = d * self.shape.values + slot;
                found += 1;
            }
        }
        let flags = [
            self.errors.contains(event.status_code),
            event.latency_ms >= self.slow_ms,
        ];
        let cells = &cells[..found];
        self.global.add(epoch, cells, flags);
        if let Some(scope) = self.tenants.get_mut(event.tenant_id) {
            scope.add(epoch, cells, flags);
        } else if flags[0] || flags[1] {
            if self.tenants.len() < self.shape.tenant_scopes {
                let (buckets, n) = (
                    self.shape.buckets,
                    self.shape.dimensions * self.shape.values,
                );
                let mut scope = Scope::new(buckets, n, now_ms);
                scope.add(epoch, cells, flags);
                self.tenants.insert(event.tenant_id.into(), scope);
                self.heavy.remove(event.tenant_id);
            } else {
                self.count_heavy(event.tenant_id);
            }
        }
        true
    }

    /// Space-Saving: a new tenant takes the place (and count + 1) of the smallest entry.
    fn count_heavy(&mut self, tenant: &str) {
        if self.shape.tenant_scopes == 0 {
            return;
        }
        if let Some(count) = self.heavy.get_mut(tenant) {
            *count += 1;
            return;
        }
        let cap = self.shape.tenant_scopes * HEAVY_PER_SCOPE;
        let mut count = 1;
        if self.heavy.len() >= cap {
            let smallest = self
                .heavy
                .iter()
                .min_by_key(|(_, &n)| n)
                .map(|(id, &n)| (id.clone(), n));
            if let Some((id, n)) = smallest {
                self.heavy.remove(&id);
                count = n + 1;
            }
        }
        self.heavy.insert(tenant.into(), count);
    }

    /// A new bucket: tenants without a scope whose bad requests outnumber those of a scoped
    /// tenant's whole window take its scope (a few per bucket); the heavy-hitter counts decay.
    fn rotate(&mut self, now_epoch: i64) {
        self.epoch = now_epoch;
        let oldest = now_epoch - self.shape.buckets as i64 + 1;
        for _ in 0..4 {
            let Some((heavy_id, heavy_n)) = self
                .heavy
                .iter()
                .max_by_key(|(_, &n)| n)
                .map(|(id, &n)| (id.clone(), n))
            else {
                break;
            };
            let weakest = self
                .tenants
                .iter()
                .map(|(id, scope)| (id, scope.bad(oldest, now_epoch)))
                .min_by_key(|(_, bad)| *bad)
                .map(|(id, bad)| (id.clone(), bad));
            match weakest {
                Some((id, bad)) if bad < heavy_n => {
                    self.tenants.remove(&id);
                }
                Some(_) => break,
                None => {}
            }
            self.heavy.remove(&heavy_id);
            let cells = self.shape.dimensions * self.shape.values;
            let since = now_epoch * self.shape.bucket_ms;
            self.tenants
                .insert(heavy_id, Scope::new(self.shape.buckets, cells, since));
        }
        self.heavy.retain(|_, n| {
            *n /= 2;
            *n > 0
        });
    }

    pub fn stats(&self) -> ExplainStats {
        let tenants = self.tenants.len();
        let bytes_estimate = self.shape.scope_bytes * (1 + tenants)
            + Dimension::bytes(self.shape.values) * self.shape.dimensions
            + self.heavy.len() * HEAVY_ENTRY_BYTES
            + tenants * HEAVY_ENTRY_BYTES;
        ExplainStats {
            tenant_scopes: tenants,
            max_tenant_scopes: self.shape.tenant_scopes,
            bytes_estimate,
            max_bytes: self.config.max_bytes,
            overflow_values: self.dimensions.iter().map(|d| d.overflow).sum(),
            late_events: self.late_events,
        }
    }

    /// The dimension values over-represented among `signal`'s bad requests of the last `window`
    /// (whole buckets, at most the configured window; zero means all of it), best first.
    pub fn explain(
        &mut self,
        tenant: Option<&str>,
        signal: Signal,
        window: Duration,
        limit: usize,
        now_ms: i64,
    ) -> Result<Explanation, ExplainError> {
        if self.dimensions.is_empty() {
            return Err(ExplainError::NoDimensions);
        }
        let now_epoch = now_ms.div_euclid(self.shape.bucket_ms);
        if now_epoch > self.epoch {
            self.rotate(now_epoch);
        }
        let buckets = match window.as_millis() {
            0 => self.shape.buckets,
            ms => (ms.div_ceil(self.shape.bucket_ms as u128) as usize).min(self.shape.buckets),
        };
        let from = self.epoch - buckets as i64 + 1;
        let scope = match tenant {
            None => &self.global,
            Some(id) => self
                .tenants
                .get(id)
                .ok_or_else(|| ExplainError::NoScope(id.to_string()))?,
        };
        let values = self.shape.values;
        let (totals, sums) = scope.sum(from, self.epoch, self.shape.dimensions * values);
        let k = signal.cell();
        let mut findings = Vec::new();
        for (d, dimension) in self.dimensions.iter().enumerate() {
            for (slot, value) in dimension.names.iter().enumerate() {
                let cell = sums[d * values + slot];
                let counts = ValueCounts {
                    bad: cell[k],
                    requests: cell[0],
                    bad_total: totals[k],
                    requests_total: totals[0],
                };
                if let Ok(judged) = judge(counts, self.config.min_support) {
                    findings.push(Finding {
                        dimension: dimension.name.clone(),
                        value: value.to_string(),
                        bad: counts.bad,
                        requests: counts.requests,
                        bad_rate: judged.bad_rate,
                        bad_rate_lower: judged.bad_rate_lower,
                        rest_rate: judged.rest_rate,
                        lift: judged.lift,
                        score: judged.score,
                    });
                }
            }
        }
        findings.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.lift.total_cmp(&a.lift))
                .then_with(|| (&a.dimension, &a.value).cmp(&(&b.dimension, &b.value)))
        });
        findings.truncate(limit);
        Ok(Explanation {
            tenant_id: tenant.map(String::from),
            signal,
            window_ms: buckets as i64 * self.shape.bucket_ms,
            now_ms,
            requests: totals[0],
            bad: totals[k],
            slow_ms: self.slow_ms,
            min_support: self.config.min_support,
            dimensions: self.config.dimensions.clone(),
            counting_since_ms: scope.since_ms,
            findings,
            stats: self.stats(),
        })
    }
}

/// Cloneable handle with its own lock (not the detector's): `None` while no dimension is
/// configured or the detector is off.
#[derive(Debug, Clone, Default)]
pub struct ExplainService {
    inner: Arc<Mutex<Option<Explainer>>>,
}

impl ExplainService {
    /// Applies the config; an unchanged one keeps the counts, a new one starts empty.
    pub fn configure(&self, config: Option<ExplainConfig>) -> Result<(), ExplainError> {
        let mut inner = self.lock();
        match (config, inner.as_ref()) {
            (None, _) => *inner = None,
            (Some(config), Some(current)) if *current.config() == config => {}
            (Some(config), _) => *inner = Some(Explainer::new(config)?),
        }
        Ok(())
    }

    pub fn is_enabled(&self) -> bool {
        self.lock().is_some()
    }

    /// Records a batch under one lock; nothing when explain is off.
    pub fn record_batch<'a, N, V, I>(&self, events: I, now_ms: i64)
    where
        N: AsRef<str> + 'a,
        V: AsRef<str> + 'a,
        I: IntoIterator<Item = (TenantEventRef<'a>, &'a [(N, V)])>,
    {
        let mut inner = self.lock();
        let Some(explainer) = inner.as_mut() else {
            return;
        };
        // Without a dimension there is nothing to explain (the answer is `NoDimensions`), so
        // the hot path does not count totals nobody reads.
        if explainer.dimensions.is_empty() {
            return;
        }
        for (event, dims) in events {
            explainer.record(event, dims, now_ms);
        }
    }

    /// `None` while explain is off.
    pub fn explain(
        &self,
        tenant: Option<&str>,
        signal: Signal,
        window: Duration,
        limit: usize,
        now_ms: i64,
    ) -> Option<Result<Explanation, ExplainError>> {
        let mut inner = self.lock();
        Some(
            inner
                .as_mut()?
                .explain(tenant, signal, window, limit, now_ms),
        )
    }

    fn lock(&self) -> MutexGuard<'_, Option<Explainer>> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests;
