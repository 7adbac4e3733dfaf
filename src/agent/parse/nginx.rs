//! nginx access logs described by their own `log_format` string: each `$variable` takes the
//! text up to the literal that follows it in the format (skipping backslash escapes).

use serde_json::Value;

use crate::agent::AgentError;

use super::{
    excerpt, latency_from_text, status_from_text, FieldMap, LatencyUnit, LineError, OutEvent,
    Parsed,
};

/// nginx's built-in `combined` format.
pub const COMBINED: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

/// A compiled `log_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFormat {
    parts: Vec<Part>,
}

impl LogFormat {
    /// `combined` stands for nginx's built-in format; anything else is a format string.
    pub fn expand(text: &str) -> &str {
        if text.trim() == "combined" {
            COMBINED
        } else {
            text
        }
    }

    /// Split a format into literals and variables (`$name` or `${name}`).
    pub fn compile(text: &str) -> Result<Self, AgentError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            if c != '$' {
                literal.push(c);
                continue;
            }
            let braced = chars.peek().is_some_and(|&(_, c)| c == '{');
            if braced {
                chars.next();
            }
            let mut name = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if !(c.is_ascii_alphanumeric() || c == '_') {
                    break;
                }
                name.push(c);
                chars.next();
            }
            if braced && chars.next().map(|(_, c)| c) != Some('}') {
                return Err(AgentError::UnclosedBrace { at });
            }
            if name.is_empty() {
                return Err(AgentError::NoVariableName { at });
            }
            if literal.is_empty() {
                if let Some(Part::Variable(previous)) = parts.last() {
                    return Err(AgentError::AdjacentVariables {
                        previous: previous.clone(),
                        name,
                    });
                }
            } else {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Variable(name));
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self { parts })
    }

    pub fn has(&self, variable: &str) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Variable(v) if v == variable))
    }

    /// The raw (still escaped) value of every variable, in format order; None when the line
    /// does not have the format's shape.
    fn capture<'a>(&'a self, line: &'a str) -> Option<Vec<(&'a str, &'a str)>> {
        let mut values = Vec::new();
        let mut rest = line;
        for (index, part) in self.parts.iter().enumerate() {
            match part {
                Part::Literal(literal) => rest = rest.strip_prefix(literal.as_str())?,
                Part::Variable(name) => {
                    let end = match self.parts.get(index + 1) {
                        Some(Part::Literal(next)) => find_unescaped(rest, next)?,
                        _ => rest.len(),
                    };
                    values.push((name.as_str(), &rest[..end]));
                    rest = &rest[end..];
                }
            }
        }
        Some(values)
    }
}

/// Byte index of the first `needle` in `haystack` that does not start inside a `\x` escape.
/// Steps a whole character at a time: the one after a backslash may be multi-byte (`é`, or the
/// U+FFFD an invalid byte became), and slicing inside it would panic.
fn find_unescaped(haystack: &str, needle: &str) -> Option<usize> {
    let mut chars = haystack.char_indices();
    while let Some((at, c)) = chars.next() {
        if c == '\\' {
            chars.next();
            continue;
        }
        if haystack[at..].starts_with(needle) {
            return Some(at);
        }
    }
    None
}

/// Undo nginx's `\xHH` escaping (and the `\"`, `\\` of other servers).
pub fn unescape(raw: &str) -> String {
    if !raw.contains('\\') {
        return raw.to_string();
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'\\' && at + 1 < bytes.len() {
            let hex = raw
                .get(at + 2..at + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[at + 1], hex) {
                (b'x', Some(byte)) => {
                    out.push(byte);
                    at += 4;
                    continue;
                }
                (b'"' | b'\\', _) => {
                    out.push(bytes[at + 1]);
                    at += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(bytes[at]);
        at += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn parse(
    line: &str,
    format: &LogFormat,
    fields: &FieldMap,
    unit: LatencyUnit,
    now_ms: u64,
) -> Parsed {
    let Some(values) = format.capture(line) else {
        return Parsed::Malformed(LineError::NoFormatMatch);
    };
    let get = |name: &str| {
        values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| unescape(v))
    };
    // nginx logs an empty variable as `-`
    let Some(tenant_id) = get(&fields.tenant_id).filter(|v| !v.is_empty() && v != "-") else {
        return Parsed::NoTenant;
    };
    let event = || -> Result<OutEvent, LineError> {
        let request = get(&fields.endpoint).unwrap_or_else(|| "-".into());
        let status = get(&fields.status_code).ok_or(LineError::NoStatus)?;
        let latency = get(&fields.latency_ms).ok_or(LineError::NoLatency)?;
        let timestamp = match get(&fields.timestamp).filter(|v| v != "-") {
            None => Value::from(now_ms),
            Some(text) => timestamp(&fields.timestamp, &text)?,
        };
        Ok(OutEvent {
            tenant_id,
            endpoint: endpoint_of(&request),
            status_code: status_from_text(&status)?,
            latency_ms: latency_from_text(&latency, unit)?,
            timestamp,
            dims: fields.dims_of(|source| get(source).filter(|v| v != "-")),
        })
    };
    match event() {
        Ok(event) => Parsed::Event(event),
        Err(message) => Parsed::Malformed(message),
    }
}

/// The path of a `$request` ("GET /path?q HTTP/1.1"); other variables ($uri) pass as they are.
fn endpoint_of(value: &str) -> String {
    let mut words = value.split(' ');
    match (words.next(), words.next()) {
        (Some(_method), Some(path)) if !path.is_empty() => path.to_string(),
        _ => value.to_string(),
    }
}

/// `$time_local` and `$msec` become epoch milliseconds; others (`$time_iso8601`) pass as text.
fn timestamp(variable: &str, text: &str) -> Result<Value, LineError> {
    match variable {
        "time_local" => time_local_ms(text)
            .map(Value::from)
            .ok_or_else(|| LineError::TimeLocal {
                text: excerpt(text),
            }),
        "msec" => {
            let refused = |source| LineError::Msec {
                text: excerpt(text),
                source,
            };
            let secs = text.parse::<f64>().map_err(|err| refused(Some(err)))?;
            if !(secs.is_finite() && secs >= 0.0) {
                return Err(refused(None));
            }
            Ok(Value::from((secs * 1000.0).round() as i64))
        }
        _ => Ok(Value::from(text)),
    }
}

/// Epoch milliseconds of an nginx `$time_local` ("10/Oct/2000:13:55:36 -0700"), by rewriting
/// it as RFC 3339 for the parser sentineld itself uses.
pub fn time_local_ms(text: &str) -> Option<i64> {
    let (stamp, zone) = text.split_once(' ')?;
    let mut pieces = stamp.splitn(3, '/');
    let day = pieces.next().filter(|d| d.len() == 2)?;
    let month_name = pieces.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)? + 1;
    let (year, clock) = pieces.next()?.split_once(':')?;
    let (sign, zone) = (zone.get(..1)?, zone.get(1..)?);
    if zone.len() != 4 || !zone.bytes().all(|b| b.is_ascii_digit()) || !matches!(sign, "+" | "-") {
        return None;
    }
    let rfc3339 = format!(
        "{year}-{month:02}-{day}T{clock}{sign}{}:{}",
        &zone[..2],
        &zone[2..]
    );
    crate::ingest::parse_rfc3339_ms(&rfc3339).ok()
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::parse::LineParser;

    fn parser(format: &str, tenant: &str, latency: &str, unit: LatencyUnit) -> LineParser {
        let fields =
            crate::agent::parse::field_map([tenant, "request", "status", latency, "time_local"]);
        LineParser::nginx(LogFormat::compile(format).unwrap(), fields, unit)
    }

    fn ok(tenant: &str, endpoint: &str, status: i64, latency: f64, ts: i64) -> Parsed {
        Parsed::Event(OutEvent {
            tenant_id: tenant.into(),
            endpoint: endpoint.into(),
            status_code: status,
            latency_ms: latency,
            timestamp: ts.into(),
            dims: Default::default(),
        })
    }

    #[test]
    fn combined_with_appended_fields_table() {
        let format = format!("{COMBINED} $request_time \"$http_x_tenant_id\"");
        let p = parser(&format, "http_x_tenant_id", "request_time", LatencyUnit::S);
        // 10/Oct/2023:13:55:36 +0000 = 1696946136 s
        let ts = 1_696_946_136_000;
        let malformed = Parsed::Malformed;
        let cases = [
            (
                r#"127.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET /v1/users/42?x=1 HTTP/1.1" 503 12 "-" "curl/8.0" 0.125 "acme""#,
                ok("acme", "/v1/users/42?x=1", 503, 125.0, ts),
            ),
            // the timezone moves the instant
            (
                r#"::1 - bob [10/Oct/2023:15:55:36 +0200] "POST /p HTTP/2.0" 200 0 "https://r/" "UA" 0.000 "beta""#,
                ok("beta", "/p", 200, 0.0, ts),
            ),
            // nginx escapes `"` as \x22 and non-ASCII bytes as \xHH; a space inside quotes is text
            (
                r#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET /a HTTP/1.1" 200 5 "-" "Mozilla \x22quoted\x22 5.0" 1.5 "t\xC3\xA9nant one""#,
                ok("ténant one", "/a", 200, 1500.0, ts),
            ),
            // Apache-style \" escapes do not end the field
            (
                r#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET /b HTTP/1.1" 404 5 "-" "say \"hi\" " 0.01 "acme""#,
                ok("acme", "/b", 404, 10.0, ts),
            ),
            // garbage request line (TLS on the plain port): endpoint kept as is
            (
                r#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "\x16\x03\x01" 400 150 "-" "-" 0.001 "acme""#,
                ok("acme", "\u{16}\u{3}\u{1}", 400, 1.0, ts),
            ),
            (
                r#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET /healthz HTTP/1.1" 200 2 "-" "kube-probe" 0.000 "-""#,
                Parsed::NoTenant,
            ),
            (
                r#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 2 "-" "-" - "acme""#,
                malformed(LineError::LatencyNotNumber { text: "-".into() }),
            ),
            (
                r#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" OK 2 "-" "-" 0.1 "acme""#,
                malformed(LineError::StatusNotNumber {
                    text: "OK".into(),
                    source: None,
                }),
            ),
            (
                r#"1.2.3.4 - - [yesterday] "GET / HTTP/1.1" 200 2 "-" "-" 0.1 "acme""#,
                malformed(LineError::TimeLocal {
                    text: "yesterday".into(),
                }),
            ),
            (
                r#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1"#,
                malformed(LineError::NoFormatMatch),
            ),
            (
                r#"{"tenant_id":"acme"}"#,
                malformed(LineError::NoFormatMatch),
            ),
            ("", malformed(LineError::NoFormatMatch)),
        ];
        for (line, expected) in cases {
            assert_eq!(p.parse(line, 0), expected, "{line}");
        }
    }

    /// A backslash before a multi-byte character (a raw `é`, or the U+FFFD that an invalid
    /// byte becomes when the agent reads the line) used to make the field search slice inside
    /// that character and panic: the agent aborted and crash-looped on the same line.
    #[test]
    fn backslash_before_a_multibyte_character_is_text() {
        let format = format!("{COMBINED} $request_time \"$http_x_tenant_id\"");
        let p = parser(&format, "http_x_tenant_id", "request_time", LatencyUnit::S);
        let ts = 1_696_946_136_000;
        let line = |agent: &str, tenant: &str| {
            format!(
                r#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET /a HTTP/1.1" 200 5 "-" "{agent}" 0.5 "{tenant}""#
            )
        };
        let cases = [
            (line("ua \\é", "acme"), ok("acme", "/a", 200, 500.0, ts)),
            (line("\\é", "t\\é"), ok("t\\é", "/a", 200, 500.0, ts)),
            (
                line("ua \\\u{FFFD}", "acme"),
                ok("acme", "/a", 200, 500.0, ts),
            ),
            (
                line("-", "\\\u{FFFD}x"),
                ok("\\\u{FFFD}x", "/a", 200, 500.0, ts),
            ),
            // an escape at the very end of a field that never closes
            (
                r#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET /a HTTP/1.1" 200 5 "-" "ua \"#
                    .to_string(),
                Parsed::Malformed(LineError::NoFormatMatch),
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(p.parse(&line, 0), expected, "{line}");
        }
        // the same through the lossy decoding the agent applies to an invalid byte
        let raw = line("ua \\", "acme").into_bytes();
        let mut bytes = raw.clone();
        let at = raw.windows(2).position(|w| w == b"\\\"").unwrap() + 1;
        bytes.insert(at, 0xFF);
        let decoded = String::from_utf8_lossy(&bytes);
        assert!(
            matches!(p.parse(&decoded, 0), Parsed::Event(_)),
            "{decoded}"
        );
    }

    #[test]
    fn upstream_times_are_summed_and_tenant_may_be_last_unquoted() {
        // several upstreams make the value contain spaces: it must be quoted in the format
        let format = "$remote_addr [$time_local] \"$request\" $status \"$upstream_response_time\" ${http_x_tenant_id}";
        let p = parser(
            format,
            "http_x_tenant_id",
            "upstream_response_time",
            LatencyUnit::S,
        );
        let line = r#"10.0.0.1 [01/Jan/1970:00:00:01 +0000] "GET /x HTTP/1.1" 502 "0.125, 0.250 : 0.0625" tenant with spaces"#;
        assert_eq!(
            p.parse(line, 0),
            ok("tenant with spaces", "/x", 502, 437.5, 1000)
        );
    }

    #[test]
    fn format_compile_errors() {
        let cases = [
            ("$a$b", "variables $a and $b are not separated"),
            ("[$ ]", "`$` without a variable name at byte 1"),
            ("${a", "`${` without a closing `}`"),
        ];
        for (format, expected) in cases {
            let err = LogFormat::compile(format).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{format}: {err}");
        }
        assert!(LogFormat::compile(COMBINED).unwrap().has("http_user_agent"));
    }

    #[test]
    fn time_local_table() {
        let cases = [
            ("01/Jan/1970:00:00:00 +0000", Some(0)),
            (
                "29/Feb/2024:23:59:59 -0130",
                Some(1_709_251_199_000 + 5_400_000),
            ),
            ("10/Oct/2000:13:55:36 -0700", Some(971_211_336_000)),
            ("10/Foo/2000:13:55:36 -0700", None),
            ("10/Oct/2000:13:55:36", None),
            ("32/Oct/2000:13:55:36 +0000", None),
            // found by fuzzing (agent_nginx): a zone of four bytes but not four digits was cut
            // inside its multi-byte character
            ("10/Oct/2000:13:55:36 +\u{FFFD}0", None),
            ("10/Oct/2000:13:55:36 -0é0", None),
            ("10/Oct/2000:13:55:36 +é00", None),
            ("10/Oct/2000:13:55:36 +1:00", None),
        ];
        for (text, expected) in cases {
            assert_eq!(time_local_ms(text), expected, "{text}");
        }
    }

    /// Dimensions come from their variables, unescaped; `-` (nginx's empty), empty values and
    /// what sentineld would refuse are left out, and the event is kept.
    #[test]
    fn nginx_dims_table() {
        let format =
            format!("{COMBINED} $request_time \"$http_x_tenant_id\" $geo \"$http_x_plan\"");
        let mut p = parser(&format, "http_x_tenant_id", "request_time", LatencyUnit::S);
        if let LineParser::Nginx { fields, .. } = &mut p {
            fields.dims = vec![
                ("plan".into(), "http_x_plan".into()),
                ("region".into(), "geo".into()),
            ];
        }
        let too_long = "x".repeat(129);
        /// ($geo, $http_x_plan, the dims expected)
        type Case<'a> = (String, &'a str, Vec<(&'a str, &'a str)>);
        let cases: Vec<Case> = vec![
            (
                "eu-west".into(),
                "pro",
                vec![("plan", "pro"), ("region", "eu-west")],
            ),
            ("-".into(), "-", vec![]),
            ("us-east".into(), "", vec![("region", "us-east")]),
            // nginx's \xHH escapes are undone; a control character is left out
            (
                "eu\\x2Dwest".into(),
                "p\\x07ro",
                vec![("region", "eu-west")],
            ),
            (
                "ap".into(),
                "t\\xC3\\xA9am plan",
                vec![("plan", "téam plan"), ("region", "ap")],
            ),
            (too_long, "free", vec![("plan", "free")]),
        ];
        for (geo, plan, expected) in cases {
            let line = format!(
                r#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET /a HTTP/1.1" 503 5 "-" "ua" 0.5 "acme" {geo} "{plan}""#
            );
            let Parsed::Event(event) = p.parse(&line, 0) else {
                panic!("{line}: not an event");
            };
            assert_eq!(
                event.dims,
                crate::agent::parse::dims_map(&expected),
                "{line}"
            );
            assert_eq!(event.status_code, 503, "{line}");
        }
    }
}
