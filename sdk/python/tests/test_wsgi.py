"""SentinelWSGIMiddleware around a real Flask app and a plain WSGI app, served by wsgiref."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import pytest
from conftest import (
    Receiver,
    WsgirefServer,
    check_requests_outrun_a_hung_receiver,
    flush_after,
    get,
)
from flask import Blueprint, Flask, Response

from sentinel_tenants import SentinelClient, SentinelWSGIMiddleware

NEVER = 3600.0
ACME = {"X-Tenant-Id": "acme"}


def flask_app() -> Flask:
    app = Flask(__name__)

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> dict[str, int]:
        return {"user_id": user_id}

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("app failure")  # Flask answers 500 itself

    @app.get("/stream/<name>")
    def stream(name: str) -> Response:
        return Response((chunk.encode() for chunk in ["a", "b", "c"]), mimetype="text/plain")

    orgs = Blueprint("orgs", __name__, url_prefix="/orgs/<org_id>")

    @orgs.get("/users/<int:user_id>")
    def org_user(org_id: str, user_id: int) -> str:
        return "ok"

    app.register_blueprint(orgs)
    return app


@pytest.fixture
def client(receiver: Receiver) -> Iterator[SentinelClient]:
    running = SentinelClient(url=receiver.url, flush_interval=NEVER)
    yield running
    running.close()


def test_flask_requests_become_events_with_route_templates(
    client: SentinelClient, receiver: Receiver
) -> None:
    # Opt-in: this test trusts the header (a client could send any tenant in it).
    server = WsgirefServer(
        SentinelWSGIMiddleware(flask_app(), client=client, tenant_header="X-Tenant-Id")
    )
    try:
        assert get(server.port, "/users/42?x=1", ACME) == (200, b'{"user_id":42}\n')
        assert get(server.port, "/orgs/o-1/users/7", {"X-Tenant-Id": "beta"})[0] == 200
        assert get(server.port, "/stream/s", ACME) == (200, b"abc")
        assert get(server.port, "/boom", ACME)[0] == 500
        assert get(server.port, "/missing/99", ACME)[0] == 404
        assert get(server.port, "/users/5")[0] == 200  # no tenant: not recorded
        flush_after(client, 5)
    finally:
        server.stop()

    seen = [(e["tenant_id"], e["endpoint"], e["status_code"]) for e in receiver.events]
    assert seen == [
        ("acme", "/users/{user_id}", 200),
        ("beta", "/orgs/{org_id}/users/{user_id}", 200),
        ("acme", "/stream/{name}", 200),
        ("acme", "/boom", 500),
        ("acme", "/missing/99", 404),
    ]
    assert all(e["latency_ms"] > 0 for e in receiver.events)
    assert client.stats.errors == 0


def plain_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"made"]


def test_a_plain_wsgi_app_reports_its_raw_path_and_a_tenant_callable(
    client: SentinelClient, receiver: Receiver
) -> None:
    tenant = SentinelWSGIMiddleware(
        plain_app, client=client, tenant=lambda environ: environ["QUERY_STRING"][2:] or None
    )
    server = WsgirefServer(tenant)
    try:
        assert get(server.port, "/plain/42?t=delta") == (201, b"made")
        flush_after(client, 1)
    finally:
        server.stop()
    seen = [(e["tenant_id"], e["endpoint"], e["status_code"]) for e in receiver.events]
    assert seen == [("delta", "/plain/42", 201)]


def test_requests_do_not_wait_for_a_receiver_that_hangs(receiver: Receiver) -> None:
    check_requests_outrun_a_hung_receiver(
        receiver,
        lambda client: WsgirefServer(
            SentinelWSGIMiddleware(flask_app(), client=client, tenant_header="X-Tenant-Id")
        ),
    )


class Boom(Exception):
    pass


def call(app: Any, environ: dict[str, Any]) -> list[bytes]:
    """What a WSGI server does: call, iterate, close."""
    body = app(environ, lambda status, headers, exc_info=None: None)
    try:
        return list(body)
    finally:
        body.close()


ENVIRON = {"PATH_INFO": "/p", "SCRIPT_NAME": "", "HTTP_X_TENANT_ID": "acme"}


def test_an_exception_when_called_is_recorded_as_500_and_reraised_unchanged(
    client: SentinelClient, receiver: Receiver
) -> None:
    failure = Boom("the very same")

    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        raise failure

    with pytest.raises(Boom) as raised:
        call(SentinelWSGIMiddleware(app, client=client, tenant_header="X-Tenant-Id"), dict(ENVIRON))
    assert raised.value is failure
    assert client.flush(timeout=30)
    assert [(e["endpoint"], e["status_code"]) for e in receiver.events] == [("/p", 500)]


def test_an_exception_while_streaming_is_recorded_as_500_once(
    client: SentinelClient, receiver: Receiver
) -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"partial"
            raise Boom("mid-stream")

        def close(self) -> None:
            closed.append(True)

    def app(environ: Any, start_response: Any) -> Body:
        start_response("200 OK", [])
        return Body()

    wrapped = SentinelWSGIMiddleware(app, client=client, tenant_header="X-Tenant-Id")
    body = wrapped(dict(ENVIRON), lambda status, headers, exc_info=None: None)
    with pytest.raises(Boom):
        list(body)
    body.close()  # type: ignore[attr-defined]
    body.close()  # type: ignore[attr-defined]
    assert closed == [True, True], "the app's own close is always passed on"
    assert client.flush(timeout=30)
    assert [(e["endpoint"], e["status_code"]) for e in receiver.events] == [("/p", 500)]


def test_a_failing_tenant_callable_never_fails_the_request(
    client: SentinelClient, receiver: Receiver
) -> None:
    def broken(environ: Any) -> str:
        raise KeyError("tenant")

    assert call(SentinelWSGIMiddleware(plain_app, client=client, tenant=broken), {}) == [b"made"]
    assert client.stats.errors == 1


def authenticate(app: Any) -> Any:
    """What WSGI auth layers do: whom the request authenticated as goes in REMOTE_USER."""
    keys = {"Bearer key-acme": "acme"}

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        user = keys.get(environ.get("HTTP_AUTHORIZATION", ""))
        if user:
            environ["REMOTE_USER"] = user
        return app(environ, start_response)  # type: ignore[no-any-return]

    return wrapped


def test_the_tenant_is_the_apps_not_a_header_the_client_sends(
    client: SentinelClient, receiver: Receiver
) -> None:
    wrapped = SentinelWSGIMiddleware(
        authenticate(plain_app), client=client, tenant=lambda environ: environ.get("REMOTE_USER")
    )
    server = WsgirefServer(wrapped)
    try:
        spoofed = {"X-Tenant-Id": "victim"}
        assert get(server.port, "/a", {**spoofed, "Authorization": "Bearer key-acme"})[0] == 201
        assert get(server.port, "/b", spoofed)[0] == 201  # not authenticated: no tenant
        flush_after(client, 1)
    finally:
        server.stop()
    assert [(e["tenant_id"], e["endpoint"]) for e in receiver.events] == [("acme", "/a")]


def test_a_tenant_source_must_be_chosen_and_header_is_deprecated(
    client: SentinelClient, receiver: Receiver
) -> None:
    with pytest.raises(TypeError, match="needs tenant=.*spoofable.*tenant_header="):
        SentinelWSGIMiddleware(plain_app, client=client)
    with pytest.warns(DeprecationWarning, match="tenant_header"):
        legacy = SentinelWSGIMiddleware(plain_app, client=client, header="X-Tenant-Id")
    assert call(legacy, dict(ENVIRON)) == [b"made"]
    assert client.flush(timeout=30)
    assert [e["tenant_id"] for e in receiver.events] == ["acme"]
