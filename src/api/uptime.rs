//! `GET /v1/uptime?since=30d&probe=web`: availability, incidents and time to recover per probe
//! from the journal's daily rollups; the four standard windows unless `since` names one.

use hyper::{Response, StatusCode};

use super::query::{parse_since, QueryError};
use super::routes::query_pairs;
use super::server::{error, json, Body};
use crate::event::Timestamp;
use crate::journal::Journal;
use crate::uptime::{report, UptimeRequest};

pub(super) async fn get(
    query: Option<&str>,
    journal: &Journal,
    maintenance: &crate::maintenance::Windows,
) -> Response<Body> {
    let now = Timestamp::now();
    let request = match parse_params(query, now) {
        Ok(request) => request,
        Err(err) => return error(StatusCode::BAD_REQUEST, err.to_string()),
    };
    let probe = request.probe.clone();
    match report(journal, now, request, &maintenance.probe_labels()).await {
        Ok(report) if report.probes.is_empty() && probe.is_some() => error(
            StatusCode::NOT_FOUND,
            format!(
                "no uptime data for probe \"{}\": it never changed state in the journal",
                probe.unwrap_or_default()
            ),
        ),
        Ok(report) => json(StatusCode::OK, &report),
        Err(err) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            crate::logging::error_chain(&err),
        ),
    }
}

fn parse_params(query: Option<&str>, now: Timestamp) -> Result<UptimeRequest, QueryError> {
    let mut request = UptimeRequest::default();
    for (key, value) in query_pairs(query) {
        match key.as_str() {
            "since" => {
                let since = parse_since(&value, now)?;
                request.since = Some((value, since));
            }
            "probe" => request.probe = Some(value),
            _ => {
                return Err(QueryError::UnknownParameter {
                    name: key,
                    expected: Some("since, probe"),
                })
            }
        }
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_table() {
        let now = Timestamp(10 * 86_400_000);
        let ok = |q: &str| parse_params(Some(q), now).unwrap();
        assert_eq!(parse_params(None, now).unwrap(), UptimeRequest::default());
        assert_eq!(
            ok("since=30d&probe=web"),
            UptimeRequest {
                since: Some(("30d".into(), Timestamp(now.0 - 30 * 86_400_000))),
                probe: Some("web".into()),
            }
        );
        for bad in ["since=soon", "window=1d", "probe=a&x=1"] {
            assert!(parse_params(Some(bad), now).is_err(), "{bad}");
        }
    }
}
