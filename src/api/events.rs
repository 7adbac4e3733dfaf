//! `GET /v1/events`: history from the journal, or with `follow=1` an NDJSON stream of history
//! then live events, without a gap or a duplicate between the two.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::query::parse_events_params;
use super::server::{error, json, ApiState, Body};
use super::types::EventsResponse;
use crate::event::Timestamp;

pub(super) async fn events(
    query: Option<&str>,
    state: &ApiState,
    shutdown: CancellationToken,
) -> Response<Body> {
    let params = match parse_events_params(query, Timestamp::now()) {
        Ok(params) => params,
        Err(err) => return error(StatusCode::BAD_REQUEST, err.to_string()),
    };
    if !params.follow {
        return match state.journal.query(params.query).await {
            Ok(events) => json(StatusCode::OK, &EventsResponse { events }),
            Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
        };
    }
    // Subscribe before reading history so nothing falls between the two.
    let mut live = state.journal.follow();
    let history = match state.journal.query(params.query.clone()).await {
        Ok(events) => events,
        Err(err) => return error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    };
    let (sender, receiver) = mpsc::channel::<Bytes>(256);
    let kinds = params.query.kinds.clone();
    tokio::spawn(async move {
        let mut cursor = params.query.after_id.unwrap_or(0);
        for event in history {
            cursor = event.id;
            if sender.send(ndjson_line(&event)).await.is_err() {
                return;
            }
        }
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = sender.closed() => return,
                received = live.recv() => match received {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        let note = serde_json::json!({"error": format!("follower fell behind; {missed} events skipped (read them with after_id)")});
                        let _ = sender.send(Bytes::from(format!("{note}\n"))).await;
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            if event.id <= cursor
                || (!kinds.is_empty() && !kinds.iter().any(|k| k == event.event.kind.name()))
            {
                continue;
            }
            cursor = event.id;
            if sender.send(ndjson_line(&event)).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, "application/x-ndjson")
        .body(ChannelBody(receiver).boxed())
        .expect("static response parts are valid")
}

fn ndjson_line<T: Serialize>(value: &T) -> Bytes {
    let mut line = serde_json::to_vec(value).expect("events serialize");
    line.push(b'\n');
    Bytes::from(line)
}

/// A response body fed from a channel: each message is one chunk; the body ends when the
/// sender is dropped.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}
