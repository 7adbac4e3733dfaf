//! `icmp` probe: a burst of echo requests through surge-ping (unprivileged datagram ICMP sockets
//! where `ping_group_range` allows them, raw sockets otherwise); Down on loss or a slow round trip.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use surge_ping::{Client, Config, PingIdentifier, PingSequence, SurgeError, ICMP};

use super::{CheckResult, Failure, FailureReason};

/// The echo payload: 56 bytes, as ping(8) sends.
const PAYLOAD: [u8; 56] = [0x5e; 56];

/// Time between two echo requests of a burst.
pub const ECHO_GAP: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct IcmpProbe {
    /// A host name (resolved at each check) or an address.
    pub host: String,
    pub count: u32,
    pub max_loss_percent: f64,
    /// Limit on the average round trip of the answered echoes.
    pub max_rtt: Option<Duration>,
    /// How long each echo waits for its reply.
    pub wait: Duration,
}

/// What one burst saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Burst {
    pub sent: u32,
    pub rtts: Vec<Duration>,
}

impl Burst {
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            return 100.0;
        }
        f64::from(self.sent - self.received()) * 100.0 / f64::from(self.sent)
    }

    pub fn received(&self) -> u32 {
        u32::try_from(self.rtts.len()).unwrap_or(u32::MAX)
    }

    fn average(&self) -> Option<Duration> {
        let n = self.received();
        (n > 0).then(|| self.rtts.iter().sum::<Duration>() / n)
    }

    /// `3 sent, 3 received, 0% loss, rtt min/avg/max 0.041/0.052/0.061 ms`
    fn summary(&self) -> String {
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        let mut text = format!(
            "{} sent, {} received, {:.0}% loss",
            self.sent,
            self.received(),
            self.loss_percent()
        );
        if let (Some(min), Some(max), Some(avg)) = (
            self.rtts.iter().min(),
            self.rtts.iter().max(),
            self.average(),
        ) {
            text.push_str(&format!(
                ", rtt min/avg/max {:.3}/{:.3}/{:.3} ms",
                ms(min),
                ms(&avg),
                ms(max)
            ));
        }
        text
    }
}

impl IcmpProbe {
    /// The wait of each echo, so that a whole burst (the last echo leaves after `count - 1`
    /// gaps) ends within the check's `timeout`: a lost echo is counted as loss, not as a
    /// timed-out check.
    pub fn wait_for(timeout: Duration, count: u32) -> Duration {
        let gaps = ECHO_GAP * count.saturating_sub(1);
        (timeout.saturating_sub(gaps) * 9 / 10).max(Duration::from_millis(10))
    }

    pub async fn check(&self) -> CheckResult {
        let started = Instant::now();
        match self.burst().await.and_then(|burst| self.judge(&burst)) {
            Ok(average) => CheckResult::success(average, None),
            Err(failure) => CheckResult::failure(started.elapsed(), failure, None),
        }
    }

    /// The verdict on a burst: the average round trip, or why it fails.
    pub fn judge(&self, burst: &Burst) -> Result<Duration, Failure> {
        let loss = burst.loss_percent();
        if loss > self.max_loss_percent {
            return Err(Failure::new(
                FailureReason::PacketLoss,
                format!(
                    "{}: {}, above max_loss_percent {}",
                    self.host,
                    burst.summary(),
                    self.max_loss_percent
                ),
            ));
        }
        let average = burst.average().unwrap_or_default();
        if let Some(limit) = self.max_rtt {
            if average > limit {
                return Err(Failure::new(
                    FailureReason::HighRtt,
                    format!(
                        "{}: {}, average above max_rtt {}",
                        self.host,
                        burst.summary(),
                        humantime::format_duration(limit)
                    ),
                ));
            }
        }
        Ok(average)
    }

    async fn address(&self) -> Result<IpAddr, Failure> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(ip);
        }
        let mut found = tokio::net::lookup_host((self.host.as_str(), 0))
            .await
            .map_err(|err| {
                Failure::new(
                    FailureReason::Dns,
                    format!("cannot resolve {}: {err}", self.host),
                )
            })?;
        found.next().map(|address| address.ip()).ok_or_else(|| {
            Failure::new(
                FailureReason::Dns,
                format!("{} has no addresses", self.host),
            )
        })
    }

    /// `count` echoes, `ECHO_GAP` apart, each waiting `wait` for its reply.
    async fn burst(&self) -> Result<Burst, Failure> {
        let ip = self.address().await?;
        let kind = match ip {
            IpAddr::V4(_) => ICMP::V4,
            IpAddr::V6(_) => ICMP::V6,
        };
        // surge-ping opens a datagram socket first (no privilege where ping_group_range allows
        // it) and falls back to a raw one by itself.
        let config = Config::builder().kind(kind).build();
        let client = Client::new(&config).map_err(|err| {
            Failure::new(
                FailureReason::Io,
                format!("cannot open an ICMP socket: {err}"),
            )
        })?;
        // Sent ECHO_GAP apart, awaited together: a burst ends within (count - 1) gaps + wait.
        let ident = next_identifier();
        let echoes = (0..self.count).map(|seq| {
            let client = client.clone();
            async move {
                tokio::time::sleep(ECHO_GAP * seq).await;
                let mut pinger = client.pinger(ip, ident).await;
                pinger.timeout(self.wait);
                let sequence = PingSequence(u16::try_from(seq).unwrap_or(u16::MAX));
                (seq, pinger.ping(sequence, &PAYLOAD).await)
            }
        });
        let mut burst = Burst {
            sent: self.count,
            rtts: Vec::new(),
        };
        for (seq, result) in futures_util::future::join_all(echoes).await {
            match result {
                Ok((_, rtt)) => burst.rtts.push(rtt),
                Err(SurgeError::Timeout { .. }) => {}
                Err(SurgeError::IOError(err)) => {
                    let reason = match err.raw_os_error() {
                        Some(errno) if is_unreachable(errno) => FailureReason::PacketLoss,
                        _ => FailureReason::Io,
                    };
                    return Err(Failure::new(
                        reason,
                        format!("{}: echo request {seq} not sent: {err}", self.host),
                    ));
                }
                Err(err) => {
                    return Err(Failure::new(
                        FailureReason::Io,
                        format!("{}: echo request {seq}: {err}", self.host),
                    ))
                }
            }
        }
        Ok(burst)
    }
}

/// ENETUNREACH or EHOSTUNREACH: nothing could carry the echo, so it is lost.
fn is_unreachable(errno: i32) -> bool {
    errno == nix::errno::Errno::ENETUNREACH as i32
        || errno == nix::errno::Errno::EHOSTUNREACH as i32
}

/// Identifiers for raw sockets, which see every echo reply on the host: one per burst, so two
/// probes (or a ping(8)) never take each other's replies. Datagram sockets get theirs from the
/// kernel.
fn next_identifier() -> PingIdentifier {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = (std::process::id() & 0xffff) as u16;
    PingIdentifier(base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(7919)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(max_loss_percent: f64, max_rtt: Option<Duration>) -> IcmpProbe {
        IcmpProbe {
            host: "gw".into(),
            count: 4,
            max_loss_percent,
            max_rtt,
            wait: Duration::from_millis(100),
        }
    }

    #[test]
    fn verdicts_on_bursts() {
        let ms = Duration::from_millis;
        let burst = |sent, rtts: &[u64]| Burst {
            sent,
            rtts: rtts.iter().map(|r| ms(*r)).collect(),
        };
        let cases = [
            (probe(0.0, None), burst(4, &[1, 2, 3, 2]), Ok(ms(2))),
            (
                probe(0.0, None),
                burst(4, &[1, 2, 3]),
                Err((FailureReason::PacketLoss, "gw: 4 sent, 3 received, 25% loss, rtt min/avg/max 1.000/2.000/3.000 ms, above max_loss_percent 0")),
            ),
            (probe(25.0, None), burst(4, &[1, 2, 3]), Ok(ms(2))),
            (
                probe(50.0, None),
                burst(4, &[]),
                Err((FailureReason::PacketLoss, "gw: 4 sent, 0 received, 100% loss, above max_loss_percent 50")),
            ),
            (
                probe(0.0, Some(ms(2))),
                burst(4, &[2, 3, 3, 4]),
                Err((FailureReason::HighRtt, "gw: 4 sent, 4 received, 0% loss, rtt min/avg/max 2.000/3.000/4.000 ms, average above max_rtt 2ms")),
            ),
            (probe(0.0, Some(ms(3))), burst(4, &[2, 3, 3, 4]), Ok(ms(3))),
        ];
        for (probe, burst, want) in cases {
            let got = probe
                .judge(&burst)
                .map_err(|f| (f.reason, f.detail.clone()));
            let want = want.map_err(|(r, d)| (r, d.to_string()));
            assert_eq!(got, want, "{burst:?}");
        }
    }

    #[test]
    fn each_echo_waits_so_the_burst_fits_the_timeout() {
        let wait = IcmpProbe::wait_for(Duration::from_secs(5), 3);
        assert_eq!(wait, Duration::from_millis(4320));
        assert!(ECHO_GAP * 2 + wait < Duration::from_secs(5));
        assert_eq!(
            IcmpProbe::wait_for(Duration::from_millis(100), 10),
            Duration::from_millis(10)
        );
    }

    /// Echoes to loopback are answered (raw socket on a host whose ping_group_range excludes
    /// root's group; datagram where it includes it): RTT figures, no loss.
    #[tokio::test]
    async fn loopback_answers_every_echo() {
        let probe = IcmpProbe {
            host: "127.0.0.1".into(),
            count: 3,
            max_loss_percent: 0.0,
            max_rtt: Some(Duration::from_millis(500)),
            wait: Duration::from_secs(1),
        };
        let burst = probe.burst().await.unwrap();
        assert_eq!((burst.sent, burst.received()), (3, 3), "{burst:?}");
        assert!(probe.check().await.is_success());
    }
}
