//! `tcp` probe: can we open a connection to host:port within the timeout?

use std::time::Instant;

use super::{connect, split_host_port, CheckResult};

#[derive(Debug, Clone)]
pub struct TcpProbe {
    pub host: String,
    pub port: u16,
}

impl TcpProbe {
    pub fn new(address: &str) -> Option<Self> {
        let (host, port) = split_host_port(address)?;
        Some(Self { host, port })
    }

    pub async fn check(&self) -> CheckResult {
        let started = Instant::now();
        match connect(&self.host, self.port).await {
            Ok(_) => CheckResult::success(started.elapsed(), None),
            Err(failure) => CheckResult::failure(started.elapsed(), failure, None),
        }
    }
}
