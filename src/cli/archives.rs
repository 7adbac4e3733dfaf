//! `sentinelctl archives`: one line per evidence bundle — when, what, size, upload state, where.

use super::render::table_or;
use crate::api::ArchivesResponse;
use crate::archive::UploadState;

pub fn archives(response: &ArchivesResponse) -> String {
    table_or(
        "no evidence bundles yet\n",
        &["CREATED", "PROBE", "BUNDLE", "BYTES", "STATE", "LOCATION"],
        &response.archives,
        |a| {
            let (state, place) = match a.state {
                UploadState::Uploaded => (
                    "uploaded".to_string(),
                    a.location.clone().unwrap_or_default(),
                ),
                UploadState::Pruned => (
                    "uploaded (spool copy pruned)".to_string(),
                    a.location.clone().unwrap_or_default(),
                ),
                UploadState::Pending => {
                    let state = match (&a.last_error, a.attempts) {
                        (Some(error), n) => format!("pending ({n} failed: {})", short(error)),
                        (None, _) => "pending".to_string(),
                    };
                    (state, format!("{} -> {}", a.path.display(), a.destination))
                }
            };
            vec![
                a.created_at.to_rfc3339(),
                a.probe.clone(),
                a.name.clone(),
                a.bytes.to_string(),
                state,
                place,
            ]
        },
    )
}

/// At most 60 characters of `text`, with an ellipsis when cut (errors in table cells).
pub(super) fn short(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
