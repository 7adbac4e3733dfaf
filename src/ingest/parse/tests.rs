use super::*;

const NOW: i64 = 1_700_000_000_000;

fn limits() -> TimeLimits {
    TimeLimits {
        now_ms: NOW,
        max_age: Duration::from_secs(600),
        max_skew: Duration::from_secs(300),
    }
}

const GOOD: &str =
    r#"{"tenant_id":"acme","endpoint":"/v1/process","status_code":503,"latency_ms":12.5}"#;

/// (body, hard newlines, accepted tenant ids, rejections as "index: error fragment")
#[test]
fn bodies_are_split_and_judged_event_by_event() {
    let cases: Vec<(String, bool, Vec<&str>, Vec<&str>)> = vec![
        (GOOD.into(), false, vec!["acme"], vec![]),
        (format!("[{GOOD}, {GOOD}]"), false, vec!["acme", "acme"], vec![]),
        (" \n[ ]\n".to_string(), false, vec![], vec![]),
        (format!("{GOOD}\n{GOOD}\n\n{GOOD}\n"), true, vec!["acme"; 3], vec![]),
        (format!("{GOOD}{GOOD}"), false, vec!["acme"; 2], vec![]),
        // Pretty-printed single object without the NDJSON promise.
        (
            "{\n  \"tenant_id\": \"pretty\",\n  \"endpoint\": \"/\",\n  \"status_code\": 200,\n  \"latency_ms\": 1\n}\n".into(),
            false,
            vec!["pretty"],
            vec![],
        ),
        // A bad line in the middle costs only itself.
        (
            format!("{GOOD}\n{{\"tenant_id\":\"x\",\"latency_ms\":NaN}}\n{GOOD}\n"),
            true,
            vec!["acme", "acme"],
            vec!["1: invalid JSON"],
        ),
        (
            format!("[{GOOD}, {{\"tenant_id\":\"b\",\"endpoint\":\"/\",\"status_code\":700,\"latency_ms\":1}}, {GOOD}]"),
            false,
            vec!["acme", "acme"],
            vec!["1: status_code 700 is outside 100-599"],
        ),
        (
            format!("[{GOOD}, 42, \"text\", null, {GOOD}]"),
            false,
            vec!["acme", "acme"],
            vec!["1: invalid type", "2: invalid type", "3: invalid type"],
        ),
        (
            format!("{GOOD}\n{{\"tenant_id\": \"x\"\n{GOOD}\n"),
            true,
            vec!["acme", "acme"],
            vec!["1: invalid JSON"],
        ),
        // Brackets inside strings do not confuse the splitter.
        (
            r#"[{"tenant_id":"a]}[{","endpoint":"/\"]","status_code":200,"latency_ms":1}]"#.into(),
            false,
            vec!["a]}[{"],
            vec![],
        ),
        ("}\n".to_string() + GOOD, false, vec!["acme"], vec!["0: invalid JSON"]),
    ];
    for (body, hard, accepted, rejected) in cases {
        let (events, rejections) =
            parse_body(body.as_bytes(), hard, limits()).unwrap_or_else(|e| panic!("{body:?}: {e}"));
        let ids: Vec<&str> = events.iter().map(|e| e.tenant_id.as_ref()).collect();
        assert_eq!(ids, accepted, "{body:?}");
        assert_eq!(rejections.len(), rejected.len(), "{body:?}: {rejections:?}");
        for (got, want) in rejections.iter().zip(rejected) {
            let (index, fragment) = want.split_once(": ").unwrap();
            assert_eq!(got.index.to_string(), index, "{body:?}: {got:?}");
            assert!(
                got.error.to_string().contains(fragment),
                "{body:?}: {got:?} lacks {fragment}"
            );
        }
    }
}

#[test]
fn whole_body_errors() {
    let cases = [
        ("", BodyError::Empty),
        ("  \n ", BodyError::Empty),
        ("[{\"a\":1}", BodyError::UnterminatedArray),
        ("[{\"a\":1]", BodyError::MalformedArray(7)),
        ("[\"abc]", BodyError::MalformedArray(5)),
    ];
    for (body, want) in cases {
        assert_eq!(
            parse_body(body.as_bytes(), false, limits()).unwrap_err(),
            want,
            "{body:?}"
        );
    }
}

#[test]
fn each_field_is_checked() {
    let long = "x".repeat(129);
    let endpoint_long = format!("/{}", "y".repeat(256));
    let event = |fields: &str| format!("{{{fields}}}");
    let base = r#""tenant_id":"t","endpoint":"/e","status_code":200,"latency_ms":1"#;
    // (fields, expected error fragment; None = valid)
    let cases: Vec<(String, Option<&str>)> = vec![
        (base.into(), None),
        (
            r#""endpoint":"/e","status_code":200,"latency_ms":1"#.into(),
            Some("missing tenant_id"),
        ),
        (
            r#""tenant_id":"","endpoint":"/e","status_code":200,"latency_ms":1"#.into(),
            Some("tenant_id must be 1-128 bytes (got 0)"),
        ),
        (
            format!(r#""tenant_id":"{long}","endpoint":"/e","status_code":200,"latency_ms":1"#),
            Some("tenant_id must be 1-128 bytes (got 129)"),
        ),
        (
            r#""tenant_id":"a\nb","endpoint":"/e","status_code":200,"latency_ms":1"#.into(),
            Some("control character"),
        ),
        (
            r#""tenant_id":"t","status_code":200,"latency_ms":1"#.into(),
            Some("missing endpoint"),
        ),
        (
            format!(
                r#""tenant_id":"t","endpoint":"{endpoint_long}","status_code":200,"latency_ms":1"#
            ),
            Some("endpoint must be 1-256 bytes"),
        ),
        (
            r#""tenant_id":"t","endpoint":"/e","latency_ms":1"#.into(),
            Some("missing status_code"),
        ),
        (
            r#""tenant_id":"t","endpoint":"/e","status_code":99,"latency_ms":1"#.into(),
            Some("status_code 99 is outside"),
        ),
        (
            r#""tenant_id":"t","endpoint":"/e","status_code":"500","latency_ms":1"#.into(),
            Some("invalid type: string \"500\""),
        ),
        (
            r#""tenant_id":"t","endpoint":"/e","status_code":200"#.into(),
            Some("missing latency_ms"),
        ),
        (
            r#""tenant_id":"t","endpoint":"/e","status_code":200,"latency_ms":-1"#.into(),
            Some("latency_ms -1 must be a finite number >= 0"),
        ),
        (
            r#""tenant_id":"t","endpoint":"/e","status_code":200,"latency_ms":1e999"#.into(),
            Some("number out of range"),
        ),
        (format!(r#"{base},"timestamp":{}"#, NOW - 1000), None),
        (format!(r#"{base},"timestamp":{}.0"#, NOW - 1000), None),
        (
            format!(r#"{base},"timestamp":"2023-11-14T22:13:19Z""#),
            None,
        ),
        (format!(r#"{base},"timestamp":null"#), None),
        (
            format!(r#"{base},"timestamp":{}"#, NOW - 601_000),
            Some("timestamp is 10m 1s old; events older than 10m"),
        ),
        (
            format!(r#"{base},"timestamp":{}"#, NOW + 301_000),
            Some("timestamp is 5m 1s in the future (allowed clock skew 5m)"),
        ),
        (
            format!(r#"{base},"timestamp":{}"#, NOW / 1000),
            Some("looks like epoch seconds"),
        ),
        (
            format!(r#"{base},"timestamp":"last tuesday""#),
            Some("invalid timestamp \"last tuesday\""),
        ),
        (
            format!(r#"{base},"timestamp":true"#),
            Some("invalid type: boolean"),
        ),
        (format!(r#"{base},"extra":{{"nested":[1,2]}}"#), None),
    ];
    for (fields, want) in cases {
        let body = event(&fields);
        match (parse_event(body.as_bytes(), limits()), want) {
            (Ok(_), None) => {}
            (Err(err), Some(fragment)) => {
                assert!(
                    err.to_string().contains(fragment),
                    "{body}: {err} lacks {fragment}"
                )
            }
            (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn invalid_utf8_costs_only_its_event() {
    let mut body = Vec::new();
    body.extend_from_slice(GOOD.as_bytes());
    body.extend_from_slice(
        b"\n{\"tenant_id\":\"\xff\xfe\",\"endpoint\":\"/\",\"status_code\":200,\"latency_ms\":1}\n",
    );
    body.extend_from_slice(GOOD.as_bytes());
    let (events, rejections) = parse_body(&body, true, limits()).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].index, 1);
    assert!(
        rejections[0].error.to_string().contains("invalid unicode")
            || rejections[0].error.to_string().contains("UTF-8"),
        "{:?}",
        rejections[0]
    );
}

#[test]
fn strings_borrow_from_the_body_unless_escaped() {
    let (events, _) = parse_body(GOOD.as_bytes(), false, limits()).unwrap();
    assert!(matches!(events[0].tenant_id, Cow::Borrowed(_)));
    let escaped = r#"{"tenant_id":"a\u0062c","endpoint":"/","status_code":200,"latency_ms":1}"#;
    let (events, _) = parse_body(escaped.as_bytes(), false, limits()).unwrap();
    assert_eq!(events[0].tenant_id, "abc");
    assert_eq!(events[0].timestamp_ms, NOW, "no timestamp: receive time");
}

/// A refusal is a typed `EventError` now; the ingest answer must still carry the very bytes
/// the string errors had (clients match on them), and a JSON refusal keeps serde's error.
#[test]
fn rejections_keep_their_text_and_their_cause() {
    use std::error::Error;
    let old = NOW - 3_600_000;
    let ahead = NOW + 3_600_000;
    let cases = [
        (
            r#"{"endpoint":"/","status_code":200,"latency_ms":1}"#.to_string(),
            r#"{"index":0,"error":"missing tenant_id"}"#,
        ),
        (
            r#"{"tenant_id":"a","endpoint":"/","status_code":700,"latency_ms":1}"#.into(),
            r#"{"index":0,"error":"status_code 700 is outside 100-599"}"#,
        ),
        (
            r#"{"tenant_id":"a","endpoint":"/","status_code":200,"latency_ms":-1.5}"#.into(),
            r#"{"index":0,"error":"latency_ms -1.5 must be a finite number >= 0"}"#,
        ),
        (
            r#"{"tenant_id":"a","endpoint":"/","status_code":200,"latency_ms":1,"timestamp":1700000}"#.into(),
            r#"{"index":0,"error":"timestamp 1700000 looks like epoch seconds: send epoch milliseconds or RFC 3339"}"#,
        ),
        (
            format!(r#"{{"tenant_id":"a","endpoint":"/","status_code":200,"latency_ms":1,"timestamp":{old}}}"#),
            r#"{"index":0,"error":"timestamp is 1h old; events older than 10m are not accepted"}"#,
        ),
        (
            format!(r#"{{"tenant_id":"a","endpoint":"/","status_code":200,"latency_ms":1,"timestamp":{ahead}}}"#),
            r#"{"index":0,"error":"timestamp is 1h in the future (allowed clock skew 5m)"}"#,
        ),
        (
            r#"{"tenant_id":"a","endpoint":"/","status_code":200,"latency_ms":1,"timestamp":"yesterday"}"#.into(),
            r#"{"index":0,"error":"invalid timestamp \"yesterday\": expected RFC 3339 such as 2026-11-23T10:00:00Z, or epoch milliseconds"}"#,
        ),
        (
            format!(r#"{{"tenant_id":"{}","endpoint":"/","status_code":200,"latency_ms":1}}"#, "t".repeat(129)),
            r#"{"index":0,"error":"tenant_id must be 1-128 bytes (got 129)"}"#,
        ),
        (
            r#"{"tenant_id":"a","endpoint":"/\u0007","status_code":200,"latency_ms":1}"#.into(),
            r#"{"index":0,"error":"endpoint contains a control character"}"#,
        ),
    ];
    for (body, want) in cases {
        let (events, rejections) = parse_body(body.as_bytes(), true, limits()).unwrap();
        assert!(events.is_empty(), "{body}");
        assert_eq!(
            serde_json::to_string(&rejections[0]).unwrap(),
            want,
            "{body}"
        );
    }

    let (_, rejections) = parse_body(br#"{"tenant_id":"#, true, limits()).unwrap();
    let error = &rejections[0].error;
    assert!(
        error
            .to_string()
            .starts_with("invalid JSON: EOF while parsing"),
        "{error}"
    );
    let json = error
        .source()
        .and_then(|s| s.downcast_ref::<serde_json::Error>())
        .expect("serde's error is the cause");
    assert!(json.is_eof());
}

/// `dims`: an object of string values kept in order (borrowed from the body); a non-string
/// value, a bad key or value, or too many keys refuse only that event, with the reason.
#[test]
fn dims_are_kept_or_refused_precisely() {
    let with = |dims: &str| {
        format!(
            r#"{{"tenant_id":"acme","endpoint":"/","status_code":200,"latency_ms":1,"dims":{dims}}}"#
        )
    };
    let event = with(r#"{"region":"eu-west","plan":"free"}"#);
    let parsed = parse_event(event.as_bytes(), limits()).unwrap();
    let dims: Vec<(&str, &str)> = parsed.dims.iter().map(|(n, v)| (&**n, &**v)).collect();
    assert_eq!(dims, [("region", "eu-west"), ("plan", "free")]);
    assert!(parsed
        .dims
        .iter()
        .all(|(n, v)| matches!((n, v), (Cow::Borrowed(_), Cow::Borrowed(_)))));
    assert!(parse_event(GOOD.as_bytes(), limits())
        .unwrap()
        .dims
        .is_empty());
    let many: Vec<String> = (0..33).map(|i| format!(r#""d{i}":"v""#)).collect();
    let long = "v".repeat(129);
    let cases = [
        (
            with(r#"{"region":3}"#),
            "invalid type: integer `3`, expected a string",
        ),
        (
            with(r#"["eu-west"]"#),
            "invalid type: sequence, expected an object of string values",
        ),
        (with(r#"{"":"x"}"#), "dims key \"\" must be 1-64 bytes"),
        (
            with(&format!(r#"{{"host":"{long}"}}"#)),
            "dims value of \"host\" must be 1-128 bytes",
        ),
        (
            with(r#"{"host":"a\nb"}"#),
            "dims value of \"host\" must be 1-128 bytes",
        ),
        (
            with(&format!("{{{}}}", many.join(","))),
            "dims has 33 keys; at most 32",
        ),
    ];
    for (body, fragment) in cases {
        let err = parse_event(body.as_bytes(), limits()).unwrap_err();
        assert!(err.to_string().contains(fragment), "{body}: {err}");
    }
}
