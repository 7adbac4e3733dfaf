//! Query strings of the control API: `since`, `kind`, `limit`, `after_id`, `follow`, and the
//! percent-decoding they need.

use crate::event::Timestamp;
use crate::journal::EventQuery;

/// Query-string options of `GET /v1/events`.
#[derive(Debug, Default, PartialEq)]
pub struct EventsParams {
    pub query: EventQuery,
    pub follow: bool,
}

/// Parse `since=10m|RFC3339|epoch-ms`, `after_id=N`, `kind=a,b`, `limit=N`, `follow=1`.
pub fn parse_events_params(query: Option<&str>, now: Timestamp) -> Result<EventsParams, String> {
    let mut params = EventsParams::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match key {
            "since" => params.query.since = Some(parse_since(&value, now)?),
            "after_id" => {
                params.query.after_id = Some(
                    value
                        .parse()
                        .map_err(|_| format!("after_id must be an integer, got \"{value}\""))?,
                )
            }
            "kind" => {
                params.query.kinds = value
                    .split(',')
                    .filter(|k| !k.is_empty())
                    .map(String::from)
                    .collect()
            }
            "limit" => {
                params.query.limit = value
                    .parse()
                    .map_err(|_| format!("limit must be a positive integer, got \"{value}\""))?
            }
            "follow" => params.follow = matches!(value.as_str(), "1" | "true" | ""),
            other => return Err(format!("unknown parameter \"{other}\"")),
        }
    }
    Ok(params)
}

/// `10m` (that long ago), an RFC 3339 time, or epoch milliseconds.
pub fn parse_since(value: &str, now: Timestamp) -> Result<Timestamp, String> {
    if let Ok(ago) = humantime::parse_duration(value) {
        return Ok(now.saturating_sub(ago));
    }
    if let Ok(time) = humantime::parse_rfc3339_weak(value) {
        return Ok(Timestamp::from(time));
    }
    value.parse::<i64>().map(Timestamp).map_err(|_| {
        format!(
            "invalid since \"{value}\": expected a duration (10m), an RFC 3339 time or epoch ms"
        )
    })
}

pub(super) fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_params_table() {
        let now = Timestamp(1_000_000);
        let ok = parse_events_params(Some("since=10s&kind=a,b&limit=5&follow=1&after_id=7"), now)
            .unwrap();
        assert_eq!(ok.query.since, Some(Timestamp(990_000)));
        assert_eq!(ok.query.kinds, ["a", "b"]);
        assert_eq!(ok.query.limit, 5);
        assert_eq!(ok.query.after_id, Some(7));
        assert!(ok.follow);
        assert_eq!(
            parse_events_params(None, now).unwrap(),
            EventsParams::default()
        );
        assert_eq!(
            parse_events_params(Some("since=2023-11-14T22%3A13%3A20Z"), now)
                .unwrap()
                .query
                .since,
            Some(Timestamp(1_700_000_000_000))
        );
        assert_eq!(parse_since("1234", now), Ok(Timestamp(1234)));
        for bad in ["since=yesterday", "limit=-1", "after_id=x", "bogus=1"] {
            assert!(parse_events_params(Some(bad), now).is_err(), "{bad}");
        }
    }

    #[test]
    fn percent_decode_table() {
        assert_eq!(percent_decode("a%3Ab"), "a:b");
        assert_eq!(percent_decode("a+b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
