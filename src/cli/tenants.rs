//! How `sentinelctl tenants top` and `tenants show` print: the on-call view ("Top tenants by 5xx
//! (last 10 minutes)") and one tenant's evidence, from the control API's JSON.

use std::fmt::Write as _;

use std::path::PathBuf;
use std::time::Duration;

use crate::api::{
    ClientError, ControlClient, ErrorResponse, Route, TenantMuteResponse, TenantMutesResponse,
    TenantResponse, TenantsTopResponse,
};
use crate::event::Timestamp;
use crate::http::client::{HttpTarget, PostError, TargetError};
use crate::tenants::merge::{merge_top, MergeError};
use crate::tenants::{window_phrase, MuteMark, RankBy, TenantEvidence, TopTenants, TrackerStats};

/// `tenants top --peer`: the answers of daemons owning disjoint tenants as one (the exact merge of
/// [`crate::tenants::merge`]; stats summed).
pub fn merge_answers(
    answers: Vec<TenantsTopResponse>,
    limit: usize,
) -> Result<TenantsTopResponse, MergeError> {
    let tops: Vec<TopTenants> = answers.iter().map(|a| a.top.clone()).collect();
    let top = merge_top(&tops, limit)?;
    let mut stats = TrackerStats::default();
    for s in answers.iter().map(|a| a.stats) {
        stats += s;
    }
    let error_label = answers
        .into_iter()
        .next()
        .map(|a| a.error_label)
        .unwrap_or_default();
    Ok(TenantsTopResponse {
        error_label,
        stats,
        top,
    })
}

/// How long a peer on the network may take to answer `tenants top --peer URL`.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes of a peer's answer read (1000 tenants take well under 1 MiB).
const MAX_PEER_ANSWER: usize = 8 << 20;

/// A `--peer`: the control socket of a sentineld on this host, or the public listener of one
/// elsewhere (`http://` or `https://`; its `[http] tenants` route must be on or behind a token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    Socket(PathBuf),
    /// The listener's base URL, without a trailing slash; `/v1/tenants/top` is appended.
    /// `shown` is the same without credentials, for messages.
    Url {
        url: String,
        shown: String,
    },
}

impl std::str::FromStr for PeerAddr {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lower = text.to_ascii_lowercase();
        match lower.starts_with("http://") || lower.starts_with("https://") {
            true => {
                let base = text.trim_end_matches('/');
                HttpTarget::parse(&format!("{base}/v1/tenants/top"))?;
                let shown = HttpTarget::parse(base)?.display();
                Ok(Self::Url {
                    url: base.to_string(),
                    shown: shown.trim_end_matches('/').to_string(),
                })
            }
            false => Ok(Self::Socket(PathBuf::from(text))),
        }
    }
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Socket(path) => write!(f, "{}", path.display()),
            Self::Url { shown, .. } => f.write_str(shown),
        }
    }
}

/// Why a peer's ranking could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error(transparent)]
    Socket(#[from] ClientError),
    #[error(transparent)]
    Http(#[from] PostError),
    /// The peer answered with an error status; `message` is its explanation.
    #[error("HTTP {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("the answer is not a tenant ranking: {0}")]
    Answer(#[source] serde_json::Error),
}

/// Ask one peer for its ranking (`by`, `window`, `limit` as `query`); `token` is sent as a
/// bearer token to URL peers only.
pub async fn ask_peer(
    peer: &PeerAddr,
    query: &[(&str, String)],
    token: Option<&str>,
) -> Result<TenantsTopResponse, PeerError> {
    let target = Route::TenantsTop.with_query(query.iter().map(|(k, v)| (*k, v.as_str())));
    let url = match peer {
        PeerAddr::Socket(socket) => {
            return Ok(ControlClient::new(socket.clone()).call(target).await?)
        }
        PeerAddr::Url { url, .. } => format!("{url}{}", target.uri()),
    };
    let headers: Vec<(String, String)> = token
        .map(|t| ("authorization".to_string(), format!("Bearer {}", t.trim())))
        .into_iter()
        .collect();
    let answer = crate::http::client::send(
        hyper::Method::GET,
        &url,
        &headers,
        None,
        PEER_TIMEOUT,
        MAX_PEER_ANSWER,
    )
    .await?;
    if !(200..300).contains(&answer.status) {
        let message = serde_json::from_slice::<ErrorResponse>(&answer.body).map_or_else(
            |_| {
                String::from_utf8_lossy(&answer.body)
                    .trim()
                    .chars()
                    .take(200)
                    .collect()
            },
            |r| r.error,
        );
        return Err(PeerError::Refused {
            status: answer.status,
            message,
        });
    }
    serde_json::from_slice(&answer.body).map_err(PeerError::Answer)
}

/// The ranking as an on-call engineer reads it:
///
/// ```text
/// Top tenants by 5xx (last 10 minutes)
/// 1. tenant_acme    68% of all 5xx  (endpoint: /v1/process)
/// 2. tenant_beta    21%
/// ```
pub fn top(response: &TenantsTopResponse) -> String {
    let top = &response.top;
    let label = &response.error_label;
    let window = window_phrase(top.window_ms);
    let title = match top.by {
        RankBy::Errors => label.clone(),
        RankBy::ErrorRate => "error rate".into(),
        RankBy::Latency => "p95 latency".into(),
        RankBy::Deviation => "latency against baseline".into(),
    };
    let mut out = format!("Top tenants by {title} ({window})\n");
    if top.tenants.is_empty() {
        let why = match top.by {
            RankBy::Errors | RankBy::ErrorRate => format!("no {label}"),
            RankBy::Latency | RankBy::Deviation => "no tenant with enough requests".into(),
        };
        let _ = writeln!(
            out,
            "{why} in the {window} ({} requests in all)",
            top.total_requests
        );
        return out;
    }
    let width = top
        .tenants
        .iter()
        .map(|t| t.tenant_id.chars().count())
        .max()
        .unwrap_or(0)
        + 3;
    // Places right-aligned, so "10." lines up under " 9.".
    let places = top.tenants.len().to_string().len();
    for (place, tenant) in top.tenants.iter().enumerate() {
        let figure = figure(top.by, tenant, place == 0, label);
        let name = &tenant.tenant_id;
        let place = place + 1;
        let muted = tenant.muted.as_ref().map_or_else(String::new, |m| {
            format!("  [muted until {}]", Timestamp(m.until_ms).to_rfc3339())
        });
        let _ = writeln!(out, "{place:>places$}. {name:<width$}{figure}{muted}");
    }
    if top.by == RankBy::Errors && top.other.errors > 0 {
        let share = percent(top.other.error_share);
        let _ = writeln!(out, "   (untracked tenants together: {share})");
    }
    out
}

/// The number after a tenant's name; the leader also gets its evidence.
fn figure(by: RankBy, tenant: &TenantEvidence, leader: bool, label: &str) -> String {
    let endpoint = tenant
        .top_endpoint
        .as_ref()
        .map(|e| format!("endpoint: {}", e.endpoint));
    match by {
        RankBy::Errors => {
            let share = percent(tenant.error_share);
            match (leader, endpoint) {
                (true, Some(endpoint)) => format!("{share} of all {label}  ({endpoint})"),
                (true, None) => format!("{share} of all {label}"),
                (false, _) => share,
            }
        }
        RankBy::ErrorRate => {
            let rate = percent(tenant.error_rate);
            let sample = format!("{} of {}", tenant.errors, tenant.requests);
            match (leader, endpoint) {
                (true, Some(endpoint)) => format!("{rate} failed  ({sample}; {endpoint})"),
                _ => format!("{rate} failed  ({sample})"),
            }
        }
        RankBy::Latency => format!(
            "p95 {}  ({} requests)",
            millis(tenant.p95_ms),
            tenant.requests
        ),
        RankBy::Deviation => format!(
            "{:.1}× its baseline  (p95 {} vs {})",
            tenant.deviation.unwrap_or(0.0),
            millis(tenant.p95_ms),
            millis(tenant.baseline_p95_ms)
        ),
    }
}

/// One tenant's numbers, for `sentinelctl tenants show`.
pub fn tenant(response: &TenantResponse) -> String {
    let t = &response.tenant;
    let label = &response.error_label;
    let mut out = format!(
        "Tenant {} ({})\n",
        t.tenant_id,
        window_phrase(response.window_ms)
    );
    let mut row = |name: &str, value: String| {
        let _ = writeln!(out, "  {name:<14}{value}");
    };
    row("requests", t.requests.to_string());
    row(
        label,
        format!(
            "{} ({} of all {label}; error rate {}, at least {} with 95% confidence)",
            t.errors,
            percent(t.error_share),
            percent(t.error_rate),
            percent(t.error_rate_lower_bound)
        ),
    );
    let lift = t
        .lift
        .map_or_else(|| "-".to_string(), |lift| format!("{lift:.1}×"));
    row(
        "against rest",
        format!(
            "{lift} the rest's error rate (rest: {} of {})",
            t.rest_errors, t.rest_requests
        ),
    );
    row(
        "latency",
        format!(
            "p50 {}  p95 {}  p99 {}",
            millis(t.p50_ms),
            millis(t.p95_ms),
            millis(t.p99_ms)
        ),
    );
    let deviation = t
        .deviation
        .map_or_else(String::new, |d| format!(" (now {d:.1}× that)"));
    row(
        "baseline p95",
        format!("{}{deviation}", millis(t.baseline_p95_ms)),
    );
    if let Some(endpoint) = &t.top_endpoint {
        row(
            "top endpoint",
            format!("{} ({} {label})", endpoint.endpoint, endpoint.errors),
        );
    }
    if let Some(since) = t.tracked_since_ms {
        row("tracked since", Timestamp(since).to_rfc3339());
    }
    if let Some(mute) = &t.muted {
        row("muted", mute_phrase(mute));
    }
    out
}

/// "alerts held until 2026-12-06T16:00:00Z (load test)".
fn mute_phrase(mute: &MuteMark) -> String {
    let until = Timestamp(mute.until_ms).to_rfc3339();
    match mute.reason.is_empty() {
        true => format!("alerts held until {until}"),
        false => format!("alerts held until {until} ({})", mute.reason),
    }
}

/// The answer to `tenants mute` / `tenants unmute`.
pub fn muted(response: &TenantMuteResponse) -> String {
    match &response.mute {
        Some(mute) => format!(
            "{}: muted until {} (it still ranks; its alerts are held)\n",
            response.tenant_id,
            Timestamp(mute.until_ms).to_rfc3339()
        ),
        None => format!("{}: unmuted (its alerts fire again)\n", response.tenant_id),
    }
}

/// `tenants mutes`: one line per mute in force.
pub fn mutes(response: &TenantMutesResponse) -> String {
    if response.mutes.is_empty() {
        return "no tenant is muted\n".into();
    }
    let mut out = String::new();
    for mute in &response.mutes {
        let who = mute
            .user
            .clone()
            .unwrap_or_else(|| format!("uid {}", mute.uid));
        let mark = MuteMark {
            until_ms: mute.until_ms,
            reason: mute.reason.clone(),
        };
        let _ = writeln!(out, "{}  {} (by {who})", mute.tenant_id, mute_phrase(&mark));
    }
    out
}

fn percent(fraction: f64) -> String {
    match fraction * 100.0 {
        p if p > 0.0 && p < 1.0 => "<1%".into(),
        p => format!("{p:.0}%"),
    }
}

fn millis(ms: Option<f64>) -> String {
    match ms {
        Some(ms) if ms < 10.0 => format!("{ms:.1} ms"),
        Some(ms) => format!("{ms:.0} ms"),
        None => "-".into(),
    }
}

/// What bad requests have in common, as a table:
///
/// ```text
/// What 5xx have in common (all tenants, last 10 minutes: 4,210 of 61,000 requests)
///   dimension  value     bad   requests  bad rate  rest   lift  score
///   region     eu-west   3,962  9,900    40.0%     0.5%   85.3  3,482
/// ```
pub fn explain(response: &crate::tenants::Explanation) -> String {
    use crate::tenants::Signal;
    let what = match response.signal {
        Signal::Errors => "errors".to_string(),
        Signal::Latency => format!("requests slower than {} ms", response.slow_ms),
    };
    let scope = match &response.tenant_id {
        Some(tenant) => format!("tenant {tenant}"),
        None => "all tenants".into(),
    };
    let window = window_phrase(response.window_ms);
    let mut out = format!(
        "What {what} have in common ({scope}, {window}: {} of {} requests)\n",
        response.bad, response.requests
    );
    if response.findings.is_empty() {
        let _ = writeln!(
            out,
            "no value of {} stands out (each needs {} bad requests and a bad rate above the rest's with confidence)",
            response.dimensions.join(", "),
            response.min_support
        );
        return out;
    }
    let rows: Vec<[String; 8]> = response
        .findings
        .iter()
        .map(|f| {
            [
                f.dimension.clone(),
                f.value.clone(),
                f.bad.to_string(),
                f.requests.to_string(),
                percent(f.bad_rate),
                percent(f.rest_rate),
                format!("{:.1}", f.lift),
                format!("{:.0}", f.score),
            ]
        })
        .collect();
    let header = [
        "dimension",
        "value",
        "bad",
        "requests",
        "bad rate",
        "rest",
        "lift",
        "score",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut line = String::from(" ");
        for (cell, width) in cells.iter().zip(widths) {
            let _ = write!(line, " {cell:<width$}");
        }
        line.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(&header));
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let _ = writeln!(out, "{}", line(&cells));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenants::rank::EndpointEvidence;
    use crate::tenants::{TopTenants, TrackerStats};

    /// A `--peer` is a URL by its scheme, else a socket path; a URL is shown without its
    /// credentials and asked with them.
    #[test]
    fn peer_addresses_table() {
        let cases = [
            ("/run/sentinel/node2.sock", "/run/sentinel/node2.sock", None),
            ("relative.sock", "relative.sock", None),
            (
                "http://10.0.0.2:9137",
                "http://10.0.0.2:9137",
                Some("http://10.0.0.2:9137"),
            ),
            (
                "HTTPS://node2:9137/",
                "https://node2:9137",
                Some("HTTPS://node2:9137"),
            ),
            (
                "https://ops:s3cret@node2/sentinel/",
                "https://node2/sentinel",
                Some("https://ops:s3cret@node2/sentinel"),
            ),
        ];
        for (text, shown, url) in cases {
            let peer: PeerAddr = text.parse().unwrap();
            assert_eq!(peer.to_string(), shown, "{text}");
            match (&peer, url) {
                (PeerAddr::Url { url: asked, .. }, Some(url)) => assert_eq!(asked, url),
                (PeerAddr::Socket(_), None) => {}
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!("http://[::1".parse::<PeerAddr>().is_err());
    }

    fn evidence(id: &str, errors: u64, share: f64, endpoint: Option<&str>) -> TenantEvidence {
        TenantEvidence {
            tenant_id: id.into(),
            requests: errors * 2,
            errors,
            error_share: share,
            error_rate: 0.5,
            error_rate_lower_bound: 0.45,
            lift: Some(3.0),
            rest_requests: 100,
            rest_errors: 10,
            p50_ms: Some(4.0),
            p95_ms: Some(85.0),
            p99_ms: Some(120.0),
            baseline_p95_ms: Some(40.0),
            deviation: Some(2.125),
            top_endpoint: endpoint.map(|e| EndpointEvidence {
                endpoint: e.into(),
                errors,
            }),
            tracked_since_ms: Some(1_700_000_000_000),
            muted: None,
        }
    }

    fn response(tenants: Vec<TenantEvidence>, other_errors: u64) -> TenantsTopResponse {
        let mut other = evidence("__other__", other_errors, 0.04, None);
        other.tracked_since_ms = None;
        TenantsTopResponse {
            error_label: "5xx".into(),
            stats: TrackerStats::default(),
            top: TopTenants {
                by: RankBy::Errors,
                window_ms: 600_000,
                now_ms: 0,
                total_requests: 1000,
                total_errors: 100,
                tenants,
                other,
                min_requests: 20,
            },
        }
    }

    #[test]
    fn prints_exactly_the_original_view() {
        let view = top(&response(
            vec![
                evidence("tenant_acme", 68, 0.68, Some("/v1/process")),
                evidence("tenant_beta", 21, 0.21, Some("/v1/other")),
                evidence("tenant_gamma", 7, 0.07, None),
            ],
            0,
        ));
        assert_eq!(
            view,
            "Top tenants by 5xx (last 10 minutes)\n\
             1. tenant_acme    68% of all 5xx  (endpoint: /v1/process)\n\
             2. tenant_beta    21%\n\
             3. tenant_gamma   7%\n"
        );
    }

    #[test]
    fn empty_rankings_and_untracked_share_say_so() {
        assert_eq!(
            top(&response(vec![], 0)),
            "Top tenants by 5xx (last 10 minutes)\nno 5xx in the last 10 minutes (1000 requests in all)\n"
        );
        let view = top(&response(vec![evidence("a", 96, 0.96, None)], 4));
        assert!(
            view.ends_with("1. a   96% of all 5xx\n   (untracked tenants together: 4%)\n"),
            "{view}"
        );
    }

    #[test]
    fn other_rankings_show_their_own_figure() {
        let mut by_latency = response(vec![evidence("slow", 10, 0.1, None)], 0);
        by_latency.top.by = RankBy::Latency;
        assert_eq!(
            top(&by_latency),
            "Top tenants by p95 latency (last 10 minutes)\n1. slow   p95 85 ms  (20 requests)\n"
        );
        let mut by_deviation = by_latency.clone();
        by_deviation.top.by = RankBy::Deviation;
        assert!(top(&by_deviation).contains("1. slow   2.1× its baseline  (p95 85 ms vs 40 ms)"));
        let mut by_rate = by_latency;
        by_rate.top.by = RankBy::ErrorRate;
        assert!(top(&by_rate).contains("1. slow   50% failed  (10 of 20)"));
    }

    #[test]
    fn show_lists_every_figure() {
        let view = tenant(&TenantResponse {
            error_label: "5xx".into(),
            window_ms: 600_000,
            tenant: evidence("tenant_acme", 68, 0.68, Some("/v1/process")),
        });
        for line in [
            "Tenant tenant_acme (last 10 minutes)",
            "  requests      136",
            "  5xx           68 (68% of all 5xx; error rate 50%, at least 45% with 95% confidence)",
            "  against rest  3.0× the rest's error rate (rest: 10 of 100)",
            "  latency       p50 4.0 ms  p95 85 ms  p99 120 ms",
            "  baseline p95  40 ms (now 2.1× that)",
            "  top endpoint  /v1/process (68 5xx)",
            "  tracked since 2023-11-14T22:13:20.000Z",
        ] {
            assert!(view.contains(line), "missing {line:?} in\n{view}");
        }
    }
}
