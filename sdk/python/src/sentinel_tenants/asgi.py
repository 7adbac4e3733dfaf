"""ASGI middleware (FastAPI, Starlette, any ASGI 3 app): one event per HTTP request.

Owns reading status, route template, tenant and latency off the ASGI messages, changing nothing.
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable, MutableMapping, Optional

from .client import SentinelClient
from .request_event import header_source, record_request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
TenantOf = Callable[[Scope], Optional[str]]


class SentinelMiddleware:
    """Wraps an ASGI app; `tenant(scope)` names the tenant the app authenticated.

    `tenant` is called after the app ran, so what routing and auth put in the scope (`state`,
    `user`, `path_params`) is there. Reading a request header instead (`tenant_header=`) is
    opt-in: any client can send any tenant id in it. Websocket and lifespan scopes pass through
    untouched. An exception from the app is recorded as a 500 and re-raised as it was. A
    cancelled request (client gone) is not recorded.
    """

    def __init__(
        self,
        app: ASGIApp,
        client: SentinelClient | None = None,
        tenant: TenantOf | None = None,
        tenant_header: str | None = None,
        header: str | None = None,
    ) -> None:
        chosen = header_source(
            "SentinelMiddleware",
            'lambda scope: scope.get("state", {}).get("tenant")',
            tenant,
            tenant_header,
            header,
        )
        self.app = app
        self.client = client if client is not None else SentinelClient()
        self._header = (chosen or "").lower().encode("latin-1")
        self._tenant_of: TenantOf = tenant if tenant is not None else self._tenant_from_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope.get("path", "")
        root_path = scope.get("root_path", "")
        status: int | None = None

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if status is None and message.get("type") == "http.response.start":
                status = message.get("status")
            await send(message)

        def endpoint() -> str:
            return _route_template(scope, root_path) or root_path + path

        try:
            await self.app(scope, receive, send_and_watch)
        except Exception:
            record_request(self.client, self._tenant_of, scope, endpoint, 500, started)
            raise
        # An app that returns without starting a response gets a 500 from the server.
        record_request(self.client, self._tenant_of, scope, endpoint, status or 500, started)

    def _tenant_from_header(self, scope: Scope) -> str | None:
        for name, value in scope.get("headers") or ():
            if name.lower() == self._header:
                return bytes(value).decode("latin-1")
        return None


def _route_template(scope: Scope, root_path: str) -> str | None:
    """`/users/{user_id}` from the route Starlette's router matched (it sets `scope["route"]`).

    Inside a Mount the route's path is relative, and the mount's matched prefix was appended to
    `root_path`; put them together. A Mount itself (nothing matched inside it) is no template.
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str) or not template or hasattr(route, "routes"):
        return None
    mounted_at = scope.get("root_path", "")
    prefix = mounted_at[len(root_path) :] if mounted_at.startswith(root_path) else ""
    return prefix + template
