"""SentinelClient against a real loopback receiver: batching, wire format, retries, drops."""

from __future__ import annotations

import datetime
import logging
import os
import time

import pytest
from conftest import Receiver, free_port, wait_for

import sentinel_tenants.client as client_module
from sentinel_tenants import SentinelClient

# Long enough that only batch_size, flush() and close() make a batch leave in these tests.
NEVER = 3600.0


def client_for(receiver: Receiver, **options: object) -> SentinelClient:
    options.setdefault("flush_interval", NEVER)
    return SentinelClient(url=receiver.url, **options)  # type: ignore[arg-type]


def test_full_batches_leave_on_their_own_and_flush_sends_the_rest(receiver: Receiver) -> None:
    client = client_for(receiver, batch_size=3, gzip=False)
    for i in range(7):
        client.record("acme", f"/e{i}", 200, 1.5)
    wait_for("two full batches", lambda: len(receiver.requests) == 2)
    assert client.flush(timeout=30)

    assert [len(r["events"]) for r in receiver.requests] == [3, 3, 1]
    assert [e["endpoint"] for e in receiver.events] == [f"/e{i}" for i in range(7)]
    first = receiver.requests[0]
    assert first["headers"]["Content-Type"] == "application/x-ndjson"
    assert "Content-Encoding" not in first["headers"]
    assert client.stats.sent == 7 and client.stats.queued == 0
    client.close()


def test_batches_share_one_keep_alive_connection(receiver: Receiver) -> None:
    client = client_for(receiver, batch_size=1)
    for _ in range(3):
        client.record("acme", "/x", 200, 1.0)
        assert client.flush(timeout=30)
    assert len(receiver.requests) == 3
    assert len({r["client_port"] for r in receiver.requests}) == 1
    client.close()


def test_event_fields_and_timestamps(receiver: Receiver) -> None:
    client = client_for(receiver)
    before = int(time.time() * 1000)
    client.record("acme", "/users/{user_id}", 503, 12.25)
    after = int(time.time() * 1000)
    moment = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    client.record("beta", "/a", 200, 0, timestamp=moment)
    client.record("beta", "/b", 200, 0, timestamp=1_700_000_000.5)
    client.record("beta", "/c", 200, 0, timestamp="2026-01-02T03:04:05Z")
    assert client.flush(timeout=30)

    stamped, aware, seconds, text = receiver.events
    assert stamped["tenant_id"] == "acme"
    assert stamped["endpoint"] == "/users/{user_id}"
    assert stamped["status_code"] == 503
    assert stamped["latency_ms"] == 12.25
    assert before <= stamped["timestamp"] <= after
    assert aware["timestamp"] == int(moment.timestamp() * 1000)
    assert seconds["timestamp"] == 1_700_000_000_500
    assert text["timestamp"] == "2026-01-02T03:04:05Z"
    client.close()


def test_gzip_body_and_bearer_token(receiver: Receiver) -> None:
    receiver.token = "s3cret"
    client = client_for(receiver, token="s3cret", gzip=True)
    client.record("acme", "/x", 200, 1.0)
    assert client.flush(timeout=30)
    (request,) = receiver.requests
    assert request["status"] == 200
    assert request["headers"]["Content-Encoding"] == "gzip"
    assert request["events"][0]["tenant_id"] == "acme"
    client.close()


@pytest.mark.parametrize("status", [400, 401, 413])
def test_refused_batches_are_not_retried_and_warned_once(
    receiver: Receiver, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answers = [status, status]
    client = client_for(receiver, batch_size=2)
    with caplog.at_level(logging.WARNING, logger="sentinel_tenants"):
        for _ in range(4):
            client.record("acme", "/x", 200, 1.0)
        assert client.flush(timeout=30)

    assert [r["status"] for r in receiver.requests] == [status, status]
    assert client.stats.rejected == 4 and client.stats.retries == 0 and client.stats.sent == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "a second refusal within the interval is not logged again"
    assert f"HTTP {status}" in warnings[0].getMessage()
    client.close()


def test_per_event_rejections_are_counted(receiver: Receiver) -> None:
    client = client_for(receiver)
    original = receiver._handle

    def answer_one_rejected(handler):  # type: ignore[no-untyped-def]
        handler.rfile.read(int(handler.headers["Content-Length"]))
        payload = b'{"accepted": 1, "rejected": [{"index": 1, "error": "status_code 42"}]}'
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    receiver._handle = answer_one_rejected  # type: ignore[method-assign]
    client.record("acme", "/x", 200, 1.0)
    client.record("acme", "/x", 42, 1.0)
    assert client.flush(timeout=30)
    assert (client.stats.sent, client.stats.rejected) == (1, 1)
    receiver._handle = original  # type: ignore[method-assign]
    client.close()


def test_503_and_429_are_retried_until_delivered(receiver: Receiver) -> None:
    receiver.answers = [503, 429, 502]
    client = client_for(receiver)
    for i in range(3):
        client.record("acme", f"/e{i}", 200, 1.0)
    assert client.flush(timeout=30)

    assert [r["status"] for r in receiver.requests] == [503, 429, 502, 200]
    assert all(r["events"] == receiver.requests[0]["events"] for r in receiver.requests)
    assert [e["endpoint"] for e in receiver.events] == ["/e0", "/e1", "/e2"]
    assert client.stats.retries == 3 and client.stats.sent == 3 and client.stats.dropped == 0
    client.close()


def test_a_batch_failing_too_long_is_dropped_and_the_queue_behind_it_kept(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "MAX_RETRY_SECONDS", 0.3)
    receiver.answer_for = lambda events: 503 if events[0]["endpoint"] == "/e0" else 200
    client = client_for(receiver, batch_size=2)
    client.record("acme", "/e0", 200, 1.0)
    client.record("acme", "/e1", 200, 1.0)
    wait_for("the first batch to be refused", lambda: receiver.requests)
    client.record("acme", "/e2", 200, 1.0)
    client.record("acme", "/e3", 200, 1.0)
    assert client.flush(timeout=30)

    assert [e["endpoint"] for e in receiver.events] == ["/e2", "/e3"]
    assert client.stats.dropped == 2 and client.stats.sent == 2 and client.stats.retries >= 1
    client.close()


def test_a_receiver_that_is_down_then_up_gets_everything() -> None:
    port = free_port()
    client = SentinelClient(url=f"http://127.0.0.1:{port}/v1/events", flush_interval=NEVER)
    for i in range(5):
        client.record("acme", f"/e{i}", 200, 1.0)
    client.flush(timeout=0)  # start sending now; it cannot succeed yet
    wait_for("connection refused twice", lambda: client.stats.retries >= 2)

    late = Receiver(port=port)
    try:
        assert client.flush(timeout=30)
        assert [e["endpoint"] for e in late.events] == [f"/e{i}" for i in range(5)]
        assert client.stats.dropped == 0
    finally:
        client.close()
        late.stop()


def test_a_full_queue_drops_the_oldest_and_record_never_waits(receiver: Receiver) -> None:
    receiver.hold()
    client = client_for(receiver, batch_size=2, max_queue=5, timeout=60.0)
    client.record("acme", "/e0", 200, 1.0)
    client.record("acme", "/e1", 200, 1.0)
    wait_for("the first batch to be parked in the receiver", lambda: receiver.held == 1)

    for i in range(2, 12):  # ten more while the sender is stuck: only five fit
        client.record("acme", f"/e{i}", 200, 1.0)
    assert client.stats.queued == 5 and client.stats.dropped == 5

    receiver.release()
    assert client.flush(timeout=30)
    assert [e["endpoint"] for e in receiver.events] == ["/e0", "/e1"] + [
        f"/e{i}" for i in range(7, 12)
    ]
    assert client.stats.sent == 7 and client.stats.dropped == 5
    client.close()


def test_record_swallows_bad_input_and_counts_it(receiver: Receiver) -> None:
    client = client_for(receiver)
    client.record("acme", "/x", "not a status", 1.0)  # type: ignore[arg-type]
    client.record("acme", "/x", 200, object())  # type: ignore[arg-type]
    client.record("acme", "/x", 200, 1.0, timestamp=object())  # type: ignore[arg-type]
    assert client.stats.errors == 3
    assert client.flush(timeout=30) and receiver.requests == []
    client.close()


def test_long_endpoints_are_cut_to_the_servers_limit(receiver: Receiver) -> None:
    client = client_for(receiver)
    client.record("acme", "/" + "é" * 300, 200, 1.0)
    assert client.flush(timeout=30)
    endpoint = receiver.events[0]["endpoint"]
    assert len(endpoint.encode("utf-8")) <= 256 and endpoint.startswith("/éé")
    client.close()


def test_close_sends_what_is_queued_and_later_records_are_dropped(receiver: Receiver) -> None:
    client = client_for(receiver)
    for i in range(3):
        client.record("acme", f"/e{i}", 200, 1.0)
    client.close()
    assert [e["endpoint"] for e in receiver.events] == ["/e0", "/e1", "/e2"]

    client.record("acme", "/late", 200, 1.0)
    assert client.stats.dropped == 1
    client.close()  # twice is fine


def test_close_gives_up_on_a_dead_receiver_instead_of_hanging() -> None:
    client = SentinelClient(url=f"http://127.0.0.1:{free_port()}/v1/events")
    for i in range(3):
        client.record("acme", f"/e{i}", 200, 1.0)
    client.close(timeout=30)
    assert client.stats.dropped == 3 and client.stats.queued == 0


def test_bad_configuration_fails_at_construction() -> None:
    with pytest.raises(ValueError):
        SentinelClient(url="ftp://example/v1/events")
    with pytest.raises(ValueError):
        SentinelClient(batch_size=0)


def test_a_forked_child_sends_only_its_own_events(receiver: Receiver) -> None:
    client = client_for(receiver, batch_size=100)
    client.record("acme", "/parent", 200, 1.0)  # queued in the parent, its thread running
    pid = os.fork()
    if pid == 0:  # the child: a copy of the queue, but no thread; it must start afresh
        ok = False
        try:
            client.record("acme", "/child", 200, 1.0)
            ok = client.flush(timeout=30) and client.stats.sent == 1
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert client.flush(timeout=30)
    assert sorted(e["endpoint"] for e in receiver.events) == ["/child", "/parent"]
    client.close()


def test_dims_are_sent_as_text_and_only_when_given(receiver: Receiver) -> None:
    client = client_for(receiver)
    client.record("acme", "/a", 503, 1.0, dims={"region": "eu-west", "build": 42})
    client.record("acme", "/b", 200, 1.0)
    assert client.flush(timeout=30)
    assert receiver.events[0]["dims"] == {"region": "eu-west", "build": "42"}
    assert "dims" not in receiver.events[1]
    client.close()
