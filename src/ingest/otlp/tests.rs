//! The mapping, table-driven: one span (with its resource) in, an event or a refusal out; then a
//! whole request's counts and its partial-success message, and the JSON mapping through serde.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, ScopeSpans, Span};

use super::*;

const NOW_MS: i64 = 1_800_000_000_000;
const MS: u64 = 1_000_000;

fn limits() -> TimeLimits {
    TimeLimits {
        now_ms: NOW_MS,
        max_age: Duration::from_secs(600),
        max_skew: Duration::from_secs(300),
    }
}

fn keys() -> Vec<String> {
    DEFAULT_TENANT_ATTRIBUTES.map(String::from).to_vec()
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, text: &str) -> KeyValue {
    kv(key, Value::StringValue(text.to_string()))
}

fn i(key: &str, n: i64) -> KeyValue {
    kv(key, Value::IntValue(n))
}

/// A server span that ended 1 s before now after 25 ms, with `attributes`.
fn span(kind: SpanKind, attributes: Vec<KeyValue>) -> Span {
    let end = (NOW_MS as u64 - 1000) * MS;
    Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "GET /orders/{id}".into(),
        kind: kind as i32,
        start_time_unix_nano: end - 25 * MS,
        end_time_unix_nano: end,
        attributes,
        ..Default::default()
    }
}

fn request(resource: Vec<KeyValue>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn event(tenant: &str, endpoint: &str, status: u16) -> TenantEvent {
    TenantEvent {
        tenant_id: tenant.into(),
        endpoint: endpoint.into(),
        status_code: status,
        latency_ms: 25.0,
        timestamp_ms: NOW_MS - 1000,
    }
}

/// One span each: what it becomes. Nothing is guessed: a missing tenant, route or status refuses
/// the span; a client or internal span is ignored.
#[test]
fn span_table() {
    use SpanKind::{Client, Internal, Server};
    let route = || s("http.route", "/orders/{id}");
    let status = |code| i("http.response.status_code", code);
    let tenant = |t| s("tenant.id", t);
    type Case = (
        &'static str,
        Vec<KeyValue>,
        Span,
        Result<Option<TenantEvent>, SpanRejection>,
    );
    let cases: Vec<Case> = vec![
        (
            "server span, stable conventions",
            vec![],
            span(Server, vec![tenant("acme"), route(), status(200)]),
            Ok(Some(event("acme", "/orders/{id}", 200))),
        ),
        (
            "older http.status_code",
            vec![],
            span(
                Server,
                vec![tenant("acme"), route(), i("http.status_code", 503)],
            ),
            Ok(Some(event("acme", "/orders/{id}", 503))),
        ),
        (
            "status written as a string",
            vec![],
            span(
                Server,
                vec![tenant("acme"), route(), s("http.status_code", "404")],
            ),
            Ok(Some(event("acme", "/orders/{id}", 404))),
        ),
        (
            "stable status wins over the older one",
            vec![],
            span(
                Server,
                vec![
                    tenant("acme"),
                    route(),
                    i("http.status_code", 200),
                    status(500),
                ],
            ),
            Ok(Some(event("acme", "/orders/{id}", 500))),
        ),
        (
            "no route: url.path normalized",
            vec![],
            span(
                Server,
                vec![tenant("acme"), s("url.path", "/orders/8121"), status(200)],
            ),
            Ok(Some(event("acme", "/orders/:id", 200))),
        ),
        (
            "no route: http.target without its query",
            vec![],
            span(
                Server,
                vec![
                    tenant("acme"),
                    s("http.target", "/users/42/cart?page=2"),
                    status(200),
                ],
            ),
            Ok(Some(event("acme", "/users/:id/cart", 200))),
        ),
        (
            "an internal span with a route is a server span",
            vec![],
            span(Internal, vec![tenant("acme"), route(), status(201)]),
            Ok(Some(event("acme", "/orders/{id}", 201))),
        ),
        (
            "tenant from enduser.id",
            vec![],
            span(Server, vec![s("enduser.id", "u-7"), route(), status(200)]),
            Ok(Some(event("u-7", "/orders/{id}", 200))),
        ),
        (
            "tenant.id before enduser.id",
            vec![],
            span(
                Server,
                vec![s("enduser.id", "u-7"), tenant("acme"), route(), status(200)],
            ),
            Ok(Some(event("acme", "/orders/{id}", 200))),
        ),
        (
            "tenant from the resource",
            vec![s("tenant.id", "globex")],
            span(Server, vec![route(), status(200)]),
            Ok(Some(event("globex", "/orders/{id}", 200))),
        ),
        (
            "span attribute before the resource",
            vec![s("tenant.id", "globex")],
            span(Server, vec![s("enduser.id", "u-7"), route(), status(200)]),
            Ok(Some(event("u-7", "/orders/{id}", 200))),
        ),
        (
            "integer tenant",
            vec![],
            span(Server, vec![i("tenant.id", 42), route(), status(200)]),
            Ok(Some(event("42", "/orders/{id}", 200))),
        ),
        (
            "client span ignored",
            vec![],
            span(
                Client,
                vec![tenant("acme"), s("url.path", "/x"), status(200)],
            ),
            Ok(None),
        ),
        (
            "internal span without a route ignored",
            vec![],
            span(Internal, vec![tenant("acme")]),
            Ok(None),
        ),
        (
            "no tenant anywhere",
            vec![s("service.name", "shop")],
            span(Server, vec![route(), status(200)]),
            Err(SpanRejection::NoTenant),
        ),
        (
            "empty tenant",
            vec![],
            span(Server, vec![tenant(""), route(), status(200)]),
            Err(SpanRejection::BadTenant),
        ),
        (
            "tenant too long",
            vec![],
            span(Server, vec![tenant(&"t".repeat(129)), route(), status(200)]),
            Err(SpanRejection::BadTenant),
        ),
        (
            "tenant with a newline",
            vec![],
            span(Server, vec![tenant("a\nb"), route(), status(200)]),
            Err(SpanRejection::BadTenant),
        ),
        (
            "boolean tenant",
            vec![],
            span(
                Server,
                vec![
                    kv("tenant.id", Value::BoolValue(true)),
                    route(),
                    status(200),
                ],
            ),
            Err(SpanRejection::BadTenant),
        ),
        (
            "no endpoint",
            vec![],
            span(Server, vec![tenant("acme"), status(200)]),
            Err(SpanRejection::NoEndpoint),
        ),
        (
            "endpoint with a control character",
            vec![],
            span(
                Server,
                vec![tenant("acme"), s("http.route", "/a\u{7}b"), status(200)],
            ),
            Err(SpanRejection::BadEndpoint),
        ),
        (
            "no status (a gRPC server span)",
            vec![],
            span(Server, vec![tenant("acme"), route()]),
            Err(SpanRejection::NoStatus),
        ),
        (
            "status out of range",
            vec![],
            span(Server, vec![tenant("acme"), route(), status(700)]),
            Err(SpanRejection::BadStatus),
        ),
        (
            "status not a number",
            vec![],
            span(
                Server,
                vec![tenant("acme"), route(), s("http.status_code", "ok")],
            ),
            Err(SpanRejection::BadStatus),
        ),
        (
            "no end time",
            vec![],
            Span {
                end_time_unix_nano: 0,
                ..span(Server, vec![tenant("acme"), route(), status(200)])
            },
            Err(SpanRejection::BadTiming),
        ),
        (
            "ends before it starts",
            vec![],
            {
                let mut span = span(Server, vec![tenant("acme"), route(), status(200)]);
                span.start_time_unix_nano = span.end_time_unix_nano + 1;
                span
            },
            Err(SpanRejection::BadTiming),
        ),
        (
            "ended an hour ago",
            vec![],
            {
                let mut span = span(Server, vec![tenant("acme"), route(), status(200)]);
                span.end_time_unix_nano -= 3600 * 1000 * MS;
                span.start_time_unix_nano -= 3600 * 1000 * MS;
                span
            },
            Err(SpanRejection::TooOld),
        ),
        (
            "ends an hour ahead",
            vec![],
            {
                let mut span = span(Server, vec![tenant("acme"), route(), status(200)]);
                span.end_time_unix_nano += 3600 * 1000 * MS;
                span
            },
            Err(SpanRejection::InFuture),
        ),
        (
            "ends past i64 milliseconds",
            vec![],
            Span {
                end_time_unix_nano: u64::MAX,
                ..span(Server, vec![tenant("acme"), route(), status(200)])
            },
            Err(SpanRejection::InFuture),
        ),
    ];
    for (name, resource, span, want) in cases {
        let mapped = map_request(&request(resource, vec![span]), &keys(), limits());
        let got = match (
            mapped.events.as_slice(),
            mapped.ignored,
            mapped.rejected.iter().next(),
        ) {
            ([event], 0, None) => Ok(Some(event.clone())),
            ([], 1, None) => Ok(None),
            ([], 0, Some((reason, 1))) => Err(reason),
            other => panic!("{name}: unexpected outcome {other:?}"),
        };
        assert_eq!(got, want, "{name}");
    }
}

/// Latency is end minus start at sub-millisecond precision; the time is the end's.
#[test]
fn latency_and_time_come_from_the_span() {
    let mut span = span(
        SpanKind::Server,
        vec![
            s("tenant.id", "acme"),
            s("http.route", "/"),
            i("http.status_code", 200),
        ],
    );
    span.start_time_unix_nano = span.end_time_unix_nano - 1_234_567;
    let mapped = map_request(&request(vec![], vec![span]), &keys(), limits());
    assert_eq!(mapped.events[0].latency_ms, 1.234567);
    assert_eq!(mapped.events[0].timestamp_ms, NOW_MS - 1000);
}

/// Configured keys replace the defaults, in their order.
#[test]
fn configured_tenant_keys() {
    let spans = vec![span(
        SpanKind::Server,
        vec![
            s("tenant.id", "acme"),
            s("app.customer", "c-9"),
            s("http.route", "/"),
            i("http.status_code", 200),
        ],
    )];
    let keys = vec!["app.customer".to_string()];
    let mapped = map_request(&request(vec![], spans), &keys, limits());
    assert_eq!(mapped.events[0].tenant_id, "c-9");
}

/// A request's counts and the message a partial success carries.
#[test]
fn partial_success_message_counts_each_reason() {
    let ok = span(
        SpanKind::Server,
        vec![
            s("tenant.id", "acme"),
            s("http.route", "/"),
            i("http.status_code", 200),
        ],
    );
    let no_tenant = span(
        SpanKind::Server,
        vec![s("http.route", "/"), i("http.status_code", 200)],
    );
    let no_status = span(
        SpanKind::Server,
        vec![s("tenant.id", "acme"), s("http.route", "/")],
    );
    let internal = span(SpanKind::Internal, vec![]);
    let spans = vec![
        ok.clone(),
        no_tenant.clone(),
        no_tenant,
        no_status,
        internal,
        ok,
    ];
    let mapped = map_request(&request(vec![], spans), &keys(), limits());
    assert_eq!(mapped.events.len(), 2);
    assert_eq!(mapped.ignored, 1);
    assert_eq!(mapped.rejected.total(), 3);
    assert_eq!(mapped.rejected.get(SpanRejection::NoTenant), 2);
    assert_eq!(
        mapped.message(&keys()).as_deref(),
        Some(
            "3 of 5 server spans were not used: 2 had no tenant attribute (looked for tenant.id, \
             enduser.id on the span, then on its resource); 1 had no http.response.status_code \
             or http.status_code"
        )
    );
    let all_good = map_request(&request(vec![], vec![]), &keys(), limits());
    assert_eq!(all_good.message(&keys()), None);
}

/// OTLP's JSON mapping (hex ids, lowerCamelCase, int64 as strings, enums as integers) decodes
/// to the same request as protobuf would carry.
#[test]
fn json_mapping_decodes() {
    let end = (NOW_MS as u64 - 1000) * MS;
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"tenant.id","value":{{"stringValue":"globex"}}}}]}},
        "scopeSpans":[{{"scope":{{"name":"x"}},"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c",
        "spanId":"eee19b7ec3c1b174","name":"GET /","kind":2,"startTimeUnixNano":"{}","endTimeUnixNano":"{end}",
        "attributes":[{{"key":"http.route","value":{{"stringValue":"/pay"}}}},
        {{"key":"http.response.status_code","value":{{"intValue":"502"}}}}]}}]}}]}}]}}"#,
        end - 25 * MS
    );
    let request: ExportTraceServiceRequest = serde_json::from_str(&body).unwrap();
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.trace_id[..2], [0x5b, 0x8e]);
    let mapped = map_request(&request, &keys(), limits());
    assert_eq!(mapped.events, vec![event("globex", "/pay", 502)]);
}

/// Configured dimensions come from the span's attribute of that name, else the resource's;
/// strings, integers, booleans and doubles read as text; unusable values are left out and never
/// refuse the span; keys not configured are not read.
#[test]
fn dimensions_are_read_from_span_then_resource_attributes() {
    let dimensions: Vec<String> = ["region", "version", "build", "canary", "host", "empty"]
        .map(String::from)
        .to_vec();
    let base = || {
        vec![
            s("http.route", "/pay"),
            i("http.response.status_code", 200),
            s("tenant.id", "acme"),
        ]
    };
    let mut attributes = base();
    attributes.extend([
        s("region", "eu-west"),
        i("build", 42),
        kv("canary", Value::BoolValue(true)),
        s("host", &"h".repeat(200)),
        s("empty", ""),
        s("plan", "free"),
    ]);
    let resource = vec![s("version", "2.3.1"), s("region", "resource-loses")];
    let body = request(resource, vec![span(SpanKind::Server, attributes)]);
    let mapped = map_request_with_dimensions(&body, &keys(), &dimensions, limits());
    assert_eq!(mapped.events.len(), 1, "{mapped:?}");
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        mapped.dims,
        [pairs(&[
            ("region", "eu-west"),
            ("version", "2.3.1"),
            ("build", "42"),
            ("canary", "true"),
        ])]
    );
    // Without configured dimensions nothing is read, and the events are the same.
    let plain = map_request(&body, &keys(), limits());
    assert_eq!(plain.events, mapped.events);
    assert_eq!(plain.dims, [Vec::<(String, String)>::new()]);
}
