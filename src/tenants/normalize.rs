//! Endpoint normalization: ids in paths become `:id` and query strings go, so a client that sends
//! raw URLs (`/users/8121/orders?page=2`) cannot turn every request into a new endpoint.

/// Longest endpoint kept, in bytes; longer ones are cut at a character boundary.
pub const MAX_ENDPOINT_BYTES: usize = 256;

/// What an id segment becomes.
pub const ID_PLACEHOLDER: &str = ":id";

/// Hex runs at least this long are ids (hashes, object ids); shorter ones may be words ("cafe").
const MIN_HEX_ID_LEN: usize = 16;

/// Normalizes `raw`, writing into `scratch` only when something changes: the common case (an
/// already-templated route) costs no copy and no allocation.
pub fn normalize_endpoint<'a>(raw: &'a str, scratch: &'a mut String) -> &'a str {
    let path = raw.split(['?', '#']).next().unwrap_or_default();
    if path.len() <= MAX_ENDPOINT_BYTES && !path.split('/').any(is_id) {
        return path;
    }
    scratch.clear();
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            scratch.push('/');
        }
        scratch.push_str(if is_id(segment) {
            ID_PLACEHOLDER
        } else {
            segment
        });
        if scratch.len() >= MAX_ENDPOINT_BYTES {
            break;
        }
    }
    let mut end = scratch.len().min(MAX_ENDPOINT_BYTES);
    while !scratch.is_char_boundary(end) {
        end -= 1;
    }
    scratch.truncate(end);
    scratch
}

/// A numeric segment, a UUID, or a long hex string.
fn is_id(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    bytes.iter().all(u8::is_ascii_digit)
        || is_uuid(bytes)
        || (bytes.len() >= MIN_HEX_ID_LEN && bytes.iter().all(u8::is_ascii_hexdigit))
}

/// 8-4-4-4-12 hex digits, either case.
fn is_uuid(bytes: &[u8]) -> bool {
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, byte)| match i {
            8 | 13 | 18 | 23 => *byte == b'-',
            _ => byte.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASES: &[(&str, &str)] = &[
        ("/v1/process", "/v1/process"),
        ("/", "/"),
        ("", ""),
        ("/users/8121/orders", "/users/:id/orders"),
        ("/users/8121/orders?page=2&x=1", "/users/:id/orders"),
        ("/docs#section-2", "/docs"),
        ("/v2/items/0", "/v2/items/:id"),
        (
            "/jobs/3F2504E0-4F89-11D3-9A0C-0305E82C3301/logs",
            "/jobs/:id/logs",
        ),
        ("/blobs/9f86d081884c7d65", "/blobs/:id"),
        // short hex stays: it may be a word
        ("/menu/cafe/beef", "/menu/cafe/beef"),
        // 15 hex digits is not an id, 16 is
        ("/x/0123456789abcde", "/x/0123456789abcde"),
        ("/x/0123456789abcdef", "/x/:id"),
        // versions and mixed segments are not ids
        ("/v1/user-42/profile", "/v1/user-42/profile"),
        ("/orders/42/items/7", "/orders/:id/items/:id"),
        // a not-quite UUID (wrong dash position) is kept
        (
            "/x/3F2504E04-F89-11D3-9A0C-0305E82C3301",
            "/x/3F2504E04-F89-11D3-9A0C-0305E82C3301",
        ),
    ];

    #[test]
    fn normalization_table() {
        let mut scratch = String::new();
        for &(raw, want) in CASES {
            assert_eq!(normalize_endpoint(raw, &mut scratch), want, "{raw}");
        }
    }

    #[test]
    fn long_endpoints_are_capped_on_a_char_boundary() {
        let mut scratch = String::new();
        let long = format!("/{}", "é".repeat(300));
        let got = normalize_endpoint(&long, &mut scratch);
        assert!(got.len() <= MAX_ENDPOINT_BYTES && got.len() >= MAX_ENDPOINT_BYTES - 1);
        assert!(got.starts_with("/éé"));
        let ids = "/1".repeat(200);
        let got = normalize_endpoint(&ids, &mut scratch);
        assert!(got.len() <= MAX_ENDPOINT_BYTES);
        assert!(got.starts_with("/:id/:id"));
    }
}
