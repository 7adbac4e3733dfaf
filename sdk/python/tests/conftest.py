"""Real loopback parts for the tests: an ingest receiver, a uvicorn server and a wsgiref server."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
import time
import wsgiref.simple_server
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator, Protocol

import pytest
import uvicorn

from sentinel_tenants import SentinelClient

WAIT_LIMIT_SECONDS = 30.0


def wait_for(what: str, condition: Callable[[], Any], limit: float = WAIT_LIMIT_SECONDS) -> Any:
    """Poll until `condition()` is truthy; the limit only stops a hung test, it asserts no speed."""
    deadline = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def flush_after(client: SentinelClient, recorded: int) -> None:
    """Flush once the middleware has recorded `recorded` events: it records after the response
    went out, so the test's HTTP client can see the response first."""
    wait_for(f"{recorded} events recorded", lambda: client.stats.recorded >= recorded)
    assert client.stats.recorded == recorded
    assert client.flush(timeout=WAIT_LIMIT_SECONDS)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_LIMIT_SECONDS)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class Receiver:
    """A stand-in for sentineld's `POST /v1/events` on loopback that records every request.

    `answers` is a script of statuses for the next requests (then 200), `answer_for(events)` picks
    one by content; `token` demands a bearer token; `hold()` parks every request until `release()`.
    """

    def __init__(self, port: int | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: list[int] = []
        self.answer_for: Callable[[list[dict[str, Any]]], int] | None = None
        self.token: str | None = None
        self.held = 0
        self._released = threading.Event()
        self._released.set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as sentineld

            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/events"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def events(self) -> list[dict[str, Any]]:
        """Events of the requests answered 200, in arrival order."""
        with self._lock:
            return [e for r in self.requests if r["status"] == 200 for e in r["events"]]

    def hold(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def stop(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        with self._lock:
            self.held += 1
        self._released.wait()
        if handler.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        events = [json.loads(line) for line in body.decode("utf-8").splitlines() if line.strip()]
        with self._lock:
            self.held -= 1
            status = self.answers.pop(0) if self.answers else 200
            if self.answer_for is not None:
                status = self.answer_for(events)
            if self.token and handler.headers.get("Authorization") != f"Bearer {self.token}":
                status = 401
            self.requests.append(
                {
                    "status": status,
                    "headers": dict(handler.headers),
                    "events": events,
                    "client_port": handler.client_address[1],
                }
            )
        answer = {"accepted": len(events), "rejected": []} if status == 200 else {"error": "no"}
        payload = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        if status == 429:
            handler.send_header("Retry-After", "0")
        handler.end_headers()
        handler.wfile.write(payload)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.stop()


class UvicornServer:
    """A real uvicorn serving `app` on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self._thread.start()
        wait_for("uvicorn to start", lambda: self.server.started)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(WAIT_LIMIT_SECONDS)


class QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class WsgirefServer:
    """The standard library's WSGI server serving `app` on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.server = wsgiref.simple_server.make_server(
            "127.0.0.1", 0, app, handler_class=QuietHandler
        )
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Served(Protocol):
    port: int

    def stop(self) -> None: ...


def check_requests_outrun_a_hung_receiver(
    receiver: Receiver, serve: Callable[[SentinelClient], Served]
) -> None:
    """Park the sender inside the receiver, then show the app still answers every request.

    No timing threshold: the proof is that all answers arrive while the receiver holds the
    first batch and has answered nothing.
    """
    receiver.hold()
    client = SentinelClient(url=receiver.url, batch_size=1, timeout=60.0)
    server = serve(client)
    try:
        assert get(server.port, "/users/1", {"x-tenant-id": "acme"})[0] == 200
        wait_for("the sender to be stuck in the receiver", lambda: receiver.held == 1)
        for i in range(20):
            assert get(server.port, f"/users/{i}", {"x-tenant-id": "acme"})[0] == 200
        assert receiver.held == 1 and receiver.requests == [], "all answered while it hung"
    finally:
        receiver.release()
        server.stop()
        client.close()
