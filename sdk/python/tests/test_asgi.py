"""SentinelMiddleware in real FastAPI and Starlette apps, served by uvicorn over loopback HTTP."""

from __future__ import annotations

import asyncio
from typing import Any, Iterator

import pytest
from conftest import (
    Receiver,
    UvicornServer,
    check_requests_outrun_a_hung_receiver,
    flush_after,
    free_port,
    get,
    wait_for,
)
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from sentinel_tenants import SentinelClient, SentinelMiddleware

NEVER = 3600.0
ACME = {"x-tenant-id": "acme"}


class Boom(Exception):
    pass


def fastapi_app(client: SentinelClient, started: list[bool]) -> FastAPI:
    async def lifespan(app: FastAPI) -> Any:
        started.append(True)  # lifespan runs through the middleware untouched
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/users/{user_id}")
    async def user(user_id: int) -> dict[str, int]:
        return {"user_id": user_id}

    @app.get("/boom")
    async def boom() -> None:
        raise Boom("app failure")

    @app.post("/items")
    async def items() -> dict[str, str]:
        return {}

    orgs = APIRouter(prefix="/orgs/{org_id}")

    @orgs.get("/users/{user_id}")
    async def org_user(org_id: str, user_id: int) -> dict[str, str]:
        return {}

    app.include_router(orgs)
    # Opt-in: these tests trust the header (a client could send any tenant in it).
    app.add_middleware(SentinelMiddleware, client=client, tenant_header="x-tenant-id")
    return app


@pytest.fixture
def served(receiver: Receiver) -> Iterator[tuple[UvicornServer, SentinelClient, list[bool]]]:
    client = SentinelClient(url=receiver.url, flush_interval=NEVER)
    started: list[bool] = []
    server = UvicornServer(fastapi_app(client, started))
    yield server, client, started
    server.stop()
    client.close()


def test_fastapi_requests_become_events_with_route_templates(
    served: tuple[UvicornServer, SentinelClient, list[bool]], receiver: Receiver
) -> None:
    server, client, started = served
    assert started == [True]
    assert get(server.port, "/users/42?verbose=1", ACME) == (200, b'{"user_id":42}')
    assert get(server.port, "/orgs/o-7/users/9", {"x-tenant-id": "beta"})[0] == 200
    assert get(server.port, "/nowhere/123", ACME)[0] == 404
    assert get(server.port, "/users/not-a-number", ACME)[0] == 422
    assert get(server.port, "/boom", ACME)[0] == 500
    assert get(server.port, "/users/1")[0] == 200  # no tenant header: not recorded
    flush_after(client, 5)

    # Sorted: the middleware records after the response went out, so order is not promised.
    seen = sorted((e["tenant_id"], e["endpoint"], e["status_code"]) for e in receiver.events)
    assert seen == [
        ("acme", "/boom", 500),
        ("acme", "/nowhere/123", 404),
        ("acme", "/users/{user_id}", 200),
        ("acme", "/users/{user_id}", 422),
        ("beta", "/orgs/{org_id}/users/{user_id}", 200),
    ]
    assert all(e["latency_ms"] > 0 for e in receiver.events)
    assert client.stats.errors == 0


def test_a_405_is_charged_to_the_route_that_refused_it(
    served: tuple[UvicornServer, SentinelClient, list[bool]], receiver: Receiver
) -> None:
    server, client, _ = served
    assert get(server.port, "/items", ACME)[0] == 405
    flush_after(client, 1)
    assert [(e["endpoint"], e["status_code"]) for e in receiver.events] == [("/items", 405)]


def authenticated_app(client: SentinelClient) -> FastAPI:
    """The tenant is whom the app authenticated (from its API key), kept in `request.state`."""
    keys = {"Bearer key-acme": "acme", "Bearer key-beta": "beta"}
    app = FastAPI()

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Any:
        request.state.tenant = keys.get(request.headers.get("authorization", ""))
        return await call_next(request)

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        return {"order_id": order_id}

    app.add_middleware(
        SentinelMiddleware, client=client, tenant=lambda scope: scope.get("state", {}).get("tenant")
    )
    return app


def test_the_tenant_is_the_apps_not_a_header_the_client_sends(receiver: Receiver) -> None:
    client = SentinelClient(url=receiver.url, flush_interval=NEVER)
    server = UvicornServer(authenticated_app(client))
    spoofed = {"x-tenant-id": "victim"}
    try:
        assert (
            get(server.port, "/orders/1", {**spoofed, "authorization": "Bearer key-acme"})[0] == 200
        )
        assert get(server.port, "/orders/2", {"authorization": "Bearer key-beta"})[0] == 200
        assert get(server.port, "/orders/3", spoofed)[0] == 200  # not authenticated: no tenant
        flush_after(client, 2)
    finally:
        server.stop()
        client.close()
    seen = sorted((e["tenant_id"], e["endpoint"]) for e in receiver.events)
    assert seen == [("acme", "/orders/{order_id}"), ("beta", "/orders/{order_id}")]


def test_a_tenant_source_must_be_chosen_and_header_is_deprecated(receiver: Receiver) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    client = SentinelClient(url=receiver.url, flush_interval=NEVER)
    with pytest.raises(TypeError, match="needs tenant=.*spoofable.*tenant_header="):
        SentinelMiddleware(app, client=client)
    with pytest.raises(TypeError, match="not both"):
        SentinelMiddleware(app, client=client, tenant=lambda s: "a", tenant_header="x-tenant-id")
    with pytest.warns(DeprecationWarning, match="tenant_header"):
        legacy = SentinelMiddleware(app, client=client, header="x-tenant-id")
    run_asgi(legacy, http_scope(tenant=b"old-style"))
    assert client.flush(timeout=30)
    assert [e["tenant_id"] for e in receiver.events] == ["old-style"]
    client.close()


def starlette_app(client: SentinelClient) -> Starlette:
    async def user(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    api = Mount("/api", routes=[Route("/t/{tenant}/users/{user_id:int}", user)])
    app = Starlette(routes=[api])
    # The tenant comes from the URL here: the callable sees the scope after routing.
    return SentinelMiddleware(
        app, client=client, tenant=lambda scope: scope.get("path_params", {}).get("tenant")
    )


def test_starlette_mounts_and_a_tenant_callable(receiver: Receiver) -> None:
    client = SentinelClient(url=receiver.url, flush_interval=NEVER)
    server = UvicornServer(starlette_app(client))
    try:
        assert get(server.port, "/api/t/gamma/users/5")[0] == 200
        assert get(server.port, "/api/nothing/here")[0] == 404  # no route, no tenant
        flush_after(client, 1)
        seen = [(e["tenant_id"], e["endpoint"], e["status_code"]) for e in receiver.events]
        assert seen == [("gamma", "/api/t/{tenant}/users/{user_id:int}", 200)]
    finally:
        server.stop()
        client.close()


def test_requests_do_not_wait_for_a_receiver_that_hangs(receiver: Receiver) -> None:
    check_requests_outrun_a_hung_receiver(
        receiver, lambda client: UvicornServer(fastapi_app(client, []))
    )


def test_requests_succeed_while_the_receiver_is_down() -> None:
    client = SentinelClient(url=f"http://127.0.0.1:{free_port()}/v1/events", batch_size=1)
    server = UvicornServer(fastapi_app(client, []))
    try:
        for i in range(5):
            assert get(server.port, f"/users/{i}", ACME)[0] == 200
        wait_for("a retry", lambda: client.stats.retries >= 1)
    finally:
        server.stop()
        client.close()


def run_asgi(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def http_scope(path: str = "/p", tenant: bytes = b"acme") -> dict[str, Any]:
    return {"type": "http", "path": path, "root_path": "", "headers": [(b"x-tenant-id", tenant)]}


def test_an_app_exception_is_recorded_as_500_and_reraised_unchanged(receiver: Receiver) -> None:
    failure = Boom("the very same")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise failure

    client = SentinelClient(url=receiver.url, flush_interval=NEVER)
    with pytest.raises(Boom) as raised:
        run_asgi(SentinelMiddleware(app, client=client, tenant_header="x-tenant-id"), http_scope())
    assert raised.value is failure
    assert client.flush(timeout=30)
    assert [(e["endpoint"], e["status_code"]) for e in receiver.events] == [("/p", 500)]
    client.close()


@pytest.mark.parametrize("kind", ["websocket", "lifespan"])
def test_other_scopes_pass_through_untouched(receiver: Receiver, kind: str) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.extend([scope, receive, send])

    async def receive() -> dict[str, Any]:
        return {}

    async def send(message: Any) -> None:
        pass

    client = SentinelClient(url=receiver.url, flush_interval=NEVER)
    scope = {"type": kind, "path": "/ws", "headers": [(b"x-tenant-id", b"acme")]}
    middleware = SentinelMiddleware(app, client=client, tenant_header="x-tenant-id")
    asyncio.run(middleware(scope, receive, send))
    assert seen[0] is scope and seen[1] is receive and seen[2] is send
    assert client.flush(timeout=30) and receiver.requests == []
    client.close()


def test_a_failing_tenant_callable_never_fails_the_request(receiver: Receiver) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def broken(scope: Any) -> str:
        raise KeyError("tenant")

    client = SentinelClient(url=receiver.url, flush_interval=NEVER)
    sent = run_asgi(SentinelMiddleware(app, client=client, tenant=broken), http_scope())
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert client.stats.errors == 1
    client.close()
