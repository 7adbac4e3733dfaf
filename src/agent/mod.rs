//! `sentinel-agent`: tails access logs and listens on datagram sockets, and ships the tenant
//! events it finds to sentineld in NDJSON batches, with a disk buffer and saved file offsets.
//!
//! # Layout
//! - [`config`]: `agent.toml` schema and validation (file:line:col errors).
//! - [`parse`]: one log line (JSON or nginx `log_format`) to one event.
//! - [`sources`]: the file tailer (rotation, truncation, resume) and datagram sockets.
//! - [`batch`], [`ship`]: batches, the HTTP client, retry, and the order of delivery.
//! - [`buffer`], [`offsets`]: what survives a restart: undelivered batches and read positions.
//!
//! Guarantee: a line's offset is saved only after its batch was accepted by sentineld (or
//! refused for good) or fsynced into the disk buffer. So a crash never loses a line, and
//! re-sends at most the batch that was in flight (at-least-once, see docs/agent.md).

pub mod batch;
pub mod buffer;
pub mod config;
pub mod offsets;
pub mod parse;
pub mod ship;
pub mod sources;
pub mod stats;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::units::ConfigError;
use batch::BatchBuilder;
use buffer::DiskBuffer;
use config::AgentConfig;
use offsets::OffsetStore;
use ship::http::{HttpTransport, Target};
use ship::Pipeline;
use sources::datagram::DatagramSocket;
use sources::follow::FileInput;
use stats::Stats;

#[derive(Debug, Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot use state directory {path}: {source} (set state_dir in the config)")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another sentinel-agent uses state directory {path}: give each agent its own state_dir"
    )]
    Locked { path: PathBuf },
    #[error("offsets file {path} is unreadable: {message}; move it away to start over (lines may then be re-sent or skipped)")]
    Offsets { path: PathBuf, message: String },
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start following {path}: {source}")]
    Follow {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    // What `agent.toml` validation finds in one value (shown at its file:line:col).
    #[error("`${{` without a closing `}}` at byte {at} of the log format")]
    UnclosedBrace { at: usize },
    #[error("`$` without a variable name at byte {at} of the log format")]
    NoVariableName { at: usize },
    #[error("variables ${previous} and ${name} are not separated by any text in the log format; the agent cannot tell where one ends")]
    AdjacentVariables { previous: String, name: String },
    #[error("https endpoints are not supported (`{url}`): run the agent next to sentineld, or put a TLS proxy in front of it")]
    HttpsEndpoint { url: String },
    #[error("endpoint `{url}` must start with http://")]
    NotHttp { url: String },
    #[error("endpoint `{url}` has no host")]
    NoHost { url: String },
    #[error("endpoint `{url}` is not a valid URL: {source}")]
    InvalidEndpoint {
        url: String,
        #[source]
        source: hyper::http::uri::InvalidUri,
    },
    #[error("invalid UDP address `{address}`: {source} (write e.g. udp://127.0.0.1:9138)")]
    UdpAddress {
        address: String,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("unix socket path `{path}` must be absolute")]
    RelativeSocket { path: String },
    #[error("datagram listen `{listen}` must start with udp:// or unix://")]
    ListenScheme { listen: String },
    /// `source` is the octal parser's error; none when the number is above 0777.
    #[error("mode `{mode}` is not octal like \"0660\"")]
    Mode {
        mode: String,
        #[source]
        source: Option<std::num::ParseIntError>,
    },
}

/// Records in flight between the inputs and the pipeline: a little more than a batch, so
/// inputs wait (and files stay unread) rather than memory growing while sentineld is slow.
const CHANNEL_CAPACITY: usize = 4096;

/// Run the agent until `shutdown` resolves, then stop the inputs, flush the last batch
/// (to sentineld, else to the disk buffer) and save the offsets. Returns the counters.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<Arc<Stats>, AgentError> {
    let state_dir = config.state_dir();
    let state_error = |source| AgentError::StateDir {
        path: state_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&state_dir).map_err(state_error)?;
    let _lock = lock_state_dir(&state_dir)?;
    let offsets = OffsetStore::open(&state_dir)?;
    let buffer_cap = config.buffer.max_bytes.0;
    let buffer = DiskBuffer::open(&state_dir.join("buffer"), buffer_cap).map_err(state_error)?;
    let stats = Arc::new(Stats::default());
    let (records, received) = mpsc::channel(CHANNEL_CAPACITY);

    let cancel = CancellationToken::new();
    let mut datagram_tasks = Vec::new();
    for datagram in &config.datagrams {
        let listen_error = |source| AgentError::Listen {
            address: datagram.listen.get_ref().clone(),
            source,
        };
        let invalid = |err: AgentError| {
            listen_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, err))
        };
        let address = datagram.address().map_err(invalid)?;
        let mode = datagram.mode_bits().map_err(invalid)?;
        let socket = DatagramSocket::bind(&address, mode)
            .await
            .map_err(listen_error)?;
        tracing::info!(listen = %datagram.listen.get_ref(), "accepting events by datagram");
        datagram_tasks.push(tokio::spawn(socket.run(
            records.clone(),
            Arc::clone(&stats),
            cancel.clone(),
        )));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut files = Vec::new();
    for file in &config.files {
        let parser = file.parser().map_err(|issue| ConfigError::Whole {
            path: file.path.clone(),
            message: issue.to_string(),
        })?;
        let resume = offsets.get(&file.path.display().to_string());
        let input = FileInput::start(
            file,
            parser,
            resume,
            records.clone(),
            Arc::clone(&stop),
            Arc::clone(&stats),
        )
        .map_err(|source| AgentError::Follow {
            path: file.path.clone(),
            source,
        })?;
        tracing::info!(path = %file.path.display(), format = ?file.format, resume = ?resume, "following");
        files.push(input);
    }
    drop(records);

    let output = &config.output;
    let target = Target::parse(output.endpoint.get_ref()).map_err(|err| ConfigError::Whole {
        path: PathBuf::from("output.endpoint"),
        message: err.to_string(),
    })?;
    tracing::info!(endpoint = %output.endpoint.get_ref(), "shipping to sentineld");
    let pipeline = Pipeline::new(
        HttpTransport::new(
            target,
            output.token.as_deref(),
            output.request_timeout.get(),
        ),
        buffer,
        buffer_cap,
        offsets,
        BatchBuilder::new(output.batch_max_events, output.flush_interval.get()),
        Backoff::new(output.retry_initial.get(), output.retry_max.get()),
        Arc::clone(&stats),
    );
    let shipping = tokio::spawn(pipeline.run(received));

    shutdown.await;
    tracing::info!("stopping: reading no more input, flushing what was read");
    stop.store(true, Ordering::Relaxed);
    cancel.cancel();
    for file in &files {
        file.wake();
    }
    crate::panic_policy::run_blocking(move || files.into_iter().for_each(FileInput::join)).await;
    for task in datagram_tasks {
        let _ = task.await;
    }
    let _ = shipping.await;
    Ok(stats)
}

/// One agent per state directory: two would overwrite each other's offsets.
fn lock_state_dir(state_dir: &std::path::Path) -> Result<Flock<std::fs::File>, AgentError> {
    let path = state_dir.join("lock");
    let file = std::fs::File::create(&path).map_err(|source| AgentError::StateDir {
        path: path.clone(),
        source,
    })?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| AgentError::Locked {
        path: state_dir.to_path_buf(),
    })
}
