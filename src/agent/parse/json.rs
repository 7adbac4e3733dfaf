//! JSON-lines access logs: one object per line, top-level field names from the config.

use serde_json::{Map, Value};

use super::{
    excerpt, latency_from_text, status_from_text, FieldMap, LatencyUnit, LineError, OutEvent,
    Parsed,
};

pub(super) fn parse(line: &str, fields: &FieldMap, unit: LatencyUnit, now_ms: u64) -> Parsed {
    let object: Map<String, Value> = match serde_json::from_str(line) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Parsed::Malformed(LineError::NotAnObject),
        Err(err) => return Parsed::Malformed(LineError::NotJson(err)),
    };
    match event(&object, fields, unit, now_ms) {
        Ok(Some(event)) => Parsed::Event(event),
        Ok(None) => Parsed::NoTenant,
        Err(message) => Parsed::Malformed(message),
    }
}

fn event(
    object: &Map<String, Value>,
    fields: &FieldMap,
    unit: LatencyUnit,
    now_ms: u64,
) -> Result<Option<OutEvent>, LineError> {
    let tenant_id = match object.get(&fields.tenant_id) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) if text.is_empty() => return Ok(None),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        Some(other) => {
            return Err(LineError::NotAString {
                field: fields.tenant_id.clone(),
                value: other.clone(),
            })
        }
    };
    let endpoint = match required(object, &fields.endpoint)? {
        Value::String(text) => text.clone(),
        other => {
            return Err(LineError::NotAString {
                field: fields.endpoint.clone(),
                value: other.clone(),
            })
        }
    };
    let status_code = match required(object, &fields.status_code)? {
        Value::Number(number) => number.as_i64().ok_or_else(|| LineError::StatusNotInteger {
            number: number.clone(),
        })?,
        Value::String(text) => status_from_text(text)?,
        other => {
            return Err(LineError::StatusNotNumber {
                text: excerpt(&other.to_string()),
                source: None,
            })
        }
    };
    let latency_ms = match required(object, &fields.latency_ms)? {
        Value::Number(number) => unit.to_ms(number.as_f64().unwrap_or(f64::NAN)),
        Value::String(text) => latency_from_text(text, unit)?,
        other => {
            return Err(LineError::LatencyNotNumber {
                text: excerpt(&other.to_string()),
            })
        }
    };
    let timestamp = match object.get(&fields.timestamp) {
        Some(value @ (Value::String(_) | Value::Number(_))) => value.clone(),
        _ => Value::from(now_ms),
    };
    let dims = fields.dims_of(|source| match object.get(source)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    });
    Ok(Some(OutEvent {
        tenant_id,
        endpoint,
        status_code,
        latency_ms,
        timestamp,
        dims,
    }))
}

fn required<'a>(object: &'a Map<String, Value>, key: &str) -> Result<&'a Value, LineError> {
    object
        .get(key)
        .filter(|v| !v.is_null())
        .ok_or_else(|| LineError::NoField(key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::parse::LineParser;

    use crate::agent::parse::field_map as fields;

    fn event(tenant: &str, endpoint: &str, status: i64, latency: f64, ts: Value) -> Parsed {
        Parsed::Event(OutEvent {
            tenant_id: tenant.into(),
            endpoint: endpoint.into(),
            status_code: status,
            latency_ms: latency,
            timestamp: ts,
            dims: Default::default(),
        })
    }

    #[test]
    fn json_lines_table() {
        let canonical = LineParser::json(
            fields([
                "tenant_id",
                "endpoint",
                "status_code",
                "latency_ms",
                "timestamp",
            ]),
            LatencyUnit::Ms,
        );
        let custom = LineParser::json(
            fields(["org", "path", "status", "duration", "ts"]),
            LatencyUnit::S,
        );
        let now = 1_700_000_000_000u64;
        // a dropped line is compared by its reason's text, as the agent's warning shows it
        let malformed = |m: &str| format!("dropped: {m}");
        let shown = |parsed: Parsed| match parsed {
            Parsed::Malformed(reason) => format!("dropped: {reason}"),
            other => format!("{other:?}"),
        };
        let event = |t, e, s, l, ts| shown(event(t, e, s, l, ts));
        let cases: Vec<(&LineParser, &str, String)> = vec![
            (&canonical, r#"{"tenant_id":"acme","endpoint":"/v1/x","status_code":503,"latency_ms":12.5,"timestamp":"2024-01-01T00:00:00Z"}"#,
                event("acme", "/v1/x", 503, 12.5, "2024-01-01T00:00:00Z".into())),
            (&canonical, r#"{"tenant_id":"acme","endpoint":"/","status_code":200,"latency_ms":3}"#,
                event("acme", "/", 200, 3.0, now.into())),
            (&canonical, "{\"tenant_id\":\"acme\",\"endpoint\":\"/\",\"status_code\":200,\"latency_ms\":3,\"timestamp\":1700000000123}\r",
                event("acme", "/", 200, 3.0, 1_700_000_000_123u64.into())),
            (&custom, r#"{"org":42,"path":"/p","status":"404","duration":"0.250","ts":"2024-05-05T10:00:00+02:00","extra":[1]}"#,
                event("42", "/p", 404, 250.0, "2024-05-05T10:00:00+02:00".into())),
            (&custom, r#"{"path":"/healthz","status":200,"duration":0.001}"#, shown(Parsed::NoTenant)),
            (&custom, r#"{"org":"","path":"/healthz","status":200,"duration":0.001}"#, shown(Parsed::NoTenant)),
            (&canonical, r#"{"tenant_id":"a","endpoint":"/","latency_ms":1}"#, malformed("no `status_code` field")),
            (&canonical, r#"{"tenant_id":"a","endpoint":"/","status_code":"OK","latency_ms":1}"#, malformed("status `OK` is not a number")),
            (&canonical, r#"{"tenant_id":"a","endpoint":"/","status_code":200.5,"latency_ms":1}"#, malformed("status `200.5` is not an integer")),
            (&canonical, r#"{"tenant_id":"a","endpoint":"/","status_code":200,"latency_ms":"-"}"#, malformed("latency `-` is not a number")),
            (&canonical, r#"{"tenant_id":["a"],"endpoint":"/","status_code":200,"latency_ms":1}"#, malformed("`tenant_id` is not a string: [\"a\"]")),
            (&canonical, r#"["not", "an", "object"]"#, malformed("not a JSON object")),
        ];
        for (parser, line, expected) in cases {
            assert_eq!(shown(parser.parse(line, now)), expected, "{line}");
        }
        for line in ["", "{\"tenant_id\":", "nginx line", "{\"a\":1}}"] {
            assert!(
                matches!(
                    canonical.parse(line, now),
                    Parsed::Malformed(LineError::NotJson(_))
                ),
                "{line:?}"
            );
        }
    }

    /// Dimensions are optional: a value that is missing, not text-like, or that sentineld would
    /// refuse leaves that dimension out and keeps the event.
    #[test]
    fn json_dims_table() {
        let mut map = fields([
            "tenant_id",
            "endpoint",
            "status_code",
            "latency_ms",
            "timestamp",
        ]);
        map.dims = vec![
            ("plan".into(), "plan".into()),
            ("region".into(), "geo".into()),
            ("version".into(), "v".into()),
        ];
        let parser = LineParser::json(map, LatencyUnit::Ms);
        let longest = "é".repeat(64);
        let too_long = "é".repeat(65);
        let cases: Vec<(String, Vec<(&str, &str)>)> = vec![
            (
                r#""plan":"pro","geo":"eu-west","v":"2.3.1""#.into(),
                vec![("plan", "pro"), ("region", "eu-west"), ("version", "2.3.1")],
            ),
            // numbers and booleans as their JSON text
            (
                r#""plan":true,"geo":42,"v":2.5"#.into(),
                vec![("plan", "true"), ("region", "42"), ("version", "2.5")],
            ),
            // missing, null and empty values are left out
            (r#""plan":null,"geo":"""#.into(), vec![]),
            (String::new(), vec![]),
            // objects and arrays are left out, the others kept
            (
                r#""plan":{"a":1},"geo":["eu"],"v":"1""#.into(),
                vec![("version", "1")],
            ),
            // what sentineld would refuse: more than 128 bytes, control characters
            (
                format!(r#""plan":"{too_long}","geo":"eu\u0007west","v":"a\nb""#),
                vec![],
            ),
            (
                format!(r#""plan":"{longest}","geo":"eu west""#),
                vec![("plan", longest.as_str()), ("region", "eu west")],
            ),
            // unmapped keys are not dimensions
            (r#""region":"eu-west","dims":{"plan":"x"}"#.into(), vec![]),
        ];
        for (extra, expected) in cases {
            let sep = if extra.is_empty() { "" } else { "," };
            let line = format!(
                r#"{{"tenant_id":"a","endpoint":"/","status_code":200,"latency_ms":1{sep}{extra}}}"#
            );
            let Parsed::Event(event) = parser.parse(&line, 7) else {
                panic!("{line}: not an event");
            };
            assert_eq!(
                event.dims,
                crate::agent::parse::dims_map(&expected),
                "{line}"
            );
        }
    }
}
